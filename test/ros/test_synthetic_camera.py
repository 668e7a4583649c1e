"""synthetic_camera publishes what carla-ros-bridge publishes for an ego camera (the bridge's
conventions: docs/REFERENCES.md).

The node runs as a real process with the shipped config/synthetic_camera.yaml; the test
subscribes like the perception node would and checks topic names and types, the bridge's QoS,
encodings, frame ids, the intrinsics CARLA derives from the field of view (640x360 at 90 deg:
fx = fy = 320, cx = 320, cy = 180), the alignment of the depth camera, /clock and the
ground truth, and that the pixels are exactly the synthetic world's frame (so the BGRA channel
order is right).
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from ros_env import spinning

from depthssd_core.classes import CLASSES
from depthssd_ros.synthetic_camera_node import (
    SCENE_CUT_GAP_S,
    SyntheticCameraSettings,
    frame_stream,
    main,
)

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "/carla/ego_vehicle"
FRAMES = 4


def test_yaml_equals_defaults():
    data = yaml.safe_load((ROOT / "config" / "synthetic_camera.yaml").read_text())
    assert data["/**"]["ros__parameters"] == SyntheticCameraSettings().__dict__


def test_settings_from_yaml_with_overrides(tmp_path):
    path = ROOT / "config" / "synthetic_camera.yaml"
    assert SyntheticCameraSettings.from_yaml(path) == SyntheticCameraSettings()
    s = SyntheticCameraSettings.from_yaml(path, width=320, role_name="hero")
    assert (s.width, s.height, s.role_name) == (320, 360, "hero")
    assert s.topic(s.camera, "image") == "/carla/hero/rgb_front/image"
    assert s.frame_id(s.depth_camera) == "hero/depth_front"
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    widht: 320\n")
    with pytest.raises(ValueError, match="widht"):
        SyntheticCameraSettings.from_yaml(bad)
    with pytest.raises(ValueError, match="height"):
        SyntheticCameraSettings.from_yaml(path, height=0)


def test_stream_stamps_step_by_frame_and_jump_at_scene_cuts():
    settings = SyntheticCameraSettings(width=64, height=36, sequence_frames=2)
    stamps = [stamp for stamp, _ in itertools.islice(frame_stream(settings), 5)]
    dt, cut = 50_000_000, round(SCENE_CUT_GAP_S * 1e9)
    assert stamps == [dt, 2 * dt, 3 * dt + cut, 4 * dt + cut, 5 * dt + 2 * cut]


@pytest.mark.parametrize("override, name", [
    ("width:=0", "width"), ("rate_hz:=0.0", "rate_hz"), ("camera:=depth_front", "depth_camera"),
    ("role_name:=ego/vehicle", "role_name"), ("fov_deg:=200.0", "fov"),
])
def test_invalid_parameter_exits_with_one_line(override, name, capsys):
    assert main(["synthetic_camera", "--ros-args", "-p", override]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("synthetic_camera: ") and name in err and "\n" not in err


def _stamp_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


@contextlib.contextmanager
def _spinning_node(node, context) -> Iterator[None]:
    """``node`` spun on its own executor in the background for the ``with`` block."""
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    with spinning(executor):
        yield


def _wait_while_running(proc, ready: Callable[[], bool], describe: Callable[[], str],
                        timeout_s: float = 60.0) -> None:
    """Poll ``ready()`` until it holds; fail if the node process exits or time runs out."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert proc.is_running(), proc.output()
        assert time.monotonic() < deadline, describe()
        time.sleep(0.02)


