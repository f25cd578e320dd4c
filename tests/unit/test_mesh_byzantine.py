"""Byzantine helpers: unconfirmed-claim tracking and blackhole suspicion."""

from __future__ import annotations

from x0tta6bl4.mesh.byzantine import BlackholeDetector, UnconfirmedTracker


def test_claims_are_flagged_only_after_the_grace_period() -> None:
    tracker = UnconfirmedTracker(grace_s=2.0)
    assert tracker.update({"m": ["x"]}, now=0.0) == ([], [])
    assert tracker.pending
    assert tracker.check(1.9) == []
    assert tracker.check(2.0) == ["m"]
    assert tracker.flagged == {"m": ["x"]}
    assert not tracker.pending
    assert tracker.check(5.0) == []  # reported once


def test_a_transient_claim_that_gets_confirmed_is_forgotten() -> None:
    tracker = UnconfirmedTracker(grace_s=2.0)
    tracker.update({"a": ["b"]}, now=0.0)
    assert tracker.update({}, now=0.5) == ([], [])  # b's LSA arrived: confirmed
    tracker.update({"a": ["b"]}, now=1.0)  # a new, unrelated episode starts the clock again
    assert tracker.check(2.5) == []
    assert tracker.check(3.0) == ["a"]


def test_flagged_node_is_cleared_once_its_claims_are_confirmed() -> None:
    tracker = UnconfirmedTracker(grace_s=1.0)
    tracker.update({"m": ["x", "y"]}, now=0.0)
    assert tracker.update({"m": ["y", "x"]}, now=1.0) == (["m"], [])
    assert tracker.flagged == {"m": ["x", "y"]}
    assert tracker.update({}, now=2.0) == ([], ["m"])
    assert tracker.flagged == {}


def test_blackhole_needs_several_bad_destinations_and_enough_samples() -> None:
    detector = BlackholeDetector(threshold=0.5, min_samples=5, min_dests=2)
    for _ in range(10):
        detector.record("good", "d1", delivered=True)
        detector.record("good", "d2", delivered=True)
        detector.record("hole", "d1", delivered=False)
    detector.record("hole", "d2", delivered=False, count=4)
    assert detector.suspects() == []  # d2 has only 4 samples
    detector.record("hole", "d2", delivered=False)
    assert detector.suspects() == ["hole"]
    assert detector.ratio("hole", "d1") == 0.0
    assert detector.ratio("good", "d1") == 1.0
    assert detector.ratio("nobody", "d1") is None


def test_one_bad_destination_is_not_a_blackhole() -> None:
    detector = BlackholeDetector(min_samples=3, min_dests=2)
    detector.record("hop", "dead-host", delivered=False, count=10)
    detector.record("hop", "d2", delivered=True, count=10)
    assert detector.suspects() == []


def test_forget_clears_a_next_hops_history() -> None:
    detector = BlackholeDetector(min_samples=1, min_dests=1)
    detector.record("hole", "d1", delivered=False)
    detector.record("other", "d1", delivered=False)
    assert detector.suspects() == ["hole", "other"]
    detector.forget("hole")
    assert detector.suspects() == ["other"]
