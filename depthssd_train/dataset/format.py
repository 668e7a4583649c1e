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

Writing is atomic per split: everything goes into a hidden staging folder first, and the
index and annotation files, which make a split visible to the reader, are renamed into place
last. An exception while writing leaves no split that looks complete.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Sequence
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
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


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
    """Convert a ``depthssd_train.synth.SynthFrame`` (labelled with boxes and depth)."""
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


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), array):
        raise ValueError(f"{path}: could not write PNG")


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _intrinsics_dict(intr: CameraIntrinsics) -> dict[str, float]:
    return {"fx": intr.fx, "fy": intr.fy, "cx": intr.cx, "cy": intr.cy,
            "width": intr.width, "height": intr.height}


def _opt(value: float | None) -> float | None:
    return None if value is None else float(value)


def _check_name(kind: str, name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"{kind} name {name!r} must match {_NAME_RE.pattern}")


# ------------------------------------------------------------------------------------ writer
class DatasetWriter:
    """Writes one split of a dataset atomically.

    Use as a context manager; frames are committed only when the ``with`` block ends without an
    exception (or on :meth:`commit`). Example::

        with DatasetWriter(root, "train") as writer:
            for frame in frames:
                writer.add(frame)

    Args:
        root: dataset root (created if needed; other splits in it are kept).
        split: split name, e.g. ``train``.
        metres_per_unit: depth PNG scale; must match an existing ``meta/depth_format.json``.
        nan_is_invalid: NaN depth means "no depth" (ROS sources) instead of an error.
        overwrite: replace an existing split of the same name instead of failing.
        append: add new sequences to an existing split (its index and annotations are
            rewritten atomically at commit; sequences already in the split are refused).
    """

    def __init__(self, root: Path | str, split: str, *,
                 metres_per_unit: float = DEFAULT_METRES_PER_UNIT,
                 nan_is_invalid: bool = False, overwrite: bool = False,
                 append: bool = False) -> None:
        _check_name("split", split)
        if overwrite and append:
            raise ValueError("overwrite and append exclude each other")
        if not (metres_per_unit > 0 and math.isfinite(metres_per_unit)):
            raise ValueError(f"metres_per_unit must be positive, got {metres_per_unit}")
        self.root = Path(root)
        self.split = split
        self.metres_per_unit = float(metres_per_unit)
        self.nan_is_invalid = nan_is_invalid
        self.overwrite = overwrite
        fmt_path = self.root / "meta" / "depth_format.json"
        if fmt_path.is_file():
            existing = load_depth_format(self.root)
            if not math.isclose(existing, self.metres_per_unit, rel_tol=1e-9):
                raise ValueError(f"{fmt_path}: dataset uses {existing} m per unit, "
                                 f"writer asked for {self.metres_per_unit}")
        exists = (self.root / "meta" / f"index_{split}.csv").exists()
        if exists and not (overwrite or append):
            raise ValueError(f"{self.root}: split {split!r} already exists (use overwrite "
                             "or append)")
        self._old = _ExistingSplit.load(self.root, split) if exists and append else None
        self._created_root = not self.root.exists()
        self.root.mkdir(parents=True, exist_ok=True)
        self._stage = self.root / f".partial-{split}-{uuid.uuid4().hex[:8]}"
        self._stage.mkdir()
        self._rows: list[dict[str, Any]] = []
        self._images: list[dict[str, Any]] = []
        self._annotations: list[dict[str, Any]] = []
        self._intrinsics: dict[str, dict[str, float]] = {}
        self._keys: set[tuple[str, int]] = set()
        self._sequence_ids: dict[str, int] = {}
        self._image_base = self._annotation_base = 0
        if self._old is not None:
            self._image_base = max((int(r["image_id"]) for r in self._old.rows), default=0)
            self._annotation_base = max((int(a["id"]) for a in self._old.annotations),
                                        default=0)
            self._sequence_ids = {img["sequence"]: int(img["sequence_id"])
                                  for img in self._old.images}
        self._done = False

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()

    @property
    def num_frames(self) -> int:
        """Frames added so far."""
        return len(self._rows)

    def add(self, frame: LabeledFrame) -> None:
        """Stage one frame (image, depth PNG and labels).

        Raises:
            ValueError: naming the frame on bad arrays, sizes, categories or boxes.
        """
        if self._done:
            raise ValueError("writer is already closed")
        _check_name("sequence", frame.sequence)
        where = f"{self.split}/{frame.sequence}/{frame.frame_index:06d}"
        key = (frame.sequence, int(frame.frame_index))
        if self._old is not None and frame.sequence in self._old.sequences:
            raise ValueError(f"{where}: sequence {frame.sequence!r} is already in split "
                             f"{self.split!r}; append adds new sequences only")
        if key in self._keys:
            raise ValueError(f"{where}: frame written twice")
        rgb = np.asarray(frame.rgb)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"{where}: rgb must be uint8 HxWx3, got {rgb.dtype} {rgb.shape}")
        height, width = rgb.shape[:2]
        intr = frame.intrinsics
        intr.validate()
        if (intr.width, intr.height) != (width, height):
            raise ValueError(f"{where}: intrinsics are for {intr.width}x{intr.height}, "
                             f"image is {width}x{height}")
        depth_units = None
        if frame.depth_m is not None:
            if np.shape(frame.depth_m) != (height, width):
                raise ValueError(f"{where}: depth shape {np.shape(frame.depth_m)} differs from "
                                 f"image {height}x{width}")
            depth_units = encode_depth(frame.depth_m, self.metres_per_unit,
                                       nan_is_invalid=self.nan_is_invalid, where=where)
        annotations = []
        if frame.objects is not None:
            for obj in frame.objects:
                annotations.append(self._annotation(obj, width, height, where))

        image_rel = f"images/{self.split}/{frame.sequence}/{frame.frame_index:06d}.png"
        depth_rel = (f"depth/{self.split}/{frame.sequence}/{frame.frame_index:06d}.png"
                     if depth_units is not None else "")
        _write_png(self._stage / image_rel, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if depth_units is not None:
            _write_png(self._stage / depth_rel, depth_units)

        image_id = self._image_base + len(self._rows) + 1
        pose = frame.pose if frame.pose is not None else (float("nan"),) * 6
        self._rows.append({
            "image_id": image_id, "sequence": frame.sequence, "frame": int(frame.frame_index),
            "timestamp_s": repr(float(frame.timestamp_s)),
            **{k: repr(float(v)) for k, v in zip(INDEX_COLUMNS[4:10], pose, strict=True)},
            "fx": repr(intr.fx), "fy": repr(intr.fy), "cx": repr(intr.cx), "cy": repr(intr.cy),
            "width": width, "height": height,
            "has_boxes": int(frame.objects is not None), "has_depth": int(depth_units is not None),
            "image_path": image_rel, "depth_path": depth_rel,
        })
        seq_id = self._sequence_ids.setdefault(frame.sequence, len(self._sequence_ids))
        self._images.append({
            "id": image_id, "file_name": image_rel, "width": width, "height": height,
            "depth_file": depth_rel or None, "sequence": frame.sequence,
            "sequence_id": seq_id, "frame_index": int(frame.frame_index),
            "timestamp_s": float(frame.timestamp_s), "has_boxes": frame.objects is not None,
            "has_depth": depth_units is not None, "intrinsics": _intrinsics_dict(intr),
        })
        for ann in annotations:
            ann["image_id"] = image_id
            ann["id"] = self._annotation_base + len(self._annotations) + 1
            self._annotations.append(ann)
        self._intrinsics.setdefault(frame.sequence, _intrinsics_dict(intr))
        self._keys.add(key)

    def _annotation(self, obj: ObjectLabel, width: int, height: int, where: str
                    ) -> dict[str, Any]:
        if not 1 <= int(obj.category_id) <= len(CLASSES):
            raise ValueError(f"{where}: unknown category id {obj.category_id} "
                             f"(known: 1..{len(CLASSES)})")
        x1, y1, x2, y2 = (float(v) for v in obj.box_xyxy)
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise ValueError(f"{where}: box {obj.box_xyxy} is not finite")
        if not (x2 > x1 and y2 > y1):
            raise ValueError(f"{where}: box {obj.box_xyxy} is empty")
        tol = 1e-3
        if x1 < -tol or y1 < -tol or x2 > width + tol or y2 > height + tol:
            raise ValueError(f"{where}: box {obj.box_xyxy} lies outside the "
                             f"{width}x{height} image")
        box3d = None
        if obj.center_optical is not None and obj.size_m is not None:
            box3d = {"center_optical_m": [float(v) for v in obj.center_optical],
                     "size_m": [float(v) for v in obj.size_m],
                     "yaw_rad": _opt(obj.yaw_rad)}
        return {
            "category_id": int(obj.category_id), "bbox": [x1, y1, x2 - x1, y2 - y1],
            "area": (x2 - x1) * (y2 - y1), "iscrowd": 0,
            "occlusion": _opt(obj.occlusion), "truncation": _opt(obj.truncation),
            "distance_m": _opt(obj.distance_m), "box3d": box3d,
            "visible_pixels": None if obj.visible_pixels is None else int(obj.visible_pixels),
            "instance_id": None if obj.instance_id is None else int(obj.instance_id),
        }

    def abort(self) -> None:
        """Drop everything staged; the dataset root keeps its previous state."""
        self._done = True
        shutil.rmtree(self._stage, ignore_errors=True)
        if self._created_root and not any(self.root.iterdir()):
            self.root.rmdir()

    def commit(self) -> None:
        """Move the staged split into place; the index and annotations are renamed last."""
        if self._done:
            return
        try:
            self._commit()
        except BaseException:
            self.abort()
            raise
        self._done = True

    def _commit(self) -> None:
        root, split, stage = self.root, self.split, self._stage
        if self.overwrite:
            # Hide the old split first so no mixture of old and new looks complete.
            for rel in (f"meta/index_{split}.csv", f"annotations/instances_{split}.json"):
                (root / rel).unlink(missing_ok=True)
            for rel in (f"images/{split}", f"depth/{split}"):
                shutil.rmtree(root / rel, ignore_errors=True)
        old = self._old or _ExistingSplit()
        with open(stage / "index.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=INDEX_COLUMNS)
            writer.writeheader()
            writer.writerows(old.rows + self._rows)
        coco = {
            "info": {"description": f"depthssd dataset, split {split}",
                     "format_version": FORMAT_VERSION},
            "images": old.images + self._images,
            "annotations": old.annotations + self._annotations,
            "categories": coco_categories(),
        }
        with open(stage / "instances.json", "w") as f:
            json.dump(coco, f)
        for kind in ("images", "depth"):
            src = stage / kind / split
            if not src.is_dir():
                continue
            dst = root / kind / split
            if self._old is not None and dst.is_dir():
                for seq_dir in sorted(src.iterdir()):
                    # Left over from an interrupted append: not indexed, safe to replace.
                    shutil.rmtree(dst / seq_dir.name, ignore_errors=True)
                    os.replace(seq_dir, dst / seq_dir.name)
            else:
                (root / kind).mkdir(exist_ok=True)
                os.replace(src, dst)
        _write_json_atomic(root / "meta" / "depth_format.json",
                           {"encoding": "png_uint16", "metres_per_unit": self.metres_per_unit,
                            "invalid_value": 0, "depth_type": "planar",
                            "format_version": FORMAT_VERSION})
        intr_path = root / "meta" / "intrinsics.json"
        all_intr = json.loads(intr_path.read_text()) if intr_path.is_file() else {}
        all_intr[split] = {**old.intrinsics, **self._intrinsics}
        _write_json_atomic(intr_path, all_intr)
        (root / "annotations").mkdir(exist_ok=True)
        os.replace(stage / "instances.json", root / "annotations" / f"instances_{split}.json")
        os.replace(stage / "index.csv", root / "meta" / f"index_{split}.csv")
        shutil.rmtree(stage, ignore_errors=True)


@dataclass
class _ExistingSplit:
    """The index rows, COCO entries and intrinsics of a split that ``append`` extends."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    annotations: list[dict[str, Any]] = field(default_factory=list)
    intrinsics: dict[str, Any] = field(default_factory=dict)

    @property
    def sequences(self) -> set[str]:
        return {row["sequence"] for row in self.rows}

    @classmethod
    def load(cls, root: Path, split: str) -> _ExistingSplit:
        path = root / "meta" / f"index_{split}.csv"
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        coco = load_coco(root, split)
        intr_path = root / "meta" / "intrinsics.json"
        intr = json.loads(intr_path.read_text()).get(split, {}) if intr_path.is_file() else {}
        return cls(rows, coco.get("images", []), coco.get("annotations", []), intr)


def write_split(root: Path | str, split: str, frames: Iterable[LabeledFrame],
                **kwargs: Any) -> int:
    """Write all ``frames`` as one split atomically; returns the number of frames."""
    with DatasetWriter(root, split, **kwargs) as writer:
        for frame in frames:
            writer.add(frame)
    return writer.num_frames


# ------------------------------------------------------------------------------------ reader
@dataclass
class FrameRecord:
    """One row of ``meta/index_{split}.csv`` with its labels from the COCO file."""

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
