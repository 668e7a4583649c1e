"""Metrics shared by the offline evaluation and the live (ROS) evaluator.

Eigen depth metrics of one image and the greedy one-to-one matching of detections to ground
truth. ``depthssd_train.metrics`` builds the offline evaluation on these; the demo's live
evaluator in ``depthssd_ros`` uses them too, so both score a frame the same way without the ROS
package depending on training code. Both write their metrics as JSON through :func:`json_safe`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from depthssd_core.boxes import box_iou

DEPTH_KEYS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3")


def depth_metrics(pred_m: np.ndarray, gt_m: np.ndarray, min_m: float = 1.0,
                  max_m: float = 80.0) -> dict[str, float] | None:
    """Eigen depth metrics of one image.

    Args:
        pred_m: predicted depth (NaN where the model gives none).
        gt_m: true depth (0, NaN or out-of-range pixels are not evaluated).
        min_m: smallest evaluated true depth.
        max_m: largest evaluated true depth; predictions are clamped to [1e-3, max_m].

    Returns:
        Dict of :data:`DEPTH_KEYS` plus ``coverage`` (share of evaluable true pixels with a
        finite prediction), or None when the image has no evaluable pixel.
    """
    pred = np.asarray(pred_m, np.float64)
    gt = np.asarray(gt_m, np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction {pred.shape} and ground truth {gt.shape} differ in shape")
    in_range = np.isfinite(gt) & (gt >= min_m) & (gt <= max_m)
    mask = in_range & np.isfinite(pred)
    if not mask.any():
        return None
    p = np.clip(pred[mask], 1e-3, max_m)
    g = gt[mask]
    ratio = np.maximum(p / g, g / p)
    return {
        "abs_rel": float(np.mean(np.abs(p - g) / g)),
        "sq_rel": float(np.mean((p - g) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((p - g) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(p) - np.log(g)) ** 2))),
        "delta1": float(np.mean(ratio < 1.25)),
        "delta2": float(np.mean(ratio < 1.25**2)),
        "delta3": float(np.mean(ratio < 1.25**3)),
        "coverage": float(mask.sum() / in_range.sum()),
    }


def match_detections(gt_boxes: np.ndarray, gt_labels: Sequence[int], det_boxes: np.ndarray,
                     det_labels: Sequence[int], det_scores: Sequence[float],
                     iou_threshold: float = 0.5) -> list[tuple[int, int]]:
    """Greedy one-to-one matching of detections to ground truth of the same class.

    Detections are taken by falling score; each takes the unmatched ground-truth box of its
    class with the highest IoU, if that IoU is at least ``iou_threshold``.

    Returns:
        (gt index, detection index) pairs.
    """
    iou = box_iou(gt_boxes, det_boxes)
    taken: set[int] = set()
    pairs = []
    for d in np.argsort(-np.asarray(det_scores, np.float64), kind="stable"):
        best, best_iou = -1, iou_threshold
        for g in range(len(gt_labels)):
            if g in taken or int(gt_labels[g]) != int(det_labels[d]):
                continue
            if iou[g, d] >= best_iou:
                best, best_iou = g, iou[g, d]
        if best >= 0:
            taken.add(best)
            pairs.append((best, int(d)))
    return pairs


def json_safe(value: Any) -> Any:
    """A JSON-safe copy of a metrics structure: NaN and infinities become None (JSON has
    neither), tuples lists, numpy scalars Python numbers, keys strings; keys starting with
    ``_`` (working data such as plot inputs) are dropped."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
