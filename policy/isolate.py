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

A one-shot process (a CLI run right after a policy edit) checks in a fork of itself: rego-cpp
and the interpreter are loaded there already, so the check costs about a compile instead of a
new interpreter's start-up and imports; a fork that does not answer in time is killed and the
set checked in a new interpreter.

A long-lived process (the daemon) keeps one child ready (``resident``): started ahead with the
interpreter and rego-cpp loaded, it answers a check in the time a compile takes instead of an
interpreter's start-up and imports, so a plan right after a policy edit does not wait most of a
second for the check. A child that crashed on a set is replaced for the next check.
"""

from __future__ import annotations

import contextlib
import faulthandler
import functools
import hashlib
import json
import logging
import os
import selectors
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback
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


_HEADER = struct.Struct("!Q")  # a request's length, then its payload


class _Resident:
    """A child waiting for payloads on its stdin (``--serve``), one JSON line answered each on
    its stdout; its stderr goes to a file, read when it dies."""

    def __init__(self) -> None:
        self._err = tempfile.TemporaryFile()  # noqa: SIM115  (lives as long as the child)
        self.proc = subprocess.Popen(
            [sys.executable, "-P", "-m", "maestro.policy.isolate", "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err,
        )  # fmt: skip

    def ask(self, body: bytes, timeout_s: float) -> tuple[str | None, str]:
        """(the answer line, "") or (None, why it died). Raises TimeoutError (the child is
        then killed)."""
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(_HEADER.pack(len(body)) + body)
            proc.stdin.flush()
        except OSError:
            return None, self._died()
        deadline = time.monotonic() + timeout_s
        line = b""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    self.close()
                    raise TimeoutError
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    return None, self._died()
                line += chunk
        return line.decode(errors="replace").strip(), ""

    def _died(self) -> str:
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        code = self.proc.poll()
        self._err.seek(0)
        why = self._err.read().decode(errors="replace").strip().splitlines() or ["no output"]
        self.close()
        how = f"signal {-code}" if code is not None and code < 0 else f"exit {code}"
        return f"{how}: {why[-1].strip()[:300]}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        self._err.close()


@dataclass
class ChildCompiler:
    """Checks policy sets in a child process; remembers the sets that compiled."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    kept: Path | None = None  # a file remembering the checked sets for the next process
    # keep a child ready for the next check (:class:`_Resident`); close() ends it
    resident: bool = False
    _good: set[str] = field(default_factory=set)
    _child: _Resident | None = field(default=None, repr=False)
    _child_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start(self) -> None:
        """Start the resident child now (it loads in the background), when there is none."""
        if not self.resident:
            return
        with self._child_lock:
            if self._child is None or not self._child.alive():
                if self._child is not None:
                    self._child.close()
                self._child = _Resident()

    def close(self) -> None:
        with self._child_lock:
            child, self._child = self._child, None
        if child is not None:
            child.close()

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
        crashed = self._ask(body) if self.resident else self._run(body)
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

    def _ask(self, body: bytes) -> str | None:
        """:meth:`_run` through the resident child (started now if there is none); the next
        one is started after it, so it is loaded by the next check."""
        self.start()
        with self._child_lock:
            child = self._child
            assert child is not None
            try:
                line, crashed = child.ask(body, self.timeout_s)
            except TimeoutError:
                self._child = None
                raise _too_long(self.timeout_s) from None
            if line is None:
                self._child = None
        self.start()  # a crashed child is replaced for the next check
        if line is None:
            return crashed
        answer = _answer(line)
        if answer is None:
            return f"exit 0: an answer that is not JSON: {line[:300]}"
        _raise_reported(answer)
        return None

    def _run(self, body: bytes) -> str | None:
        """None when the child compiled the set; the crash's description when it died.
        A compile error the child reports is raised as the typed error it is. The child is a
        fork of this process where there is one (:func:`_forked`) and this is a one-shot
        process (a long-lived one keeps its threads' locks out of a fork's way), else a new
        interpreter."""
        fork = FORK and not self.resident
        got = _forked(body, min(self.timeout_s, FORK_WAIT_S)) if fork else None
        if got is None:
            try:
                proc = subprocess.run(
                    [sys.executable, "-P", "-m", "maestro.policy.isolate"],
                    input=body, capture_output=True, timeout=self.timeout_s, check=False,
                )  # fmt: skip
            except subprocess.TimeoutExpired:
                raise _too_long(self.timeout_s) from None
            got = proc.returncode, proc.stdout, proc.stderr
        code, out, err = got
        lines = out.decode(errors="replace").strip().splitlines()
        answer = _answer(lines[-1]) if lines else None
        if code == 0 and answer is not None:
            _raise_reported(answer)
            return None
        why = (err.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        how = f"signal {-code}" if code < 0 else f"exit {code}"
        return f"{how}: {why.strip()[:300]}"

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


FORK = sys.platform == "linux"
"""Check a set in a fork of this process (a one-shot process: the CLI) rather than a new
interpreter: the fork has the interpreter and rego-cpp loaded, so a check costs about a
compile instead of an interpreter's start-up and imports."""
FORK_WAIT_S = 10.0
"""How long a fork may take before it is killed and the set checked in a new interpreter (a
compile takes well under that; a fork stuck on a lock another thread held would not end)."""


def _forked(body: bytes, timeout_s: float) -> tuple[int, bytes, bytes] | None:
    """(exit code, negative for a signal; its answer; its stderr) of :func:`_check` run in a
    fork of this process; None when there is none or it did not finish in ``timeout_s`` (it
    is then killed, and the caller checks in a new interpreter: a fork of a process with
    threads could wait on a lock another thread held). The fork only compiles and writes its
    answer to a pipe, then leaves with ``os._exit`` (no handlers, no buffers flushed)."""
    # what the fork uses is loaded before it: an import another thread was in the middle of
    # at the fork could wait forever there
    import regopy  # noqa: F401
    import yaml  # noqa: F401

    import maestro.policy.engine  # noqa: F401
    from maestro.policy import rego

    read, write = os.pipe()
    with tempfile.TemporaryFile() as err:
        try:
            with rego._FD_LOCK:  # not held by another thread across the fork
                pid = os.fork()
        except OSError:
            os.close(read)
            os.close(write)
            return None
        if pid == 0:  # the fork
            code = 70
            try:
                os.close(read)
                faulthandler.disable()  # a crash is the parent's to report, not a dump
                os.dup2(err.fileno(), 2)
                rego._FD_LOCK = threading.Lock()  # the copy was taken locked
                answer = _check(body).encode()
                while answer:
                    answer = answer[os.write(write, answer) :]
                code = 0
            except BaseException:  # reported on stderr, as a child's
                with contextlib.suppress(BaseException):
                    os.write(2, traceback.format_exc().encode(errors="replace"))
            finally:
                os._exit(code)
        os.close(write)
        out = b""
        deadline = time.monotonic() + timeout_s
        finished = False
        try:
            with selectors.DefaultSelector() as sel:
                sel.register(read, selectors.EVENT_READ)
                while True:
                    left = deadline - time.monotonic()
                    if left <= 0 or not sel.select(left):
                        break
                    chunk = os.read(read, 65536)
                    if not chunk:
                        finished = True
                        break
                    out += chunk
        finally:
            os.close(read)
            if not finished:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
        if not finished:
            log.warning("a forked policy check took over %.0f s: checked again", timeout_s)
            return None
        err.seek(0)
        return os.waitstatus_to_exitcode(status), out, err.read()


def _too_long(timeout_s: float) -> PolicyError:
    return PolicyError(
        f"compiling the policy took longer than {timeout_s:.0f} s; not loaded",
        where="policy",
        hint="the last good policy stays in force",
    )


def _raise_reported(answer: dict[str, object]) -> None:
    """Raise the compile error a child reported, as the typed error it is."""
    error = answer.get("error")
    if not isinstance(error, dict):
        return
    cls = PolicySyntaxError if error.get("code") == PolicySyntaxError.code else PolicyError
    where, hint = error.get("where"), error.get("hint")
    raise cls(
        str(error.get("message")),
        where=str(where) if where is not None else None,
        hint=str(hint) if hint is not None else None,
    )


def _answer(line: str) -> dict[str, object] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _check(body: bytes) -> str:
    from maestro.policy.engine import PolicySet

    raw = json.loads(body)
    modules = [Module(m["name"], m["text"], m["layer"]) for m in raw["modules"]]
    sources = PolicySources(modules, raw["data"], set(raw["shadow"]), raw["revision"])
    try:
        PolicySet.compile(sources)
    except PolicyError as exc:
        error = {"code": exc.code, "message": exc.message, "where": exc.where, "hint": exc.hint}
        return json.dumps({"error": error}) + "\n"
    return json.dumps({"ok": True}) + "\n"


def _read_exact(fd: int, n: int) -> bytes | None:
    out = b""
    while len(out) < n:
        chunk = os.read(fd, n - len(out))
        if not chunk:
            return None
        out += chunk
    return out


def _serve() -> None:
    """The resident child: answer payloads until stdin closes (the parent ended or closed
    it). The answers go to a private copy of stdout: rego-cpp writes to descriptor 1."""
    import maestro.policy.engine  # noqa: F401  (loaded before the first request)

    answers = os.dup(1)
    os.dup2(2, 1)
    stdin = sys.stdin.buffer.fileno()
    while True:
        header = _read_exact(stdin, _HEADER.size)
        if header is None:
            return
        body = _read_exact(stdin, _HEADER.unpack(header)[0])
        if body is None:
            return
        answer = _check(body).encode()
        while answer:
            answer = answer[os.write(answers, answer) :]


def _main() -> None:
    if sys.argv[1:] == ["--serve"]:
        _serve()
        return
    sys.stdout.write(_check(sys.stdin.buffer.read()))


if __name__ == "__main__":
    _main()
