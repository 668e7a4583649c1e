"""Offline evaluation of a model through the same runtime the ROS node uses (``Perceptor``).

Every sequence of a dataset split is fed frame by frame, in order, to two ``Perceptor``\\ s
that share one network evaluation per frame:

- the *scoring* runtime keeps detections down to a low score (``ap_score_threshold``, 0.05) so
  the AP traces the whole precision-recall curve, and scores depth over the head's whole output
  range (a prediction beyond the published range is an error, not a pixel left out);
- the *node* runtime runs at the node's operating point (``score_threshold``, by default the
  node's own default read from ``config/depthssd.yaml``) with the node's other defaults, so the
  tracks, smoothed distances, jitter and matched share are the ones the node publishes.

The node runtime replays the scoring runtime's network outputs (:class:`_ReplayBackend`, which
checks that its inputs are bit-identical) instead of running the network a second time: both
see the same frames, stamps and memory, so the outputs are the same and half the inference
time is saved. The split is run twice, with the memory on and off (``memory_enabled=False``
feeds the initial state every frame), and ``metrics.json`` plus PNG plots are written to the
output folder. Metric definitions are in :mod:`depthssd_train.metrics`; the floors are those
of issue 15 (:data:`FLOORS`, :data:`MEMORY_FLOORS`).
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from depthssd_core.backends.base import InferenceBackend
from depthssd_core.classes import CLASSES
from depthssd_core.metrics import json_safe, match_detections
from depthssd_core.runtime import Detection, Perceptor, PerceptorSettings
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
    fixed_class_ap,
    jitter_summary,
    matched_share,
    near_subset,
)

# The floors of the default model (issue 15; MODEL_CARD.md quotes them), on held-out data with
# the memory on. "within" is (centre, tolerance): |value - centre| <= tolerance.
FLOORS: dict[str, tuple[str, Any]] = {
    "near_map50": (">=", 0.50),
    "near_car_ap50": (">=", 0.70),
    "near_pedestrian_ap50": (">=", 0.35),
    "near_visible_map50": (">=", 0.70),
    "depth_abs_rel": ("<=", 0.12),
    "depth_delta1": (">=", 0.85),
    "distance_median_abs_rel_under_40m": ("<=", 0.06),
    "visible_matched_share_under_40m": (">=", 0.70),
    "distance_median_ratio_under_40m": ("within", (1.0, 0.03)),
}
# Memory on against off: the value is (on - off) of the metric. Near AP may be at most 0.005
# lower with the memory; distance jitter must be lower.
MEMORY_FLOORS: dict[str, tuple[str, str, float]] = {
    "memory_near_map50_no_worse": ("near_map50", ">=", -0.005),
    "memory_jitter_lower": ("jitter_rel_rms_diff", "<", 0.0),
}
# The "clearly visible" near subset: at least 20 px tall at 360 px (KITTI's "moderate" asks
# 25 px at 375), at most half occluded, at most 30 % outside the image.
VISIBLE_LIMITS = {"min_height_frac": 20 / 360, "max_occlusion": 0.5, "max_truncation": 0.3}
# Range of the matched-share floor and of the distance medians.
MATCH_RANGE_M = 40.0
# Informational "memory on no worse than off" on more metrics, with this much noise allowed.
MEMORY_TOLERANCE = {"near_map50": 0.005, "depth_abs_rel": 0.002,
                    "distance_median_abs_rel_under_40m": 0.002}
# The node's parameter file (the one source of its default score_threshold).
NODE_PARAMS = Path("config") / "depthssd.yaml"


def node_params_path() -> Path:
    """``config/depthssd.yaml`` of the source checkout, else of the installed package share."""
    candidates = [Path(__file__).resolve().parents[1] / NODE_PARAMS,
                  Path(sys.prefix) / "share" / "depthssd_ros" / NODE_PARAMS]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(f"the node's parameter file {NODE_PARAMS} was not found (looked in "
                            f"{', '.join(str(p.parent.parent) for p in candidates)}); pass "
                            "--score-threshold")


def node_score_threshold(path: str | Path | None = None) -> float:
    """The node's default ``score_threshold``, read from its parameter file.

    Raises:
        FileNotFoundError / ValueError: no file, or no usable value in it (naming the file).
    """
    import yaml

    path = Path(path) if path is not None else node_params_path()
    data = yaml.safe_load(path.read_text())
    try:
        value = data["/**"]["ros__parameters"]["score_threshold"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"{path}: no /**: ros__parameters: score_threshold") from exc
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{path}: score_threshold must be a number in [0, 1], got {value!r}")
    return float(value)


@dataclass
class EvalOptions:
    """Settings of one evaluation.

    Attributes:
        score_threshold: the operating point: the node runtime's score threshold, used for the
            per-object distance, jitter and matched share. None: the node's default
            (:func:`node_score_threshold`).
        ap_score_threshold: score threshold of the scoring runtime, for the AP (low, to trace
            the whole precision-recall curve).
        near_max_m: range of the near-object AP@.5.
        max_sequences: evaluate only the first N sequences (None = all).
        max_frames: evaluate only the first N frames of each sequence (None = all).
        memory_ablation: also run with the memory off.
        num_threads: CPU threads of the backend.
    """

    score_threshold: float | None = None
    ap_score_threshold: float = 0.05
    near_max_m: float = 60.0
    max_sequences: int | None = None
    max_frames: int | None = None
    memory_ablation: bool = True
    num_threads: int = 2


class _RecordingBackend(InferenceBackend):
    """Runs the real backend and keeps the last call's inputs and outputs for a replay."""

    def __init__(self, inner: InferenceBackend) -> None:
        self.inner = inner
        self.name, self.device = inner.name, inner.device
        self.last: tuple[tuple[np.ndarray, ...], dict[str, np.ndarray]] | None = None

    def load(self) -> None:
        self.inner.load()

    def infer(self, image: np.ndarray, mem_m: np.ndarray, mem_s: np.ndarray,
              ) -> dict[str, np.ndarray]:
        out = self.inner.infer(image, mem_m, mem_s)
        self.last = ((image.copy(), mem_m.copy(), mem_s.copy()), out)
        return out

    def close(self) -> None:
        self.inner.close()


