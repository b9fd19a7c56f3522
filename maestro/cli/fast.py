"""Entry point of the `maestro` command: `maestro test|impacted|why|stale` to a warm daemon.

The full CLI (typer, pydantic, every sub-command's imports) costs several hundred milliseconds
before it does anything; a no-change `maestro test` or an `impacted` answered by a warm daemon is
one RPC. So the console script starts here: when the command line is a plain `maestro test` (the
selection flags and `-- PYTEST_ARGS`; no paths, --junit-xml or --help), `maestro impacted [PATHS]
[--since REF] [--all]` or `maestro why TARGET FILE` (text output) and the workspace daemon is
already running, this module speaks the wire protocol (maestro/wire.py, daemon/transport/framing.py)
over a blocking socket with only the stdlib, msgpack and rich, and renders with the same functions
as the full CLI (maestro/cli/test_render.py, maestro/cli/graph_render.py): output and exit codes
are the same by construction.

Everything else, including "no daemon is running" and any refusal or error before the run
starts, goes to the full CLI (maestro/cli/app.py), which then does exactly what it always did;
but `graph stats` and `stale`, which the full CLI would compute in process, are computed here
without typer as well, and so is `explain TEST`, which no daemon answers.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, TextIO

from maestro.cli.launch import policy as policy
from maestro.cli.launch import runs_in_process as runs_in_process
from maestro.cli.launch import workspace as _workspace

if TYPE_CHECKING:
    import ast
    import socket

    from maestro.cli.test_render import Display
    from maestro.engine.runner import WarmPytest
    from maestro.errors import MaestroError

PROTOCOL_VERSION = 1
"""maestro.wire.PROTOCOL_VERSION, which this module must not import (pydantic); a test checks."""
REQUEST_ID = 1
CONNECT_TIMEOUT_S = 10.0
EXIT_INTERRUPTED = 2


def main(warm: WarmPytest | None = None) -> None:
    """The console script's command line; ``warm``: the pytest process an in-process `maestro
    test` started first (maestro/cli/launch.py), taken by the run or killed unused."""
    argv = sys.argv[1:]
    command = argv[0] if argv else ""
    with warm if warm is not None else contextlib.nullcontext():
        code = FAST_COMMANDS[command](argv) if command in FAST_COMMANDS else None
        if code is None and command == "test":
            code = plain_test(argv, warm)
        if code is None:
            from maestro.cli.app import main as full_cli

            full_cli(warm)
            return
    sys.exit(code)


# --- daemon policy (shared with maestro/cli/via_daemon.py) -----------------------------------


def may_start() -> bool:
    mode = policy()
    if mode == "start":
        return True
    interactive = sys.stdout.isatty() and sys.stdin.isatty()
    return mode == "auto" and interactive and not os.environ.get("CI")


def start_in_background(root: Path) -> None:
    """Spawn the workspace daemon without waiting for it (none is running or starting), when the
    policy allows one: after an in-process run, so that it builds its graph from what the run
    recorded and does not compete with the run for the CPU."""
    if not may_start():
        return
    import logging

    from maestro.daemon.address import DaemonPaths
    from maestro.daemon.lifecycle import lock_holder, spawn_daemon
    from maestro.errors import MaestroError

    try:
        paths = DaemonPaths.for_root(root)
        if lock_holder(paths.lock) is None:
            spawn_daemon(paths)
    except (OSError, MaestroError) as exc:  # the next command starts one the usual way
        logging.getLogger(__name__).debug("no daemon started in the background: %s", exc)


def client_env(root: Path) -> dict[str, str]:
    """This process's environment, cut to the workspace's allowlist (what pytest may see), the
    names of the variables it leaves out, and its active venv: the daemon finds the interpreter
    as this process would (the allowlist decides what pytest and the key see, not this)."""
    from maestro.envvars import (
        WITHHELD_ENV,
        allowlist_with,
        allowlisted_env,
        client_withheld,
        read_env_names,
    )
    from maestro.paths import workspace_state_dir

    state_dir = workspace_state_dir(root)
    extra = [*settings_allowlist(root, state_dir), *read_env_names(state_dir)]
    allowlist = allowlist_with(extra)
    env = dict(allowlisted_env(allowlist, os.environ))
    # the names (never the values) of the rest: the daemon tells the tests that read one
    if withheld := client_withheld(allowlist, os.environ):
        env[WITHHELD_ENV] = withheld
    if "VIRTUAL_ENV" in os.environ:
        env["VIRTUAL_ENV"] = os.environ["VIRTUAL_ENV"]
    return env


ALLOWLIST_MEMO = "settings-allowlist.json"


def settings_allowlist(root: Path, state_dir: Path) -> list[str]:
    """The workspace's ``env-allowlist`` setting. Validating the settings imports pydantic and
    builds their schema (about half this path's CPU); a configuration's text validated once is
    remembered in ``state_dir`` with its allowlist, keyed by that text (and this Maestro's
    settings code), so a run through the daemon validates it again only once it changed. An
    invalid one raises ConfigError as ever and is never remembered."""
    import hashlib
    import json

    from maestro import __version__, config
    from maestro.workspace import CONFIG_FILE, PYPROJECT, unconfigured

    if unconfigured(root):  # the defaults, nothing to validate
        return list(config.load_settings(root).config.env_allowlist)
    name = CONFIG_FILE if (root / CONFIG_FILE).is_file() else PYPROJECT

    def key() -> str | None:
        try:
            text = (root / name).read_bytes()
            own = os.stat(config.__file__)
        except OSError:
            return None
        parts = (__version__, str(own.st_size), str(own.st_mtime_ns), name)
        return hashlib.sha256("\0".join(parts).encode() + b"\0" + text).hexdigest()

    before = key()
    memo = state_dir / ALLOWLIST_MEMO
    try:
        data = json.loads(memo.read_bytes())
        data = data if isinstance(data, dict) else {}
        names = data.get("allowlist")
        if (
            before is not None
            and data.get("key") == before
            and isinstance(names, list)
            and all(isinstance(n, str) for n in names)
        ):
            return names
    except (OSError, ValueError):
        pass
    allowlist = list(config.load_settings(root).config.env_allowlist)
    if before is not None and key() == before:  # not edited while it was read
        tmp = memo.with_name(f"{ALLOWLIST_MEMO}.{os.getpid()}")
        with contextlib.suppress(OSError):
            tmp.write_text(json.dumps({"key": before, "allowlist": allowlist}))
            os.replace(tmp, memo)
    return allowlist


# --- command line ------------------------------------------------------------------------------


class TestArgs(NamedTuple):
    """The `maestro test` command lines this path serves; anything else returns None.

    (pytest would take a `Test*` class for tests, but a NamedTuple's `__new__` tells it not to.)"""

    impacted: bool = False
    since: str | None = None
    all_tests: bool = False
    no_cache: bool = False
    root: str | None = None
    pytest_args: tuple[str, ...] = ()
    no_daemon: bool = False
    junit_xml: str | None = None


def with_env_addopts(pytest_args: Sequence[str], environ: Mapping[str, str]) -> list[str]:
    """The run's pytest arguments as pytest reads its command line: the options of the user's
    ``PYTEST_ADDOPTS`` first, then the run's own (``-- ARGS``). The variable itself never
    reaches pytest (it steers the run: maestro/envvars.py), so its options are passed as the
    run's: keyed as they are, and a ``--ignore`` there leaves files out of the selection."""
    import shlex

    extra = environ.get("PYTEST_ADDOPTS", "")
    if not extra.strip():
        return list(pytest_args)
    try:
        return [*shlex.split(extra), *pytest_args]
    except ValueError as exc:
        from maestro.errors import PytestUsageError

        raise PytestUsageError(
            f"PYTEST_ADDOPTS cannot be read as pytest reads it: {exc}",
            hint="fix its quoting, or unset it (pytest refuses it too)",
        ) from exc


def junit_of(pytest_args: Sequence[str]) -> tuple[list[str], str | None]:
    """pytest's own ``--junitxml``/``--junit-xml`` among a run's pytest arguments (``-- ARGS``,
    ``PYTEST_ADDOPTS``) taken out, and its path (the last one given, as pytest takes it):
    Maestro writes that report itself, of the cached results and the fresh ones; the pytest
    process would write only the files it ran, and nothing when every file is cached."""
    out: list[str] = []
    path: str | None = None
    i = 0
    while i < len(pytest_args):
        arg = pytest_args[i]
        if arg == "--":  # pytest's own positional arguments follow
            out.extend(pytest_args[i:])
            break
        name, eq, value = arg.partition("=")
        if name in ("--junitxml", "--junit-xml") and (eq or i + 1 < len(pytest_args)):
            path = value if eq else pytest_args[i + 1]
            i += 1 if eq else 2
            continue
        out.append(arg)
        i += 1
    return out, path


# pytest's long options (its own and common plugins') that take no value: the argument after one
# is read on its own; after any other long option it may be that option's value
_LONG_FLAGS = frozenset(
    {
        "--exitfirst", "--verbose", "--quiet", "--showlocals", "--last-failed", "--failed-first",
        "--new-first", "--stepwise", "--sw", "--stepwise-skip", "--sw-skip", "--lf", "--ff",
        "--nf", "--pdb", "--trace", "--runxfail", "--strict", "--strict-markers",
        "--strict-config", "--no-header", "--no-summary", "--no-fold-skipped",
        "--disable-warnings", "--disable-pytest-warnings", "--full-trace", "--fulltrace",
        "--setup-only", "--setup-show", "--setup-plan", "--collect-only", "--co",
        "--continue-on-collection-errors", "--cache-clear", "--doctest-modules",
        "--doctest-continue-on-failure", "--doctest-ignore-import-errors", "--noconftest",
        "--keep-duplicates", "--version", "--help", "--trace-config", "--debug-config",
        "--fixtures", "--funcargs", "--fixtures-per-test", "--markers", "--no-cov",
        "--no-cov-on-fail", "--cov-append", "--cov-branch", "--looponfail", "--force-sugar",
    }
)  # fmt: skip
# pytest's short options that take none (any other may take the next argument)
_SHORT_FLAGS = frozenset("Vhlqsvx")


def paths_of(pytest_args: Sequence[str], root: Path | None = None) -> tuple[list[str], list[str]]:
    """The test paths and node ids among a run's pytest arguments (`maestro test -- -k slow
    tests/x.py`, as `pytest -k slow tests/x.py` is written), and the other arguments. pytest
    runs every path on its command line, so one left there would run beside the files Maestro
    chose: its outcomes outside Maestro's counts and report, and the whole project run besides.
    An argument that may be the value of an option not known here (a plugin's ``--foo bar``)
    stays with pytest, as does everything under ``--pyargs`` (module names, not paths); an
    option the workspace `root`'s own code declares without a value (a conftest's
    ``addoption("--fast", action="store_true")``) takes none here either."""
    if "--pyargs" in pytest_args:
        return [], list(pytest_args)
    paths: list[str] = []
    rest: list[str] = []
    value_next = False  # the next argument is (or may be) an option's value
    declared: frozenset[str] | None = None  # read once, when an unknown option needs it
    for i, arg in enumerate(pytest_args):
        if value_next:
            value_next = False
            rest.append(arg)
        elif arg == "--":  # pytest's own: every argument after it is a path
            paths.extend(pytest_args[i + 1 :])
            break
        elif arg.startswith("--"):
            rest.append(arg)
            value_next = "=" not in arg and arg not in _LONG_FLAGS
            if value_next and root is not None and i + 1 < len(pytest_args):
                if declared is None:
                    declared = declared_flags(root)
                value_next = arg not in declared
        elif arg.startswith("-") and len(arg) > 1:
            rest.append(arg)
            for j, char in enumerate(arg[1:], start=1):
                if char in _SHORT_FLAGS:
                    continue
                # a value attached (`-kslow`), or the next argument (`-k slow`); an option not
                # known here may take the next one too
                value_next = j == len(arg) - 1
                break
        else:
            paths.append(arg)
    return paths, rest


# argparse actions that take no value (pytest's parser is argparse's)
_NO_VALUE_ACTIONS = frozenset(
    {"store_true", "store_false", "store_const", "append_const", "count", "help", "version"}
)
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "build", "dist"})


def declared_flags(root: Path) -> frozenset[str]:
    """The long options declared to pytest without a value (``parser.addoption("--fast",
    action="store_true")``) by the workspace's own Python files (a conftest, a plugin module it
    lists) and by the pytest plugins installed beside Maestro (their ``pytest11`` entry
    points): pytest reads the argument after one as a path, so Maestro does too. Read from the
    source (no import), skipping hidden folders and virtual environments."""
    found: set[str] = set()
    for folder, dirs, files in os.walk(root):
        dirs[:] = [
            d
            for d in dirs
            if not d.startswith(".")
            and d not in _SKIPPED_DIRS
            and not (Path(folder, d) / "pyvenv.cfg").exists()
        ]
        for name in files:
            if name.endswith(".py"):
                found.update(_flags_in(Path(folder, name)))
    for path in _plugin_files():
        found.update(_flags_in(path))
    return frozenset(found)


def _plugin_files() -> list[Path]:
    """The source files of the installed pytest plugins' entry-point modules, found on
    sys.path without importing them (a plugin's package may import much)."""
    from importlib.metadata import entry_points

    out: list[Path] = []
    for point in entry_points(group="pytest11"):
        parts = point.module.split(".")
        for entry in sys.path:
            base = Path(entry or ".", *parts)
            hit = next(
                (p for p in (base.with_suffix(".py"), base / "__init__.py") if p.is_file()), None
            )
            if hit is not None:
                out.append(hit)
                break
    return out


def _flags_in(path: Path) -> list[str]:
    """The no-value long options one Python file declares with ``addoption``."""
    import ast

    try:
        source = path.read_bytes()
        if b"addoption" not in source:
            return []
        tree = ast.parse(source)
    except (OSError, SyntaxError, ValueError):
        return []
    # an option's name may be a module-level constant (hypothesis: `EXPLAIN_OPTION = "--..."`)
    names = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found: list[str] = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("addoption", "_addoption")
        ):
            found.extend(_no_value_options(node, names))
    return found


def _no_value_options(call: ast.Call, constants: Mapping[str, str]) -> list[str]:
    """The long option names of one ``addoption(...)`` call whose action takes no value
    (`constants`: the module's string constants, by name)."""
    import ast

    given = [
        a.value if isinstance(a, ast.Constant) else constants.get(a.id, "")
        for a in call.args
        if isinstance(a, ast.Constant | ast.Name)
    ]
    names = [n for n in given if isinstance(n, str) and n.startswith("--")]
    for keyword in call.keywords:
        if keyword.arg != "action":
            continue
        action = keyword.value
        if isinstance(action, ast.Constant) and action.value in _NO_VALUE_ACTIONS:
            return names
        if isinstance(action, ast.Attribute) and action.attr == "BooleanOptionalAction":
            return [*names, *(f"--no-{n[2:]}" for n in names)]
    return []


def parse_test_args(argv: Sequence[str]) -> TestArgs | None:
    if not argv or argv[0] != "test":
        return None
    args = list(argv[1:])
    pytest_args: list[str] = []
    if "--" in args:
        cut = args.index("--")
        args, pytest_args = args[:cut], args[cut + 1 :]
    flags = {"impacted": False, "all_tests": False, "no_cache": False, "no_daemon": False}
    values: dict[str, str | None] = {"since": None, "root": None, "junit-xml": None}
    names = {
        "--impacted": "impacted",
        "--all": "all_tests",
        "--no-cache": "no_cache",
        "--no-daemon": "no_daemon",
    }
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, value = arg.partition("=")
        if arg in names:
            flags[names[arg]] = True
        elif name in ("--since", "--root", "--junit-xml", "--junitxml"):
            if not eq:
                if i + 1 >= len(args) or args[i + 1].startswith("-"):
                    return None  # a missing value (or one typer reads otherwise)
                i += 1
                value = args[i]
            values["junit-xml" if name == "--junitxml" else name[2:]] = value
        else:  # paths, --predictive, --help, typos: the full CLI's business
            return None
        i += 1
    since, root, junit = values["since"], values["root"], values["junit-xml"]
    if "" in (since, root, junit) or (flags["all_tests"] and (flags["impacted"] or since)):
        return None  # the full CLI reports these
    return TestArgs(
        impacted=flags["impacted"],
        since=since,
        all_tests=flags["all_tests"],
        no_cache=flags["no_cache"],
        root=root,
        pytest_args=tuple(pytest_args),
        no_daemon=flags["no_daemon"],
        junit_xml=junit,
    )


def log_to_stderr() -> None:
    """Warnings of the in-process paths reach stderr redacted (commands that serve set their
    own handlers)."""
    import logging

    from maestro.redaction import RedactingFormatter

    class ToStderr(logging.StreamHandler[TextIO]):
        """To sys.stderr as it is when a record comes: while a progress bar shows, rich's
        stand-in, which prints the record above the bar instead of after it."""

        def emit(self, record: logging.LogRecord) -> None:
            self.stream = sys.stderr
            super().emit(record)

    handler = ToStderr(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(message)s"))  # as logging's last resort prints
    logging.basicConfig(level=logging.WARNING, handlers=[handler])


def plain_test(argv: Sequence[str], warm: WarmPytest | None) -> int | None:
    """`maestro test` for a command line :func:`parse_test_args` reads, without typer (its
    exit code); None for any other (the full CLI, which takes ``warm`` over)."""
    args = parse_test_args(argv)
    if args is None:
        return None
    from maestro.cli.test_run import run_test

    log_to_stderr()

    with warm if warm is not None else contextlib.nullcontext():
        return run_test(
            impacted=args.impacted,
            since=args.since,
            all_tests=args.all_tests,
            no_cache=args.no_cache,
            junit_xml=Path(args.junit_xml) if args.junit_xml is not None else None,
            root=Path(args.root) if args.root is not None else None,
            no_daemon=args.no_daemon,
            pytest_args=args.pytest_args,
            warm=warm,
        )


# --- connection ----------------------------------------------------------------------------------


class Connection:
    """A blocking client connection after a successful handshake."""

    def __init__(self, sock: socket.socket) -> None:
        from maestro.daemon.transport.framing import MAX_REPLY_FRAME, FrameDecoder

        self.sock = sock
        self._decoder = FrameDecoder(max_frame=MAX_REPLY_FRAME)
        self._frames: list[dict[str, Any]] = []

    def send(self, frame: Mapping[str, Any]) -> None:
        from maestro.daemon.transport.framing import encode_frame

        self.sock.sendall(encode_frame(frame))

    def receive(self) -> dict[str, Any] | None:
        """The next frame; None at end of stream. OSError / ProtocolError on a broken stream."""
        while not self._frames:
            data = self.sock.recv(2**16)
            if not data:
                self._decoder.eof()
                return None
            self._frames.extend(self._decoder.feed(data))
        return self._frames.pop(0)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def connect(root: Path) -> Connection | None:
    """A handshaken connection to the daemon already serving ``root``; None if there is none
    (or it answers anything but a hello reply in our protocol): the full CLI then decides."""
    from maestro import __version__
    from maestro.daemon.address import running_socket
    from maestro.errors import MaestroError

    try:
        path = running_socket(root)
    except MaestroError:
        return None
    if not path.exists():  # no daemon: not even the socket module is needed
        return None
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONNECT_TIMEOUT_S)
    conn = Connection(sock)
    try:
        sock.connect(os.fspath(path))
        hello = {"type": "hello", "protocol": PROTOCOL_VERSION, "maestro_version": __version__}
        conn.send({**hello, "client": "cli"})
        reply = conn.receive()
    except (OSError, MaestroError):
        conn.close()
        return None
    if not (
        isinstance(reply, dict)
        and reply.get("type") == "hello_reply"
        and reply.get("protocol") == PROTOCOL_VERSION
    ):
        conn.close()
        return None
    sock.settimeout(None)  # a run takes as long as the tests do
    return conn


# --- maestro test --------------------------------------------------------------------------------


def fast_test(argv: Sequence[str]) -> int | None:
    """Run `maestro test` through a running daemon: its exit code, or None for the full CLI."""
    args = parse_test_args(argv)
    if args is None or args.no_daemon or policy() == "off":
        return None
    from maestro.errors import MaestroError

    workspace = _workspace(args.root)
    if workspace is None:
        return None
    try:
        env = client_env(workspace)
        pytest_args, junit_path = junit_of(with_env_addopts(args.pytest_args, os.environ))
    except MaestroError:
        return None
    if paths_of(pytest_args, workspace)[0]:
        return None  # paths among pytest's arguments: the full CLI's business, as paths are
    scope = test_scope(workspace, args)
    conn = connect(workspace)
    if conn is None:
        return None
    params: dict[str, Any] = {
        "paths": [scope] if scope else [],
        "impacted": args.impacted or args.since is not None,
        "since": args.since,
        "buffers": None,
        "no_cache": args.no_cache,
        "pytest_args": pytest_args,
        "env": env,
        "answers_env": True,
    }
    junit_path = args.junit_xml if args.junit_xml is not None else junit_path
    junit = Path(junit_path) if junit_path is not None else None
    with conn:
        return _run(conn, workspace, params, scope, junit)


def test_scope(workspace: Path, args: TestArgs) -> str | None:
    """The folder a plain `maestro test` is limited to: the current one when it is inside the
    project (pytest's behaviour from a subfolder), unless --root, --all, --impacted or --since
    asked about the whole project."""
    from maestro.cli.scope import subfolder

    if args.root is not None or args.all_tests or args.impacted or args.since is not None:
        return None
    return subfolder(workspace)


class _Error(NamedTuple):
    """A domain error the full CLI would report (after the display is closed)."""

    exc: MaestroError


class _Failed(NamedTuple):
    """The daemon gave up: an error frame, or the connection broke."""

    error: dict[str, Any] | None = None
    lost: str = ""


def _run(
    conn: Connection,
    workspace: Path,
    params: dict[str, Any],
    scope: str | None,
    junit: Path | None = None,
) -> int:
    from maestro.cli.consoles import console
    from maestro.cli.test_render import Display, final_exit_code, print_summary, report_chars

    try:
        with Display(impacted=bool(params["impacted"]), scope=scope) as display:
            conn.send(
                {"type": "request", "id": REQUEST_ID, "method": "run_tests", "params": params}
            )
            received = _receive(conn, display)
            if isinstance(received, _Failed):
                answer = _after_failure(received, workspace, params, display)
            else:
                answer = received
            display.finish()
    except KeyboardInterrupt:
        with contextlib.suppress(OSError):  # the daemon stops the pytest process group
            conn.send({"type": "cancel", "id": REQUEST_ID})
        console.print("[bold yellow]interrupted[/]: nothing from the unfinished run was cached")
        return EXIT_INTERRUPTED
    if isinstance(answer, _Error):
        from maestro.cli import test_cmd
        from maestro.errors import UnknownTargetError

        if scope and isinstance(answer.exc, UnknownTargetError):
            from maestro.cli.test_render import no_tests_in_scope

            return no_tests_in_scope(scope)
        return test_cmd.report_failure(answer.exc)
    unwritten: MaestroError | None = None
    if junit is not None:  # as the full CLI (maestro/cli/test_run.py): before the summary
        from maestro.cli.test_run import write_junit
        from maestro.errors import ReportWriteError

        files = [(f.get("result"), bool(f.get("cached")), f.get("served") or ()) for f in
                 answer.get("files") or []]  # fmt: skip
        try:
            write_junit(junit, files)
        except ReportWriteError as exc:  # said after the run's summary, which stands
            unwritten = exc
    print_summary(answer, report=report_chars(params.get("pytest_args") or ()))
    if unwritten is not None:
        from maestro.cli import test_cmd

        return test_cmd.report_failure(unwritten)
    return final_exit_code(answer, impacted=bool(params["impacted"]))


def _receive(conn: Connection, display: Display) -> dict[str, Any] | _Failed:
    from maestro.errors import ProtocolError

    while True:
        try:
            frame = conn.receive()
        except ProtocolError as exc:
            return _Failed(lost=f"the daemon sent an invalid frame: {exc.message}")
        except OSError as exc:
            return _Failed(lost=f"connection to the daemon lost: {exc}")
        if frame is None:
            return _Failed(lost="the daemon closed the connection")
        kind, rid = frame.get("type"), frame.get("id")
        if kind == "event" and rid == REQUEST_ID:
            payload = frame.get("payload")
            payload = payload if isinstance(payload, dict) else {}
            if frame.get("event") == "run.env_wanted":
                try:
                    _give_env(conn, payload.get("names"))
                except OSError as exc:
                    return _Failed(lost=f"connection to the daemon lost: {exc}")
            display.daemon_event(str(frame.get("event")), payload)
        elif kind == "response" and rid in (REQUEST_ID, 0):
            error, result = frame.get("error"), frame.get("result")
            if isinstance(error, dict):
                return _Failed(error=error)
            if isinstance(result, dict) and rid == REQUEST_ID:
                return result
            return _Failed(lost="the daemon sent an invalid response")


def _give_env(conn: Connection, names: object) -> None:
    """Answer the run's ``run.env_wanted``: its test files read these variables, which this
    environment sets and the request left out; the daemon runs them again with the values."""
    wanted = [n for n in names if isinstance(n, str)] if isinstance(names, list) else []
    given = {n: os.environ[n] for n in wanted if n in os.environ}
    params = {"run": REQUEST_ID, "env": given}
    conn.send({"type": "request", "id": REQUEST_ID + 1, "method": "provide_env", "params": params})


def _after_failure(
    failed: _Failed, workspace: Path, params: dict[str, Any], display: Display
) -> dict[str, Any] | _Error:
    """What the full CLI does when the daemon fails mid-call (maestro/cli/via_daemon.py): a
    transport-type failure is a note and an in-process run; a domain error is reported."""
    from maestro.cli import test_cmd, via_daemon
    from maestro.errors import ConnectionLostError, DaemonNotRunningError, MaestroError
    from maestro.wire import ErrorInfo, RunTestsParams, error_from_info

    exc: MaestroError
    if failed.error is not None:
        exc = error_from_info(ErrorInfo.model_validate(failed.error))
    else:
        exc = ConnectionLostError(failed.lost)
    if via_daemon.recoverable(exc):
        if not isinstance(exc, DaemonNotRunningError):
            via_daemon.fallback_note(exc)
        display.reset()
        run_params = RunTestsParams.model_validate(params)
        try:
            result = test_cmd.run_in_process(workspace, run_params, display)
        except MaestroError as error:
            return _Error(error)
        return result.model_dump(mode="json")
    return _Error(exc)


# --- maestro impacted / maestro why --------------------------------------------------------------


class GraphArgs(NamedTuple):
    """The `maestro impacted` / `maestro why` command lines this path serves."""

    positional: tuple[str, ...] = ()
    since: str | None = None
    show_all: bool = False
    root: str | None = None


def parse_graph_args(argv: Sequence[str], *, flags: Sequence[str]) -> GraphArgs | None:
    """Positional arguments and the options in ``flags`` (of --since, --all, --root); anything
    else (--json, --no-daemon, --help, "--", typos) is the full CLI's business: None."""
    positional: list[str] = []
    values: dict[str, str | None] = {"--since": None, "--root": None}
    show_all = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        name, eq, value = arg.partition("=")
        if arg.startswith("-") and arg != "-":
            if arg == "--all" and "--all" in flags:
                show_all = True
            elif name in values and name in flags:
                if not eq:
                    if i + 1 >= len(argv):
                        return None
                    i += 1
                    value = argv[i]
                if not value:
                    return None
                values[name] = value
            else:
                return None
        else:
            positional.append(arg)
        i += 1
    return GraphArgs(tuple(positional), values["--since"], show_all, values["--root"])


def _relative(workspace: Path, paths: Sequence[str]) -> list[str] | None:
    """Paths relative to the workspace, as the full CLI sends them; None when one is outside
    it or its name is not UTF-8 (the full CLI reports or drops those with a message)."""
    from maestro.errors import MaestroError
    from maestro.names import is_utf8
    from maestro.workspace import normalize

    try:
        rels = [normalize(workspace, p) for p in paths]
    except MaestroError:
        return None
    return rels if all(is_utf8(r) for r in rels) else None


def _ask(workspace: Path, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    """The running daemon's result for one request; None when none runs, or on any error or
    refusal, which the full CLI then meets (and reports, or computes in process) as always."""
    if policy() == "off":
        return None
    conn = connect(workspace)
    if conn is None:
        return None
    with conn:
        return _request(conn, method, params)


def _daemon_answer(
    workspace: Path, no_daemon: bool, method: str, params: dict[str, Any]
) -> tuple[bool, dict[str, Any] | None]:
    """(True, answer) from a running daemon; (True, None) for the full CLI to handle (it starts
    a daemon for the next command, or meets the daemon's failure and reports it); (False, None)
    to answer in this process: no daemon asked for, and none would be started."""
    if no_daemon or policy() == "off":
        return False, None
    conn = connect(workspace)
    if conn is None:
        return may_start(), None
    with conn:
        return True, _request(conn, method, params)


def _request(conn: Connection, method: str, params: dict[str, Any]) -> dict[str, Any] | None:
    from maestro.errors import MaestroError

    try:
        conn.send({"type": "request", "id": REQUEST_ID, "method": method, "params": params})
        while True:
            frame = conn.receive()
            if frame is None:
                return None
            if frame.get("type") == "response" and frame.get("id") in (REQUEST_ID, 0):
                result = frame.get("result")
                ok = frame.get("error") is None and frame.get("id") == REQUEST_ID
                return result if ok and isinstance(result, dict) else None
    except (OSError, MaestroError):  # a broken stream (ProtocolError is a MaestroError)
        return None


def fast_impacted(argv: Sequence[str]) -> int | None:
    """`maestro impacted` through a running daemon: its exit code, or None for the full CLI."""
    from maestro.cli.graph_render import SHOWN, render_impacted

    args = parse_graph_args(argv[1:], flags=("--since", "--all", "--root"))
    if args is None or (args.positional and args.since is not None):
        return None
    workspace = _workspace(args.root)
    if workspace is None:
        return None
    paths = _relative(workspace, args.positional) if args.positional else None
    if args.positional and paths is None:
        return None
    params = {
        "paths": paths,
        "since": args.since,
        "hops": None if args.show_all else SHOWN,
        "why": False,  # the text prints the structured chains, never the one-line `why`
    }
    report = _ask(workspace, "impacted", params)
    if report is None:
        return None
    render_impacted(report, show_all=args.show_all)
    return 0


def fast_why(argv: Sequence[str]) -> int | None:
    """`maestro why TARGET FILE` through a running daemon: its exit code, or None."""
    from maestro.cli.graph_render import render_why

    args = parse_graph_args(argv[1:], flags=("--root",))
    if args is None or len(args.positional) != 2:
        return None
    workspace = _workspace(args.root)
    if workspace is None:
        return None
    from maestro.names import is_utf8

    target, path = args.positional
    if target.startswith("//"):  # a declared target is a name, not a path
        rels = _relative(workspace, [path])
        rels = [target, *rels] if rels is not None and is_utf8(target) else None
    else:
        file, sep, node = target.partition("::")  # a pytest node id: its file part is the path
        rels = _relative(workspace, [file, path])
        if rels is not None and sep:
            rels = [rels[0] + sep + node, rels[1]] if is_utf8(node) else None
    if rels is None:
        return None
    report = _ask(workspace, "why", {"target": rels[0], "path": rels[1]})
    if report is None:
        return None
    return render_why(report)


# --- maestro graph stats -------------------------------------------------------------------------


def stats_in_process(workspace: Path, *, targets: bool, check_syntax: bool) -> dict[str, Any]:
    """`graph stats` computed in this process (both routes: no daemon, or --no-daemon), in its
    JSON form (maestro.graph.stats: no model layer to import)."""
    from maestro.engine.collect_probe import learn_collected_now
    from maestro.graph.build import BuildGraph
    from maestro.graph.stats import stats_data
    from maestro.paths import graph_index_path

    graph = BuildGraph.build(workspace, index_path=graph_index_path(workspace))  # saves the index
    learn_collected_now(graph)  # the test files a conftest collects or ignores itself
    report = stats_data(graph, with_targets=targets, check_syntax=check_syntax)
    if check_syntax:  # keep the verdicts
        graph.save()
    return report


def fast_graph_stats(argv: Sequence[str]) -> int | None:
    """`maestro graph stats` without typer: from a running daemon, or in process when the full
    CLI would compute it there too (no daemon, and none it would start); None otherwise."""
    if list(argv[:2]) != ["graph", "stats"]:
        return None
    flags = {"--targets": False, "--json": False, "--check-syntax": False, "--no-daemon": False}
    rest: list[str] = []
    for arg in argv[2:]:
        if arg in flags:
            flags[arg] = True
        else:
            rest.append(arg)
    args = parse_graph_args(rest, flags=("--root",))
    if args is None or args.positional:
        return None
    workspace = _workspace(args.root)
    if workspace is None:
        return None
    from maestro.errors import MaestroError

    targets, check_syntax, as_json = flags["--targets"], flags["--check-syntax"], flags["--json"]
    params = {"targets": targets, "check_syntax": check_syntax}
    asked, report = _daemon_answer(workspace, flags["--no-daemon"], "graph_stats", params)
    if asked:
        if report is None:
            return None  # the full CLI's business
        if as_json:  # the stable JSON is printed from a validated answer
            from maestro.reports import GraphStatsReport

            report = GraphStatsReport.model_validate(report).model_dump(by_alias=True)
    else:
        try:
            report = stats_in_process(workspace, targets=targets, check_syntax=check_syntax)
        except MaestroError:
            return None  # reported by the full CLI, which fails the same way
    from maestro.cli.graph_render import print_stats

    print_stats(workspace, report, as_json=as_json)
    return 0


# --- maestro stale ------------------------------------------------------------------------------


def stale_data(workspace: Path, pytest_args: Sequence[str] = ()) -> dict[str, Any]:
    """`maestro stale` computed in this process (both routes: no daemon, or --no-daemon), as the
    JSON form of the daemon's StaleResult (maestro/wire.py; the daemon's `stale` builds the same
    rows from the same Engine.stale)."""
    from contextlib import closing

    from maestro.engine.core import Engine

    with closing(Engine.open(workspace)) as engine:
        found = engine.stale(pytest_args)
    rows = [
        {"target": f.target, "reason": f.reason or "", "changed": list(f.changed),
         "describe": f.describe()}
        for f in found
    ]  # fmt: skip
    return {"schema": "maestro.stale/1", "stale": rows, "tests": len(engine.graph.tests)}


def stale_scope(workspace: Path, named: Sequence[str]) -> list[str]:
    """The test files and folders `maestro stale -- PATHS` names (a node id's file part),
    relative to the workspace as `maestro test` reads them; one outside it kept as given."""
    from maestro.errors import WorkspaceError
    from maestro.workspace import normalize

    out: list[str] = []
    for raw in named:
        path, sep, _ = raw.partition("::")
        try:
            rel = normalize(workspace, path)
        except WorkspaceError:
            rel = path
        out.append("" if rel == "." and sep else rel)
    return out


def _stale_shape(report: Mapping[str, Any]) -> bool:
    rows = report.get("stale")
    keys = (("target", str), ("reason", str), ("changed", list), ("describe", str))
    return (
        isinstance(rows, list)
        and isinstance(report.get("tests", 0), int)
        and all(isinstance(r, dict) and all(isinstance(r.get(k), t) for k, t in keys)
                for r in rows)
    )  # fmt: skip


def _with_flags(
    argv: Sequence[str], names: Sequence[str]
) -> tuple[dict[str, bool], GraphArgs | None, list[str]]:
    """A command line of a command taking pytest arguments after `--` (split there, as
    maestro/cli/test_cmd.py's TestCommand splits it): the flags in ``names`` given before it,
    the positional arguments and --root (None for anything else), and the arguments after it."""
    head, tail = list(argv[1:]), []
    if "--" in head:
        cut = head.index("--")
        head, tail = head[:cut], head[cut + 1 :]
    flags = dict.fromkeys(names, False)
    rest: list[str] = []
    for arg in head:
        if arg in flags:
            flags[arg] = True
        else:
            rest.append(arg)
    return flags, parse_graph_args(rest, flags=("--root",)), tail


def fast_stale(argv: Sequence[str]) -> int | None:
    """`maestro stale [--json] [--no-daemon] [--root R] [-- PYTEST_ARGS]` without typer: from a
    running daemon, or in process when the full CLI would compute it there too (no daemon, and
    none it would start); None otherwise (the full CLI then does what it always did)."""
    flags, args, tail = _with_flags(argv, ("--json", "--no-daemon"))
    if args is None or args.positional:
        return None
    workspace = _workspace(args.root)
    if workspace is None:
        return None
    from maestro.errors import MaestroError

    try:  # read as `maestro test` reads them: the paths choose the files, and they and its
        # --junitxml are no pytest arguments of a file's key
        given = with_env_addopts(tail, os.environ)
        named, pytest_args = paths_of(junit_of(given)[0], workspace)
    except MaestroError:
        return None  # reported by the full CLI
    params = {"pytest_args": pytest_args}
    asked, report = _daemon_answer(workspace, flags["--no-daemon"], "stale", params)
    if asked:
        if report is None or not _stale_shape(report):
            return None  # the full CLI's business
    else:
        try:
            report = stale_data(workspace, pytest_args)
        except MaestroError:
            return None  # reported by the full CLI, which fails the same way
    from maestro.cli.test_render import print_stale

    print_stale(report, as_json=flags["--json"], scope=stale_scope(workspace, named))
    return 0


# --- maestro explain TEST ------------------------------------------------------------------------


def fast_explain(argv: Sequence[str]) -> int | None:
    """`maestro explain TEST [--record] [--json] [--root R] [-- PYTEST_ARGS]` without typer: in
    process, as the full CLI computes it (no daemon answers it); None for any other command line
    (--execution, --help, no TEST) and on any error, which the full CLI then reports."""
    flags, args, tail = _with_flags(argv, ("--json", "--record"))
    if args is None or len(args.positional) != 1:
        return None
    workspace = _workspace(args.root)
    if workspace is None:
        return None
    from maestro.cli.explain_cmd import Refused, explain_test
    from maestro.errors import MaestroError

    try:  # everything is computed before anything is printed
        explain_test(
            workspace, args.positional[0], tail, record=flags["--record"], as_json=flags["--json"]
        )
    except (Refused, MaestroError):
        return None
    return 0


FAST_COMMANDS: dict[str, Callable[[Sequence[str]], int | None]] = {
    "test": fast_test,
    "impacted": fast_impacted,
    "why": fast_why,
    "graph": fast_graph_stats,
    "stale": fast_stale,
    "explain": fast_explain,
}
