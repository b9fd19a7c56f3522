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
import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NewType, final
from urllib.parse import quote, quote_plus

log = logging.getLogger(__name__)

Redacted = NewType("Redacted", str)
"""Text a :class:`Redactor` returned."""

_MINT = object()


@final
class RedactedBlob:
    """Bytes cleared to leave the machine. Only this module makes one (``Redactor.redact_blob``,
    ``redact_json``, ``vet``): the upload queue and the upload path take nothing else, so bytes
    that skipped redaction are a type error, and a constructor call a runtime one."""

    __slots__ = ("data",)

    def __init__(self, data: bytes, *, _mint: object = None) -> None:
        if _mint is not _MINT:
            raise TypeError("a RedactedBlob is made by Redactor.redact_blob, redact_json or vet")
        self.data = data

    def __len__(self) -> int:
        return len(self.data)

    def __repr__(self) -> str:
        return f"RedactedBlob({len(self.data)} bytes)"


@dataclass(frozen=True, slots=True)
class Vetted:
    """The last scan of bytes about to leave: what it found (kinds only), and the blob that may
    go, None when a secret was found and the scan enforces."""

    blob: RedactedBlob | None
    kinds: tuple[str, ...] = ()

    @property
    def blocked(self) -> bool:
        return self.blob is None


MIN_KNOWN_LENGTH = 8
"""Shorter values are not redacted by value: a 4-character password would blank half a log."""

SECRET_NAME = re.compile(
    r"PASSW(?:OR)?D"  # anywhere: PGPASSWORD, MYSQLPASSWD
    r"|(?:^|_)(?:TOKEN|SECRET|PWD|API_?KEY|ACCESS_?KEY(?:_ID)?|PRIVATE_?KEY|"
    r"SECRET_?KEY|AUTH|CREDENTIALS?|SESSION|COOKIE|DSN|WEBHOOK)(?:_|$)",
    re.IGNORECASE,
)
"""Environment variable names whose values are secrets (AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN,
PGPASSWORD, SENTRY_DSN, ...)."""

NOT_SECRET_NAMES = frozenset({"PWD", "OLDPWD"})
"""The shell's current and previous directory: every path under them would be blanked."""

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
# (once or more: a traceback shows the source line of a test holding `password = \\"...\\"`)
_EXTRA = {
    "maestro-api-key": re.compile(r"\bmk_[A-Za-z0-9]{8,}_[A-Za-z0-9_-]{16,}"),
    "maestro-token": re.compile(r"\bmt_[A-Za-z0-9_.-]{20,}"),
    "npm-token": re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"),
    "github-token": re.compile(r"\bgithub_pat_[A-Za-z0-9_]{22,}"),
    "google-api-key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),
    "secret-keyword": re.compile(
        r"(?i)\b(?:password|passwd|pwd|secret|api_?key|auth_?token|access_?token)\b"
        r"\\*[\"']?\s*[:=]\s*\\*[\"']([^\"'\\\s]{6,})"
    ),
}
_SKIPPED_DETECTORS = {
    "Public IP (ipv4)",  # an address is not a credential; test output is full of them
    "Base64 High Entropy String",  # digests and ids in test output are high-entropy too
    "Hex High Entropy String",
}
_CLEAN = re.compile(r"[^a-z0-9]+")
_UNDECODED = re.compile("[\udc80-\udcff]")
_MARKER = re.compile(r"\[REDACTED:[a-z0-9-]+:[0-9a-f]{4}\]")


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


Trigger = tuple[str, bool]
"""A regex (a literal or literal-led, so a search for it is cheap) that every match of a pattern
matches too, and whether it is searched in the lowercased text."""

CONTEXT_LINES = 0
"""Lines scanned on each side of a trigger's line: none, detect-secrets scans line by line too."""

_QUOTES = ("'", '"', "`")

_MIN_LENGTH = {"basic-auth-credentials": 6}
"""Shorter values of these kinds are placeholders (``http://u:p@host``, ``user:pass@``: test ids
of URL-parsing tests are full of them), not credentials."""