class _ReplayBackend(InferenceBackend):
    """Returns the outputs the recording backend just computed, for the very same inputs.

    The network is a pure function of (image, mem_m, mem_s); a second runtime fed the same
    frames holds the same memory, so its outputs are the recorded ones. Any difference in the
    inputs is an error, never a silent reuse.
    """

    def __init__(self, source: _RecordingBackend) -> None:
        self.source = source
        self.name, self.device = source.name, source.device

    def load(self) -> None:
        pass

    def infer(self, image: np.ndarray, mem_m: np.ndarray, mem_s: np.ndarray,
              ) -> dict[str, np.ndarray]:
        if self.source.last is None:
            raise RuntimeError("replay before the scoring runtime ran this frame")
        (image0, mem_m0, mem_s0), out = self.source.last
        if not (np.array_equal(image, image0) and np.array_equal(mem_m, mem_m0)
                and np.array_equal(mem_s, mem_s0)):
            raise RuntimeError("the node runtime's network inputs differ from the scoring "
                               "runtime's (memory or frames out of step)")
        return {k: v.copy() for k, v in out.items()}


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


def _xyxy(bbox: list[float]) -> list[float]:
    return [bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1] + bbox[3]]


def _match(anns: list[dict[str, Any]], dets: list[Detection]) -> list[tuple[int, int]]:
    if not anns or not dets:
        return []
    return match_detections(np.array([_xyxy(a["bbox"]) for a in anns]),
                            [a["category_id"] for a in anns],
                            np.array([d.box_xyxy for d in dets]),
                            [d.class_index + 1 for d in dets], [d.score for d in dets])


def _visible_ids(gt: dict[str, Any]) -> set[int]:
    """Ids of the clearly visible near-class objects closer than ``MATCH_RANGE_M``."""
    vis, _ = near_subset(gt, NEAR_CLASSES, MATCH_RANGE_M, **VISIBLE_LIMITS)
    return {int(a["id"]) for a in vis["annotations"]
            if not a.get("iscrowd", 0) and a.get("distance_m") is not None
            and a["distance_m"] < MATCH_RANGE_M}


