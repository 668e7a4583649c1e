"""Losses of depthssd_train.losses against hand-computed values on small tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from depthssd_core.graph_contract import box_coder
from depthssd_train.losses import (
    DepthSSDLoss,
    FrameTargets,
    LossConfig,
    atss_match,
    canonical_depth_target,
    depth_loss,
    detection_loss,
    far_depth_loss,
    gradient_matching_loss,
    hard_negative_mask,
    match_anchors,
    silog_loss,
    upsample_prediction,
)

# Four anchors: two 10x10 squares, one far away, one overlapping the first square by a third.
ANCHORS = torch.tensor([[0.0, 0.0, 10.0, 10.0],
                        [20.0, 20.0, 30.0, 30.0],
                        [50.0, 50.0, 60.0, 60.0],
                        [5.0, 0.0, 15.0, 10.0]])


def _targets(boxes, labels, depth=None, focal=None, has_boxes=None, has_depth=None):
    b = len(boxes)
    depth = torch.full((b, 4, 4), 10.0) if depth is None else depth
    return FrameTargets(
        boxes=[torch.as_tensor(x, dtype=torch.float32).reshape(-1, 4) for x in boxes],
        labels=[torch.as_tensor(x, dtype=torch.int64) for x in labels],
        depth_m=depth,
        focal_px=torch.full((b,), 1000.0) if focal is None else focal,
        has_boxes=torch.ones(b, dtype=torch.bool) if has_boxes is None else has_boxes,
        has_depth=torch.ones(b, dtype=torch.bool) if has_depth is None else has_depth,
    )


def test_atss_gives_a_small_box_several_positives_where_iou_05_gives_one():
    """A 10x20 px pedestrian among anchors of 14x14, 8x24 and 24x8 px on an 8-px grid: no anchor
    reaches IoU 0.5, so the SSD matcher forces just its best one; ATSS keeps the candidates at or
    above mean + std of their IoUs (worked out by hand below) whose centre lies in the box."""
    centres = [(x + 4.0, y + 4.0) for y in range(0, 48, 8) for x in range(0, 48, 8)]
    shapes = [(14.0, 14.0), (8.0, 24.0), (24.0, 8.0)]
    anchors = torch.tensor([[cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
                            for cx, cy in centres for w, h in shapes])
    gt = torch.tensor([[11.0, 6.0, 21.0, 26.0]])  # 10 x 20, centre (16, 16)
    assert int((match_anchors(anchors, gt, 0.5) >= 0).sum()) == 1
    matches = atss_match(anchors, gt, [anchors.shape[0]], len(shapes), topk=4)
    # The 4 nearest cells are centred at (12 or 20, 12 or 20), inside the box. At each, the
    # 14x14 anchor overlaps it by 8 x 13 = 104 px^2 (IoU 104/292 = 0.356), the 8x24 one by
    # 5 x 18 = 90 (90/302 = 0.298), the 24x8 one by 10 x 8 = 80 (80/312 = 0.256).
    ious = torch.tensor([104 / 292, 90 / 302, 80 / 312] * 4)
    threshold = float(ious.mean() + ious.std())  # 0.3035 + 0.0428 = 0.346
    assert 90 / 302 < threshold <= 104 / 292
    cells = {7, 8, 13, 14}  # (12, 12), (20, 12), (12, 20), (20, 20)
    assert torch.nonzero(matches >= 0).flatten().tolist() == sorted(3 * c for c in cells)
    # Two boxes each take their own anchors; none goes without one.
    gt2 = torch.tensor([[11.0, 6.0, 21.0, 26.0], [0.0, 0.0, 14.0, 14.0]])
    m2 = atss_match(anchors, gt2, [anchors.shape[0]], len(shapes), topk=4)
    assert set(m2[m2 >= 0].tolist()) == {0, 1}
    assert int(m2[0]) == 1  # the 14x14 anchor at (4, 4): IoU 100/296 with box 1
    assert atss_match(anchors, torch.zeros((0, 4)), [anchors.shape[0]], 3).eq(-1).all()


def test_atss_per_level_candidates_and_iou_threshold():
    """Two levels: per level the topk nearest cells are candidates, positives are the
    candidates at or above mean + std of all candidates' IoUs."""
    level0 = torch.tensor([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0],
                           [20.0, 0.0, 30.0, 10.0]])
    level1 = torch.tensor([[0.0, 0.0, 20.0, 20.0], [20.0, 0.0, 40.0, 20.0]])
    anchors = torch.cat([level0, level1])
    gt = torch.tensor([[2.0, 0.0, 12.0, 10.0]])  # centre (7, 5)
    m = atss_match(anchors, gt, [3, 2], 1, topk=2)
    # Candidates: level 0 anchors 0 and 1 (IoU 80/120 and 20/180), both level-1 anchors (IoU
    # 100/400 and 0); only anchor 0 reaches mean + std (0.257 + 0.292) with its centre inside.
    ious = torch.tensor([80 / 120, 20 / 180, 100 / 400, 0.0])
    threshold = float(ious.mean() + ious.std())
    assert 80 / 120 >= threshold > 100 / 400
    assert m.tolist() == [0, -1, -1, -1, -1]


