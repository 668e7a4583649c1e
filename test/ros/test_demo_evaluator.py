"""The demo's live evaluator: per-class IoU matching, ignore regions, distance and depth errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthssd_ros.live_evaluator import LabelledBox, LiveEvaluator, depth_abs_rel, match_frame


def box(name, x1, y1, x2, y2, d=math.nan, score=1.0):
    return LabelledBox(name, (x1, y1, x2, y2), d, score)


def test_perfect_frame_scores_one_and_zero_error():
    ev = LiveEvaluator()
    truths = [box("car", 10, 10, 60, 40, 20.0), box("pedestrian", 100, 20, 115, 60, 12.0)]
    assert ev.add_truth(1, truths) is None
    score = ev.add_detections(1, [box("car", 10, 10, 60, 40, 20.0, 0.9),
                                  box("pedestrian", 100, 20, 115, 60, 12.0, 0.8)])
    assert (score.true_positives, score.false_positives, score.false_negatives) == (2, 0, 0)
    assert score.distance_abs_rel == [0.0, 0.0]
    s = ev.summary()
    assert s["recall"] == 1.0 and s["precision"] == 1.0
    assert s["distance_abs_rel_median"] == 0.0 and s["distance_pairs"] == 2


def test_iou_threshold_class_and_distance_error():
    truths = [box("car", 0, 0, 100, 50, 40.0)]
    # IoU of [0,100]x[0,50] with [0,100]x[0,25] is 0.5 exactly: a match at 0.5.
    half = match_frame([box("car", 0, 0, 100, 25, 44.0)], truths, [True], 0.5)
    assert (half.true_positives, half.false_positives, half.false_negatives) == (1, 0, 0)
    assert half.distance_abs_rel == [pytest.approx(0.1)]
    below = match_frame([box("car", 0, 0, 100, 24, 44.0)], truths, [True], 0.5)
    assert (below.true_positives, below.false_positives, below.false_negatives) == (0, 1, 1)
    wrong_class = match_frame([box("truck", 0, 0, 100, 50, 40.0)], truths, [True], 0.5)
    assert (wrong_class.true_positives, wrong_class.false_positives,
            wrong_class.false_negatives) == (0, 1, 1)
    assert wrong_class.per_class["truck"]["fp"] == 1 and wrong_class.per_class["car"]["fn"] == 1
    # A detection without a distance still counts for recall, not for the distance error.
    nodist = match_frame([box("car", 0, 0, 100, 50)], truths, [True], 0.5)
    assert nodist.true_positives == 1 and nodist.distance_abs_rel == []


def test_each_truth_matches_once_and_ignore_regions():
    ev = LiveEvaluator(min_box_height_px=10, max_distance_m=80)
    truths = [box("car", 0, 0, 50, 40, 10.0),
              box("car", 200, 0, 230, 5, 30.0),      # 5 px high: ignore region
              box("car", 300, 0, 340, 30, 120.0)]    # beyond 80 m: ignore region
    dets = [box("car", 0, 0, 50, 40, 10.0, 0.9),
            box("car", 1, 0, 50, 40, 10.0, 0.8),     # duplicate of the first: a false positive
            box("car", 200, 0, 230, 5, 30.0, 0.7),   # on an ignore region: not counted
            box("car", 500, 0, 540, 30, 30.0, 0.6)]  # on nothing: false positive
    ev.add_detections(5, dets)
    score = ev.add_truth(5, truths)
    assert (score.true_positives, score.false_positives, score.false_negatives) == (1, 2, 0)
    s = ev.summary()
    assert s["recall"] == 1.0 and s["precision"] == pytest.approx(1 / 3)


def test_frames_pair_by_stamp_in_any_order_and_old_frames_expire():
    ev = LiveEvaluator(max_pending=2)
    for stamp in (1, 2, 3):
        ev.add_truth(stamp, [box("car", 0, 0, 10, 20, 5.0)])
    assert ev.add_detections(1, []) is None  # truth of stamp 1 was evicted; waits instead
    score = ev.add_detections(3, [])
    assert score.false_negatives == 1 and score.stamp_ns == 3
    assert ev.summary()["frames_scored"] == 1
    assert ev.summary()["precision"] is None  # no detection at all: undefined, not 0 or 1


def test_depth_abs_rel_closed_form():
    true = np.full((4, 6), 10.0, np.float32)
    true[0] = 1000.0  # sky: not scored
    pred = true * 1.1
    pred[1, 0] = np.nan  # invalid prediction: not scored
    assert depth_abs_rel(pred, true, 80.0) == pytest.approx(0.1, rel=1e-6)
    # A half-resolution prediction is resized to the truth's grid.
    small = np.full((2, 3), 12.0, np.float32)
    assert depth_abs_rel(small, np.full((4, 6), 10.0, np.float32), 80.0) == pytest.approx(0.2)
    assert math.isnan(depth_abs_rel(pred, np.full((4, 6), 1000.0, np.float32), 80.0))
    ev = LiveEvaluator()
    assert ev.add_predicted_depth(7, pred) is None
    assert ev.add_true_depth(7, true) == pytest.approx(0.1, rel=1e-6)
    assert ev.summary()["depth_abs_rel_mean"] == pytest.approx(0.1, rel=1e-6)


def test_invalid_bounds():
    with pytest.raises(ValueError, match="iou_threshold"):
        LiveEvaluator(iou_threshold=0.0)
    with pytest.raises(ValueError, match="max_distance_m"):
        LiveEvaluator(max_distance_m=0.0)


def test_higher_score_takes_the_truth_as_in_the_offline_evaluation():
    truth = [box("car", 0, 0, 100, 50, 20.0)]
    strong = box("car", 0, 0, 100, 30, 30.0, score=0.9)   # IoU 0.6
    weak = box("car", 0, 0, 100, 48, 20.0, score=0.5)     # IoU 0.96
    score = match_frame([weak, strong], truth, [True], 0.5)
    assert (score.true_positives, score.false_positives) == (1, 1)
    assert score.matches[0][0] is strong
    assert score.distance_abs_rel == [pytest.approx(0.5)]
