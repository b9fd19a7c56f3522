"""Compile a policy set in a child process before a long-lived process loads it.

rego-cpp 1.5 aborts the whole process (``std::terminate``, SIGABRT) on some constructs it
accepts syntactically, several ``with input as`` forms among them. In the daemon that would
kill every editor's connection, so a set with workspace or team modules is first compiled in
a child with a time bound; a crash there becomes a PolicyError naming the module that crashed
it (found by compiling each module on its own beside the built-in ones), and the caller keeps
its last good set. Sets already checked are remembered by digest, and with ``kept`` in a file
of the workspace's state too: the next process (a CLI run, a restarted daemon) loading the same
set does not pay a child interpreter (most of a second) again. The same modules and data with
the same Maestro and rego-cpp compile the same way; the file only spares the check, it decides
nothing.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from maestro.errors import PolicyError, PolicySyntaxError
from maestro.paths import replace_file
from maestro.policy.sources import Module, PolicySources

DEFAULT_TIMEOUT_S = 30.0
KEPT_DIGESTS = 32
"""Checked sets a ``kept`` file remembers (the newest)."""
log = logging.getLogger(__name__)


@functools.cache
def versions() -> list[str]:
    """Maestro's and rego-cpp's (regopy's) versions: what a kept answer is valid for."""
    from maestro import __version__

    try:
        regopy = metadata.version("regopy")
    except metadata.PackageNotFoundError:
        regopy = "?"
    return [__version__, regopy]


def _payload(sources: PolicySources) -> bytes:
    return json.dumps(
        {
            "modules": [
                {"name": m.name, "text": m.text, "layer": m.layer} for m in sources.modules
            ],
            "data": sources.data,
            "shadow": sorted(sources.shadow),
            "revision": sources.revision,
        },
        sort_keys=True,
    ).encode()


@dataclass
class ChildCompiler:
    """Checks policy sets in a child process; remembers the sets that compiled."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    kept: Path | None = None  # a file remembering the checked sets for the next process
    _good: set[str] = field(default_factory=set)

    def check(self, sources: PolicySources) -> None:
        """Raise PolicyError when the set crashes rego-cpp, does not compile, or takes longer
        than ``timeout_s``. Only built-in modules: nothing to check (they ship tested)."""
        if all(m.layer == "builtin" for m in sources.modules):
            return
        body = _payload(sources)
        digest = hashlib.sha256(body).hexdigest()
        if digest in self._good:
            return
        held = self._read_kept()
        if digest in held:
            self._good.add(digest)
            return
        crashed = self._run(body)
        if crashed is None:
            self._good.add(digest)
            self._write_kept([*(d for d in held if d != digest), digest])
            return
        culprit = self._culprit(sources)
        raise PolicyError(
            f"rego-cpp crashed compiling the policy ({crashed}); not loaded",
            where=culprit,
            hint="rego-cpp aborts on some constructs (several `with input as` forms): rewrite"
            " the rule without them; the last good policy stays in force",
        )

    def _read_kept(self) -> list[str]:
        if self.kept is None:
            return []
        try:
            raw = json.loads(self.kept.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except (OSError, ValueError) as exc:
            log.warning("checked policy sets %s not read (%s): checked again", self.kept, exc)
            return []
        if not isinstance(raw, dict) or raw.get("versions") != versions():
            return []
        digests = raw.get("checked")
        return [str(d) for d in digests] if isinstance(digests, list) else []

    def _write_kept(self, digests: list[str]) -> None:
        if self.kept is None:
            return
        body = json.dumps({"versions": versions(), "checked": digests[-KEPT_DIGESTS:]})
        try:
            self.kept.parent.mkdir(parents=True, exist_ok=True)
            replace_file(self.kept, body.encode())
        except OSError as exc:
            log.warning("checked policy sets not kept in %s: %s", self.kept, exc)

    def _run(self, body: bytes) -> str | None:
        """None when the child compiled the set; the crash's description when it died.
        A compile error the child reports is raised as the typed error it is."""
        try:
            proc = subprocess.run(
                [sys.executable, "-P", "-m", "maestro.policy.isolate"],
                input=body, capture_output=True, timeout=self.timeout_s, check=False,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise PolicyError(
                f"compiling the policy took longer than {self.timeout_s:.0f} s; not loaded",
                where="policy",
                hint="the last good policy stays in force",
            ) from None
        lines = proc.stdout.decode(errors="replace").strip().splitlines()
        answer = _answer(lines[-1]) if lines else None
        if proc.returncode == 0 and answer is not None:
            error = answer.get("error")
            if not isinstance(error, dict):
                return None
            cls = PolicySyntaxError if error.get("code") == PolicySyntaxError.code else PolicyError
            where, hint = error.get("where"), error.get("hint")
            raise cls(
                str(error.get("message")),
                where=str(where) if where is not None else None,
                hint=str(hint) if hint is not None else None,
            )
        why = (proc.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        signal = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        return f"{signal}: {why.strip()[:300]}"

    def _culprit(self, sources: PolicySources) -> str:
        """The first non-built-in module that crashes the compiler beside the built-in ones;
        every such module's name when none does on its own."""
        builtin = [m for m in sources.modules if m.layer == "builtin"]
        others = [m for m in sources.modules if m.layer != "builtin"]
        for m in others:
            alone = PolicySources([*builtin, m], sources.data, set(sources.shadow))
            try:
                crashed = self._run(_payload(alone))
            except PolicyError:
                continue  # it does not compile alone (it needs another module): not the crash
            if crashed is not None:
                return m.name
        return ", ".join(m.name for m in others)


def _answer(line: str) -> dict[str, object] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _main() -> None:
    from maestro.policy.engine import PolicySet

    raw = json.loads(sys.stdin.buffer.read())
    modules = [Module(m["name"], m["text"], m["layer"]) for m in raw["modules"]]
    sources = PolicySources(modules, raw["data"], set(raw["shadow"]), raw["revision"])
    try:
        PolicySet.compile(sources)
    except PolicyError as exc:
        error = {"code": exc.code, "message": exc.message, "where": exc.where, "hint": exc.hint}
        sys.stdout.write(json.dumps({"error": error}) + "\n")
        return
    sys.stdout.write(json.dumps({"ok": True}) + "\n")


if __name__ == "__main__":
    _main()
