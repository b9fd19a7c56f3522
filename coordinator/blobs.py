"""Where cache entries live: the embedded LMDB store, or an existing cache server upstream.

`BlobBackend` is what request handlers call. Both implementations return only verified bytes:
a CAS blob is served only if it hashes to its key, an AC record only if its own checksum holds
(and, for validated tenants, every blob it references is present with the right size).

- `LmdbBlobs` (default): the embedded store; usage is charged in the same LMDB write
  transaction as the entry, so quota checks are exact.
- `HttpBlobs`: an upstream speaking the Bazel HTTP cache protocol (bazel-remote started with
  `--disable_http_ac_validation`, or any WebDAV-style server accepting `PUT`, e.g. nginx with
  `dav_methods PUT DELETE`). Tenancy stays in the coordinator: every entry is stored under
  `<upstream>/t<tenant id>/ac/<sha256(tag | tenant id | kind | key)>`, a name derived from the
  tenant's never-reused id, so tenants cannot collide in an upstream that ignores path prefixes
  (bazel-remote does), and the upstream never sees a client's digest. Everything goes under
  `/ac/` because upstream CAS validation would refuse derived names; integrity is ours anyway:
  blobs are re-hashed on every GET, AC records carry their own sha256. Corrupt upstream entries
  are logged, counted, answered as misses and deleted (best effort; the next PUT re-uploads).
  Usage is charged in the StateBackend before the upload and refunded if it fails; two replicas
  uploading the same new entry at once may both charge it (usage errs high, never low).
  With `lru` (eviction.RedisLru: `upstream_eviction = true`), writes and hits are recorded in
  Redis, and `evict` deletes a tenant's least recently used entries to make room under its
  quota. Small CAS blobs read from the upstream are kept in memory (`SmallBlobCache`, after
  their hash checked) for a few seconds: a blob read again and again (an interactive client's
  hot set) costs no upstream round trip, and past half its TTL a read has the upstream asked
  in the background whether it still holds it (a HEAD), so it is not awaited on the request
  path either, where an upstream busy writing other tenants' uploads answers late. What is
  kept is content-addressed and verified, so the only effect of keeping it is that a blob
  deleted upstream stays readable through this replica for at most the TTL after the
  upstream last said it held it. Reads of one blob at once share one upstream GET.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Container
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from typing import Any, Protocol

import aiohttp

from maestro.errors import CoordinatorError

from .eviction import RedisLru
from .records import AcRecord, CorruptRecordError, TenantRecord, decode_ac
from .state import StateBackend
from .store import EMPTY_SHA256, CasView, Store

log = logging.getLogger(__name__)
_FOUND_OR_NOT = frozenset({200, 404})
_STORED = frozenset({200, 201, 204})

INLINE_HASH_BYTES = 256 << 10
"""Blobs up to this size are hashed on the event loop (256 KiB takes well under a millisecond
on a quiet core); larger ones in the pool, where hashlib releases the GIL."""

OnCorrupt = Callable[[TenantRecord, str], None]
UNKNOWN = -1
"""`put_cas(held=...)`: the caller did not just ask for the blob's size."""


class UpstreamError(CoordinatorError):
    """The blob upstream failed or is unreachable (HTTP 502 to the client)."""

    code = "upstream_unavailable"


class BlobBackend(Protocol):
    name: str
    on_corrupt: OnCorrupt
    """Called with (tenant, kind) when an entry fails verification (metrics)."""

    async def cas_size(self, tenant: TenantRecord, key: bytes) -> int | None: ...

    async def get_cas(self, tenant: TenantRecord, key: bytes) -> bytes | None:
        """The verified blob; None when absent or corrupt."""
        ...

    async def put_cas(
        self, tenant: TenantRecord, key: bytes, data: bytes | bytearray, held: int | None = UNKNOWN
    ) -> bool:
        """Store a blob already verified to hash to `key`; False if it was present. `held`:
        the size `cas_size` just answered, when the caller asked (None: absent)."""
        ...

    async def get_ac(self, tenant: TenantRecord, key: bytes) -> bytes | None: ...

    async def put_ac(self, tenant: TenantRecord, key: bytes, record: AcRecord) -> None: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