@pytest.mark.ros
def test_topics_match_carla_ros_bridge(node_process, rclpy_context):
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo, Image
    from vision_msgs.msg import Detection2DArray

    from depthssd_sim import SyntheticWorld

    proc = node_process("depthssd_ros.synthetic_camera_node", [
        "--ros-args", "--params-file", str(ROOT / "config" / "synthetic_camera.yaml")])
    node = rclpy.create_node("bridge_checker", context=rclpy_context)
    topics = {
        "image": (Image, f"{PREFIX}/rgb_front/image"),
        "info": (CameraInfo, f"{PREFIX}/rgb_front/camera_info"),
        "depth": (Image, f"{PREFIX}/depth_front/image"),
        "depth_info": (CameraInfo, f"{PREFIX}/depth_front/camera_info"),
        "truth": (Detection2DArray, f"{PREFIX}/rgb_front/ground_truth"),
        "clock": (Clock, "/clock"),
    }
    got: dict[str, list] = {k: [] for k in topics}
    lock = threading.Lock()
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    subs = []
    for key, (msg_type, topic) in topics.items():
        def cb(msg, key=key):
            with lock:
                got[key].append(msg)
        subs.append(node.create_subscription(msg_type, topic, cb, qos))
    with _spinning_node(node, rclpy_context):
        deadline = time.monotonic() + 60.0
        while True:
            with lock:
                truth_stamps = {_stamp_ns(m.header.stamp) for m in got["truth"]}
                complete = [s for s in truth_stamps
                            if all(any(_stamp_ns(m.header.stamp) == s for m in got[k])
                                   for k in ("image", "info", "depth", "depth_info"))]
            if len(complete) >= FRAMES:
                break
            assert proc.is_running(), proc.output()
            assert time.monotonic() < deadline, f"only {len(complete)} complete frames"
            time.sleep(0.05)
        names_types = dict(node.get_topic_names_and_types())
        endpoint_info = {key: node.get_publishers_info_by_topic(topic)
                         for key, (_, topic) in topics.items()}
    assert proc.stop() == 0

    # Topic names and types.
    expected_types = {
        "image": "sensor_msgs/msg/Image", "info": "sensor_msgs/msg/CameraInfo",
        "depth": "sensor_msgs/msg/Image", "depth_info": "sensor_msgs/msg/CameraInfo",
        "truth": "vision_msgs/msg/Detection2DArray", "clock": "rosgraph_msgs/msg/Clock"}
    for key, (_, topic) in topics.items():
        assert names_types[topic] == [expected_types[key]]
        # The bridge's sensor QoS: reliable, volatile (history is not visible remotely).
        if key != "clock":
            (info,) = endpoint_info[key]
            assert info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
            assert info.qos_profile.durability == DurabilityPolicy.VOLATILE

    stamps = sorted(complete)[:FRAMES]
    by_stamp = {k: {_stamp_ns(m.header.stamp): m for m in v} for k, v in got.items()
                if k != "clock"}
    # Simulated time: 20 Hz steps, each frame's /clock equals its stamp.
    assert all(b - a == 50_000_000 * round((b - a) / 50_000_000) and b > a
               for a, b in itertools.pairwise(stamps))
    clock_ns = {_stamp_ns(c.clock) for c in got["clock"]}
    assert set(stamps) <= clock_ns

    world = SyntheticWorld(seed=7, width=640, height=360, fov_deg=90.0, camera_height_m=2.0,
                           camera_pitch_rad=0.0)
    last_index = max(stamps) // 50_000_000 - 1
    # The node renders sequences of sequence_frames (400) frames.
    frames = list(itertools.islice(world.sequence(0, 400), last_index + 1))
    k_expected = [320.0, 0.0, 320.0, 0.0, 320.0, 180.0, 0.0, 0.0, 1.0]
    for stamp in stamps:
        image, info = by_stamp["image"][stamp], by_stamp["info"][stamp]
        depth, depth_info = by_stamp["depth"][stamp], by_stamp["depth_info"][stamp]
        truth = by_stamp["truth"][stamp]
        assert image.encoding == "bgra8" and (image.width, image.height) == (640, 360)
        assert image.step == 640 * 4 and len(image.data) == 640 * 360 * 4
        assert depth.encoding == "32FC1" and (depth.width, depth.height) == (640, 360)
        assert depth.step == 640 * 4 and depth.is_bigendian == 0
        assert image.header.frame_id == info.header.frame_id == "ego_vehicle/rgb_front"
        assert truth.header.frame_id == "ego_vehicle/rgb_front"
        assert depth.header.frame_id == depth_info.header.frame_id == "ego_vehicle/depth_front"
        for cam in (info, depth_info):
            assert cam.distortion_model == "plumb_bob"
            assert list(cam.d) == [0.0] * 5
            assert list(cam.k) == pytest.approx(k_expected)
            assert list(cam.r) == [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
            assert list(cam.p) == pytest.approx([320.0, 0.0, 320.0, 0.0, 0.0, 320.0, 180.0, 0.0,
                                                 0.0, 0.0, 1.0, 0.0])
            assert (cam.width, cam.height) == (640, 360)

        # Pixels: exactly the world's frame, in BGRA order with opaque alpha.
        frame = frames[stamp // 50_000_000 - 1]
        bgra = np.frombuffer(image.data, np.uint8).reshape(360, 640, 4)
        assert np.array_equal(bgra[..., 2::-1], frame.rgb)
        assert np.all(bgra[..., 3] == 255)
        depth_m = np.frombuffer(depth.data, "<f4").reshape(360, 640)
        assert np.array_equal(depth_m, frame.depth_m)
        assert depth_m.min() > 0 and depth_m.max() == pytest.approx(1000.0)  # sky

        # Ground truth: one detection per visible object, point on the box-centre ray at the
        # object's true distance, within the depths its box covers.
        assert len(truth.detections) == len(frame.objects) > 0
        ids = [d.id for d in truth.detections]
        assert len(set(ids)) == len(ids)
        for det, obj in zip(truth.detections, frame.objects, strict=True):
            res = det.results[0]
            assert res.hypothesis.class_id == CLASSES[obj.category_id - 1]
            assert res.hypothesis.score == 1.0
            assert det.id == str(obj.instance_id)
            p = res.pose.pose.position
            assert p.z == pytest.approx(obj.distance_m, rel=1e-9)
            cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
            assert 320.0 * p.x / p.z + 320.0 == pytest.approx(cx, abs=1e-6)
            assert 320.0 * p.y / p.z + 180.0 == pytest.approx(cy, abs=1e-6)
            x1, y1 = cx - det.bbox.size_x / 2, cy - det.bbox.size_y / 2
            assert (x1, y1) == pytest.approx(obj.box_xyxy[:2], abs=1e-6)
            patch = depth_m[int(y1):math.ceil(y1 + det.bbox.size_y),
                            int(x1):math.ceil(x1 + det.bbox.size_x)]
            assert patch.min() - 1e-3 <= p.z <= patch.max() + 1e-3


@pytest.mark.ros
def test_lockstep_waits_for_the_answer_with_the_frame_stamp(node_process, rclpy_context):
    """With ``wait_for_topic`` the next frame waits for the answer to the last one.

    The camera may publish at 200 Hz; the test answers each of the first frames 0.15 s after
    it arrived (after a decoy answer with another stamp, which must not release the camera),
    then stops answering: frames then come once per ``wait_timeout_s``.
    """
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    answers_topic = "/lockstep_test/detections"
    proc = node_process("depthssd_ros.synthetic_camera_node", [
        "--ros-args", "-p", "rate_hz:=200.0", "-p", "width:=64", "-p", "height:=36",
        "-p", f"wait_for_topic:={answers_topic}", "-p", "wait_timeout_s:=0.6",
        "-p", "publish_ground_truth:=false"])
    node = rclpy.create_node("lockstep_client", context=rclpy_context)
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pub = node.create_publisher(Detection2DArray, answers_topic, qos)
    answered = 5
    delay_s = 0.15
    lock = threading.Lock()
    arrivals: list[tuple[int, float]] = []
    answer_times: dict[int, float] = {}

    def answer(header) -> None:
        with lock:
            answer_times[_stamp_ns(header.stamp)] = time.monotonic()
        pub.publish(Detection2DArray(header=header))

    def on_image(msg: Image) -> None:
        with lock:
            arrivals.append((_stamp_ns(msg.header.stamp), time.monotonic()))
            n = len(arrivals)
        if n <= answered:
            decoy = Detection2DArray()
            decoy.header.frame_id = msg.header.frame_id
            decoy.header.stamp.sec = msg.header.stamp.sec
            decoy.header.stamp.nanosec = (msg.header.stamp.nanosec + 1) % 1_000_000_000
            pub.publish(decoy)
            threading.Timer(delay_s, answer, args=(msg.header,)).start()

    node.create_subscription(Image, f"{PREFIX}/rgb_front/image", on_image, qos)
    with _spinning_node(node, rclpy_context):
        _wait_while_running(proc, lambda: len(arrivals) >= answered + 3,
                            lambda: f"only {len(arrivals)} frames")
    assert proc.stop() == 0
    stamps = [stamp for stamp, _ in arrivals]
    assert stamps == sorted(set(stamps))  # every frame once, in order
    # The first frame may have been published before this subscriber matched, so the answered
    # phase is judged from the frames this test answered: each next frame came after the answer.
    for (stamp, _), (_, next_arrival) in itertools.pairwise(arrivals[:answered + 1]):
        assert next_arrival >= answer_times[stamp], (stamp, arrivals, answer_times)
    gaps = [b - a for (_, a), (_, b) in itertools.pairwise(arrivals)]
    assert all(g >= delay_s * 0.9 for g in gaps[:answered]), gaps
    # Unanswered: one frame per timeout, never faster.
    assert all(g >= 0.6 * 0.9 for g in gaps[answered:]), gaps
    assert "no answer on /lockstep_test/detections within 0.6 s" in proc.output()
