"""Contact sheets for eyeballing a dataset: boxes with class names over the image, colourised
depth under it, a few frames per sheet."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from depthssd_core.classes import CLASSES
from depthssd_train.dataset.augment import Sample
from depthssd_train.dataset.format import list_splits, load_depth_format, load_index
from depthssd_train.dataset.torch_data import load_sample

# One BGR colour per class (index = category id - 1), spread over the hue circle.
_CLASS_COLOURS = [tuple(int(c) for c in cv2.cvtColor(
    np.uint8([[[int(180 * k / len(CLASSES)), 220, 255]]]), cv2.COLOR_HSV2BGR)[0, 0])
    for k in range(len(CLASSES))]


def colourise_depth(depth_m: np.ndarray, valid: np.ndarray | None = None,
                    near_m: float = 1.0, far_m: float = 120.0) -> np.ndarray:
    """BGR uint8 picture of depth: log-scaled turbo colour map, invalid pixels black."""
    if valid is None:
        valid = np.isfinite(depth_m) & (depth_m > 0)
    d = np.clip(np.where(valid, depth_m, far_m), near_m, far_m)
    # Inverse log scale so near objects get most of the colour range.
    t = 1.0 - (np.log(d) - np.log(near_m)) / (np.log(far_m) - np.log(near_m))
    picture = cv2.applyColorMap((t * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    picture[~valid] = 0
    return picture


def draw_sample(sample: Sample, tile_width: int = 320) -> np.ndarray:
    """A BGR tile: the image with boxes and labels on top, its depth below."""
    width, height = sample.size
    scale = tile_width / width
    tile_h = max(1, round(height * scale))
    image = cv2.resize(cv2.cvtColor(sample.rgb, cv2.COLOR_RGB2BGR), (tile_width, tile_h))
    for box, label in zip(sample.boxes_xyxy, sample.labels, strict=True):
        x1, y1, x2, y2 = (round(float(v) * scale) for v in box)
        colour = _CLASS_COLOURS[(int(label) - 1) % len(CLASSES)]
        cv2.rectangle(image, (x1, y1), (max(x1, x2 - 1), max(y1, y2 - 1)), colour, 1)
        name = CLASSES[int(label) - 1] if 1 <= int(label) <= len(CLASSES) else f"id{label}"
        cv2.putText(image, name, (x1, max(8, y1 - 2)), cv2.FONT_HERSHEY_SIMPLEX, 0.3, colour,
                    1, cv2.LINE_AA)
    tag = f"{sample.sequence}/{sample.frame_index:06d}"
    if not sample.has_boxes:
        tag += " (no boxes)"
    cv2.putText(image, tag, (3, tile_h - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (255, 255, 255),
                1, cv2.LINE_AA)
    depth = cv2.resize(colourise_depth(sample.depth_m, sample.depth_valid),
                       (tile_width, tile_h), interpolation=cv2.INTER_NEAREST)
    if not sample.has_depth:
        cv2.putText(depth, "no depth", (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([image, depth])


def contact_sheet(samples: list[Sample], columns: int = 4, tile_width: int = 320
                  ) -> np.ndarray:
    """Tiles of ``samples`` in a grid (BGR uint8)."""
    if not samples:
        raise ValueError("no frames to preview")
    tiles = [draw_sample(s, tile_width) for s in samples]
    tile_h = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, tile_h - t.shape[0]), (0, 0), (0, 0))) for t in tiles]
    columns = min(columns, len(tiles))
    while len(tiles) % columns:
        tiles.append(np.zeros_like(tiles[0]))
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    return np.vstack(rows)


def write_preview(root: Path | str, out_png: Path | str, split: str | None = None,
                  max_frames: int = 8, columns: int = 4) -> Path:
    """Write a contact sheet of up to ``max_frames`` frames spread over ``split``.

    Raises:
        ValueError: when the dataset has no such split or a frame cannot be read.
    """
    root, out_png = Path(root), Path(out_png)
    splits = list_splits(root)
    if split is None:
        if not splits:
            raise ValueError(f"{root}: no split index found (meta/index_*.csv)")
        split = splits[0]
    records = load_index(root, split)
    if not records:
        raise ValueError(f"{root}: split {split!r} has no frames")
    scale = load_depth_format(root)
    picks = np.unique(np.linspace(0, len(records) - 1, min(max_frames, len(records)))
                      .round().astype(int))
    sheet = contact_sheet([load_sample(records[i], scale) for i in picks], columns)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out_png), sheet):
        raise ValueError(f"{out_png}: could not write PNG")
    return out_png
