"""SSD default boxes (Liu et al. 2016, "SSD: Single Shot MultiBox Detector") for DepthSSD.

Plain numpy so backends without torch modules (ONNX Runtime, TensorRT) compute exactly the
anchors the torch model uses. The scale and aspect-ratio rule is torchvision's
``DefaultBoxGenerator`` (linear scales from ``anchor_min_ratio`` to ``anchor_max_ratio``, a
geometric-mean scale, two boxes per extra aspect ratio); ``anchor_spacing: geometric`` spaces
the level scales by a constant factor instead. One deliberate difference: torchvision
multiplies relative widths by the image width and heights by the image height, which makes an
"aspect 1" box 16:9 on a 640x360 input; here scales are relative to ``min(height, width)`` so
every box has its nominal aspect ratio in pixels. On square inputs both agree (tested).
"""

from __future__ import annotations

import math

import numpy as np

from depthssd_core.config import ModelConfig


def stride2_size(size: int, times: int) -> int:
    """Length after ``times`` stride-2 convolutions with odd kernel k and padding k // 2.

    Each such layer maps n to floor((n + 2 * (k // 2) - k) / 2) + 1 = ceil(n / 2); timm's
    MobileNetV4 uses only such layers (symmetric padding), and so do the extra levels.
    """
    for _ in range(times):
        size = (size - 1) // 2 + 1
    return size


def feature_sizes(cfg: ModelConfig, height: int, width: int) -> list[tuple[int, int]]:
    """(rows, cols) of every detection level for an input of ``height`` x ``width`` pixels."""
    levels = range(3, 3 + cfg.num_detection_levels)  # stride 8 = three halvings
    return [(stride2_size(height, n), stride2_size(width, n)) for n in levels]


def anchor_scales(cfg: ModelConfig) -> list[float]:
    """Scales s_k of the levels plus the trailing 1.0 used for the last geometric mean."""
    k = cfg.num_detection_levels
    lo, hi = cfg.anchor_min_ratio, cfg.anchor_max_ratio
    if k == 1:
        return [lo, hi]
    if cfg.anchor_spacing == "geometric":
        return [lo * (hi / lo) ** (i / (k - 1.0)) for i in range(k)] + [1.0]
    return [lo + (hi - lo) * i / (k - 1.0) for i in range(k)] + [1.0]


def anchor_shapes(cfg: ModelConfig) -> list[list[tuple[float, float]]]:
    """Relative (w, h) of the boxes at each location, per level, in head output order."""
    scales = anchor_scales(cfg)
    out = []
    for k in range(cfg.num_detection_levels):
        s_k = scales[k]
        s_mid = math.sqrt(scales[k] * scales[k + 1])
        shapes = [(s_k, s_k), (s_mid, s_mid)]
        for ratio in cfg.anchor_aspect_ratios:
            root = math.sqrt(ratio)
            shapes += [(s_k * root, s_k / root), (s_k / root, s_k * root)]
        out.append(shapes)
    return out


def anchors_per_location(cfg: ModelConfig) -> int:
    """Boxes per feature-map cell (the same at every level)."""
    return 2 + 2 * len(cfg.anchor_aspect_ratios)


def anchors_for(cfg: ModelConfig, height: int, width: int,
                reference_px: float | None = None) -> np.ndarray:
    """Anchors of the network for one input size, in the order of the head outputs.

    Order: level (finest first), then row, then column, then box shape.

    Args:
        cfg: Model configuration (levels, scales, aspect ratios, clipping, centres).
        height: Network input height in pixels.
        width: Network input width in pixels.
        reference_px: Length the relative anchor scales multiply (default ``min(height,
            width)``). Training on a crop of a larger input passes the full input's value, so
            the crop sees the anchors (in pixels) the full input will use.

    Returns:
        float32 array [A, 4], boxes as (x1, y1, x2, y2) in input pixels.

    Raises:
        ValueError: if the input size is not positive.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"input size must be positive, got {height}x{width}")
    ref_px = float(min(height, width) if reference_px is None else reference_px)
    if not ref_px > 0:
        raise ValueError(f"reference_px must be positive, got {reference_px}")
    boxes = []
    for (rows, cols), shapes, stride in zip(
        feature_sizes(cfg, height, width), anchor_shapes(cfg), cfg.detection_strides,
        strict=True
    ):
        if cfg.anchor_centres == "stride":
            step_x = step_y = float(stride)
        else:
            # Cell centres spread evenly over the image, as torchvision does without ``steps``.
            step_x, step_y = width / cols, height / rows
        cx = (np.arange(cols, dtype=np.float64) + 0.5) * step_x
        cy = (np.arange(rows, dtype=np.float64) + 0.5) * step_y
        cy_grid, cx_grid = np.meshgrid(cy, cx, indexing="ij")
        wh = np.asarray(shapes, dtype=np.float64) * ref_px
        if cfg.anchor_clip:
            wh = np.minimum(wh, np.array([width, height], dtype=np.float64))
        centres = np.stack([cx_grid.ravel(), cy_grid.ravel()], axis=-1)
        centres = np.repeat(centres, len(shapes), axis=0)
        sizes = np.tile(wh, (rows * cols, 1))
        boxes.append(np.concatenate([centres - 0.5 * sizes, centres + 0.5 * sizes], axis=1))
    return np.concatenate(boxes, axis=0).astype(np.float32)
