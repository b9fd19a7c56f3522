# METADATA
# title: May a plugin load?
package maestro.builtin.plugin

import data.maestro.builtin.lib
import rego.v1

# METADATA
# title: Unsigned plugin
# custom:
#   id: plugin.unsigned
#   remediation: install the signed release of the plugin, or list it in
#     [tool.maestro.policy] allow_unsigned_plugins
deny contains {"rule": "plugin.unsigned", "msg": sprintf("plugin %s %s is not signed", [input.name, input.version])} if {
	not input.signed
	not input.name in lib.listed("allow_unsigned_plugins")
}