# Triggers are few and shared (each is one pass over the text), literal-led so that the regex
# engine skips to their first characters: a kind's triggers are those of its patterns, grouped.
# Case-sensitive, on the text as it is:
_A = (r"A(?:KC|P|3T|BIA|CCA|KIA|SIA|C|Iza|ccountKey=)", False)  # artifactory, AWS, Twilio AC...
_SK = (r"S(?:K|G\.)", False)  # Twilio SK, SendGrid
_G = (r"g(?:h[pousr]_|ithub_pat_|l(?:pat|dt|ft|soat|rt|cbt|imt|ptt|agent|oas)-)", False)
_PEM_KEY = (r"P(?:RIVATE KEY|uTTY-User-Key-File-2)", False)
_URL = ("://", False)
_DOTS = (r"\.[\w-]{6}\.(?<=[\w-]{23}\.[\w-]{6}\.)", False)  # Discord: 23+ chars . 6 .
_COLON = (r":(?<=\d:)[\w-]{35}", False)  # Telegram: digits, colon, 35 characters
# Lowercased (the detectors that ignore case; rare literals, whose case does not matter, too),
# merged by first letter:
_K = (
    r"k(?:ey(?:(?<=[a-z]_key)|(?<=(?:pi|th|ce|nt|db|se|iv|te)key)|[\"']?\]? *[=: ])|_live_)",
    True,
)  # api_key, privatekey... (not "keys", "KeyError", "monkeypatch"), key = ..., Stripe
_P = (r"p(?:ass(?:w|(?<=[_bey]pass))|w|ypi-ag)", True)  # password, db_pass, pwd, PyPI
_PASS_IS = (r"pass[\"']?\]? *[=: ]", True)  # pass = ...
_T = ("token", True)
_OPENAI = ("T3BlbkFJ", False)
_S = ("secret", True)
_SQUARE = ("sq0csp-", False)
_AW = ("aws", True)
_AUTHORIZATION = ("authorization", True)
_C = (
    r"c(?:ontrase|loudant\.com|l(?:oudant|ou)?[_-]?(?:api)?(?:key|pw|pass|token))",
    True,
)  # contraseña, Cloudant
_M = (r"m[kt]_", True)  # Maestro's keys and tokens
_N = ("npm_", True)


def _lower(literal: str) -> Trigger:
    return (re.escape(literal.lower()), True)


_KEYWORD = (_K, _P, _S, _C)  # detect-secrets' keyword detector
_CREDENTIAL_WORD = (_K, _P, _PASS_IS, _T)  # IBM, SoftLayer: key|pwd|pass|token, then =
_SOFTLAYER_API = ("api.softlayer.com", True)
# ... and what they need on the line: the word, a separator, a value of 44 (IBM) or 64 characters
_CREDENTIAL_VALUE = re.compile(
    r"(?i)(?:key|pwd|pass|token)[\"']?\]? *(?:=>?|:=?|:| +) *[\"']?[\w-]{44}"
    r"|api\.softlayer\.com/soap/"
)
_ASSIGNS = re.compile(r"[:=;]")  # the keyword detector's forms: key: '...', key = '...', ... ;
# By detect-secrets kind: what each of the kind's patterns must match (read off their regexes;
# tests/redaction checks that the screened scan finds what the full scan finds). A kind missing
# here, or None, is scanned over the whole text.
_DETECTOR_TRIGGERS: dict[str, tuple[Trigger, ...] | None] = {
    "artifactory-credentials": (_A,),
    "aws-access-key": (_A, _AW),
    "azure-storage-account-access-key": (_A,),
    "basic-auth-credentials": (_URL,),
    "cloudant-credentials": (_C,),
    "discord-bot-token": (_DOTS,),
    "github-token": (_G,),
    "gitlab-token": (_G, _lower("GR1348941")),
    "ibm-cloud-iam-key": _CREDENTIAL_WORD,
    "ibm-cos-hmac-credentials": (_S,),
    "json-web-token": (_lower("eyJ"),),
    "mailchimp-access-key": (_lower("-us"),),
    "npm-tokens": (_lower("_authToken="),),
    "openai-token": (_OPENAI,),
    "private-key": (_PEM_KEY,),
    "pypi-token": (_P,),
    "sendgrid-api-key": (_SK,),
    "slack-token": (_lower("xox"), _lower("hooks.slack.com")),
    "softlayer-credentials": (*_CREDENTIAL_WORD, _SOFTLAYER_API),
    "square-oauth-secret": (_SQUARE,),
    "stripe-access-key": (_K,),
    "telegram-bot-token": (_COLON,),
    "twilio-api-key": (_A, _SK),
    "secret-keyword": _KEYWORD,
}


