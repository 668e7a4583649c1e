"""Atomic writing of depthssd dataset splits (the layout is described in ``format.py``).

Everything of a split goes into a hidden staging folder ``.partial-<split>-<id>`` under the
dataset root first; the index and annotation files, which make a split visible to readers, are
renamed into place last. An exception while writing leaves no split that looks complete, and a
root created by a failed writer is removed again.
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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthssd_core.classes import CLASSES
from depthssd_core.geometry import CameraIntrinsics
from depthssd_train.dataset.format import (
    DEFAULT_METRES_PER_UNIT,
    FORMAT_VERSION,
    INDEX_COLUMNS,
    LabeledFrame,
    ObjectLabel,
    coco_categories,
    encode_depth,
    load_coco,
    load_depth_format,
)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _intrinsics_dict(intr: CameraIntrinsics) -> dict[str, float]:
    return {"fx": intr.fx, "fy": intr.fy, "cx": intr.cx, "cy": intr.cy,
            "width": intr.width, "height": intr.height}


def _opt(value: float | None) -> float | None:
    return None if value is None else float(value)


def _check_name(kind: str, name: str) -> None:
    if not _NAME_RE.match(name):
        raise ValueError(f"{kind} name {name!r} must match {_NAME_RE.pattern}")


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
