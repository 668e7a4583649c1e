"""Augmentations keep image, depth, boxes and intrinsics geometrically consistent."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from dataset_helpers import TOY_OBJECTS, toy_frame

from depthssd_core.geometry import backproject, project
from depthssd_train.dataset.augment import (
    CentreCrop,
    ColorJitter,
    Compose,
    HorizontalFlip,
    RandomScaleCrop,
    Resize,
    scale_and_crop,
)
from depthssd_train.dataset.torch_data import sample_from_frame


def _corners(cat: int) -> tuple[np.ndarray, np.ndarray]:
    _, x, y, z, w, h = next(o for o in TOY_OBJECTS if o[0] == cat)
    return np.array([[x - w / 2, y - h / 2, z], [x + w / 2, y + h / 2, z]]), np.array([x, y, z])


def _check_consistent(sample, mirrored: bool = False) -> int:
    """Each unclipped box matches its 3D rectangle through the sample's intrinsics, and the depth
    at the box centre back-projects to the rectangle's centre. Returns boxes checked."""
    width, height = sample.size
    checked = 0
    for box, cat, dist in zip(sample.boxes_xyxy, sample.labels, sample.distances_m,
                              strict=True):
        corners, centre = _corners(int(cat))
        if mirrored:
            corners[:, 0] = -corners[::-1, 0]
            centre[0] = -centre[0]
        uv = project(corners, sample.intrinsics)
        expected = np.array([uv[0, 0], uv[0, 1], uv[1, 0], uv[1, 1]])
        if expected[0] < 0 or expected[1] < 0 or expected[2] > width or expected[3] > height:
            continue  # clipped by the crop; its visible part is checked below for depth only
        np.testing.assert_allclose(box, expected, atol=1e-3)
        u, v = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        depth = sample.depth_m[int(v), int(u)]
        assert depth == pytest.approx(centre[2], abs=1e-4) and dist == pytest.approx(centre[2])
        np.testing.assert_allclose(backproject(u, v, depth, sample.intrinsics), centre,
                                   atol=1e-3)
        checked += 1
    return checked


def test_toy_frame_itself_is_consistent():
    assert _check_consistent(sample_from_frame(toy_frame())) == 2


def test_horizontal_flip_is_exact_and_involutive():
    sample = sample_from_frame(toy_frame())
    flip = HorizontalFlip(p=1.0)
    flipped = flip(sample, np.random.default_rng(0))
    assert flipped.intrinsics.cx == pytest.approx(160 - sample.intrinsics.cx)
    np.testing.assert_array_equal(flipped.rgb, sample.rgb[:, ::-1])
    assert _check_consistent(flipped, mirrored=True) == 2
    twice = flip(flipped, np.random.default_rng(0))
    np.testing.assert_array_equal(twice.depth_m, sample.depth_m)
    np.testing.assert_allclose(twice.boxes_xyxy, sample.boxes_xyxy, atol=1e-5)
    assert twice.intrinsics == sample.intrinsics


@pytest.mark.parametrize("seed", range(6))
def test_random_scale_crop_keeps_box_depth_and_intrinsics_in_agreement(seed):
    sample = sample_from_frame(toy_frame())
    out = RandomScaleCrop(128, 96, scale_range=(0.8, 1.6))(sample, np.random.default_rng(seed))
    assert out.rgb.shape == (96, 128, 3) and out.depth_m.shape == (96, 128)
    assert out.intrinsics.width == 128 and out.intrinsics.height == 96
    assert out.intrinsics.fx == pytest.approx(out.intrinsics.fy, rel=0.02)  # square pixels
    assert np.all(out.depth_m[~out.depth_valid] == 0)
    _check_consistent(out)
    # Any remaining box still sees its object's depth inside it.
    for box, dist in zip(out.boxes_xyxy, out.distances_m, strict=True):
        x1, y1, x2, y2 = np.round(box).astype(int)
        patch = out.depth_m[y1:y2, x1:x2]
        assert np.any(np.abs(patch - dist) < 1e-4)


