"""The local cache mirrored to the team coordinator: read-through on miss, write-behind uploads.

`MirroredCache` is a `Cache` (same LMDB, same handle semantics) whose `get_action` falls back to
the coordinator on a local miss and whose `put_action` queues an upload, so daemon/testing.py uses
it unchanged. Everything remote happens in `RemoteSync`, on its own thread and event loop, so the
daemon's loop never waits on the network.

Rules (docs/cache.md, "Remote mirror"):

- **Read-through, verified before it is stored.** AC entry first (decoded as an ActionResult or
  refused), then every referenced CAS blob; each blob must hash to its digest and have its size
  (the client checks, we check again) *before* anything is written locally. The blobs are written
  first, the action entry last, so an interrupted fetch leaves at most orphan blobs, never an
  entry that cannot be served. A hit is used only when every blob arrived.
- **Plain results on the wire, sealed on disk.** An AC value travels as the encoded ActionResult
  alone (the form the coordinator validates); the local digest envelope is added by
  `Cache.put_action` when a fetched entry is stored, and never uploaded.
- **Short and bounded.** A remote read has `read_timeout_s` overall; a circuit breaker opens
  after consecutive failures and sends reads straight to "miss" until a probe succeeds. Callers
  that must not wait (`wait_remote=False`, or any call from an event-loop thread) get a miss at
  once and a background prefetch that a later call may find locally.
- **Write-behind, writers only.** `put_action` queues (action digest, encoded result) in a
  persisted `SyncQueue`; the drainer uploads the blobs, then the AC entry, with exponential
  backoff on failures. Uploads happen only when the token's role may write ("CI writes,
  developers read"): a reader's queue is discarded, nothing is ever PUT.
- **Nothing secret leaves.** Only a `RedactedBlob` is queued or sent: a result is scanned when
  it is queued, and everything (the result, each blob it references, telemetry) once more right
  before its PUT. A scan that finds a secret blocks that upload and counts it
  (`secrets.redaction.enforce`, on by default); not enforcing, it is sent, counted and warned
  about (the warning names the kinds found, never a value).
- **Never a new way to fail.** Every remote error becomes a miss, a retry, or a status line.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from maestro.errors import CacheError, CoordinatorAuthError, CoordinatorError, IntegrityError
from maestro.redaction import RedactedBlob, Redactor
from maestro.tasks import first_of
from maestro.wire import (
    RemoteCounts,
    RemoteStatus,
    TeamModelStatus,
    TelemetrySent,
    TelemetryUploadStatus,
)

from .action import ActionResult, decode_action
from .circuit import CircuitBreaker
from .digest import Digest
from .store import Cache
from .sync_queue import SyncQueue

if TYPE_CHECKING:
    from maestro.coordinator.client import CoordinatorClient

log = logging.getLogger(__name__)

WRITE_ROLES = frozenset({"read-write", "admin"})
MAX_ATTEMPTS = 20  # an upload failing this often (with backoff in between) is dropped
HEAD_FIRST_BYTES = 64 * 1024  # larger blobs are HEAD-checked before a PUT
_PERMANENT = frozenset({400, 411, 413, 415})  # the server will refuse this entry whatever we do
_TRANSIENT = (CoordinatorError, OSError, TimeoutError)  # worth another upload attempt later

TelemetryTransport = Callable[["CoordinatorClient", RedactedBlob], Awaitable[None]]


def _rows(batch: bytes) -> int:
    """Rows in a telemetry batch (a JSON array; 1 for anything else)."""
    try:
        rows = json.loads(batch)
    except ValueError:
        return 1
    return len(rows) if isinstance(rows, list) else 1


async def cas_telemetry(client: CoordinatorClient, payload: RedactedBlob) -> None:
    """Default telemetry transport: the batch as a CAS blob of the tenant (content-addressed,
    verified, counted against the quota). A dedicated ingest endpoint can replace it."""
    await client.put_cas(payload)


class RemoteSync:
    """The coordinator side of a workspace's cache: its own thread, loop, client and outbox."""

    def __init__(
        self,
        local: Cache,
        *,
        url: str,
        tenant: str,
        api_key: str,
        queue_path: Path,
        read_timeout_s: float = 2.0,
        upload: bool = True,
        backoff_s: tuple[float, float] = (0.5, 30.0),
        breaker: CircuitBreaker | None = None,
        telemetry_transport: TelemetryTransport = cas_telemetry,
        upload_timeout_s: float = 30.0,
        redactor: Redactor | None = None,
        enforce: bool = True,
        on_backoff: Callable[[float, str | None], None] | None = None,
    ) -> None:
        self.local = local
        self.url = url.rstrip("/")
        self.tenant = tenant
        self._api_key = api_key
        self.read_timeout_s = read_timeout_s
        self.upload_configured = upload
        self.backoff_s = backoff_s
        self.breaker = breaker or CircuitBreaker()
        self.telemetry_transport = telemetry_transport
        self.upload_timeout_s = upload_timeout_s
        self.redactor = redactor or Redactor.from_environ(os.environ)
        self.redactor.add_known(api_key, kind="maestro-api-key")
        self.enforce = enforce
        self.on_backoff = on_backoff
        """Told (until, rule) on this engine's thread when the coordinator asks it to back off."""
        self.queue = SyncQueue(queue_path)
        self.counters = RemoteCounts()
        self.last_failure: BaseException | None = None
        """The exception behind `counters.last_error`, when one was raised (its type says whose
        fix it is: a rejected key, an unreachable URL)."""
        self.telemetry = TelemetrySent()
        self.role: str | None = None
        self.retry_at: float | None = None
        self._client: CoordinatorClient | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._inflight: dict[str, concurrent.futures.Future[bool]] = {}
        self._inflight_lock = threading.RLock()  # a done future runs its callback at once

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._thread_main, name="maestro-sync", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def stop(self, timeout: float = 5.0) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(timeout)
        self.queue.close()
        self.local.close()

    def _thread_main(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:
            log.exception("remote sync thread failed")
        finally:
            self._ready.set()

    async def _main(self) -> None:
        from maestro.coordinator.client import CoordinatorClient

        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._client = CoordinatorClient(
            self.url,
            self.tenant,
            self._api_key,
            timeout_s=self.upload_timeout_s,
            redactor=self.redactor,
            enforce=self.enforce,
            on_backoff=self.on_backoff,
        )
        self._ready.set()
        drainer = asyncio.create_task(self._drain_forever(), name="sync-drain")
        try:
            await self._stopping.wait()
        finally:
            drainer.cancel()  # an upload hung on a slow coordinator must not delay shutdown
            await asyncio.gather(drainer, return_exceptions=True)
            await self._client.close()

    @property
    def client(self) -> CoordinatorClient:
        assert self._client is not None, "RemoteSync not started"
        return self._client

    def _submit(self, coro: Awaitable[Any]) -> concurrent.futures.Future[Any] | None:
        loop = self._loop
        if loop is None or loop.is_closed() or (self._stopping and self._stopping.is_set()):
            if asyncio.iscoroutine(coro):
                coro.close()
            return None
        return asyncio.run_coroutine_threadsafe(cast(Any, coro), loop)

    def submit(self, coro: Awaitable[Any]) -> concurrent.futures.Future[Any] | None:
        """Run a coroutine on the sync's loop (with its client); None once it stops."""
        return self._submit(coro)

    def _error(self, message: str, exc: BaseException | None = None) -> None:
        self.counters.last_error = message
        self.counters.last_error_at = time.time()
        self.last_failure = exc

    # -- read-through ------------------------------------------------------------------------

    def fetch_action(self, action_hex: str, *, wait: bool = True) -> bool:
        """Mirror the remote entry into the local cache; True if it is now there (verified).

        With ``wait=False`` (or when called from an event loop's thread) it never blocks: a
        background fetch starts and a later local lookup may find the entry."""
        if threading.current_thread() is self._thread:
            return False
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop()
            wait = False  # never block an event loop on the network
        with self._inflight_lock:
            future = self._inflight.get(action_hex)
            if future is None:
                if not self.breaker.allow():
                    return False
                future = self._submit(self._fetch(action_hex))
                if future is None:
                    return False
                self._inflight[action_hex] = future
                future.add_done_callback(lambda _f: self._forget(action_hex))
        if not wait:
            return False
        try:
            return bool(future.result(timeout=self.read_timeout_s + 1.0))
        except concurrent.futures.TimeoutError:
            future.cancel()
            return False
        except (concurrent.futures.CancelledError, Exception):
            return False

    def _forget(self, action_hex: str) -> None:
        with self._inflight_lock:
            self._inflight.pop(action_hex, None)

    async def _fetch(self, action_hex: str) -> bool:
        client = self.client
        try:
            async with asyncio.timeout(self.read_timeout_s):
                raw = await client.get_ac(action_hex)
                if raw is None:
                    self.counters.remote_misses += 1
                    self.breaker.success()
                    return False
                self._learn_role()
                try:
                    result = decode_action(raw)
                except CacheError as exc:  # newer schema or garbage: not for us
                    log.info("remote action %s not usable: %s", action_hex, exc.message)
                    self.counters.remote_misses += 1
                    self.breaker.success()
                    return False
                needed = list(dict.fromkeys(d for d in result.referenced_digests() if d.size))
                missing = self.local.has_blobs(needed)
                wanted = [d for d in needed if d in missing]
                blobs = await asyncio.gather(*(client.get_cas(d) for d in wanted))
        except asyncio.CancelledError:
            self.breaker.failure()  # frees a half-open probe
            raise
        except TimeoutError:
            self.counters.remote_errors += 1
            self.breaker.failure()
            self._error(f"remote read timed out after {self.read_timeout_s:g}s")
            return False
        except IntegrityError as exc:
            self.counters.corrupt_refused += 1
            self.breaker.success()  # it answered; the entry is bad, not the connection
            self._error(f"remote entry {action_hex[:12]} refused: {exc.message}")
            return False
        except CoordinatorAuthError as exc:
            self.counters.remote_errors += 1
            self.breaker.failure()
            self._error(exc.message, exc)
            return False
        except (CoordinatorError, OSError) as exc:
            self.counters.remote_errors += 1
            self.breaker.failure()
            self._error(getattr(exc, "message", None) or str(exc), exc)
            return False
        self.breaker.success()
        checked: list[bytes] = []
        for digest, data in zip(wanted, blobs, strict=True):
            if data is None:  # gone since the AC check: an incomplete entry is no hit
                self.counters.remote_misses += 1
                return False
            if len(data) != digest.size or hashlib.sha256(data).hexdigest() != digest.hash:
                self.counters.corrupt_refused += 1
                self._error(f"remote blob {digest} of {action_hex[:12]} failed verification")
                return False
            checked.append(data)
        try:
            stored = self.local.put_blobs(checked)
            if stored != wanted:  # put_blobs re-hashed: belt and braces
                raise IntegrityError("re-hash of fetched blobs disagrees with their digests")
            self.local.put_action(action_hex, result)
        except (CacheError, IntegrityError) as exc:
            self._error(f"could not store remote entry locally: {exc.message}")
            return False
        self.counters.remote_hits += 1
        return True

    # -- write-behind ------------------------------------------------------------------------

    @property
    def uploads_enabled(self) -> bool:
        return self.upload_configured and (self.role is None or self.role in WRITE_ROLES)

    def upload_state(self) -> str:
        if not self.upload_configured:
            return "off (upload = false)"
        if self.role is None:
            return "pending (role not known yet)"
        if self.role not in WRITE_ROLES:
            return f"off (role {self.role} reads only)"
        return "on"

    def enqueue_upload(self, action_hex: str, result: ActionResult) -> None:
        if not self.uploads_enabled:
            return
        cleared = self.clear(result.encode(), f"result {action_hex[:12]}")
        if cleared is None:
            return
        self.queue.push_upload(action_hex, cleared)
        self._poke()

    def upload_telemetry(self, batch: RedactedBlob | Mapping[str, Any]) -> None:
        """Queue a telemetry batch: rows (every string in them is redacted here) or a blob the
        redaction module made."""
        payload = batch if isinstance(batch, RedactedBlob) else self.redactor.redact_json(batch)
        self.queue.push_telemetry(payload)
        self._poke()

    def clear(self, data: bytes, what: str) -> RedactedBlob | None:
        """The egress gate: ``data`` cleared to leave, or None when the scan found a secret and
        enforces (counted either way; the warning names the kinds found, never the value)."""
        vetted = self.redactor.vet(data, enforce=self.enforce)
        if not vetted.kinds:
            return vetted.blob
        kinds = ", ".join(vetted.kinds)
        if vetted.blob is None:
            self.counters.egress_blocked += 1
            self._error(f"upload of {what} blocked: it holds a secret ({kinds})")
            log.warning("upload of %s blocked: the last scan found %s", what, kinds)
            return None
        self.counters.egress_flagged += 1
        log.warning(
            "upload of %s holds a secret (%s) and is sent: secrets.redaction.enforce is off",
            what,
            kinds,
        )
        return vetted.blob

    def _poke(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(wake.set)

    def _learn_role(self) -> None:
        info = self.client.token_info
        if info is None or info.role == self.role:
            return
        self.role = info.role
        log.info("coordinator %s: tenant %s, role %s", self.url, self.tenant, self.role)
        if self.role not in WRITE_ROLES:
            dropped = self.queue.clear_uploads()
            if dropped:
                log.info("role %s may not write: %d queued uploads discarded", self.role, dropped)

    async def _drain_forever(self) -> None:
        assert self._wake is not None and self._stopping is not None
        with contextlib.suppress(CoordinatorError, OSError):  # learn the role early
            async with asyncio.timeout(self.read_timeout_s):
                await self.client.token()
            self._learn_role()
        while not self._stopping.is_set():
            counts = self.queue.counts()
            if not counts.uploads and not counts.telemetry:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(30):
                        await self._until_woken()
                continue
            await self._drain_with_backoff()

    async def _drain_with_backoff(self) -> None:
        """Drain until the queue is empty, backing off (jittered, doubling up to `backoff_s[1]`)
        while the coordinator fails; gives up quietly only when the sync stops."""
        assert self._stopping is not None
        stopping = self._stopping
        low, high = self.backoff_s
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_TRANSIENT),
            wait=wait_exponential_jitter(multiplier=low, min=low, max=high, jitter=low),
            stop=lambda _state: stopping.is_set(),
            sleep=self._backoff_sleep,
            before_sleep=self._upload_failed,
            retry_error_callback=lambda _state: None,
        )
        await retrying(self._drain_once)

    def backoff_until(self) -> float | None:
        """When the coordinator asked us (429 + Retry-After) to wait until, if still ahead."""
        until: float | None = getattr(self._client, "backoff_until", None)  # stand-ins lack it
        return until if until is not None and until > time.time() else None

    def _upload_failed(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        self.counters.upload_failures += 1
        self._error(getattr(exc, "message", None) or str(exc) or type(exc).__name__, exc)
        until = self.backoff_until()
        self.retry_at = max(time.time() + state.upcoming_sleep, until or 0.0)
        log.info(
            "upload failed (%s); retrying in %.1fs",
            self.counters.last_error,
            state.upcoming_sleep,
        )

    async def _backoff_sleep(self, seconds: float) -> None:
        until = self.backoff_until()  # the coordinator's advice wins over our own backoff
        await self._sleep(max(seconds, until - time.time()) if until else seconds)
        self.retry_at = None

    async def _until_woken(self) -> None:
        assert self._wake is not None and self._stopping is not None
        await first_of(self._wake.wait(), self._stopping.wait())

    async def _sleep(self, seconds: float) -> None:
        assert self._stopping is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _drain_once(self) -> None:
        """Upload what is queued, oldest first; raises on a transient failure (backoff)."""
        await self.client.token()
        self._learn_role()
        assert self._stopping is not None
        while not self._stopping.is_set():
            batch = self.queue.peek_uploads(16) if self.uploads_enabled else []
            if not batch:
                break
            for item in batch:
                await self._upload_one(item.action, item.value, item.attempts)
        if self.role in WRITE_ROLES:
            while not self._stopping.is_set():
                batches = self.queue.peek_telemetry(16)
                if not batches:
                    break
                for b in batches:
                    payload = self.clear(b.payload, f"telemetry batch {b.seq}")
                    if payload is None:
                        self.queue.done_telemetry(b.seq)
                        self.counters.dropped += 1
                        continue
                    try:
                        await self.telemetry_transport(self.client, payload)
                    except CoordinatorError as exc:
                        if exc.status in _PERMANENT or b.attempts + 1 >= MAX_ATTEMPTS:
                            self.queue.done_telemetry(b.seq)
                            self.counters.dropped += 1
                            continue
                        if not self.backoff_until():  # asked to wait: not a failed attempt
                            self.queue.failed_telemetry(b.seq)
                            self.telemetry.failures += 1
                        self.telemetry.last_error = exc.message
                        raise
                    self.queue.done_telemetry(b.seq)
                    self.telemetry.batches_sent += 1
                    self.telemetry.rows_sent += _rows(payload.data)
                    self.telemetry.last_sent_at = time.time()
                    self.telemetry.last_error = None

    async def _upload_one(self, action_hex: str, value: bytes, attempts: int) -> None:
        client = self.client
        try:
            result = decode_action(value)
        except CacheError:
            self._drop(action_hex, "undecodable queued entry")
            return
        refs = [d for d in result.referenced_digests() if d.size]
        blobs = self.local.get_blobs(refs)
        if any(b is None for b in blobs):
            self._drop(action_hex, "its blobs left the local cache before the upload")
            return
        # the last scan, of everything this entry sends, before any of it is sent
        entry = self.clear(value, f"result {action_hex[:12]}")
        cleared = [
            self.clear(b or b"", f"blob {d.hash[:12]}") for d, b in zip(refs, blobs, strict=True)
        ]
        if entry is None or any(c is None for c in cleared):
            self._drop(action_hex, "the last scan found a secret in it")
            return
        try:
            for digest, blob in zip(refs, cleared, strict=True):
                assert blob is not None
                if len(blob) >= HEAD_FIRST_BYTES and await client.has_cas(digest):
                    continue
                await self._send("cas", digest.hash, blob)
            await self._send(
                "ac", action_hex, entry
            )  # last: the server only serves complete entries
        except CoordinatorError as exc:
            if exc.status in _PERMANENT:
                self._drop(action_hex, f"refused by the coordinator: {exc.message}")
                return
            if isinstance(exc, CoordinatorAuthError) and self.client.token_info is not None:
                self._learn_role()
            if self.backoff_until():
                pass  # the coordinator asked us to wait: not a failed attempt, nothing dropped
            elif attempts + 1 >= MAX_ATTEMPTS:
                self._drop(action_hex, f"gave up after {MAX_ATTEMPTS} attempts: {exc.message}")
            else:
                self.queue.failed_upload(action_hex)
            raise
        self.queue.done_upload(action_hex)
        self.counters.uploaded += 1
        self.counters.last_upload_at = time.time()
        self.breaker.success()

    async def _send(self, kind: Literal["cas", "ac"], key: str, blob: RedactedBlob) -> None:
        """Every upload goes through here, and only a cleared blob can."""
        if kind == "ac":
            await self.client.put_ac(key, blob)
        else:
            await self.client.put(kind, key, blob)

    def _drop(self, action_hex: str, why: str) -> None:
        self.queue.done_upload(action_hex)
        self.counters.dropped += 1
        self._error(f"upload of {action_hex[:12]} dropped: {why}")
        log.warning("upload of %s dropped: %s", action_hex, why)

    # -- team model ----------------------------------------------------------------------------

    def fetch_model(
        self, digest: Digest | str, dest_dir: Path, *, timeout_s: float = 60.0
    ) -> Path | None:
        """Download the team model blob (skops bytes) by digest into ``dest_dir``, verified.

        Returns the file (``model-<sha256>.skops``, written atomically) or None when the
        coordinator does not have it or cannot be reached. The bytes are never unpickled here:
        loading is skops' job, with its trusted-types check."""
        hash_hex = digest.hash if isinstance(digest, Digest) else digest.lower()
        dest = dest_dir / f"model-{hash_hex}.skops"
        if dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == hash_hex:
            return dest
        future = self._submit(self.client.get_cas(hash_hex))
        if future is None:
            return None
        try:
            data = future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            future.cancel()
            self._error("model download timed out")
            return None
        except (CoordinatorError, IntegrityError) as exc:
            self._error(f"model download failed: {exc.message}", exc)
            return None
        if data is None:
            return None
        if hashlib.sha256(data).hexdigest() != hash_hex:  # the client checked; check anyway
            self._error("model blob failed verification")
            return None
        dest_dir.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, dest)
        return dest

    # -- status --------------------------------------------------------------------------------

    def status(
        self,
        *,
        telemetry: TelemetryUploadStatus | None = None,
        team_model: TeamModelStatus | None = None,
    ) -> RemoteStatus:
        """The sync's status; the daemon adds its telemetry uploader's and team model's."""
        queued = self.queue.counts()
        counts = dict(self.counters)
        counts["dropped"] += self.queue.dropped  # entries the full queue let go
        return RemoteStatus(
            url=self.url,
            tenant=self.tenant,
            role=self.role,
            uploads=self.upload_state(),
            queue_length=queued.uploads,
            queue_bytes=queued.upload_bytes,
            telemetry_queue=queued.telemetry,
            circuit=self.breaker.state,
            retry_at=self.retry_at,
            backoff_until=self.backoff_until(),
            backoff_rule=(
                getattr(self._client, "backoff_rule", None) if self.backoff_until() else None
            ),
            telemetry=telemetry,
            team_model=team_model,
            **counts,
        )