def run_pass(perceptors: tuple[Perceptor, Perceptor], root: Path, split: str,
             opts: EvalOptions, desc: str = "eval", progress: bool = True) -> dict[str, Any]:
    """Run every selected frame through the (scoring, node) runtimes and compute all metrics.

    Args:
        perceptors: the scoring runtime (AP, depth) and the node runtime (distance, jitter,
            matched share); see the module docstring.
        root / split: the dataset split.
        opts: what to evaluate.
        desc / progress: progress bar.

    Returns:
        Metrics dict (detection, near detection, depth, distance, matched share, jitter,
        latency) plus private ``_records`` / ``_depth_bins`` / ``_pr50`` entries for plots.
    """
    scoring, node = perceptors
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
    visible_ids = _visible_ids(gt)
    depth_acc = DepthAccumulator()
    detections: list[dict[str, Any]] = []
    objects: list[ObjectRecord] = []
    visible: list[tuple[str, bool]] = []
    latency: dict[str, list[float]] = defaultdict(list)
    latency_node: dict[str, list[float]] = defaultdict(list)
    total = sum(len(recs) for _, recs in selected)
    bar = tqdm(total=total, desc=desc, disable=not progress, dynamic_ncols=True)
    for name, recs in selected:
        scoring.reset()
        node.reset()
        for rec in recs:
            rgb = read_rgb_png(rec.image_path)
            result = scoring.process(rgb, "rgb8", rec.intrinsics, rec.timestamp_s)
            at_op = node.process(rgb, "rgb8", rec.intrinsics, rec.timestamp_s)
            for key, value in result.latency_ms.items():
                latency[key].append(value)
            # The node's frame: the network (run once, by the scoring runtime) and the node
            # runtime's decoding, distances and tracking.
            node_ms = {k: result.latency_ms[k] for k in ("preprocess", "inference")}
            node_ms.update({k: at_op.latency_ms[k] for k in ("decode", "distance", "tracking")})
            for key, value in node_ms.items():
                latency_node[key].append(value)
            latency_node["total"].append(sum(node_ms.values()))
            for d in result.detections:
                x1, y1, x2, y2 = d.box_xyxy
                detections.append({"image_id": int(rec.image_id),
                                   "category_id": d.class_index + 1,
                                   "bbox": [x1, y1, x2 - x1, y2 - y1], "score": d.score})
            if rec.has_depth and rec.depth_path is not None:
                depth_acc.add(result.depth_m, read_depth_png(rec.depth_path, mpu), at_op.depth_m)
            anns = [a for a in anns_by_image.get(int(rec.image_id), [])
                    if not a.get("iscrowd", 0) and a.get("distance_m") is not None]
            pairs = _match(anns, at_op.detections)
            for g, k in pairs:
                a = anns[g]
                inst = a.get("instance_id")
                objects.append(ObjectRecord(
                    sequence=name, frame_index=rec.frame_index,
                    instance_id=int(inst) if inst is not None else -int(a["id"]),
                    class_name=CLASSES[a["category_id"] - 1],
                    true_m=float(a["distance_m"]), pred_m=float(at_op.detections[k].distance_m)))
            matched_ids = {int(anns[g]["id"]) for g, _ in pairs}
            visible.extend((CLASSES[a["category_id"] - 1], int(a["id"]) in matched_ids)
                           for a in anns if int(a["id"]) in visible_ids)
            bar.update(1)
    bar.close()
    det = coco_evaluate(gt, detections)
    near_gt, near_cats = near_subset(gt, NEAR_CLASSES, opts.near_max_m)
    near = coco_evaluate(near_gt, detections, near_cats)
    vis_gt, _ = near_subset(gt, NEAR_CLASSES, opts.near_max_m, **VISIBLE_LIMITS)
    vis = coco_evaluate(vis_gt, detections, near_cats)
    mean_rule = ("plain mean of the per-class APs over the fixed class set; NaN when a class of "
                 "the set has no ground truth in the split (listed in missing_classes)")
    return {
        "num_frames": total,
        "num_sequences": len(selected),
        "detection": {"map": det["map"], "map50": det["map50"], "per_class": det["per_class"],
                      "score_threshold": scoring.settings.score_threshold},
        "near_detection": {"max_distance_m": opts.near_max_m,
                           **fixed_class_ap(near["per_class"], NEAR_CLASSES),
                           "mean_rule": mean_rule},
        # The same classes and range without the boxes a KITTI-style benchmark would not score
        # (see VISIBLE_LIMITS); a floor of its own, never instead of the near AP.
        "near_visible_detection": {**VISIBLE_LIMITS,
                                   **fixed_class_ap(vis["per_class"], NEAR_CLASSES),
                                   # Where a node's score_threshold would do best on this data.
                                   "best_f1_50": vis["best_f1_50"]},
        "depth": {**depth_acc.summary(), "published_range_m": list(node.depth_range_m)},
        "distance": {**distance_summary(objects, MATCH_RANGE_M),
                     "score_threshold": node.settings.score_threshold},
        "visible_matched": {"classes": list(NEAR_CLASSES), "max_distance_m": MATCH_RANGE_M,
                            **VISIBLE_LIMITS, "score_threshold": node.settings.score_threshold,
                            **matched_share(visible)},
        "jitter": {**jitter_summary(objects), "score_threshold": node.settings.score_threshold},
        "latency_ms": {k: float(np.mean(v)) for k, v in latency.items()},
        "latency_ms_operating_point": {k: float(np.mean(v)) for k, v in latency_node.items()},
        "_records": objects,
        "_depth_bins": depth_acc.error_by_distance(),
        "_pr50": det["pr50"],
    }


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers the floors and the memory ablation compare."""
    near = metrics["near_detection"]
    values = {"near_map50": near["map50"]}
    for name in NEAR_CLASSES:
        values[f"near_{name}_ap50"] = near["per_class"][name]["ap50"]
    values.update({
        "near_visible_map50": metrics["near_visible_detection"]["map50"],
        "map": metrics["detection"]["map"],
        "map50": metrics["detection"]["map50"],
        "depth_abs_rel": metrics["depth"]["abs_rel"],
        "depth_delta1": metrics["depth"]["delta1"],
        "distance_median_abs_rel_under_40m": metrics["distance"]["median_abs_rel_under_40m"],
        "distance_median_ratio_under_40m": metrics["distance"]["median_ratio_under_40m"],
        "visible_matched_share_under_40m": metrics["visible_matched"]["share"],
        "jitter_rel_rms_diff": metrics["jitter"]["rel_rms_diff"],
    })
    return values


def floor_margin(op: str, target: Any, value: float) -> float:
    """How far ``value`` is inside the floor (>= 0 passes, < 0 misses by that much; NaN: no
    value). For ``<`` a margin of exactly 0 misses."""
    if value is None or not math.isfinite(value):
        return math.nan
    if op == ">=":
        return value - target
    if op in ("<=", "<"):
        return target - value
    if op == "within":
        centre, tolerance = target
        return tolerance - abs(value - centre)
    raise ValueError(f"unknown floor operator {op!r}")


def _target_text(op: str, target: Any) -> str:
    if op == "within":
        return f"within {target[1]:g} of {target[0]:g}"
    return f"{op} {target:g}"


def floor_entry(op: str, target: Any, value: float) -> dict[str, Any]:
    """One floor's report: target text, value, met (NaN never meets) and margin."""
    margin = floor_margin(op, target, value)
    met = math.isfinite(margin) and (margin > 0 if op == "<" else margin >= 0)
    return {"target": _target_text(op, target), "value": value, "met": bool(met),
            "margin": margin}


