"""Node ids redacted in one scan come out as if redacted one by one, whatever their neighbours:
a stored id must be the same at every run for the same test to keep its record."""

from __future__ import annotations

from maestro.redact_many import is_redacted, redact_each
from maestro.redaction import Redactor

GITHUB = "ghp_" + "Rt5" * 12
KNOWN = "plum-orchard-signal-93"


def test_one_scan_gives_what_a_scan_each_gives() -> None:
    redactor = Redactor.from_environ({"DEPLOY_TOKEN": KNOWN})
    ids = [
        "tests/test_a.py::test_plain",
        f"tests/test_a.py::test_tok[gh {GITHUB}]",
        "tests/test_a.py::test_url[http://user:hunter2-long@example.com/x]",
        f"tests/test_a.py::test_env[{KNOWN}]",
        "tests/test_a.py::test_other[1-2]",
    ]
    got = redact_each(redactor, ids)
    assert got == [redactor.redact(i) for i in ids]
    assert [is_redacted(g) for g in got] == [False, True, True, True, False]
    assert redact_each(redactor, ids[:1]) == ids[:1] and redact_each(redactor, []) == []


def test_a_text_is_not_redacted_because_of_the_one_before_it() -> None:
    # the full scan (no trigger screen, whose windows are whole lines) reads across lines
    redactor = Redactor(screen=False)
    texts = ["header authorization:", "abcdefghijklmnop"]
    assert redactor.redact("\n".join(texts)) != "\n".join(texts)  # joined, it reads across
    assert redact_each(redactor, texts) == texts
    assert redact_each(redactor, list(reversed(texts))) == list(reversed(texts))


def test_texts_holding_newlines_are_scanned_alone() -> None:
    redactor = Redactor()
    texts = [f"a\n{GITHUB}", "b"]
    assert redact_each(redactor, texts) == [redactor.redact(t) for t in texts]
    assert is_redacted(redact_each(redactor, texts)[0])
