"""The /diagnostics level and message (pure logic; the node tests drive it over topics)."""

from __future__ import annotations

import pytest

from depthssd_ros import health
from depthssd_ros.health import ERROR, OK, WARN, HealthInputs, RecentOutcomes, assess


def _inputs(**changes) -> HealthInputs:
    base = dict(now_s=100.0, started_s=0.0, last_image_s=99.9, last_processed_s=99.9,
                last_info_s=99.9, stale_after_s=2.0,
                recent={"processed": 20, "fallback": 0, "rejected": 0, "failed": 0}, fps=19.5)
    base.update(changes)
    return HealthInputs(**base)


def _recent(**counts) -> dict[str, int]:
    return {outcome: counts.get(outcome, 0) for outcome in health.OUTCOMES}


def test_ok_says_the_rate():
    assert assess(_inputs()) == (OK, "19.50 fps")


def test_a_stall_warns_and_hints_at_images_the_transport_dropped():
    level, message = assess(_inputs(last_image_s=90.0, last_info_s=90.0))
    assert level == WARN and "no image for 10.0 s" in message and "transport" not in message
    level, message = assess(_inputs(last_image_s=90.0, last_info_s=99.5, infos_without_image=7))
    assert level == WARN and "camera_info still arrives (7 without their image)" in message


def test_before_the_first_image_it_warns():
    level, message = assess(_inputs(last_image_s=None, last_processed_s=None,
                                    last_info_s=None, recent=_recent()))
    assert level == WARN and "no image received" in message


def test_images_arriving_but_none_processed_warns():
    level, message = assess(_inputs(last_processed_s=95.0))
    assert level == WARN and "no frame processed for 5.0 s" in message


def test_most_recent_frames_rejected_warns_with_the_reason():
    level, message = assess(_inputs(recent=_recent(processed=9, rejected=11),
                                    last_rejection="bad image: unsupported encoding"))
    assert level == WARN
    assert message == "11 of the last 20 frames rejected: bad image: unsupported encoding"
    assert assess(_inputs(recent=_recent(processed=10, rejected=10)))[0] == OK


def test_mostly_fallback_camera_info_warns():
    level, message = assess(_inputs(recent=_recent(processed=3, fallback=5)))
    assert level == WARN and "5 of the last 8 processed frames" in message


def test_a_backend_failure_is_an_error_and_comes_first():
    level, message = assess(_inputs(recent=_recent(processed=4, failed=1, rejected=15),
                                    last_error="RuntimeError: CUDA out of memory",
                                    last_rejection="bad image"))
    assert level == ERROR
    assert message.startswith("inference failed on 1 of the last 20 frames: RuntimeError")
    assert "15 of the last 20 frames rejected" in message


def test_recent_outcomes_keep_a_window():
    recent = RecentOutcomes(3)
    for outcome in ("failed", "processed", "rejected", "processed"):
        recent.add(outcome)
    assert recent.counts() == _recent(processed=2, rejected=1)
    with pytest.raises(ValueError, match="unknown outcome"):
        recent.add("dropped")
