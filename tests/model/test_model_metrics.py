"""APFD, selection scores and the speculation tripwire."""

from __future__ import annotations

import pytest

from maestro.model.metrics import Tripwire, apfd, selection_score, top_fraction


def test_apfd_bounds_and_known_values() -> None:
    order = ["a", "b", "c", "d"]
    assert apfd(order, set()) is None
    assert apfd([], {"a"}) is None
    # one fault first of four: 1 - 1/4 + 1/8
    assert apfd(order, {"a"}) == pytest.approx(0.875)
    assert apfd(order, {"d"}) == pytest.approx(0.125)
    # textbook: faults at positions 1 and 3 of 5 -> 1 - 4/10 + 1/10
    assert apfd(["x", "y", "z", "u", "v"], {"x", "z"}) == pytest.approx(0.7)
    best = apfd(order, {"a", "b"})
    worst = apfd(order, {"c", "d"})
    assert best is not None and worst is not None and best > worst


def test_top_fraction_and_selection_score() -> None:
    order = [str(i) for i in range(9)]
    assert top_fraction(order, 1 / 3) == ["0", "1", "2"]
    assert len(top_fraction([str(i) for i in range(10)], 1 / 3)) == 4
    s = selection_score(["0", "1", "2"], {"1", "7"})
    assert (s.precision, s.recall) == (pytest.approx(1 / 3), 0.5)
    assert selection_score([], set()).precision is None


def test_tripwire_throttles_on_waste_and_rearms() -> None:
    trip = Tripwire(max_waste=0.05, window_s=60, min_events=5, cooldown_s=30)
    for i in range(4):
        trip.record(False, 1.0, now=float(i))
    assert trip.allows(now=4.0)  # not enough evidence yet
    trip.record(False, 1.0, now=4.0)
    assert not trip.allows(now=5.0)
    status = trip.status(now=5.0)
    assert status["throttled"] is True and "100% of speculative CPU wasted" in str(status["reason"])
    assert trip.allows(now=40.0)  # cooldown over: re-armed, evidence forgotten
    assert trip.status(now=40.0)["events"] == 0


def test_tripwire_stays_open_when_results_are_used() -> None:
    trip = Tripwire(max_waste=0.05, window_s=60, min_events=5)
    for i in range(50):
        trip.record(True, 2.0, now=float(i))
    trip.record(False, 0.5, now=50.0)  # 0.5 / 100.5 wasted
    assert trip.allows(now=51.0)
    assert trip.waste(now=51.0) == pytest.approx(0.5 / 100.5 * 100.5 / (0.5 + 2.0 * 50), rel=0.2)


def test_tripwire_window_forgets_old_waste() -> None:
    trip = Tripwire(max_waste=0.5, window_s=10, min_events=3, cooldown_s=0)
    for i in range(3):
        trip.record(True, 1.0, now=float(i))
    assert trip.waste(now=100.0) is None  # all events left the window
