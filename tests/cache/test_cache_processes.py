"""Real processes against one cache file: concurrent writers and a writer killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from cache_helpers import action_key

from maestro.cache import Cache, digest_bytes

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from maestro.cache import ActionResult, Cache, Provenance, Timing

    tag, count = sys.argv[1], int(sys.argv[2])  # count < 0: loop until killed
    cache = Cache.open()
    n = 0
    while count < 0 or n < count:
        blobs = [f"{tag}-{n}-{i}".encode() * 300 for i in range(4)]
        out, err, *_ = cache.put_blobs(blobs)
        cache.put_blob(f"{tag}-{n}-single".encode() * 50)
        result = ActionResult(
            exit_code=0, stdout=out, stderr=err,
            timing=Timing(started_at=datetime.now(UTC), wall_s=1.0, cpu_s=1.0),
            provenance=Provenance.current(),
        )
        prefix = "a" if tag == "A" else "b"
        cache.put_action(prefix + f"{n:063x}", result)
        assert cache.get_action(prefix + f"{n:063x}") is not None
        n += 1
        if n % 10 == 0:
            print(n, flush=True)
    cache.close()
    """
)


def spawn(tag: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, tag, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
        cwd="/",
    )


def test_two_processes_writing_at_once(cache_root: Path) -> None:
    Cache.open().close()  # create the environment up front
    procs = [spawn("A", 150), spawn("B", 150)]
    for proc in procs:
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    with Cache.open() as c:
        for tag, prefix in (("A", "a"), ("B", "b")):
            for n in (0, 77, 149):
                assert c.get_action(prefix + f"{n:063x}") is not None
                assert c.has_blob(digest_bytes(f"{tag}-{n}-single".encode() * 50))
        s = c.stats()
        assert s.actions == 300
        assert s.blobs == 300 * 5
        assert s.hits >= 300  # each writer's read-back counted, flushed on close
        report = c.verify()
        assert report.clean and report.repairs == [], report.repairs


def test_kill_9_mid_write_leaves_a_consistent_cache(cache_root: Path) -> None:
    Cache.open().close()
    proc = spawn("A", -1)
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line and int(line) >= 50:
            break
    assert line, "writer produced nothing"
    time.sleep(0.05)  # let it get into the middle of a transaction
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    with Cache.open() as c:
        report = c.verify()
        assert report.clean, report.corrupt
        assert report.repairs == [], report.repairs  # bookkeeping commits atomically
        assert report.dangling_actions == 0
        written = c.stats().actions
        assert written >= 50
        for n in range(written):
            assert c.get_action(f"a{n:063x}") is not None
        d = c.put_blob(b"still writable")
        assert c.get_blob(d) == b"still writable"
        assert c.get_action(action_key(0)) is None
