"""Evaluation metrics: COCO detection AP, Eigen depth metrics, per-object distance, jitter.

Definitions (also written into ``metrics.json`` consumers rely on):

- Detection: COCO mAP@[.5:.95] and AP@.5 with pycocotools, per class; plus AP@.5 over car,
  truck, bus and pedestrian within ``near_max_m`` (60 m): ground truth of those classes farther
  than that (by annotation ``distance_m``) is marked ``iscrowd`` so detections on it count
  neither as hits nor as false positives; other classes are left out.
- Fixed-set headline (:func:`fixed_class_ap`): the near AP is the plain mean of the per-class
  APs over the *fixed* set (car, truck, bus, pedestrian), not over whichever classes happen to
  have ground truth in the split. A class of the set without ground truth has AP NaN and makes
  the mean NaN (the split cannot measure the headline; ``missing_classes`` names the class):
  it is never dropped from the mean, nor counted as 0. The per-class AP and ground-truth counts
  are reported beside it.
- Depth (Eigen et al. 2014): AbsRel, SqRel, RMSE, RMSElog, delta < 1.25^k over pixels whose
  true depth is in [min_m, max_m] (1-80 m) and whose prediction is finite; predictions are
  clamped to [1e-3, max_m] as in the KITTI protocol. Computed per image, then averaged.
  ``published_coverage`` is the share of those pixels the node publishes (finite in what it
  publishes: it writes NaN where training gave no supervision).
- Per-object distance: a detection is matched to a ground-truth object of its class at
  IoU >= 0.5 (greedy, highest score first); its error is ``|d_pred - d_true| / d_true`` with
  ``d_true`` = the annotation ``distance_m`` (median true depth over the visible mask).
  ``median_ratio_under_40m`` is the median of ``d_pred / d_true`` over the same objects (a
  scale bias, e.g. a focal length handled wrongly, moves it away from 1).
- Matched share (:func:`matched_share`): of the clearly visible objects under 40 m, the share
  matched (as above) by a detection at the operating point.
- Jitter: for every ground-truth object matched in consecutive frames, the frame-to-frame
  change of the distance residual ``(d_pred_t - d_true_t) - (d_pred_{t-1} - d_true_{t-1})``,
  divided by ``d_true_t``; ``rel_rms_diff`` is its RMS over all pairs (true motion cancels, so
  moving objects count too). ``static_rel_std`` is the median over near-static tracks (>= 5
  matched frames, true distance spread <= 5 % of its median) of the standard deviation of
  ``(d_pred - d_true) / d_true`` along the track.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from depthssd_core.classes import CLASSES
from depthssd_core.metrics import DEPTH_KEYS, depth_metrics

NEAR_CLASSES = ("car", "truck", "bus", "pedestrian")
RANGE_BINS_M = ((0.0, 20.0), (20.0, 40.0), (40.0, 80.0))


# ------------------------------------------------------------------------------------------------
# Depth (per-image metrics: depthssd_core.metrics.depth_metrics)
# ------------------------------------------------------------------------------------------------

@dataclass
class DepthAccumulator:
    """Averages per-image depth metrics and bins absolute relative error by true depth."""

    min_m: float = 1.0
    max_m: float = 80.0
    bin_m: float = 5.0
    images: list[dict[str, float]] = field(default_factory=list)
    _bin_sum: np.ndarray | None = None
    _bin_count: np.ndarray | None = None
    _published: list[float] = field(default_factory=list)

    def add(self, pred_m: np.ndarray, gt_m: np.ndarray,
            published_m: np.ndarray | None = None) -> None:
        """Add one image.

        Args:
            pred_m: the depth scored (the model's whole output range).
            gt_m: true depth.
            published_m: what the node publishes for the same frame (NaN where it gives no
                depth); None skips ``published_coverage``.
        """
        m = depth_metrics(pred_m, gt_m, self.min_m, self.max_m)
        if m is None:
            return
        self.images.append(m)
        if published_m is not None:
            true = np.asarray(gt_m, np.float64)
            evaluable = np.isfinite(true) & (true >= self.min_m) & (true <= self.max_m)
            self._published.append(float(np.isfinite(published_m)[evaluable].mean()))
        nbins = math.ceil(self.max_m / self.bin_m)
        if self._bin_sum is None:
            self._bin_sum, self._bin_count = np.zeros(nbins), np.zeros(nbins)
        gt = np.asarray(gt_m, np.float64)
        pred = np.asarray(pred_m, np.float64)
        mask = np.isfinite(gt) & (gt >= self.min_m) & (gt <= self.max_m) & np.isfinite(pred)
        g = gt[mask]
        err = np.abs(np.clip(pred[mask], 1e-3, self.max_m) - g) / g
        idx = np.minimum((g / self.bin_m).astype(int), nbins - 1)
        self._bin_sum += np.bincount(idx, weights=err, minlength=nbins)
        self._bin_count += np.bincount(idx, minlength=nbins)

    def summary(self) -> dict[str, Any]:
        """Mean of each metric over images (NaN without images), image count and range."""
        out: dict[str, Any] = {k: (float(np.mean([m[k] for m in self.images]))
                                   if self.images else math.nan)
                               for k in (*DEPTH_KEYS, "coverage")}
        out["published_coverage"] = (float(np.mean(self._published)) if self._published
                                     else math.nan)
        out.update(num_images=len(self.images), range_m=[self.min_m, self.max_m])
        return out

    def error_by_distance(self) -> dict[str, list[float]]:
        """Bin centres (m) and mean absolute relative error per bin (NaN for empty bins)."""
        if self._bin_sum is None:
            return {"bin_centre_m": [], "abs_rel": [], "pixels": []}
        nbins = len(self._bin_sum)
        centres = [(i + 0.5) * self.bin_m for i in range(nbins)]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self._bin_sum / self._bin_count
        return {"bin_centre_m": centres, "abs_rel": [float(v) for v in mean],
                "pixels": [int(c) for c in self._bin_count]}


# ------------------------------------------------------------------------------------------------
# Per-object distance and jitter (matching: depthssd_core.metrics.match_detections)
# ------------------------------------------------------------------------------------------------

@dataclass
class ObjectRecord:
    """One ground-truth object matched to a detection."""

    sequence: str
    frame_index: int
    instance_id: int
    class_name: str
    true_m: float
    pred_m: float

    @property
    def abs_rel(self) -> float:
        """``|pred - true| / true``."""
        return abs(self.pred_m - self.true_m) / self.true_m


def _range_name(lo: float, hi: float) -> str:
    return f"{lo:g}-{hi:g}m"


def distance_summary(records: Iterable[ObjectRecord], under_m: float = 40.0
                     ) -> dict[str, Any]:
    """Per-object distance error by class and range bin, and the median under ``under_m``.

    Records whose prediction is not finite count in ``num_without_distance`` only.
    """
    recs = list(records)
    usable = [r for r in recs if math.isfinite(r.pred_m) and r.true_m > 0]

    def stats(rs: list[ObjectRecord]) -> dict[str, Any]:
        errs = np.array([r.abs_rel for r in rs])
        return {"n": len(rs),
                "median_abs_rel": float(np.median(errs)) if len(rs) else math.nan,
                "mean_abs_rel": float(np.mean(errs)) if len(rs) else math.nan}

    by_range = {_range_name(lo, hi): stats([r for r in usable if lo <= r.true_m < hi])
                for lo, hi in RANGE_BINS_M}
    by_class: dict[str, Any] = {}
    for name in CLASSES:
        rs = [r for r in usable if r.class_name == name]
        if rs:
            entry = stats(rs)
            entry["by_range"] = {_range_name(lo, hi): stats([r for r in rs if lo <= r.true_m < hi])
                                 for lo, hi in RANGE_BINS_M}
            by_class[name] = entry
    near = [r for r in usable if r.true_m < under_m]
    return {
        "num_matched": len(recs),
        "num_without_distance": len(recs) - len(usable),
        f"median_abs_rel_under_{under_m:g}m":
            float(np.median([r.abs_rel for r in near])) if near else math.nan,
        f"median_ratio_under_{under_m:g}m":
            float(np.median([r.pred_m / r.true_m for r in near])) if near else math.nan,
        f"num_under_{under_m:g}m": len(near),
        "by_range": by_range,
        "by_class": by_class,
    }


def matched_share(objects: Iterable[tuple[str, bool]]) -> dict[str, Any]:
    """Share of objects that a detection matched, overall and per class.

    Args:
        objects: one ``(class name, matched)`` pair per ground-truth object and frame.

    Returns:
        ``share`` (NaN without objects), ``num_objects``, ``num_matched`` and ``per_class``
        {name: {share, num_objects, num_matched}} for the classes present.
    """
    total: dict[str, int] = defaultdict(int)
    hit: dict[str, int] = defaultdict(int)
    for name, matched in objects:
        total[name] += 1
        hit[name] += int(bool(matched))

    def entry(n: int, k: int) -> dict[str, Any]:
        return {"share": k / n if n else math.nan, "num_objects": n, "num_matched": k}

    out = entry(sum(total.values()), sum(hit.values()))
    out["per_class"] = {name: entry(total[name], hit[name]) for name in CLASSES if total[name]}
    return out


def jitter_summary(records: Iterable[ObjectRecord], min_track_frames: int = 5,
                   static_spread: float = 0.05) -> dict[str, Any]:
    """Frame-to-frame jitter of object distances (see the module docstring)."""
    tracks: dict[tuple[str, int], list[ObjectRecord]] = defaultdict(list)
    for r in records:
        if math.isfinite(r.pred_m) and r.true_m > 0:
            tracks[(r.sequence, r.instance_id)].append(r)
    diffs_rel, diffs_m, static_std = [], [], []
    for recs in tracks.values():
        recs.sort(key=lambda r: r.frame_index)
        for prev, cur in itertools.pairwise(recs):
            if cur.frame_index - prev.frame_index != 1:
                continue
            delta = (cur.pred_m - cur.true_m) - (prev.pred_m - prev.true_m)
            diffs_m.append(delta)
            diffs_rel.append(delta / cur.true_m)
        if len(recs) >= min_track_frames:
            true = np.array([r.true_m for r in recs])
            if true.max() - true.min() <= static_spread * np.median(true):
                resid = np.array([(r.pred_m - r.true_m) / r.true_m for r in recs])
                static_std.append(float(np.std(resid)))
    def rms(values: list[float]) -> float:
        return float(np.sqrt(np.mean(np.square(values)))) if values else math.nan

    return {
        "pairs": len(diffs_rel),
        "rel_rms_diff": rms(diffs_rel),
        "m_rms_diff": rms(diffs_m),
        "static_tracks": len(static_std),
        "static_rel_std": float(np.median(static_std)) if static_std else math.nan,
        "definition": "rel_rms_diff: RMS over consecutive matched frames of the change of "
                      "(pred - true) distance divided by true distance; static_rel_std: median "
                      f"over tracks with >= {min_track_frames} frames and true-distance spread "
                      f"<= {static_spread:.0%} of std((pred - true) / true)",
    }


# ------------------------------------------------------------------------------------------------
# COCO detection
# ------------------------------------------------------------------------------------------------

def _coco(dataset: dict[str, Any]) -> Any:
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_evaluate(gt: dict[str, Any], detections: list[dict[str, Any]],
                  category_ids: Sequence[int] | None = None) -> dict[str, Any]:
    """COCO bbox evaluation with pycocotools.

    Args:
        gt: COCO ground-truth dict (``images``, ``annotations``, ``categories``).
        detections: COCO result dicts (``image_id``, ``category_id``, ``bbox`` xywh, ``score``).
        category_ids: categories to evaluate (default: all in ``gt``).

    Returns:
        ``map`` (AP@[.5:.95]), ``map50`` (means over categories that have ground truth),
        ``per_class`` {name: {ap, ap50, num_gt}}, ``pr50`` {name: (recall, precision)}
        at IoU .5 (all areas, 100 detections) and ``best_f1_50`` (see ``best_f1_point``).
    """
    from pycocotools.cocoeval import COCOeval

    cats = list(category_ids) if category_ids is not None else \
        [c["id"] for c in gt["categories"]]
    names = {c["id"]: c["name"] for c in gt["categories"]}
    num_gt = defaultdict(int)
    for a in gt["annotations"]:
        if not a.get("iscrowd", 0):
            num_gt[a["category_id"]] += 1
    dets = [d for d in detections if d["category_id"] in cats]
    empty = {"map": 0.0 if any(num_gt[c] for c in cats) else math.nan,
             "map50": 0.0 if any(num_gt[c] for c in cats) else math.nan,
             "per_class": {names[c]: {"ap": 0.0 if num_gt[c] else math.nan,
                                      "ap50": 0.0 if num_gt[c] else math.nan,
                                      "num_gt": num_gt[c]} for c in cats},
             "pr50": {}, "best_f1_50": best_f1_point([])}
    if not dets or not gt["annotations"]:
        return empty
    coco_gt = _coco(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(dets)
        ev = COCOeval(coco_gt, coco_dt, "bbox")
        ev.params.catIds = cats
        ev.params.imgIds = sorted(img["id"] for img in gt["images"])
        # Only the "all" area range is read below: the small/medium/large ones would cost
        # three quarters of the matching time for nothing.
        ev.params.areaRng, ev.params.areaRngLbl = [[0, 1e10]], ["all"]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"]  # [T, R, K, A, M]
    recall_pts = ev.params.recThrs
    per_class, pr50, aps, ap50s = {}, {}, [], []
    for k, cat in enumerate(ev.params.catIds):
        p_all = precision[:, :, k, 0, -1]
        p50 = precision[0, :, k, 0, -1]
        ap = float(np.mean(p_all[p_all > -1])) if (p_all > -1).any() else math.nan
        ap50 = float(np.mean(p50[p50 > -1])) if (p50 > -1).any() else math.nan
        per_class[names[cat]] = {"ap": ap, "ap50": ap50, "num_gt": num_gt[cat]}
        if num_gt[cat]:
            aps.append(ap)
            ap50s.append(ap50)
            pr50[names[cat]] = (recall_pts.tolist(), np.clip(p50, 0, None).tolist())
    return {"map": float(np.mean(aps)) if aps else math.nan,
            "map50": float(np.mean(ap50s)) if ap50s else math.nan,
            "per_class": per_class, "pr50": pr50, "best_f1_50": best_f1_point(ev.evalImgs)}


def fixed_class_ap(per_class: dict[str, dict[str, Any]], classes: Sequence[str]
                   ) -> dict[str, Any]:
    """Mean AP over a fixed class set (see the module docstring), with what it is made of.

    Args:
        per_class: ``coco_evaluate(...)["per_class"]`` ({name: {ap, ap50, num_gt}}).
        classes: the fixed set; every name must be in ``per_class``.

    Returns:
        ``classes``, ``map50`` and ``map`` (plain means over ``classes``; NaN when a class of
        the set has no ground truth), ``missing_classes`` (those without ground truth) and
        ``per_class`` ({name: {ap50, ap, num_gt}}) in the order of ``classes``.
    """
    unknown = [c for c in classes if c not in per_class]
    if unknown:
        raise ValueError(f"fixed class set: no result for {unknown}")
    rows = {c: {"ap50": per_class[c]["ap50"], "ap": per_class[c]["ap"],
                "num_gt": int(per_class[c]["num_gt"])} for c in classes}
    missing = [c for c, r in rows.items() if r["num_gt"] == 0]

    def mean(key: str) -> float:
        values = [r[key] for r in rows.values()]
        if missing or not all(math.isfinite(v) for v in values):
            return math.nan
        return float(np.mean(values))

    return {"classes": list(classes), "map50": mean("ap50"), "map": mean("ap"),
            "missing_classes": missing, "per_class": rows}


def best_f1_point(eval_imgs: Sequence[dict[str, Any] | None]) -> dict[str, float]:
    """The score threshold with the highest F1 at IoU 0.5, all classes pooled.

    Reads pycocotools' per-image matches (``COCOeval.evalImgs`` after ``evaluate``) for IoU
    0.5 and the "all" area range, so crowd/ignored boxes are treated exactly as in the AP:
    a detection on an ignored box is neither a true nor a false positive.

    Returns:
        ``threshold``, ``precision``, ``recall``, ``f1`` (NaN without ground truth or
        detections).
    """
    scores, hits, num_gt = [], [], 0
    for e in eval_imgs:
        if e is None or e["aRng"] != [0, 1e10]:
            continue
        num_gt += int(np.sum(~np.asarray(e["gtIgnore"], bool)))
        keep = ~np.asarray(e["dtIgnore"][0], bool)
        scores.extend(np.asarray(e["dtScores"])[keep].tolist())
        hits.extend((np.asarray(e["dtMatches"][0])[keep] > 0).tolist())
    nan = {"threshold": math.nan, "precision": math.nan, "recall": math.nan, "f1": math.nan}
    if not num_gt or not scores:
        return nan
    order = np.argsort(-np.asarray(scores), kind="mergesort")
    sorted_scores = np.asarray(scores)[order]
    tp = np.cumsum(np.asarray(hits, float)[order])
    n = np.arange(1, len(order) + 1)
    # A threshold keeps every detection scoring at least as much: only the last of equal
    # scores is a valid cut.
    last = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
    precision, recall = tp / n, tp / num_gt
    f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    f1 = np.where(last, f1, -1.0)
    i = int(np.argmax(f1))
    return {"threshold": float(sorted_scores[i]), "precision": float(precision[i]),
            "recall": float(recall[i]), "f1": float(f1[i])}


def near_subset(gt: dict[str, Any], classes: Sequence[str] = NEAR_CLASSES,
                max_distance_m: float = 60.0, *, min_height_frac: float = 0.0,
                max_occlusion: float = 1.0, max_truncation: float = 1.0,
                ) -> tuple[dict[str, Any], list[int]]:
    """Ground truth for "classes within ``max_distance_m``": other objects become crowd.

    Crowd boxes are ignored by pycocotools: they count neither as misses nor, when a detection
    lands on them, as false positives. The optional limits make a KITTI-like "clearly visible"
    subset: a box shorter than ``min_height_frac`` of the image height, or more occluded or
    truncated than the given fractions, is ignored too.

    Returns:
        (COCO dict, category ids to evaluate).
    """
    cat_ids = [CLASSES.index(c) + 1 for c in classes]
    heights = {im["id"]: im["height"] for im in gt.get("images", [])}
    anns = []
    for a in gt["annotations"]:
        if a["category_id"] not in cat_ids:
            continue
        a = dict(a)
        d = a.get("distance_m")
        too_far = d is not None and d > max_distance_m
        image_h = heights.get(a["image_id"])
        too_small = image_h is not None and a["bbox"][3] < min_height_frac * image_h
        # null (unknown, e.g. a CARLA capture) passes the occlusion and truncation limits
        occlusion, truncation = a.get("occlusion"), a.get("truncation")
        hidden = ((occlusion is not None and occlusion > max_occlusion)
                  or (truncation is not None and truncation > max_truncation))
        if too_far or too_small or hidden:
            a["iscrowd"] = 1
        anns.append(a)
    return {**gt, "annotations": anns}, cat_ids
