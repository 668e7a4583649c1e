"""Augmentations that keep image, depth, boxes and intrinsics consistent.

Every transform takes a :class:`Sample` (numpy arrays) and a ``numpy.random.Generator`` and
returns a new sample. Geometry follows the pixel-edge convention used everywhere in depthssd:
pixel ``i`` covers ``[i, i + 1)``, box right/bottom edges are exclusive, and a point projects to
``u = fx * x / z + cx`` in that continuous coordinate. Under this convention

- a horizontal flip maps ``u -> W - u``, so ``cx' = W - cx`` and ``x1' = W - x2``;
- resizing by ``s`` maps ``u -> s * u`` (OpenCV resizes with half-pixel centres, which is the
  same mapping), so ``fx' = s * fx`` and ``cx' = s * cx``;
- cropping at offset ``(ox, oy)`` maps ``u -> u - ox``, so ``cx' = cx - ox``.

Depth is metric and does not change with image scale; the network's canonical-camera depth
absorbs the focal change. Depth is resampled with nearest neighbour so invalid pixels (0) never
blend with valid ones. To give all frames of a clip the same augmentation, call the transform on
each frame with a generator created from the same seed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from depthssd_core.geometry import CameraIntrinsics


@dataclass
class Sample:
    """One frame in memory, before conversion to tensors.

    ``depth_m`` is 0 where ``depth_valid`` is false. ``boxes_xyxy`` are pixels (exclusive
    right/bottom edge); ``labels`` are COCO category ids 1..8.
    """

    rgb: np.ndarray
    depth_m: np.ndarray
    depth_valid: np.ndarray
    intrinsics: CameraIntrinsics
    boxes_xyxy: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    distances_m: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    has_boxes: bool = True
    has_depth: bool = True
    sequence: str = ""
    frame_index: int = 0
    image_id: int = 0
    timestamp_s: float = 0.0

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.rgb.shape[1], self.rgb.shape[0]


class Compose:
    """Apply transforms in order with one shared generator."""

    def __init__(self, transforms: Sequence) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        for transform in self.transforms:
            sample = transform(sample, rng)
        return sample


class HorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = p

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return sample
        width = sample.size[0]
        intr = sample.intrinsics
        boxes = sample.boxes_xyxy.copy()
        boxes[:, 0] = width - sample.boxes_xyxy[:, 2]
        boxes[:, 2] = width - sample.boxes_xyxy[:, 0]
        return dataclasses.replace(
            sample, rgb=np.ascontiguousarray(sample.rgb[:, ::-1]),
            depth_m=np.ascontiguousarray(sample.depth_m[:, ::-1]),
            depth_valid=np.ascontiguousarray(sample.depth_valid[:, ::-1]),
            intrinsics=dataclasses.replace(intr, cx=width - intr.cx), boxes_xyxy=boxes)


def scale_and_crop(sample: Sample, scale_x: float, scale_y: float, offset_x: int,
                   offset_y: int, out_width: int, out_height: int, *,
                   min_box_px: float = 2.0, min_visible_fraction: float = 0.25) -> Sample:
    """Resize by (``scale_x``, ``scale_y``), then cut an ``out_width`` x ``out_height`` window.

    The window starts at (``offset_x``, ``offset_y``) in the resized image; negative offsets or a
    window past the edge pad with black pixels and invalid depth. Boxes are clipped to the
    window and dropped when less than ``min_visible_fraction`` of them stays inside or a side
    is shorter than ``min_box_px``.

    Args:
        sample: the input frame.
        scale_x: horizontal scale; the resized width is ``round(W * scale_x)``.
        scale_y: vertical scale.
        offset_x: left edge of the window in the resized image.
        offset_y: top edge of the window.
        out_width: output width.
        out_height: output height.
        min_box_px: drop boxes narrower or lower than this after clipping.
        min_visible_fraction: drop boxes with less of their area inside the window.
    """
    width, height = sample.size
    new_w, new_h = max(1, round(width * scale_x)), max(1, round(height * scale_y))
    sx, sy = new_w / width, new_h / height  # exact ratios after rounding the size
    interp = cv2.INTER_AREA if sx * sy < 1 else cv2.INTER_LINEAR
    rgb = cv2.resize(sample.rgb, (new_w, new_h), interpolation=interp)
    depth = cv2.resize(sample.depth_m, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
    valid = cv2.resize(sample.depth_valid.astype(np.uint8), (new_w, new_h),
                       interpolation=cv2.INTER_NEAREST).astype(bool)

    out_rgb = np.zeros((out_height, out_width, 3), np.uint8)
    out_depth = np.zeros((out_height, out_width), np.float32)
    out_valid = np.zeros((out_height, out_width), bool)
    # Overlap of the window with the resized image, in both coordinate systems.
    sx0, sy0 = max(0, offset_x), max(0, offset_y)
    sx1, sy1 = min(new_w, offset_x + out_width), min(new_h, offset_y + out_height)
    if sx1 > sx0 and sy1 > sy0:
        dx0, dy0 = sx0 - offset_x, sy0 - offset_y
        region = (slice(dy0, dy0 + sy1 - sy0), slice(dx0, dx0 + sx1 - sx0))
        out_rgb[region] = rgb[sy0:sy1, sx0:sx1]
        out_depth[region] = depth[sy0:sy1, sx0:sx1]
        out_valid[region] = valid[sy0:sy1, sx0:sx1]
    out_depth[~out_valid] = 0.0

    intr = sample.intrinsics
    new_intr = CameraIntrinsics(intr.fx * sx, intr.fy * sy, intr.cx * sx - offset_x,
                                intr.cy * sy - offset_y, out_width, out_height)
    boxes = sample.boxes_xyxy.astype(np.float64) * np.array([sx, sy, sx, sy])
    boxes -= np.array([offset_x, offset_y, offset_x, offset_y])
    clipped = boxes.copy()
    clipped[:, [0, 2]] = clipped[:, [0, 2]].clip(0, out_width)
    clipped[:, [1, 3]] = clipped[:, [1, 3]].clip(0, out_height)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    cw, ch = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (cw >= min_box_px) & (ch >= min_box_px) & (cw * ch >= min_visible_fraction * area)
    return dataclasses.replace(
        sample, rgb=out_rgb, depth_m=out_depth, depth_valid=out_valid, intrinsics=new_intr,
        boxes_xyxy=clipped[keep].astype(np.float32), labels=sample.labels[keep],
        distances_m=sample.distances_m[keep])


class Resize:
    """Resize to a fixed size (no crop); fx, cx scale with width and fy, cy with height."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        width, height = sample.size
        return scale_and_crop(sample, self.width / width, self.height / height, 0, 0,
                              self.width, self.height)


