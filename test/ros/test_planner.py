"""planner_example: corridor selection, filtered time to contact and advisory transitions.

The decision logic is checked directly on scripted approaches (closed forms: an object closing
at a constant speed v from distance d has TTC = d / v); the node is then started as a real
process and driven over real topics with the same kind of scripted Detection2DArray stream.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ros_env import spinning

from depthssd_ros.planner_node import (
    ADVISORIES,
    CorridorPlanner,
    Obstacle,
    PlannerSettings,
    closing_speed_mps,
)

ROOT = Path(__file__).resolve().parents[2]


def approach(start_m: float, speed_mps: float, rate_hz: float, frames: int,
             noise_m: float = 0.0, x_m: float = 0.3, seed: int = 0):
    """(stamp_s, distance_m, obstacle) of a car closing on the ego vehicle at constant speed."""
    rng = np.random.default_rng(seed)
    for i in range(frames):
        t = 100.0 + i / rate_hz
        d = start_m - speed_mps * (t - 100.0)
        measured = d + (rng.uniform(-noise_m, noise_m) if noise_m else 0.0)
        yield t, d, Obstacle("7", "car", (x_m, 1.2, measured))


def test_closing_speed_is_minus_least_squares_slope():
    rng = np.random.default_rng(3)
    t = np.sort(rng.uniform(0, 1, 12))
    d = 30.0 - 7.5 * t + rng.normal(0, 0.2, t.size)
    slope = np.polyfit(t, d, 1)[0]
    assert closing_speed_mps(list(zip(t, d, strict=True))) == pytest.approx(-slope, rel=1e-9)
    assert math.isnan(closing_speed_mps([(1.0, 5.0)]))
    assert math.isnan(closing_speed_mps([(1.0, 5.0), (1.0, 4.0)]))


def test_exact_approach_gives_exact_ttc_and_ordered_transitions():
    planner = CorridorPlanner()
    s = planner.settings
    changes = []
    for i, (t, d, obstacle) in enumerate(approach(60.0, 10.0, 20.0, 110)):
        decision = planner.update(t, [obstacle])
        assert decision.nearest_distance_m == pytest.approx(d)
        # A speed needs min_rate_samples samples spanning half the fit window.
        if i + 1 < s.min_rate_samples or i / 20.0 < 0.5 * s.rate_window_s:
            assert decision.time_to_contact_s == math.inf
            assert math.isnan(decision.closing_speed_mps)
        else:
            assert decision.closing_speed_mps == pytest.approx(10.0, rel=1e-9)
            assert decision.time_to_contact_s == pytest.approx(d / 10.0, rel=1e-9)
        if decision.changed:
            changes.append((decision.previous_advisory, decision.advisory, d))
    # TTC = d / 10 crosses caution_ttc_s (4 s) at 40 m and brake_ttc_s (2 s) at 20 m.
    assert [c[:2] for c in changes] == [("none", "caution"), ("caution", "brake")]
    assert changes[0][2] == pytest.approx(s.caution_ttc_s * 10.0, abs=0.5 + 1e-9)
    assert changes[1][2] == pytest.approx(s.brake_ttc_s * 10.0, abs=0.5 + 1e-9)


def test_noisy_approach_ttc_within_tolerance():
    planner = CorridorPlanner()
    errors = []
    for i, (t, d, obstacle) in enumerate(approach(50.0, 8.0, 20.0, 100, noise_m=0.15)):
        decision = planner.update(t, [obstacle])
        if i >= 20:  # a full 1 s window of samples
            errors.append(abs(decision.time_to_contact_s - d / 8.0) / (d / 8.0))
    assert np.median(errors) < 0.05
    assert max(errors) < 0.25


def test_receding_or_static_object_has_no_ttc():
    planner = CorridorPlanner()
    for t, _, obstacle in approach(30.0, -3.0, 20.0, 30):
        decision = planner.update(t, [obstacle])
    assert decision.closing_speed_mps == pytest.approx(-3.0)
    assert decision.time_to_contact_s == math.inf
    assert decision.advisory == "none"


def test_lateral_offset_is_the_median_over_its_own_window():
    """The corridor test takes the median offset over ``lateral_window_s`` only, also when the
    closing-speed fit keeps a longer history of the track."""
    planner = CorridorPlanner(PlannerSettings(lateral_window_s=0.2, rate_window_s=2.0))
    for i in range(30):  # 1.5 s at 20 Hz beside the lane
        decision = planner.update(100.0 + i / 20.0, [Obstacle("7", "car", (3.0, 1.2, 20.0))])
    assert decision.nearest is None
    for k in range(6):  # then 0.25 s in it: the last 0.2 s are all in the lane
        decision = planner.update(101.5 + k / 20.0, [Obstacle("7", "car", (0.0, 1.2, 20.0))])
    assert decision.nearest is not None and decision.nearest_distance_m == 20.0


def test_corridor_range_and_class_selection():
    planner = CorridorPlanner(PlannerSettings(corridor_half_width_m=1.5))
    objects = [
        Obstacle("1", "car", (3.0, 1.0, 6.0)),             # beside the lane: ignored
        Obstacle("2", "traffic_sign", (0.2, -2.0, 4.0)),   # ignored class
        Obstacle("3", "pedestrian", (-1.4, 1.0, 25.0)),    # in lane
        Obstacle("4", "car", (0.0, 1.0, 31.0)),            # in lane, further
        Obstacle("5", "car", (0.0, 1.0, -3.0)),            # behind the camera
        Obstacle("6", "truck", (0.0, 1.0, math.nan)),      # no distance
    ]
    decision = planner.update(0.0, objects)
    assert decision.nearest.track_id == "3"
    assert decision.nearest_distance_m == pytest.approx(25.0)
    clear = planner.update(0.05, [objects[0], objects[1]])
    assert clear.nearest is None and clear.nearest_distance_m == math.inf
    assert clear.advisory == "none"


def test_close_object_brakes_without_rate_and_release_is_held():
    planner = CorridorPlanner()
    s = planner.settings
    near = Obstacle("", "pedestrian", (0.0, 1.0, s.brake_distance_m - 0.5))  # untracked
    first = planner.update(0.0, [near])
    assert first.advisory == "brake" and first.changed
    assert first.time_to_contact_s == math.inf
    # The corridor clears: brake holds for release_hold_s, then drops straight to none.
    t, advisories = 0.0, []
    while t < s.release_hold_s + 0.3:
        t += 0.05
        advisories.append((t, planner.update(t, []).advisory))
    held = [a for tt, a in advisories if tt < s.release_hold_s + 0.05 - 1e-9]
    assert set(held) == {"brake"}
    assert advisories[-1][1] == "none"


def test_planner_yaml_equals_defaults():
    data = yaml.safe_load((ROOT / "config" / "planner.yaml").read_text())
    params = data["/**"]["ros__parameters"]
    defaults = PlannerSettings()
    expected = {k: (list(v) if isinstance(v, tuple) else v)
                for k, v in defaults.__dict__.items()}
    assert params == expected


@pytest.mark.parametrize("bad, name", [
    ({"corridor_half_width_m": 0.0}, "corridor_half_width_m"),
    ({"rate_window_s": math.nan}, "rate_window_s"),
    ({"min_rate_samples": 1}, "min_rate_samples"),
    ({"brake_ttc_s": 5.0}, "brake_ttc_s"),
    ({"brake_distance_m": 20.0}, "brake_distance_m"),
])
def test_invalid_settings_name_the_field(bad, name):
    with pytest.raises(ValueError, match=name):
        CorridorPlanner(PlannerSettings(**bad))


# ---------------------------------------------------------------- the node, as a real process


@pytest.mark.ros
def test_planner_node_over_topics(node_process, rclpy_context):
    """Drives the real node process lock-step: one Detection2DArray, then its three outputs."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from std_msgs.msg import Float32, String
    from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

    proc = node_process("depthssd_ros.planner_node", [
        "--ros-args", "--params-file", str(ROOT / "config" / "planner.yaml"),
        "-r", "__ns:=/test_planner", "-r", "detections:=/test_planner/scripted_detections"])
    node = rclpy.create_node("planner_driver", context=rclpy_context)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)
    received = {"ttc": [], "dist": [], "adv": []}
    cond = threading.Condition()

    def sink(key):
        def cb(msg):
            with cond:
                received[key].append(msg.data)
                cond.notify_all()
        return cb

    try:
        with spinning(executor):
            pub = node.create_publisher(Detection2DArray, "/test_planner/scripted_detections", 10)
            base = "/test_planner/planner_example/"
            subs = [
                node.create_subscription(Float32, base + "time_to_contact_s", sink("ttc"), 10),
                node.create_subscription(Float32, base + "nearest_distance_m", sink("dist"), 10),
                node.create_subscription(String, base + "advisory", sink("adv"), 10),
            ]
            deadline = time.monotonic() + 20.0
            while (pub.get_subscription_count() < 1
                   or any(s.get_publisher_count() < 1 for s in subs)):
                assert proc.is_running(), proc.output()
                assert time.monotonic() < deadline, "planner node did not come up"
                time.sleep(0.05)
            truth = []
            for i, (t, d, obstacle) in enumerate(approach(60.0, 10.0, 20.0, 100, noise_m=0.1)):
                msg = Detection2DArray()
                msg.header.stamp.sec = int(t)
                msg.header.stamp.nanosec = round((t - int(t)) * 1e9)
                msg.header.frame_id = "ego_vehicle/rgb_front"
                det = Detection2D(id=obstacle.track_id)
                hyp = ObjectHypothesisWithPose()
                hyp.hypothesis.class_id = obstacle.class_name
                hyp.hypothesis.score = 0.9
                (hyp.pose.pose.position.x, hyp.pose.pose.position.y,
                 hyp.pose.pose.position.z) = obstacle.point_optical
                det.results.append(hyp)
                # A sign beside the road must not change anything.
                sign = Detection2D(id="99")
                sign_hyp = ObjectHypothesisWithPose()
                sign_hyp.hypothesis.class_id = "traffic_sign"
                sign_hyp.pose.pose.position.z = 3.0
                sign.results.append(sign_hyp)
                msg.detections = [det, sign]
                pub.publish(msg)
                truth.append(d)
                with cond:
                    assert cond.wait_for(lambda n=i + 1: len(received["adv"]) >= n
                                         and len(received["ttc"]) >= n, timeout=10.0), (
                        f"no planner output for frame {i}")
            ttc = np.array(received["ttc"][:100], dtype=np.float64)
            d = np.array(truth)
            assert np.allclose(received["dist"][:100], d, atol=0.1 + 1e-3)
            rel = np.abs(ttc[20:] - d[20:] / 10.0) / (d[20:] / 10.0)
            assert np.median(rel) < 0.05
            adv = received["adv"][:100]
            assert set(adv) <= set(ADVISORIES)
            order = [a for k, a in enumerate(adv) if k == 0 or adv[k - 1] != a]
            assert order == ["none", "caution", "brake"]
            assert d[adv.index("caution")] == pytest.approx(40.0, abs=1.0)
            assert d[adv.index("brake")] == pytest.approx(20.0, abs=1.0)
    finally:
        node.destroy_node()
    assert proc.wait_for_output("advisory caution -> brake", timeout_s=5.0)
    assert "advisory none -> caution" in proc.output()
    assert "nan" not in proc.output().lower()
    assert proc.stop() == 0
