"""Watch a workspace with watchfiles and hand coalesced batches of changed paths to a callback.

The filter drops what can never change a graph answer (VCS internals, virtualenvs, byte-code,
tool caches, the daemon's own state dir) and what .gitignore hides, so a `pip install` into .venv
or a pytest run writing __pycache__ does not wake the daemon. watchfiles already groups events
that arrive within ``step_ms`` of each other (up to ``debounce_ms``); a branch switch that
rewrites hundreds of files therefore arrives as one batch and costs one graph update.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from maestro.graph.files import NOISE_DIRS, kept_by_pytest, kept_when_gitignored

if TYPE_CHECKING:
    import pathspec
    import watchfiles

    from maestro.graph.pytest_config import PytestConfig

log = logging.getLogger(__name__)
logging.getLogger("watchfiles").setLevel(logging.WARNING)  # one INFO line per batch otherwise

Batch = Callable[[set[str]], None]
"""Called on the daemon's loop with each batch; must not block."""

DEFAULT_STEP_MS = 30
"""Quiet time that ends a batch: the floor of the save -> answer latency."""
DEFAULT_DEBOUNCE_MS = 1600
"""Longest a continuous burst is held before a batch is yielded anyway."""
RESTART_AFTER_S = 5.0
"""Pause before a failed watch is set up again (each set-up walks the whole tree)."""


@dataclass
class IgnoreRules:
    """Which paths of the workspace never matter: noise directories, excluded dirs, .gitignore.

    .gitignore files are read once per directory and re-read when a .gitignore itself changes.
    A path .gitignore hides still matters when pytest, which reads no .gitignore, collects or
    loads it (the walk keeps it: graph/files.py), as ``pytest`` (the graph's configuration,
    asked each time: an edit of it changes the answer) says.
    """

    root: Path
    excluded: tuple[Path, ...] = ()
    pytest: Callable[[], PytestConfig | None] | None = None
    _specs: dict[str, pathspec.PathSpec[Any] | None] = field(default_factory=dict)
    _keeps: tuple[PytestConfig | None, Callable[[str, bool], bool] | None] = (None, None)
    _venvs: set[str] = field(default_factory=set)

    def relative(self, path: str, *, directory: bool = False) -> str | None:
        """Root-relative posix path, or None when outside the root or ignored. A
        ``directory`` .gitignore hides matters where pytest's walk looks for tests."""
        for ex in self.excluded:
            if path == str(ex) or path.startswith(str(ex) + os.sep):
                return None
        try:
            rel = Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return None
        if rel in ("", "."):
            return None
        parts = rel.split("/")
        if any(p in NOISE_DIRS or p.endswith(".egg-info") for p in parts[:-1]):
            return None
        name = parts[-1]
        if name in NOISE_DIRS or name.endswith((".pyc", ".pyo", "~", ".swp", ".swx")):
            return None
        if name.startswith(".#") or name == "4913":  # emacs lock files, vim's write probe
            return None
        if self._gitignored(parts, directory) and not self._kept(rel, parts, directory):
            return None
        return rel

    def _kept(self, rel: str, parts: list[str], directory: bool) -> bool:
        """Whether pytest uses the hidden path ``rel`` all the same (outside any virtual
        environment, which its walk skips)."""
        config = self.pytest() if self.pytest is not None else None
        if config is None:
            return False
        if self._keeps[0] is not config:
            self._keeps = (config, kept_by_pytest(config))
        keeps = self._keeps[1]
        assert keeps is not None
        return keeps(rel, directory) and not self._in_venv(parts)

    def _in_venv(self, parts: list[str]) -> bool:
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            if folder in self._venvs:
                return True
            full = self.root / folder
            if (full / "pyvenv.cfg").is_file() or (full / "conda-meta" / "history").is_file():
                self._venvs.add(folder)  # a venv stays one; a folder may become one
                return True
        return False

    def forget(self, rel: str) -> None:
        """A .gitignore changed: drop its cached spec."""
        self._specs.pop(rel.rsplit("/", 1)[0] if "/" in rel else "", None)

    def _spec(self, directory: str) -> pathspec.PathSpec[Any] | None:
        if directory not in self._specs:
            from maestro.graph.files import _gitignore

            self._specs[directory] = _gitignore(str(self.root / directory))
        return self._specs[directory]

    def _gitignored(self, parts: list[str], directory: bool = False) -> bool:
        for depth in range(len(parts)):
            spec = self._spec("/".join(parts[:depth]))
            if spec is None:
                continue
            rest = parts[depth:]
            # a directory pattern ("build/") matches the directory prefix, not the file
            for i in range(1, len(rest)):
                if spec.match_file("/".join(rest[:i]) + "/"):
                    return True
            if directory and spec.match_file("/".join(rest) + "/"):
                return True
            if spec.match_file("/".join(rest)) and not kept_when_gitignored(parts[-1]):
                return True
        return False


