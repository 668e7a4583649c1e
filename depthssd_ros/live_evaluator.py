"""Scores detections, distances and depth against ground truth while a pipeline runs.

The demo (:mod:`depthssd_ros.demo`) feeds it the synthetic camera's ground truth and the
perception node's outputs, both keyed by the camera header stamp (the node copies the input
header to every output), in whatever order they arrive. A frame is scored once both sides of it
are in:

- detections are matched to true objects of the same class at IoU >= 0.5 exactly as the
  offline evaluation matches them (both call ``depthssd_core.metrics.match_detections``);
  true objects too small or too far to be expected (``min_box_height_px``,
  ``max_distance_m``) are "ignore" regions: a detection on one is neither a true nor a false
  positive, and missing one is no false negative;
- for every matched pair with both distances known, the absolute relative distance error
  ``|d - d*| / d*``;
- for depth images, the offline evaluation's AbsRel over true depths of 1 m to
  ``max_distance_m``.

It is plain Python on plain values (no rclpy): the demo converts the messages.
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

import cv2
import numpy as np

from depthssd_core.metrics import depth_metrics, match_detections


@dataclass(frozen=True)
class LabelledBox:
    """A detection or a true object in one frame.

    Attributes:
        class_name: class of the box.
        box_xyxy: (x1, y1, x2, y2) in image pixels.
        distance_m: planar distance of the object (NaN when unknown).
        score: confidence (1 for ground truth).
        track_id: track or instance id ("" if none).
    """

    class_name: str
    box_xyxy: tuple[float, float, float, float]
    distance_m: float = math.nan
    score: float = 1.0
    track_id: str = ""


@dataclass
class FrameScore:
    """The outcome of scoring one frame.

    Attributes:
        stamp_ns: the frame's stamp.
        true_positives: detections matched to an expected true object.
        false_positives: detections matched to nothing (ignored objects excepted).
        false_negatives: expected true objects no detection matched.
        distance_abs_rel: relative distance errors of the matched pairs.
        matches: (detection, truth) pairs counted as true positives.
        per_class: class name -> Counter of ``tp``, ``fp``, ``fn``.
    """

    stamp_ns: int
    true_positives: int = 0
    false_positives: int = 0
    false_negatives: int = 0
    distance_abs_rel: list[float] = field(default_factory=list)
    matches: list[tuple[LabelledBox, LabelledBox]] = field(default_factory=list)
    per_class: dict[str, Counter] = field(default_factory=dict)


def match_frame(detections: list[LabelledBox], truths: list[LabelledBox],
                expected: list[bool], iou_threshold: float, stamp_ns: int = 0) -> FrameScore:
    """Match one frame's detections to its true objects of the same class.

    The matching is the offline evaluation's (:func:`depthssd_core.metrics.match_detections`:
    detections by falling score, each taking the free same-class truth of highest IoU), so the
    live numbers mean what ``depthssd-eval``'s mean.

    Args:
        detections: the frame's detections.
        truths: the frame's true objects.
        expected: per true object, whether missing it counts (False: an ignore region).
        iou_threshold: minimum IoU of a match.
        stamp_ns: stamp recorded in the result.

    Returns:
        The :class:`FrameScore`.
    """
    score = FrameScore(stamp_ns)
    real = [t for t, e in zip(truths, expected, strict=True) if e]
    ignored = [t for t, e in zip(truths, expected, strict=True) if not e]
    # Expected objects first, so a detection does not vanish into an ignore region while a
    # real object beside it goes unmatched; then what is left against the ignore regions.
    pairs = _match(real, detections, iou_threshold)
    matched = {d for _, d in pairs}
    rest = [k for k in range(len(detections)) if k not in matched]
    on_ignored = {rest[d] for _, d in _match(ignored, [detections[k] for k in rest],
                                              iou_threshold)}
    for name in sorted({d.class_name for d in detections} | {t.class_name for t in truths}):
        score.per_class[name] = Counter(tp=0, fp=0, fn=0)
    for g, d in pairs:
        det, truth = detections[d], real[g]
        score.per_class[det.class_name]["tp"] += 1
        score.matches.append((det, truth))
        if math.isfinite(det.distance_m) and math.isfinite(truth.distance_m) \
                and truth.distance_m > 0:
            score.distance_abs_rel.append(abs(det.distance_m - truth.distance_m)
                                          / truth.distance_m)
    for k in rest:
        if k not in on_ignored:
            score.per_class[detections[k].class_name]["fp"] += 1
    matched_truths = {g for g, _ in pairs}
    for g, truth in enumerate(real):
        if g not in matched_truths:
            score.per_class[truth.class_name]["fn"] += 1
    score.true_positives = len(pairs)
    score.false_positives = len(rest) - len(on_ignored)
    score.false_negatives = len(real) - len(pairs)
    return score


def _match(truths: list[LabelledBox], dets: list[LabelledBox],
           iou_threshold: float) -> list[tuple[int, int]]:
    """(truth index, detection index) pairs of the offline evaluation's matching."""
    if not truths or not dets:
        return []
    names = sorted({b.class_name for b in (*truths, *dets)})
    return match_detections(np.array([t.box_xyxy for t in truths]),
                            [names.index(t.class_name) for t in truths],
                            np.array([d.box_xyxy for d in dets]),
                            [names.index(d.class_name) for d in dets],
                            [d.score for d in dets], iou_threshold)


