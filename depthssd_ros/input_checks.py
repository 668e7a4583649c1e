"""Checks of the input stamps and a log throttle that counts what it holds back.

Stamps. ``builtin_interfaces/Time`` is ``sec`` (int32) plus ``nanosec`` (uint32, meant to be
below 1e9). A driver that forgets to stamp sends zero; a bad conversion sends a negative
``sec`` or a ``nanosec`` of 1e9 or more. The node keeps the input stamp on every output (a
consumer pairs outputs with inputs by it) and counts these; only a zero stamp may be replaced by
the receive time, and only when the parameter ``replace_zero_stamp`` says so.

Logs. A per-frame problem (a rejected frame, a memory reset, a failed inference) can repeat at
the camera's rate. :class:`LogThrottle` lets one line per kind through per period and counts the
rest; the next line that passes says how many were held back, and the total is reported in
/diagnostics (``log_lines_suppressed``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

NS_PER_S = 1_000_000_000


def stamp_problem(sec: int, nanosec: int) -> str | None:
    """What is odd about a header stamp: ``zero``, ``negative``, ``non_normalised`` or None."""
    if sec == 0 and nanosec == 0:
        return "zero"
    if sec < 0:
        return "negative"
    if nanosec >= NS_PER_S:
        return "non_normalised"
    return None


def stamp_ns(sec: int, nanosec: int) -> int:
    """A stamp as integer nanoseconds (a non-normalised stamp maps to the time it denotes)."""
    return sec * NS_PER_S + nanosec


def reason_kind(reason: str) -> str:
    """A reason with its numbers taken out: ``stamp jumped N s > reset_gap_s N s``."""
    return re.sub(r"-?\d+(\.\d+)?", "N", reason)


class LogThrottle:
    """At most one line per kind and period; counts the lines it holds back."""

    def __init__(self, period_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        """Create a throttle.

        Args:
            period_s: shortest time between two lines of one kind, seconds.
            clock: monotonic time source in seconds (tests pass their own).
        """
        if not period_s >= 0.0:
            raise ValueError(f"period_s must be >= 0, got {period_s}")
        self.period_s = period_s
        self.suppressed_total = 0
        self._clock = clock
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def line(self, kind: str, text: str) -> str | None:
        """The line to log now for ``text`` of ``kind``, or None if it is held back.

        A line that follows held-back ones says how many there were.
        """
        now = self._clock()
        last = self._last.get(kind)
        if last is not None and now - last < self.period_s:
            self._held[kind] = self._held.get(kind, 0) + 1
            self.suppressed_total += 1
            return None
        self._last[kind] = now
        held = self._held.pop(kind, 0)
        if held:
            return f"{text} ({held} similar lines held back in the last {now - last:.1f} s)"
        return text
