"""The per-workspace process: runner, RPC, watcher."""
