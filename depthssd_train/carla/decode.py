"""Pure functions that turn CARLA sensor data into depthssd labels (no ``carla`` import).

- Depth camera raw BGRA: ``metres = 1000 * (R + 256 G + 65536 B) / (256**3 - 1)``, planar.
- Instance segmentation (CARLA 0.9.16): semantic tag in R, instance id in ``G + 256 B``. Since
  0.9.16 the instance id of a CARLA actor is its actor id (low 16 bits; see carla-simulator
  issue #9685 and pull request #8334); scenery that is no actor may have id 0.
- Unreal axes (x forward, y right, z up) -> optical (x right, y down, z forward):
  ``(y, -z, x)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from depthssd_core.classes import CARLA_SEMANTIC_TAGS, category_id
from depthssd_train.dataset.format import ObjectLabel

CARLA_FAR_PLANE_M = 1000.0
RIDER_TAG = 13
TWO_WHEELER_TAGS = (18, 19)  # motorcycle, bicycle: riders are folded into these
_TAG_CATEGORY = {tag: category_id(name) for tag, name in CARLA_SEMANTIC_TAGS.items()}


def _bgra(raw: bytes | bytearray | memoryview | np.ndarray, width: int, height: int
          ) -> np.ndarray:
    data = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw
    if data.size != width * height * 4:
        raise ValueError(f"raw BGRA buffer has {data.size} bytes, expected "
                         f"{width * height * 4} for {width}x{height}")
    return data.reshape(height, width, 4)


def decode_depth_bgra(raw: bytes | bytearray | memoryview | np.ndarray, width: int,
                      height: int) -> np.ndarray:
    """Planar depth in metres (float32 HxW) from a CARLA depth camera's raw BGRA data."""
    bgra = _bgra(raw, width, height).astype(np.float64)
    code = bgra[..., 2] + 256.0 * bgra[..., 1] + 65536.0 * bgra[..., 0]
    return (CARLA_FAR_PLANE_M * code / (256.0**3 - 1.0)).astype(np.float32)


def encode_depth_bgra(depth_m: np.ndarray) -> np.ndarray:
    """The inverse of :func:`decode_depth_bgra` (uint8 HxWx4), for tests and tools."""
    code = np.rint(np.clip(depth_m, 0, CARLA_FAR_PLANE_M) / CARLA_FAR_PLANE_M
                   * (256**3 - 1)).astype(np.int64)
    out = np.empty((*depth_m.shape, 4), np.uint8)
    out[..., 2] = code & 0xFF
    out[..., 1] = (code >> 8) & 0xFF
    out[..., 0] = (code >> 16) & 0xFF
    out[..., 3] = 255
    return out


def decode_instance_bgra(raw: bytes | bytearray | memoryview | np.ndarray, width: int,
                         height: int) -> tuple[np.ndarray, np.ndarray]:
    """(semantic tags uint8 HxW, instance ids int32 HxW) from instance-segmentation BGRA."""
    bgra = _bgra(raw, width, height)
    tags = bgra[..., 2].copy()
    ids = bgra[..., 1].astype(np.int32) + 256 * bgra[..., 0].astype(np.int32)
    return tags, ids


def ue_to_optical(points_ue: np.ndarray) -> np.ndarray:
    """Points (..., 3) from Unreal camera axes (x fwd, y right, z up) to the optical frame."""
    p = np.asarray(points_ue, dtype=np.float64)
    return np.stack([p[..., 1], -p[..., 2], p[..., 0]], axis=-1)


def carla_transform_matrix(location_m: Sequence[float], rotation_deg: Sequence[float]
                           ) -> np.ndarray:
    """4x4 matrix from local to parent coordinates of a CARLA transform.

    Args:
        location_m: (x, y, z) in metres.
        rotation_deg: (pitch, yaw, roll) in degrees, CARLA's ``Rotation`` order.
    """
    pitch, yaw, roll = (math.radians(a) for a in rotation_deg)
    cp, sp, cy, sy, cr, sr = (math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw),
                              math.cos(roll), math.sin(roll))
    m = np.eye(4)
    m[:3, :3] = [[cp * cy, cy * sp * sr - sy * cr, -cy * sp * cr - sy * sr],
                 [cp * sy, sy * sp * sr + cy * cr, -sy * sp * cr + cy * sr],
                 [sp, -cp * sr, cp * cr]]
    m[:3, 3] = location_m
    return m


def world_to_optical(points_world: np.ndarray, camera_world: np.ndarray) -> np.ndarray:
    """World points (N, 3) in a camera's optical frame, given its 4x4 world-from-camera."""
    p = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
    local = (np.linalg.inv(camera_world) @ np.c_[p, np.ones(len(p))].T).T[:, :3]
    return ue_to_optical(local)


