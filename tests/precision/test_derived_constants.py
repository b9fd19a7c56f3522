"""Module constants built from other constants by a standard builder (``struct.Struct(FMT)``,
``S.pack``, ``typing.cast(..., S.unpack)``, ``pickle.dumps(V, 2)``: itsdangerous' encoding.py,
jinja2's bccache.py): a change to the constant, or to the building statement, re-runs the tests
that read a name whose value changed, not every importer. Every importer still re-runs when the
statement runs other code (a workspace function may keep what it builds elsewhere), when the
names can be read without being spelled, when another module's module-level code reads a
changed name, and when the new version raises at import."""

from __future__ import annotations

import textwrap

import pytest
from precision_helpers import Workspace, ran_nodes

from maestro.graph.fingerprints import diff, fingerprint_source

ENCODING = """
    import struct
    import typing as t

    FMT = ">Q"
    _int64_struct = struct.Struct(FMT)
    _int_to_bytes = _int64_struct.pack
    _bytes_to_int = t.cast("t.Callable[[bytes], tuple[int]]", _int64_struct.unpack)
    SEP = b"."


    def int_to_bytes(num):
        return _int_to_bytes(num).lstrip(b"\\x00")


    def width():
        return len(_int_to_bytes(1))


    def sep():
        return SEP
    """

TESTS = """
    from pkg import encoding


    def test_round_trip():
        assert encoding.int_to_bytes(258) == b"\\x01\\x02"


    def test_width():
        assert encoding.width() == 8


    def test_sep():
        assert encoding.sep() == b"."
    """

IMPORTER = "import pkg.encoding\n\n\ndef test_imports():\n    pass\n"


def _workspace(ws: Workspace, encoding: str, more: dict[str, str] | None = None) -> Workspace:
    ws.write("pkg/encoding.py", encoding)
    ws.write("tests/test_encoding.py", TESTS)
    ws.write("tests/test_imports.py", IMPORTER)
    for path, text in (more or {}).items():
        ws.write(path, text)
    ws.run()
    return ws


def test_a_constant_read_by_a_builder_reruns_only_the_readers_of_what_it_built(
    ws: Workspace,
) -> None:
    _workspace(ws, ENCODING)
    ws.edit("pkg/encoding.py", 'FMT = ">Q"', 'FMT = ">I"')
    planned = next(f for f in ws.plan().files if f.target == "tests/test_encoding.py")
    assert planned.node_reasons["tests/test_encoding.py::test_width"].startswith(
        "executed pkg.encoding.width, which reads the changed pkg.encoding._int_to_bytes"
    )
    summary = ws.run()
    # FMT -> _int64_struct -> _int_to_bytes: the two tests calling it re-run (test_width now
    # fails, as in plain pytest); test_sep and the importer read nothing built from FMT
    assert ran_nodes(summary) == [
        "tests/test_encoding.py::test_round_trip",
        "tests/test_encoding.py::test_width",
    ]
    assert summary.failed == 1


def test_a_changed_building_statement_counts_as_a_change_of_its_name(ws: Workspace) -> None:
    _workspace(ws, ENCODING)
    ws.edit("pkg/encoding.py", "struct.Struct(FMT)", 'struct.Struct(">I")')
    assert ran_nodes(ws.run()) == [
        "tests/test_encoding.py::test_round_trip",
        "tests/test_encoding.py::test_width",
    ]


def test_a_new_version_that_raises_at_import_reruns_every_importer(ws: Workspace) -> None:
    _workspace(ws, ENCODING)
    ws.edit("pkg/encoding.py", 'FMT = ">Q"', 'FMT = ">Z"')  # struct.error at import
    summary = ws.run()
    assert summary.errors == 2  # both importers fail at collection, as plain pytest says


REGISTERING = """
    import struct

    FMT = ">Q"
    REGISTRY = []


    def make_struct(fmt):
        REGISTRY.append(fmt)
        return struct.Struct(fmt)


    _int64_struct = make_struct(FMT)
    _int_to_bytes = _int64_struct.pack


    def int_to_bytes(num):
        return _int_to_bytes(num).lstrip(b"\\x00")


    def width():
        return len(_int_to_bytes(1))


    def sep():
        return b"."
    """

REGISTRY_TEST = """
    from pkg import encoding


    def test_registered():
        assert encoding.REGISTRY == [">Q"]
    """


def test_a_builder_of_the_workspace_reruns_every_importer(ws: Workspace) -> None:
    # make_struct keeps what it was given in REGISTRY, which test_registered reads without
    # naming FMT or what make_struct built: were the statement taken to only bind
    # _int64_struct, test_registered would be served its old pass, where pytest fails it
    _workspace(ws, REGISTERING, {"tests/test_registry.py": REGISTRY_TEST})
    ws.edit("pkg/encoding.py", 'FMT = ">Q"', 'FMT = ">I"')
    planned = next(f for f in ws.plan().files if f.target == "tests/test_registry.py")
    assert planned.run_nodes is None  # the whole file
    assert "module-level code" in planned.describe()
    summary = ws.run()
    assert "tests/test_registry.py::test_registered" in ran_nodes(summary)
    assert "tests/test_imports.py::test_imports" in ran_nodes(summary)
    assert summary.failed == 2  # test_registered and test_width, as in plain pytest


