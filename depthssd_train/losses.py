"""Training losses of the joint detection + metric depth network.

- Detection: the SSD recipe (Liu et al. 2016, as in torchvision's SSDLite). Anchors are matched
  to ground truth with torchvision's ``SSDMatcher`` (IoU >= 0.5, plus the best anchor of every
  box) or, with ``matcher: atss``, by adaptive training sample selection (Zhang et al. 2020,
  "Bridging the Gap Between Anchor-based and Anchor-free Detection"): per box, the anchors of
  the ``atss_topk`` cells nearest its centre on every level are candidates, and those whose IoU
  reaches the mean + standard deviation of the candidates' IoUs (and whose centre lies in the
  box) are positives, so a small box whose best IoU is 0.3 still gets several.
  Classification is cross-entropy over positives and the hardest negatives (3 per positive),
  localisation is smooth-L1 on ``BoxCoder(10, 10, 5, 5)`` offsets or GIoU on decoded boxes;
  both are divided by the number of positives.
- Depth: SILog (Eigen et al. 2014) on canonical depth plus a scale-invariant gradient-matching
  term that keeps the depth edges of the ground truth. The target in the canonical camera is
  ``depth_m * canonical_focal_px / focal_px`` with ``focal_px`` the focal length of the image
  actually fed to the network. ``log(1/d) - log(1/d*) = -(log d - log d*)``, so SILog on inverse
  depth and on depth are the same number; we compute it on depth.
- The prediction (a quarter of the input) is upsampled to the labels in inverse depth, as the
  runtime publishes it: inverse depth is linear along the road, so this is exact there.
- Far pixels (labelled beyond ``depth_max_m``, such as the sky at 1000 m) carry a one-sided
  term ``far_weight * relu(log(depth_max_m) - log(pred))``: without it the sky is unsupervised,
  comes out as anything (often a few metres) and bleeds into the pixels around it.
- Asymmetric labels: a frame without boxes adds no detection loss, a frame without depth no depth
  loss; a term with no labelled frame in the batch is left out (zero gradient for its head).
- Multi-task weighting: static weights normalised by their fixed sum (so a task's weight does
  not change with which labels a batch happens to carry) or learned homoscedastic uncertainty
  (Kendall et al. 2018), chosen by :class:`LossConfig`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection._utils import SSDMatcher
from torchvision.ops import box_iou, generalized_box_iou_loss

from depthssd_core.config import SUPERVISED_DEPTH_RANGE_M
from depthssd_core.graph_contract import box_coder

TASKS = ("cls", "box", "depth")


@dataclass
class LossConfig:
    """Settings of :class:`DepthSSDLoss` (the ``loss`` section of a training config)."""

    matcher: str = "iou"  # "iou" (SSD: IoU >= iou_threshold + best anchor) or "atss"
    iou_threshold: float = 0.5
    atss_topk: int = 9  # candidate cells per level and box for the ATSS matcher
    neg_pos_ratio: float = 3.0
    # Frames whose boxes match no anchor still teach background with this many negatives.
    min_negatives_per_image: int = 8
    box_loss: str = "smooth_l1"  # "smooth_l1" or "giou"
    silog_lambda: float = 0.15
    silog_scale: float = 10.0
    gradient_weight: float = 0.5
    gradient_scales: int = 3
    # Pixels outside [min, max] metres (sky is 1000 m) carry no depth supervision.
    depth_min_m: float = SUPERVISED_DEPTH_RANGE_M[0]
    depth_max_m: float = SUPERVISED_DEPTH_RANGE_M[1]
    # Weight of the "at least depth_max_m" term on pixels labelled farther (0: off).
    far_weight: float = 0.1
    # Upsampling of the quarter-resolution prediction to the labels: "inverse" (inverse depth,
    # what the runtime does) or "depth" (the previous recipe).
    depth_upsample: str = "inverse"
    weighting: str = "static"  # "static" or "uncertainty"
    # Missing tasks weigh 1.0; set a task to 0 to switch its loss off.
    weights: dict[str, float] = field(
        default_factory=lambda: {"cls": 1.0, "box": 1.0, "depth": 1.0})

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first setting that cannot work."""
        if self.matcher not in ("iou", "atss"):
            raise ValueError(f"loss.matcher must be 'iou' or 'atss', got {self.matcher!r}")
        if self.atss_topk < 1:
            raise ValueError(f"loss.atss_topk must be >= 1, got {self.atss_topk}")
        if self.box_loss not in ("smooth_l1", "giou"):
            raise ValueError(f"loss.box_loss must be 'smooth_l1' or 'giou', got {self.box_loss!r}")
        if self.weighting not in ("static", "uncertainty"):
            raise ValueError(
                f"loss.weighting must be 'static' or 'uncertainty', got {self.weighting!r}")
        unknown = set(self.weights) - set(TASKS)
        if unknown:
            raise ValueError(f"loss.weights has unknown task(s) {sorted(unknown)}; known: {TASKS}")
        if any(w < 0 or not math.isfinite(w) for w in self.weights.values()):
            raise ValueError(f"loss.weights must be finite and >= 0, got {self.weights}")
        if sum(self.weights.get(t, 1.0) for t in TASKS) <= 0:
            raise ValueError("loss.weights must not all be zero")
        if not 0.0 < self.iou_threshold <= 1.0:
            raise ValueError(f"loss.iou_threshold must be in (0, 1], got {self.iou_threshold}")
        if self.neg_pos_ratio < 0:
            raise ValueError(f"loss.neg_pos_ratio must be >= 0, got {self.neg_pos_ratio}")
        if not 0.0 <= self.silog_lambda <= 1.0:
            raise ValueError(f"loss.silog_lambda must be in [0, 1], got {self.silog_lambda}")
        if not 0.0 < self.depth_min_m < self.depth_max_m:
            raise ValueError("loss.depth_min_m must be > 0 and < loss.depth_max_m "
                             f"(got {self.depth_min_m}, {self.depth_max_m})")
        if self.far_weight < 0:
            raise ValueError(f"loss.far_weight must be >= 0, got {self.far_weight}")
        if self.depth_upsample not in ("inverse", "depth"):
            raise ValueError("loss.depth_upsample must be 'inverse' or 'depth', got "
                             f"{self.depth_upsample!r}")
        if self.gradient_scales < 1:
            raise ValueError(f"loss.gradient_scales must be >= 1, got {self.gradient_scales}")