def _ignore(tenant: TenantRecord, kind: str) -> None:
    pass


async def sha256_of(data: bytes | bytearray | memoryview, executor: Executor | None) -> bytes:
    if len(data) <= INLINE_HASH_BYTES or executor is None:
        return hashlib.sha256(data).digest()
    return await asyncio.get_running_loop().run_in_executor(
        executor, lambda: hashlib.sha256(data).digest()
    )


class LmdbBlobs:
    """Entries in the embedded store; reads up to INLINE_HASH_BYTES run inline."""

    name = "lmdb"

    def __init__(self, store: Store, executor: Executor) -> None:
        self.store = store
        self.executor = executor
        self.on_corrupt: OnCorrupt = _ignore

    async def _run(self, func: Callable[[], object]) -> object:
        return await asyncio.get_running_loop().run_in_executor(self.executor, func)

    async def cas_size(self, tenant: TenantRecord, key: bytes) -> int | None:
        return self.store.cas_size(tenant, key)

    def _read(self, tenant: TenantRecord, key: bytes) -> tuple[bytes | None, bool]:
        before = self.store.corrupt_found
        data = self.store.get_cas(tenant, key)
        return data, data is None and self.store.corrupt_found != before

    async def open_cas(self, tenant: TenantRecord, key: bytes) -> CasView | None:
        """Large blobs without copying them out of the map: verified in the pool (hashlib
        releases the GIL), then written to the socket straight from the mmap."""
        view: CasView | None
        before = self.store.corrupt_found
        view = await asyncio.get_running_loop().run_in_executor(
            self.executor, self.store.open_cas, tenant, key
        )
        if view is None and self.store.corrupt_found != before:
            self.on_corrupt(tenant, "cas")
        return view

    async def get_cas(self, tenant: TenantRecord, key: bytes) -> bytes | None:
        size = self.store.cas_size(tenant, key)  # a few microseconds on the mmap
        if size is None:
            return None
        if size <= INLINE_HASH_BYTES:
            data, corrupt = self._read(tenant, key)
        else:
            data, corrupt = await asyncio.get_running_loop().run_in_executor(
                self.executor, self._read, tenant, key
            )
        if corrupt:
            self.on_corrupt(tenant, "cas")
        return data

    async def put_cas(
        self, tenant: TenantRecord, key: bytes, data: bytes | bytearray, held: int | None = UNKNOWN
    ) -> bool:
        stored: bool = await asyncio.get_running_loop().run_in_executor(
            self.executor, self._put_cas, tenant, key, data
        )
        return stored

    def _put_cas(self, tenant: TenantRecord, key: bytes, data: bytes | bytearray) -> bool:
        return self.store.put_cas(tenant, key, data, verified=True)

    async def get_ac(self, tenant: TenantRecord, key: bytes) -> bytes | None:
        before = self.store.corrupt_found
        value = self.store.get_ac(tenant, key)  # small records; referenced blobs by length
        if value is None and self.store.corrupt_found != before:
            self.on_corrupt(tenant, "ac")
        return value

    async def put_ac(self, tenant: TenantRecord, key: bytes, record: AcRecord) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self.executor, self.store.put_ac, tenant, key, record
        )

    async def ping(self) -> None:
        self.store.list_tenants()

    async def close(self) -> None:
        """The store is closed by whoever opened it."""


_TAG = b"maestro-coordinator/1\0"


def upstream_path(tenant: TenantRecord, kind: str, key: bytes) -> str:
    """`t<tenant id>/ac/<derived sha256>`: where an entry lives under the upstream base URL."""
    name = hashlib.sha256(_TAG + tenant.prefix + kind.encode() + b"\0" + key).hexdigest()
    return f"t{tenant.id}/ac/{name}"