def check_floors(values: dict[str, float], off: dict[str, float] | None = None
                 ) -> dict[str, Any]:
    """Every floor of :data:`FLOORS` (and, with the memory-off values, :data:`MEMORY_FLOORS`).

    Args:
        values: :func:`headline` with the memory on (a missing key counts as NaN).
        off: :func:`headline` with the memory off; None reports the memory floors unmeasured.

    Returns:
        {floor: {target, value, met, margin}}; a memory floor's value is on - off.
    """
    out = {key: floor_entry(op, target, values.get(key, math.nan))
           for key, (op, target) in FLOORS.items()}
    for key, (metric, op, target) in MEMORY_FLOORS.items():
        diff = (values.get(metric, math.nan) - off.get(metric, math.nan)) if off else math.nan
        out[key] = floor_entry(op, target, diff)
        if off is None:
            out[key]["note"] = "memory ablation not run"
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


def make_perceptors(model_path: str | Path, backend: str, score_threshold: float,
                    ap_score_threshold: float, num_threads: int = 2
                    ) -> tuple[Perceptor, Perceptor]:
    """The (scoring, node) runtimes of :func:`run_pass`, sharing one network evaluation."""
    from depthssd_core.backends.loading import load_backend

    engine, info = load_backend(Path(model_path), backend, num_threads)
    recorder = _RecordingBackend(engine)
    cfg = info.cfg
    scoring = Perceptor(recorder, info, settings=PerceptorSettings(
        score_threshold=ap_score_threshold, min_depth_m=cfg.min_depth_m,
        max_depth_m=cfg.max_depth_m))
    node = Perceptor(_ReplayBackend(recorder), info,
                     settings=PerceptorSettings(score_threshold=score_threshold))
    return scoring, node


