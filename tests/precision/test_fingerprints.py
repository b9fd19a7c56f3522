"""AST fingerprints: what counts as a change, and to which qualified name."""

from __future__ import annotations

import textwrap
from pathlib import Path

from maestro.graph.fingerprints import FingerprintStore, diff, fingerprint_source

BASE = textwrap.dedent(
    """
    import os

    LIMIT = 10


    def deco(f):
        return f


    class Config:
        default = 1

        @property
        def value(self):
            return self._v

        @value.setter
        def value(self, v):
            self._v = v

        @deco
        def load(self, path=os.sep):
            def parse(text):
                return [line for line in text.splitlines()]

            return parse(open(path).read())


    def helper(x):
        return x + LIMIT
    """
).encode()


def _diff(old: str, new: str):  # type: ignore[no-untyped-def]
    changed = BASE.replace(old.encode(), new.encode())
    assert changed != BASE
    return diff(fingerprint_source(BASE), fingerprint_source(changed))


def test_qualified_names_match_co_qualname() -> None:
    names = set(fingerprint_source(BASE).functions)
    assert names == {"deco", "Config.value", "Config.load", "Config.load.<locals>.parse", "helper"}


def test_body_change_is_that_function_only() -> None:
    d = _diff("return x + LIMIT", "return x - LIMIT")
    assert (d.changed, d.module_changed, d.lines["helper"]) == (("helper",), False, 30)


def test_nested_function_is_its_own() -> None:
    d = _diff("line for line", "line.strip() for line")
    assert d.changed == ("Config.load.<locals>.parse",) and not d.module_changed


def test_comments_and_formatting_do_not_count() -> None:
    d = _diff("return x + LIMIT", "return (x +  # add\n            LIMIT)")
    assert d.empty


def test_class_body_decorators_and_defaults_belong_to_the_owner() -> None:
    for old, new in [("default = 1", "default = 2"), ("@deco\n", "@staticmethod\n"),
                     ("path=os.sep", "path=os.curdir"), ("LIMIT = 10", "LIMIT = 11")]:  # fmt: skip
        d = _diff(old, new)
        assert d.module_changed and not d.changed, (old, d)


def test_property_setter_shares_the_getter_name() -> None:
    assert _diff("self._v = v", "self._v = -v").changed == ("Config.value",)


def test_added_deleted_and_renamed() -> None:
    d = _diff("def helper(x):", "def helper2(x):")
    assert (d.added, d.deleted, d.module_changed) == (("helper2",), ("helper",), True)


def test_syntax_error_is_a_module_change() -> None:
    broken = fingerprint_source(b"def f(:\n")
    assert broken.parse_error
    assert diff(fingerprint_source(BASE), broken).module_changed


def test_store_round_trip(tmp_path: Path) -> None:
    import hashlib

    source = tmp_path / "m.py"
    source.write_bytes(BASE)
    digest = hashlib.sha256(BASE).hexdigest()
    store = FingerprintStore(tmp_path / "fps")
    assert store.of_file(source, "0" * 64) is None  # content does not match the digest
    value = store.of_file(source, digest)
    assert value == fingerprint_source(BASE)
    assert FingerprintStore(tmp_path / "fps").has(digest)
