"""The pytest process of a run, as started: spawned in its own group with its lifeline and run
record, and the warm one (``WarmPytest``), started before the run is planned.

Split from maestro/engine/runner.py so that an in-process ``maestro test`` can start pytest's
process first (maestro/cli/launch.py): this module imports only what a spawn needs (no logging,
dataclasses, typing, json or asyncio until used), so the console script reaches the spawn with
little more than the interpreter's own start-up and ``subprocess`` imported. The runner imports
everything here and drives the run over it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

from maestro.engine.interpreter_path import find_interpreter_path
from maestro.envvars import DEFAULT_ENV_ALLOWLIST, allowlist_with, allowlisted_env
from maestro.errors import MaestroError, RunnerError
from maestro.paths import own_dirs, workspace_state_dir
from maestro.workspace import unconfigured

TYPE_CHECKING = False  # typing's own flag costs an import of typing before the spawn
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

ALL_CACHED = "last-run-all-cached"
"""In the workspace state dir while the last in-process run was served whole from the cache:
the next one then starts no warm pytest process (``start_warm``), which it would most likely
kill unused, its start-up competing with the plan for the CPU."""

# The runner's log: its records keep the runner's name.
_LOGGER = "maestro.engine.runner"
_DEBUG, _INFO, _WARNING = 10, 20, 30


def _log(level: int, message: str, *args: object) -> None:
    """A record of the runner's log, without importing logging before anything uses it: until
    something imports logging nothing has configured it, and a record below WARNING would be
    dropped (a warning goes to logging's last resort handler, as it would)."""
    if level < _WARNING and "logging" not in sys.modules:
        return
    import logging

    logging.getLogger(_LOGGER).log(level, message, *args)


PLUGIN_MODULE = "maestro_pytest_plugin"
EVENTS_FD_ENV = "MAESTRO_EVENTS_FD"
TRACE_ENV = "MAESTRO_TRACE"  # the plugin's ENV_TRACE: off | lsprof | profile
SELECT_ENV = "MAESTRO_SELECT"  # the plugin's ENV_SELECT: {"scores", "deselect", "until"}
LIFELINE_FD_ENV = "MAESTRO_LIFELINE_FD"  # maestro_lifeline's ENV_FD
OWN_DIRS_ENV = "MAESTRO_OWN_DIRS"  # the plugin's ENV_OWN_DIRS: what it never takes for an input
CHILD_DIR_ENV = "MAESTRO_RUN_CHILD_DIR"  # the plugin's ENV_RUN_CHILD_DIR: made by the run's record
CHILD_DIR_PREFIX = "maestro-children-"  # the plugin's mkdtemp prefix when no runner made one
RUNS_DIR = "runs"
_ORPHAN_WAIT_S = 5.0  # how long a SIGKILLed orphan may take to release its lock


def plugin_dir() -> Path:
    """The directory holding the plugin file (through the editable link tree if need be)."""
    here = Path(__file__)
    for base in (here.parent, here.resolve().parent):
        candidate = base / "plugin"
        if (candidate / f"{PLUGIN_MODULE}.py").is_file():
            return candidate
    raise RunnerError(
        f"the pytest plugin {PLUGIN_MODULE}.py is missing from the maestro installation",
        hint="reinstall maestro-conductor (the plugin ships as package data of maestro.engine)",
    )


def build_env(
    venv: Path | None,
    *,
    events_fd: int,
    allowlist: Iterable[str] = DEFAULT_ENV_ALLOWLIST,
    extra_env: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The child's environment: allowlisted variables, activation of the ``venv`` the
    interpreter lives in (None: not a venv), plugin path, events fd."""
    source = os.environ if environ is None else environ
    env = dict(allowlisted_env(allowlist, source))
    if TRACE_ENV in source:  # how the plugin traces: changes records, never outcomes (not keyed)
        env[TRACE_ENV] = source[TRACE_ENV]
    env.update(extra_env or {})
    if venv is not None:
        env["VIRTUAL_ENV"] = str(venv)
        venv_bin = str(venv / "bin")
        env["PATH"] = os.pathsep.join(p for p in (venv_bin, env.get("PATH")) if p)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(plugin_dir()), env.get("PYTHONPATH")) if p)
    env[EVENTS_FD_ENV] = str(events_fd)
    env[OWN_DIRS_ENV] = os.pathsep.join(str(d) for d in own_dirs())
    return env


class _Spawned:
    """A started pytest child and the descriptors and record this process keeps for it."""

    __slots__ = ("env", "lifeline_write", "proc", "read_fd", "record", "started")

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        read_fd: int,  # the events pipe's read end
        lifeline_write: int,
        record: RunRecord | None,
        env: dict[str, str],  # as spawned (a warm child adds its run's extras later)
        started: float,
    ) -> None:
        self.proc = proc
        self.read_fd = read_fd
        self.lifeline_write = lifeline_write
        self.record = record
        self.env = env
        self.started = started

    def kill(self) -> None:
        """SIGKILL the group, reap the leader, let go of everything (a run that never ran)."""
        _signal_group(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            self.proc.wait(_ORPHAN_WAIT_S)
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        _release(self.read_fd, self.lifeline_write, self.record)


def _spawn(
    root: Path,
    command: Sequence[str],
    record: RunRecord | None,
    env_of: Callable[[int], dict[str, str]],
    *,
    stdin: int,
    nice: int,
    interpreter: Path,
    extra_fds: Sequence[int] = (),
) -> _Spawned:
    """Start ``command`` in its own session with the events pipe, the lifeline and ``record``'s
    group lock; ``env_of(events_fd)`` is its environment. On the event loop's thread (or the
    main thread): the child's death signal follows the thread that forks it."""
    read_fd, write_fd = os.pipe()
    write_fd = _high(write_fd)
    try:
        # Only this process ever holds the write end (os.pipe is close-on-exec): EOF = we are gone.
        lifeline_read, lifeline_write = os.pipe()
        lifeline_read = _high(lifeline_read)
    except BaseException:
        os.close(read_fd)
        os.close(write_fd)
        if record is not None:
            record.close()
        raise
    try:
        env = env_of(write_fd)
        env[LIFELINE_FD_ENV] = str(lifeline_read)
        children = "" if record is None else record.make_child_dir(env.get("TMPDIR"))
        if children:
            env[CHILD_DIR_ENV] = children
        inherited = [write_fd, lifeline_read, *extra_fds]
        inherited += [] if record is None else [record.group_fd]
        _log(_INFO, "running %s in %s", " ".join(command), root)
        started = time.monotonic()
        proc = subprocess.Popen(
            command,
            cwd=root,
            env=env,
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            pass_fds=inherited,
            start_new_session=True,
        )
        if record is not None:
            record.spawned(proc.pid)
        if nice > 0:
            with contextlib.suppress(OSError):  # it exited already: nothing to lower
                os.setpriority(
                    os.PRIO_PROCESS, proc.pid, min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice)
                )
    except OSError as exc:
        _release(read_fd, lifeline_write, record)
        raise RunnerError(
            f"cannot start {interpreter}: {exc.strerror}",
            hint="check the interpreter setting or recreate the virtual environment",
        ) from exc
    except BaseException:
        _release(read_fd, lifeline_write, record)
        raise
    finally:
        os.close(write_fd)
        os.close(lifeline_read)
    return _Spawned(proc, read_fd, lifeline_write, record, env, started)