class RandomScaleCrop:
    """Random zoom then a random ``width`` x ``height`` window.

    A scale of 1 means the resized image just covers ``reference_size`` (by default the window
    itself; aspect ratio kept); scales below 1 leave a padded border, above 1 zoom in. The same
    scale applies to both axes so pixels stay square. With ``reference_size`` the network's full
    input and a smaller window, this cuts native-scale crops: objects keep the pixels they will
    have at the full input, at a fraction of its compute.
    """

    def __init__(self, width: int, height: int,
                 scale_range: tuple[float, float] = (0.9, 1.4),
                 reference_size: tuple[int, int] | None = None) -> None:
        if not 0 < scale_range[0] <= scale_range[1]:
            raise ValueError(f"scale_range must be positive and ordered, got {scale_range}")
        self.width, self.height, self.scale_range = width, height, tuple(scale_range)
        self.reference_size = reference_size or (width, height)

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        width, height = sample.size
        ref_w, ref_h = self.reference_size
        base = max(ref_w / width, ref_h / height)
        scale = base * rng.uniform(*self.scale_range)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        slack_x, slack_y = new_w - self.width, new_h - self.height
        ox = int(rng.integers(min(0, slack_x), max(0, slack_x) + 1))
        oy = int(rng.integers(min(0, slack_y), max(0, slack_y) + 1))
        return scale_and_crop(sample, scale, scale, ox, oy, self.width, self.height)


class ColorJitter:
    """Random brightness, contrast and saturation; touches only the image."""

    def __init__(self, brightness: float = 0.25, contrast: float = 0.25,
                 saturation: float = 0.25) -> None:
        self.brightness, self.contrast, self.saturation = brightness, contrast, saturation

    def __call__(self, sample: Sample, rng: np.random.Generator) -> Sample:
        img = sample.rgb.astype(np.float32)
        b = rng.uniform(1 - self.brightness, 1 + self.brightness)
        c = rng.uniform(1 - self.contrast, 1 + self.contrast)
        s = rng.uniform(1 - self.saturation, 1 + self.saturation)
        img = img * b
        gray = img @ np.array([0.299, 0.587, 0.114], np.float32)
        img = gray.mean() + (img - gray.mean()) * c
        gray = img @ np.array([0.299, 0.587, 0.114], np.float32)
        img = gray[..., None] + (img - gray[..., None]) * s
        return dataclasses.replace(sample, rgb=np.clip(img + 0.5, 0, 255).astype(np.uint8))


class CentreCrop:
    """The centred ``width`` x ``height`` window at the scale where the frame covers
    ``reference_size`` (the deterministic counterpart of :class:`RandomScaleCrop`)."""

    def __init__(self, width: int, height: int,
                 reference_size: tuple[int, int] | None = None) -> None:
        self.width, self.height = width, height
        self.reference_size = reference_size or (width, height)

    def __call__(self, sample: Sample, rng: np.random.Generator | None = None) -> Sample:
        width, height = sample.size
        ref_w, ref_h = self.reference_size
        scale = max(ref_w / width, ref_h / height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        return scale_and_crop(sample, scale, scale, (new_w - self.width) // 2,
                              (new_h - self.height) // 2, self.width, self.height)


def default_train_transform(width: int, height: int,
                            scale_range: tuple[float, float] = (0.9, 1.4),
                            reference_size: tuple[int, int] | None = None) -> Compose:
    """Flip, random scale/crop to ``width`` x ``height`` (native scale given by
    ``reference_size``, see :class:`RandomScaleCrop`) and colour jitter."""
    return Compose([HorizontalFlip(), RandomScaleCrop(width, height, scale_range,
                                                      reference_size), ColorJitter()])