@dataclass(frozen=True)
class _Pattern:
    kind: str
    regex: re.Pattern[str]
    group: int | None
    """The group that is the secret; None: a detector's rule (see ``_span``)."""
    triggers: tuple[Trigger, ...] | None
    """Every match contains one of these; None: no screen, the whole text is scanned."""
    within_lines: bool = True
    """A match never spans more lines than a trigger's window; False: once a trigger is seen,
    the whole text is scanned (PEM blocks)."""
    requires: tuple[str, ...] = ()
    """A window is scanned only if it holds one of these too (the keyword detectors need a
    quote: their regexes are slow, and a keyword without one is common, e.g. "passwords")."""
    needs: re.Pattern[str] | None = None
    """... and a match of this (IBM's and SoftLayer's values are long)."""


_STRUCTURAL = (
    _Pattern("private-key", _PEM, 0, (_PEM_KEY,), within_lines=False),
    _Pattern("authorization-header", _AUTH_HEADER, 1, (_AUTHORIZATION,)),
    _Pattern("maestro-api-key", _EXTRA["maestro-api-key"], 0, (_M,)),
    _Pattern("maestro-token", _EXTRA["maestro-token"], 0, (_M,)),
    _Pattern("npm-token", _EXTRA["npm-token"], 0, (_N,)),
    _Pattern("github-token", _EXTRA["github-token"], 0, (_G,)),
    _Pattern("google-api-key", _EXTRA["google-api-key"], 0, (_A,)),
    _Pattern(
        "secret-keyword",
        _EXTRA["secret-keyword"],
        1,
        (_K, _P, _S, _T),
        requires=_QUOTES,
    ),
)


@functools.cache
def _detector_patterns() -> tuple[_Pattern, ...]:
    """detect-secrets' regex detectors. Importing the package costs 0.2-0.5 s of CPU (it imports
    ``requests``), in every CLI run: their regexes are saved in the user cache, per
    detect-secrets version, and read back from there by later processes. With none saved, a
    process imports them itself, or reads them in a child interpreter (see
    :func:`import_detectors_apart`)."""
    saved = _saved_detectors_path()
    rows = _read_detectors(saved) if saved is not None else None
    if rows is None:
        rows = _child_detectors() if _apart.is_set() else None
        if rows is None:
            rows = _imported_detectors()
        if saved is not None:
            _save_detectors(saved, rows)
    return tuple(_detector_pattern(*row) for row in rows)


_apart = threading.Event()


def import_detectors_apart() -> None:
    """For a long-lived process (the daemon): detectors not saved yet are read in a child
    interpreter, so that this process does not keep detect-secrets, requests and their native
    parts loaded for its whole life; it imports them itself only when the child fails. A
    one-shot process imports them itself: that costs about half the CPU of a child."""
    _apart.set()


_CHILD_TIMEOUT_S = 60.0
_CHILD_SOURCE = (
    "import json, sys\n"
    "from maestro.redaction import _imported_detectors\n"
    "sys.stdout.write(json.dumps(_imported_detectors()))\n"
)


