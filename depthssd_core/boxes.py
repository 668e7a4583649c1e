"""Pairwise IoU of xyxy boxes in numpy, for the few boxes of one frame.

The tracker associates and both evaluations match with it. torchvision's ``box_iou`` computes
the same number, but on a handful of boxes its tensor round trip costs more than the arithmetic.
"""

from __future__ import annotations

import numpy as np


def box_iou(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a), len(b)) of xyxy pixel boxes (area = (x2 - x1) * (y2 - y1)).

    A box with x2 < x1 or y2 < y1 has area 0; two boxes of zero area have IoU 0.
    """
    a = np.asarray(a_xyxy, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b_xyxy, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]
    wh_a = np.clip(a[:, 2:] - a[:, :2], 0.0, None)
    wh_b = np.clip(b[:, 2:] - b[:, :2], 0.0, None)
    union = (wh_a[:, 0] * wh_a[:, 1])[:, None] + (wh_b[:, 0] * wh_b[:, 1])[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
