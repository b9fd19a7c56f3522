"""A reason leads with what was edited, not with an input put back since the file last ran: real
pytest children, a real LMDB cache."""

from __future__ import annotations

from precision_helpers import Workspace

CONF = """
import pathlib

CACHE = {}


def get():
    if "v" not in CACHE:
        CACHE["v"] = pathlib.Path("tests/a_values.txt").read_text().strip()
    return CACHE["v"]
"""


def test_a_reason_leads_with_the_edit_not_the_file_put_back(ws: Workspace) -> None:
    # flask's shape: config.py reads tests/static/config.json and may keep it, so the data
    # file is an input of every importer
    ws.write("pkg/conf.py", CONF)
    ws.write("tests/a_values.txt", "ok\n")  # named before the test file
    ws.write("tests/test_data.py", "from pkg import conf\n\n\ndef test_reads():\n"
             "    assert conf.get() in ('ok', 'fine')\n")  # fmt: skip
    ws.edit("tests/test_calc.py", "from pkg import calc", "from pkg import calc, conf")
    ws.run()
    for old, new in (("RATE = 2", "RATE = 5"), ("RATE = 5", "RATE = 7")):
        ws.edit("pkg/calc.py", old, new)
        ws.run()
    ws.edit("pkg/calc.py", "RATE = 7", "RATE = 2")
    ws.edit("tests/a_values.txt", "ok", "fine")
    ws.run()  # the last run of tests/test_calc.py read "fine"
    ws.edit("tests/a_values.txt", "fine", "ok")  # put back, and the test file edited
    ws.edit("tests/test_calc.py", "calc.triple(2) == 6", "calc.triple(2) == 2 * 3")
    calc = next(f for f in ws.plan().files if f.target == "tests/test_calc.py")
    assert calc.describe().startswith(
        "inputs changed: tests/test_calc.py, tests/a_values.txt (back as an earlier run had it): "
    ), calc.describe()