@dataclass
class FrameTargets:
    """Labels of a batch of B frames, in the pixels of the image fed to the network.

    Attributes:
        boxes: B tensors [N_i, 4] xyxy pixels (x2/y2 exclusive edge).
        labels: B int64 tensors [N_i] of network classes 1..8 (0 is background).
        depth_m: [B, H, W] planar metric depth; NaN, inf or out-of-range pixels are ignored.
        focal_px: [B] focal length (fx) of the image fed to the network, pixels.
        has_boxes: [B] bool, False for frames without box labels (no detection loss).
        has_depth: [B] bool, False for frames without depth labels (no depth loss).
    """

    boxes: list[Tensor]
    labels: list[Tensor]
    depth_m: Tensor
    focal_px: Tensor
    has_boxes: Tensor
    has_depth: Tensor


# ------------------------------------------------------------------------------------------------
# Detection
# ------------------------------------------------------------------------------------------------

def match_anchors(anchors: Tensor, gt_boxes: Tensor, iou_threshold: float = 0.5) -> Tensor:
    """Index of the ground-truth box each anchor is matched to, or -1 for background.

    Args:
        anchors: [A, 4] xyxy pixels.
        gt_boxes: [N, 4] xyxy pixels.
        iou_threshold: IoU at or above which an anchor is positive. Every box also gets its
            best anchor whatever the IoU, so no object goes unlearned.

    Returns:
        int64 [A]; values in 0..N-1 for positives, -1 for negatives. Anchors between
        thresholds do not exist here (the SSD matcher has a single threshold).
    """
    if gt_boxes.numel() == 0:
        return torch.full((anchors.shape[0],), -1, dtype=torch.int64, device=anchors.device)
    matches = SSDMatcher(iou_threshold)(box_iou(gt_boxes, anchors))
    return matches.clamp(min=-1)


