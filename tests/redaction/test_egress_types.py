"""The egress gate in the type system: mypy --strict refuses raw bytes at every method of the
coordinator client that sends a body, and accepts what the redaction module made."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import maestro

SNIPPET = textwrap.dedent(
    """
    from maestro.coordinator.client import CoordinatorClient
    from maestro.redaction import Redactor


    async def send(client: CoordinatorClient, raw: bytes) -> None:
        await client.put_cas(raw)  # BAD
        await client.put("cas", "0" * 64, raw)  # BAD
        await client.put_ac("0" * 64, raw)  # BAD
        await client.ingest_telemetry(raw)  # BAD
        await client.post_decisions(raw)  # BAD
        await client.publish_team_model(raw)  # BAD
        await client.request_json("PUT", "/v1/x", raw)  # BAD
        await client._request("POST", "/v1/x", data=raw)  # BAD
        redactor = Redactor()
        await client.put_cas(redactor.redact_blob(raw))
        await client.post_decisions(redactor.redact_json({"decisions": []}))
        vetted = redactor.vet(raw)
        if vetted.blob is not None:
            await client.put_ac("0" * 64, vetted.blob)
    """
)


def test_mypy_refuses_raw_bytes_at_every_send(tmp_path: Path) -> None:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(SNIPPET)
    link_tree = Path(maestro.__file__).resolve().parents[1]  # the editable install's tree
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "cache"), str(snippet)],
        cwd=tmp_path,
        env={"MYPYPATH": str(link_tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    lines = SNIPPET.splitlines()
    bad = {i + 1 for i, line in enumerate(lines) if line.endswith("# BAD")}
    flagged = {
        int(m.group(1))
        for m in re.finditer(r"snippet\.py:(\d+): error: .*RedactedBlob", proc.stdout)
    }
    assert flagged == bad, proc.stdout + proc.stderr
    errors = re.findall(r"snippet\.py:(\d+): error", proc.stdout)
    assert {int(n) for n in errors} == bad, proc.stdout  # what the gate made type-checks
