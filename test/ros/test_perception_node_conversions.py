"""Message conversions of the perception node (no node process; real message types).

Each conversion is checked against values computed independently here: image bytes written
row by row, intrinsics from CARLA's field-of-view formula, the covariance of a point moved along
its viewing ray, and round trips through the inverse conversion.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs")

from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from visualization_msgs.msg import Marker

from depthssd_core.classes import CLASSES
from depthssd_core.geometry import CameraIntrinsics
from depthssd_core.runtime import Detection
from depthssd_ros import conversions as conv


def _det(box_xyxy: tuple[float, float, float, float], class_name: str, score: float,
         track_id: int, distance_m: float, distance_sigma_m: float,
         point_optical: tuple[float, float, float]) -> Detection:
    """A runtime Detection with the fields conversions read (the rest left neutral)."""
    return Detection(box_xyxy, CLASSES.index(class_name), class_name, score, track_id,
                     distance_m, distance_sigma_m, point_optical, closing_speed_mps=0.0,
                     time_to_contact_s=math.inf)


def _header() -> Header:
    header = Header(frame_id="ego_vehicle/rgb_front")
    header.stamp.sec, header.stamp.nanosec = 12, 345_000_000
    return header


def _image(pixels: np.ndarray, encoding: str, pad: int = 0) -> Image:
    h, w = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    rows = pixels.reshape(h, w * channels)
    padded = np.zeros((h, w * channels + pad), np.uint8)
    padded[:, : w * channels] = rows
    return Image(header=_header(), height=h, width=w, encoding=encoding,
                 step=w * channels + pad, data=padded.tobytes())


def test_image_to_frame_drops_row_padding_and_keeps_pixels():
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (5, 7, 4), dtype=np.uint8)
    frame = conv.image_to_frame(_image(pixels, "bgra8", pad=3))
    assert frame.shape == (5, 7, 4)
    np.testing.assert_array_equal(frame, pixels)


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda m: setattr(m, "encoding", "yuv422"), "encoding"),
    (lambda m: setattr(m, "step", 3), "step"),
    (lambda m: setattr(m, "data", bytes(10)), "bytes"),
    (lambda m: setattr(m, "width", 0), "width"),
])
def test_image_to_frame_names_the_problem(mutate, needle):
    msg = _image(np.zeros((4, 6, 3), np.uint8), "bgr8")
    mutate(msg)
    with pytest.raises(ValueError, match=needle):
        conv.image_to_frame(msg)


def test_camera_info_gives_carla_intrinsics():
    info = CameraInfo(width=640, height=360)
    # CARLA: fx = W / (2 tan(fov/2)) = 320 for 640 px at 90 degrees.
    info.k = [320.0, 0.0, 320.0, 0.0, 320.0, 180.0, 0.0, 0.0, 1.0]
    intr = conv.camera_info_to_intrinsics(info)
    expected = CameraIntrinsics.from_fov(640, 360, 90.0)
    assert (intr.width, intr.height, intr.cx, intr.cy) == (640, 360, 320.0, 180.0)
    assert intr.fx == pytest.approx(expected.fx) and intr.fy == pytest.approx(expected.fy)


@pytest.mark.parametrize(("k", "size", "needle"), [
    ([math.nan, 0, 320, 0, 320, 180, 0, 0, 1], (640, 360), "fx"),
    ([0.0] * 9, (640, 360), "focal"),
    ([320, 0, 320, 0, 320, 180, 0, 0, 1], (0, 360), "size"),
])
def test_invalid_camera_info_is_rejected(k, size, needle):
    info = CameraInfo(width=size[0], height=size[1])
    info.k = [float(v) for v in k]
    with pytest.raises(ValueError, match=needle):
        conv.camera_info_to_intrinsics(info)


def test_image_size_must_match_camera_info():
    intr = CameraIntrinsics.from_fov(640, 360, 90.0)
    conv.check_image_matches_intrinsics(640, 360, intr)
    with pytest.raises(ValueError, match=r"320x180.*640x360"):
        conv.check_image_matches_intrinsics(320, 180, intr)


def test_detection2d_array_fields():
    det = _det((100.0, 50.0, 180.0, 110.0), "car", 0.9, 7, 20.0, 0.5, (-4.0, 2.0, 20.0))
    msg = conv.detections_to_2d(_header(), [det])
    assert msg.header == _header()
    assert len(msg.detections) == 1
    d = msg.detections[0]
    assert d.header == _header()
    assert d.id == "7"
    assert (d.bbox.center.position.x, d.bbox.center.position.y) == (140.0, 80.0)
    assert (d.bbox.size_x, d.bbox.size_y) == (80.0, 60.0)
    res = d.results[0]
    assert res.hypothesis.class_id == "car"
    assert res.hypothesis.score == pytest.approx(0.9)
    p = res.pose.pose.position
    assert (p.x, p.y, p.z) == (-4.0, 2.0, 20.0)
    assert res.pose.pose.orientation.w == 1.0
    cov = np.asarray(res.pose.covariance).reshape(6, 6)
    # Moving the point by dz along its ray moves it by dz * (x/z, y/z, 1).
    ray = np.array([-0.2, 0.1, 1.0])
    np.testing.assert_allclose(cov[:3, :3], 0.25 * np.outer(ray, ray), rtol=1e-12)
    assert cov[2, 2] == pytest.approx(0.25)  # sigma^2 of the planar distance
    assert not cov[3:, :].any() and not cov[:, 3:].any()


def test_empty_detections_still_give_an_array_with_the_header():
    msg = conv.detections_to_2d(_header(), [])
    assert msg.header.frame_id == "ego_vehicle/rgb_front"
    assert msg.header.stamp.nanosec == 345_000_000
    assert list(msg.detections) == []


def test_detection3d_box_centred_at_point_with_class_size_and_nan_skipped():
    good = _det((0, 0, 10, 10), "pedestrian", 0.8, 3, 9.0, 0.3, (1.0, 0.5, 9.0))
    lost = _det((0, 0, 10, 10), "car", 0.8, 4, math.nan, math.nan, (math.nan,) * 3)
    msg = conv.detections_to_3d(_header(), [good, lost])
    assert [d.id for d in msg.detections] == ["3"]
    box = msg.detections[0].bbox
    assert (box.center.position.x, box.center.position.y, box.center.position.z) == (1, 0.5, 9)
    assert (box.size.x, box.size.y, box.size.z) == conv.TYPICAL_SIZE_M["pedestrian"]
    assert set(conv.TYPICAL_SIZE_M) == set(CLASSES)


def test_depth_image_round_trip_keeps_metres_and_nan():
    depth = np.linspace(0.5, 80.0, 12, dtype=np.float32).reshape(3, 4)
    depth[1, 2] = np.nan
    msg = conv.depth_to_image(_header(), depth)
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("32FC1", 4, 3, 16)
    assert len(msg.data) == 48
    np.testing.assert_array_equal(conv.image_to_depth(msg), depth)


def test_camera_info_round_trip_and_resized_depth():
    intr = CameraIntrinsics(300.0, 310.0, 321.5, 179.0, 640, 360)
    info = conv.intrinsics_to_camera_info(_header(), intr)
    assert info.distortion_model == "plumb_bob" and list(info.d) == [0.0] * 5
    assert list(info.p) == [300.0, 0.0, 321.5, 0.0, 0.0, 310.0, 179.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    assert conv.camera_info_to_intrinsics(info) == intr
    depth = np.arange(16, dtype=np.float32).reshape(4, 4)
    half = conv.resize_depth(depth, 2, 2)
    # Nearest neighbour: every output value is one of the input values, never a blend.
    assert half.shape == (2, 2) and set(half.ravel()) <= set(depth.ravel())


def test_overlay_is_bgr8_with_boxes_drawn_in_the_class_colour():
    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[..., 0] = 200  # red in RGB: must become the last channel in bgr8
    det = _det((10.0, 20.0, 50.0, 50.0), "pedestrian", 0.7, 1, 12.0, 0.5, (0.0, 0.0, 12.0))
    msg = conv.overlay_image(_header(), rgb, "rgb8", [det])
    assert (msg.encoding, msg.width, msg.height, msg.step) == ("bgr8", 80, 60, 240)
    img = np.frombuffer(msg.data, np.uint8).reshape(60, 80, 3)
    np.testing.assert_array_equal(img[58, 78], [0, 0, 200])  # untouched pixel, swapped order
    np.testing.assert_array_equal(img[40, 10], conv.CLASS_COLOURS_BGR["pedestrian"])  # left edge


def test_markers_clear_then_box_and_label_per_object():
    dets = [_det((0, 0, 10, 10), "car", 0.9, 5, 15.25, 0.4, (2.0, 1.0, 15.25)),
            _det((0, 0, 10, 10), "bus", 0.6, 6, math.nan, math.nan, (math.nan,) * 3)]
    msg = conv.detections_to_markers(_header(), dets)
    assert msg.markers[0].action == Marker.DELETEALL
    assert [m.type for m in msg.markers[1:]] == [Marker.CUBE, Marker.TEXT_VIEW_FACING]
    assert msg.markers[2].text == "car #5 0.90 15.2 m"
    assert all(m.header.frame_id == "ego_vehicle/rgb_front" for m in msg.markers)


def test_label_info_maps_coco_ids_to_class_names():
    msg = conv.label_info(_header(), 0.35)
    assert [(c.class_id, c.class_name) for c in msg.class_map] == [
        (i + 1, name) for i, name in enumerate(CLASSES)]
    assert msg.threshold == pytest.approx(0.35)
