# METADATA
# title: What may be stored, served and uploaded
package maestro.builtin.cache

import data.maestro.builtin.lib
import rego.v1

# METADATA
# title: Flaky results are not cached
# custom:
#   id: cache.no_cache_marker
#   remediation: fix the flakiness and drop the marker; until then the test runs every time
deny contains fired if {
	input.action in {"store", "upload", "serve"}
	some marker in input.markers
	marker in lib.listed("no_cache_markers")
	fired := {
		"rule": "cache.no_cache_marker",
		"target": input.target,
		"msg": sprintf("%s is marked %s: its results are not cached", [input.target, marker]),
	}
}

# METADATA
# title: Only CI writes the team cache
# custom:
#   id: cache.ci_only_upload
#   remediation: results from CI warm the team cache; yours stay in your local cache
deny contains {"rule": "cache.ci_only_upload", "target": input.target, "msg": "only CI may upload to the team cache"} if {
	input.action == "upload"
	not input.ci
	lib.flag("upload_ci_only")
}
