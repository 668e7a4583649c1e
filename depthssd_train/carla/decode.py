"""Pure functions that turn CARLA sensor data into depthssd labels (no ``carla`` import).

- Depth camera raw BGRA: ``metres = 1000 * (R + 256 G + 65536 B) / (256**3 - 1)``, planar.
- Instance segmentation (CARLA 0.9.16): semantic tag in R, instance id in ``G + 256 B``. Since
  0.9.16 the id of a pixel of a CARLA actor is the actor id (its low 16 bits); what has no
  actor (parked cars, signs, buildings) falls back to Unreal Engine's own object id, also cut
  to 16 bits (carla-simulator pull request #8334, issue #9685). The two can collide, so an id
  names an actor only when that actor exists in the frame, its pixels carry one of the
  actor's tags and lie where its 3D box projects (:class:`FrameActor`). On large maps 0.9.16
  writes wrong actor ids (issue #9491); the capture then treats every id as scenery.
- Unreal axes (x forward, y right, z up) -> optical (x right, y down, z forward):
  ``(y, -z, x)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from depthssd_core.classes import CARLA_SEMANTIC_TAGS, category_id
from depthssd_core.geometry import CameraIntrinsics
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


def box_corners_optical(actor_world: np.ndarray, box_center_m: Sequence[float],
                        box_extent_m: Sequence[float], camera_world: np.ndarray) -> np.ndarray:
    """The 8 corners (8, 3) of an actor's bounding box in a camera's optical frame."""
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
    local = np.asarray(box_center_m, float) + signs * np.asarray(box_extent_m, float)
    world = (actor_world @ np.c_[local, np.ones(8)].T).T[:, :3]
    return world_to_optical(world, camera_world)


@dataclass(frozen=True)
class FrameActor:
    """What the capture knows of one CARLA actor at the frame of the images.

    Pixels carrying the actor's id count as the actor only where their tag is one of ``tags``
    and they lie inside ``rect_xyxy`` (grown by :data:`RECT_MARGIN`); the others are scenery
    whose Unreal id happens to equal the actor id (CARLA 0.9.16 falls back to Unreal ids for
    what has no actor id, see pull request #8334, and both are cut to 16 bits).

    Attributes:
        tags: semantic tags the actor's pixels may carry.
        category_id: the class its blueprint names (two-wheelers: motorcycle or bicycle), which
            overrides the pixels' tags, so a rider seen without its bike keeps the bike's
            class; ``None`` lets the tags decide.
        rect_xyxy: the 3D box projected into the image; ``None`` when it cannot be checked
            (part of the box behind the camera).
        box3d: (centre in the optical frame, (length, width, height), yaw) or ``None``.
        ignore: the actor's pixels are no label (the ego vehicle the camera is mounted on).
    """

    tags: frozenset[int]
    category_id: int | None = None
    rect_xyxy: tuple[float, float, float, float] | None = None
    box3d: tuple[tuple[float, float, float], tuple[float, float, float], float] | None = None
    ignore: bool = False


# A projected box is grown by this fraction of its size (plus RECT_MARGIN_PX) on each side
# before pixels are tested against it: CARLA's boxes are not always tight on the meshes.
RECT_MARGIN = 0.25
RECT_MARGIN_PX = 4.0
NEAR_PLANE_M = 0.05
_FOUR_WHEELER_TAGS = frozenset({14, 15, 16})
_TWO_WHEELER_TAGS = frozenset({*TWO_WHEELER_TAGS, RIDER_TAG})
_TWO_WHEELER_CATEGORY = {"motorcycle": category_id("motorcycle"),
                         "bicycle": category_id("bicycle"),
                         "bycicle": category_id("bicycle")}  # CARLA's own spelling in places


def frame_actor(type_id: str, attributes: Mapping[str, str], semantic_tags: Sequence[int],
                actor_world: np.ndarray, box_center_m: Sequence[float],
                box_extent_m: Sequence[float], camera_world: np.ndarray,
                intrinsics: CameraIntrinsics, ignore: bool = False) -> FrameActor | None:
    """A :class:`FrameActor` for one actor of the frame, or ``None`` if none of its pixels can
    be one of our labels (not a vehicle, walker, traffic light or sign, or wholly behind the
    camera).

    Args:
        type_id: the actor's blueprint id (``vehicle.*``, ``walker.pedestrian.*``, ...).
        attributes: ``actor.attributes`` (``base_type``, ``number_of_wheels``, ...).
        semantic_tags: ``actor.semantic_tags``.
        actor_world: 4x4 world-from-actor matrix at the frame.
        box_center_m: ``actor.bounding_box.location`` (actor frame).
        box_extent_m: ``actor.bounding_box.extent``.
        camera_world: 4x4 world-from-camera matrix at the frame.
        intrinsics: the camera's intrinsics.
        ignore: mark the actor's pixels as no label.
    """
    boxed = type_id.startswith(("vehicle.", "walker.pedestrian."))
    category = None
    if type_id.startswith("vehicle."):
        base_type = str(attributes.get("base_type", "")).lower()
        two_wheels = (base_type in _TWO_WHEELER_CATEGORY
                      or str(attributes.get("number_of_wheels", "")) == "2")
        category = _TWO_WHEELER_CATEGORY.get(base_type)
        tags = _TWO_WHEELER_TAGS if two_wheels else _FOUR_WHEELER_TAGS
    elif type_id.startswith("walker.pedestrian."):
        tags = frozenset({12})
    elif type_id.startswith("traffic.traffic_light"):
        tags = frozenset({7})
    elif type_id.startswith("traffic."):
        tags = frozenset({8})
    else:
        return None
    tags = tags | (frozenset(int(t) for t in semantic_tags) & frozenset(_TAG_CATEGORY))
    if not boxed:
        return FrameActor(tags=tags, category_id=category, ignore=ignore)
    corners = box_corners_optical(actor_world, box_center_m, box_extent_m, camera_world)
    in_front = corners[:, 2] > NEAR_PLANE_M
    if not in_front.any():
        return None
    rect = None
    if in_front.all():
        u = intrinsics.fx * corners[:, 0] / corners[:, 2] + intrinsics.cx
        v = intrinsics.fy * corners[:, 1] / corners[:, 2] + intrinsics.cy
        rect = (float(u.min()), float(v.min()), float(u.max()), float(v.max()))
    box3d = box3d_in_optical(actor_world, box_center_m, box_extent_m, camera_world)
    return FrameActor(tags=tags, category_id=category, rect_xyxy=rect,
                      box3d=box3d if box3d[0][2] > 0 else None, ignore=ignore)


def _box(ys: np.ndarray, xs: np.ndarray) -> tuple[float, float, float, float]:
    return (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))


def _inside(pix: np.ndarray, width: int, rect: tuple[float, float, float, float]) -> np.ndarray:
    """Which flat pixel indices lie in ``rect`` grown by the margins."""
    x1, y1, x2, y2 = rect
    grow_x = RECT_MARGIN * (x2 - x1) + RECT_MARGIN_PX
    grow_y = RECT_MARGIN * (y2 - y1) + RECT_MARGIN_PX
    ys, xs = np.divmod(pix, width)
    u, v = xs + 0.5, ys + 0.5
    return (u >= x1 - grow_x) & (u <= x2 + grow_x) & (v >= y1 - grow_y) & (v <= y2 + grow_y)


def objects_from_instances(tags: np.ndarray, instance_ids: np.ndarray, depth_m: np.ndarray,
                           min_pixels: int = 16,
                           actors: Mapping[int, FrameActor] | None = None) -> list[ObjectLabel]:
    """2D boxes of our classes from an instance-segmentation image.

    Without ``actors`` every non-zero id is one object (what CARLA before 0.9.16 gives). With
    ``actors`` (actor id in the map, i.e. its low 16 bits -> :class:`FrameActor`) only pixels
    that pass the actor's checks keep its id; every other pixel is scenery: grouped by
    (id, tag), and pixels of id 0 split into connected components per tag. Scenery gets
    negative, unique instance ids, so it never receives an actor's 3D box.

    A group's class is its actor's ``category_id`` if it has one, else its most frequent tag,
    preferring a vehicle tag over Rider. A rider left alone is merged into the two-wheeler its
    box overlaps most, else labelled bicycle (we label riders with their vehicle, see
    ``depthssd_core.classes``). ``distance_m`` is the median depth of the group's pixels nearer
    than the far plane. Occlusion and truncation are unknown here (``None``).

    Args:
        tags: HxW CARLA semantic tags.
        instance_ids: HxW instance ids.
        depth_m: HxW planar depth (same camera).
        min_pixels: groups with fewer pixels are dropped.
        actors: the actors of the frame, keyed by their id in the map.

    Returns:
        Objects sorted by instance id.
    """
    if tags.shape != instance_ids.shape or tags.shape != depth_m.shape:
        raise ValueError(f"tags {tags.shape}, instance ids {instance_ids.shape} and depth "
                         f"{depth_m.shape} must have one shape")
    width = tags.shape[1]
    flat_tags = tags.ravel()
    ours = np.isin(tags, list(_TAG_CATEGORY))
    groups: dict[int, np.ndarray] = {}  # id -> flat pixel indices
    forced: dict[int, int] = {}  # id -> category from its actor
    scenery: list[np.ndarray] = []
    ids = np.where(ours, instance_ids, -1).ravel()
    order = np.argsort(ids, kind="stable")
    uniq, starts = np.unique(ids[order], return_index=True)
    for k, gid in enumerate(uniq):
        if gid <= 0:
            continue
        end = starts[k + 1] if k + 1 < len(starts) else len(order)
        pix = order[starts[k]:end]
        if actors is None:
            groups[int(gid)] = pix
            continue
        actor = actors.get(int(gid))
        keep = np.zeros(len(pix), bool)
        if actor is not None:
            keep = np.isin(flat_tags[pix], list(actor.tags))
            if actor.rect_xyxy is not None:
                keep &= _inside(pix, width, actor.rect_xyxy)
            if keep.any() and not actor.ignore:
                groups[int(gid)] = pix[keep]
                if actor.category_id is not None:
                    forced[int(gid)] = actor.category_id
        rest = pix[~keep]
        for tag in np.unique(flat_tags[rest]):
            scenery.append(rest[flat_tags[rest] == tag])
    for tag in _TAG_CATEGORY:
        mask = (ours & (instance_ids == 0) & (tags == tag)).astype(np.uint8)
        if not mask.any():
            continue
        count, labels = cv2.connectedComponents(mask, connectivity=8)
        for comp in range(1, count):
            scenery.append(np.flatnonzero(labels.ravel() == comp))
    for k, pix in enumerate(scenery):
        groups[-1 - k] = pix

    group_tag = {}
    for gid, pix in groups.items():
        values, counts = np.unique(flat_tags[pix], return_counts=True)
        rank = sorted(zip(counts, values, strict=True), reverse=True)
        non_rider = [v for _, v in rank if v != RIDER_TAG]
        group_tag[gid] = int(non_rider[0]) if non_rider else RIDER_TAG
    boxes = {gid: _box(*np.divmod(pix, width)) for gid, pix in groups.items()}
    for gid in [g for g, t in group_tag.items() if t == RIDER_TAG and g not in forced]:
        host, best = None, 0.0
        x1, y1, x2, y2 = boxes[gid]
        grown = (x1 - 2, y1 - 2, x2 + 2, y2 + 2)  # a rider sits on, not always in, the box
        for other, tag in group_tag.items():
            if tag in TWO_WHEELER_TAGS or forced.get(other) in _TWO_WHEELER_CATEGORY.values():
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
            category_id=forced.get(gid, _TAG_CATEGORY[group_tag[gid]]), box_xyxy=boxes[gid],
            distance_m=float(np.median(d)) if d.size else None,
            visible_pixels=len(pix), instance_id=gid))
    return objects


def _intersection(a: Sequence[float], b: Sequence[float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(0.0, w) * max(0.0, h)
