"""Tiny analytic frames for the dataset tests (no renderer needed).

Each frame shows a flat road under a sky (depth 1000 m, like CARLA) and fronto-parallel
rectangles at known 3D positions, so boxes, depth and intrinsics agree exactly.
"""

from __future__ import annotations

import math

import numpy as np

from depthssd_core.geometry import CameraIntrinsics, flat_ground_depth
from depthssd_train.dataset.format import LabeledFrame, ObjectLabel

# (category id, centre x, centre y, z, width, height) in the optical frame, metres
TOY_OBJECTS = ((1, -2.0, 0.6, 12.0, 2.0, 1.6), (6, 3.0, 0.8, 20.0, 0.8, 1.8))


def toy_frame(sequence: str = "seq0", frame_index: int = 0, width: int = 160, height: int = 90,
              fov_deg: float = 90.0, boxes: bool = True, depth: bool = True,
              shift_m: float = 0.0) -> LabeledFrame:
    """A frame with a road, a sky and the two ``TOY_OBJECTS`` moved ``shift_m`` along z."""
    intr = CameraIntrinsics.from_fov(width, height, fov_deg)
    v = np.arange(height) + 0.5
    ground = flat_ground_depth(v, 1.6, 0.0, intr.fy, intr.cy)
    depth_m = np.repeat(np.minimum(ground, 1000.0)[:, None], width, axis=1).astype(np.float32)
    rng = np.random.default_rng(frame_index)
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[ground < 1000] = (90, 90, 90)
    rgb[ground >= 1000] = (120, 170, 230)
    rgb = np.clip(rgb.astype(int) + rng.integers(-5, 6, rgb.shape), 0, 255).astype(np.uint8)
    objects = []
    for k, (cat, x, y, z, w, h) in enumerate(TOY_OBJECTS):
        z = z + shift_m
        x1 = intr.fx * (x - w / 2) / z + intr.cx
        x2 = intr.fx * (x + w / 2) / z + intr.cx
        y1 = intr.fy * (y - h / 2) / z + intr.cy
        y2 = intr.fy * (y + h / 2) / z + intr.cy
        c1, c2 = max(0, math.ceil(x1 - 0.5)), min(width, math.ceil(x2 - 0.5))
        r1, r2 = max(0, math.ceil(y1 - 0.5)), min(height, math.ceil(y2 - 0.5))
        depth_m[r1:r2, c1:c2] = z
        rgb[r1:r2, c1:c2] = (200, 40 + 100 * k, 40)
        objects.append(ObjectLabel(
            category_id=cat, box_xyxy=(max(0.0, x1), max(0.0, y1), min(width, x2),
                                       min(height, y2)),
            distance_m=z, occlusion=0.0, truncation=0.0, center_optical=(x, y, z),
            size_m=(w, w, h), yaw_rad=0.0, visible_pixels=(r2 - r1) * (c2 - c1),
            instance_id=k + 1))
    return LabeledFrame(sequence=sequence, frame_index=frame_index, rgb=rgb, intrinsics=intr,
                        timestamp_s=0.05 * frame_index, depth_m=depth_m if depth else None,
                        objects=objects if boxes else None,
                        pose=(0.0, 0.0, 0.5 * frame_index, 0.0, 0.0, 0.0))


def toy_frames(sequences: int = 2, frames: int = 3, **kwargs) -> list[LabeledFrame]:
    """``sequences`` x ``frames`` toy frames, objects receding 0.5 m per frame."""
    return [toy_frame(f"seq{s}", f, shift_m=0.5 * f, **kwargs)
            for s in range(sequences) for f in range(frames)]


# CARLA semantic tags of the toy classes (car 14, pedestrian 12)
TOY_CARLA_TAGS = {1: 14, 6: 12}


def toy_instance_map(frame: LabeledFrame) -> tuple[np.ndarray, np.ndarray]:
    """(CARLA tags, instance ids) of a toy frame, painted over the same pixels as its depth."""
    height, width = frame.rgb.shape[:2]
    tags = np.zeros((height, width), np.uint8)
    ids = np.zeros((height, width), np.int32)
    for obj in frame.objects:
        x1, y1, x2, y2 = obj.box_xyxy
        c1, c2 = max(0, math.ceil(x1 - 0.5)), min(width, math.ceil(x2 - 0.5))
        r1, r2 = max(0, math.ceil(y1 - 0.5)), min(height, math.ceil(y2 - 0.5))
        tags[r1:r2, c1:c2] = TOY_CARLA_TAGS[obj.category_id]
        ids[r1:r2, c1:c2] = obj.instance_id
    return tags, ids


def pixel_box(obj: ObjectLabel, width: int, height: int) -> tuple[int, int, int, int]:
    """The box of the pixels a toy object covers (what an instance map yields)."""
    x1, y1, x2, y2 = obj.box_xyxy
    return (max(0, math.ceil(x1 - 0.5)), max(0, math.ceil(y1 - 0.5)),
            min(width, math.ceil(x2 - 0.5)), min(height, math.ceil(y2 - 0.5)))
