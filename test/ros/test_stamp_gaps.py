"""UpstreamGapCounter: frames lost before the node, found from the camera's stamps alone."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthssd_ros.stamp_gaps import UpstreamGapCounter

RESET_GAP_S = 1.0


def _feed(counter: UpstreamGapCounter, stamps) -> None:
    for stamp in stamps:
        counter.add(float(stamp), RESET_GAP_S)


def test_regular_stamps_have_no_gap_and_give_the_rate():
    counter = UpstreamGapCounter()
    assert math.isnan(counter.rate_hz)
    _feed(counter, 100.0 + 0.05 * np.arange(200))
    assert counter.missing == 0
    assert counter.rate_hz == pytest.approx(20.0, rel=1e-6)


@pytest.mark.parametrize("loss, jitter", [(0.3, 0.0), (0.7, 0.0), (0.7, 0.1), (0.85, 0.05)])
def test_counts_exactly_the_frames_lost_at_random(loss, jitter):
    """Most frames lost (the issue saw 96 of 400 arrive) and wall-clock jitter of the stamps."""
    rng = np.random.default_rng(int(loss * 100))
    period = 0.05
    stamps = 10.0 + period * np.arange(3000) + rng.uniform(-jitter, jitter, 3000) * period
    warmup = 20  # the period is measured from the first differences; they are all kept
    kept = np.concatenate([np.ones(warmup, bool), rng.random(3000 - warmup) >= loss])
    counter = UpstreamGapCounter()
    _feed(counter, stamps[kept])
    # Frames missing between consecutive received ones, except in gaps longer than the reset
    # gap (at 85 % loss a run of 20 lost frames happens): those are cuts, not counted.
    index = np.flatnonzero(kept)
    lost = np.diff(index) - 1
    cut = stamps[index[1:]] - stamps[index[:-1]] > RESET_GAP_S
    assert counter.missing == int(lost[~cut].sum())
    assert cut.sum() < 0.05 * index.size
    assert counter.rate_hz == pytest.approx(1.0 / period, rel=0.12)


def test_cuts_and_time_going_backwards_are_not_losses():
    counter = UpstreamGapCounter()
    _feed(counter, 0.05 * np.arange(1, 21))                # 20 Hz, period known
    _feed(counter, 1.0 + 2.0 + 0.05 * np.arange(1, 21))    # a 2 s scene cut: not a loss
    assert counter.missing == 0
    _feed(counter, [4.0 + 0.15, 4.0 + 0.30])               # two gaps of two lost frames each
    assert counter.missing == 4
    _feed(counter, 0.05 * np.arange(1, 5))                 # time went backwards (bag loop)
    assert math.isnan(counter.period_s)                    # measured afresh
    _feed(counter, [0.25, 0.5])                            # no period yet: nothing counted
    assert counter.missing == 4
    counter.add(0.5, RESET_GAP_S)                          # a repeated stamp changes nothing
    assert counter.missing == 4


def test_invalid_window_is_refused():
    with pytest.raises(ValueError, match="window"):
        UpstreamGapCounter(window=4, min_samples=8)