def test_matching_threshold_and_forced_best_anchor():
    # Box 0 equals anchor 0 (IoU 1); box 1 overlaps anchor 1 with IoU 25/175 < 0.5 but anchor 1
    # is its best anchor, so it is forced positive.
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [25.0, 25.0, 35.0, 35.0]])
    matches = match_anchors(ANCHORS, gt, 0.5)
    assert matches.tolist() == [0, 1, -1, -1]  # anchor 3 has IoU 1/3 with box 0: negative
    assert match_anchors(ANCHORS, torch.zeros((0, 4))).tolist() == [-1, -1, -1, -1]


def test_hard_negative_mask_picks_largest():
    loss = torch.tensor([[0.1, 5.0, -math.inf, 3.0, 0.2], [1.0, 2.0, 3.0, 4.0, 5.0]])
    mask = hard_negative_mask(loss, torch.tensor([2, 1]))
    assert mask.tolist() == [[False, True, False, True, False],
                             [False, False, False, False, True]]


def test_classification_hard_negatives_three_to_one():
    # 1 image, 12 anchors: anchor 0 is the only positive (box equals it); 11 negatives have
    # distinct background margins so the 3 hardest are known: anchors 11, 10, 9.
    anchors = torch.stack([torch.tensor([i * 20.0, 0.0, i * 20.0 + 10, 10.0]) for i in range(12)])
    logits = torch.zeros(1, 12, 9)
    logits[0, :, 0] = torch.arange(12, 0, -1).float()  # background logit falls with index
    logits[0, 0, 3] = 2.0
    box = torch.zeros(1, 12, 4)
    cfg = LossConfig(min_negatives_per_image=0)
    t = _targets([[[0.0, 0.0, 10.0, 10.0]]], [[3]])
    cls, box_l, num_pos = detection_loss(logits, box, anchors, t, cfg)
    ce = F.cross_entropy(logits[0], torch.tensor([3] + [0] * 11), reduction="none")
    expected = (ce[0] + ce[9] + ce[10] + ce[11]) / 1.0
    assert num_pos.item() == 1
    assert cls.item() == pytest.approx(expected.item(), rel=1e-6)
    assert box_l.item() == pytest.approx(0.0, abs=1e-6)  # zero offsets encode the anchor itself
    # A floor on negatives replaces the 3:1 count when it is larger.
    cls8, _, _ = detection_loss(logits, box, anchors, t, LossConfig(min_negatives_per_image=5))
    expected8 = ce[0] + ce[7:12].sum()
    assert cls8.item() == pytest.approx(expected8.item(), rel=1e-6)