def atss_match(anchors: Tensor, gt_boxes: Tensor, level_sizes: list[int],
               anchors_per_location: int, topk: int = 9) -> Tensor:
    """ATSS assignment: index of the ground-truth box of each anchor, or -1 for background.

    Args:
        anchors: [A, 4] xyxy pixels, level by level (finest first), ``anchors_per_location``
            consecutive boxes sharing each cell centre.
        gt_boxes: [N, 4] xyxy pixels.
        level_sizes: anchors per level (sums to A).
        anchors_per_location: boxes per cell.
        topk: candidate cells per level and box (the cells whose centres are nearest the box
            centre); all their anchors are candidates.

    Returns:
        int64 [A]. A box whose candidates all fail (none inside, e.g. a 2-px box) still gets
        its best-IoU anchor, as the SSD matcher guarantees, so no object goes unlearned.
    """
    num_anchors = anchors.shape[0]
    if gt_boxes.numel() == 0:
        return torch.full((num_anchors,), -1, dtype=torch.int64, device=anchors.device)
    iou = box_iou(gt_boxes, anchors)  # [N, A]
    gt_centre = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    anchor_centre = (anchors[:, :2] + anchors[:, 2:]) / 2
    distance = torch.cdist(gt_centre, anchor_centre)  # [N, A]
    candidates = torch.zeros_like(iou, dtype=torch.bool)
    start = 0
    for size in level_sizes:
        k = min(topk * anchors_per_location, size)
        nearest = distance[:, start:start + size].topk(k, dim=1, largest=False).indices
        candidates[:, start:start + size].scatter_(1, nearest, True)
        start += size
    cand_iou = torch.where(candidates, iou, torch.zeros_like(iou))
    count = candidates.sum(dim=1, keepdim=True).clamp(min=1)
    mean = cand_iou.sum(dim=1, keepdim=True) / count
    var = (torch.where(candidates, (iou - mean) ** 2, torch.zeros_like(iou)).sum(dim=1,
                                                                                 keepdim=True)
           / (count - 1).clamp(min=1))
    threshold = mean + var.sqrt()
    inside = ((anchor_centre[None, :, 0] > gt_boxes[:, None, 0])
              & (anchor_centre[None, :, 0] < gt_boxes[:, None, 2])
              & (anchor_centre[None, :, 1] > gt_boxes[:, None, 1])
              & (anchor_centre[None, :, 1] < gt_boxes[:, None, 3]))
    positive = candidates & (iou >= threshold) & inside & (iou > 0)
    # An anchor positive for several boxes goes to the one it overlaps most.
    score = torch.where(positive, iou, torch.full_like(iou, -1.0))
    best_score, best_gt = score.max(dim=0)
    matches = torch.where(best_score >= 0, best_gt, torch.full_like(best_gt, -1))
    # Boxes left without an anchor take their best one (as SSDMatcher's forced match).
    has_anchor = torch.zeros(gt_boxes.shape[0], dtype=torch.bool, device=anchors.device)
    has_anchor[matches[matches >= 0]] = True
    for g in torch.nonzero(~has_anchor).flatten().tolist():
        matches[int(iou[g].argmax())] = g
    return matches


def hard_negative_mask(neg_loss: Tensor, num_negatives: Tensor) -> Tensor:
    """Boolean mask [B, A] picking, per row, the ``num_negatives[b]`` largest losses.

    Args:
        neg_loss: [B, A] classification loss of anchors, with positives set to ``-inf`` so
            they are never picked as negatives.
        num_negatives: [B] int64 number of negatives to keep per row.
    """
    order = neg_loss.argsort(dim=1, descending=True)
    rank = order.argsort(dim=1)
    return rank < num_negatives[:, None]


