"""Robust per-object distance, flat-ground distance, fusion and back-projection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthssd_core.distance import (
    DistanceSettings,
    estimate_object_distance,
    estimate_object_distances,
    fuse_inverse_variance,
    ground_distance,
    robust_depth,
)
from depthssd_core.geometry import CameraIntrinsics, flat_ground_depth

INTR = CameraIntrinsics.from_fov(640, 360, 90.0)  # fx = fy = 320, cx = 320, cy = 180


def test_mad_sigma_golden():
    samples = np.array([10.0, 11.0, 12.0, 13.0, 14.0, 100.0, np.nan, -1.0, np.inf])
    est = robust_depth(samples)
    # Valid: 10..14 and 100; median 12.5; |d - m| = 2.5 1.5 .5 .5 1.5 87.5 -> MAD 1.5,
    # sigma 2.22: 100 is an outlier. Inliers 10..14: median 12, MAD 1 -> sigma 1.4826.
    assert est.num_samples == 6 and est.num_inliers == 5
    assert est.depth_m == pytest.approx(12.0)
    assert est.sigma_m == pytest.approx(1.4826)
    assert math.isnan(robust_depth(np.array([np.nan, 0.0])).depth_m)


def test_distance_ignores_occluder_and_background_pixels():
    rng = np.random.default_rng(0)
    true_m = 23.0
    depth = np.full((360, 640), 80.0, np.float32)  # background
    box = (200.0, 100.0, 320.0, 220.0)
    depth[100:220, 200:320] = true_m + rng.normal(0, 0.1, size=(120, 120))
    depth[100:220, 200:245] = 6.0  # a pole in front covering over a third of the box
    depth[150:160, 250:260] = np.nan  # invalid pixels
    est = estimate_object_distance(depth, box, INTR)
    assert est.distance_m == pytest.approx(true_m, abs=0.05)
    assert est.depth_sigma_m == pytest.approx(0.1, rel=0.25)
    assert not est.fused and math.isnan(est.ground_m)
    # The point is the box centre back-projected at the distance.
    u, v = 260.0, 160.0
    np.testing.assert_allclose(est.point_optical,
                               [(u - 320) * true_m / 320, (v - 180) * true_m / 320, true_m],
                               atol=0.01)
    # The samples really are contaminated: their plain mean is far off.
    assert abs(float(np.nanmean(depth[118:208, 224:296])) - true_m) > 3.0


def test_lower_part_and_tiny_boxes():
    depth = np.full((100, 100), 50.0, np.float32)
    depth[0:30, :] = 5.0  # something in front of the upper part
    est = estimate_object_distance(depth, (10, 0, 90, 60), INTR.resized(100, 100),
                                   settings=DistanceSettings(lower_part=True))
    assert est.distance_m == pytest.approx(50.0)
    tiny = estimate_object_distance(depth, (50.2, 70.1, 51.0, 70.9), INTR.resized(100, 100),
                                    settings=DistanceSettings(min_samples=1))
    assert tiny.distance_m == pytest.approx(50.0)


def test_ground_distance_closed_form():
    h, pitch = 2.0, math.radians(3.0)
    for z_true in (5.0, 20.0, 60.0):
        # Row where a flat road at depth z_true is seen: invert Z = h / (sin p + cos p dv/fy).
        v = INTR.cy + INTR.fy * (h / z_true - math.sin(pitch)) / math.cos(pitch)
        z, sigma = ground_distance(v, INTR, h, pitch)
        assert z == pytest.approx(z_true, rel=1e-9)
        assert z == pytest.approx(float(flat_ground_depth(v, h, pitch, INTR.fy, INTR.cy)))
        dz_dv = z_true ** 2 * math.cos(pitch) / (h * INTR.fy)
        assert sigma == pytest.approx(math.hypot(2.0 * dz_dv, 0.05 * z_true))
    assert math.isnan(ground_distance(INTR.cy - 50, INTR, h, 0.0)[0])  # above the horizon
    # Sigma grows with distance.
    s_near = ground_distance(300, INTR, h, 0.0)[1]
    s_far = ground_distance(200, INTR, h, 0.0)[1]
    assert s_far > 5 * s_near


def test_inverse_variance_fusion():
    z, s = fuse_inverse_variance(10.0, 1.0, 12.0, 2.0)
    assert z == pytest.approx((10 / 1 + 12 / 4) / (1 + 1 / 4))
    assert s == pytest.approx(math.sqrt(1 / (1 + 1 / 4)))
    assert s < 1.0


def test_ground_fusion_in_estimator():
    h = 1.5
    z_true = 12.0
    bottom = INTR.cy + INTR.fy * h / z_true  # pitch 0
    depth = np.full((360, 640), 200.0, np.float32)
    box = (300.0, bottom - 60, 380.0, bottom)
    rng = np.random.default_rng(3)
    depth[int(bottom - 60):int(bottom), 300:380] = 12.6 + rng.normal(0, 0.5, (60, 80))
    est = estimate_object_distance(depth, box, INTR, camera_height_m=h, camera_pitch_rad=0.0)
    assert est.fused
    assert est.ground_m == pytest.approx(z_true, rel=1e-6)
    lo, hi = sorted((est.depth_m, est.ground_m))
    assert lo < est.distance_m < hi
    assert est.sigma_m < min(est.depth_sigma_m, est.ground_sigma_m)
    # Traffic signs are not on the road: no ground estimate.
    sign = estimate_object_distance(depth, box, INTR, camera_height_m=h, camera_pitch_rad=0.0,
                                    on_ground=False)
    assert not sign.fused and sign.distance_m == pytest.approx(est.depth_m)
    # A wildly inconsistent ground estimate (object not on the road) is not fused.
    depth[int(bottom - 60):int(bottom), 300:380] = 40.0
    far = estimate_object_distance(depth, box, INTR, camera_height_m=h, camera_pitch_rad=0.0)
    assert not far.fused and far.distance_m == pytest.approx(40.0)
    # No depth at all: the ground estimate alone.
    depth[:] = np.nan
    only_ground = estimate_object_distance(depth, box, INTR, camera_height_m=h,
                                           camera_pitch_rad=0.0)
    assert only_ground.distance_m == pytest.approx(z_true, rel=1e-6)


@pytest.mark.parametrize("ground", [False, True])
def test_all_boxes_at_once_equal_each_box_alone(ground):
    """The frame-wide estimator gives every box exactly (bit for bit) its own estimate, for
    tiny, off-image, bottom-cut and empty boxes, on a map with holes, with mixed on_ground."""
    rng = np.random.default_rng(7)
    depth = (rng.random((360, 640)) * 60 + 1.0).astype(np.float32)
    depth[rng.random(depth.shape) < 0.1] = np.nan
    depth[200:260, 100:300] = 15.0 + rng.normal(0, 0.2, (60, 200))
    xy = rng.uniform(-40, 620, (40, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(0.5, 160, (40, 2))], axis=1)
    boxes[0] = [100, 200, 300, 360]  # cut by the image bottom
    boxes[1] = [700, 10, 720, 40]  # off the image
    boxes[2] = [150.2, 230.1, 150.9, 230.8]  # erodes to nothing: the centre pixel
    boxes = boxes.astype(np.float32)
    on_ground = rng.random(40) < 0.7
    kwargs = {"camera_height_m": 1.6, "camera_pitch_rad": 0.03} if ground else {}
    together = estimate_object_distances(depth, boxes, INTR, on_ground=on_ground, **kwargs)
    alone = [estimate_object_distance(depth, box, INTR, on_ground=bool(g), **kwargs)
             for box, g in zip(boxes, on_ground, strict=True)]
    assert repr(together) == repr(alone)  # repr: exact floats, NaN equal to NaN
    assert sum(d.fused for d in together) > 0 if ground else not any(d.fused for d in together)
    assert estimate_object_distances(depth, np.zeros((0, 4)), INTR) == []
