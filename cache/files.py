"""Files of the snapshot drill, shared by the cache and the coordinator: a file created private,
a data file hashed (and copied) in one pass and checked against its manifest, and the restore:
a staged copy, checked, swapped into place."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, TypedDict

from pydantic import BaseModel, ConfigDict

import maestro
from maestro.errors import IntegrityError

from .layout import DATA_FILE
from .layout import FILE_MODE as FILE_MODE

_CHUNK = 1 << 20


class DataFileManifest(BaseModel):
    """What every snapshot manifest says of its data file; each drill adds its own counts."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    created_at: datetime
    maestro_version: str
    data_sha256: str
    data_bytes: int


class DataFileFacts(TypedDict):
    """The DataFileManifest fields of a data file written now, to build a manifest from."""

    created_at: datetime
    maestro_version: str
    data_sha256: str
    data_bytes: int


def data_file_facts(path: Path) -> DataFileFacts:
    return DataFileFacts(
        created_at=datetime.now(UTC),
        maestro_version=maestro.__version__,
        data_sha256=sha256_file(path),
        data_bytes=path.stat().st_size,
    )


def create_private(path: Path) -> BinaryIO:
    """A new file only its owner can read (FILE_MODE from the start, never briefly looser)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    return os.fdopen(fd, "wb")


def sha256_file(path: Path, copy_to: Path | None = None) -> str:
    """The file's sha256 hex; with `copy_to`, also a private, fsynced copy written meanwhile, so
    the hash describes exactly the bytes copied."""
    hasher = hashlib.sha256()
    with path.open("rb") as src:
        dst = create_private(copy_to) if copy_to is not None else None
        try:
            while chunk := src.read(_CHUNK):
                hasher.update(chunk)
                if dst is not None:
                    dst.write(chunk)
            if dst is not None:
                dst.flush()
                os.fsync(dst.fileno())
        finally:
            if dst is not None:
                dst.close()
    return hasher.hexdigest()


def check_data_file(
    path: Path, manifest: DataFileManifest, refuse: str, copy_to: Path | None = None
) -> None:
    """Size and sha256 of a snapshot's data file against its manifest, copying it to `copy_to`
    meanwhile (what is checked is what was copied); IntegrityError, after `refuse`, if not."""
    if not path.is_file():
        raise IntegrityError(f"{refuse}: {path.name} is missing")
    if path.stat().st_size != manifest.data_bytes:
        raise IntegrityError(f"{refuse}: {path.name} has the wrong size")
    if sha256_file(path, copy_to=copy_to) != manifest.data_sha256:
        raise IntegrityError(
            f"{refuse}: {path.name} does not match the manifest's sha256",
            hint="the snapshot was altered or damaged; use another snapshot",
        )


def restore_staged(
    data_file: Path,
    manifest: DataFileManifest,
    refuse: str,
    target: Path,
    check: Callable[[Path], None],
) -> Path | None:
    """Restore a snapshot's `data_file` to the directory `target`: copied into a staging
    directory beside it while checked against `manifest`, `check` run on the staged copy (it
    raises IntegrityError on what it refuses), then installed. The target is touched only once
    every check passed; a previous one is moved aside (not deleted) and returned."""
    with staging_dir(target) as staging:
        check_data_file(data_file, manifest, refuse, staging / DATA_FILE)
        check(staging)
        return install_staged(staging, target)


@contextmanager
def staging_dir(target: Path) -> Iterator[Path]:
    """A fresh private directory beside `target`, removed again if the block fails: whatever is
    verified there is installed by `install_staged`, so the target is touched only at the end."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.restore-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(mode=0o700)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def install_staged(staging: Path, target: Path) -> Path | None:
    """Rename `staging` to `target`; a previous target is moved aside (not deleted) and returned."""
    replaced = None
    if target.exists():
        replaced = target.parent / f"{target.name}.replaced-{int(time.time())}"
        target.rename(replaced)
    staging.rename(target)
    return replaced
