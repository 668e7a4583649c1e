"""The metrics both evaluations share (depthssd_core.metrics) against hand-computed values."""

import json
import math

import numpy as np
import pytest

from depthssd_core.boxes import box_iou
from depthssd_core.metrics import depth_metrics, json_safe, match_detections


def test_depth_metrics_perfect_and_scaled():
    gt = np.array([[2.0, 4.0], [10.0, 0.0]])  # 0 = no ground truth
    perfect = depth_metrics(gt.copy(), gt)
    assert perfect["abs_rel"] == 0 and perfect["rmse"] == 0 and perfect["delta1"] == 1.0
    assert perfect["coverage"] == 1.0
    m = depth_metrics(1.1 * gt, gt)
    assert m["abs_rel"] == pytest.approx(0.1)
    assert m["sq_rel"] == pytest.approx(np.mean([0.04 / 2, 0.16 / 4, 1.0 / 10]))
    assert m["rmse"] == pytest.approx(math.sqrt(np.mean([0.04, 0.16, 1.0])))
    assert m["rmse_log"] == pytest.approx(math.log(1.1))
    assert m["delta1"] == 1.0
    # Scale 1.3 fails delta1 (1.3 > 1.25) but passes delta2 (1.3 < 1.5625).
    m = depth_metrics(1.3 * gt, gt)
    assert (m["delta1"], m["delta2"], m["delta3"]) == (0.0, 1.0, 1.0)


def test_depth_metrics_range_nan_and_clamp():
    gt = np.array([0.5, 5.0, 50.0, 100.0, 20.0])
    pred = np.array([0.5, 5.0, 200.0, 100.0, np.nan])
    m = depth_metrics(pred, gt, 1.0, 80.0)
    # 0.5 m and 100 m are outside 1-80 m; NaN has no prediction; 200 m is clamped to 80.
    assert m["abs_rel"] == pytest.approx(np.mean([0.0, 30.0 / 50.0]))
    assert m["coverage"] == pytest.approx(2 / 3)
    assert depth_metrics(np.ones(2), np.zeros(2)) is None
    with pytest.raises(ValueError, match="shape"):
        depth_metrics(np.ones(3), np.ones(2))


def test_box_iou_and_greedy_matching():
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], float)
    dets = np.array([[0, 0, 10, 5], [0, 0, 10, 10], [20, 0, 30, 10]], float)
    iou = box_iou(gt, dets)
    assert iou[0, 0] == pytest.approx(0.5) and iou[0, 1] == 1.0 and iou[0, 2] == 0.0
    # The higher-scored half box takes gt 0 (IoU exactly 0.5); the full box finds it taken.
    pairs = match_detections(gt, [1, 1], dets, [1, 1, 1], [0.9, 0.8, 0.7])
    assert sorted(pairs) == [(0, 0), (1, 2)]
    # A different class never matches.
    assert match_detections(gt, [1, 2], dets[2:], [1], [0.9]) == []


def test_json_safe_nulls_non_finite_values_and_drops_private_keys():
    metrics = {"abs_rel": np.float32(0.25), "count": np.int64(3), "none": math.nan,
               "far": -math.inf, "box": (1, 2.5), 7: [np.float64(math.inf), "a"],
               "_records": [object()]}
    safe = json_safe(metrics)
    assert safe == {"abs_rel": 0.25, "count": 3, "none": None, "far": None, "box": [1, 2.5],
                    "7": [None, "a"]}
    assert type(safe["count"]) is int and type(safe["abs_rel"]) is float
    json.dumps(safe, allow_nan=False)  # strict JSON
