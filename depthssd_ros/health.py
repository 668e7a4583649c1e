"""The level and message of the perception node's /diagnostics status.

A monitor (rqt_robot_monitor, a supervisor node) reads the level, not the counters, so the level
must say when perception is blind:

* ERROR: the backend failed on one of the recent frames (the message carries the error);
* WARN: no image arrived for ``stale_after_s`` (also before the first one), images arrive but
  none was processed for ``stale_after_s``, more than half of the recent frames were rejected,
  or more than half of the recent processed frames had no camera_info of their own stamp and
  used an earlier one;
* OK otherwise; the message is the processed frame rate.

"Recent" is the last ``window`` frames that got a verdict (processed, rejected or failed;
frames the latest-frame policy dropped are no verdict on the input). Every condition that holds
is named in the message, worst first. Pure logic, no ROS: the levels are the numeric values of
``diagnostic_msgs/DiagnosticStatus``.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

OK, WARN, ERROR = 0, 1, 2
#: Verdicts a frame can get (``fallback``: processed with an earlier frame's camera_info).
OUTCOMES = ("processed", "fallback", "rejected", "failed")


class RecentOutcomes:
    """The verdicts of the last ``window`` frames."""

    def __init__(self, window: int) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self._outcomes: collections.deque[str] = collections.deque(maxlen=window)

    def add(self, outcome: str) -> None:
        """Record one frame's verdict (one of :data:`OUTCOMES`)."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; one of {', '.join(OUTCOMES)}")
        self._outcomes.append(outcome)

    def counts(self) -> dict[str, int]:
        """How many of the recent frames got each verdict."""
        counter = collections.Counter(self._outcomes)
        return {outcome: counter.get(outcome, 0) for outcome in OUTCOMES}


@dataclass(frozen=True)
class HealthInputs:
    """What the node knows when it publishes a status (times from ``time.monotonic()``).

    Attributes:
        now_s: the current time.
        started_s: when the node started.
        last_image_s: when the last image arrived (None: none yet).
        last_processed_s: when the last frame was processed (None: none yet).
        last_info_s: when the last camera_info arrived (None: none yet).
        stale_after_s: the ``stale_after_s`` parameter.
        recent: :meth:`RecentOutcomes.counts`.
        fps: frames processed per second since the previous status.
        last_rejection: why the last rejected frame was rejected.
        last_error: the backend's last error.
        infos_without_image: camera_info messages whose image never arrived, so far.
    """

    now_s: float
    started_s: float
    last_image_s: float | None
    last_processed_s: float | None
    last_info_s: float | None
    stale_after_s: float
    recent: dict[str, int]
    fps: float
    last_rejection: str = ""
    last_error: str = ""
    infos_without_image: int = 0


def assess(h: HealthInputs) -> tuple[int, str]:
    """The status level and message for ``h`` (see the module docstring)."""
    problems: list[tuple[int, str]] = []
    recent = h.recent
    judged = sum(recent.values())
    if recent["failed"]:
        problems.append((ERROR, f"inference failed on {recent['failed']} of the last {judged} "
                                f"frames: {h.last_error}"))
    if h.last_image_s is None or h.now_s - h.last_image_s > h.stale_after_s:
        if h.last_image_s is None:
            text = f"no image received in {h.now_s - h.started_s:.1f} s since start"
        else:
            text = (f"no image for {h.now_s - h.last_image_s:.1f} s "
                    f"(stale_after_s {h.stale_after_s:g})")
        if h.last_info_s is not None and h.now_s - h.last_info_s <= h.stale_after_s:
            text += (f"; camera_info still arrives ({h.infos_without_image} without their "
                     "image): are the images larger than the transport carries?")
        problems.append((WARN, text))
    elif h.last_processed_s is None or h.now_s - h.last_processed_s > h.stale_after_s:
        since = h.now_s - (h.started_s if h.last_processed_s is None else h.last_processed_s)
        problems.append((WARN, f"no frame processed for {since:.1f} s although images arrive"))
    if judged and 2 * recent["rejected"] > judged:
        problems.append((WARN, f"{recent['rejected']} of the last {judged} frames rejected: "
                               f"{h.last_rejection}"))
    processed = recent["processed"] + recent["fallback"]
    if processed and 2 * recent["fallback"] > processed:
        problems.append((WARN, f"{recent['fallback']} of the last {processed} processed frames "
                               "had no camera_info with their stamp and used an earlier one"))
    if not problems:
        return OK, f"{h.fps:.2f} fps"
    problems.sort(key=lambda p: -p[0])
    return problems[0][0], "; ".join(text for _, text in problems)