def test_smooth_l1_box_loss_value_and_giou_zero_at_truth():
    gt = torch.tensor([[1.0, 2.0, 11.0, 9.0]])
    coder = box_coder()
    enc = coder.encode_single(gt, ANCHORS[:1])
    box = torch.zeros(1, 4, 4)
    box[0, 0] = enc[0]
    box[0, 0, 2] += 0.5  # smooth-L1 of 0.5 is 0.5 * 0.5^2 = 0.125
    t = _targets([gt], [[1]])
    _, box_l, n = detection_loss(torch.zeros(1, 4, 9), box, ANCHORS, t, LossConfig())
    assert n.item() == 1
    assert box_l.item() == pytest.approx(0.125, rel=1e-5)
    box[0, 0, 2] -= 0.5
    _, giou, _ = detection_loss(torch.zeros(1, 4, 9), box, ANCHORS, t,
                                LossConfig(box_loss="giou"))
    assert giou.item() == pytest.approx(0.0, abs=1e-5)


def test_silog_closed_forms():
    target = torch.tensor([[[1.0, 1.0]]])
    mask = torch.ones_like(target, dtype=torch.bool)
    assert silog_loss(target, target, mask).item() == pytest.approx(0.0, abs=1e-6)
    # Uniform scale s: Var(g) = 0, mean(g) = log s -> 10 sqrt(0.15) |log s| (not invariant).
    assert silog_loss(3.0 * target, target, mask).item() == pytest.approx(
        10 * math.sqrt(0.15) * math.log(3.0), rel=1e-5)
    # g = [0, ln 2]: Var = mean^2 = (ln2 / 2)^2 -> 10 (ln2 / 2) sqrt(1.15).
    pred = torch.tensor([[[1.0, 2.0]]])
    assert silog_loss(pred, target, mask).item() == pytest.approx(
        10 * math.log(2) / 2 * math.sqrt(1.15), rel=1e-5)
    # lambda = 0 is fully scale invariant.
    assert silog_loss(7.0 * target, target, mask, lam=0.0).item() == pytest.approx(0, abs=1e-6)


def test_silog_ignores_masked_pixels():
    target = torch.tensor([[[1.0, 1.0, float("nan"), -5.0]]])
    pred = torch.tensor([[[1.0, 2.0, 100.0, 0.001]]])
    mask = torch.tensor([[[True, True, False, False]]])
    value = silog_loss(pred, target, mask)
    assert value.item() == pytest.approx(10 * math.log(2) / 2 * math.sqrt(1.15), rel=1e-5)
    pred.requires_grad_(True)
    silog_loss(pred, target, mask).sum().backward()
    assert pred.grad[0, 0, 2:].abs().sum().item() == 0.0
    assert torch.isfinite(pred.grad).all()


def test_gradient_matching_step_and_scale_invariance():
    target = torch.ones(1, 2, 4)
    mask = torch.ones_like(target, dtype=torch.bool)
    assert gradient_matching_loss(5 * target, target, mask, 2).item() == pytest.approx(0, abs=1e-7)
    pred = torch.tensor([[[1.0, 1.0, math.e, math.e]] * 2])
    # log residual rows [0, 0, 1, 1]: one unit jump in each row, 6 x-pairs + 4 y-pairs.
    assert gradient_matching_loss(pred, target, mask, 1).item() == pytest.approx(0.2, rel=1e-6)
    mask[:, :, 2] = False  # removes both pairs crossing the jump
    assert gradient_matching_loss(pred, target, mask, 1).item() == pytest.approx(0.0, abs=1e-7)