def detection_loss(cls_logits: Tensor, box_regression: Tensor, anchors: Tensor,
                   targets: FrameTargets, cfg: LossConfig,
                   level_sizes: list[int] | None = None, anchors_per_location: int = 1
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """SSD classification and box losses of a batch, both divided by the number of positives.

    Args:
        cls_logits: [B, A, C+1] (class 0 = background).
        box_regression: [B, A, 4] offsets encoded against ``anchors``.
        anchors: [A, 4] xyxy pixels.
        targets: labels; only frames with ``has_boxes`` count.
        cfg: loss settings.
        level_sizes: anchors per detection level (needed by the ATSS matcher).
        anchors_per_location: boxes per cell (ATSS matcher).

    Returns:
        (cls_loss, box_loss, num_positives). Both losses are 0-dim tensors with a graph; they
        are exactly zero (zero gradient) when no frame of the batch has boxes.
    """
    coder = box_coder()
    batch = cls_logits.shape[0]
    labelled = [b for b in range(batch) if bool(targets.has_boxes[b])]
    if not labelled:
        zero = cls_logits.sum() * 0.0 + box_regression.sum() * 0.0
        return zero, zero.clone(), torch.zeros((), device=cls_logits.device)
    idx = torch.tensor(labelled, device=cls_logits.device)
    logits = cls_logits.float().index_select(0, idx)
    regression = box_regression.float().index_select(0, idx)
    num_anchors = anchors.shape[0]

    cls_targets = torch.zeros((len(labelled), num_anchors), dtype=torch.int64,
                              device=logits.device)
    box_terms: list[Tensor] = []
    for row, b in enumerate(labelled):
        gt_boxes = targets.boxes[b].to(anchors)
        gt_labels = targets.labels[b].to(logits.device)
        if cfg.matcher == "atss":
            if level_sizes is None:
                raise ValueError("the ATSS matcher needs the anchors per level")
            matches = atss_match(anchors, gt_boxes, level_sizes, anchors_per_location,
                                 cfg.atss_topk)
        else:
            matches = match_anchors(anchors, gt_boxes, cfg.iou_threshold)
        positive = matches >= 0
        if not bool(positive.any()):
            continue
        matched = gt_boxes[matches[positive]]
        cls_targets[row, positive] = gt_labels[matches[positive]].long()
        pred = regression[row, positive]
        if cfg.box_loss == "smooth_l1":
            target_offsets = coder.encode_single(matched, anchors[positive])
            box_terms.append(F.smooth_l1_loss(pred, target_offsets, reduction="sum"))
        else:
            decoded = coder.decode_single(pred, anchors[positive])
            box_terms.append(generalized_box_iou_loss(decoded, matched, reduction="sum"))

    positive_mask = cls_targets > 0
    num_pos_per_row = positive_mask.sum(dim=1)
    num_pos = num_pos_per_row.sum()
    # Normalise by at least one so frames with no object still train the background class.
    denom = num_pos.clamp(min=1).float()

    ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), cls_targets.reshape(-1),
                         reduction="none").view_as(cls_targets).float()
    neg_loss = ce.detach().clone()
    neg_loss[positive_mask] = -math.inf
    num_neg = torch.maximum((cfg.neg_pos_ratio * num_pos_per_row).long(),
                            torch.full_like(num_pos_per_row, cfg.min_negatives_per_image))
    num_neg = torch.minimum(num_neg, (~positive_mask).sum(dim=1))
    negatives = hard_negative_mask(neg_loss, num_neg)
    cls_loss = (ce[positive_mask].sum() + ce[negatives].sum()) / denom
    box_loss = torch.stack(box_terms).sum() / denom if box_terms else regression.sum() * 0.0
    return cls_loss, box_loss, num_pos


