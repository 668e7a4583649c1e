"""Offline evaluation of a model through the same runtime the ROS node uses (``Perceptor``).

Every sequence of a dataset split is fed frame by frame, in order, to
``Perceptor.from_model(model, backend)`` (torch or ONNX Runtime), so decoding, NMS, the focal
rescaling of depth, per-object distance, tracking and the recurrent memory are the deployed
ones. The split is run twice, with the memory on and off (``memory_enabled=False`` feeds the
initial state every frame), and ``metrics.json`` plus PNG plots are written to the output
folder. Metric definitions are in :mod:`depthssd_train.metrics`.
"""

from __future__ import annotations

import json
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from depthssd_core.classes import CLASSES
from depthssd_core.metrics import match_detections
from depthssd_core.runtime import Perceptor, PerceptorSettings
from depthssd_train.dataset.format import (
    group_by_sequence,
    list_splits,
    load_coco,
    load_depth_format,
    load_index,
    read_depth_png,
    read_rgb_png,
)
from depthssd_train.metrics import (
    NEAR_CLASSES,
    DepthAccumulator,
    ObjectRecord,
    coco_evaluate,
    distance_summary,
    jitter_summary,
    near_subset,
)

# Targets the default model is held to (docs and MODEL_CARD.md quote them).
FLOORS = {
    "near_map50": (">=", 0.60),
    "depth_abs_rel": ("<=", 0.10),
    "depth_delta1": (">=", 0.90),
    "distance_median_abs_rel_under_40m": ("<=", 0.08),
}
# The "clearly visible" near subset (reported next to the floor's near AP, never instead of it):
# at least 20 px tall at 360 px (KITTI's "moderate" asks 25 px at 375), at most half occluded,
# at most 30 % outside the image.
VISIBLE_LIMITS = {"min_height_frac": 20 / 360, "max_occlusion": 0.5, "max_truncation": 0.3}
# "Memory on no worse than off" allows this much noise on the headline metrics.
MEMORY_TOLERANCE = {"near_map50": 0.005, "depth_abs_rel": 0.002,
                    "distance_median_abs_rel_under_40m": 0.002}


@dataclass
class EvalOptions:
    """Settings of one evaluation.

    Attributes:
        score_threshold: runtime score threshold for the AP computation (low, to trace the
            whole precision-recall curve).
        distance_score_threshold: detections at or above this score are matched for the
            per-object distance and jitter metrics. 0.35, a little above the node's default
            (``postprocess.DEFAULT_SCORE_THRESHOLD``, 0.3): the model card's distance figures
            were measured at it, so it stays until the card is re-measured.
        near_max_m: range of the near-object AP@.5.
        max_sequences: evaluate only the first N sequences (None = all).
        max_frames: evaluate only the first N frames of each sequence (None = all).
        memory_ablation: also run with the memory off.
        num_threads: CPU threads of the backend.
    """

    score_threshold: float = 0.05
    distance_score_threshold: float = 0.35
    near_max_m: float = 60.0
    max_sequences: int | None = None
    max_frames: int | None = None
    memory_ablation: bool = True
    num_threads: int = 2


def _pick_split(root: Path, split: str | None) -> str:
    splits = list_splits(root)
    if split is not None:
        if split not in splits:
            raise ValueError(f"{root}: no split {split!r} (splits: {', '.join(splits) or 'none'})")
        return split
    if len(splits) == 1:
        return splits[0]
    if "test" in splits:
        return "test"
    raise ValueError(f"{root}: several splits ({', '.join(splits)}); choose one with --split")


