# METADATA
# title: Request admission at the coordinator
package maestro.builtin.coordinator

import data.maestro.builtin.lib
import rego.v1

# METADATA
# title: Too many requests in flight
# custom:
#   id: coordinator.max_in_flight
#   remediation: retry after the advised delay; ask the platform team for a larger share
queue contains {"rule": "coordinator.max_in_flight", "msg": msg, "retry_after_ms": 1000} if {
	some limit in lib.listed("max_in_flight")
	input.in_flight >= limit
	msg := sprintf("tenant %s has %d requests in flight (limit %d)", [input.tenant, input.in_flight, limit])
}

# The coordinator asks this point only when its own admission or a rate limit refused a request
# (input.refusal): the rules below name that refusal and say what to do about it, so the 429's
# `rule` and `remediation` come from here. Allowed requests are never evaluated.
refused := {"rule": input.refusal.rule, "msg": input.refusal.message, "retry_after_ms": input.refusal.retry_after_ms}

# METADATA
# title: Fair queuing - the tenant's queues at its priority level are full
# custom:
#   id: admission.queue_full
#   remediation: retry after the advised delay and send fewer requests at once; sustained, ask an operator for a higher priority or weight (maestro coordinator tenant set NAME --priority/--weight)
deny contains refused if input.refusal.rule == "admission.queue_full"

# METADATA
# title: Fair queuing - no seat freed within the wait budget
# custom:
#   id: admission.wait_budget
#   remediation: retry after the advised delay; sustained, ask an operator for a larger share (maestro coordinator tenant set NAME --weight/--min-share)
deny contains refused if input.refusal.rule == "admission.wait_budget"

# METADATA
# title: Rate limit - the tenant's sustained request rate
# custom:
#   id: rate.tenant
#   remediation: retry after the advised delay, or ask an operator to raise the rate (maestro coordinator tenant set NAME --rate N)
deny contains refused if input.refusal.rule == "rate.tenant"

# METADATA
# title: Rate limit - the tenant's per-second burst
# custom:
#   id: rate.tenant_burst
#   remediation: spread the requests over time, or ask an operator to raise the burst (maestro coordinator tenant set NAME --burst N)
deny contains refused if input.refusal.rule == "rate.tenant_burst"

# METADATA
# title: Rate limit - this API key's request rate
# custom:
#   id: rate.token
#   remediation: spread the work over time or over more keys the operator grants
deny contains refused if input.refusal.rule == "rate.token"

# METADATA
# title: Rate limit - the coordinator's global request rate
# custom:
#   id: rate.global
#   remediation: the coordinator as a whole is at its configured rate; retry after the advised delay
deny contains refused if input.refusal.rule == "rate.global"

# METADATA
# title: Quota - upload bytes per rolling day
# custom:
#   id: quota.upload_bytes_per_day
#   remediation: uploads resume as the rolling day frees the allowance; an operator can raise it (maestro coordinator tenant set NAME --upload-per-day SIZE)
deny contains refused if input.refusal.rule == "quota.upload_bytes_per_day"
