"""Snapshot and restore of the coordinator store: the same drill as `maestro cache`.

A snapshot is a compacted, transactionally consistent `env.copy` (`data.mdb`) plus a manifest:
the data file's sha256, entry counts, and a sha256 chained over every entry (kind, key, value
hash) in key order. Taking one re-hashes every CAS blob against its key and checks every AC
record's checksum, refusing to write a snapshot of damaged data; restoring checks the file hash
while copying into a staging directory, then re-verifies every entry and the chained digest
before the staging directory is renamed into place. A damaged or altered snapshot is refused
and the live store is left untouched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lmdb
from pydantic import ValidationError

from maestro.cache.files import (
    FILE_MODE,
    DataFileManifest,
    create_private,
    data_file_facts,
    restore_staged,
)
from maestro.errors import CoordinatorError, IntegrityError

from .records import CorruptRecordError, decode_ac
from .store import DB_NAMES, Store

FORMAT: Literal["maestro-coordinator-snapshot/1"] = "maestro-coordinator-snapshot/1"
DATA_FILE = "data.mdb"
MANIFEST_FILE = "manifest.json"


class SnapshotManifest(DataFileManifest):
    format: Literal["maestro-coordinator-snapshot/1"] = FORMAT
    tenants: int
    keys: int
    cas_entries: int
    ac_entries: int
    entries_sha256: str
    """sha256 over `kind key-hex value-sha256` lines of every entry, in key order."""


@dataclass(frozen=True, slots=True)
class SnapshotRestoreReport:
    cas_entries: int
    ac_entries: int
    target: Path
    replaced: Path | None


def _scan(env_dir: Path) -> tuple[dict[str, int], str]:
    """Verify every entry of the environment at `env_dir`; counts and the chained digest."""
    env = lmdb.open(
        str(env_dir), readonly=True, lock=False, max_dbs=len(DB_NAMES) + 1, map_size=1 << 40
    )
    try:
        dbs = {name: env.open_db(name.encode(), create=False) for name in DB_NAMES}
        chain = hashlib.sha256()
        counts = {"cas": 0, "ac": 0, "tenants": 0, "keys": 0}
        with env.begin() as txn:
            for kind in ("cas", "ac"):
                for full, value in txn.cursor(db=dbs[kind]):
                    value_hash = hashlib.sha256(value).digest()
                    if kind == "cas" and value_hash != full[4:]:
                        raise IntegrityError(f"CAS entry {full.hex()} does not match its hash")
                    if kind == "ac":
                        try:
                            decode_ac(value)
                        except CorruptRecordError as exc:
                            raise IntegrityError(
                                f"AC entry {full.hex()} is damaged: {exc}"
                            ) from exc
                    chain.update(f"{kind} {full.hex()} {value_hash.hex()}\n".encode())
                    counts[kind] += 1
            counts["tenants"] = txn.stat(dbs["tenants"])["entries"]
            counts["keys"] = txn.stat(dbs["keys"])["entries"]
        return counts, chain.hexdigest()
    except lmdb.Error as exc:
        raise IntegrityError(f"cannot read the store copy at {env_dir}: {exc}") from exc
    finally:
        env.close()


SNAPSHOT_DIR_MODE = 0o700
"""A snapshot holds every tenant's entries and key records: its owner alone may enter it."""


def take_snapshot(store: Store, dest: Path) -> SnapshotManifest:
    if dest.exists() and any(dest.iterdir()):
        raise CoordinatorError(f"{dest} is not empty", hint="snapshot into a new directory")
    # the directory is private before anything is written in it, so files LMDB creates with
    # the umask's mode are out of reach until they are tightened below
    dest.mkdir(parents=True, exist_ok=True, mode=SNAPSHOT_DIR_MODE)
    dest.chmod(SNAPSHOT_DIR_MODE)
    store.copy_to(dest)
    counts, chain = _scan(dest)
    data = dest / DATA_FILE
    manifest = SnapshotManifest(
        **data_file_facts(data),
        tenants=counts["tenants"],
        keys=counts["keys"],
        cas_entries=counts["cas"],
        ac_entries=counts["ac"],
        entries_sha256=chain,
    )
    with create_private(dest / MANIFEST_FILE) as fh:
        fh.write(manifest.model_dump_json(indent=2).encode())
    for path in dest.iterdir():
        path.chmod(FILE_MODE)
    return manifest


def restore_snapshot(src: Path, target: Path, *, force: bool = False) -> SnapshotRestoreReport:
    try:
        manifest = SnapshotManifest.model_validate_json((src / MANIFEST_FILE).read_bytes())
    except OSError as exc:
        raise CoordinatorError(f"no readable manifest in {src}: {exc.strerror}") from exc
    except ValidationError as exc:
        raise IntegrityError(f"invalid snapshot manifest in {src}: {exc}") from exc
    if target.exists() and not force:
        raise CoordinatorError(
            f"a store already exists at {target}", hint="stop the server and pass --force"
        )

    def check(staged: Path) -> None:
        counts, chain = _scan(staged)
        if (counts["cas"], counts["ac"], chain) != (
            manifest.cas_entries,
            manifest.ac_entries,
            manifest.entries_sha256,
        ):
            raise IntegrityError("snapshot entries differ from the manifest")

    refuse = f"refusing to restore from {src}"
    replaced = restore_staged(src / DATA_FILE, manifest, refuse, target, check)
    return SnapshotRestoreReport(manifest.cas_entries, manifest.ac_entries, target, replaced)