class MirroredCache(Cache):
    """A `Cache` that reads through to and writes behind to a `RemoteSync`.

    Drop-in for what the engine uses (`get_action`, `put_run` and the `put_*` built on it): a local
    miss asks the coordinator (bounded by its read timeout, skipped while the circuit is open);
    a stored result is queued for upload. Local statistics count the first lookup as a miss and
    the re-read after a remote fetch as a hit; `RemoteSync.counters` count remote hits."""

    sync: RemoteSync | None = None
    wait_remote: bool = True
    upload_gate: Callable[[str, ActionResult], bool] | None = None  # the policy's upload decision

    @classmethod
    def mirror(
        cls,
        sync: RemoteSync | None,
        path: Path | None = None,
        *,
        max_bytes: int | None = None,
        wait_remote: bool = True,
    ) -> MirroredCache:
        cache = cast(MirroredCache, cls.open(path, max_bytes=max_bytes))
        cache.sync = sync
        cache.wait_remote = wait_remote
        return cache

    @property
    def shared_with_team(self) -> bool:
        return self.sync is not None

    def adopt(self, action_hex: str, result: ActionResult) -> None:
        Cache.put_run(self, [], [(action_hex, result)])

    def get_action(self, action_hex: str, *, count: bool = True) -> ActionResult | None:
        result = super().get_action(action_hex, count=count)
        sync = self.sync
        if result is not None or sync is None:
            return result
        try:
            fetched = sync.fetch_action(action_hex, wait=self.wait_remote)
        except Exception:  # never a new way to fail
            log.warning("remote read of %s failed", action_hex, exc_info=True)
            return None
        return super().get_action(action_hex, count=count) if fetched else None

    def put_run(
        self, blobs: Sequence[bytes], items: Sequence[tuple[str, ActionResult]]
    ) -> list[Digest]:
        # put_action and put_actions store through here too: every stored result is queued
        digests = super().put_run(blobs, items)
        sync = self.sync
        if sync is None:
            return digests
        gate = self.upload_gate
        for action_hex, result in items:
            if gate is not None and not gate(action_hex, result):
                continue
            try:
                sync.enqueue_upload(action_hex, result)
            except Exception:
                log.warning("could not queue the upload of %s", action_hex, exc_info=True)
        return digests
