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