def test_canonical_target_and_depth_loss_masking():
    depth = torch.full((1, 4, 4), 10.0)
    focal = torch.tensor([500.0])
    assert canonical_depth_target(depth, focal, 1000.0)[0, 0, 0].item() == pytest.approx(20.0)
    depth[0, 0, 0] = float("nan")
    depth[0, 0, 1] = 1000.0  # sky, above depth_max_m
    depth[0, 0, 2] = 0.1  # below depth_min_m
    t = _targets([torch.zeros(0, 4)], [[]], depth=depth, focal=focal)
    pred = torch.full((1, 1, 4, 4), 20.0, requires_grad=True)  # exact canonical depth
    silog, grad, n = depth_loss(pred, t, 1000.0, LossConfig())
    assert n.item() == 1
    assert silog.item() == pytest.approx(0.0, abs=1e-6)
    assert grad.item() == pytest.approx(0.0, abs=1e-6)
    # A quarter-resolution prediction is upsampled to the label grid: a constant stays exact.
    small = torch.full((1, 1, 2, 2), 40.0)
    silog2, _, _ = depth_loss(small, t, 1000.0, LossConfig())
    assert silog2.item() == pytest.approx(10 * math.sqrt(0.15) * math.log(2.0), rel=1e-5)


def test_asymmetric_labels_zero_gradient_for_missing_head():
    torch.manual_seed(0)
    loss_fn = DepthSSDLoss(LossConfig(), canonical_focal_px=1000.0)
    cls = torch.randn(2, 4, 9, requires_grad=True)
    box = torch.randn(2, 4, 4, requires_grad=True)
    depth = (torch.rand(2, 1, 4, 4) * 10 + 1).requires_grad_(True)
    # Frame 0 has only boxes, frame 1 only depth.
    t = _targets([[[0.0, 0.0, 10.0, 10.0]], [[20.0, 20.0, 30.0, 30.0]]], [[1], [2]],
                 has_boxes=torch.tensor([True, False]), has_depth=torch.tensor([False, True]))
    total, terms = loss_fn(cls, box, depth, ANCHORS, t)
    total.backward()
    assert cls.grad[1].abs().sum().item() == 0.0 and box.grad[1].abs().sum().item() == 0.0
    assert depth.grad[0].abs().sum().item() == 0.0
    assert cls.grad[0].abs().sum().item() > 0 and depth.grad[1].abs().sum().item() > 0
    # A batch with no depth label at all: depth head gets exactly zero gradient and the
    # detection terms keep the weight they have in every batch (1/3 each, not 1/2).
    for x in (cls, box, depth):
        x.grad = None
    t.has_depth = torch.tensor([False, False])
    total, terms = loss_fn(cls, box, depth, ANCHORS, t)
    total.backward()
    assert depth.grad is not None and depth.grad.abs().sum().item() == 0.0
    assert total.item() == pytest.approx((terms["cls"] + terms["box"]).item() / 3, rel=1e-6)


def test_static_weights_are_normalised():
    loss_fn = DepthSSDLoss(LossConfig(weights={"cls": 1.0, "box": 1.0, "depth": 2.0}), 1000.0)
    cls, box = torch.randn(1, 4, 9), torch.randn(1, 4, 4)
    depth = torch.rand(1, 1, 4, 4) + 5
    t = _targets([[[0.0, 0.0, 10.0, 10.0]]], [[1]])
    total, terms = loss_fn(cls, box, depth, ANCHORS, t)
    expected = (terms["cls"] + terms["box"] + 2 * terms["depth"]) / 4
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)


def test_static_weights_do_not_swing_with_the_labels_a_batch_carries():
    """The same detection prediction weighs the same in a batch with depth labels and without."""
    loss_fn = DepthSSDLoss(LossConfig(weights={"cls": 1.0, "box": 2.0, "depth": 1.0}), 1000.0)
    torch.manual_seed(1)
    cls, box = torch.randn(1, 4, 9, requires_grad=True), torch.randn(1, 4, 4)
    depth = torch.rand(1, 1, 4, 4) + 5
    grads = []
    for has_depth in (True, False):
        t = _targets([[[0.0, 0.0, 10.0, 10.0]]], [[1]], has_depth=torch.tensor([has_depth]))
        total, _ = loss_fn(cls, box, depth, ANCHORS, t)
        (g,) = torch.autograd.grad(total, cls)
        grads.append(g)
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


