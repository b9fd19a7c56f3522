# METADATA
# title: Helpers the built-in rules share
package maestro.builtin.lib

import rego.v1

# Settings from [tool.maestro.policy] (workspace) and the team bundle's data.json (team),
# merged by Maestro when the policy set is compiled (data.config.merged): lists are the union
# of the layers' (a workspace cannot drop what the team set), tables become lists of entries
# with their "name", flags are true when any layer sets them. Merging once instead of at every
# decision saves most of a small decision's time.
listed(key) := object.get(data.config.merged, key, [])

flag(key) if object.get(data.config.merged, key, false) == true

named(key) := object.get(data.config.merged, key, [])

# a run of `paths` (empty: the whole suite) touches `prefix` when one contains the other
touches(paths, _) if count(paths) == 0

touches(paths, prefix) if {
	some p in paths
	startswith(p, prefix)
}

touches(paths, prefix) if {
	some p in paths
	startswith(prefix, p)
}
