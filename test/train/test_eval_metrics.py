"""The offline evaluation's metrics (depthssd_train.metrics) against hand-computed values."""

import math

import numpy as np
import pytest

from depthssd_train.evaluate import check_floors, memory_comparison
from depthssd_train.metrics import (
    DepthAccumulator,
    ObjectRecord,
    coco_evaluate,
    distance_summary,
    jitter_summary,
    near_subset,
)


def test_depth_accumulator_means_images_and_bins():
    acc = DepthAccumulator(bin_m=10.0)
    acc.add(np.array([2.0, 22.0]), np.array([2.0, 20.0]))  # errors 0 and 0.1
    acc.add(np.array([3.0]), np.array([2.0]))  # error 0.5
    s = acc.summary()
    assert s["num_images"] == 2
    assert s["abs_rel"] == pytest.approx((0.05 + 0.5) / 2)
    bins = acc.error_by_distance()
    assert bins["abs_rel"][0] == pytest.approx(0.25) and bins["pixels"][0] == 2
    assert bins["abs_rel"][2] == pytest.approx(0.1)
    assert math.isnan(bins["abs_rel"][1])


def _rec(seq, frame, inst, name, true_m, pred_m):
    return ObjectRecord(seq, frame, inst, name, true_m, pred_m)


def test_distance_summary_bins_and_median():
    recs = [_rec("a", 0, 1, "car", 10.0, 11.0),       # 0.10, bin 0-20
            _rec("a", 0, 2, "car", 30.0, 27.0),       # 0.10, bin 20-40
            _rec("a", 0, 3, "pedestrian", 15.0, 15.3),  # 0.02, bin 0-20
            _rec("a", 0, 4, "truck", 50.0, 60.0),     # 0.20, bin 40-80
            _rec("a", 0, 5, "car", 12.0, float("nan"))]
    s = distance_summary(recs)
    assert s["num_matched"] == 5 and s["num_without_distance"] == 1
    assert s["median_abs_rel_under_40m"] == pytest.approx(0.10)
    assert s["by_range"]["0-20m"]["n"] == 2
    assert s["by_range"]["0-20m"]["mean_abs_rel"] == pytest.approx(0.06)
    assert s["by_range"]["40-80m"]["median_abs_rel"] == pytest.approx(0.2)
    assert s["by_class"]["car"]["by_range"]["20-40m"]["n"] == 1
    assert "bus" not in s["by_class"]


def test_jitter_cancels_true_motion_and_finds_static_tracks():
    # Track 1 moves (true 20 -> 16 m) with a constant 1 m bias: zero jitter.
    moving = [_rec("s", t, 1, "car", 20.0 - t, 21.0 - t) for t in range(5)]
    # Track 2 is static at 10 m with residuals +0.1, -0.1 alternating: relative change 0.02.
    static = [_rec("s", t, 2, "car", 10.0, 10.0 + (0.1 if t % 2 == 0 else -0.1))
              for t in range(6)]
    j = jitter_summary(moving + static)
    assert j["pairs"] == 4 + 5
    assert j["rel_rms_diff"] == pytest.approx(math.sqrt(5 * 0.02**2 / 9))
    assert j["m_rms_diff"] == pytest.approx(math.sqrt(5 * 0.2**2 / 9))
    assert j["static_tracks"] == 1  # the moving track spreads 20 %
    assert j["static_rel_std"] == pytest.approx(0.01)
    # A gap in frame indices breaks the pair.
    gap = jitter_summary([_rec("s", 0, 1, "car", 10, 10), _rec("s", 2, 1, "car", 10, 11)])
    assert gap["pairs"] == 0 and math.isnan(gap["rel_rms_diff"])


def _gt():
    images = [{"id": 1, "width": 100, "height": 100}, {"id": 2, "width": 100, "height": 100}]
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "area": 400,
         "iscrowd": 0, "distance_m": 10.0},
        {"id": 2, "image_id": 2, "category_id": 1, "bbox": [50, 50, 20, 20], "area": 400,
         "iscrowd": 0, "distance_m": 80.0},
        {"id": 3, "image_id": 2, "category_id": 6, "bbox": [10, 10, 10, 30], "area": 300,
         "iscrowd": 0, "distance_m": 20.0},
    ]
    cats = [{"id": i + 1, "name": n} for i, n in
            enumerate(["car", "truck", "bus", "motorcycle", "bicycle", "pedestrian",
                       "traffic_light", "traffic_sign"])]
    return {"images": images, "annotations": anns, "categories": cats}


def test_coco_perfect_and_half_recall():
    gt = _gt()
    perfect = [{"image_id": a["image_id"], "category_id": a["category_id"],
                "bbox": a["bbox"], "score": 0.9} for a in gt["annotations"]]
    r = coco_evaluate(gt, perfect)
    assert r["map"] == pytest.approx(1.0) and r["map50"] == pytest.approx(1.0)
    assert r["per_class"]["car"]["num_gt"] == 2
    assert math.isnan(r["per_class"]["bus"]["ap"])  # no ground truth: left out of the mean
    # Only one of the two cars found: car AP@.5 = 101-point precision at recall <= 0.5 -> 51/101.
    half = [perfect[0], perfect[2]]
    r = coco_evaluate(gt, half)
    assert r["per_class"]["car"]["ap50"] == pytest.approx(51 / 101)
    assert r["per_class"]["pedestrian"]["ap50"] == pytest.approx(1.0)
    assert coco_evaluate(gt, [])["map50"] == 0.0