def test_uncertainty_weighting_gradient():
    loss_fn = DepthSSDLoss(LossConfig(weighting="uncertainty"), 1000.0)
    cls, box = torch.randn(1, 4, 9), torch.randn(1, 4, 4)
    depth = torch.rand(1, 1, 4, 4) + 5
    t = _targets([[[0.0, 0.0, 10.0, 10.0]]], [[1]])
    total, terms = loss_fn(cls, box, depth, ANCHORS, t)
    # With s = 0: total = sum L_k, and d total / d s_k = 1 - L_k.
    assert total.item() == pytest.approx(
        (terms["cls"] + terms["box"] + terms["depth"]).item(), rel=1e-6)
    total.backward()
    expected = torch.stack([1 - terms["cls"], 1 - terms["box"], 1 - terms["depth"]])
    assert torch.allclose(loss_fn.log_vars.grad, expected, rtol=1e-5)


@pytest.mark.parametrize("kwargs, word", [
    ({"box_loss": "l2"}, "box_loss"), ({"weighting": "magic"}, "weighting"),
    ({"weights": {"cls": 1.0, "dpth": 1.0}}, "dpth"), ({"depth_min_m": 0.0}, "depth_min_m"),
])
def test_bad_loss_config_names_the_key(kwargs, word):
    with pytest.raises(ValueError, match=word):
        LossConfig(**kwargs).validate()


def test_inverse_upsampling_is_exact_on_a_road_and_the_sky_is_taught_far():
    """A level road has inverse depth linear in the row: upsampling a 4x coarser prediction in
    inverse depth reproduces it exactly, in metres it does not. Pixels labelled beyond
    depth_max_m (the sky) cost ``relu(log(max) - log(pred))`` and nothing once far enough."""
    rows = torch.arange(16, dtype=torch.float64) + 0.5
    inverse = (rows + 2.0) / (1.6 * 100.0)  # (v - cy) / (h * f) with the horizon above row 0
    fine = (1.0 / inverse).view(1, 1, 16, 1).expand(1, 1, 16, 8).float()
    coarse_rows = torch.arange(4, dtype=torch.float64) * 4 + 2.0
    coarse = (1.6 * 100.0 / (coarse_rows + 2.0)).view(1, 1, 4, 1).expand(1, 1, 4, 2).float()
    exact = upsample_prediction(coarse, (16, 8), "inverse")
    interior = slice(2, 14)  # half a coarse cell from the border the interpolation clamps
    torch.testing.assert_close(exact[0, interior], fine[0, 0, interior], rtol=1e-5, atol=0)
    metres = upsample_prediction(coarse, (16, 8), "depth")
    assert float((metres[0, interior] / fine[0, 0, interior] - 1).abs().max()) > 0.02
    cfg = LossConfig(depth_max_m=100.0)
    depth = torch.full((1, 4, 4), 10.0)
    depth[0, :2] = 1000.0  # sky in the two top rows
    t = _targets([[]], [[]], depth=depth, focal=torch.tensor([1000.0]))
    near_sky = torch.full((1, 1, 4, 4), 10.0, requires_grad=True)
    far = far_depth_loss(near_sky, t, 1000.0, cfg)
    assert far.item() == pytest.approx(math.log(100.0 / 10.0), rel=1e-5)
    far.backward()
    assert near_sky.grad[0, 0, :2].abs().sum() > 0 and near_sky.grad[0, 0, 2:].abs().sum() == 0
    assert far_depth_loss(torch.full((1, 1, 4, 4), 150.0), t, 1000.0, cfg).item() == 0.0
    assert far_depth_loss(near_sky, t, 1000.0, LossConfig(far_weight=0.0)).item() == 0.0
