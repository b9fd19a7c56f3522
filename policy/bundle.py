"""Team policy as signed bundles, in OPA's bundle layout, verified before use.

A bundle is a tar.gz holding ``.manifest`` (``revision``, ``roots``, and Maestro's
``metadata.version`` and ``metadata.expires``), ``data.json`` (``data.config.team``), ``*.rego``
(``package maestro.team.<point>``) and ``.signatures.json``: ``{"signatures": [JWT]}`` whose
payload lists every other file as ``{"name", "hash", "algorithm": "SHA-256"}``, signed with
RS256/ES256/EdDSA and naming its key by ``kid``, as ``opa sign`` does. JSON files are hashed
over their canonical form (sorted keys, no spaces), others over their bytes.

Before a bundle replaces the one held it must: carry a signature by a trusted key (several
keys are trusted at once, so keys rotate with an overlap), match every digest with no file
unlisted, not be expired, not be older (``metadata.version``) than the one held, and compile.
Otherwise it is quarantined: the last good bundle stays in force (persisted, so a restart
without the coordinator starts warm), an incident is raised (log, metric, listeners: the daemon
forwards it to editors) and cleared when a good bundle arrives.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import logging
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import jwt
from prometheus_client import CollectorRegistry, Counter, Gauge

from maestro.errors import PolicyBundleError, PolicyError
from maestro.paths import replace_file
from maestro.policy.engine import PolicyEngine
from maestro.policy.model import Incident as Incident  # its home before
from maestro.policy.sources import Module, check_roots

log = logging.getLogger(__name__)

ROOT = "maestro/team"
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"]
MAX_BYTES = 8 * 1024 * 1024
MAX_FILES = 1000
SIGNATURES = ".signatures.json"
MANIFEST = ".manifest"

Reason = Literal[
    "layout", "unsigned", "unknown_key", "signature", "digest", "expired", "rollback", "compile"
]


class BundleRejected(PolicyBundleError):
    def __init__(self, reason: Reason, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, where="policy bundle")
        self.reason = reason


def canonical_json(raw: bytes) -> bytes:
    """JSON re-encoded as Go's encoding/json does (what OPA hashes): sorted keys, compact."""
    value = json.loads(raw)
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def file_hash(name: str, raw: bytes) -> str:
    body = canonical_json(raw) if name.endswith(".json") or name == MANIFEST else raw
    return hashlib.sha256(body).hexdigest()


