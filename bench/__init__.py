"""Benchmarks (`python -m bench`). See docs/BENCHMARKS.md for results and reproducing commands.

`maestro.graph`, `maestro.cache`, `maestro.engine` and `maestro.daemon` live in graph/, cache/,
engine/ and daemon/, joined to `maestro` by the editable install's link tree under build/.
Colleagues re-link that tree while benches run, so the benches use a private link tree (.bench/pkg,
directory symlinks, rebuilt at each start) and put it first on sys.path, and on PYTHONPATH for the
processes they spawn. The repository root is dropped from sys.path: its `maestro/` alone has no
`graph` subpackage. Under pytest (tests/reality imports bench.bench_reality) nothing is changed.
"""

from __future__ import annotations

import os
import sys

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MOUNTS = {  # maestro.NAME -> folder
    "graph": "graph",
    "cache": "cache",
    "daemon": "daemon",
    "engine": "engine",
    "model": "model",
    "coordinator": "coordinator",
    "policy": "policy",
}


def refresh_link_tree() -> str:
    """(Re)link .bench/pkg/maestro to the current sources; cheap, called before each spawn."""
    base = os.path.join(_ROOT, ".bench", "pkg")
    pkg = os.path.join(base, "maestro")
    os.makedirs(pkg, exist_ok=True)
    wanted = {name: os.path.join(_ROOT, "maestro", name) for name in os.listdir(
        os.path.join(_ROOT, "maestro")) if name != "__pycache__"}  # fmt: skip
    wanted.update({name: os.path.join(_ROOT, folder) for name, folder in _MOUNTS.items()})
    for name in os.listdir(pkg):
        link = os.path.join(pkg, name)
        if name == "__pycache__" or not os.path.islink(link):
            continue
        if name not in wanted or os.readlink(link) != wanted[name]:
            os.unlink(link)
    for name, target in wanted.items():
        link = os.path.join(pkg, name)
        if not os.path.lexists(link):
            tmp = f"{link}.{os.getpid()}"
            os.symlink(target, tmp)
            os.replace(tmp, link)
    return base


if "maestro" not in sys.modules and "pytest" not in sys.modules:
    # An installed package has its bytecode (pip compiles it): without it every spawned process
    # would recompile ~60 maestro modules (0.25-0.5 s) and measure that instead. This sandbox
    # sets PYTHONDONTWRITEBYTECODE; the benches and the processes they spawn write bytecode.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    LINK_TREE = refresh_link_tree()
    sys.path[:] = [LINK_TREE] + [
        p for p in sys.path if os.path.abspath(p or os.curdir) != _ROOT or p.endswith(".zip")
    ]
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [LINK_TREE, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    )
