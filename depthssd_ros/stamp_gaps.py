"""Frames lost before the node: gaps in the camera's stamps against its measured frame period.

The perception node counts the frames it drops itself (latest-frame policy), but a frame lost
by the transport (a DDS shared-memory segment too small for the image, a saturated link) never
reaches it, and a node reporting ``frames_dropped 0`` at 5 fps from a 20 Hz camera looks
healthy. The camera's stamps tell: a simulator or driver stamps consecutive frames one period
apart, so a difference of k periods between two received stamps means k - 1 frames were lost
upstream.

The period is measured, not configured, from the recent stamp differences. They are whole multiples
of the period (plus jitter); with frames lost at random at a rate p, a difference of one period has
probability 1 - p, so their 10th percentile lies in the one-period cluster while fewer than 90 % of
the frames are lost (a median would be two periods once half of them are gone), and the median of
that cluster is the period also when the stamps jitter. Differences longer than ``reset_gap_s``
(the gap at which the node resets its memory: a scene cut, a paused simulator) are not counted:
from stamps alone a cut cannot be told from a long outage, and the node reports it as a memory
reset. Time going backwards (a bag loop, a restarted simulator) starts the measurement afresh.
"""

from __future__ import annotations

import collections
import math

import numpy as np


class UpstreamGapCounter:
    """Counts frames missing between received camera stamps (see the module docstring).

    Attributes:
        missing: frames counted as lost upstream so far.
    """

    def __init__(self, window: int = 200, min_samples: int = 8, quantile: float = 10.0) -> None:
        """Create a counter.

        Args:
            window: stamp differences kept for the period estimate.
            min_samples: differences needed before any gap is counted.
            quantile: percentile of the differences taken as the period.
        """
        if window < min_samples or min_samples < 2:
            raise ValueError(f"need window >= min_samples >= 2, got {window}, {min_samples}")
        self._diffs: collections.deque[float] = collections.deque(maxlen=window)
        self._min_samples = min_samples
        self._quantile = quantile
        self._last_s: float | None = None
        self.missing = 0

    @property
    def period_s(self) -> float:
        """The measured frame period in seconds (NaN until ``min_samples`` differences)."""
        if len(self._diffs) < self._min_samples:
            return math.nan
        diffs = np.asarray(self._diffs)
        low = float(np.percentile(diffs, self._quantile))
        # The low percentile sits inside the one-period cluster, below its centre when stamps
        # jitter; the cluster's median is the period.
        return float(np.median(diffs[diffs < 1.5 * low]))

    @property
    def rate_hz(self) -> float:
        """The camera's measured frame rate (NaN until the period is known)."""
        period = self.period_s
        return 1.0 / period if period > 0 else math.nan

    def add(self, stamp_s: float, reset_gap_s: float) -> int:
        """Take the stamp of a received frame; return the frames found missing before it.

        Args:
            stamp_s: the frame's header stamp, seconds.
            reset_gap_s: differences above this are a cut, not a loss.
        """
        last, self._last_s = self._last_s, stamp_s
        if last is None or not math.isfinite(stamp_s):
            return 0
        diff = stamp_s - last
        if diff < 0.0:
            self._diffs.clear()  # time went backwards: another recording or a restart
            return 0
        if diff == 0.0 or diff > reset_gap_s:
            return 0  # a repeated stamp carries no period; a cut is not a loss
        period = self.period_s
        self._diffs.append(diff)
        if not period > 0.0:
            return 0
        lost = max(0, round(diff / period) - 1)
        self.missing += lost
        return lost
