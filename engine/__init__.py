"""The test engine: which tests a change selects, their action keys, running them in the
workspace's interpreter under the pytest plugin, and recording their results in the cache and
the graph. It knows graph/ and cache/, and nothing of processes or protocols: the CLI uses it
directly (``maestro test --no-daemon``, ``maestro stale``) and the daemon's services compose it.
"""
