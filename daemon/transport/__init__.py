"""How the daemon is reached: length-prefixed msgpack frames on a Unix socket, the server that
dispatches them to registered handlers, and the client that the CLI and the LSP server use."""