class Watcher:
    """Runs ``watchfiles.awatch`` on the root and calls ``on_batch`` with relative paths.

    awatch runs in its own thread with its own event loop: setting up recursive watches on a
    large tree takes 0.1-0.2 s of synchronous work that must not stall the daemon's loop (it
    would delay the first answer after a restart). Batches are handed to the daemon's loop.

    A failed watch (the inotify limit; watchfiles raises on any event for a file name that is
    not UTF-8, dropping the batch it was collecting) is set up again after a pause. Changes in
    between are not reported: ``ready`` is cleared and ``on_lost`` called, on the daemon's loop,
    so the owner finds them another way until ``ready`` is set again.
    """

    def __init__(
        self,
        root: Path,
        on_batch: Batch,
        *,
        excluded: tuple[Path, ...] = (),
        step_ms: int = DEFAULT_STEP_MS,
        debounce_ms: int = DEFAULT_DEBOUNCE_MS,
        on_lost: Callable[[], None] | None = None,
        pytest: Callable[[], PytestConfig | None] | None = None,
    ) -> None:
        self.root = root
        self.rules = IgnoreRules(root, tuple(p.resolve() for p in excluded), pytest)
        self.on_batch = on_batch
        self.on_lost = on_lost
        self.step_ms = step_ms
        self.debounce_ms = debounce_ms
        self.batches = 0
        self.ready = asyncio.Event()
        """Set (on the daemon's loop) once every later change is guaranteed to be reported."""
        self._main: asyncio.AbstractEventLoop | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    def _filter(self, change: watchfiles.Change, path: str) -> bool:
        return self.rules.relative(path) is not None

    def start(self) -> None:
        self._main = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._thread_main, name="watcher", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # its loop already closed
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)

    def _thread_main(self) -> None:
        asyncio.run(self._run())

    def _to_main(self, func: Callable[[], object]) -> None:
        if self._main is not None and not self._main.is_closed():
            with contextlib.suppress(RuntimeError):
                self._main.call_soon_threadsafe(func)

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        while not self._stop.is_set():
            try:
                await self._watch(self._stop)
            except Exception as exc:
                self._to_main(self._lost)
                undecodable = _undecodable_name(exc)
                if undecodable is not None:
                    log.warning(
                        "file watcher stopped on a file name that is not UTF-8 (%s); restarting "
                        "it in %.0f s (rename the file to a UTF-8 name)", undecodable,
                        RESTART_AFTER_S,
                    )  # fmt: skip
                else:  # e.g. inotify watch limit reached: say it loudly
                    log.exception("file watcher failed; restarting it in %.0f s", RESTART_AFTER_S)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), RESTART_AFTER_S)

    def _lost(self) -> None:
        """On the daemon's loop: changes go unreported until the next watch is ready."""
        self.ready.clear()
        if self.on_lost is not None:
            self.on_lost()

    async def _watch(self, stop: asyncio.Event) -> None:
        import watchfiles  # with anyio, ~30 ms: in the watcher's thread, after the first answer

        log.info("watching %s (step %d ms)", self.root, self.step_ms)
        changes_iter = watchfiles.awatch(
            self.root,
            watch_filter=self._filter,
            step=self.step_ms,
            debounce=self.debounce_ms,
            stop_event=stop,
            recursive=True,
        )
        pending = asyncio.ensure_future(anext(changes_iter))
        # One loop turn runs the generator up to its first wait: by then its RustNotify watches
        # the tree, so whatever is read from disk afterwards cannot miss a change.
        await asyncio.sleep(0)
        self._to_main(self.ready.set)
        try:
            while True:
                try:
                    changes = await pending
                except StopAsyncIteration:
                    return
                batch = self._relatives(changes)
                if batch:
                    self.batches += 1
                    log.debug("watcher batch %d: %d paths", self.batches, len(batch))
                    self._to_main(functools.partial(self.on_batch, batch))
                pending = asyncio.ensure_future(anext(changes_iter))
        finally:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await changes_iter.aclose()

    def _relatives(self, changes: set[tuple[watchfiles.Change, str]]) -> set[str]:
        # a name that is not UTF-8 never gets here (watchfiles fails on it instead, see above)
        rels: set[str] = set()
        for _, path in changes:
            rel = self.rules.relative(path)
            if rel is None:
                continue
            if rel.endswith(".gitignore"):
                self.rules.forget(rel)
            rels.add(rel)
        return rels


def _undecodable_name(exc: BaseException) -> BaseException | None:
    """watchfiles' error for an event on a path it cannot decode (its Rust side wants UTF-8),
    as raised or inside the exception group of awatch's task group."""
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _undecodable_name(inner)
            if found is not None:
                return found
        return None
    if type(exc).__name__ == "WatchfilesRustInternalError" and "decode path" in str(exc):
        return exc
    return None
