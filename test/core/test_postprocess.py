"""Box decoding against torchvision's BoxCoder, thresholds, top-k, class filter and NMS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision.models.detection._utils import BoxCoder

from depthssd_core.postprocess import decode_boxes, postprocess_detections


def _anchors(n: int, rng: np.random.Generator) -> np.ndarray:
    xy = rng.uniform(0, 300, size=(n, 2))
    wh = rng.uniform(4, 120, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def test_decode_matches_torchvision_boxcoder_numpy_and_torch():
    rng = np.random.default_rng(0)
    anchors = _anchors(500, rng)
    codes = rng.normal(0, 2, size=(500, 4)).astype(np.float32)
    codes[0, 2:] = 80.0  # beyond torchvision's log(1000/16) clip
    want = BoxCoder(weights=(10.0, 10.0, 5.0, 5.0)).decode_single(
        torch.from_numpy(codes), torch.from_numpy(anchors)).numpy()
    got_np = decode_boxes(codes, anchors)
    got_t = decode_boxes(torch.from_numpy(codes), torch.from_numpy(anchors))
    assert isinstance(got_np, np.ndarray) and isinstance(got_t, torch.Tensor)
    np.testing.assert_allclose(got_np, want, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(got_t.numpy(), want, rtol=1e-5, atol=1e-3)
    # Closed form for a zero code: the anchor itself; for dw = 5*log(2): double width.
    z = decode_boxes(np.array([[0, 0, 5 * math.log(2), 0]], np.float32),
                     np.array([[10, 20, 30, 60]], np.float32))
    np.testing.assert_allclose(z, [[0, 20, 40, 60]], atol=1e-4)


def test_decode_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="anchors"):
        decode_boxes(np.zeros((3, 4), np.float32), np.zeros((4, 4), np.float32))


def _logits_for(probs_fg: np.ndarray) -> np.ndarray:
    """Logits whose softmax gives the requested foreground probabilities (rest background)."""
    bg = 1.0 - probs_fg.sum(axis=1, keepdims=True)
    return np.log(np.concatenate([bg, probs_fg], axis=1).clip(1e-9)).astype(np.float32)


def test_nms_thresholds_and_class_wise_suppression():
    anchors = np.array([[10, 10, 50, 50], [12, 12, 52, 52], [10, 10, 50, 50],
                        [200, 100, 260, 160], [0, 0, 5, 5]], np.float32)
    probs = np.zeros((5, 8), np.float32)
    probs[0, 0] = 0.9  # car
    probs[1, 0] = 0.8  # car, overlaps anchor 0 (IoU ~0.82): suppressed
    probs[2, 5] = 0.7  # pedestrian on the same box: kept (class-wise NMS)
    probs[3, 1] = 0.6  # truck elsewhere
    probs[4, 2] = 0.2  # bus below threshold
    dets = postprocess_detections(_logits_for(probs)[None], np.zeros((1, 5, 4), np.float32),
                                  anchors, (180, 320), score_threshold=0.3, nms_iou=0.5)
    assert dets.class_index.tolist() == [0, 5, 1]
    np.testing.assert_allclose(dets.scores, [0.9, 0.7, 0.6], atol=1e-5)
    np.testing.assert_allclose(dets.boxes_xyxy[0], anchors[0])
    # Looser IoU keeps both cars; max_detections cuts; class filter drops others.
    loose = postprocess_detections(_logits_for(probs), np.zeros((5, 4), np.float32), anchors,
                                   (180, 320), score_threshold=0.3, nms_iou=0.9)
    assert loose.class_index.tolist() == [0, 0, 5, 1]
    top2 = postprocess_detections(_logits_for(probs), np.zeros((5, 4), np.float32), anchors,
                                  (180, 320), score_threshold=0.3, max_detections=2)
    assert len(top2) == 2
    only_truck = postprocess_detections(_logits_for(probs), np.zeros((5, 4), np.float32),
                                        anchors, (180, 320), score_threshold=0.1,
                                        class_filter={1})
    assert only_truck.class_index.tolist() == [1]
    low = postprocess_detections(_logits_for(probs), np.zeros((5, 4), np.float32), anchors,
                                 (180, 320), score_threshold=0.1)
    assert 2 in low.class_index.tolist()


def test_pre_nms_top_k_and_clipping():
    rng = np.random.default_rng(1)
    anchors = _anchors(200, rng) * 0.5  # all inside the 320x180 image
    anchors[0] = [-20, -30, 40, 50]
    probs = np.zeros((200, 8), np.float32)
    probs[:, 3] = np.linspace(0.95, 0.5, 200)
    dets = postprocess_detections(_logits_for(probs), np.zeros((200, 4), np.float32), anchors,
                                  (180, 320), nms_iou=1.0, pre_nms_top_k=10, max_detections=100)
    assert len(dets) == 10
    assert dets.scores.min() >= probs[9, 3] - 1e-5
    np.testing.assert_allclose(dets.boxes_xyxy[0], [0, 0, 40, 50])
    assert (dets.boxes_xyxy[:, 2] <= 320).all() and (dets.boxes_xyxy[:, 3] <= 180).all()


@pytest.mark.parametrize("kwargs", [{"score_threshold": 1.5}, {"nms_iou": 0.0},
                                    {"pre_nms_top_k": 0}])
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError):
        postprocess_detections(np.zeros((3, 9), np.float32), np.zeros((3, 4), np.float32),
                               np.zeros((3, 4), np.float32), (10, 10), **kwargs)


def test_mismatched_outputs_raise():
    with pytest.raises(ValueError, match="same anchors"):
        postprocess_detections(np.zeros((3, 9), np.float32), np.zeros((4, 4), np.float32),
                               np.zeros((3, 4), np.float32), (10, 10))
