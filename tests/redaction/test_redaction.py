"""The redaction module against seeded secrets of every kind, and on ordinary test output."""

from __future__ import annotations

import base64
from collections import Counter

from redaction_seeds import MAKERS, Seed, environ_for, seeds

from maestro.redaction import Redactor, encodings, marker


def leaked(seed: Seed, text: str) -> bool:
    if seed.kind == "private-key":  # any line of the key body is a leak
        body = [ln for ln in seed.value.splitlines() if "-----" not in ln]
        return any(ln in text for ln in body)
    if seed.kind == "env-base64-wrapped":
        return base64.b64encode(seed.value.encode()).decode() in text or seed.value in text
    return seed.value in text


def test_every_seeded_secret_is_redacted() -> None:
    planted = list(seeds())
    assert len(planted) >= 200 and len({s.kind for s in planted}) >= 15
    redactor = Redactor.from_environ(environ_for(planted))
    missed = Counter(s.kind for s in planted if leaked(s, redactor.redact(s.text)))
    assert not missed, f"unredacted: {dict(missed)}"


def test_marker_keeps_the_shape_and_compares_across_runs() -> None:
    token = MAKERS["github-token"](__import__("random").Random(1))
    redactor = Redactor()
    once = redactor.redact(f"token={token} end")
    assert once == f"token={marker('github-token', token)} end"
    assert once == Redactor().redact(f"token={token} end")  # stable fingerprint
    assert once.startswith("token=[REDACTED:github-token:") and once.endswith("] end")


def test_known_values_in_their_encodings() -> None:
    secret = "s3cr3t/value+with=chars"
    redactor = Redactor(detectors=False)
    redactor.add_known(secret, kind="env-db-password")
    for form in encodings(secret):
        out = redactor.redact(f"x {form} y")
        assert form not in out and "[REDACTED:env-db-password:" in out


def test_short_and_non_secret_variables_are_not_known() -> None:
    redactor = Redactor.from_environ(
        {"PASSWORD": "abc", "HOME": "/home/someone-long", "EDITOR": "vim-is-long-enough"},
        detectors=False,
    )
    text = "abc /home/someone-long vim-is-long-enough"
    assert redactor.redact(text) == text


def test_ordinary_test_output_is_left_alone() -> None:
    lines = [
        "tests/test_utils.py::test_to_key_val_list PASSED",
        "E       AssertionError: assert 'https://example.com/path?a=1' == 'https://example.org'",
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "git describe: v2.31.0-12-g3a4b5c6d",
        "key = 'value'  # a dict key named key",
        "uuid 123e4567-e89b-12d3-a456-426614174000 at 127.0.0.1:8080",
        "FAILED tests/test_requests.py::TestRequests::test_basicauth_with_netrc",
        "token count: 42, tokens = ['a', 'b']",
    ]
    redactor = Redactor.from_environ({"PATH": "/usr/bin"})
    changed = [ln for ln in lines if redactor.redact(ln) != ln]
    assert not changed


ORDINARY = [
    "PASSED tests/test_utils.py::test_get_auth_from_url[http://user:pass@complex.url.com/p]",
    "E       KeyError: 'password'",
    "test_password_validation (auth_tests.test_management.Tests.test_password_validation) ok",
    "monkeypatch.setattr(os, 'environ', {'TOKEN_PATH': '/tmp/x'})",
    "tests/test_x.py::test_y[AP-AC-SK] PASSED",
    "  warnings.warn('secret handling changed', DeprecationWarning)",
    "db_pass = 'x'; key_pass == 'y'",
    "cl_api_key: 'abcdefghijklmnopqrstuvwx'",
]


H64 = "0123456789abcdef" * 4
# one line per detector the seeds do not cover, so the screen is checked against each of them
EVERY_DETECTOR = [
    f'ibm_cloud_iam_key = "{"A1b2C3d4E5" * 4}Zz9_"',
    f"softlayer_api_key: {H64}",
    f"see https://api.softlayer.com/soap/v3.1/{H64} for details",
    f"cloudant_password='{H64}'",
    f"https://user:{H64}@acct.cloudant.com",
    f"ibm_cos_hmac_secret_access_key = '{H64[:48]}'",
    "token MTk4NjIyNDgzNDcxOTI1MjQ4.Cl2FMQ.ZnCjm1XVW7vRze4b7Cq4se7kKWs in the log",
    "bot 1234567890:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0 started",
    "mailchimp 0123456789abcdef0123456789abcdef-us12 key",
    "artifactory AKCp8" + "a1B2c3D4e5" * 6 + " end",
    "AccountKey=" + "a" * 86 + "==;",
    "sk-abcdefghij1234567890T3BlbkFJabcdefghij1234567890",
    "//registry.npmjs.org/:_authToken=npm_" + "a1" * 18,
    "pypi-AgEIcHlwaS5vcmc" + "x" * 70,
    "sq0csp-" + "a" * 43,
    "glpat-" + "a1b2c3d4e5" * 2 + " and GR1348941" + "x" * 20,
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----",
    "PuTTY-User-Key-File-2: ssh-rsa",
]


