"""Post-processing: box decoding against the SSD equations, thresholds, top-k, class filter,
clipping and NMS."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from depthssd_core.postprocess import postprocess_detections


def _anchors(n: int, rng: np.random.Generator) -> np.ndarray:
    xy = rng.uniform(0, 300, size=(n, 2))
    wh = rng.uniform(4, 120, size=(n, 2))
    return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)


def _reference_decode(codes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """The SSD decoding equations, written out: centre offsets scaled by 1/10 of the anchor
    size, log-size offsets by 1/5 and clipped at log(1000 / 16) (depthssd's own decoder before
    torchvision's BoxCoder replaced it)."""
    widths, heights = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    ctr_x, ctr_y = anchors[:, 0] + 0.5 * widths, anchors[:, 1] + 0.5 * heights
    clip = math.log(1000.0 / 16)
    dw = torch.clamp(codes[:, 2] / 5.0, max=clip)
    dh = torch.clamp(codes[:, 3] / 5.0, max=clip)
    cx, cy = codes[:, 0] / 10.0 * widths + ctr_x, codes[:, 1] / 10.0 * heights + ctr_y
    half_w, half_h = 0.5 * torch.exp(dw) * widths, 0.5 * torch.exp(dh) * heights
    return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1)


def test_boxes_equal_the_reference_decoding_clip_and_filter_bit_for_bit():
    """torchvision's BoxCoder, clip_boxes_to_image and remove_small_boxes give exactly the
    boxes of the decoding equations with a clamp to the image and a 1e-3 px size cut."""
    rng = np.random.default_rng(0)
    n = 400
    anchors = _anchors(n, rng) - 40  # some reach outside the 320x180 image
    codes = rng.normal(0, 2, size=(n, 4)).astype(np.float32)
    codes[0, 2:] = 80.0  # beyond the log-size clip
    codes[1] = [-400.0, 0.0, 0.0, 0.0]  # decodes left of the image: clipped to nothing
    probs = np.zeros((n, 8), np.float32)
    probs[np.arange(n), np.arange(n) % 8] = np.linspace(0.9, 0.35, n)  # distinct scores
    dets = postprocess_detections(_logits_for(probs), codes, anchors, (180, 320),
                                  score_threshold=0.3, nms_iou=1.0, max_detections=n,
                                  pre_nms_top_k=n)
    boxes = _reference_decode(torch.from_numpy(codes), torch.from_numpy(anchors))
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0.0, 320.0)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0.0, 180.0)
    keep = ((boxes[:, 2] - boxes[:, 0] > 1e-3) & (boxes[:, 3] - boxes[:, 1] > 1e-3)).numpy()
    assert not keep[1] and keep.sum() > n // 2
    order = np.flatnonzero(keep)  # scores fall with the anchor index
    np.testing.assert_array_equal(dets.boxes_xyxy, boxes.numpy()[order])
    np.testing.assert_array_equal(dets.class_index, order % 8)


def test_decoding_golden_values():
    """A zero code decodes to its anchor; dw = 5 log 2 doubles the width about the centre."""
    anchors = np.array([[10, 20, 30, 60], [100, 100, 140, 120]], np.float32)
    codes = np.array([[0, 0, 5 * math.log(2), 0], [0, 0, 0, 0]], np.float32)
    probs = np.array([[0.9] + [0] * 7, [0.8] + [0] * 7], np.float32)
    dets = postprocess_detections(_logits_for(probs), codes, anchors, (180, 320), nms_iou=1.0)
    np.testing.assert_allclose(dets.boxes_xyxy, [[0, 20, 40, 60], [100, 100, 140, 120]],
                               atol=1e-4)


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
    with pytest.raises(ValueError, match="anchors"):
        postprocess_detections(np.zeros((3, 9), np.float32), np.zeros((3, 4), np.float32),
                               np.zeros((4, 4), np.float32), (10, 10))
