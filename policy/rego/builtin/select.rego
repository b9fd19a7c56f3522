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

# METADATA
# title: Quarantine (listed)
# custom:
#   id: quarantine.listed
#   remediation: a quarantined test still runs and is reported, its failure does not fail
#     the run; fix it and take it off [tool.maestro.policy] quarantine
quarantine contains fired if {
	some entry in lib.listed("quarantine")
	lib.touches(input.selected, split(entry, "::")[0])
	fired := {
		"rule": "quarantine.listed",
		"target": entry,
		"msg": sprintf("%s is quarantined: it runs and is reported, its failures do not fail the run", [entry]),
	}
}

# METADATA
# title: Quarantine (marked)
# custom:
#   id: quarantine.marker
#   remediation: a quarantined test still runs and is reported, its failure does not fail
#     the run; fix the flakiness and drop the marker ([tool.maestro.policy] quarantine_markers)
quarantine contains fired if {
	some test, marks in input.marked
	some marker in marks
	marker in lib.listed("quarantine_markers")
	fired := {
		"rule": "quarantine.marker",
		"target": test,
		"msg": sprintf("%s is marked %s: quarantined, its failures do not fail the run", [test, marker]),
	}
}
