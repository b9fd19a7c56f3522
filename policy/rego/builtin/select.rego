# METADATA
# title: Which tests a run adds or keeps
package maestro.builtin.select

import data.maestro.builtin.lib
import rego.v1

# METADATA
# title: Force-include
# custom:
#   id: force_include
#   remediation: these tests always run when their trigger paths change; the target is a
#     path (file or folder) Maestro adds to the run
#     ([tool.maestro.policy.force_include.NAME] when/include)
include contains fired if {
	some fi in triggered
	some wanted in fi.include
	fired := {
		"rule": sprintf("force_include.%s", [fi.name]),
		"target": wanted,
		"msg": sprintf("%s runs whenever %s changes", [wanted, fi.trigger]),
	}
}

# the force-include settings whose trigger paths changed (a set: looked up once per test)
triggered contains object.union(fi, {"trigger": trigger}) if {
	some fi in lib.named("force_include")
	some trigger in fi.when
	some changed in input.changed
	startswith(changed, trigger)
}

# METADATA
# title: Never skip
# custom:
#   id: never_skip.marker
#   remediation: tests with this marker always run, predictive mode or not
#     ([tool.maestro.policy] never_skip_markers)
keep contains fired if {
	input.mode == "predictive"
	some test in input.skipped
	some marker in object.get(input.markers, test, [])
	marker in lib.listed("never_skip_markers")
	fired := {
		"rule": "never_skip.marker",
		"target": test,
		"msg": sprintf("%s is marked %s: never skipped", [test, marker]),
	}
}
