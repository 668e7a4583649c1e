"""The perception node with the shipped default model, on synthetic frames with exact truth.

A node process runs ``models/depthssd_conv_small.safetensors`` (or the file named by the
environment variable ``DEPTHSSD_TEST_MODEL``) on the default backend with the package's YAML; a
``SyntheticWorld`` sequence (640x360, 90 degrees, camera 2.0 m high, level: the YAML's
distance settings) is published frame by frame with its camera_info, and what comes back is
compared with the frame's ground truth:

* detections: recall of the clearly visible objects (at most 50 m, at least 20 px tall, at most
  30 % occluded, not truncated) matched by class and IoU >= 0.5 must be >= ``MIN_RECALL``, and
  at least ``MIN_PRECISION`` of the published detections must overlap a true object;
* distances (``results[0].pose.pose.position.z``) of matched objects: median relative error
  <= ``MAX_MEDIAN_REL_DISTANCE_ERROR``, 80th percentile <= ``MAX_P80_REL_DISTANCE_ERROR``;
* depth (``~/depth``, 32FC1): median over frames of AbsRel on pixels closer than 80 m
  <= ``MAX_DEPTH_ABSREL``;
* an empty scene (straight road and sky, no object) gives an empty array, still published.

Skipped, naming the path, while the trained model does not exist. The thresholds are the
requirement, not adjusted to the model: the quality test was a strict expected failure until the
model of 2026-12-02 (third warm start, ``models/MODEL_CARD.md``) met them, and is a plain test
since.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs")

from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray

from depthssd_core.classes import CLASSES
from depthssd_ros import conversions as conv
from depthssd_ros.params import shipped_model_path

MIN_RECALL = 0.5
MIN_PRECISION = 0.6
MAX_MEDIAN_REL_DISTANCE_ERROR = 0.12
MAX_P80_REL_DISTANCE_ERROR = 0.25
MAX_DEPTH_ABSREL = 0.2
FRAMES = 16
NODE = "/depthssd_model_test"


def _model_path() -> Path:
    return Path(os.environ.get("DEPTHSSD_TEST_MODEL") or shipped_model_path())


def _header(stamp_s: float, frame_id: str = "ego_vehicle/rgb_front") -> Header:
    header = Header(frame_id=frame_id)
    header.stamp.sec, header.stamp.nanosec = divmod(round(stamp_s * 1e9), 1_000_000_000)
    return header


def _rgb_image(rgb: np.ndarray, stamp_s: float) -> Image:
    """The frame as carla-ros-bridge sends it: bgra8."""
    bgra = np.empty((*rgb.shape[:2], 4), np.uint8)
    bgra[..., :3] = rgb[..., ::-1]
    bgra[..., 3] = 255
    msg = Image(header=_header(stamp_s), height=rgb.shape[0], width=rgb.shape[1],
                encoding="bgra8", step=rgb.shape[1] * 4)
    msg.data = bgra.tobytes()
    return msg


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _easy(obj) -> bool:
    height_px = obj.box_xyxy[3] - obj.box_xyxy[1]
    return (obj.distance_m <= 50.0 and height_px >= 20.0 and obj.occlusion <= 0.3
            and obj.truncation <= 0.01)


@pytest.fixture(scope="module")
def model_node(perception, ros_client, tmp_path_factory):
    path = _model_path()
    if not path.is_file():
        pytest.skip(f"trained model not found: {path} (train it or set DEPTHSSD_TEST_MODEL)")
    proc = perception.start(path, name=NODE.strip("/"),
                            log_dir=tmp_path_factory.mktemp("model_node"))
    perception.wait_ready(proc, timeout_s=300.0)
    client = ros_client
    image_pub = client.publisher(Image, "/cam/image", qos_profile_sensor_data)
    info_pub = client.publisher(CameraInfo, "/cam/camera_info", qos_profile_sensor_data)
    dets = client.subscribe(Detection2DArray, f"{NODE}/detections")
    depth = client.subscribe(Image, f"{NODE}/depth")
    client.wait_for_subscribers(image_pub)
    client.wait_for_subscribers(info_pub)
    client.wait_for_publishers(dets)
    client.wait_for_publishers(depth)

    def run(frames, timeout_s: float = 120.0):
        """Publish frames one at a time; return {stamp: (Detection2DArray, depth image)}."""
        dets.clear()
        depth.clear()
        for i, frame in enumerate(frames):
            assert dets.wait_count(i, timeout_s), proc.output()[-3000:]
            stamp = frame.timestamp_s
            info_pub.publish(conv.intrinsics_to_camera_info(_header(stamp), frame.intrinsics))
            image_pub.publish(_rgb_image(frame.rgb, stamp))
        assert dets.wait_count(len(frames), timeout_s), proc.output()[-3000:]
        assert depth.wait_count(len(frames), 10.0)
        by_stamp = {}
        for d, z in zip(dets.messages, depth.messages, strict=True):
            stamp = round(d.header.stamp.sec + d.header.stamp.nanosec * 1e-9, 6)
            by_stamp[stamp] = (d, z)
        return by_stamp

    # The first inference pays for session creation; a frame must get through before timing.
    from depthssd_sim import Scene, render_scene

    warm = render_scene(Scene(width=640, height=360, camera_height_m=2.0), timestamp_s=1.0)
    deadline = time.monotonic() + 120.0
    while not len(dets) and time.monotonic() < deadline:
        info_pub.publish(conv.intrinsics_to_camera_info(_header(1.0), warm.intrinsics))
        image_pub.publish(_rgb_image(warm.rgb, 1.0))
        dets.wait_count(1, 2.0)
    assert len(dets), proc.output()[-3000:]
    yield run
    assert proc.stop() == 0, proc.output()[-3000:]


def test_default_model_finds_objects_at_the_right_distance(model_node):
    from depthssd_sim import SyntheticWorld

    world = SyntheticWorld(seed=7, width=640, height=360, fov_deg=90.0, camera_height_m=2.0,
                           camera_pitch_rad=0.0)
    frames = list(world.sequence(3, FRAMES))
    results = model_node(frames)
    # The stamps are the world's (20 Hz sim time), not the node's clock.
    assert sorted(results) == sorted(round(f.timestamp_s, 6) for f in frames)

    easy_total = easy_found = published = overlapping = 0
    rel_errors = []
    absrels = []
    for frame in frames[2:]:  # the first frames warm the temporal memory up
        msg, depth_msg = results[round(frame.timestamp_s, 6)]
        boxes = []
        for det in msg.detections:
            cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
            w, h = det.bbox.size_x, det.bbox.size_y
            boxes.append((np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]),
                          det.results[0].hypothesis.class_id,
                          det.results[0].pose.pose.position.z))
        published += len(boxes)
        overlapping += sum(any(_iou(b, np.asarray(o.box_xyxy)) >= 0.3 for o in frame.objects)
                           for b, _, _ in boxes)
        used: set[int] = set()
        for obj in frame.objects:
            if not _easy(obj):
                continue
            easy_total += 1
            name = CLASSES[obj.category_id - 1]
            candidates = [(_iou(b, np.asarray(obj.box_xyxy)), k) for k, (b, c, _) in
                          enumerate(boxes) if c == name and k not in used]
            best = max(candidates, default=(0.0, -1))
            if best[0] >= 0.5:
                used.add(best[1])
                easy_found += 1
                rel_errors.append(abs(boxes[best[1]][2] - obj.distance_m) / obj.distance_m)
        depth = conv.image_to_depth(depth_msg)
        assert depth.shape == frame.depth_m.shape
        valid = (frame.depth_m < 80.0) & np.isfinite(depth)
        absrels.append(float(np.mean(np.abs(depth[valid] - frame.depth_m[valid])
                                     / frame.depth_m[valid])))
    assert easy_total >= 10, "the synthetic sequence should hold clearly visible objects"
    recall = easy_found / easy_total
    precision = overlapping / max(published, 1)
    summary = (f"recall {recall:.2f} ({easy_found}/{easy_total}), precision {precision:.2f}, "
               f"distance rel. error median {np.median(rel_errors or [np.nan]):.3f} "
               f"p80 {np.percentile(rel_errors or [np.nan], 80):.3f}, depth AbsRel median "
               f"{np.median(absrels):.3f}")
    print(summary)
    assert recall >= MIN_RECALL, summary
    assert precision >= MIN_PRECISION, summary
    assert np.median(rel_errors) <= MAX_MEDIAN_REL_DISTANCE_ERROR, summary
    assert np.percentile(rel_errors, 80) <= MAX_P80_REL_DISTANCE_ERROR, summary
    assert np.median(absrels) <= MAX_DEPTH_ABSREL, summary


def test_empty_scene_gives_an_empty_array_that_is_still_published(model_node):
    from depthssd_sim import Scene, render_scene

    frames = [render_scene(Scene(width=640, height=360, camera_height_m=2.0),
                           frame_index=i, timestamp_s=500.0 + 0.05 * i) for i in range(3)]
    assert all(not f.objects for f in frames)
    results = model_node(frames)
    assert sorted(results) == [500.0, 500.05, 500.1]
    for msg, depth_msg in results.values():
        assert msg.header.frame_id == "ego_vehicle/rgb_front"
        assert list(msg.detections) == [], [d.results[0].hypothesis for d in msg.detections]
        assert depth_msg.encoding == "32FC1"