def read_files(data: bytes) -> dict[str, bytes]:
    """The bundle's regular files by normalised name; anything else is a layout error."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            total = 0
            for member in tar.getmembers():
                if member.isdir():
                    continue
                name = member.name.lstrip("./") if member.name.startswith("./") else member.name
                name = name.lstrip("/")
                if not member.isfile() or ".." in name.split("/"):
                    raise BundleRejected("layout", f"bundle entry {member.name!r} is not allowed")
                total += member.size
                if total > MAX_BYTES or len(files) >= MAX_FILES:
                    raise BundleRejected("layout", "bundle is too large")
                handle = tar.extractfile(member)
                files[name] = handle.read() if handle is not None else b""
    except (tarfile.TarError, OSError, EOFError, gzip.BadGzipFile) as exc:
        raise BundleRejected("layout", f"not a tar.gz bundle: {exc}") from None
    return files


@dataclass(frozen=True, slots=True)
class Verified:
    revision: str
    version: int
    expires: datetime | None
    kid: str
    modules: list[Module]
    data: dict[str, Any]


def verify(
    data: bytes, keys: Mapping[str, Any], *, now: datetime, held_version: int | None = None,
    check_expiry: bool = True,
) -> Verified:  # fmt: skip
    """Check a bundle's signature, digests, expiry and version (not yet that it compiles)."""
    files = read_files(data)
    signatures = files.pop(SIGNATURES, None)
    if signatures is None:
        raise BundleRejected("unsigned", "the bundle has no .signatures.json")
    try:
        tokens = json.loads(signatures)["signatures"]
        token = tokens[0]
        header = jwt.get_unverified_header(token)
    except (ValueError, KeyError, IndexError, TypeError, jwt.PyJWTError) as exc:
        raise BundleRejected("unsigned", f".signatures.json is malformed: {exc}") from None
    kid = str(header.get("kid") or "")
    key = keys.get(kid)
    if key is None:
        raise BundleRejected(
            "unknown_key", f"signed by key {kid or '(no kid)'!r}, which is not trusted",
            hint="add the key to [tool.maestro.policy.bundle.keys] (keys rotate with an overlap)",
        )  # fmt: skip
    try:
        claims = jwt.decode(token, key, algorithms=ALGORITHMS, options={"verify_exp": True})
    except jwt.PyJWTError as exc:
        raise BundleRejected("signature", f"the bundle signature does not verify: {exc}") from None
    listed = {str(f["name"]).lstrip("/"): f for f in claims.get("files", [])}
    if set(listed) != set(files):
        extra = sorted(set(files) - set(listed)) or sorted(set(listed) - set(files))
        raise BundleRejected("digest", f"files and signed digests differ: {', '.join(extra)}")
    for name, entry in listed.items():
        if str(entry.get("algorithm", "SHA-256")).upper() != "SHA-256":
            raise BundleRejected("digest", f"{name}: digest algorithm {entry['algorithm']}")
        try:
            actual = file_hash(name, files[name])
        except ValueError:
            raise BundleRejected("digest", f"{name} is not valid JSON") from None
        if actual != entry.get("hash"):
            raise BundleRejected("digest", f"{name} does not match its signed digest")
    try:
        manifest = json.loads(files.get(MANIFEST, b"{}"))
        team_data = json.loads(files.get("data.json", b"{}"))
    except ValueError as exc:
        raise BundleRejected("layout", f"manifest or data.json is not JSON: {exc}") from None
    roots = manifest.get("roots", [ROOT])
    if any(not (r == ROOT or r.startswith(ROOT + "/")) for r in roots):
        raise BundleRejected("layout", f"bundle roots {roots} reach outside {ROOT}")
    meta = manifest.get("metadata") or {}
    version = int(meta.get("version", 0))
    expires = _time(meta.get("expires"))
    if check_expiry and expires is not None and expires <= now:
        raise BundleRejected(
            "expired", f"the bundle expired at {expires.isoformat()} (stale)",
            hint="the coordinator must publish a fresh bundle",
        )  # fmt: skip
    if held_version is not None and version < held_version:
        raise BundleRejected(
            "rollback", f"bundle version {version} is older than the held version {held_version}"
        )
    modules = [
        Module(f"team:{name}", raw.decode("utf-8", "replace"), "team")
        for name, raw in sorted(files.items())
        if name.endswith(".rego")
    ]
    try:
        check_roots(modules)
    except PolicyError as exc:
        raise BundleRejected("layout", str(exc)) from None
    return Verified(
        str(manifest.get("revision", "")), version, expires, kid, modules,
        team_data if isinstance(team_data, dict) else {},
    )  # fmt: skip


def load_public_key(path: Path) -> Any:
    """A trusted bundle key from a PEM file (EC, RSA or Ed25519 public key)."""
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    try:
        return load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise PolicyBundleError(
            f"cannot read the bundle key: {exc.strerror}", where=str(path)
        ) from None
    except ValueError as exc:
        raise PolicyBundleError(
            f"not a PEM public key: {exc}", where=str(path),
            hint="export the public half: openssl pkey -in key.pem -pubout",
        ) from None  # fmt: skip


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise BundleRejected("layout", f"metadata.expires {value!r} is not RFC 3339") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def build(
    files: Mapping[str, bytes], *, key: Any, kid: str, revision: str, version: int,
    expires: datetime | None = None, algorithm: str = "ES256",
) -> bytes:  # fmt: skip
    """A signed bundle of ``files`` (*.rego, data.json) with its manifest."""
    manifest: dict[str, Any] = {
        "revision": revision,
        "roots": [ROOT],
        "metadata": {"version": version},
    }
    if expires is not None:
        manifest["metadata"]["expires"] = expires.astimezone(UTC).isoformat().replace("+00:00", "Z")
    content = {MANIFEST: json.dumps(manifest).encode(), **files}
    claims = {
        "files": [
            {"name": name, "hash": file_hash(name, raw), "algorithm": "SHA-256"}
            for name, raw in sorted(content.items())
        ],
        "keyid": kid,
        "iat": int(time.time()),
    }
    token = jwt.encode(claims, key, algorithm=algorithm, headers={"kid": kid})
    content[SIGNATURES] = json.dumps({"signatures": [token]}).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, raw in content.items():
            info = tarfile.TarInfo(f"/{name}")
            info.size = len(raw)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(raw))
    return out.getvalue()