class WarmPytest:
    """A pytest process started before its run is planned (``plugin/maestro_warm.py``).

    The CLI starts one at the top of an in-process ``maestro test`` so that the interpreter's
    start-up and pytest's import overlap the graph, the keys and the plan. The run takes it only
    if it was started exactly as the run would start its own (interpreter, folder, environment
    less the run's own extras); otherwise, or when nothing needs to run, it is killed unused.
    Use it as a context manager: leaving it kills a process nobody took.
    """

    def __init__(self, root: Path, python: Path, spawned: _Spawned, described: int) -> None:
        self.root = root
        self.python = python
        self._spawned: _Spawned | None = spawned
        self._described = described  # read end: the interpreter's description, then EOF
        self._description: str | None = None

    @classmethod
    def start(
        cls,
        root: Path,
        python: Path,
        *,
        venv: Path | None,
        env_allowlist: Iterable[str] = DEFAULT_ENV_ALLOWLIST,
        environ: Mapping[str, str] | None = None,
    ) -> WarmPytest | None:
        """Start one (blocking: it first reaps the workspace's orphans); None if it cannot be
        started, and the run then starts its own as usual."""
        root = root.absolute()
        allowlist = tuple(env_allowlist)
        described, describe_fd = os.pipe()
        describe_fd = _high(describe_fd)

        def env_of(events_fd: int) -> dict[str, str]:
            env = build_env(venv, events_fd=events_fd, allowlist=allowlist, environ=environ)
            return {**env, WARM_DESCRIBE_FD_ENV: str(describe_fd)}

        try:
            spawned = _spawn(
                root,
                # pytest's own command: the process must be `python -m pytest` in every respect
                # (argv, __main__, the frames under a test); -p is replaced by the run's arguments
                [str(python), "-m", "pytest", "-p", WARM_MODULE],
                _register_sync(root),
                env_of,
                stdin=subprocess.PIPE,
                nice=0,
                interpreter=python,
                extra_fds=[describe_fd],
            )
        except (OSError, RunnerError) as exc:
            _log(_DEBUG, "no warm pytest process: %s", exc)
            os.close(described)
            return None
        finally:
            os.close(describe_fd)
        del spawned.env[WARM_DESCRIBE_FD_ENV]  # the module takes it out of its environment
        return cls(root, python, spawned, described)

    def ready(self) -> bool:
        """Whether the process has described its interpreter: :meth:`describe` would not wait."""
        if self._described < 0:
            return True
        try:
            return bool(select.select([self._described], [], [], 0)[0])
        except OSError:
            return True

    def describe(self, python: Path) -> str | None:
        """The interpreter query's answer as the waiting process gave it (blocking until it
        has imported pytest); None if it runs another interpreter or gave none."""
        if python != self.python:
            return None
        if self._described >= 0:
            chunks: list[bytes] = []
            deadline = time.monotonic() + _DESCRIBE_WAIT_S  # a stuck import: ask the usual way
            with contextlib.suppress(OSError):
                while select.select([self._described], [], [], _remaining(deadline))[0]:
                    chunk = os.read(self._described, 1 << 16)
                    if not chunk:
                        break
                    chunks.append(chunk)
            os.close(self._described)
            self._described = -1
            self._description = b"".join(chunks).decode(errors="replace").strip() or None
        return self._description

    def take(
        self, root: Path, command: Sequence[str], env_of: Callable[[int], dict[str, str]]
    ) -> _Spawned | None:
        """Hand the process over to the run of ``command`` if it fits (see the class), else
        kill it; None: start a process of your own. ``env_of(events_fd)`` is the environment
        the run would spawn with, its extras included."""
        spawned, self._spawned = self._spawned, None
        if spawned is None:
            return None
        env = env_of(int(spawned.env[EVENTS_FD_ENV]))
        env[LIFELINE_FD_ENV] = spawned.env[LIFELINE_FD_ENV]
        if CHILD_DIR_ENV in spawned.env:
            env[CHILD_DIR_ENV] = spawned.env[CHILD_DIR_ENV]
        extra = {k: v for k, v in env.items() if spawned.env.get(k) != v}
        fits = (
            root.absolute() == self.root
            and list(command[:3]) == [str(self.python), "-m", "pytest"]
            and set(spawned.env) <= set(env)
            and extra.keys() <= _PER_RUN_ENV
            and spawned.proc.poll() is None
            and self.unchanged()
        )
        if not fits:
            _log(_DEBUG, "the warm pytest process does not fit this run; starting another")
            spawned.kill()
            return None
        import json

        request = json.dumps({"args": list(command[3:]), "env": extra}) + "\n"
        assert spawned.proc.stdin is not None
        try:
            # A long node list may exceed the pipe: the child reads once pytest is imported.
            spawned.proc.stdin.write(request.encode())
            spawned.proc.stdin.close()
        except OSError:  # it died on the way (a broken pytest): the run finds out by itself
            spawned.kill()
            return None
        spawned.env = env
        spawned.started = time.monotonic()
        return spawned

    def unchanged(self) -> bool:
        """Whether what the process loaded is still what a new process would load: every module
        file it imported has the same stat, and no file in the folder (first on its ``sys.path``)
        now shadows one of its top-level modules. Blocks until it has imported pytest. A project
        that pytest itself imports (pluggy, an editable plugin) is edited between runs: a process
        kept waiting across them must not run the old code."""
        text = self.describe(self.python)
        if text is None:
            return False
        import json

        try:
            loaded = json.loads(text)["loaded"]
            files = [(str(f), int(m), int(z)) for f, m, z in loaded["files"]]
            top = set(loaded["top"])
            shadowing = list(loaded["shadowing"])
        except (ValueError, KeyError, TypeError):
            return False
        for path, mtime_ns, size in files:
            try:
                st = os.stat(path)
            except OSError:
                return False
            if (st.st_mtime_ns, st.st_size) != (mtime_ns, size):
                _log(
                    _INFO, "not using the waiting pytest process: %s changed since it started", path
                )
                return False
        try:
            here = sorted(e for e in os.listdir(self.root) if e.partition(".")[0] in top)
        except OSError:
            return False
        return here == shadowing

    @property
    def pid(self) -> int | None:
        """The waiting process's id; None once taken or discarded."""
        return None if self._spawned is None else self._spawned.proc.pid

    def discard(self) -> None:
        if self._described >= 0:
            os.close(self._described)
            self._described = -1
        spawned, self._spawned = self._spawned, None
        if spawned is not None:
            with contextlib.suppress(OSError):
                assert spawned.proc.stdin is not None
                spawned.proc.stdin.close()  # EOF: it exits by itself, running nothing
            spawned.kill()

    def __enter__(self) -> WarmPytest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