@pytest.mark.parametrize(
    ("extra", "edit"),
    [
        # this module's names are read without being spelled
        ("\n\ndef lookup(name):\n    return globals()[name]\n", ('FMT = ">Q"', 'FMT = ">I"')),
        # a computed attribute of a module
        (
            "\n\ndef lookup(name):\n    return getattr(sys.modules[__name__], name)\n",
            ('FMT = ">Q"', 'FMT = ">I"'),
        ),
    ],
)
def test_a_derived_name_that_can_escape_reruns_every_importer(
    ws: Workspace, extra: str, edit: tuple[str, str]
) -> None:
    _workspace(ws, "import sys\n" + textwrap.dedent(ENCODING) + extra)
    ws.edit("pkg/encoding.py", *edit)
    assert len(ran_nodes(ws.run())) == 4


SIZES = "from pkg.encoding import _int64_struct\n\nSIZE = _int64_struct.size\n"
SIZES_TEST = "from pkg import sizes\n\n\ndef test_size():\n    assert sizes.SIZE == 8\n"


def test_a_derived_name_read_by_another_module_at_import_reruns_its_importers(
    ws: Workspace,
) -> None:
    _workspace(ws, ENCODING, {"pkg/sizes.py": SIZES, "tests/test_sizes.py": SIZES_TEST})
    ws.edit("pkg/encoding.py", 'FMT = ">Q"', 'FMT = ">I"')
    summary = ws.run()
    # sizes.SIZE was computed at import from the changed _int64_struct: its importer re-runs
    # and fails, as in plain pytest, though test_size names neither
    assert "tests/test_sizes.py::test_size" in ran_nodes(summary)
    assert summary.failed == 2  # test_size and test_width


def _names(source: str, old: str, new: str) -> tuple[str, ...] | None:
    source = textwrap.dedent(source)
    before = fingerprint_source(source.encode())
    return diff(before, fingerprint_source(source.replace(old, new).encode())).module_names


def test_names_built_from_a_changed_one_count_as_changed() -> None:
    assert _names(ENCODING, 'FMT = ">Q"', 'FMT = ">I"') == (
        "FMT",
        "_bytes_to_int",
        "_int64_struct",
        "_int_to_bytes",
    )
    # the same value written otherwise: only the statement's own name counts
    assert _names(ENCODING, 'FMT = ">Q"', 'FMT = ">" + "Q"') == ("FMT",)
    magic = "import pickle\nV = 5\nMAGIC = b'j2' + pickle.dumps(V, 2)\n"
    assert _names(magic, "V = 5", "V = 6") == ("MAGIC", "V")
    imported = "from struct import Struct\nS = Struct('>Q')\nP = S.pack\n"
    assert _names(imported, "'>Q'", "'>I'") == ("P", "S")
    text = "import string\nA = f'{string.digits}-_'.encode('ascii')\nB = A.decode()\n"
    assert _names(text, "-_", "_-") == ("A", "B")
    # a parameter of that name binds in its function: the import is the module's only one
    shadowed = "import string\n\n\ndef f(string):\n    return string\n\n\nA = string.digits + 'x'\n"
    assert _names(shadowed, "'x'", "'y'") == ("A",)


def test_an_annotated_builder_follows_and_its_annotation_stays_module_level() -> None:
    typed = "import struct\nA = '>Q'\nS: struct.Struct = struct.Struct(A)\nN: int = S.size\n"
    assert _names(typed, "Q", "I") == ("A", "N", "S")
    # the annotation is evaluated at import: its reads are module-level reads
    assert "T" in fingerprint_source(b"from m import T\nA = 1\nB: T = A + 1\n").module_loads
    assert _names("A = 1\nB: int = A + 1\n", "B: int", "B: Undefined") is None


def test_a_value_of_the_interpreter_counts_by_the_text_that_reads_it() -> None:
    # 0 here whatever the version: what the tests' interpreter computes may differ
    source = "import sys\nV = sys.version_info[0] // 100\nW = V + 1\nU = 7\n"
    assert _names(source, "[0]", "[1]") == ("V", "W")


@pytest.mark.parametrize(
    ("source", "old", "new"),
    [
        # a workspace function: it may keep what it is given
        ("import struct\nA = '>Q'\nB = make(A)\n", "Q", "I"),
        # the import comes after the statement that reads it
        ("A = '>Q'\nB = struct.Struct(A)\nimport struct\n", "Q", "I"),
        # the name is bound otherwise too
        ("import struct\nA = '>Q'\nB = struct.Struct(A)\nstruct = fake\n", "Q", "I"),
        # a relative import is the workspace's
        ("from . import struct\nA = '>Q'\nB = struct.Struct(A)\n", "Q", "I"),
        # a builder that is not listed
        ("import pickle\nA = b'.'\nB = pickle.loads(A)\n", "b'.'", "b','"),
        # a method that changes its object
        ("A = [1]\nB = A.append(2)\n", "[1]", "[2]"),
        # a builder's argument that is no evaluated value
        ("import struct\nA = '>Q'\nB = struct.Struct(A, fmt=make())\n", "Q", "I"),
        # the new version raises at import
        ("import struct\nA = '>Q'\nB = struct.Struct(A)\n", "Q", "Z"),
    ],
)
def test_a_statement_that_may_do_more_stays_module_level(source: str, old: str, new: str) -> None:
    # B is no name that changed with A: the module-level code building it reads A, so
    # selection re-runs every importer (or the module-level change is no named one at all)
    names = _names(source, old, new)
    after = fingerprint_source(source.replace(old, new).encode())
    assert names is None or ("B" not in names and "A" in after.module_loads)
