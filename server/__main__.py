"""``python -P -m maestro.server``: the language server on stdio (what `maestro lsp` runs)."""

from maestro.server.main import main

main()
