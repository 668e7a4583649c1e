"""The numpy box IoU: torchvision's value on proper boxes, zero for empty or inverted ones."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou as torchvision_box_iou

from depthssd_core.boxes import box_iou


def test_matches_torchvision_on_random_boxes():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 200, size=(2, 30, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(1, 80, size=(2, 30, 2))], axis=2)
    want = torchvision_box_iou(torch.from_numpy(boxes[0]), torch.from_numpy(boxes[1])).numpy()
    np.testing.assert_allclose(box_iou(boxes[0], boxes[1]), want, rtol=1e-12, atol=0)
    assert box_iou(boxes[0], boxes[1]).shape == (30, 30)


def test_degenerate_boxes_have_iou_zero():
    unit = [0.0, 0.0, 10.0, 10.0]
    inverted = [10.0, 10.0, 0.0, 0.0]  # x2 < x1: no area, not a negative one
    point = [5.0, 5.0, 5.0, 5.0]
    iou = box_iou([unit, inverted, point], [unit, inverted, point])
    np.testing.assert_array_equal(iou, [[1, 0, 0], [0, 0, 0], [0, 0, 0]])
    assert box_iou(np.zeros((0, 4)), [unit]).shape == (0, 1)
