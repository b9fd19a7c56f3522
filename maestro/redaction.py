"""Redaction: what a test printed, raised or logged loses its secrets before it is stored,
logged or sent anywhere.

Two detectors, as CI systems do it:

- **Known values**: secrets this machine holds (environment variables whose names mark them as
  secret, the coordinator's key and tokens, values a user registers), in the forms they are
  printed in: as they are, base64 (standard and URL-safe, padded or not), URL-quoted, JSON- or
  repr-escaped, hex.
- **Patterns**: detect-secrets' detectors (cloud keys, GitHub/GitLab/Slack/Stripe/npm/PyPI tokens,
  JWTs, basic auth in URLs, ``password = "..."`` assignments, ...) plus what they leave out: PEM
  private key blocks whole, ``Authorization:`` header values.

A secret becomes ``[REDACTED:<kind>:<fp>]``: the kind says what it was, ``fp`` (4 hex digits of
its SHA-256) lets two runs' outputs still compare without telling anything about the value.

:class:`Redacted` is the only text type the egress accepts (the action cache, the upload queue,
telemetry): mypy rejects a plain ``str`` there, so output cannot skip redaction by accident.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NewType
from urllib.parse import quote, quote_plus

log = logging.getLogger(__name__)

Redacted = NewType("Redacted", str)
"""Text a :class:`Redactor` returned."""

MIN_KNOWN_LENGTH = 8
"""Shorter values are not redacted by value: a 4-character password would blank half a log."""

SECRET_NAME = re.compile(
    r"(?:^|_)(?:TOKEN|SECRET|PASSW(?:OR)?D|PWD|API_?KEY|ACCESS_?KEY(?:_ID)?|PRIVATE_?KEY|"
    r"SECRET_?KEY|AUTH|CREDENTIALS?|SESSION|COOKIE|DSN|WEBHOOK)(?:_|$)",
    re.IGNORECASE,
)
"""Environment variable names whose values are secrets (AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN,
PGPASSWORD, SENTRY_DSN, ...)."""

_PEM = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----"
    r"(?:.*?-----END \1-----|[\sA-Za-z0-9+/=:,-]*)",
    re.DOTALL,
)
_AUTH_HEADER = re.compile(
    r"(?i)\b(?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic|token|digest)\s+)?"
    r"([^\s\"',;]{8,})"
)
# token formats detect-secrets 1.5 does not know, and keyword assignments inside escaped strings
_EXTRA = (
    ("maestro-api-key", re.compile(r"\bmk_[A-Za-z0-9]{8,}_[A-Za-z0-9_-]{16,}")),
    ("maestro-token", re.compile(r"\bmt_[A-Za-z0-9_.-]{20,}")),
    ("npm-token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b")),
    ("github-token", re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}")),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}")),
    (
        "secret-keyword",
        re.compile(
            r"(?i)\b(?:password|passwd|pwd|secret|api_?key|auth_?token|access_?token)\b"
            r"\\?[\"']?\s*[:=]\s*\\?[\"']([^\"'\\\s]{6,})"
        ),
    ),
)
_SKIPPED_DETECTORS = {
    "Public IP (ipv4)",  # an address is not a credential; test output is full of them
    "Base64 High Entropy String",  # digests and ids in test output are high-entropy too
    "Hex High Entropy String",
}
_CLEAN = re.compile(r"[^a-z0-9]+")


def marker(kind: str, value: str) -> str:
    """The text that stands for ``value``: its kind and a short stable fingerprint."""
    fp = hashlib.sha256(value.encode("utf-8", "surrogateescape")).hexdigest()[:4]
    return f"[REDACTED:{kind}:{fp}]"


def slug(text: str) -> str:
    return _CLEAN.sub("-", text.lower()).strip("-")


def encodings(value: str) -> set[str]:
    """The forms a known secret is printed in (each redacted as the secret)."""
    raw = value.encode("utf-8", "surrogateescape")
    forms = {value, quote(value, safe=""), quote_plus(value, safe=""), raw.hex()}
    forms.add(json.dumps(value)[1:-1])
    forms.add(repr(value)[1:-1])
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(raw).decode("ascii")
        forms |= {text, text.rstrip("=")}
    return {f for f in forms if len(f) >= MIN_KNOWN_LENGTH}


@dataclass(frozen=True, slots=True)
class Finding:
    """A secret found in a text: where, and of which kind (never the value itself in logs)."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class _Pattern:
    kind: str
    regex: re.Pattern[str]
    group: int | None  # the group that is the secret; None: the first group unless it is a prefix


