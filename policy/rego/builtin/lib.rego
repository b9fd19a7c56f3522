# METADATA
# title: Helpers the built-in rules share
package maestro.builtin.lib

import rego.v1

# Settings from [tool.maestro.policy] (workspace) and the team bundle's data.json (team):
# lists are the union of both layers, so a workspace cannot drop what the team set.
configs := [c |
	some layer in ["builtin", "workspace", "team"]
	c := object.get(data.config, layer, {})
]

listed(key) := {v |
	some c in configs
	some v in object.get(c, key, [])
}

flag(key) if {
	some c in configs
	object.get(c, key, false) == true
}

# (rego-cpp refuses `some k, v in` inside a comprehension)
named(key) := {item |
	some c in configs
	table := object.get(c, key, {})
	some name
	v := table[name]
	item := object.union(v, {"name": name})
}

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