def run_pass(perceptor: Perceptor, root: Path, split: str, opts: EvalOptions,
             desc: str = "eval", progress: bool = True) -> dict[str, Any]:
    """Run every selected frame through ``perceptor`` and compute all metrics.

    Returns:
        Metrics dict (detection, near detection, depth, distance, jitter, latency) plus private
        ``_records`` / ``_depth_bins`` / ``_pr50`` entries used for plots.
    """
    records = load_index(root, split)
    coco = load_coco(root, split)
    mpu = load_depth_format(root)
    anns_by_image: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for a in coco["annotations"]:
        anns_by_image[int(a["image_id"])].append(a)
    sequences = list(group_by_sequence(records).items())
    if opts.max_sequences is not None:
        sequences = sequences[:opts.max_sequences]
    selected = [(name, recs[:opts.max_frames] if opts.max_frames else recs)
                for name, recs in sequences]
    image_ids = {r.image_id for _, recs in selected for r in recs}
    gt = {"images": [i for i in coco["images"] if int(i["id"]) in image_ids],
          "annotations": [a for a in coco["annotations"] if int(a["image_id"]) in image_ids],
          "categories": coco["categories"]}
    depth_acc = DepthAccumulator()
    detections: list[dict[str, Any]] = []
    objects: list[ObjectRecord] = []
    latency: dict[str, list[float]] = defaultdict(list)
    total = sum(len(recs) for _, recs in selected)
    bar = tqdm(total=total, desc=desc, disable=not progress, dynamic_ncols=True)
    for name, recs in selected:
        perceptor.reset()
        for rec in recs:
            rgb = read_rgb_png(rec.image_path)
            result = perceptor.process(rgb, "rgb8", rec.intrinsics, rec.timestamp_s)
            for key, value in result.latency_ms.items():
                latency[key].append(value)
            dets = result.detections
            for d in dets:
                x1, y1, x2, y2 = d.box_xyxy
                detections.append({"image_id": int(rec.image_id),
                                   "category_id": d.class_index + 1,
                                   "bbox": [x1, y1, x2 - x1, y2 - y1], "score": d.score})
            if rec.has_depth and rec.depth_path is not None:
                depth_acc.add(result.depth_m, read_depth_png(rec.depth_path, mpu))
            anns = [a for a in anns_by_image.get(int(rec.image_id), [])
                    if not a.get("iscrowd", 0) and a.get("distance_m") is not None]
            confident = [d for d in dets if d.score >= opts.distance_score_threshold]
            if anns and confident:
                gt_boxes = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                                      a["bbox"][1] + a["bbox"][3]] for a in anns])
                pairs = match_detections(gt_boxes, [a["category_id"] for a in anns],
                                         np.array([d.box_xyxy for d in confident]),
                                         [d.class_index + 1 for d in confident],
                                         [d.score for d in confident])
                for g, k in pairs:
                    a = anns[g]
                    inst = a.get("instance_id")
                    objects.append(ObjectRecord(
                        sequence=name, frame_index=rec.frame_index,
                        instance_id=int(inst) if inst is not None else -int(a["id"]),
                        class_name=CLASSES[a["category_id"] - 1],
                        true_m=float(a["distance_m"]), pred_m=float(confident[k].distance_m)))
            bar.update(1)
    bar.close()
    det = coco_evaluate(gt, detections)
    near_gt, near_cats = near_subset(gt, NEAR_CLASSES, opts.near_max_m)
    near = coco_evaluate(near_gt, detections, near_cats)
    vis_gt, _ = near_subset(gt, NEAR_CLASSES, opts.near_max_m, **VISIBLE_LIMITS)
    visible = coco_evaluate(vis_gt, detections, near_cats)
    dist = distance_summary(objects)
    return {
        "num_frames": total,
        "num_sequences": len(selected),
        "detection": {"map": det["map"], "map50": det["map50"], "per_class": det["per_class"],
                      "score_threshold": opts.score_threshold},
        "near_detection": {"classes": list(NEAR_CLASSES), "max_distance_m": opts.near_max_m,
                           "map50": near["map50"], "map": near["map"],
                           "per_class": near["per_class"]},
        # Not a floor: the same classes and range without the boxes a KITTI-style benchmark
        # would not score (see VISIBLE_LIMITS).
        "near_visible_detection": {**VISIBLE_LIMITS, "map50": visible["map50"],
                                   "map": visible["map"], "per_class": visible["per_class"],
                                   # Where a node's score_threshold would do best on this data.
                                   "best_f1_50": visible["best_f1_50"]},
        "depth": depth_acc.summary(),
        "distance": {**dist, "score_threshold": opts.distance_score_threshold},
        "jitter": jitter_summary(objects),
        "latency_ms": {k: float(np.mean(v)) for k, v in latency.items()},
        "_records": objects,
        "_depth_bins": depth_acc.error_by_distance(),
        "_pr50": det["pr50"],
    }


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers the floors and the memory ablation compare."""
    return {
        "near_map50": metrics["near_detection"]["map50"],
        "near_visible_map50": metrics["near_visible_detection"]["map50"],
        "map": metrics["detection"]["map"],
        "map50": metrics["detection"]["map50"],
        "depth_abs_rel": metrics["depth"]["abs_rel"],
        "depth_delta1": metrics["depth"]["delta1"],
        "distance_median_abs_rel_under_40m":
            metrics["distance"]["median_abs_rel_under_40m"],
        "jitter_rel_rms_diff": metrics["jitter"]["rel_rms_diff"],
    }


def check_floors(values: dict[str, float]) -> dict[str, Any]:
    """Each floor with its target, the value and whether it is met (NaN never meets)."""
    out = {}
    for key, (op, target) in FLOORS.items():
        v = values[key]
        ok = math.isfinite(v) and (v >= target if op == ">=" else v <= target)
        out[key] = {"target": f"{op} {target}", "value": v, "met": bool(ok)}
    return out


def memory_comparison(on: dict[str, float], off: dict[str, float]) -> dict[str, Any]:
    """Whether memory on is no worse than off on each headline metric (with tolerances)."""
    higher_better = {"near_map50"}
    verdict = {}
    for key, tol in MEMORY_TOLERANCE.items():
        a, b = on[key], off[key]
        if not (math.isfinite(a) and math.isfinite(b)):
            verdict[key] = None
            continue
        verdict[key] = bool(a >= b - tol) if key in higher_better else bool(a <= b + tol)
    known = [v for v in verdict.values() if v is not None]
    return {"per_metric_no_worse": verdict, "no_worse": bool(known) and all(known),
            "tolerance": MEMORY_TOLERANCE}


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf become None, tuples lists, private keys dropped."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def evaluate(model_path: str | Path, data_dir: str | Path, out_dir: str | Path,
             backend: str = "torch", split: str | None = None,
             options: EvalOptions | None = None, progress: bool = True) -> dict[str, Any]:
    """Evaluate a model on a dataset split; write ``metrics.json`` and plots to ``out_dir``.

    Args:
        model_path: ``.safetensors`` checkpoint or ``.onnx`` export.
        data_dir: dataset root in the depthssd format.
        out_dir: output folder (created).
        backend: runtime backend (``torch``, ``onnxruntime``, ``auto``).
        split: split to evaluate (default: the only one, else ``test``).
        options: :class:`EvalOptions`.
        progress: show progress bars.

    Returns:
        The metrics written to ``metrics.json``.

    Raises:
        ValueError / FileNotFoundError: bad model, data or options (the message names it).
    """
    opts = options or EvalOptions()
    root = Path(data_dir)
    if not root.is_dir():
        raise ValueError(f"--data {root}: not a folder")
    split = _pick_split(root, split)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    settings = PerceptorSettings(score_threshold=opts.score_threshold)
    perceptor = Perceptor.from_model(model_path, backend=backend, settings=settings,
                                     num_threads=opts.num_threads)
    t0 = time.perf_counter()
    on = run_pass(perceptor, root, split, opts, desc="memory on", progress=progress)
    metrics: dict[str, Any] = {
        "model": str(model_path), "data": str(root), "split": split,
        "backend": perceptor.backend.name,
        "input_size": [perceptor.model.input_width, perceptor.model.input_height],
        **{k: v for k, v in on.items()},
    }
    values_on = headline(on)
    metrics["floors"] = check_floors(values_on)
    if opts.memory_ablation:
        perceptor.update_settings(memory_enabled=False)
        off = run_pass(perceptor, root, split, opts, desc="memory off", progress=progress)
        values_off = headline(off)
        metrics["memory_ablation"] = {"memory_on": values_on, "memory_off": values_off,
                                      **memory_comparison(values_on, values_off)}
    metrics["eval_seconds"] = time.perf_counter() - t0
    from depthssd_train import plots

    plots.write_all(out, on)
    (out / "metrics.json").write_text(json.dumps(_clean(metrics), indent=2))
    return metrics