def box3d_in_optical(actor_world: np.ndarray, box_center_m: Sequence[float],
                     box_extent_m: Sequence[float], camera_world: np.ndarray
                     ) -> tuple[tuple[float, float, float], tuple[float, float, float], float]:
    """Centre, size and yaw of an actor's bounding box in the camera optical frame.

    Args:
        actor_world: 4x4 world-from-actor matrix.
        box_center_m: ``actor.bounding_box.location`` (actor frame).
        box_extent_m: ``actor.bounding_box.extent`` (half sizes x, y, z).
        camera_world: 4x4 world-from-camera matrix.

    Returns:
        (centre_optical, (length, width, height), yaw_rad) with the synthetic world's yaw
        convention: the forward axis in the optical frame is ``(cos yaw, 0, -sin yaw)``.
    """
    centre_world = actor_world @ np.r_[np.asarray(box_center_m, float), 1.0]
    centre = world_to_optical(centre_world[None, :3], camera_world)[0]
    forward = ue_to_optical((np.linalg.inv(camera_world)[:3, :3] @ actor_world[:3, :3]
                             @ np.array([1.0, 0.0, 0.0]))[None])[0]
    ex, ey, ez = (float(v) for v in box_extent_m)
    yaw = math.atan2(-forward[2], forward[0])
    return ((float(centre[0]), float(centre[1]), float(centre[2])),
            (2 * ex, 2 * ey, 2 * ez), yaw)


def _box(ys: np.ndarray, xs: np.ndarray) -> tuple[float, float, float, float]:
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def objects_from_instances(tags: np.ndarray, instance_ids: np.ndarray, depth_m: np.ndarray,
                           min_pixels: int = 16) -> list[ObjectLabel]:
    """2D boxes of our classes from an instance-segmentation image.

    Pixels are grouped by instance id; scenery of our classes with id 0 (e.g. traffic signs
    that are no actors) is split into connected components per tag. A group's class comes
    from its most frequent tag, preferring a two-wheeler tag over Rider; a rider with its own
    id is merged into the two-wheeler its box overlaps most (we label riders with their
    vehicle, see ``depthssd_core.classes``). ``distance_m`` is the median depth of the group's
    pixels nearer than the far plane. Occlusion and truncation are unknown here (``None``).

    Args:
        tags: HxW CARLA semantic tags.
        instance_ids: HxW instance ids.
        depth_m: HxW planar depth (same camera).
        min_pixels: groups with fewer pixels are dropped.

    Returns:
        Objects sorted by instance id (ids of split scenery are negative and unique).
    """
    if tags.shape != instance_ids.shape or tags.shape != depth_m.shape:
        raise ValueError(f"tags {tags.shape}, instance ids {instance_ids.shape} and depth "
                         f"{depth_m.shape} must have one shape")
    ours = np.isin(tags, list(_TAG_CATEGORY))
    groups: dict[int, np.ndarray] = {}  # id -> flat pixel indices
    ids = np.where(ours, instance_ids, -1).ravel()
    order = np.argsort(ids, kind="stable")
    uniq, starts = np.unique(ids[order], return_index=True)
    for k, gid in enumerate(uniq):
        if gid <= 0:
            continue
        end = starts[k + 1] if k + 1 < len(starts) else len(order)
        groups[int(gid)] = order[starts[k]:end]
    next_scenery = -1
    for tag in _TAG_CATEGORY:
        mask = (ours & (instance_ids == 0) & (tags == tag)).astype(np.uint8)
        if not mask.any():
            continue
        count, labels = cv2.connectedComponents(mask, connectivity=8)
        for comp in range(1, count):
            groups[next_scenery] = np.flatnonzero(labels.ravel() == comp)
            next_scenery -= 1

    flat_tags = tags.ravel()
    group_tag = {}
    for gid, pix in groups.items():
        values, counts = np.unique(flat_tags[pix], return_counts=True)
        rank = sorted(zip(counts, values, strict=True), reverse=True)
        non_rider = [v for _, v in rank if v != RIDER_TAG]
        group_tag[gid] = int(non_rider[0]) if non_rider else RIDER_TAG
    width = tags.shape[1]
    boxes = {gid: _box(*np.divmod(pix, width)) for gid, pix in groups.items()}
    for gid in [g for g, t in group_tag.items() if t == RIDER_TAG]:
        host, best = None, 0.0
        x1, y1, x2, y2 = boxes[gid]
        grown = (x1 - 2, y1 - 2, x2 + 2, y2 + 2)  # a rider sits on, not always in, the box
        for other, tag in group_tag.items():
            if tag in TWO_WHEELER_TAGS:
                overlap = _intersection(grown, boxes[other])
                if overlap > best:
                    host, best = other, overlap
        if host is not None:
            groups[host] = np.concatenate([groups[host], groups.pop(gid)])
            boxes[host] = _box(*np.divmod(groups[host], width))
            del group_tag[gid], boxes[gid]

    flat_depth = depth_m.ravel()
    objects = []
    for gid in sorted(groups):
        pix = groups[gid]
        if len(pix) < min_pixels:
            continue
        d = flat_depth[pix]
        d = d[np.isfinite(d) & (d > 0) & (d < CARLA_FAR_PLANE_M)]
        objects.append(ObjectLabel(
            category_id=_TAG_CATEGORY[group_tag[gid]], box_xyxy=boxes[gid],
            distance_m=float(np.median(d)) if d.size else None,
            visible_pixels=len(pix), instance_id=gid))
    return objects


def _intersection(a: Sequence[float], b: Sequence[float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)
