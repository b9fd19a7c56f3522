"""Seeded secrets for the red-team tests: at least 15 kinds, each value random per seed, each
planted in the contexts a test run produces (prints, assertion messages, exceptions, warnings,
log lines, JSON and repr dumps, URLs)."""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass

ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


@dataclass(frozen=True)
class Seed:
    kind: str
    value: str  # what must not survive
    text: str  # the line or block it is planted in


def _r(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _pem(rng: random.Random, label: str) -> str:
    body = "\n".join(_r(rng, 64, ALNUM + "+/") for _ in range(6))
    return f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"


def _jwt(rng: random.Random) -> str:
    def part(obj: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    head = part({"alg": "HS256", "typ": "JWT"})
    claims = part({"sub": _r(rng, 8), "exp": rng.randint(10**9, 2 * 10**9)})
    return f"{head}.{claims}.{_r(rng, 43, ALNUM + '-_')}"


PEM_LABELS = ["RSA PRIVATE KEY", "EC PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY"]

# kind -> value maker; "env" kinds are registered with the redactor as known values
MAKERS: dict[str, Callable[[random.Random], str]] = {
    "aws-access-key": lambda r: "AKIA" + _r(r, 16, string.ascii_uppercase + string.digits),
    "github-token": lambda r: r.choice(["ghp_", "gho_", "ghs_", "ghu_"]) + _r(r, 36),
    "gitlab-token": lambda r: "glpat-" + _r(r, 20, ALNUM + "-_"),
    "slack-token": lambda r: (
        f"xoxb-{r.randint(10**10, 10**11)}-{r.randint(10**10, 10**11)}-" + _r(r, 24)
    ),
    "slack-webhook": lambda r: (
        "https://hooks.slack.com/services/T"
        + _r(r, 8, string.ascii_uppercase + string.digits)
        + "/B"
        + _r(r, 8, string.ascii_uppercase + string.digits)
        + "/"
        + _r(r, 24)
    ),
    "stripe-key": lambda r: "sk_live_" + _r(r, 24),
    "jwt": _jwt,
    "npm-token": lambda r: "npm_" + _r(r, 36),
    "sendgrid-key": lambda r: "SG." + _r(r, 22, ALNUM + "-_") + "." + _r(r, 43, ALNUM + "-_"),
    "twilio-key": lambda r: "SK" + _r(r, 32, HEX),
    "private-key": lambda r: _pem(r, r.choice(PEM_LABELS)),
    "url-password": lambda r: _r(r, 14),
    "basic-auth-header": lambda r: base64.b64encode(f"{_r(r, 6)}:{_r(r, 14)}".encode()).decode(),
    "bearer-token": lambda r: _r(r, 40, ALNUM + "._-"),
    "password-assignment": lambda r: _r(r, 16, ALNUM + "!#%"),
    "env-aws-secret": lambda r: _r(r, 40, ALNUM + "/+"),
    "env-api-token": lambda r: _r(r, 32),
    "env-base64-wrapped": lambda r: _r(r, 24),
}
ENV_NAMES = {
    "env-aws-secret": "AWS_SECRET_ACCESS_KEY",
    "env-api-token": "MYSERVICE_API_TOKEN",
    "env-base64-wrapped": "DEPLOY_PASSWORD",
}

CONTEXTS: list[Callable[[str], str]] = [
    lambda s: f"printed: {s}",
    lambda s: f"AssertionError: assert '{s}' == 'expected'",
    lambda s: f"E       ValueError: could not use credential {s}!",
    lambda s: f"tests/test_x.py:12: UserWarning: leaked {s}\n  warnings.warn(...)",
    lambda s: f"2026-12-03 10:00:01 INFO client: sending {s} to the server",
    lambda s: json.dumps({"config": {"value": s, "n": 1}}),
    lambda s: repr({"value": s}),
]


def plant(kind: str, value: str, context: Callable[[str], str]) -> str:
    """The text a test would produce with this secret in it."""
    match kind:
        case "url-password":
            return context(f"postgres://admin:{value}@db.internal:5432/app")
        case "basic-auth-header":
            return context(f"Authorization: Basic {value}")
        case "bearer-token":
            return context(f"Authorization: Bearer {value}")
        case "password-assignment":
            return context(f'password = "{value}"')
        case "env-base64-wrapped":
            return context(base64.b64encode(value.encode()).decode())
        case _:
            return context(value)


def seeds(count: int = 240, seed: int = 20261203) -> Iterator[Seed]:
    """``count`` planted secrets, every kind in turn, contexts rotating."""
    rng = random.Random(seed)
    kinds = sorted(MAKERS)
    for i in range(count):
        kind = kinds[i % len(kinds)]
        value = MAKERS[kind](rng)
        yield Seed(kind, value, plant(kind, value, CONTEXTS[i % len(CONTEXTS)]))


def environ_for(planted: list[Seed]) -> dict[str, str]:
    """An environment holding the env-kind seeds' values, as a developer's shell would (one
    variable per value: the redactor reads every variable whose name marks a secret)."""
    env = {"PATH": "/usr/bin", "HOME": "/home/dev", "LANG": "C.UTF-8"}
    for i, s in enumerate(planted):
        if s.kind in ENV_NAMES:
            env[f"{ENV_NAMES[s.kind]}_{i}"] = s.value
    return env
