"""Which environment variables are known secrets: names that mark one (a token, a password) do,
the shell's own bookkeeping does not."""

from __future__ import annotations

from maestro.redaction import Redactor

PROJECT = "/home/dev/project"
TRACEBACK = f'File "{PROJECT}/tests/test_x.py", line 3, in test_x'


def test_secret_names_are_known_values() -> None:
    value = "s3cr3t-Value-0123456789"
    for name in ("GITHUB_TOKEN", "DB_PWD", "MYSQL_PWD", "SENTRY_DSN", "TWINE_PASSWORD", "APIKEY"):
        redacted = Redactor.from_environ({name: value}).redact(f"connect with {value}")
        assert value not in redacted, name


def test_pgpassword_is_a_known_value() -> None:
    value = "s3cr3t-Value-0123456789"
    assert value not in Redactor.from_environ({"PGPASSWORD": value}).redact(f"with {value}")


def test_the_current_directory_is_not_a_secret() -> None:
    redactor = Redactor.from_environ({"PWD": PROJECT, "OLDPWD": "/home/dev", "HOME": "/home/dev"})
    assert redactor.redact(TRACEBACK) == TRACEBACK