class BundleMetricFamilies:
    """The bundle metric families of one registry: a daemon's own (no labels), or the
    coordinator's, shared by its tenants' stores (``labels=("tenant",)``)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        *,
        prefix: str = "maestro_policy_bundle",
        labels: tuple[str, ...] = (),
    ) -> None:
        self.rejected = Counter(
            f"{prefix}_rejected", "Policy bundles quarantined, by reason",
            [*labels, "reason"], registry=registry,
        )  # fmt: skip
        self.incident = Gauge(
            f"{prefix}_incident", "1 while a policy bundle incident is open", labels,
            registry=registry,
        )  # fmt: skip
        self.version = Gauge(
            f"{prefix}_version", "Version of the team bundle in force", labels,
            registry=registry,
        )  # fmt: skip


@dataclass
class BundleMetrics:
    """One store's series: ``values`` are its label values in ``families`` (none: unlabelled)."""

    families: BundleMetricFamilies = field(
        default_factory=lambda: BundleMetricFamilies(CollectorRegistry())
    )
    values: tuple[str, ...] = ()

    def reject(self, reason: str) -> None:
        self.families.rejected.labels(*self.values, reason).inc()

    def set_incident(self, active: bool) -> None:
        gauge = self.families.incident
        (gauge.labels(*self.values) if self.values else gauge).set(1 if active else 0)

    def set_version(self, version: int) -> None:
        gauge = self.families.version
        (gauge.labels(*self.values) if self.values else gauge).set(version)


