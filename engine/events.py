"""Pydantic models of the JSON-line events the injected pytest plugin writes.

The child runs arbitrary workspace code in another interpreter, so its output is a trust boundary:
every line is validated here before the runner acts on it. Unknown fields are ignored (the plugin
may grow); an unknown event name or another protocol version is rejected by ``parse_event``.
"""

from __future__ import annotations

import functools
import logging
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

log = logging.getLogger(__name__)

EVENTS_VERSION = 1

Outcome = Literal["passed", "failed", "skipped", "error", "xfailed", "xpassed"]
# pytest times a test with the clock functions its timing module holds, which a test may patch
# (freezegun, time-machine): a test that winds them back gets a negative duration from pytest,
# and its result is still the test's
Duration = Annotated[float, AfterValidator(lambda seconds: max(seconds, 0.0))]
Phase = Literal["collect", "setup", "call", "teardown"]


class _Model(BaseModel):
    # Validators are built on first use, not at import: `maestro test` imports this module before
    # its pytest process has its run, and parses the first event only after that.
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class _Event(_Model):
    v: Literal[1]


class Location(_Model):
    """A workspace-relative posix path and a 1-based line."""

    path: str
    line: int | None = None


class SessionStart(_Event):
    event: Literal["session_start"]
    pytest_version: str
    python_version: str
    implementation: str = "cpython"
    platform: str
    machine: str = ""
    rootdir: str
    pid: int


class CollectError(_Model):
    path: str
    message: str
    longrepr: str = ""


class Collected(_Event):
    event: Literal["collected"]
    files: dict[str, list[str]]
    errors: list[CollectError] = []
    polluters: list[str] = []  # files whose collection changed the warnings filters
    # test file -> the workspace modules whose state its collection changed (a registry)
    state: dict[str, list[str]] = {}
    state_new: dict[str, list[str]] = {}  # test file -> the workspace modules it imported first
    observed: list[str] = []  # the test files whose collection was watched for that
    deselected: list[str] = []  # collected, then dropped by the runner's selection
    user_deselected: dict[str, int] = {}  # test file -> its tests the user's -k, -m deselected

    @property
    def nodeids(self) -> list[str]:
        return [nodeid for ids in self.files.values() for nodeid in ids]


class TestStart(_Event):
    __test__: ClassVar[bool] = False  # not a pytest test class

    event: Literal["test_start"]
    nodeid: str


class TestResult(_Event):
    """Outcome of one test; failure fields are set only for ``failed`` and ``error``."""

    __test__: ClassVar[bool] = False

    event: Literal["test_result"]
    nodeid: str
    outcome: Outcome
    when: Phase | None = None
    duration_s: Duration
    location: Location | None = None
    message: str | None = None
    test_line: int | None = None
    raised_at: Location | None = None
    longrepr: str | None = None
    stdout: str = ""
    stderr: str = ""
    also: list[Outcome] = Field(default_factory=list)  # counted too (a teardown's error)
    subtests_passed: int = 0  # its subtests that passed (pytest counts them apart)
    addressable: bool = True  # pytest finds it by its node id (no "::" inside a name)
    # the runner's, not the plugin's: the tests of a node id collected several times, in run
    # order, when this result stands for all of them
    each: list[TestResult] = Field(default_factory=list)


class ModuleDep(_Model):
    name: str
    path: str


class FileDeps(_Event):
    """What one test file depended on beyond its imports (collection and run, its tests' child
    processes, the higher-scoped fixtures it used, conftest import-time reads in its scope):
    workspace files opened, modules first imported, ``external`` absolute paths (code outside
    the workspace and the installed environment, programs run) and ``opaque``: why some of what
    it read cannot be known (a non-Python child process, a Python child without a record)."""

    event: Literal["file_deps"]
    path: str
    files: list[str]
    collected: list[str] = []
    """Those of ``files`` read while the file was collected (its module's top level, its
    parametrize lists): every node depends on them, whichever node also read them."""
    modules: list[ModuleDep]
    external: list[str] = []
    opaque: list[str] = []
    functions: dict[str, list[str]] = {}
    """Workspace file -> functions run while this file was collected (its module's own top
    level, parametrize lists, collection hooks) and while any file was collected that ran
    some of the same code. Imports of workspace modules are in ``session_trace``."""
    env: list[str] = []
    """The variables its collection or tests read by name through ``os.environ`` and found
    unset (pytest's own reads and steering variables aside), and the user's own variables
    (``HOME``, ``USER`` ...: maestro/envvars.py ``KEYED_WHEN_READ``) it read, set or not,
    through ``os.environ``, its iteration, tempfile's or ``tmp_path``'s folder, a program it
    started, an extension module's C code, or a higher-scoped fixture it used."""