WARM_MODULE = "maestro_warm"
WARM_DESCRIBE_FD_ENV = "MAESTRO_WARM_DESCRIBE_FD"  # maestro_warm's DESCRIBE_FD_ENV
_DESCRIBE_WAIT_S = 30.0  # the interpreter query's own timeout


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


# The only variables a warm process may get after it started: the plugin reads them when pytest
# configures it. Anything else (PYTHONHASHSEED, PYTHONPATH...) counts as the interpreter starts.
_PER_RUN_ENV = frozenset({TRACE_ENV, SELECT_ENV})


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _release(read_fd: int | None, lifeline_write: int, record: RunRecord | None) -> None:
    if read_fd is not None:
        os.close(read_fd)
    os.close(lifeline_write)
    if record is not None:
        record.close()


# --- the workspace's running pytest groups ------------------------------------------------------


def runs_dir(root: Path) -> Path:
    """Where the runs of the workspace at ``root`` are recorded (private, created on demand)."""
    path = workspace_state_dir(root) / RUNS_DIR
    path.mkdir(mode=0o700, exist_ok=True)
    return path


class RunRecord:
    """One pytest group in a runs directory, as two files under ``flock``.

    ``<token>.owner`` is locked by the runner for the whole run (its descriptor is close-on-exec:
    no child inherits it). ``<token>.group`` is locked through a descriptor the child inherits;
    the runner closes its own copy once the child started, so that lock lives exactly as long as
    the child (and whatever inherited the descriptor from it) and holds the group id. A group
    still locked whose owner is not is an orphan. Locks, not pids: the kernel drops a lock when
    its last holder dies, even on kill -9, and a pid can be reused.

    The folder where the tests' Python children leave their records (``make_child_dir``) is
    made here and named on the owner file's second line, not left to the plugin: pytest
    removes it at its end, which a SIGTERM (Ctrl-C of ``maestro test``) or a SIGKILL skips, and
    so the record removes it when the run is over, or the next run when its runner died.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.child_dir = ""
        self.token = f"{os.getpid()}-{os.urandom(6).hex()}"
        self.owner_fd = _create_locked(directory / f"{self.token}.owner", str(os.getpid()))
        try:
            self.group_fd = _high(_create_locked(directory / f"{self.token}.group", ""))
        except BaseException:
            os.close(self.owner_fd)
            _unlink(directory / f"{self.token}.owner")
            raise

    def make_child_dir(self, tmpdir: str | None) -> str:
        """A new private folder in ``tmpdir`` (the child's $TMPDIR, else /tmp), as the plugin's
        ``tempfile.mkdtemp`` would make it; "" when it cannot be (the plugin then makes one)."""
        base = tmpdir if tmpdir and os.path.isdir(tmpdir) else "/tmp"
        path = os.path.join(os.path.abspath(base), f"{CHILD_DIR_PREFIX}{os.urandom(6).hex()}")
        try:
            # named before it exists: a runner killed in between leaves no folder unnamed
            os.pwrite(self.owner_fd, f"{os.getpid()}\n{path}\n".encode(), 0)
            os.mkdir(path, 0o700)
        except OSError:
            return ""
        self.child_dir = path
        return path

    def spawned(self, pgid: int) -> None:
        """The child (leader of group ``pgid``) now holds the group lock alone."""
        if self.group_fd < 0:
            return
        with contextlib.suppress(OSError):
            os.pwrite(self.group_fd, f"{pgid}\n".encode(), 0)
        os.close(self.group_fd)
        self.group_fd = -1

    def close(self) -> None:
        """The run is over: forget it (its children's folder, then the group file: see
        ``reap_orphans``)."""
        if self.child_dir:
            _remove_child_dir(self.child_dir)
            self.child_dir = ""
        if self.group_fd >= 0:
            os.close(self.group_fd)
            self.group_fd = -1
        _unlink(self.directory / f"{self.token}.group")
        if self.owner_fd >= 0:
            _unlink(self.directory / f"{self.token}.owner")
            os.close(self.owner_fd)
            self.owner_fd = -1


# Where the descriptors a pytest child inherits from Maestro sit in it: above the low numbers
# pytest's own capture takes and programs use by convention (argcomplete writes its debug output
# to descriptor 9, then closes it), so that below them the child's descriptors are plain pytest's.
_HIGH_FD = 100


def _high(fd: int) -> int:
    """``fd`` moved to the lowest free descriptor from ``_HIGH_FD`` up (close-on-exec, as
    os.pipe's; a lock on its file is kept: the new descriptor shares its open file)."""
    try:
        moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, _HIGH_FD)
    except OSError:  # a descriptor limit below it: it stays where it is
        return fd
    os.close(fd)
    return moved


def _create_locked(path: Path, text: str) -> int:
    """A new file at ``path``, exclusively locked before it appears (renamed into place), so a
    reaper can never see it unlocked while its creator still means to hold it."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, text.encode())
        os.replace(tmp, path)
    except BaseException:
        os.close(fd)
        _unlink(tmp)
        raise
    return fd


def _remove_child_dir(path: str) -> None:
    if os.path.isabs(path) and os.path.basename(path).startswith(CHILD_DIR_PREFIX):
        import shutil

        shutil.rmtree(path, ignore_errors=True)


def _forget_owner(owner: Path) -> None:
    """Remove a dead runner's owner file and the children's folder it names."""
    with contextlib.suppress(OSError, UnicodeDecodeError):
        lines = owner.read_text().splitlines()
        if len(lines) > 1:
            _remove_child_dir(lines[1])
    _unlink(owner)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def _locked(fd: int) -> bool:
    """Whether another open file description holds a lock on the file (probe, then let go)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def _owner_alive(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        return _locked(fd)
    finally:
        os.close(fd)


def reap_orphans(directory: Path, *, wait_s: float = _ORPHAN_WAIT_S) -> list[int]:
    """SIGKILL the pytest groups in ``directory`` whose runner died, wait until they are gone,
    forget finished runs; returns the group ids it killed. Blocking (call it off the loop)."""
    try:
        names = sorted(os.listdir(directory))
    except FileNotFoundError:
        return []
    killed: list[int] = []
    for name in names:
        if not name.endswith(".group") or name.startswith("."):
            continue
        group = directory / name
        owner = directory / f"{name.removesuffix('.group')}.owner"
        try:
            fd = os.open(group, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            if _locked(fd) and _owner_alive(owner):
                continue  # a live runner's run
            if _locked(fd):
                text = os.pread(fd, 32, 0).decode(errors="replace").strip()
                # Held, so a member of that group is alive and its id cannot have been reused.
                if text.isdigit():
                    _log(
                        _WARNING,
                        "killing pytest process group %s, left running by a runner that died",
                        text,
                    )
                    _signal_group(int(text), signal.SIGKILL)
                    killed.append(int(text))
                deadline = time.monotonic() + wait_s
                while _locked(fd) and time.monotonic() < deadline:
                    time.sleep(0.02)
                if _locked(fd):
                    _log(_WARNING, "an orphaned pytest run (%s) still holds %s", text or "?", group)
                    continue
            if not _owner_alive(owner):
                _forget_owner(owner)
            _unlink(group)
        finally:
            os.close(fd)
    return killed


def _register_sync(root: Path) -> RunRecord | None:
    try:
        directory = runs_dir(root)
        reap_orphans(directory)
        return RunRecord(directory)
    except OSError as exc:
        _log(_WARNING, "cannot record the run in the workspace state dir: %s", exc)
        return None


def start_warm(
    root: Path, *, environ: Mapping[str, str] | None = None, likely_only: bool = True
) -> WarmPytest | None:
    """Start the pytest process of a run about to be planned (see ``WarmPytest``), from what is
    known before the graph: the configuration and the interpreter's path. None when it cannot
    be, or (``likely_only``) when the last in-process run was served whole from the cache; the
    run then starts its own. The settings' model is imported only when a file configures
    Maestro (a zero-config workspace's settings are the defaults)."""
    if likely_only and (workspace_state_dir(root) / ALL_CACHED).exists():
        return None  # the last run needed no process: this one most likely neither
    configured: str | None = None
    extra: tuple[str, ...] = ()
    try:
        if not unconfigured(root):
            from maestro.config import load_settings

            config = load_settings(root).config
            configured, extra = config.interpreter, tuple(config.env_allowlist)
        python, _ = find_interpreter_path(root, configured=configured, environ=environ)
    except MaestroError:
        return None  # the run reports it
    venv = python.parent.parent
    return WarmPytest.start(
        root,
        python,
        venv=venv if (venv / "pyvenv.cfg").is_file() else None,
        env_allowlist=allowlist_with(extra),
        environ=environ,
    )