@dataclass
class BundleStore:
    """The team layer of one workspace: last good bundle on disk (0600), quarantine, incidents."""

    folder: Path
    engine: PolicyEngine
    keys: Mapping[str, Any]
    metrics: BundleMetrics = field(default_factory=BundleMetrics)
    listeners: list[Callable[[Incident], None]] = field(default_factory=list)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    incident: Incident | None = None
    name: str = ""  # whose bundles, in log lines (the coordinator: "tenant acme")

    @property
    def _of(self) -> str:
        return f" of {self.name}" if self.name else ""

    @property
    def last_good(self) -> Path:
        return self.folder / "last-good.tar.gz"

    @property
    def state_file(self) -> Path:
        return self.folder / "state.json"

    def _state(self) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads(self.state_file.read_text())
            return value
        except (OSError, ValueError):
            return {}

    def status(self) -> dict[str, Any]:
        state = self._state()
        incident = state.get("incident")
        if not state.get("revision"):
            text = "none (built-in and workspace policy only)"
        else:
            text = f"revision {state['revision']} version {state.get('version')} in force"
        if incident:
            text += f"; QUARANTINED: {incident.get('message')}"
        return {"state": text, **state}

    @property
    def etag(self) -> str | None:
        etag = self._state().get("etag")
        return str(etag) if etag else None

    def warm_start(self) -> bool:
        """Put the persisted last good bundle in force (no network). An expired one is still
        used (it is the best known policy) and raises a stale incident."""
        try:
            data = self.last_good.read_bytes()
        except OSError:
            return False
        try:
            verified = verify(data, self.keys, now=self.clock(), check_expiry=False)
            self.engine.reload(team=(verified.modules, verified.data, verified.revision))
        except PolicyError as exc:
            log.error("the persisted policy bundle is not usable: %s", exc)
            self._raise("layout", str(exc), None)
            return False
        self.metrics.set_version(verified.version)
        held = self._state().get("incident")
        if isinstance(held, dict) and held.get("active"):  # open before the restart: still open
            try:
                self.incident = Incident.model_validate(held)
                self.metrics.set_incident(True)
            except ValueError:
                pass
        if verified.expires is not None and verified.expires <= self.clock():
            self._raise(
                "expired", f"the last good bundle expired at {verified.expires}", verified.revision
            )
        log.info(
            "policy bundle %s (version %d) in force from disk", verified.revision, verified.version
        )
        return True

    def apply(self, data: bytes, *, etag: str | None = None) -> Verified:
        """Verify and put a bundle in force; quarantine it (and raise) when it must not be."""
        state = self._state()
        held = state.get("version")
        try:
            verified = verify(data, self.keys, now=self.clock(), held_version=held)
            try:
                self.engine.reload(team=(verified.modules, verified.data, verified.revision))
            except PolicyError as exc:
                raise BundleRejected("compile", f"the bundle does not compile: {exc}") from None
        except BundleRejected as exc:
            self._quarantine(data, exc)
            raise
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        replace_file(self.last_good, data)
        expires = verified.expires.isoformat() if verified.expires else None
        state = {
            "revision": verified.revision, "version": verified.version, "kid": verified.kid,
            "etag": etag, "expires": expires,
        }  # fmt: skip
        replace_file(self.state_file, json.dumps(state).encode())
        self.metrics.set_version(verified.version)
        if self.incident is not None:
            self._clear(verified.revision)
        return verified

    def _quarantine(self, data: bytes, exc: BundleRejected) -> None:
        folder = self.folder / "quarantine"
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        stamp = self.clock().strftime("%Y%m%dT%H%M%S%f")
        replace_file(folder / f"{stamp}-{exc.reason}.tar.gz", data)
        for old in sorted(folder.iterdir())[:-10]:  # keep the last few for inspection
            old.unlink(missing_ok=True)
        self.metrics.reject(exc.reason)
        self._raise(exc.reason, exc.message, None)

    def _raise(self, reason: str, message: str, revision: str | None) -> None:
        self.incident = Incident(active=True, reason=reason, message=message, revision=revision)
        log.error("policy bundle%s quarantined (%s): %s; the last good policy stays in force",
                  self._of, reason, message)  # fmt: skip
        self.metrics.set_incident(True)
        state = self._state()
        state["incident"] = self.incident.model_dump()
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        replace_file(self.state_file, json.dumps(state).encode())
        self._emit(self.incident)

    def _clear(self, revision: str) -> None:
        cleared = Incident(active=False, reason="recovered", message=f"bundle {revision} in force",
                           revision=revision)  # fmt: skip
        self.incident = None
        self.metrics.set_incident(False)
        log.info("policy bundle incident%s cleared: %s in force", self._of, revision)
        self._emit(cleared)

    def adopt_incident(self, incident: Incident | None) -> None:
        """Take the incident raised (or cleared, None) where this store is shared: another
        coordinator replica verified the bundle. No event: that replica logged it."""
        if incident == self.incident:
            return
        self.incident = incident
        self.metrics.set_incident(incident is not None)

    def _emit(self, incident: Incident) -> None:
        for listener in self.listeners:
            try:
                listener(incident)
            except Exception:
                log.exception("a policy incident listener failed")

    async def fetch(self, url: str, tenant: str, token: str, *, timeout_s: float = 5.0) -> str:
        """GET the tenant's bundle with If-None-Match: 'updated', 'unchanged', 'unreachable'
        (the held policy stays), or raises BundleRejected (quarantined)."""
        import asyncio

        import aiohttp

        headers = {"Authorization": f"Bearer {token}"}
        if self.etag:
            headers["If-None-Match"] = self.etag
        target = f"{url.rstrip('/')}/v1/tenants/{tenant}/policy/bundle"
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
                session.get(target, headers=headers) as response,
            ):
                if response.status == 304:
                    return "unchanged"
                if response.status == 404:
                    return "unchanged"
                if response.status != 200:
                    log.warning("policy bundle fetch: HTTP %d", response.status)
                    return "unreachable"
                body = await response.read()
                etag = response.headers.get("ETag")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning(
                "coordinator unreachable for the policy bundle (%s): the held policy stays", exc
            )
            return "unreachable"
        await asyncio.to_thread(self.apply, body, etag=etag)
        return "updated"
