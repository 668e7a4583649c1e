"""Conversions between ROS messages and depthssd_core types.

Everything here only moves values between message fields and core objects: images are decoded
by :func:`depthssd_core.image.decode_image`, intrinsics checked by
:class:`depthssd_core.geometry.CameraIntrinsics`, detections come from the runtime. The node
(:mod:`depthssd_ros.perception_node`) calls these functions and publishes the results.

Conventions (see docs/ARCHITECTURE.md and docs/REFERENCES.md, "vision_msgs 4.x"):

* every output copies the input ``header`` (stamp and camera frame_id);
* ``Detection2D.results[0].hypothesis.class_id`` is the class *name*, ``Detection2D.id`` the
  track id, ``results[0].pose.pose.position`` the object's point in the camera optical frame
  (metres) and its covariance the distance uncertainty along the viewing ray;
* depth images are ``32FC1`` metres, NaN where invalid.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Protocol

import cv2
import numpy as np
from builtin_interfaces.msg import Duration
from geometry_msgs.msg import Point
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import (
    Detection2D,
    Detection2DArray,
    Detection3D,
    Detection3DArray,
    LabelInfo,
    ObjectHypothesisWithPose,
    VisionClass,
)
from visualization_msgs.msg import Marker, MarkerArray

from depthssd_core.classes import CLASSES, category_id
from depthssd_core.geometry import CameraIntrinsics
from depthssd_core.image import decode_image, to_rgb

#: Typical object size per class as (width, height, length) in metres, i.e. along the optical
#: x (right), y (down) and z (forward) axes for an object seen end-on. The network measures only
#: a point on the object; these sizes just give rviz2 a box of the right order of magnitude
#: (values close to the common CARLA blueprints).
TYPICAL_SIZE_M: dict[str, tuple[float, float, float]] = {
    "car": (1.85, 1.5, 4.6),
    "truck": (2.5, 3.3, 8.0),
    "bus": (2.6, 3.2, 11.0),
    "motorcycle": (0.8, 1.5, 2.1),
    "bicycle": (0.65, 1.7, 1.8),
    "pedestrian": (0.6, 1.75, 0.5),
    "traffic_light": (0.4, 1.1, 0.4),
    "traffic_sign": (0.8, 0.8, 0.1),
}

#: Overlay/marker colour per class, BGR 0..255 (distinct hues, readable on road scenes).
CLASS_COLOURS_BGR: dict[str, tuple[int, int, int]] = {
    "car": (255, 160, 0),
    "truck": (255, 0, 160),
    "bus": (200, 0, 255),
    "motorcycle": (0, 200, 255),
    "bicycle": (0, 255, 200),
    "pedestrian": (0, 0, 255),
    "traffic_light": (0, 255, 255),
    "traffic_sign": (255, 255, 255),
}

_IS_BIGENDIAN = sys.byteorder == "big"


class DetectionLike(Protocol):
    """The fields of ``depthssd_core.runtime.Detection`` these conversions read."""

    box_xyxy: Sequence[float]
    class_name: str
    score: float
    track_id: int
    distance_m: float
    distance_sigma_m: float
    point_optical: Sequence[float]


def stamp_to_seconds(header: Header) -> float:
    """The header stamp as float seconds (sim time or wall time, whatever the sender used)."""
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def image_to_frame(msg: Image) -> np.ndarray:
    """Decode ``sensor_msgs/Image`` into a uint8 (H, W, C) view of its buffer.

    Raises:
        ValueError: unknown encoding, zero size, wrong step or truncated data (from
            :func:`decode_image`), naming the problem.
    """
    return decode_image(msg.data, msg.width, msg.height, msg.step, msg.encoding)


def camera_info_to_intrinsics(msg: CameraInfo) -> CameraIntrinsics:
    """Pinhole intrinsics from ``CameraInfo.k`` and its image size.

    Distortion is ignored: CARLA cameras (and the bridge's camera_info) have none.

    Raises:
        ValueError: zero image size, NaN/non-positive focal lengths (an uncalibrated camera
            publishes K = 0).
    """
    if msg.width <= 0 or msg.height <= 0:
        raise ValueError(f"camera_info has image size {msg.width}x{msg.height}")
    return CameraIntrinsics.from_matrix(np.asarray(msg.k, dtype=np.float64), msg.width,
                                        msg.height)


def check_image_matches_intrinsics(width: int, height: int, intrinsics: CameraIntrinsics) -> None:
    """Raise ``ValueError`` if an image of ``width`` x ``height`` contradicts its camera_info."""
    if (width, height) != (intrinsics.width, intrinsics.height):
        raise ValueError(
            f"image is {width}x{height} but camera_info says "
            f"{intrinsics.width}x{intrinsics.height}"
        )


def _ray_covariance(point: Sequence[float], sigma_m: float) -> np.ndarray:
    """6x6 row-major pose covariance: distance uncertainty along the viewing ray.

    The point is ``z * (x/z, y/z, 1)`` with the pixel (hence the ray) known, so an error of
    ``sigma`` in planar depth moves it along ``r = point / z``: ``cov = sigma^2 r r^T``
    (rank 1: the lateral position error given the pixel is that same ray error). The network
    says nothing about orientation, so the rotation block stays 0 and the orientation is the
    identity; consumers should read only the position block.
    """
    cov = np.zeros((6, 6), dtype=np.float64)
    x, y, z = (float(v) for v in point)
    if math.isfinite(sigma_m) and z > 0 and math.isfinite(z):
        ray = np.array([x / z, y / z, 1.0])
        cov[:3, :3] = (sigma_m * sigma_m) * np.outer(ray, ray)
    return cov.reshape(-1)


def _hypothesis(det: DetectionLike) -> ObjectHypothesisWithPose:
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id = det.class_name
    hyp.hypothesis.score = float(det.score)
    x, y, z = (float(v) for v in det.point_optical)
    hyp.pose.pose.position.x, hyp.pose.pose.position.y, hyp.pose.pose.position.z = x, y, z
    hyp.pose.pose.orientation.w = 1.0
    hyp.pose.covariance = _ray_covariance(det.point_optical, float(det.distance_sigma_m))
    return hyp


def detections_to_2d(header: Header, detections: Sequence[DetectionLike]) -> Detection2DArray:
    """``Detection2DArray`` with one ``Detection2D`` per detection (empty array if none).

    Boxes are in input-image pixels (centre and size); the 3D point and its covariance go in
    ``results[0].pose``; ``id`` is the track id.
    """
    out = Detection2DArray(header=header)
    for det in detections:
        x1, y1, x2, y2 = (float(v) for v in det.box_xyxy)
        msg = Detection2D(header=header, id=str(int(det.track_id)))
        msg.results.append(_hypothesis(det))
        msg.bbox.center.position.x = 0.5 * (x1 + x2)
        msg.bbox.center.position.y = 0.5 * (y1 + y2)
        msg.bbox.size_x = x2 - x1
        msg.bbox.size_y = y2 - y1
        out.detections.append(msg)
    return out


def detections_to_3d(header: Header, detections: Sequence[DetectionLike]) -> Detection3DArray:
    """``Detection3DArray``: a class-typical box centred at each object's point (for rviz2).

    Detections without a finite point (no depth and no ground estimate) are left out, since a
    box at NaN cannot be drawn.
    """
    out = Detection3DArray(header=header)
    for det in detections:
        point = [float(v) for v in det.point_optical]
        if not all(math.isfinite(v) for v in point):
            continue
        msg = Detection3D(header=header, id=str(int(det.track_id)))
        msg.results.append(_hypothesis(det))
        msg.bbox.center = msg.results[0].pose.pose
        size = TYPICAL_SIZE_M.get(det.class_name, (1.0, 1.0, 1.0))
        msg.bbox.size.x, msg.bbox.size.y, msg.bbox.size.z = size
        out.detections.append(msg)
    return out


def depth_to_image(header: Header, depth_m: np.ndarray) -> Image:
    """A ``32FC1`` image (metres, NaN invalid) from a float32 (H, W) depth map."""
    depth = np.ascontiguousarray(depth_m, dtype=np.float32)
    if depth.ndim != 2:
        raise ValueError(f"depth map must be (H, W), got shape {depth.shape}")
    msg = Image(header=header, height=depth.shape[0], width=depth.shape[1], encoding="32FC1",
                is_bigendian=_IS_BIGENDIAN, step=depth.shape[1] * 4)
    # bytes, not the array: rclpy copies a numpy array element by element (100x slower).
    msg.data = depth.tobytes()
    return msg


def image_to_depth(msg: Image) -> np.ndarray:
    """Inverse of :func:`depth_to_image` (for tests and tools): float32 (H, W) metres."""
    if msg.encoding != "32FC1":
        raise ValueError(f"expected a 32FC1 depth image, got encoding {msg.encoding!r}")
    dtype = np.dtype(np.float32).newbyteorder(">" if msg.is_bigendian else "<")
    rows = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
    return rows[:, : msg.width * 4].copy().view(dtype).astype(np.float32)


def intrinsics_to_camera_info(header: Header, intrinsics: CameraIntrinsics) -> CameraInfo:
    """``CameraInfo`` of an undistorted pinhole camera (plumb_bob, D = 0, R = I, P = [K|0])."""
    k = intrinsics.matrix()
    msg = CameraInfo(header=header, width=intrinsics.width, height=intrinsics.height,
                     distortion_model="plumb_bob")
    msg.d = [0.0] * 5
    msg.k = k.reshape(-1)
    msg.r = np.eye(3).reshape(-1)
    msg.p = np.hstack([k, np.zeros((3, 1))]).reshape(-1)
    return msg


def resize_depth(depth_m: np.ndarray, width: int, height: int) -> np.ndarray:
    """Nearest-neighbour resize of a depth map (never blends an object with the background)."""
    if depth_m.shape == (height, width):
        return depth_m
    return cv2.resize(depth_m, (width, height), interpolation=cv2.INTER_NEAREST)


def detection_label(det: DetectionLike) -> str:
    """Short text for overlays and markers: ``car #3 0.87 12.4 m``."""
    dist = float(det.distance_m)
    dist_text = f"{dist:.1f} m" if math.isfinite(dist) else "? m"
    return f"{det.class_name} #{int(det.track_id)} {float(det.score):.2f} {dist_text}"


def overlay_image(header: Header, frame: np.ndarray, encoding: str,
                  detections: Sequence[DetectionLike]) -> Image:
    """A ``bgr8`` copy of the input with each box, class, track id, score and distance drawn."""
    canvas = np.ascontiguousarray(to_rgb(frame, encoding)[:, :, ::-1])
    for det in detections:
        x1, y1, x2, y2 = (round(float(v)) for v in det.box_xyxy)
        colour = CLASS_COLOURS_BGR.get(det.class_name, (255, 255, 255))
        cv2.rectangle(canvas, (x1, y1), (x2 - 1, y2 - 1), colour, 2)
        label = detection_label(det)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
        top = max(y1 - th - base - 2, 0)
        cv2.rectangle(canvas, (x1, top), (x1 + tw + 2, top + th + base + 2), colour, -1)
        cv2.putText(canvas, label, (x1 + 1, top + th + 1), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1, cv2.LINE_AA)
    msg = Image(header=header, height=canvas.shape[0], width=canvas.shape[1], encoding="bgr8",
                is_bigendian=False, step=canvas.shape[1] * 3)
    msg.data = canvas.tobytes()
    return msg


def _colour(marker: Marker, class_name: str, alpha: float) -> None:
    b, g, r = CLASS_COLOURS_BGR.get(class_name, (255, 255, 255))
    marker.color.r, marker.color.g, marker.color.b = r / 255.0, g / 255.0, b / 255.0
    marker.color.a = alpha


def detections_to_markers(header: Header, detections: Sequence[DetectionLike],
                          lifetime_s: float = 0.5) -> MarkerArray:
    """rviz2 markers: a DELETEALL, then per object a translucent box and a text label.

    The DELETEALL first clears the previous frame's objects, so vanished objects do not linger;
    ``lifetime_s`` also lets them expire if the node stops publishing.
    """
    out = MarkerArray()
    out.markers.append(Marker(header=header, action=Marker.DELETEALL))
    secs = int(lifetime_s)
    lifetime = Duration(sec=secs, nanosec=round((lifetime_s - secs) * 1e9))
    for index, det in enumerate(detections):
        point = [float(v) for v in det.point_optical]
        if not all(math.isfinite(v) for v in point):
            continue
        size = TYPICAL_SIZE_M.get(det.class_name, (1.0, 1.0, 1.0))
        box = Marker(header=header, ns="depthssd_boxes", id=index, type=Marker.CUBE,
                     action=Marker.ADD, lifetime=lifetime)
        box.pose.position = Point(x=point[0], y=point[1], z=point[2])
        box.pose.orientation.w = 1.0
        box.scale.x, box.scale.y, box.scale.z = size
        _colour(box, det.class_name, 0.4)
        text = Marker(header=header, ns="depthssd_labels", id=index,
                      type=Marker.TEXT_VIEW_FACING, action=Marker.ADD, lifetime=lifetime,
                      text=detection_label(det))
        # Above the box: optical y points down.
        text.pose.position = Point(x=point[0], y=point[1] - 0.5 * size[1] - 0.3, z=point[2])
        text.pose.orientation.w = 1.0
        text.scale.z = 0.5
        _colour(text, det.class_name, 1.0)
        out.markers.extend((box, text))
    return out


def label_info(header: Header, score_threshold: float) -> LabelInfo:
    """``LabelInfo``: class map (COCO id -> name, the name is the published class_id)."""
    msg = LabelInfo(header=header, threshold=float(score_threshold))
    msg.class_map = [VisionClass(class_id=category_id(name), class_name=name) for name in CLASSES]
    return msg
