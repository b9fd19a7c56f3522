"""The memo rule and names Python mangles.

Inside a class ``C``, ``self.__update`` is ``self._C__update``: code of another class spelling
``__update`` reaches its own class's method, never ``C.__update`` (cachetools' ``LRUCache`` and
``MRUCache`` each have a private ``__update`` their ``__getitem__`` calls). A change to one
class's private method no longer re-runs, as "which names the changed ...", the tests that ran
only another class's namesake; code spelling the mangled name (``obj._C__update``) still names it.
"""

from __future__ import annotations

from precision_helpers import Workspace, ran_nodes

LRU = "tests/test_caches.py::test_lru"
MRU = "tests/test_caches.py::test_mru"

CACHES = """
    class LRU:
        def __init__(self):
            self.order = []

        def __getitem__(self, key):
            self.__update(key)
            return self.order[-1]

        def __update(self, key):
            self.order.append(key)


    class MRU:
        def __init__(self):
            self.order = []

        def __getitem__(self, key):
            self.__update(key)
            return self.order[0]

        def __update(self, key):
            self.order.insert(0, key)
    """

TESTS = """
    from pkg.caches import LRU, MRU


    def test_lru():
        assert LRU()["a"] == "a"


    def test_mru():
        assert MRU()["b"] == "b"
    """


def test_another_class_private_namesake_is_not_its_namer(ws: Workspace) -> None:
    """A change to ``MRU.__update`` re-runs test_mru only (before: test_lru too, "executed
    pkg.caches.LRU.__getitem__, which names the changed pkg.caches.MRU.__update")."""
    ws.write("pkg/__init__.py", "")
    ws.write("pkg/caches.py", CACHES)
    ws.write("tests/test_caches.py", TESTS)
    assert ws.run().failed == 0
    ws.edit("pkg/caches.py", "self.order.insert(0, key)", "self.order.insert(0, key * 2)")
    plan = next(f for f in ws.plan().files if f.target == "tests/test_caches.py")
    assert LRU not in plan.node_reasons
    summary = ws.run()
    assert ran_nodes(summary) == [MRU]
    assert summary.failed == 1  # as plain pytest: test_mru


def test_both_private_namesakes_changed_rerun_both(ws: Workspace) -> None:
    """Each class's ``__update`` is followed on its own: changing both re-runs both tests."""
    ws.write("pkg/__init__.py", "")
    ws.write("pkg/caches.py", CACHES)
    ws.write("tests/test_caches.py", TESTS)
    assert ws.run().failed == 0
    ws.edit("pkg/caches.py", "self.order.insert(0, key)", "self.order.insert(0, key * 2)")
    ws.edit("pkg/caches.py", "self.order.append(key)", "self.order.append(key * 2)")
    summary = ws.run()
    assert sorted(ran_nodes(summary)) == [LRU, MRU]
    assert summary.failed == 2


def test_a_memo_spelling_the_mangled_name_still_reruns(ws: Workspace) -> None:
    """``helper`` keeps what ``box._MRU__update`` made: test_two, served from that memo,
    re-runs with test_one when ``MRU.__update`` changes, as plain pytest fails both."""
    ws.write("pkg/__init__.py", "")
    ws.write("pkg/caches.py", CACHES)
    ws.write(
        "pkg/memo.py",
        """
        from pkg.caches import MRU

        _KEPT = {}


        def helper(key):
            if key not in _KEPT:
                box = MRU()
                box._MRU__update(key)
                _KEPT[key] = box.order[0]
            return _KEPT[key]
        """,
    )
    ws.write(
        "tests/test_memo.py",
        """
        from pkg.memo import helper


        def test_one():
            assert helper("a") == "a"


        def test_two():
            assert helper("a") == "a"
        """,
    )
    assert ws.run().failed == 0
    ws.edit("pkg/caches.py", "self.order.insert(0, key)", "self.order.insert(0, key * 2)")
    summary = ws.run()
    assert sorted(ran_nodes(summary)) == [
        "tests/test_memo.py::test_one",
        "tests/test_memo.py::test_two",
    ]
    assert summary.failed == 2
