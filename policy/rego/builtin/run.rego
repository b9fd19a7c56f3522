# METADATA
# title: May this run start now?
# description: Run windows for background and speculative runs, per-path concurrency caps,
#   the speculation budget.
package maestro.builtin.run

import data.maestro.builtin.lib
import rego.v1

# METADATA
# title: Outside its run window
# custom:
#   id: windows.closed
#   remediation: start it yourself (`maestro test` is interactive and not windowed), or let it
#     start when the window opens; windows are [tool.maestro.policy.windows.NAME]
deny contains {"rule": "windows.closed", "msg": msg, "retry_at_ms": opens} if {
	applying := [w | some w in input.windows; input.kind in w.kinds]
	count(applying) > 0
	every w in applying {
		not w.open
	}
	# an instant, not a delay: Maestro subtracts the decision's clock, so this rule does not
	# read the clock and a repeated decision is answered from the memo
	opens := min([w.next_open_ms | some w in applying])
	msg := sprintf("%s runs start only inside a run window", [input.kind])
}

# METADATA
# title: Concurrency cap
# custom:
#   id: caps
#   remediation: the run starts by itself when the running one ends; cancel the other run to
#     go first, or raise max in [tool.maestro.policy.caps.NAME]
queue contains fired if {
	some cap in lib.named("caps")
	lib.touches(input.paths, cap.path)
	limit := object.get(cap, "max", 1)
	running := [r | some r in input.running; lib.touches(r.paths, cap.path)]
	count(running) >= limit
	fired := {
		"rule": sprintf("caps.%s", [cap.name]),
		"msg": sprintf("at most %d concurrent run under %s", [limit, cap.path]),
		"remediation": object.get(cap, "remediation", ""),
	}
}

# METADATA
# title: Speculation budget spent
# custom:
#   id: speculation.budget
#   remediation: speculation resumes when its CPU budget refills; raise
#     ml.speculation budget settings to allow more
deny contains {"rule": "speculation.budget", "msg": "the speculation budget is spent"} if {
	input.kind == "speculative"
	input.speculation_budget_s != null
	input.speculation_budget_s <= 0
}
