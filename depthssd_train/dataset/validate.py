"""Checks a dataset on disk and names every bad file.

:func:`validate_dataset` returns a list of problems, one readable line each, that starts with
the path of the offending file (relative to the dataset root). An empty list means the dataset
can be trained on.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthssd_core.classes import CLASSES
from depthssd_train.dataset.format import (
    FrameRecord,
    list_splits,
    load_coco,
    load_depth_format,
    load_index,
)

_BOX_TOLERANCE_PX = 1e-3


def validate_dataset(root: Path | str, splits: list[str] | None = None) -> list[str]:
    """Check every split (or ``splits``) of the dataset at ``root``.

    Checks: depth format file; index and COCO files parse and agree (every image indexed once,
    every indexed frame in the annotations, no PNG without an index entry); PNGs exist, decode,
    have the right channels and sizes (image vs index vs depth); depth is 16-bit, finite and
    non-negative; category ids are 1..8; boxes are non-empty and inside the image; no
    interrupted write left a staging folder.

    Returns:
        Problems, one line each, starting with the file they concern.
    """
    root = Path(root)
    if not root.is_dir():
        return [f"{root}: not a folder"]
    problems: list[str] = []
    try:
        load_depth_format(root)
    except ValueError as err:
        problems.append(str(err))
    for stage in sorted(root.glob(".partial-*")):
        problems.append(f"{stage.name}: staging folder of an interrupted write")
    found = list_splits(root)
    if splits is None:
        splits = found
        if not found:
            problems.append(f"meta/index_*.csv: no split index in {root}")
    for split in splits:
        problems.extend(_validate_split(root, split))
    return problems


def _rel(root: Path, path: Path | str) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def _validate_split(root: Path, split: str) -> list[str]:
    problems: list[str] = []
    try:
        records = load_index(root, split)
        coco = load_coco(root, split)
    except ValueError as err:
        return [str(err).replace(f"{root}/", "")]
    ann_file = f"annotations/instances_{split}.json"
    images = {int(img["id"]): img for img in coco.get("images", [])}
    indexed: set[int] = set()
    for rec in records:
        indexed.add(rec.image_id)
        img = images.get(rec.image_id)
        if img is None:
            problems.append(f"{ann_file}: no image entry for index id {rec.image_id} "
                            f"({_rel(root, rec.image_path)})")
        elif img.get("file_name") != _rel(root, rec.image_path):
            problems.append(f"{ann_file}: image {rec.image_id} is {img.get('file_name')}, "
                            f"index says {_rel(root, rec.image_path)}")
        problems.extend(_check_files(root, rec))
    for image_id, img in images.items():
        if image_id not in indexed:
            problems.append(f"{img.get('file_name', ann_file)}: missing from "
                            f"meta/index_{split}.csv")
    listed = {rec.image_path.resolve() for rec in records}
    listed |= {rec.depth_path.resolve() for rec in records if rec.depth_path is not None}
    for kind in ("images", "depth"):
        for png in sorted((root / kind / split).rglob("*.png")):
            if png.resolve() not in listed:
                problems.append(f"{_rel(root, png)}: missing from meta/index_{split}.csv")
    problems.extend(_check_annotations(coco, images, ann_file))
    return problems


def _check_files(root: Path, rec: FrameRecord) -> list[str]:
    problems = []
    image_rel = _rel(root, rec.image_path)
    size = None
    if not rec.image_path.is_file():
        problems.append(f"{image_rel}: image file is missing")
    else:
        image = cv2.imread(str(rec.image_path), cv2.IMREAD_UNCHANGED)
        if image is None:
            problems.append(f"{image_rel}: corrupt or unreadable PNG")
        elif image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            problems.append(f"{image_rel}: expected 8-bit RGB, got {image.dtype} "
                            f"shape {image.shape}")
        else:
            size = (image.shape[1], image.shape[0])
            expected = (rec.intrinsics.width, rec.intrinsics.height)
            if size != expected:
                problems.append(f"{image_rel}: image is {size[0]}x{size[1]}, index says "
                                f"{expected[0]}x{expected[1]}")
    if rec.has_depth:
        if rec.depth_path is None:
            problems.append(f"{image_rel}: has_depth is set but no depth file is given")
            return problems
        depth_rel = _rel(root, rec.depth_path)
        if not rec.depth_path.is_file():
            problems.append(f"{depth_rel}: depth file is missing")
            return problems
        depth = cv2.imread(str(rec.depth_path), cv2.IMREAD_UNCHANGED)
        if depth is None:
            problems.append(f"{depth_rel}: corrupt or unreadable PNG")
            return problems
        if depth.ndim != 2 or depth.dtype != np.uint16:
            problems.append(f"{depth_rel}: expected single-channel uint16 depth, got "
                            f"{depth.dtype} shape {depth.shape}")
        elif size is not None and (depth.shape[1], depth.shape[0]) != size:
            problems.append(f"{depth_rel}: depth is {depth.shape[1]}x{depth.shape[0]}, image "
                            f"is {size[0]}x{size[1]}")
        if depth.dtype.kind == "f" and (np.isnan(depth).any() or (depth < 0).any()):
            problems.append(f"{depth_rel}: depth has NaN or negative values")
    return problems


def _check_annotations(coco: dict[str, Any], images: dict[int, dict[str, Any]],
                       ann_file: str) -> list[str]:
    problems = []
    known = set(range(1, len(CLASSES) + 1))
    cats = {int(c["id"]): c.get("name") for c in coco.get("categories", [])}
    for cid, name in cats.items():
        if cid not in known or CLASSES[cid - 1] != name:
            problems.append(f"{ann_file}: category {cid} {name!r} is not ours "
                            f"(ids 1..{len(CLASSES)} = {', '.join(CLASSES)})")
    for ann in coco.get("annotations", []):
        img = images.get(int(ann.get("image_id", -1)))
        where = f"{ann_file}: annotation {ann.get('id')}"
        if img is None:
            problems.append(f"{where}: refers to unknown image {ann.get('image_id')}")
            continue
        where = f"{img['file_name']}: annotation {ann.get('id')}"
        if ann.get("category_id") not in known:
            problems.append(f"{where}: unknown category id {ann.get('category_id')}")
        if not img.get("has_boxes", True):
            problems.append(f"{where}: image has has_boxes false but carries a box")
        try:
            x, y, w, h = (float(v) for v in ann["bbox"])
        except (KeyError, TypeError, ValueError):
            problems.append(f"{where}: bbox must be [x, y, w, h], got {ann.get('bbox')}")
            continue
        tol = _BOX_TOLERANCE_PX
        if not all(math.isfinite(v) for v in (x, y, w, h)) or w <= 0 or h <= 0:
            problems.append(f"{where}: empty or non-finite bbox {ann['bbox']}")
        elif x < -tol or y < -tol or x + w > img["width"] + tol or y + h > img["height"] + tol:
            problems.append(f"{where}: bbox {ann['bbox']} lies outside the "
                            f"{img['width']}x{img['height']} image")
        if ann.get("iscrowd", 0) != 0 or "area" not in ann:
            problems.append(f"{where}: needs iscrowd 0 and an area")
    return problems


def format_problems(problems: list[str], limit: int = 50) -> str:
    """Problems as lines, at most ``limit`` of them plus a count of the rest."""
    lines = problems[:limit]
    if len(problems) > limit:
        lines.append(f"... and {len(problems) - limit} more")
    return "\n".join(lines)