def test_near_subset_ignores_far_objects():
    gt = _gt()
    near_gt, cats = near_subset(gt, ("car", "pedestrian"), 60.0)
    assert cats == [1, 6]
    assert [a["iscrowd"] for a in near_gt["annotations"]] == [0, 1, 0]
    # Missing the 80 m car costs nothing within 60 m; a detection on it is not a false positive.
    dets = [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 20, 20], "score": 0.9},
            {"image_id": 2, "category_id": 6, "bbox": [10, 10, 10, 30], "score": 0.9}]
    assert coco_evaluate(near_gt, dets, cats)["map50"] == pytest.approx(1.0)
    dets.append({"image_id": 2, "category_id": 1, "bbox": [50, 50, 20, 20], "score": 0.95})
    assert coco_evaluate(near_gt, dets, cats)["map50"] == pytest.approx(1.0)


def test_visible_subset_ignores_small_hidden_and_truncated_boxes():
    gt = _gt()
    extra = [
        # 8 px tall in a 100 px image: under the 10 % limit.
        {"id": 4, "image_id": 1, "category_id": 1, "bbox": [60, 60, 20, 8], "area": 160,
         "iscrowd": 0, "distance_m": 30.0},
        {"id": 5, "image_id": 1, "category_id": 6, "bbox": [40, 40, 10, 30], "area": 300,
         "iscrowd": 0, "distance_m": 15.0, "occlusion": 0.8},
        {"id": 6, "image_id": 2, "category_id": 6, "bbox": [80, 10, 10, 30], "area": 300,
         "iscrowd": 0, "distance_m": 15.0, "truncation": 0.5},
    ]
    gt["annotations"] += extra
    vis, cats = near_subset(gt, ("car", "pedestrian"), 60.0, min_height_frac=0.1,
                            max_occlusion=0.5, max_truncation=0.3)
    assert [a["iscrowd"] for a in vis["annotations"]] == [0, 1, 0, 1, 1, 1]
    # Without the limits only the 80 m car is ignored.
    near, _ = near_subset(gt, ("car", "pedestrian"), 60.0)
    assert [a["iscrowd"] for a in near["annotations"]] == [0, 1, 0, 0, 0, 0]
    found = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
              "score": 0.9} for a in gt["annotations"] if a["id"] in (1, 3)]
    assert coco_evaluate(vis, found, cats)["map50"] == pytest.approx(1.0)
    assert coco_evaluate(near, found, cats)["map50"] < 0.9


def test_best_f1_threshold_pools_classes_and_skips_ignored_boxes():
    gt = _gt()  # cars at 10 m (image 1) and 80 m (image 2), a pedestrian at 20 m (image 2)
    gt["annotations"].append({"id": 4, "image_id": 1, "category_id": 6, "bbox": [60, 10, 10, 30],
                              "area": 300, "iscrowd": 0, "distance_m": 15.0})
    near, cats = near_subset(gt, ("car", "pedestrian"), 60.0)  # 3 scored boxes, 80 m car ignored

    def det(image, cat, box, score):
        return {"image_id": image, "category_id": cat, "bbox": box, "score": score}

    dets = [det(1, 1, [0, 0, 20, 20], 0.9),        # hit
            det(1, 1, [30, 70, 20, 20], 0.8),      # false positive
            det(2, 6, [10, 10, 10, 30], 0.7),      # hit
            det(2, 1, [50, 50, 20, 20], 0.6),      # on the ignored 80 m car: not counted
            det(1, 6, [60, 10, 10, 30], 0.3),      # hit
            det(2, 6, [80, 60, 10, 30], 0.2)]      # false positive
    best = coco_evaluate(near, dets, cats)["best_f1_50"]
    # Cut at 0.3: 3 hits of 4 counted detections, all 3 objects -> P 0.75, R 1, F1 6/7.
    assert best["threshold"] == pytest.approx(0.3)
    assert best["precision"] == pytest.approx(0.75) and best["recall"] == pytest.approx(1.0)
    assert best["f1"] == pytest.approx(6 / 7)
    assert math.isnan(coco_evaluate(near, [], cats)["best_f1_50"]["f1"])


def test_floors_and_memory_verdict():
    values = {"near_map50": 0.7, "depth_abs_rel": 0.12, "depth_delta1": 0.95,
              "distance_median_abs_rel_under_40m": float("nan")}
    floors = check_floors(values)
    assert floors["near_map50"]["met"] and not floors["depth_abs_rel"]["met"]
    assert not floors["distance_median_abs_rel_under_40m"]["met"]
    on = {"near_map50": 0.60, "depth_abs_rel": 0.10, "distance_median_abs_rel_under_40m": 0.05}
    off = {"near_map50": 0.603, "depth_abs_rel": 0.10, "distance_median_abs_rel_under_40m": 0.06}
    assert memory_comparison(on, off)["no_worse"]  # 0.003 mAP within tolerance
    off["near_map50"] = 0.62
    verdict = memory_comparison(on, off)
    assert not verdict["no_worse"] and verdict["per_metric_no_worse"]["depth_abs_rel"]