@functools.cache
def _detector_patterns() -> tuple[_Pattern, ...]:
    """detect-secrets' regex detectors (imported on first use: the package is slow to import)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.plugins.keyword import QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP

    found: list[_Pattern] = []
    plugins: dict[str, type[Any]] = get_mapping_from_secret_type_to_class()
    for secret_type, plugin in plugins.items():
        if secret_type in _SKIPPED_DETECTORS or not issubclass(plugin, RegexBasedDetector):
            continue
        denylist: Iterable[re.Pattern[str]] = getattr(plugin, "denylist", ())
        for regex in denylist:
            found.append(_Pattern(slug(secret_type), regex, None))
    for regex, group in QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP.items():
        found.append(_Pattern("secret-keyword", regex, group))
    return tuple(found)


@dataclass
class Redactor:
    """Finds and replaces secrets. Thread-safe; known values can be added while it serves."""

    detectors: bool = True
    _known: dict[str, str] = field(default_factory=dict)  # printed form -> kind
    _known_regex: re.Pattern[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], *, detectors: bool = True) -> Redactor:
        """A redactor knowing the secret-named variables of ``environ``."""
        redactor = cls(detectors=detectors)
        for name, value in environ.items():
            if SECRET_NAME.search(name):
                redactor.add_known(value, kind=f"env-{slug(name)}")
        return redactor

    def add_known(self, value: str, *, kind: str = "known") -> None:
        """Redact ``value`` (and its encodings) wherever it appears from now on."""
        forms = encodings(value)
        if not forms:
            return
        with self._lock:
            for form in forms:
                self._known.setdefault(form, kind)
            alternatives = sorted(self._known, key=len, reverse=True)  # longest form first
            self._known_regex = re.compile("|".join(re.escape(a) for a in alternatives))

    def add_many(self, values: Iterable[str], *, kind: str = "known") -> None:
        for value in values:
            self.add_known(value, kind=kind)

    def findings(self, text: str) -> list[Finding]:
        """Secrets in ``text``, left to right, overlaps merged into the earliest one."""
        spans: list[Finding] = list(self._find_known(text))
        spans += _find_structural(text)
        if self.detectors:
            spans += _find_detected(text)
        spans.sort(key=lambda f: (f.start, -f.end))
        merged: list[Finding] = []
        for f in spans:
            if merged and f.start < merged[-1].end:
                last = merged[-1]
                if f.end > last.end:
                    merged[-1] = Finding(last.kind, last.start, f.end)
                continue
            merged.append(f)
        return merged

    def redact(self, text: str) -> Redacted:
        """``text`` with every secret replaced by its marker."""
        found = self.findings(text) if text else []
        if not found:
            return Redacted(text)
        out: list[str] = []
        at = 0
        for f in found:
            out += [text[at : f.start], marker(f.kind, text[f.start : f.end])]
            at = f.end
        out.append(text[at:])
        return Redacted("".join(out))

    def redact_optional(self, text: str | None) -> Redacted | None:
        return None if text is None else self.redact(text)

    def _find_known(self, text: str) -> Iterator[Finding]:
        regex = self._known_regex
        if regex is None:
            return
        for m in regex.finditer(text):
            yield Finding(self._known[m.group()], m.start(), m.end())


def preload() -> None:
    """Import and compile the detectors now (e.g. in a thread while pytest runs), so the first
    redaction after a run does not wait for them."""
    _detector_patterns()


def _find_structural(text: str) -> list[Finding]:
    found = [Finding("private-key", m.start(), m.end()) for m in _PEM.finditer(text)]
    found += [
        Finding("authorization-header", m.start(1), m.end(1)) for m in _AUTH_HEADER.finditer(text)
    ]
    for kind, regex in _EXTRA:
        for m in regex.finditer(text):
            start, end = m.span(1 if regex.groups else 0)
            found.append(Finding(kind, start, end))
    return found


def _find_detected(text: str) -> list[Finding]:
    found: list[Finding] = []
    for pattern in _detector_patterns():
        for m in pattern.regex.finditer(text):
            group = pattern.group
            if group is None:
                # a detector's group is either the value after a keyword (redact it alone) or a
                # prefix like GitHub's `ghp` (redact the whole token)
                group = 1 if m.re.groups and m.start(1) > m.start() else 0
            start, end = m.span(group)
            if start >= 0 and end > start:
                found.append(Finding(pattern.kind, start, end))
    return found


class RedactingFormatter(logging.Formatter):
    """A log formatter whose whole output (message, arguments, traceback) is redacted: logs are
    an egress too, and a library's error message may quote a request line or a header."""

    def __init__(self, fmt: str | None = None, *, redactor: Redactor | None = None) -> None:
        super().__init__(fmt)
        self.redactor = redactor or Redactor()

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.redact(super().format(record))
