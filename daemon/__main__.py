"""`python -m maestro.daemon <root>`: the detached per-workspace daemon process."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from maestro.daemon.lifecycle import run_daemon


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maestro.daemon")
    parser.add_argument("root", type=Path, help="workspace root")
    args = parser.parse_args(argv)
    return run_daemon(args.root)


if __name__ == "__main__":
    sys.exit(main())
