"""Stamp checks and the counting log throttle (pure logic)."""

from __future__ import annotations

from depthssd_ros.input_checks import LogThrottle, reason_kind, stamp_ns, stamp_problem


def test_stamp_problems():
    assert stamp_problem(0, 0) == "zero"
    assert stamp_problem(-3, 5) == "negative"
    assert stamp_problem(10, 1_000_000_000) == "non_normalised"
    assert stamp_problem(10, 999_999_999) is None
    assert stamp_problem(0, 1) is None
    assert stamp_ns(10, 1_500_000_000) == stamp_ns(11, 500_000_000)


def test_reason_kind_drops_the_numbers():
    assert reason_kind("stamp jumped 5.100 s > reset_gap_s 1.000 s") == (
        "stamp jumped N s > reset_gap_s N s")
    assert reason_kind("stamp went backwards (150.100 s -> -2.000 s)") == (
        "stamp went backwards (N s -> N s)")


def test_throttle_passes_one_line_per_kind_and_period_and_counts_the_rest():
    now = [0.0]
    throttle = LogThrottle(5.0, clock=lambda: now[0])
    assert throttle.line("reset", "memory reset: a") == "memory reset: a"
    assert throttle.line("reject", "skipping frame: b") == "skipping frame: b"
    for _ in range(99):
        now[0] += 0.01
        assert throttle.line("reset", "memory reset: a") is None
    assert throttle.suppressed_total == 99
    now[0] = 5.0
    line = throttle.line("reset", "memory reset: c")
    assert line == "memory reset: c (99 similar lines held back in the last 5.0 s)"
    assert throttle.line("reset", "memory reset: d") is None
    assert throttle.suppressed_total == 100
