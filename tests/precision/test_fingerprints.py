"""AST fingerprints: what counts as a change, and to which qualified name."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from maestro.graph.fingerprints import (
    FingerprintMemo,
    FingerprintStore,
    diff,
    fingerprint_source,
)

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


def test_class_body_constants_and_evaluated_defaults_are_module_level() -> None:
    # Class attributes and constants are read without running any function of the module; a
    # default that is an expression (here an attribute lookup) is evaluated at import and could
    # raise there.
    for old, new in [("default = 1", "default = 2"), ("LIMIT = 10", "LIMIT = 11"),
                     ("path=os.sep", "path=os.curdir")]:  # fmt: skip
        d = _diff(old, new)
        assert d.module_changed, (old, d)
    assert not _diff("default = 1", "default = 2").changed
    assert _diff("path=os.sep", "path=os.curdir").changed == ("Config.load",)


def test_decorator_change_counts_for_the_module_and_the_function() -> None:
    # A decorator runs at import and may register the function (fixtures, routes).
    d = _diff("@deco\n", "@staticmethod\n")
    assert d.module_changed and d.changed == ("Config.load",)


HEADERS = textwrap.dedent(
    """
    from __future__ import annotations

    import functools


    def fetch(url: str | None, timeout=10, *, verify=True, retries=(-1, 0)) -> bytes | None:
        return url


    class Session:
        @property
        def limit(self, n=3):
            return n

        @functools.lru_cache(maxsize=None)
        def cached(self, n=3):
            return n + 0

        @functools.singledispatchmethod
        def dispatch(self, arg: int = 0):
            return arg


    def handler(request, code=200):
        return code


    ROUTES = {"/": handler}
    """
)


def _header_diff(old: str, new: str, source: str = HEADERS):  # type: ignore[no-untyped-def]
    assert old in source, old
    return diff(
        fingerprint_source(source.encode()),
        fingerprint_source(source.replace(old, new).encode()),
    )


def test_inert_default_values_and_lazy_annotations_belong_to_the_function() -> None:
    # Only a call of `fetch` can see these: it is a change of `fetch`, not of the module.
    for old, new in [("timeout=10", "timeout=11"), ("verify=True", "verify=False"),
                     ("(-1, 0)", "(-1, 1)"), ("str | None", "str & None"),
                     ("-> bytes | None", "-> bytes")]:  # fmt: skip
        d = _header_diff(old, new)
        assert (d.changed, d.module_changed) == (("fetch",), False), (old, d)
    for name in ("limit",):  # under @property
        old, new = f"def {name}(self, n=3)", f"def {name}(self, n=4)"
        d = _header_diff(old, new)
        assert d.changed and not d.module_changed, (old, d)


def test_headers_that_code_can_observe_without_calling_stay_module_level() -> None:
    cases = [
        ("timeout=10", "timeout"),  # a parameter loses its default: calls that raised now pass
        ("url: str | None,", "url: str | None, extra,"),  # a new parameter
        ("arg: int = 0", "arg: str = 0"),  # singledispatch reads the annotation at import
        ("code=200", "code=201"),  # `handler` escapes into ROUTES: anyone may introspect it
        ("timeout=10", "timeout=[].pop()"),  # evaluated at import: may raise
    ]
    for old, new in cases:
        d = _header_diff(old, new)
        assert d.module_changed and d.changed, (old, d)
    # Without `from __future__ import annotations`, annotations run at import time.
    eager = HEADERS.replace("from __future__ import annotations\n", "")
    assert _header_diff("str | None", "str & None", eager).module_changed
    assert not _header_diff(
        '"x"', '"y"', eager.replace("url: str | None", 'url: "x"')
    ).module_changed


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


def test_memo_belongs_to_its_store_and_stays_bounded(tmp_path: Path) -> None:
    import hashlib
    import shutil

    source = tmp_path / "m.py"
    source.write_bytes(BASE)
    digest = hashlib.sha256(BASE).hexdigest()
    store = FingerprintStore(tmp_path / "fps")
    value = store.of_file(source, digest)
    shutil.rmtree(tmp_path / "fps")  # the disk copy is gone: the store's memo still answers
    assert store.get(digest) == value
    # ... but no other store sees it (no process-wide memo)
    assert FingerprintStore(tmp_path / "fps").get(digest) is None

    memo = FingerprintMemo(entries=2)
    first, second = memo.of_bytes(b"x = 1\n"), memo.of_bytes(b"x = 2\n")
    assert memo.of_bytes(b"x = 1\n") is first  # a hit, and now the most recently used
    memo.of_bytes(b"x = 3\n")  # evicts "x = 2", the least recently used
    assert len(memo) == 2
    assert memo.get(hashlib.sha256(b"x = 2\n").hexdigest()) is None
    assert memo.get(hashlib.sha256(b"x = 1\n").hexdigest()) is first
    assert second.module != first.module


def test_memoised_function_is_listed_or_counts_for_the_module() -> None:
    # A test that gets an lru_cache hit (filled by an earlier test) never executes the function:
    # selection needs to know it is memoised, and who names it.
    d = _header_diff("return n + 0", "return n + 1")
    assert d.changed == ("Session.cached",) and not d.module_changed
    fps = fingerprint_source(HEADERS.encode())
    assert fps.memoised == ("Session.cached",)
    assert "lru_cache" in fps.refs["Session.cached"] and "n" in fps.refs["Session.cached"]
    assert {"handler", "functools"} <= set(fps.module_refs)
    # Named other than as a callee (it may reach code that never names it): module-level.
    escaped = HEADERS + "\nALIAS = Session.cached\n"
    d = _header_diff("return n + 0", "return n + 1", escaped)
    assert d.changed == ("Session.cached",) and d.module_changed
    assert fingerprint_source(escaped.encode()).memoised == ()


def test_type_checking_branches_do_not_count() -> None:
    base = textwrap.dedent(
        """\
        import typing
        from typing import TYPE_CHECKING
        if TYPE_CHECKING:
            Alias = int
        else:
            Alias = None
        if not typing.TYPE_CHECKING:
            LIVE = 1
        else:
            DEAD = 1
        def f():
            if TYPE_CHECKING:
                from os import PathLike
            return 1
        """
    ).encode()

    def changed(old: str, new: str) -> tuple[bool, tuple[str, ...]]:
        d = diff(
            fingerprint_source(base), fingerprint_source(base.replace(old.encode(), new.encode()))
        )
        return d.module_changed, d.changed

    assert changed("Alias = int", "Alias = str") == (False, ())
    assert changed("DEAD = 1", "DEAD = 2") == (False, ())
    assert changed("from os import PathLike", "from os import fspath") == (False, ())
    assert changed("Alias = None", "Alias = 0") == (True, ())  # the else branch runs
    assert changed("LIVE = 1", "LIVE = 2") == (True, ())
    assert changed("return 1", "return 2") == (False, ("f",))
    assert changed("if TYPE_CHECKING:\n    Alias", "if not TYPE_CHECKING:\n    Alias")[0]


def test_a_kept_version_is_fingerprinted_only_when_a_change_is_diffed(tmp_path: Path) -> None:
    """A first run keeps its inputs' source (a copy); parsing them all cost about a second of
    CPU beside the tests. A later process diffs against the kept version on demand."""
    import hashlib

    from maestro.graph.fingerprints import FingerprintStore

    old = b"def f():\n    return 1\n\n\ndef g():\n    return 2\n"
    digest = hashlib.sha256(old).hexdigest()
    module = tmp_path / "m.py"
    module.write_bytes(old)
    FingerprintStore(tmp_path / "fps").keep(module, digest, redact=lambda text: text)
    assert not list((tmp_path / "fps").rglob("*.msgpack"))  # kept, not parsed
    # no module: a state directory inside the workspace is walked by pytest (norecursedirs
    # without '.*', --doctest-modules: jaraco.text), IDEs and type checkers
    assert list((tmp_path / "fps").rglob("*")) and not list((tmp_path / "fps").rglob("*.py"))
    module.write_bytes(old.replace(b"return 2", b"return 3"))  # the file moves on

    later = FingerprintStore(tmp_path / "fps")
    assert later.has(digest)
    before = later.get(digest)
    assert before == fingerprint_source(old)
    changed = diff(before, fingerprint_source(module.read_bytes()))
    assert changed is not None and set(changed.functions) == {"g"}
    assert list((tmp_path / "fps").rglob("*.msgpack"))  # parsed once, kept as fingerprints
    assert FingerprintStore(tmp_path / "fps").get(digest) == before
    module.write_bytes(b"changed again")
    other = FingerprintStore(tmp_path / "other")
    other.keep(module, digest, redact=lambda text: text)  # not that content: nothing kept
    assert not other.has(digest)


def test_a_kept_version_holds_no_secret_and_its_secret_function_reads_as_changed(
    tmp_path: Path,
) -> None:
    """The kept copy goes through redaction: a function holding a secret then differs from
    the real file (its tests re-run), the others compare equal."""
    import hashlib

    from maestro.graph.fingerprints import FingerprintStore
    from maestro.redaction import Redactor

    token = "ghp_" + "A1b2C3d4E5" * 3 + "F6G7H8"
    source = f'def f():\n    return "{token}"\n\n\ndef g():\n    return 2\n'.encode()
    digest = hashlib.sha256(source).hexdigest()
    module = tmp_path / "m.py"
    module.write_bytes(source)
    redactor = Redactor()
    store = FingerprintStore(tmp_path / "fps")
    store.keep(module, digest, redact=lambda text: str(redactor.redact(text)))
    kept = b"".join(p.read_bytes() for p in (tmp_path / "fps").rglob("*.src"))
    assert token.encode() not in kept and b"def g" in kept
    before = FingerprintStore(tmp_path / "fps").get(digest)
    assert before is not None
    changed = diff(before, fingerprint_source(source))
    assert set(changed.functions) == {"f"}  # over-selection where the secret was, nothing else


CLASS_TABLE = textwrap.dedent(
    """
    class _Rules(object):
        _weekday_map = {"MO": 0, "TU": 1}
        limit = 3

        def parse(self, name):
            return getattr(self, "_handle_" + name)()

        def get(self, name):
            return getattr(self, name)

        def spec(self):
            return vars(self)
    """
)


def _class_diff(old: str, new: str, source: str = CLASS_TABLE) -> tuple[object, object]:
    d = diff(
        fingerprint_source(source.encode()), fingerprint_source(source.replace(old, new).encode())
    )
    return d.module_names, d.class_names


def test_a_private_class_attribute_value_is_told_apart_from_its_class() -> None:
    assert _class_diff('"TU": 1', '"TU": 2') == ((), ("_Rules._weekday_map",))
    # with a changed module constant too
    source = "X = 1\n" + CLASS_TABLE
    both = source.replace("X = 1", "X = 2").replace('"TU": 1', '"TU": 2')
    d = diff(fingerprint_source(source.encode()), fingerprint_source(both.encode()))
    assert (d.module_names, d.class_names) == (("X",), ("_Rules._weekday_map",))


def test_a_class_attribute_that_code_outside_may_read_changes_its_class() -> None:
    # the class name counts as changed (its readers re-run), not the attribute alone
    whole_class = (("_Rules",), ())
    assert _class_diff("limit = 3", "limit = 4") == whole_class  # public
    assert _class_diff('"TU": 1}', '"TU": 1}\n    _more = 1') == whole_class  # added
    computed = CLASS_TABLE.replace('{"MO": 0, "TU": 1}', "dict(MO=0, TU=1)")
    assert _class_diff("TU=1", "TU=2", computed) == whole_class  # not inert
    # a decorator or base that may keep the class: module-level code changed
    unknown = (None, None)
    decorated = CLASS_TABLE.replace("class _Rules(object):", "@final\nclass _Rules(object):")
    assert _class_diff('"TU": 1', '"TU": 2', decorated) == unknown
    based = CLASS_TABLE.replace("class _Rules(object):", "class _Rules(Base):")
    assert _class_diff('"TU": 1', '"TU": 2', based) == unknown


@pytest.mark.parametrize(
    ("source", "classes"),
    [
        ("import attr\n\n\n@attr.s(repr=False)\nclass C:\n    x = attr.ib()\n", ("C|attr",)),
        ("from ._make import attrs\n\n\n@attrs(repr=False)\nclass C:\n    pass\n", ("C|._make",)),
        ("def reg(c):\n    return c\n\n\n@reg\nclass C:\n    x = attr.ib(repr=False)\n", ()),
        ("import attr\n\n\n@attr.s(repr=False)\nclass C:\n    x = helper()\n", ()),
        ("class C:\n    x = frozenset([1])\n\n    @property\n    def y(self):\n        return 1\n",
         ("C|",)),
    ],
)  # fmt: skip
def test_what_a_changed_class_statement_runs(source: str, classes: tuple[str, ...]) -> None:
    # `repr=False` -> `repr=True`, `[1]` -> `[2]`: the origins of what its statement runs (the
    # modules of its decorators and calls) go to selection, which accepts class builders only
    new = source.replace("repr=False", "repr=True").replace("[1]", "[2]")
    d = diff(fingerprint_source(source.encode()), fingerprint_source(new.encode()))
    assert d.classes == classes
    assert d.module_names == (("C",) if classes else None)


def test_how_a_function_reads_attributes_it_does_not_name() -> None:
    fp = fingerprint_source(CLASS_TABLE.encode())
    assert fp.dynamic == {
        "_Rules.parse": ("^_handle_",),
        "_Rules.get": ("*",),
        "_Rules.spec": ("*",),
    }
    assert "_handle_" in fp.private_strings