# ------------------------------------------------------------------------------------------------
# Depth
# ------------------------------------------------------------------------------------------------

def canonical_depth_target(depth_m: Tensor, focal_px: Tensor, canonical_focal_px: float) -> Tensor:
    """Depth the network must predict in its canonical camera: ``depth_m * f_c / f``.

    Args:
        depth_m: [B, H, W] metric depth of the image fed to the network.
        focal_px: [B] focal length of that image in pixels.
        canonical_focal_px: focal length of the canonical camera.
    """
    return depth_m * (canonical_focal_px / focal_px.to(depth_m).view(-1, 1, 1))


def depth_valid_mask(depth_m: Tensor, min_m: float, max_m: float) -> Tensor:
    """Pixels whose metric depth is finite and inside [min_m, max_m]."""
    return torch.isfinite(depth_m) & (depth_m >= min_m) & (depth_m <= max_m)


def silog_loss(pred: Tensor, target: Tensor, mask: Tensor, lam: float = 0.15,
               scale: float = 10.0, eps: float = 1e-12) -> Tensor:
    """Scale-invariant log loss per image: ``scale * sqrt(Var(g) + lam * mean(g)^2)``.

    ``g = log pred - log target`` over the masked pixels of each image; ``Var`` is the
    population variance. ``lam = 0`` is fully scale invariant, ``lam = 1`` is the RMS of ``g``.

    Args:
        pred: [B, H, W] positive predicted depth.
        target: [B, H, W] target depth (anything where ``mask`` is False).
        mask: [B, H, W] bool.
        lam: weight of the absolute-scale part.
        scale: overall factor (10 as in the literature).
        eps: added under the square root (and its root subtracted after) so the gradient stays
            finite at a perfect fit while a perfect fit still scores exactly 0.

    Returns:
        [B] loss per image; 0 for an image without a valid pixel.
    """
    safe_target = torch.where(mask, target, torch.ones_like(target))
    g = torch.where(mask, torch.log(pred.clamp(min=1e-6)) - torch.log(safe_target),
                    torch.zeros_like(pred))
    count = mask.flatten(1).sum(dim=1).to(pred.dtype)
    n = count.clamp(min=1.0)
    mean = g.flatten(1).sum(dim=1) / n
    mean_sq = (g * g).flatten(1).sum(dim=1) / n
    var = (mean_sq - mean * mean).clamp(min=0.0)
    # Subtracting sqrt(eps) makes a perfect prediction exactly 0; eps keeps the gradient finite.
    loss = scale * (torch.sqrt(var + lam * mean * mean + eps) - math.sqrt(eps))
    return torch.where(count > 0, loss, torch.zeros_like(loss))


def gradient_matching_loss(pred: Tensor, target: Tensor, mask: Tensor, scales: int = 3) -> Tensor:
    """Edge-aware gradient term: L1 of the image gradients of the log-depth residual.

    The residual ``r = log pred - log target`` is flat wherever the prediction has the target's
    edges (at any global scale), so the term pulls depth discontinuities onto the true object
    outlines instead of blurring them. It is evaluated at ``scales`` strides (1, 2, 4, ...) and
    only on neighbour pairs whose two pixels are valid.

    Args:
        pred: [B, H, W] positive predicted depth.
        target: [B, H, W] target depth.
        mask: [B, H, W] bool valid pixels.
        scales: number of strides.

    Returns:
        [B] loss per image (mean over valid pairs, averaged over scales); 0 without pairs.
    """
    safe_target = torch.where(mask, target, torch.ones_like(target))
    residual = torch.where(mask, torch.log(pred.clamp(min=1e-6)) - torch.log(safe_target),
                           torch.zeros_like(pred))
    total = torch.zeros(pred.shape[0], dtype=pred.dtype, device=pred.device)
    used = torch.zeros_like(total)
    for level in range(scales):
        step = 2 ** level
        r = residual[:, ::step, ::step]
        m = mask[:, ::step, ::step]
        pairs_x = m[:, :, 1:] & m[:, :, :-1]
        pairs_y = m[:, 1:, :] & m[:, :-1, :]
        grad_x = (r[:, :, 1:] - r[:, :, :-1]).abs() * pairs_x
        grad_y = (r[:, 1:, :] - r[:, :-1, :]).abs() * pairs_y
        count = pairs_x.flatten(1).sum(1) + pairs_y.flatten(1).sum(1)
        value = (grad_x.flatten(1).sum(1) + grad_y.flatten(1).sum(1)) / count.clamp(min=1)
        total = total + value
        used = used + (count > 0).to(total.dtype)
    return total / used.clamp(min=1.0)


