"""The per-workspace process: where it lives and how it starts and stops (address, lifecycle),
its composition root (app), the transport, the services and the file watcher."""
