"""The LSP server (pygls): a thin adapter over the workspace daemon."""
