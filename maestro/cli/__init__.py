"""The `maestro` command line."""

import sys


def main() -> None:
    """Console-script entry: the lean fast path (maestro/cli/fast.py), else the typer CLI.

    Nothing is imported at package import time, so `maestro test` through a warm daemon never
    loads typer or pydantic. A library Maestro imports that does not import (this venv's copy
    is the project being edited, and broken) is told as the user's error, not as a crash."""
    try:
        _main()
    except (ImportError, SyntaxError) as exc:
        from maestro.errors import broken_dependency

        error = broken_dependency(exc)
        if error is None:
            raise
        # plain text: the library that failed may be one the console needs
        sys.stderr.write(f"error: {error}\n")
        sys.stderr.flush()
        exit_now(3)


def _main() -> None:
    if sys.argv[1:2] != ["test"]:
        from maestro.cli.fast import main as entry

        entry()
        return
    # pytest's process first, so that the CLI's imports overlap its start (maestro/cli/launch.py)
    from maestro.cli.launch import prestart

    warm = prestart(sys.argv[1:])
    from maestro.cli.fast import main as entry

    try:
        entry(warm)
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            exit_now(exc.code or 0)
        raise
    exit_now(0)


def exit_now(code: int) -> None:
    """End the process once its work is done, without the interpreter's finalization: tearing
    down every module and object a test run loaded (graph, results, pydantic's schemas) takes
    longer than some short suites. Output is flushed and ``atexit`` handlers run as usual (a
    recorder of a test that started this process writes its record there); only when a
    non-daemon thread is still at work does the process exit the usual way, which joins it."""
    import threading

    if any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        sys.exit(code)
    import atexit
    import contextlib
    import os

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: lost either way
            stream.flush()
    os._exit(code)


__all__ = ["main"]
