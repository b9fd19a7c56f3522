"""A tenant's usage in the coordinator's store (a real LMDB): a new entry counts once, a
replaced one (a new AC value, a corrupt blob put again) is charged only its change in bytes."""

from __future__ import annotations

import hashlib
from pathlib import Path

from maestro.coordinator.records import AcRecord
from maestro.coordinator.store import Store


def test_new_entries_count_once_and_replacements_charge_their_change(tmp_path: Path) -> None:
    with Store(tmp_path / "store", map_size=1 << 26) as store:
        tenant = store.add_tenant("acme")
        blob = b"x" * 1000
        key = hashlib.sha256(blob).digest()
        assert store.put_cas(tenant, key, blob)
        assert not store.put_cas(tenant, key, blob)  # already stored: nothing charged
        first = AcRecord(raw=False, value=b"v" * 100, refs=((key, len(blob)),))
        second = AcRecord(raw=False, value=b"w" * 40, refs=((key, len(blob)),))
        store.put_ac(tenant, b"k" * 32, first)
        store.put_ac(tenant, b"k" * 32, second)  # replaces the first
        usage = store.usage(tenant)
        assert (usage.cas_entries, usage.ac_entries) == (1, 1)
        assert usage.bytes == len(blob) + len(second.encode())

        # a blob damaged on disk, then uploaded again: repaired in place, still one entry
        with store.env.begin(write=True, db=store._db["cas"]) as txn:
            txn.put(tenant.prefix + key, b"y" * len(blob))  # bits flipped in place
        assert store.put_cas(tenant, key, blob)
        assert store.get_cas(tenant, key) == blob
        usage = store.usage(tenant)
        assert (usage.cas_entries, usage.ac_entries) == (1, 1)
        assert usage.bytes == len(blob) + len(second.encode())
