"""Detection post-processing shared by every backend: box decoding, thresholds and NMS.

The exported graph stops at raw ``cls_logits`` and ``box_regression`` (see ARCHITECTURE.md);
everything here runs after it, identically for PyTorch, ONNX Runtime and TensorRT. Boxes are
decoded with the graph contract's coder (``depthssd_core.graph_contract.box_coder``: torchvision's
``BoxCoder``, the same one training encodes its targets with), clipped and filtered with
torchvision's ``clip_boxes_to_image`` / ``remove_small_boxes``, and suppressed with its
class-wise ``batched_nms``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.ops import batched_nms, clip_boxes_to_image, remove_small_boxes

from depthssd_core.graph_contract import box_coder

#: The shipped model's operating point: its best-F1 score cut on a validation split
#: (models/MODEL_CARD.md). The runtime's and the node's default (config/depthssd.yaml).
DEFAULT_SCORE_THRESHOLD = 0.6
#: The decoder of ``box_regression`` (torchvision's BoxCoder with the contract's weights).
_BOX_CODER = box_coder()
# Boxes clipped narrower or lower than this (anchors far outside the image) carry nothing.
_MIN_BOX_SIZE_PX = 1e-3


def _as_numpy(values: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=np.float32)


@dataclass
class Detections:
    """Detections of one image after NMS, sorted by descending score.

    Attributes:
        boxes_xyxy: float32 (N, 4) pixels of the network input, clipped to the image.
        scores: float32 (N,) class probabilities.
        class_index: int64 (N,) indices into ``CLASSES`` (0..7; background removed).
    """

    boxes_xyxy: np.ndarray
    scores: np.ndarray
    class_index: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def postprocess_detections(
    cls_logits: np.ndarray | torch.Tensor,
    box_regression: np.ndarray | torch.Tensor,
    anchors_xyxy: np.ndarray | torch.Tensor,
    image_size_hw: tuple[int, int],
    score_threshold: float = DEFAULT_SCORE_THRESHOLD,
    nms_iou: float = 0.5,
    max_detections: int = 100,
    pre_nms_top_k: int = 1000,
    class_filter: set[int] | frozenset[int] | None = None,
) -> Detections:
    """Turn the raw head outputs of one image into final detections.

    Softmax over the classes (index 0 = background, dropped), keep (anchor, class) pairs above
    ``score_threshold`` and in ``class_filter``, keep the ``pre_nms_top_k`` best, decode those
    boxes only, clip to the image, class-wise NMS, keep ``max_detections``.

    Args:
        cls_logits: (A, C + 1) or (1, A, C + 1) logits.
        box_regression: (A, 4) or (1, A, 4) box codes.
        anchors_xyxy: (A, 4) anchors in input pixels.
        image_size_hw: (height, width) of the network input, for clipping.
        score_threshold: minimum class probability, in [0, 1].
        nms_iou: IoU above which a lower-scored box of the same class is suppressed.
        max_detections: most detections returned.
        pre_nms_top_k: most candidates entering NMS.
        class_filter: 0-based class indices to keep; None keeps all.

    Returns:
        :class:`Detections` in input pixels.
    """
    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
    if not 0.0 < nms_iou <= 1.0:
        raise ValueError(f"nms_iou must be in (0, 1], got {nms_iou}")
    if max_detections < 0 or pre_nms_top_k <= 0:
        raise ValueError(
            f"max_detections must be >= 0 and pre_nms_top_k > 0, got {max_detections}, "
            f"{pre_nms_top_k}"
        )
    logits = _as_numpy(cls_logits)
    codes = _as_numpy(box_regression)
    if logits.ndim == 3:
        if logits.shape[0] != 1:
            raise ValueError(f"postprocess takes one image, got batch {logits.shape[0]}")
        logits = logits[0]
    if codes.ndim == 3:
        codes = codes[0]
    if logits.ndim != 2 or codes.shape != (logits.shape[0], 4):
        raise ValueError(
            f"cls_logits {tuple(logits.shape)} and box_regression {tuple(codes.shape)} "
            "do not describe the same anchors"
        )
    anchors = _as_numpy(anchors_xyxy)
    if anchors.shape != (logits.shape[0], 4):
        raise ValueError(f"anchors {tuple(anchors.shape)} do not match the outputs' "
                         f"{logits.shape[0]} anchors")
    flat, keep = _top_candidates(logits, score_threshold, pre_nms_top_k, class_filter)
    num_anchors = logits.shape[0]
    anchor_idx, labels, cand_scores = keep % num_anchors, keep // num_anchors, flat[keep]
    # Gathers stay in numpy: torch's indexing kernels wake its intra-op thread pool, which on
    # a busy 2-core machine cost up to 12 ms for 1000 rows (0.03 ms in numpy). torch sees
    # only the candidates' tensors, for the box coder, the box ops and NMS.
    boxes = _BOX_CODER.decode_single(torch.from_numpy(codes[anchor_idx]),
                                     torch.from_numpy(anchors[anchor_idx]))
    boxes = clip_boxes_to_image(boxes, tuple(image_size_hw))
    valid = remove_small_boxes(boxes, _MIN_BOX_SIZE_PX).numpy()
    boxes_np = boxes.numpy()[valid]
    cand_scores, labels = cand_scores[valid], labels[valid]
    kept = batched_nms(torch.from_numpy(boxes_np), torch.from_numpy(cand_scores),
                       torch.from_numpy(labels), nms_iou)[:max_detections].numpy()
    return Detections(
        boxes_xyxy=boxes_np[kept].astype(np.float32),
        scores=cand_scores[kept].astype(np.float32),
        class_index=labels[kept].astype(np.int64),
    )


def _top_candidates(logits: np.ndarray, score_threshold: float, pre_nms_top_k: int,
                    class_filter: set[int] | frozenset[int] | None,
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities, class-major and flattened (C * A,), and the flat indices of the
    (anchor, class) pairs above ``score_threshold`` (at most the ``pre_nms_top_k`` best).

    Runs in numpy, class-major (C + 1, A): reductions over a contiguous 9-long axis are ~10x
    slower than element-wise passes over 9 rows of ~30k, and torch's intra-op thread pool
    costs more than it saves here. The softmax works in place in one (C + 1, A) buffer.
    """
    num_classes = logits.shape[1] - 1
    by_class = np.ascontiguousarray(logits.T)
    np.subtract(by_class, by_class.max(axis=0), out=by_class)
    np.exp(by_class, out=by_class)
    scores = by_class[1:]
    np.divide(scores, by_class.sum(axis=0), out=scores)
    wanted = {int(i) for i in class_filter if 0 <= int(i) < num_classes} \
        if class_filter is not None else None
    if wanted is not None and len(wanted) < num_classes:
        # A filter naming every class changes nothing: skip its pass over all scores.
        scores[[c for c in range(num_classes) if c not in wanted]] *= 0.0
    flat = scores.reshape(-1)
    above = flat > score_threshold
    if np.count_nonzero(above) > pre_nms_top_k:
        keep = np.argpartition(flat, flat.size - pre_nms_top_k)[flat.size - pre_nms_top_k:]
    else:
        keep = np.flatnonzero(above)
    return flat, keep