def depth_abs_rel(predicted_m: np.ndarray, true_m: np.ndarray, max_depth_m: float,
                  min_depth_m: float = 1.0) -> float:
    """AbsRel of a depth map, as the offline evaluation computes it (Eigen, KITTI clamping).

    Pixels with a true depth in [``min_depth_m``, ``max_depth_m``] and a finite prediction
    count (:func:`depthssd_core.metrics.depth_metrics`). The prediction is resized (nearest
    neighbour) to the true map's size if they differ. Returns NaN when no pixel qualifies.
    """
    pred = np.asarray(predicted_m, dtype=np.float32)
    true = np.asarray(true_m, dtype=np.float32)
    if pred.shape != true.shape:
        pred = cv2.resize(pred, (true.shape[1], true.shape[0]),
                          interpolation=cv2.INTER_NEAREST)
    metrics = depth_metrics(pred, true, min_depth_m, max_depth_m)
    return math.nan if metrics is None else metrics["abs_rel"]


def _ratio(num: int, den: int) -> float | None:
    return None if den == 0 else num / den


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


class LiveEvaluator:
    """Pairs ground truth and outputs by stamp as they arrive and accumulates scores."""

    def __init__(self, iou_threshold: float = 0.5, min_box_height_px: float = 10.0,
                 max_distance_m: float = 80.0, max_pending: int = 256) -> None:
        """Create an evaluator.

        Args:
            iou_threshold: minimum IoU of a detection-truth match.
            min_box_height_px: true objects with lower boxes are ignore regions.
            max_distance_m: true objects further away are ignore regions; depth pixels further
                away are not scored.
            max_pending: frames kept while waiting for their other half (oldest dropped).

        Raises:
            ValueError: a bound outside its range.
        """
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
        if not max_distance_m > 0 or min_box_height_px < 0 or max_pending < 1:
            raise ValueError("max_distance_m must be > 0, min_box_height_px >= 0 and "
                             "max_pending >= 1")
        self.iou_threshold = iou_threshold
        self.min_box_height_px = min_box_height_px
        self.max_distance_m = max_distance_m
        self.max_pending = max_pending
        self._truth: OrderedDict[int, list[LabelledBox]] = OrderedDict()
        self._dets: OrderedDict[int, list[LabelledBox]] = OrderedDict()
        self._true_depth: OrderedDict[int, np.ndarray] = OrderedDict()
        self._pred_depth: OrderedDict[int, np.ndarray] = OrderedDict()
        self.frames: list[FrameScore] = []
        self.depth_abs_rel: list[float] = []
        self.per_class: dict[str, Counter] = {}

    def expected(self, truth: LabelledBox) -> bool:
        """Whether a detector should find ``truth`` (else it is an ignore region)."""
        height = truth.box_xyxy[3] - truth.box_xyxy[1]
        return height >= self.min_box_height_px and truth.distance_m <= self.max_distance_m

    def _push(self, store: OrderedDict, other: OrderedDict, stamp_ns: int, value):
        if stamp_ns in other:
            return other.pop(stamp_ns)
        store[stamp_ns] = value
        while len(store) > self.max_pending:
            store.popitem(last=False)
        return None

    def add_truth(self, stamp_ns: int, truths: list[LabelledBox]) -> FrameScore | None:
        """Add a frame's ground truth; returns the frame's score if its detections are in."""
        dets = self._push(self._truth, self._dets, stamp_ns, truths)
        return None if dets is None else self._score(stamp_ns, dets, truths)

    def add_detections(self, stamp_ns: int, dets: list[LabelledBox]) -> FrameScore | None:
        """Add a frame's detections; returns the frame's score if its truth is in."""
        truths = self._push(self._dets, self._truth, stamp_ns, dets)
        return None if truths is None else self._score(stamp_ns, dets, truths)

    def add_true_depth(self, stamp_ns: int, depth_m: np.ndarray) -> float | None:
        """Add a true depth map; returns the frame's depth AbsRel if its prediction is in."""
        pred = self._push(self._true_depth, self._pred_depth, stamp_ns, depth_m)
        return None if pred is None else self._score_depth(pred, depth_m)

    def add_predicted_depth(self, stamp_ns: int, depth_m: np.ndarray) -> float | None:
        """Add a predicted depth map; returns the frame's depth AbsRel if its truth is in."""
        true = self._push(self._pred_depth, self._true_depth, stamp_ns, depth_m)
        return None if true is None else self._score_depth(depth_m, true)

    def _score(self, stamp_ns: int, dets: list[LabelledBox],
               truths: list[LabelledBox]) -> FrameScore:
        result = match_frame(dets, truths, [self.expected(t) for t in truths],
                             self.iou_threshold, stamp_ns)
        self.frames.append(result)
        for name, counts in result.per_class.items():
            self.per_class.setdefault(name, Counter(tp=0, fp=0, fn=0)).update(counts)
        return result

    def _score_depth(self, pred: np.ndarray, true: np.ndarray) -> float:
        value = depth_abs_rel(pred, true, self.max_distance_m)
        if math.isfinite(value):
            self.depth_abs_rel.append(value)
        return value

    def recent_distance_error(self, frames: int = 20) -> float | None:
        """Median relative distance error over the last ``frames`` scored frames."""
        errors = [e for f in self.frames[-frames:] for e in f.distance_abs_rel]
        return float(np.median(errors)) if errors else None

    def summary(self) -> dict:
        """JSON-ready totals: counts, recall, precision, distance and depth errors."""
        tp = sum(f.true_positives for f in self.frames)
        fp = sum(f.false_positives for f in self.frames)
        fn = sum(f.false_negatives for f in self.frames)
        errors = [e for f in self.frames for e in f.distance_abs_rel]
        return {
            "frames_scored": len(self.frames),
            "iou_threshold": self.iou_threshold,
            "min_box_height_px": self.min_box_height_px,
            "max_distance_m": self.max_distance_m,
            "true_positives": tp,
            "false_positives": fp,
            "false_negatives": fn,
            "recall": _ratio(tp, tp + fn),
            "precision": _ratio(tp, tp + fp),
            "per_class": {name: {**dict(c), "recall": _ratio(c["tp"], c["tp"] + c["fn"]),
                                 "precision": _ratio(c["tp"], c["tp"] + c["fp"])}
                          for name, c in sorted(self.per_class.items())},
            "distance_pairs": len(errors),
            "distance_abs_rel_median": _percentile(errors, 50),
            "distance_abs_rel_p90": _percentile(errors, 90),
            "depth_frames_scored": len(self.depth_abs_rel),
            "depth_abs_rel_mean": (float(np.mean(self.depth_abs_rel))
                                   if self.depth_abs_rel else None),
        }