def test_scale_crop_closed_form_and_padding():
    sample = sample_from_frame(toy_frame())
    out = scale_and_crop(sample, 2.0, 2.0, 50, 20, 200, 120)
    intr = sample.intrinsics
    assert (out.intrinsics.fx, out.intrinsics.cx, out.intrinsics.cy) == pytest.approx(
        (2 * intr.fx, 2 * intr.cx - 50, 2 * intr.cy - 20))
    assert _check_consistent(out) == 2
    # Window reaching past the resized image: padding is black with invalid depth.
    padded = scale_and_crop(sample, 0.5, 0.5, -10, -5, 100, 60)
    assert np.all(padded.rgb[:5] == 0) and not padded.depth_valid[:, :10].any()
    # The pedestrian (3.2 px wide) shrinks below min_box_px and is dropped with its label.
    assert padded.labels.tolist() == [1] and len(padded.distances_m) == 1
    assert _check_consistent(padded) == 1


def test_resize_and_colour_jitter():
    sample = sample_from_frame(toy_frame())
    resized = Resize(320, 90)(sample)
    assert resized.intrinsics.fx == pytest.approx(2 * sample.intrinsics.fx)
    assert resized.intrinsics.fy == pytest.approx(sample.intrinsics.fy)
    assert _check_consistent(resized) == 2
    jittered = ColorJitter(0.5, 0.5, 0.5)(sample, np.random.default_rng(3))
    assert not np.array_equal(jittered.rgb, sample.rgb)
    for name in ("depth_m", "depth_valid", "boxes_xyxy", "labels"):
        np.testing.assert_array_equal(getattr(jittered, name), getattr(sample, name))
    assert jittered.intrinsics == sample.intrinsics


def test_same_seed_same_augmentation():
    transform = Compose([HorizontalFlip(), RandomScaleCrop(96, 64), ColorJitter()])
    a = transform(sample_from_frame(toy_frame(frame_index=0)), np.random.default_rng(11))
    b = transform(sample_from_frame(toy_frame(frame_index=1)), np.random.default_rng(11))
    assert a.intrinsics == b.intrinsics
    c = transform(dataclasses.replace(sample_from_frame(toy_frame())),
                  np.random.default_rng(12))
    assert c.intrinsics != a.intrinsics


@pytest.mark.parametrize("seed", range(4))
def test_native_scale_crop_keeps_boxes_and_depth_exact(seed):
    """A 80x48 window of a 160x90 frame for a 160x90 network: at scale 1 the crop is a plain
    sub-array (depth and boxes exact to the bit, focal unchanged); with scale jitter it agrees
    with the camera model, and the focal follows the scale, not the window."""
    sample = sample_from_frame(toy_frame())
    native = RandomScaleCrop(80, 48, scale_range=(1.0, 1.0), reference_size=(160, 90))
    out = native(sample, np.random.default_rng(seed))
    ox = round(sample.intrinsics.cx - out.intrinsics.cx)
    oy = round(sample.intrinsics.cy - out.intrinsics.cy)
    assert out.intrinsics.fx == sample.intrinsics.fx and out.depth_m.shape == (48, 80)
    np.testing.assert_array_equal(out.depth_m, sample.depth_m[oy:oy + 48, ox:ox + 80])
    np.testing.assert_array_equal(out.depth_valid, sample.depth_valid[oy:oy + 48, ox:ox + 80])
    np.testing.assert_array_equal(out.rgb, sample.rgb[oy:oy + 48, ox:ox + 80])
    for box, label in zip(out.boxes_xyxy, out.labels, strict=True):
        source = sample.boxes_xyxy[sample.labels.tolist().index(int(label))]
        expected = np.clip(source - [ox, oy, ox, oy], 0, [80, 48, 80, 48])
        np.testing.assert_allclose(box, expected, atol=1e-5)
    jitter = RandomScaleCrop(80, 48, scale_range=(0.9, 1.4), reference_size=(160, 90))
    out = jitter(sample, np.random.default_rng(seed))
    scale = out.intrinsics.fx / sample.intrinsics.fx
    assert 0.9 - 1e-3 <= scale <= 1.4 + 1e-3  # relative to the full input, not the window
    _check_consistent(out)
    centred = CentreCrop(80, 48, reference_size=(160, 90))(sample)
    assert centred.intrinsics.fx == sample.intrinsics.fx
    np.testing.assert_array_equal(centred.depth_m, sample.depth_m[21:69, 40:120])