def _child_detectors() -> list[_DetectorRow] | None:
    """The detectors' rows as a child interpreter reads them; None when it fails."""
    import subprocess
    import sys

    try:
        done = subprocess.run(
            # -I: a folder named maestro in the current directory must not shadow the package,
            # nor the user's PYTHONPATH, PYTHONSTARTUP or sitecustomize run in our child
            [sys.executable, "-I", "-c", _CHILD_SOURCE],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_CHILD_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        log.debug("cannot read the detectors in a child: %s", exc)
        return None
    if done.returncode != 0:
        log.debug("reading the detectors in a child failed: %s", done.stderr[-2000:])
        return None
    return _parsed_detectors(done.stdout)


_DetectorRow = tuple[str, str, int, int | None]
"""(kind, regex source, regex flags, secret group or None for a detector's rule)."""


def _imported_detectors() -> list[_DetectorRow]:
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector
    from detect_secrets.plugins.keyword import QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP

    rows: list[_DetectorRow] = []
    plugins: dict[str, type[Any]] = get_mapping_from_secret_type_to_class()
    for secret_type, plugin in plugins.items():
        if secret_type in _SKIPPED_DETECTORS or not issubclass(plugin, RegexBasedDetector):
            continue
        denylist: Iterable[re.Pattern[str]] = getattr(plugin, "denylist", ())
        rows += [(slug(secret_type), r.pattern, r.flags, None) for r in denylist]
    for regex, group in QUOTES_REQUIRED_DENYLIST_REGEX_TO_GROUP.items():
        rows.append(("secret-keyword-quoted", regex.pattern, regex.flags, group))
    return rows


def _detector_pattern(kind: str, source: str, flags: int, group: int | None) -> _Pattern:
    if kind == "secret-keyword-quoted":  # the keyword detector's own quoted forms
        return _Pattern(
            "secret-keyword",
            re.compile(source, flags),
            group,
            _KEYWORD,
            requires=_QUOTES,
            needs=_ASSIGNS,
        )
    needs = _CREDENTIAL_VALUE if kind in ("ibm-cloud-iam-key", "softlayer-credentials") else None
    if kind == "secret-keyword":
        needs = _ASSIGNS
    return _Pattern(
        kind,
        re.compile(source, flags),
        None,
        _DETECTOR_TRIGGERS.get(kind),
        requires=_QUOTES if kind == "secret-keyword" else (),
        needs=needs,
    )


def _saved_detectors_path() -> Path | None:
    from maestro.paths import cache_dir

    installed = _detect_secrets_version()
    if installed is None:
        return None
    try:
        return cache_dir() / "detectors" / f"detect-secrets-{installed}.json"
    except OSError:
        return None


def _detect_secrets_version() -> str | None:
    """detect-secrets' version, from the name of its dist-info folder beside the package (found
    without importing it); from importlib.metadata only when that folder is not there. The
    daemon formats its first log line with the detectors, before it answers: importing
    importlib.metadata (and email with it) there would cost more than the rest of their load."""
    import importlib.util

    spec = importlib.util.find_spec("detect_secrets")
    if spec is None:
        return None
    if spec.origin is not None:
        names = [p.name for p in Path(spec.origin).parent.parent.glob("detect_secrets-*.dist-info")]
        if len(names) == 1:
            return names[0].removeprefix("detect_secrets-").removesuffix(".dist-info")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("detect-secrets")
    except PackageNotFoundError:
        return None


def _read_detectors(path: Path) -> list[_DetectorRow] | None:
    """The saved rows; None when absent or not exactly what this module writes."""
    try:
        return _parsed_detectors(path.read_bytes())
    except OSError:
        return None


def _parsed_detectors(text: bytes) -> list[_DetectorRow] | None:
    """The rows in ``text``; None when it is not exactly what this module writes."""
    try:
        data = json.loads(text)
        rows = [(str(k), str(p), int(f), None if g is None else int(g)) for k, p, f, g in data]
        for _, source, flags, _ in rows:
            re.compile(source, flags)
    except (ValueError, TypeError, re.error):
        return None
    return rows or None


def _save_detectors(path: Path, rows: list[_DetectorRow]) -> None:
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(rows, f)
        os.replace(tmp, path)
    except OSError as exc:
        log.debug("cannot save the detectors to %s: %s", path, exc)


@dataclass
class Redactor:
    """Finds and replaces secrets. Thread-safe; known values can be added while it serves.

    ``screen`` (default on) runs a detector only around the lines holding one of its trigger
    literals (found with ``str.find``, which is cheap), instead of over the whole text; off, every
    detector scans everything (the reference the screened scan is tested against)."""

    detectors: bool = True
    screen: bool = True
    _known: dict[str, str] = field(default_factory=dict)  # printed form -> kind
    _known_regex: re.Pattern[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str], *, detectors: bool = True, screen: bool = True
    ) -> Redactor:
        """A redactor knowing the secret-named variables of ``environ``."""
        redactor = cls(detectors=detectors, screen=screen)
        for name, value in environ.items():
            if SECRET_NAME.search(name) and name.upper() not in NOT_SECRET_NAMES:
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

    def findings(self, text: str, *, whole: Mapping[str, str] | None = None) -> list[Finding]:
        """Secrets in ``text``, left to right, overlaps merged into the earliest one. ``whole``:
        secrets (value -> kind) found in a text printed with this one, whose shortened forms
        are found here too."""
        spans: list[Finding] = list(self._find_known(text))
        patterns = _STRUCTURAL + _detector_patterns() if self.detectors else _STRUCTURAL
        spans += _scan(patterns, text, screen=self.screen)
        if _ELLIPSIS in text:
            spans += _elided(text, {**(whole or {}), **self._elision_values(text, spans)})
        if "[REDACTED:" in text:  # redacted text stays as it is (`password = "[REDACTED:...]"`)
            spans = [f for f in spans if not _redacted_already(text, f)]
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
        return self._replace(text, marker)

    def seal(self, text: str, key: bytes) -> Redacted:
        """``text`` with every secret replaced by a digest of it keyed by ``key``
        (``[SEALED:<kind>:<32 hex>]``): two texts sealed with one key are equal exactly when
        their secrets are (a marker's 4 hex digits would make that a guess); without the key
        the digest tells nothing of the value, however short."""

        def keyed(kind: str, value: str) -> str:
            mac = hmac.new(key, value.encode("utf-8", "surrogateescape"), hashlib.sha256)
            return f"[SEALED:{kind}:{mac.hexdigest()[:32]}]"

        return self._replace(text, keyed)

    def redact_failure(
        self, message: str | None, report: str | None
    ) -> tuple[Redacted | None, Redacted | None]:
        """A failure's one-line message and pytest's report of it, redacted: the message shows
        a long value shortened (``'ghp_Lq8Lq...8Lq8Lq8'``) where the report's source lines or
        diff hold it whole, so what is found whole in the report is looked for in the message."""
        if report is None:
            return self.redact_optional(message), None
        found = self.findings(report)
        whole = {report[f.start : f.end]: f.kind for f in found}
        redacted_report = self._apply(report, found, marker)
        if message is None:
            return None, redacted_report
        return self._apply(message, self.findings(message, whole=whole), marker), redacted_report

    def _replace(self, text: str, mark: Callable[[str, str], str]) -> Redacted:
        return self._apply(text, self.findings(text) if text else [], mark)

    @staticmethod
    def _apply(text: str, found: list[Finding], mark: Callable[[str, str], str]) -> Redacted:
        if not found:
            return Redacted(text)
        out: list[str] = []
        at = 0
        for f in found:
            out += [text[at : f.start], mark(f.kind, text[f.start : f.end])]
            at = f.end
        out.append(text[at:])
        return Redacted("".join(out))

    def redact_optional(self, text: str | None) -> Redacted | None:
        return None if text is None else self.redact(text)

    def redact_blob(self, data: bytes) -> RedactedBlob:
        """``data`` as text (undecodable bytes kept as they are) with every secret replaced."""
        text = data.decode("utf-8", "surrogateescape")
        return RedactedBlob(self.redact(text).encode("utf-8", "surrogateescape"), _mint=_MINT)

    def redact_json(self, value: Any) -> RedactedBlob:
        """A JSON document (compact, sorted keys) of ``value`` with every string, keys included,
        redacted: a telemetry row's node ids and messages as much as its text fields."""
        return RedactedBlob(
            json.dumps(self._redact_tree(value), sort_keys=True, separators=(",", ":")).encode(),
            _mint=_MINT,
        )

    def _redact_tree(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {self.redact(str(k)): self._redact_tree(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._redact_tree(v) for v in value]
        return value

    def vet(self, data: bytes, *, enforce: bool = True) -> Vetted:
        """The last scan before ``data`` leaves: unchanged (it may be content-addressed), cleared
        when it holds no secret; when it does, blocked if ``enforce``, else cleared anyway (the
        caller counts and warns)."""
        # bytes that are not UTF-8 (msgpack's framing around the strings of an encoded result)
        # end a token, as a separator would: a marker is not read as a longer value
        text = _UNDECODED.sub(" ", data.decode("utf-8", "surrogateescape"))
        found = self.findings(text)
        kinds = tuple(sorted({f.kind for f in found}))
        if found and enforce:
            return Vetted(None, kinds)
        return Vetted(RedactedBlob(data, _mint=_MINT), kinds)

    def _elision_values(self, text: str, found: list[Finding]) -> dict[str, str]:
        """The secrets whose shortened form (pytest's ``'ghp_Lq8Lq...8Lq8Lq8'``) ``text`` may
        hold: those found in it whole, and the known ones."""
        values = {text[f.start : f.end]: f.kind for f in found}
        with self._lock:
            values.update(self._known)
        return values

    def _find_known(self, text: str) -> Iterator[Finding]:
        regex = self._known_regex
        # one str search per printed form is far cheaper than the alternation over the text
        if regex is None or not any(form in text for form in self._known):
            return
        for m in regex.finditer(text):
            yield Finding(self._known[m.group()], m.start(), m.end())


_ELLIPSIS = "..."
_RUN_END = frozenset(" \t\r\n'\"`.")  # a dot too: progress dots are no value's parts
_ELIDED_RUN = 200  # characters looked at on each side of an ellipsis
_ELIDED_MIN = 8  # characters of a secret on the two sides together that count as a leak


def _elided(text: str, values: Mapping[str, str]) -> Iterator[Finding]:
    """Secrets shortened around an ellipsis, as pytest shows a long value in an assertion
    (``'opal-harbor-...alue-here-yes'``): the end of the run before ``...`` and the start of
    the one after it, where each is a part of one secret and both hold at least
    ``_ELIDED_MIN`` of its characters. Neither part matches the whole value, nor a detector."""
    candidates = [v for v in values if len(v) >= _ELIDED_MIN]
    if not candidates:
        return
    at = text.find(_ELLIPSIS)
    while at != -1:
        start = at
        while start > 0 and at - start < _ELIDED_RUN and text[start - 1] not in _RUN_END:
            start -= 1
        end = at + len(_ELLIPSIS)
        stop = end
        while stop < len(text) and stop - end < _ELIDED_RUN and text[stop] not in _RUN_END:
            stop += 1
        before, after = text[start:at], text[end:stop]
        for value in candidates if len(before) + len(after) >= _ELIDED_MIN else ():
            head = _longest(value, before, suffix=True)
            tail = _longest(value, after, suffix=False)
            if len(head) + len(tail) >= _ELIDED_MIN:
                yield Finding(
                    values[value], at - len(head) if head else at, end + len(tail) if tail else at
                )
                break
        at = text.find(_ELLIPSIS, end)


def _longest(value: str, run: str, *, suffix: bool) -> str:
    """The longest end (``suffix``) or start of ``run`` that is a part of ``value``, if at
    least 4 characters long."""
    # every such part holds the run's last (first) 4 characters: most runs end here
    if len(run) < 4 or (run[-4:] if suffix else run[:4]) not in value:
        return ""
    for size in range(min(len(run), len(value)), 3, -1):
        part = run[-size:] if suffix else run[:size]
        if part in value:
            return part
    return ""


def _redacted_already(text: str, found: Finding) -> bool:
    """A value that starts with a marker (whatever a detector's character class let follow
    it: `</failure>`, `&quot;`) or that is only markers."""
    if _MARKER.match(text, found.start):
        return True
    return len(_MARKER.sub("", text[found.start : found.end]).strip("\"'` ")) < 4


def preload() -> None:
    """Import and compile the detectors now (e.g. in a thread while pytest runs), so the first
    redaction after a run does not wait for them."""
    _detector_patterns()


class _Screen:
    """Where a text holds each trigger literal, as windows of whole lines around it."""

    def __init__(self, text: str) -> None:
        self.text = text
        low = text.lower()
        # lowercasing may change a length (e.g. U+0130): then offsets would not line up
        self.low: str | None = low if len(low) == len(text) else None
        self._cache: dict[Trigger, list[tuple[int, int]]] = {}
        self._checked: dict[tuple[object, ...], list[tuple[int, int]]] = {}

    def checked(self, pattern: _Pattern) -> list[tuple[int, int]]:
        """The windows where ``pattern`` may match: its triggers' lines that also hold what it
        ``requires`` and ``needs`` (shared by the patterns of a detector, computed once)."""
        key = (pattern.triggers, pattern.within_lines, pattern.requires, pattern.needs)
        done = self._checked.get(key)
        if done is None:
            text, requires, needs = self.text, pattern.requires, pattern.needs
            done = [
                (lo, hi)
                for lo, hi in self.windows(pattern)
                if (not requires or any(c in text[lo:hi] for c in requires))
                and (needs is None or needs.search(text, lo, hi) is not None)
            ]
            self._checked[key] = done
        return done

    def windows(self, pattern: _Pattern) -> list[tuple[int, int]]:
        whole = [(0, len(self.text))]
        if pattern.triggers is None or self.low is None:
            return whole
        spans: list[tuple[int, int]] = []
        for trigger in pattern.triggers:
            found = self._of(trigger)
            if found and not pattern.within_lines:
                return whole
            spans += found
        if len(pattern.triggers) > 1:
            spans.sort()
        merged: list[tuple[int, int]] = []
        for lo, hi in spans:
            if merged and lo <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        return merged

    def _of(self, trigger: Trigger) -> list[tuple[int, int]]:
        cached = self._cache.get(trigger)
        if cached is not None:
            return cached
        regex, folded = _compiled(trigger[0]), trigger[1]
        hay = self.low if folded and self.low is not None else self.text
        text = self.text
        out: list[tuple[int, int]] = []
        size = len(text)
        m = regex.search(hay)
        while m is not None:
            lo, hi = m.span()
            for _ in range(CONTEXT_LINES + 1):
                lo = text.rfind("\n", 0, lo)
                if lo < 0:
                    break
            for _ in range(CONTEXT_LINES + 1):
                hi = text.find("\n", hi)
                if hi < 0:
                    break
                hi += 1
            if lo < 0:
                lo = 0
            if hi < 0:
                hi = size
            if out and lo <= out[-1][1]:
                out[-1] = (out[-1][0], hi)
            else:
                out.append((lo, hi))
            # a trigger's match crosses no newline: the next one starts past this window
            m = regex.search(hay, hi) if hi < size else None
        self._cache[trigger] = out
        return out


@functools.cache
def _compiled(regex: str) -> re.Pattern[str]:
    return re.compile(regex)


def _scan(patterns: Iterable[_Pattern], text: str, *, screen: bool) -> list[Finding]:
    found: list[Finding] = []
    if not text:
        return found
    windows = _Screen(text) if screen else None
    for pattern in patterns:
        spans = windows.checked(pattern) if windows is not None else [(0, len(text))]
        for lo, hi in spans:
            for m in pattern.regex.finditer(text, lo, hi):
                start, end = m.span(_group(pattern, m))
                if start >= 0 and end - start >= _MIN_LENGTH.get(pattern.kind, 1):
                    found.append(Finding(pattern.kind, start, end))
    return found


def _group(pattern: _Pattern, m: re.Match[str]) -> int:
    if pattern.group is not None:
        return pattern.group
    # a detector's group is either the value after a keyword (redact it alone) or a prefix like
    # GitHub's `ghp` (redact the whole token)
    return 1 if m.re.groups and m.start(1) > m.start() else 0


class RedactingFormatter(logging.Formatter):
    """A log formatter whose whole output (message, arguments, traceback) is redacted: logs are
    an egress too, and a library's error message may quote a request line or a header."""

    def __init__(
        self,
        fmt: str | None = None,
        datefmt: str | None = None,
        *,
        redactor: Redactor | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(fmt, datefmt)
        self._redactor = redactor
        self._environ = environ

    @property
    def redactor(self) -> Redactor:
        """Made on the first record (a process that never logs never builds it), knowing the
        secret-named variables of ``environ`` (default: this process's)."""
        if self._redactor is None:
            self._redactor = Redactor.from_environ(
                os.environ if self._environ is None else self._environ
            )
        return self._redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.redact(super().format(record))


def redact_logs(handler: logging.Handler, fmt: str, *, redactor: Redactor | None = None) -> None:
    """Give ``handler`` a redacting formatter: what it writes has no secret in it."""
    handler.setFormatter(RedactingFormatter(fmt, redactor=redactor))