def depth_loss(depth_c: Tensor, targets: FrameTargets, canonical_focal_px: float,
               cfg: LossConfig) -> tuple[Tensor, Tensor, Tensor]:
    """SILog and gradient loss of the canonical depth prediction, over frames with depth.

    The prediction ([B, 1, h, w], usually a quarter of the input) is upsampled bilinearly in
    inverse depth to the label resolution (``cfg.depth_upsample``), which is what the runtime
    does before publishing depth.

    Returns:
        (silog, gradient, num_frames): means over frames with depth labels and at least one
        valid pixel; exactly zero with zero gradient when there is none.
    """
    depth_m = targets.depth_m.to(depth_c.device).float()
    if depth_m.dim() == 4:
        depth_m = depth_m[:, 0]
    mask = depth_valid_mask(depth_m, cfg.depth_min_m, cfg.depth_max_m)
    mask &= targets.has_depth.to(mask.device).view(-1, 1, 1)
    frames = mask.flatten(1).any(dim=1)
    if not bool(frames.any()):
        zero = depth_c.sum() * 0.0
        return zero, zero.clone(), torch.zeros((), device=depth_c.device)
    pred = upsample_prediction(depth_c, depth_m.shape[-2:], cfg.depth_upsample)
    target_c = canonical_depth_target(depth_m, targets.focal_px.to(depth_m.device),
                                      canonical_focal_px)
    silog = silog_loss(pred, target_c, mask, cfg.silog_lambda, cfg.silog_scale)
    grad = gradient_matching_loss(pred, target_c, mask, cfg.gradient_scales)
    num = frames.sum()
    weight = frames.to(silog.dtype)
    return (silog * weight).sum() / num, (grad * weight).sum() / num, num


def upsample_prediction(depth_c: Tensor, size: tuple[int, int] | torch.Size,
                        mode: str = "inverse") -> Tensor:
    """[B, 1, h, w] canonical depth -> [B, H, W], bilinear in inverse depth (or in depth)."""
    pred = depth_c.float()
    if pred.shape[-2:] != tuple(size):
        if mode == "inverse":
            pred = 1.0 / F.interpolate(1.0 / pred, size=tuple(size), mode="bilinear",
                                       align_corners=False)
        else:
            pred = F.interpolate(pred, size=tuple(size), mode="bilinear", align_corners=False)
    return pred[:, 0]


def far_depth_loss(depth_c: Tensor, targets: FrameTargets, canonical_focal_px: float,
                   cfg: LossConfig) -> Tensor:
    """Mean over frames with far pixels of ``relu(log(depth_max_m) - log(pred))`` on them.

    Far pixels are finite labels beyond ``depth_max_m`` (the synthetic sky is 1000 m); the
    prediction only has to reach ``depth_max_m`` there, no particular value. Zero (with a
    graph) when no frame has far pixels or ``far_weight`` is 0.
    """
    depth_m = targets.depth_m.to(depth_c.device).float()
    if depth_m.dim() == 4:
        depth_m = depth_m[:, 0]
    far = torch.isfinite(depth_m) & (depth_m > cfg.depth_max_m)
    far &= targets.has_depth.to(far.device).view(-1, 1, 1)
    frames = far.flatten(1).any(dim=1)
    if cfg.far_weight == 0 or not bool(frames.any()):
        return depth_c.sum() * 0.0
    pred = upsample_prediction(depth_c, depth_m.shape[-2:], cfg.depth_upsample)
    limit_c = canonical_depth_target(torch.full_like(depth_m, cfg.depth_max_m),
                                     targets.focal_px.to(depth_m.device), canonical_focal_px)
    short = F.relu(torch.log(limit_c) - torch.log(pred.clamp(min=1e-6)))
    per_frame = (short * far).flatten(1).sum(1) / far.flatten(1).sum(1).clamp(min=1)
    return per_frame[frames].mean()


