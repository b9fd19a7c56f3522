"""Change sources from git: the working tree (incl. untracked and deleted files) or `--since REF`.

Paths come back relative to the workspace root (which may be a sub-directory of the repository).
Old contents are fetched lazily and only where they matter (section-aware global inputs).

Names are read NUL-separated (-z: never quoted, whatever core.quotePath says) and decoded with
os.fsdecode, so a name that is not UTF-8 comes back exact (os.fsencode gives its bytes).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from maestro.errors import GitError

Status = Literal["modified", "added", "deleted"]


@dataclass(frozen=True, slots=True)
class GitChange:
    path: str  # relative to the workspace root, posix
    status: Status
    base: str | None  # the commit the old content is read from; None if there is none


def _git(root: Path, *args: str, check: bool = True) -> bytes:
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, timeout=60, check=False
        )
    except FileNotFoundError as exc:
        raise GitError("git is not installed", hint="install git, or pass changed paths") from exc
    except subprocess.TimeoutExpired as exc:
        raise GitError(f"git {' '.join(args)} timed out after 60 s") from exc
    if check and proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(
            f"git {args[0]} failed: {message[-1] if message else proc.returncode}",
            where=str(root),
            hint="is this a git repository, and does the ref exist? (`git log --oneline -1 REF`)",
        )
    return proc.stdout


def _prefix(root: Path) -> str:
    """The workspace root's path inside the repository ('' at the top)."""
    # printed raw (not quoted) and ending in "/" unless empty: only the newline is not the name's
    return os.fsdecode(_git(root, "rev-parse", "--show-prefix")).removesuffix("\n")


def _relativize(prefix: str, repo_path: str) -> str | None:
    if not prefix:
        return repo_path
    return repo_path[len(prefix) :] if repo_path.startswith(prefix) else None


def _head(root: Path) -> str | None:
    out = _git(root, "rev-parse", "--verify", "-q", "HEAD", check=False).decode().strip()
    return out or None


def working_tree_changes(root: Path) -> list[GitChange]:
    """Uncommitted changes against HEAD, including untracked (not ignored) and deleted files."""
    prefix = _prefix(root)
    head = _head(root)
    raw = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames", ".")
    changes: list[GitChange] = []
    for record in raw.split(b"\0"):
        if len(record) < 4:
            continue
        code, repo_path = record[:2].decode(), os.fsdecode(record[3:])
        rel = _relativize(prefix, repo_path)
        if rel is None:
            continue
        if "D" in code:
            status: Status = "deleted"
        elif code == "??" or "A" in code:
            status = "added"
        else:
            status = "modified"
        changes.append(GitChange(rel, status, head if status != "added" else None))
    return changes


def changes_since(root: Path, ref: str) -> list[GitChange]:
    """Everything that differs from the merge-base of REF and HEAD: commits, the working tree,
    and untracked files (what a branch changes, as a PR review sees it plus local edits)."""
    if not ref.strip() or ref.startswith("-"):  # git would read "--output=x" as an option
        raise GitError(
            f"{ref!r} is not a git ref", where=str(root), hint="pass a branch, tag or commit"
        )
    prefix = _prefix(root)
    base = _git(root, "merge-base", ref, "HEAD").decode().strip()
    raw = _git(root, "diff", "--name-status", "-z", "--no-renames", base, "--", ".")
    fields = raw.split(b"\0")
    changes: list[GitChange] = []
    for code, path in zip(fields[0::2], fields[1::2], strict=False):
        rel = _relativize(prefix, os.fsdecode(path))
        if rel is None:
            continue
        letter = code.decode()[:1]
        status: Status = {"D": "deleted", "A": "added"}.get(letter, "modified")  # type: ignore[assignment]
        changes.append(GitChange(rel, status, base if status != "added" else None))
    untracked = _git(root, "ls-files", "--others", "--exclude-standard", "-z", ".")
    for path in untracked.split(b"\0"):
        if path:
            rel = _relativize(prefix, os.fsdecode(path))
            if rel is not None:
                changes.append(GitChange(rel, "added", None))
    return changes


def old_content(root: Path, change: GitChange) -> bytes | None:
    """The file's content at the change's base commit (None if it did not exist there)."""
    if change.base is None:
        return None
    prefix = _prefix(root)
    out = _git(root, "show", f"{change.base}:{prefix}{change.path}", check=False)
    return out if out or change.status != "added" else None


def is_repository(root: Path) -> bool:
    return bool(_git(root, "rev-parse", "--is-inside-work-tree", check=False).strip() == b"true")
