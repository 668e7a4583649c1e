"""Data records produced by the synthetic world: one rendered frame and its labelled objects.

Coordinates follow docs/ARCHITECTURE.md: the camera optical frame is x right, y down, z forward
(metres); depth is planar z, with the sky at 1000 m as CARLA's depth camera reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from depthssd_core.geometry import CameraIntrinsics

SKY_DEPTH_M = 1000.0
"""Depth written for pixels that see no surface (CARLA's far plane)."""


@dataclass
class SynthObject:
    """Ground truth of one object of our classes that is visible in a frame.

    Attributes:
        instance_id: id in the frame's ``instance`` map; stable for the object over a sequence.
        category_id: COCO category id 1..8 (index into ``CLASSES`` + 1).
        box_xyxy: box of the visible pixels (x1, y1, x2, y2), pixels, x2/y2 exclusive edges.
        occlusion: 1 - visible pixels / pixels the object would cover alone (clipped to image).
        truncation: fraction of the projected full 3D box outline that lies outside the image.
        center_optical: centre of the 3D box in the camera optical frame (metres).
        size_m: (length, width, height) of the 3D box in metres.
        yaw_rad: heading about the optical y axis, KITTI style: the object's forward axis in the
            optical frame is ``(cos yaw, 0, -sin yaw)`` (exact for zero pitch and roll; see
            ``rotation_optical`` for the exact orientation otherwise).
        distance_m: median true planar depth over the visible pixels.
        visible_pixels: number of pixels of the instance map that show this object.
        rotation_optical: 3x3 matrix whose columns are the box's length, width (left) and up
            axes in the optical frame.
        footprint_pixels: pixels the object would cover in the image without occluders.
    """

    instance_id: int
    category_id: int
    box_xyxy: tuple[float, float, float, float]
    occlusion: float
    truncation: float
    center_optical: tuple[float, float, float]
    size_m: tuple[float, float, float]
    yaw_rad: float
    distance_m: float
    visible_pixels: int
    rotation_optical: np.ndarray = field(default_factory=lambda: np.eye(3))
    footprint_pixels: int = 0


@dataclass
class SynthFrame:
    """One rendered camera frame with pixel-exact ground truth.

    Attributes:
        rgb: uint8 HxWx3, RGB order.
        depth_m: float32 HxW planar depth in metres (sky = 1000.0).
        instance: int32 HxW, 0 where no object of our classes is seen.
        semantic: uint8 HxW, 0 = none of our classes, 1..8 = category id.
        intrinsics: the pinhole intrinsics of the image.
        pose: camera (x, y, z, roll, pitch, yaw) in the world (x forward along the road start,
            y left, z up; metres and radians; pitch positive = looking down, REP-103 order
            yaw-pitch-roll).
        timestamp_s: simulated time (20 Hz: steps of 0.05 s).
        sequence: name of the sequence.
        frame_index: index of the frame in its sequence.
        camera_height_m: camera height above the (flat) ground.
        camera_pitch_rad: downward pitch of the camera (as in ``flat_ground_depth``).
        objects: the visible objects of our classes.
    """

    rgb: np.ndarray
    depth_m: np.ndarray
    instance: np.ndarray
    semantic: np.ndarray
    intrinsics: CameraIntrinsics
    pose: tuple[float, float, float, float, float, float]
    timestamp_s: float
    sequence: str
    frame_index: int
    camera_height_m: float
    camera_pitch_rad: float
    objects: list[SynthObject] = field(default_factory=list)
