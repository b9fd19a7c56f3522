"""The daemon's workspace services, each installed on the DaemonApp by ``app.build_app``: the
shared graph and its queries, test runs over the engine, speculation and telemetry, the
coordinator mirror, and the connected editor's settings."""

from __future__ import annotations
