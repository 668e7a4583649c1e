"""The on-disk dataset format of depthssd, and its atomic writer and reader.

Layout under a dataset root (one or more splits, e.g. ``train`` and ``val``)::

    images/{split}/<sequence>/<frame:06d>.png   RGB PNG (8 bit, 3 channels)
    depth/{split}/<sequence>/<frame:06d>.png    uint16 PNG, metres = value * metres_per_unit
    meta/depth_format.json                      {"metres_per_unit": 1/256, "invalid_value": 0}
    meta/intrinsics.json                        {split: {sequence: {fx, fy, cx, cy, width, ...}}}
    meta/index_{split}.csv                      one row per frame (see INDEX_COLUMNS)
    annotations/instances_{split}.json          COCO detection annotations plus our extras

Depth PNGs hold planar depth. The default scale of 1/256 m per unit reaches 255.996 m with
3.9 mm steps; anything beyond (CARLA's sky at 1000 m), non-positive or non-finite becomes 0,
which means "no depth". Datasets whose ``depth_format.json`` says 0.001 (millimetre PNGs, as
many RGB-D tools write) are read the same way.

Labels may be asymmetric: a frame can carry boxes, depth, or both. ``has_boxes`` says the frame
was labelled for detection (an empty box list then means "no objects", a usable negative);
``has_depth`` says a depth PNG exists. Both flags are in the index and in every COCO image entry.

The pose columns of the index (``x_m, y_m, z_m, roll_rad, pitch_rad, yaw_rad``) hold the
camera's pose in the world frame *of its source*, which is not the same for every source:

- synthetic world (``depthssd-data synth``): right-handed, x forward along the start of the
  road, y left, z up, ground at z = 0; roll is 0 and pitch is positive looking *down*.
- CARLA captures (``depthssd-carla-capture``, sequences ``carla_<map>_<seed>`` by default):
  the camera sensor's ``carla.Transform`` as CARLA reports it, i.e. the map's axes in
  Unreal's *left-handed* convention (z up, +y 90 degrees clockwise from +x seen from above,
  metres) and ``carla.Rotation`` angles in radians: pitch positive nose *up*, yaw positive
  turning from +x towards +y, roll positive right side down. ``carla_transform_matrix`` in
  ``depthssd_train.carla.decode`` (which takes degrees) gives the 4x4 world-from-camera
  matrix, equal to ``carla.Transform.get_matrix()``. To compare
  with a right-handed (ROS) frame, mirror y: ``(x, -y, z)``, roll unchanged,
  ``pitch -> -pitch`` (then positive nose down), ``yaw -> -yaw``, as carla-ros-bridge does
  (the mirrored matrix equals the right-handed Z-Y-X rotation of those angles).
- bag imports: unknown (NaN).

Writing is atomic per split (``writer.py``): everything goes into a hidden staging folder
first, and the index and annotation files, which make a split visible to the reader, are
renamed into place last. An exception while writing leaves no split that looks complete.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthssd_core.classes import CLASSES
from depthssd_core.geometry import CameraIntrinsics

DEFAULT_METRES_PER_UNIT = 1.0 / 256.0
MILLIMETRE_METRES_PER_UNIT = 0.001
FORMAT_VERSION = 1
INDEX_COLUMNS = (
    "image_id", "sequence", "frame", "timestamp_s",
    "x_m", "y_m", "z_m", "roll_rad", "pitch_rad", "yaw_rad",
    "fx", "fy", "cx", "cy", "width", "height",
    "has_boxes", "has_depth", "image_path", "depth_path",
)


def coco_categories() -> list[dict[str, Any]]:
    """The fixed COCO categories: id = index in ``CLASSES`` + 1."""
    return [{"id": i + 1, "name": name, "supercategory": "object"}
            for i, name in enumerate(CLASSES)]


@dataclass
class ObjectLabel:
    """One labelled object in a frame.

    ``box_xyxy`` is the visible part in pixels with exclusive right/bottom edges (so the COCO
    width is ``x2 - x1``). Fields that a source cannot know (e.g. occlusion in a CARLA capture)
    are ``None`` and are written as JSON ``null``.
    """

    category_id: int
    box_xyxy: tuple[float, float, float, float]
    distance_m: float | None = None
    occlusion: float | None = None
    truncation: float | None = None
    center_optical: tuple[float, float, float] | None = None
    size_m: tuple[float, float, float] | None = None
    yaw_rad: float | None = None
    visible_pixels: int | None = None
    instance_id: int | None = None


@dataclass
class LabeledFrame:
    """One frame to write: an RGB image with optional depth and optional boxes.

    ``objects is None`` means the frame is not labelled for detection (``has_boxes`` false);
    an empty list means it is labelled and has no objects. ``depth_m is None`` means no depth.
    ``pose`` is the camera's (x, y, z, roll, pitch, yaw) in its source's world frame (metres,
    radians; the conventions per source are in this module's docstring), ``None`` if unknown.
    """

    sequence: str
    frame_index: int
    rgb: np.ndarray
    intrinsics: CameraIntrinsics
    timestamp_s: float = 0.0
    depth_m: np.ndarray | None = None
    objects: list[ObjectLabel] | None = None
    pose: tuple[float, float, float, float, float, float] | None = None


def frame_from_synth(frame: Any) -> LabeledFrame:
    """Convert a ``depthssd_sim.SynthFrame`` (labelled with boxes and depth)."""
    objects = [
        ObjectLabel(
            category_id=int(o.category_id),
            box_xyxy=tuple(float(v) for v in o.box_xyxy),
            distance_m=float(o.distance_m),
            occlusion=float(o.occlusion),
            truncation=float(o.truncation),
            center_optical=tuple(float(v) for v in o.center_optical),
            size_m=tuple(float(v) for v in o.size_m),
            yaw_rad=float(o.yaw_rad),
            visible_pixels=int(o.visible_pixels),
            instance_id=int(o.instance_id),
        )
        for o in frame.objects
    ]
    return LabeledFrame(
        sequence=str(frame.sequence), frame_index=int(frame.frame_index), rgb=frame.rgb,
        intrinsics=frame.intrinsics, timestamp_s=float(frame.timestamp_s),
        depth_m=frame.depth_m, objects=objects,
        pose=tuple(float(v) for v in frame.pose),
    )


# ----------------------------------------------------------------------------- depth PNG codec
def encode_depth(depth_m: np.ndarray, metres_per_unit: float = DEFAULT_METRES_PER_UNIT,
                 *, nan_is_invalid: bool = False, where: str = "depth") -> np.ndarray:
    """Quantise planar depth in metres to uint16 units (0 = invalid).

    Depth beyond ``65535 * metres_per_unit`` (e.g. the sky), zero and +inf become 0.

    Args:
        depth_m: HxW depth in metres.
        metres_per_unit: the PNG scale.
        nan_is_invalid: treat NaN as "no depth" (the ROS convention) instead of an error.
        where: names the frame in error messages.

    Raises:
        ValueError: on negative depth or -inf, or on NaN unless ``nan_is_invalid``.
    """
    depth = np.asarray(depth_m, dtype=np.float64)
    if depth.ndim != 2:
        raise ValueError(f"{where}: depth must be HxW, got shape {depth.shape}")
    if not nan_is_invalid and np.isnan(depth).any():
        raise ValueError(f"{where}: depth has {int(np.isnan(depth).sum())} NaN values")
    with np.errstate(invalid="ignore"):
        negative = depth < 0
    if negative.any():
        raise ValueError(f"{where}: depth has {int(negative.sum())} negative values "
                         f"(min {np.nanmin(depth):.3f} m)")
    units = np.zeros(depth.shape, dtype=np.float64)
    finite = np.isfinite(depth)
    units[finite] = np.rint(depth[finite] / metres_per_unit)
    units[units > 65535] = 0  # beyond range: unknown, not clipped to a wrong value
    return units.astype(np.uint16)


def decode_depth(units: np.ndarray, metres_per_unit: float = DEFAULT_METRES_PER_UNIT
                 ) -> np.ndarray:
    """Depth in metres (float32, 0 = invalid) from uint16 PNG units."""
    return units.astype(np.float32) * np.float32(metres_per_unit)


def read_depth_png(path: Path | str, metres_per_unit: float = DEFAULT_METRES_PER_UNIT
                   ) -> np.ndarray:
    """Read a uint16 depth PNG as metres (0 = invalid).

    Raises:
        ValueError: naming the file when it is missing, unreadable or not single-channel 16 bit.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: depth file is missing")
    units = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if units is None:
        raise ValueError(f"{path}: not a readable PNG")
    if units.dtype != np.uint16 or units.ndim != 2:
        raise ValueError(f"{path}: depth PNG must be single-channel uint16, got "
                         f"{units.dtype} with shape {units.shape}")
    return decode_depth(units, metres_per_unit)


def read_rgb_png(path: Path | str) -> np.ndarray:
    """Read an image file as uint8 HxWx3 RGB.

    Raises:
        ValueError: naming the file when it is missing or unreadable.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: image file is missing")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


# ------------------------------------------------------------------------------------ reader
@dataclass
class FrameRecord:
    """One row of ``meta/index_{split}.csv`` with its labels from the COCO file.

    ``pose`` is (x, y, z, roll, pitch, yaw) in the source's world frame (see the module
    docstring: a CARLA capture's is left-handed), NaN where unknown.
    """

    image_id: int
    sequence: str
    frame_index: int
    timestamp_s: float
    pose: tuple[float, ...]
    intrinsics: CameraIntrinsics
    has_boxes: bool
    has_depth: bool
    image_path: Path
    depth_path: Path | None
    boxes_xyxy: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    distances_m: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))


def list_splits(root: Path | str) -> list[str]:
    """Splits whose index exists (complete splits only)."""
    meta = Path(root) / "meta"
    return sorted(p.name[len("index_"):-len(".csv")] for p in meta.glob("index_*.csv"))


def load_depth_format(root: Path | str) -> float:
    """The metres-per-unit scale of the dataset's depth PNGs.

    Raises:
        ValueError: naming the file when it is missing or malformed.
    """
    path = Path(root) / "meta" / "depth_format.json"
    try:
        scale = float(json.loads(path.read_text())["metres_per_unit"])
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (not a depthssd dataset?)") from None
    except (ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: malformed ({err})") from None
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"{path}: metres_per_unit must be positive, got {scale}")
    return scale


def load_coco(root: Path | str, split: str) -> dict[str, Any]:
    """The parsed ``annotations/instances_{split}.json``."""
    path = Path(root) / "annotations" / f"instances_{split}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path}: missing") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def load_index(root: Path | str, split: str) -> list[FrameRecord]:
    """All frames of a split in index order, with boxes, labels and distances attached.

    Raises:
        ValueError: naming the file when the index or annotations are missing or malformed.
    """
    root = Path(root)
    path = root / "meta" / f"index_{split}.csv"
    if not path.is_file():
        available = ", ".join(list_splits(root)) or "none"
        raise ValueError(f"{path}: missing (splits present: {available})")
    coco = load_coco(root, split)
    per_image: dict[int, list[dict[str, Any]]] = {}
    for ann in coco.get("annotations", []):
        per_image.setdefault(int(ann["image_id"]), []).append(ann)
    records = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(INDEX_COLUMNS) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path}: missing columns {sorted(missing)}")
        for line, row in enumerate(reader, start=2):
            try:
                records.append(_record(root, row, per_image))
            except (ValueError, KeyError) as err:
                raise ValueError(f"{path}:{line}: {err}") from None
    return records


def _record(root: Path, row: dict[str, str], per_image: dict[int, list[dict[str, Any]]]
            ) -> FrameRecord:
    image_id = int(row["image_id"])
    anns = per_image.get(image_id, [])
    boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                       a["bbox"][1] + a["bbox"][3]] for a in anns], np.float32).reshape(-1, 4)
    distances = [np.nan if a.get("distance_m") is None else a["distance_m"] for a in anns]
    intr = CameraIntrinsics(float(row["fx"]), float(row["fy"]), float(row["cx"]),
                            float(row["cy"]), int(row["width"]), int(row["height"]))
    intr.validate()
    return FrameRecord(
        image_id=image_id, sequence=row["sequence"], frame_index=int(row["frame"]),
        timestamp_s=float(row["timestamp_s"]),
        pose=tuple(float(row[k]) for k in INDEX_COLUMNS[4:10]), intrinsics=intr,
        has_boxes=row["has_boxes"] == "1", has_depth=row["has_depth"] == "1",
        image_path=root / row["image_path"],
        depth_path=root / row["depth_path"] if row["depth_path"] else None,
        boxes_xyxy=boxes, labels=np.array([a["category_id"] for a in anns], np.int64),
        distances_m=np.array(distances, np.float32),
    )


def group_by_sequence(records: Sequence[FrameRecord]) -> dict[str, list[FrameRecord]]:
    """Records per sequence, each list sorted by frame index."""
    groups: dict[str, list[FrameRecord]] = {}
    for rec in records:
        groups.setdefault(rec.sequence, []).append(rec)
    for recs in groups.values():
        recs.sort(key=lambda r: r.frame_index)
    return groups
