"""The offline evaluation's metrics (depthssd_train.metrics) against hand-computed values."""

import math
from pathlib import Path

import numpy as np
import pytest

from depthssd_core.classes import CLASSES
from depthssd_core.config import SUPERVISED_DEPTH_RANGE_M
from depthssd_train.evaluate import (
    FLOORS,
    MEMORY_FLOORS,
    _visible_ids,
    check_floors,
    memory_comparison,
    node_score_threshold,
)
from depthssd_train.losses import LossConfig
from depthssd_train.metrics import (
    NEAR_CLASSES,
    DepthAccumulator,
    ObjectRecord,
    coco_evaluate,
    distance_summary,
    fixed_class_ap,
    jitter_summary,
    matched_share,
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
    assert math.isnan(s["published_coverage"])  # nothing said what the node publishes


def test_depth_accumulator_published_coverage():
    acc = DepthAccumulator()
    gt = np.array([2.0, 20.0, 50.0, 0.0, 100.0])  # 0 m and 100 m are not evaluated
    # The node gives no depth at 50 m (NaN) and none at 100 m (not counted either way).
    acc.add(gt.copy(), gt, published_m=np.array([2.0, 20.0, np.nan, np.nan, np.nan]))
    acc.add(gt.copy(), gt, published_m=gt.copy())
    assert acc.summary()["published_coverage"] == pytest.approx((2 / 3 + 1) / 2)


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
    # pred / true under 40 m: 1.1, 0.9 and 1.02 (the 50 m truck and the NaN car are out).
    assert s["median_ratio_under_40m"] == pytest.approx(1.02)
    assert s["num_under_40m"] == 3
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


def test_floors_are_issue_15s_with_margins():
    values = {"near_map50": 0.55, "near_car_ap50": 0.70, "near_pedestrian_ap50": 0.30,
              "near_visible_map50": 0.75, "depth_abs_rel": 0.125, "depth_delta1": 0.85,
              "distance_median_abs_rel_under_40m": float("nan"),
              "visible_matched_share_under_40m": 0.69, "distance_median_ratio_under_40m": 0.98,
              "jitter_rel_rms_diff": 0.03}
    floors = check_floors(values)
    assert set(floors) == set(FLOORS) | set(MEMORY_FLOORS)
    met = {k: f["met"] for k, f in floors.items()}
    assert met == {"near_map50": True, "near_car_ap50": True, "near_pedestrian_ap50": False,
                   "near_visible_map50": True, "depth_abs_rel": False, "depth_delta1": True,
                   "distance_median_abs_rel_under_40m": False,
                   "visible_matched_share_under_40m": False,
                   "distance_median_ratio_under_40m": True,
                   "memory_near_map50_no_worse": False, "memory_jitter_lower": False}
    assert floors["near_map50"]["target"] == ">= 0.5"
    assert floors["near_map50"]["margin"] == pytest.approx(0.05)
    assert floors["near_pedestrian_ap50"]["margin"] == pytest.approx(-0.05)
    assert floors["depth_abs_rel"]["margin"] == pytest.approx(-0.005)
    assert floors["distance_median_ratio_under_40m"]["margin"] == pytest.approx(0.01)
    assert floors["distance_median_ratio_under_40m"]["target"] == "within 0.03 of 1"
    assert math.isnan(floors["distance_median_abs_rel_under_40m"]["margin"])
    assert floors["memory_jitter_lower"]["note"] == "memory ablation not run"
    assert not check_floors({**values, "distance_median_ratio_under_40m": 1.031})[
        "distance_median_ratio_under_40m"]["met"]


def test_memory_floors_compare_on_with_off():
    on = {"near_map50": 0.600, "jitter_rel_rms_diff": 0.030}
    floors = check_floors(on, {"near_map50": 0.604, "jitter_rel_rms_diff": 0.035})
    assert floors["memory_near_map50_no_worse"]["met"]  # 0.004 lower: within 0.005
    assert floors["memory_near_map50_no_worse"]["value"] == pytest.approx(-0.004)
    assert floors["memory_near_map50_no_worse"]["margin"] == pytest.approx(0.001)
    assert floors["memory_jitter_lower"]["met"]
    assert floors["memory_jitter_lower"]["margin"] == pytest.approx(0.005)
    floors = check_floors(on, {"near_map50": 0.606, "jitter_rel_rms_diff": 0.030})
    assert not floors["memory_near_map50_no_worse"]["met"]
    assert not floors["memory_jitter_lower"]["met"]  # equal jitter is not lower


def test_memory_verdict():
    on = {"near_map50": 0.60, "depth_abs_rel": 0.10, "distance_median_abs_rel_under_40m": 0.05}
    off = {"near_map50": 0.603, "depth_abs_rel": 0.10, "distance_median_abs_rel_under_40m": 0.06}
    assert memory_comparison(on, off)["no_worse"]  # 0.003 mAP within tolerance
    off["near_map50"] = 0.62
    verdict = memory_comparison(on, off)
    assert not verdict["no_worse"] and verdict["per_metric_no_worse"]["depth_abs_rel"]


def _near_gt(counts: dict[str, int]) -> dict:
    """One image per object, each a 20x20 box at 10 m, ``counts`` objects per class."""
    cats = _gt()["categories"]
    images, anns = [], []
    for name, n in counts.items():
        for _ in range(n):
            k = len(images) + 1
            images.append({"id": k, "width": 100, "height": 100})
            anns.append({"id": k, "image_id": k, "category_id": CLASSES.index(name) + 1,
                         "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0,
                         "distance_m": 10.0})
    return {"images": images, "annotations": anns, "categories": cats}


def _found(gt: dict, per_class: dict[str, int]) -> list[dict]:
    """Perfect detections of the first ``per_class[name]`` objects of each class."""
    seen: dict[int, int] = {}
    dets = []
    names = {c["id"]: c["name"] for c in gt["categories"]}
    for a in gt["annotations"]:
        c = a["category_id"]
        seen[c] = seen.get(c, 0) + 1
        if seen[c] <= per_class.get(names[c], 0):
            dets.append({"image_id": a["image_id"], "category_id": c, "bbox": a["bbox"],
                         "score": 0.9})
    return dets


def test_fixed_class_headline_hand_computed():
    gt = _near_gt({"car": 2, "truck": 2, "bus": 1, "pedestrian": 1})
    near, cats = near_subset(gt, NEAR_CLASSES, 60.0)
    # Both cars found (AP 1), one truck of two (101-point AP@.5 51/101), the bus missed (0),
    # the pedestrian found (1).
    result = coco_evaluate(near, _found(gt, {"car": 2, "truck": 1, "pedestrian": 1}), cats)
    fixed = fixed_class_ap(result["per_class"], NEAR_CLASSES)
    assert fixed["classes"] == ["car", "truck", "bus", "pedestrian"]
    assert fixed["map50"] == pytest.approx((1 + 51 / 101 + 0 + 1) / 4)
    assert fixed["missing_classes"] == []
    assert {c: r["num_gt"] for c, r in fixed["per_class"].items()} == {
        "car": 2, "truck": 2, "bus": 1, "pedestrian": 1}
    assert fixed["per_class"]["truck"]["ap50"] == pytest.approx(51 / 101)


def test_fixed_class_headline_is_nan_when_a_class_has_no_ground_truth():
    gt = _near_gt({"car": 2, "truck": 1, "pedestrian": 1})  # no bus in this split
    near, cats = near_subset(gt, NEAR_CLASSES, 60.0)
    result = coco_evaluate(near, _found(gt, {"car": 1, "truck": 1, "pedestrian": 1}), cats)
    # Over the classes that happen to have ground truth it would read (51/101 + 1 + 1) / 3.
    assert result["map50"] == pytest.approx((51 / 101 + 2) / 3)
    fixed = fixed_class_ap(result["per_class"], NEAR_CLASSES)
    assert math.isnan(fixed["map50"]) and math.isnan(fixed["map"])
    assert fixed["missing_classes"] == ["bus"] and fixed["per_class"]["bus"]["num_gt"] == 0
    assert fixed["per_class"]["car"]["ap50"] == pytest.approx(51 / 101)
    with pytest.raises(ValueError, match="motorcycle"):
        fixed_class_ap(result["per_class"], ("car", "motorcycle"))


def test_matched_share_counts_objects_per_class():
    share = matched_share([("car", True), ("car", False), ("car", True), ("pedestrian", False)])
    assert share["share"] == pytest.approx(0.5)
    assert (share["num_objects"], share["num_matched"]) == (4, 2)
    assert share["per_class"]["car"]["share"] == pytest.approx(2 / 3)
    assert share["per_class"]["pedestrian"] == {"share": 0.0, "num_objects": 1, "num_matched": 0}
    assert math.isnan(matched_share([])["share"])


def test_visible_ids_are_clear_near_class_objects_under_40_m():
    gt = _gt()  # car 10 m (id 1), car 80 m (id 2), pedestrian 20 m 30 px tall (id 3)
    gt["annotations"] += [
        {"id": 4, "image_id": 1, "category_id": 1, "bbox": [0, 50, 30, 30], "iscrowd": 0,
         "distance_m": 40.0},  # not under 40 m
        {"id": 5, "image_id": 1, "category_id": 7, "bbox": [60, 0, 10, 30], "iscrowd": 0,
         "distance_m": 10.0},  # traffic light: not a near class
        {"id": 6, "image_id": 1, "category_id": 1, "bbox": [50, 50, 30, 3], "iscrowd": 0,
         "distance_m": 10.0},  # 3 px tall in 100 px: under 20/360 of the height
        {"id": 7, "image_id": 1, "category_id": 1, "bbox": [50, 50, 30, 30], "iscrowd": 0,
         "distance_m": 10.0, "occlusion": 0.6},
    ]
    assert _visible_ids(gt) == {1, 3}


def test_supervised_depth_range_is_the_losss():
    loss = LossConfig()
    assert (loss.depth_min_m, loss.depth_max_m) == SUPERVISED_DEPTH_RANGE_M


def test_node_score_threshold_reads_the_parameter_file(tmp_path):
    good = tmp_path / "p.yaml"
    good.write_text("/**:\n  ros__parameters:\n    score_threshold: 0.42\n")
    assert node_score_threshold(good) == 0.42
    # Without a path: the checkout's config/depthssd.yaml, the node's parameter file.
    repo_file = Path(__file__).resolve().parents[2] / "config" / "depthssd.yaml"
    assert node_score_threshold() == node_score_threshold(repo_file)
    bad = tmp_path / "bad.yaml"
    bad.write_text("/**:\n  ros__parameters:\n    nms_iou: 0.5\n")
    with pytest.raises(ValueError, match="score_threshold"):
        node_score_threshold(bad)
    bad.write_text("/**:\n  ros__parameters:\n    score_threshold: 1.5\n")
    with pytest.raises(ValueError, match=r"got 1\.5"):
        node_score_threshold(bad)