class SmallBlobCache:
    """Verified CAS blobs up to `max_entry` bytes, by (tenant id, digest), least recently used
    dropped past `max_bytes` in all, each kept at most `ttl_s` after it was read upstream."""

    def __init__(
        self,
        max_bytes: int,
        *,
        max_entry: int = 64 << 10,
        ttl_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_bytes = max_bytes
        self.max_entry = max_entry
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[tuple[int, bytes], tuple[float, bytes]] = OrderedDict()
        self._bytes = 0

    def get(self, tenant: TenantRecord, key: bytes) -> bytes | None:
        entry = self._entries.get((tenant.id, key))
        if entry is None:
            return None
        if self._clock() - entry[0] >= self.ttl_s:
            self.drop(tenant, key)
            return None
        self._entries.move_to_end((tenant.id, key))
        return entry[1]

    def aging(self, tenant: TenantRecord, key: bytes) -> bool:
        """Kept for more than half its TTL: time to ask the upstream again (in the background)."""
        entry = self._entries.get((tenant.id, key))
        return entry is not None and self._clock() - entry[0] >= self.ttl_s / 2

    def renew(self, tenant: TenantRecord, key: bytes, read_at: float) -> None:
        """The upstream still held the blob at `read_at`: keep it for a TTL from then."""
        entry = self._entries.get((tenant.id, key))
        if entry is not None and read_at > entry[0]:
            self._entries[(tenant.id, key)] = (read_at, entry[1])

    def put(self, tenant: TenantRecord, key: bytes, data: bytes, read_at: float) -> None:
        if len(data) > self.max_entry or len(data) > self.max_bytes:
            return
        self.drop(tenant, key)
        self._entries[(tenant.id, key)] = (read_at, data)
        self._bytes += len(data)
        while self._bytes > self.max_bytes:
            _, (_, old) = self._entries.popitem(last=False)
            self._bytes -= len(old)

    def drop(self, tenant: TenantRecord, key: bytes) -> None:
        entry = self._entries.pop((tenant.id, key), None)
        if entry is not None:
            self._bytes -= len(entry[1])

    def now(self) -> float:
        return self._clock()


class HttpBlobs:
    """Entries on an upstream Bazel-HTTP-cache server; see the module docstring."""

    name = "http"

    def __init__(
        self,
        base_url: str,
        state: StateBackend,
        executor: Executor,
        *,
        timeout_s: float = 30.0,
        max_connections: int = 64,
        small_blobs: SmallBlobCache | None = None,
    ) -> None:
        self.base = base_url.rstrip("/")
        self.state = state
        self.executor = executor
        self.on_corrupt: OnCorrupt = _ignore
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, sock_connect=5.0)
        self._max_conn = max_connections
        self._session: aiohttp.ClientSession | None = None
        self.lru: RedisLru | None = None
        self.small = small_blobs
        """Recency and sizes in Redis, for eviction under quota (None: PUT answers 507)."""
        self._fetching: dict[tuple[int, bytes], asyncio.Task[bytes | None]] = {}
        """CAS reads on their way from the upstream: a read of the same blob meanwhile waits
        for that one instead of sending its own."""
        self._renewing: dict[tuple[int, bytes], asyncio.Task[None]] = {}

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=self._max_conn, keepalive_timeout=30),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    def url(self, tenant: TenantRecord, kind: str, key: bytes) -> str:
        return f"{self.base}/{upstream_path(tenant, kind, key)}"

    @asynccontextmanager
    async def _request(
        self, method: str, url: str, ok: Container[int], **kwargs: Any
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """An upstream response whose status is in `ok`; any other status, and a transport
        failure (also while the caller reads the body), is an UpstreamError."""
        try:
            async with self._http().request(method, url, **kwargs) as resp:
                if resp.status not in ok:
                    raise UpstreamError(f"upstream {method} answered HTTP {resp.status}")
                yield resp
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"upstream unreachable: {exc!r}") from None

    async def _size(self, url: str) -> int | None:
        async with self._request("HEAD", url, _FOUND_OR_NOT) as resp:
            if resp.status == 404:
                return None
            length = resp.headers.get("Content-Length")
            return int(length) if length is not None and length.isdigit() else None

    async def _get(self, url: str) -> bytes | None:
        async with self._request("GET", url, _FOUND_OR_NOT) as resp:
            return None if resp.status == 404 else await resp.read()

    async def _put(self, url: str, data: bytes | bytearray) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        async with self._request("PUT", url, _STORED, data=data, headers=headers):
            pass

    async def _discard(self, tenant: TenantRecord, kind: str, key: bytes, reason: str) -> None:
        """Log, count and (best effort) delete a corrupt upstream entry; never serve it."""
        log.warning(
            "tenant %s: corrupt %s entry %s on the upstream: %s (not served)",
            tenant.name,
            kind,
            key.hex(),
            reason,
        )
        self.on_corrupt(tenant, kind)
        try:
            async with self._http().delete(self.url(tenant, kind, key)) as resp:
                if resp.status not in (200, 202, 204, 404):
                    log.warning("upstream refused to delete it (HTTP %d)", resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("could not delete it from the upstream: %r", exc)

    def _touch(self, tenant: TenantRecord, kind: str, key: bytes) -> None:
        if self.lru is not None:
            self.lru.touch(tenant, kind, key)

    async def cas_size(self, tenant: TenantRecord, key: bytes) -> int | None:
        if key == EMPTY_SHA256:
            return 0
        size = await self._size(self.url(tenant, "cas", key))
        if size is not None:  # a HEAD, an AC hit's reference, a re-upload: all uses
            self._touch(tenant, "cas", key)
        return size

    async def get_cas(self, tenant: TenantRecord, key: bytes) -> bytes | None:
        """The verified blob. A small one read before is served from memory; past half its TTL
        the upstream is asked in the background whether it still holds it, so a blob read
        again and again never waits for an upstream busy with other tenants' uploads. Reads
        of one blob at once share one upstream GET."""
        if key == EMPTY_SHA256:
            return b""
        small = self.small
        if small is not None:
            kept = small.get(tenant, key)
            if kept is not None:
                self._touch(tenant, "cas", key)
                if small.aging(tenant, key):
                    self._renew(tenant, key, len(kept))
                return kept
        fetching = self._fetching.get((tenant.id, key))
        if fetching is None:
            fetching = asyncio.get_running_loop().create_task(self._fetch_cas(tenant, key))
            self._fetching[(tenant.id, key)] = fetching
            fetching.add_done_callback(lambda _: self._fetching.pop((tenant.id, key), None))
        # shielded: a reader that goes away does not cancel the others' read
        return await asyncio.shield(fetching)

    async def _fetch_cas(self, tenant: TenantRecord, key: bytes) -> bytes | None:
        small = self.small
        read_at = small.now() if small is not None else 0.0
        data = await self._get(self.url(tenant, "cas", key))
        if data is None:
            return None
        if await sha256_of(data, self.executor) != key:
            await self._discard(tenant, "cas", key, "sha256 mismatch")
            return None
        if small is not None:
            small.put(tenant, key, data, read_at)
        self._touch(tenant, "cas", key)
        return data

    def _renew(self, tenant: TenantRecord, key: bytes, size: int) -> None:
        if (tenant.id, key) in self._renewing:
            return
        task = asyncio.get_running_loop().create_task(self._renew_kept(tenant, key, size))
        self._renewing[(tenant.id, key)] = task
        task.add_done_callback(lambda _: self._renewing.pop((tenant.id, key), None))

    async def _renew_kept(self, tenant: TenantRecord, key: bytes, size: int) -> None:
        """Keep a small blob another TTL if the upstream still holds it (same size: the bytes
        kept were verified against the digest); drop it if not. An upstream that does not
        answer leaves it to expire at its TTL."""
        small = self.small
        assert small is not None
        asked_at = small.now()
        try:
            held = await self._size(self.url(tenant, "cas", key))
        except UpstreamError as exc:
            log.debug("could not renew a kept blob of tenant %s: %s", tenant.name, exc.message)
            return
        if held == size:
            small.renew(tenant, key, asked_at)
        else:
            small.drop(tenant, key)

    async def _charge_and_put(
        self, tenant: TenantRecord, kind: str, key: bytes, data: bytes | bytearray, old: int | None
    ) -> None:
        delta = len(data) - (old or 0)
        new = 1 if old is None else 0
        counts = {"cas": new} if kind == "cas" else {"ac": new}
        await self.state.charge(tenant, delta, **counts)
        try:
            await self._put(self.url(tenant, kind, key), data)
        except BaseException:
            await asyncio.shield(
                self.state.charge(tenant, -delta, **{k: -v for k, v in counts.items()})
            )
            raise
        if self.lru is not None:
            await self.lru.stored(tenant, kind, key, len(data))

    async def put_cas(
        self, tenant: TenantRecord, key: bytes, data: bytes | bytearray, held: int | None = UNKNOWN
    ) -> bool:
        if key == EMPTY_SHA256:
            return False
        old = await self._size(self.url(tenant, "cas", key)) if held == UNKNOWN else held
        if old == len(data):
            return False  # present (verified when read; a corrupt copy is deleted on read)
        await self._charge_and_put(tenant, "cas", key, data, old)
        return True

    async def get_ac(self, tenant: TenantRecord, key: bytes) -> bytes | None:
        raw = await self._get(self.url(tenant, "ac", key))
        if raw is None:
            return None
        try:
            record = decode_ac(raw)
        except CorruptRecordError as exc:
            await self._discard(tenant, "ac", key, str(exc))
            return None
        if record.raw and not tenant.raw_ac:
            return None
        refs = [(ref, size) for ref, size in record.refs if ref != EMPTY_SHA256]
        if refs:
            sizes = await asyncio.gather(*(self.cas_size(tenant, ref) for ref, _ in refs))
            if any(got != want for got, (_, want) in zip(sizes, refs, strict=True)):
                return None
        self._touch(tenant, "ac", key)
        return record.value

    async def put_ac(self, tenant: TenantRecord, key: bytes, record: AcRecord) -> None:
        encoded = record.encode()
        old = await self._size(self.url(tenant, "ac", key))
        await self._charge_and_put(tenant, "ac", key, encoded, old)

    async def evict(self, tenant: TenantRecord, need: int) -> int:
        """Free at least `need` bytes of the tenant's least recently used entries (fewer when
        fewer are known); returns the bytes freed. Usage is refunded in Redis first (one
        atomic step, so concurrent evictions never free the same entry twice), then the
        entries are deleted upstream; one that cannot be deleted is logged and left behind
        (not counted any more, like an entry removed behind the coordinator's back)."""
        if self.lru is None:
            return 0
        victims = await self.lru.evict(tenant, need)
        if not victims:
            return 0
        if self.small is not None:
            for kind, key, _ in victims:
                if kind == "cas":
                    self.small.drop(tenant, key)
        limit = asyncio.Semaphore(8)

        async def delete(kind: str, key: bytes) -> None:
            async with limit:
                try:
                    async with self._http().delete(self.url(tenant, kind, key)) as resp:
                        if resp.status not in (200, 202, 204, 404):
                            log.warning(
                                "upstream refused to delete an evicted entry (HTTP %d)", resp.status
                            )
                except (aiohttp.ClientError, TimeoutError) as exc:
                    log.warning("could not delete an evicted entry upstream: %r", exc)

        await asyncio.gather(*(delete(kind, key) for kind, key, _ in victims))
        freed = sum(size for _, _, size in victims)
        log.info(
            "tenant %s: evicted %d entries, %d bytes (LRU) to stay under its quota",
            tenant.name,
            len(victims),
            freed,
        )
        return freed

    async def ping(self) -> None:
        async with self._request("HEAD", self.base + "/", range(500)):
            pass

    async def close(self) -> None:
        pending = [*self._fetching.values(), *self._renewing.values()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self.lru is not None:
            await self.lru.close()
        if self._session is not None:
            await self._session.close()