def evaluate(model_path: str | Path, data_dir: str | Path, out_dir: str | Path,
             backend: str = "torch", split: str | None = None,
             options: EvalOptions | None = None, progress: bool = True,
             perceptors: tuple[Perceptor, Perceptor] | None = None, plots: bool = True,
             ) -> dict[str, Any]:
    """Evaluate a model on a dataset split; write ``metrics.json`` and plots to ``out_dir``.

    Args:
        model_path: ``.safetensors`` checkpoint or ``.onnx`` export.
        data_dir: dataset root in the depthssd format.
        out_dir: output folder (created).
        backend: runtime backend (``torch``, ``onnxruntime``, ``auto``).
        split: split to evaluate (default: the only one, else ``test``).
        options: :class:`EvalOptions`.
        progress: show progress bars.
        perceptors: the runtimes of :func:`make_perceptors` for ``model_path`` and
            ``backend``, to evaluate several splits with one loaded model (their score
            thresholds and memory setting are set here); None loads the model.
        plots: write the PNG plots.

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
    if opts.score_threshold is None:
        threshold, source = node_score_threshold(), str(node_params_path())
    else:
        threshold, source = float(opts.score_threshold), "given"
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if perceptors is None:
        perceptors = make_perceptors(model_path, backend, threshold, opts.ap_score_threshold,
                                     opts.num_threads)
    else:
        perceptors[0].update_settings(score_threshold=opts.ap_score_threshold,
                                      memory_enabled=True)
        perceptors[1].update_settings(score_threshold=threshold, memory_enabled=True)
    scoring = perceptors[0]
    t0 = time.perf_counter()
    on = run_pass(perceptors, root, split, opts, desc="memory on", progress=progress)
    metrics: dict[str, Any] = {
        "model": str(model_path), "data": str(root), "split": split,
        "backend": scoring.backend.name,
        "input_size": [scoring.model.input_width, scoring.model.input_height],
        "operating_point": {"score_threshold": threshold, "source": source},
        **on,
    }
    values_on = headline(on)
    values_off = None
    if opts.memory_ablation:
        for p in perceptors:
            p.update_settings(memory_enabled=False)
        off = run_pass(perceptors, root, split, opts, desc="memory off", progress=progress)
        values_off = headline(off)
        metrics["memory_ablation"] = {"memory_on": values_on, "memory_off": values_off,
                                      **memory_comparison(values_on, values_off)}
    metrics["floors"] = check_floors(values_on, values_off)
    metrics["eval_seconds"] = time.perf_counter() - t0
    if plots:
        from depthssd_train.plots import write_all

        write_all(out, on)
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2))
    return metrics