def test_screened_scan_finds_what_the_full_scan_finds() -> None:
    """The trigger screen only skips lines no detector can match: on every seed, on ordinary
    output, and on both mixed into one text, it finds exactly what scanning everything finds."""
    planted = list(seeds())
    env = environ_for(planted)
    screened = Redactor.from_environ(env)
    full = Redactor.from_environ(env, screen=False)
    texts = [s.text for s in planted] + ORDINARY + EVERY_DETECTOR
    texts.append("\n".join(texts))
    texts.append("\n".join(reversed(texts)))
    for text in texts:
        assert screened.findings(text) == full.findings(text), text[:200]
    assert all(full.findings(t) for t in EVERY_DETECTOR)  # each line holds a detected secret


def test_placeholder_url_passwords_are_not_secrets() -> None:
    redactor = Redactor()
    for url in ("http://u:p@host/x", "http://user:pass@host/x"):
        assert redactor.redact(url) == url
    assert "s3cr3tpw" not in redactor.redact("postgres://admin:s3cr3tpw@db/app")


def test_redacted_text_is_left_as_it_is() -> None:
    """Redaction is idempotent: the last scan before an upload finds nothing in what the
    engine already redacted (markers after `password =` or `Authorization:` are no secrets)."""
    planted = list(seeds())
    redactor = Redactor.from_environ(environ_for(planted))
    for s in planted:
        once = redactor.redact(s.text)
        assert redactor.findings(once) == [], once
        # as JUnit XML carries it: escaped, and followed by a closing tag
        xml = f"<failure>{once}</failure>".replace('"', "&quot;")
        assert redactor.findings(xml) == [], xml


def test_assignments_escaped_more_than_once() -> None:
    """A traceback shows the test's source line: a JSON string in a Python literal escapes its
    quotes twice (`password = \\\\"...\\\\"`)."""
    line = """log.warning('{"value": "password = \\\\"Yt2##qWGklb2Rfe\\\\""}')"""
    assert "Yt2##qWGklb2Rfe" not in Redactor().redact(line)


def test_sealed_text_tells_whether_a_secret_changed_and_nothing_of_it() -> None:
    redactor = Redactor()
    text = 'def factory():\n    return make(password="hunter2-but-longer")\n'
    key, other = b"k" * 32, b"o" * 32
    sealed = redactor.seal(text, key)
    assert "hunter2" not in sealed and "[SEALED:" in sealed
    assert redactor.seal(text, key) == sealed  # the same secret, the same text
    assert redactor.seal(text.replace("longer", "longeR"), key) != sealed
    assert redactor.seal(text, other) != sealed  # another key tells nothing about this one
    assert redactor.seal("no secret here\n", key) == "no secret here\n"


def test_a_secret_pytest_shortens_in_an_assertion_is_redacted() -> None:
    """pytest shows a long value cut in its middle (``'ghp_Lq8Lq8Lq...8Lq8Lq8Lq8Lq8'``): neither
    part matches the value or a detector, and 26 of a token's 40 characters went in clear."""
    token = "ghp_" + "Lq8" * 12
    deploy = "opal-harbor-lantern-77-zz-very-long-value-here-yes"
    redactor = Redactor.from_environ({"DEPLOY_TOKEN": deploy})
    message = "AssertionError: assert 'ghp_Lq8Lq8Lq...8Lq8Lq8Lq8Lq8' == 'x'"
    report = f'    def test_token():\n>       token = "{token}"\n{message}\n'
    redacted_message, redacted_report = redactor.redact_failure(message, report)
    assert redacted_message is not None and redacted_report is not None
    for text in (redacted_message, redacted_report):
        assert "Lq8Lq8" not in text and "[REDACTED:github-token:" in text, text
    # a known value, in a text of its own; pytest's short summary shortens it once more
    shown = redactor.redact("assert 'opal-harbor-...alue-here-yes' == 'x'")
    assert shown.startswith("assert '[REDACTED:env-deploy-token:") and "harbor" not in shown
    assert "harbor" not in redactor.redact("FAILED t.py::test - assert 'opal-harbor-...a...")
    # ordinary ellipses, and a value's few characters beside one, stay
    for text in ("loading... done", "wait... x...y", "assert 'opal...' == 'x'"):
        assert redactor.redact(text) == text