class TestTrace(_Event):
    """What one test node executed (after its ``test_result``): functions under the rootdir as
    workspace file -> qualified names (``co_qualname``; lambdas and comprehensions reported as
    the function holding them), and the workspace files it opened for reading. Includes the code
    and files of higher-scoped fixtures it uses, even when set up by an earlier test."""

    __test__: ClassVar[bool] = False

    event: Literal["test_trace"]
    nodeid: str
    functions: dict[str, list[str]] = {}
    files: list[str] = []
    opaque: list[str] = []
    params: dict[str, int] | None = None
    """Parametrized fixture function (``<workspace file>::<name>``) -> the index of its
    ``params`` element the node got, -1 when unknown; None: no record."""


class SessionTrace(_Event):
    """Functions executed outside any test (imports, collection, conftest, plugin set-up), and
    how tracing was done: ``monitoring`` (sys.monitoring, 3.12+) or ``profile`` (sys.setprofile)."""

    event: Literal["session_trace"]
    mode: str
    functions: dict[str, list[str]] = {}
    lines: dict[str, dict[str, list[int]]] = {}
    """File -> function -> the lines it ran, for the functions run outside the tests whose
    lines were recorded from their first start (3.12+); the others have no line record."""


class SessionEnd(_Event):
    """``written``: workspace files opened for writing during the session (by the tests or
    their child processes): what the run wrote itself is no input of it."""

    event: Literal["session_end"]
    exitstatus: int
    duration_s: float
    written: list[str] = []
    import_reads: dict[str, list[str]] = {}
    """Workspace module -> files its code read (at import, or later: a module that memoises
    what it read serves it to every later test that uses it), and the workspace modules its
    code imported (by a computed name too)."""
    env: list[str] = []
    """The variables read by name and found unset outside every test file (conftest, plugins,
    session fixtures' teardown), and the user's own read there, set or not (as in
    ``FileDeps.env``): read for every file."""
    modules: dict[str, list[str]] = {}
    """Top-level import name -> the workspace files (or files outside every interpreter key)
    its modules in ``sys.modules`` were loaded from at the session's end; a zip on
    ``sys.path`` stands for the modules imported from it."""
    installed: list[str] = []
    """Top-level names of the modules loaded from installed packages (site-packages)."""
    warnings: dict[str, int] = {}
    """Node id -> the warnings pytest recorded while the test ran (its summary counts them)."""
    collect_warnings: dict[str, int] = {}
    """Workspace file a warning raised while collecting points at -> how many; "" for the
    others (pytest's configuration, code outside the workspace)."""
    rewrite_warnings: int = 0
    """pytest's warnings about the asserts of the modules it rewrote (not in the others)."""
    warning_texts: list[tuple[str, int, list[str], dict[str, int]]] = []
    """The warnings recorded as pytest's "warnings summary" words them, by message (the warning
    formatted with its source line; the first few hundred messages): how many, their locations
    (the node id or ``path:line``; the first ten) and how many by file; none when the run's
    arguments turn that summary off."""
    configure_warnings: list[str] = []
    """The warnings raised in ``pytest_configure`` implementations, as Python printed them on
    pytest's error output (no part of its summary, nor of its count)."""
    ran_state: dict[str, list[str]] = {}
    """Test file -> the workspace modules its tests left changed (a registry filled or
    cleared): what the tests of the files after it see (engine/pollution.py)."""
    ran_names: dict[str, dict[str, list[str]]] = {}
    """The same -> each such module -> the names of the values they changed (a module-level
    name, ``Class.attr`` for a class's attribute)."""


Event = Annotated[
    SessionStart
    | Collected
    | TestStart
    | TestResult
    | TestTrace
    | FileDeps
    | SessionTrace
    | SessionEnd,
    Field(discriminator="event"),
]


@functools.cache
def _adapter() -> TypeAdapter[Event]:
    return TypeAdapter(Event)


def prepare() -> None:
    """Build the validators now: a long-lived process does it while idle, before its first run
    (a one-shot `maestro test` builds them at its first event, once pytest has its run)."""
    _adapter()


def parse_event(line: bytes | str) -> Event | None:
    """One validated event, or None (logged) for a line that is not a valid v1 event."""
    try:
        return _adapter().validate_json(line)
    except ValidationError as exc:
        log.warning("skipping invalid plugin event %.200r: %s", line, exc.errors()[:1])
        return None