# ------------------------------------------------------------------------------------------------
# Combination
# ------------------------------------------------------------------------------------------------

class DepthSSDLoss(nn.Module):
    """All training losses of DepthSSD and their weighting.

    With ``weighting="static"`` the total is ``sum_k w_k L_k / sum_k w_k``: the sum runs over the
    tasks that have labels in the batch, the normaliser over all tasks, so a task's weight is
    the same in every batch whatever labels the batch carries.
    With ``"uncertainty"`` each task k has a learned ``s_k = log sigma_k^2`` and adds
    ``w_k * (exp(-s_k) L_k + s_k)``; ``s_k`` of a task without labels in the batch gets no
    gradient, otherwise it would run to -inf.
    """

    def __init__(self, cfg: LossConfig, canonical_focal_px: float) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.canonical_focal_px = float(canonical_focal_px)
        if cfg.weighting == "uncertainty":
            self.log_vars = nn.Parameter(torch.zeros(len(TASKS)))
        else:
            self.register_parameter("log_vars", None)

    def forward(self, cls_logits: Tensor, box_regression: Tensor, depth_c: Tensor,
                anchors: Tensor, targets: FrameTargets, level_sizes: list[int] | None = None,
                anchors_per_location: int = 1) -> tuple[Tensor, dict[str, Tensor]]:
        """Total loss and its detached terms for one batch of frames.

        ``level_sizes`` and ``anchors_per_location`` describe the anchors for the ATSS matcher.

        Returns:
            (total, terms) where terms has ``cls``, ``box``, ``depth`` (= silog + gradient
            weight * gradient + far weight * far), ``silog``, ``depth_grad``, ``depth_far``,
            ``num_pos`` and ``total``.
        """
        cls_l, box_l, num_pos = detection_loss(cls_logits, box_regression, anchors, targets,
                                               self.cfg, level_sizes, anchors_per_location)
        silog, grad, num_depth = depth_loss(depth_c, targets, self.canonical_focal_px, self.cfg)
        far = far_depth_loss(depth_c, targets, self.canonical_focal_px, self.cfg)
        depth_l = silog + self.cfg.gradient_weight * grad + self.cfg.far_weight * far
        values = {"cls": cls_l, "box": box_l, "depth": depth_l}
        present = {"cls": bool(targets.has_boxes.any()), "box": bool(targets.has_boxes.any()),
                   "depth": bool(num_depth > 0)}
        total = (cls_l + box_l + depth_l) * 0.0  # keeps every head in the graph
        if self.log_vars is None:
            # A fixed normaliser: dividing by the weights of the tasks present would raise the
            # detection weight from 1/3 to 1/2 in a batch without depth labels.
            norm = sum(self.cfg.weights.get(t, 1.0) for t in TASKS)
            for t in TASKS:
                if present[t]:
                    total = total + self.cfg.weights.get(t, 1.0) / norm * values[t]
        else:
            for i, t in enumerate(TASKS):
                if present[t]:
                    s = self.log_vars[i]
                    total = total + self.cfg.weights.get(t, 1.0) * (torch.exp(-s) * values[t] + s)
        terms = {k: v.detach() for k, v in values.items()}
        terms.update(silog=silog.detach(), depth_grad=grad.detach(), depth_far=far.detach(),
                     num_pos=num_pos.detach().float(), total=total.detach())
        return total, terms
