"""Camera geometry against closed forms (docs/REFERENCES.md: CARLA intrinsics, flat-ground
depth)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthssd_core.classes import CLASSES, category_id, class_index
from depthssd_core.geometry import (
    CameraIntrinsics,
    backproject,
    flat_ground_depth,
    project,
)


def test_intrinsics_from_fov_match_carla():
    intr = CameraIntrinsics.from_fov(640, 360, 90.0)
    assert (intr.fx, intr.fy, intr.cx, intr.cy) == pytest.approx((320.0, 320.0, 320.0, 180.0))
    carla_default = CameraIntrinsics.from_fov(800, 600, 90.0)
    assert carla_default.fx == pytest.approx(400.0)
    narrow = CameraIntrinsics.from_fov(640, 360, 60.0)
    assert narrow.fx == pytest.approx(320 / math.tan(math.pi / 6))
    assert intr.hfov_deg == pytest.approx(90.0)


@pytest.mark.parametrize("fov", [0.0, 180.0, float("nan"), -5.0])
def test_intrinsics_reject_bad_fov(fov):
    with pytest.raises(ValueError, match="field of view"):
        CameraIntrinsics.from_fov(640, 360, fov)


def test_validate_names_bad_field():
    with pytest.raises(ValueError, match="fy"):
        CameraIntrinsics(320.0, float("nan"), 320.0, 180.0, 640, 360).validate()
    with pytest.raises(ValueError, match="positive"):
        CameraIntrinsics(-1.0, 320.0, 320.0, 180.0, 640, 360).validate()
    with pytest.raises(ValueError, match="size"):
        CameraIntrinsics(320.0, 320.0, 320.0, 180.0, 0, 360).validate()


def test_resize_scales_focal_and_centre():
    intr = CameraIntrinsics.from_fov(800, 600, 90.0).resized(640, 360)
    assert (intr.fx, intr.fy, intr.cx, intr.cy) == pytest.approx((320.0, 240.0, 320.0, 180.0))
    k = CameraIntrinsics.from_matrix(intr.matrix().ravel().tolist(), 640, 360)
    assert k == intr


def test_flat_ground_depth_closed_form():
    # Level camera 2 m up, fy = 320: the row 80 px below the centre sees the road 8 m ahead.
    assert flat_ground_depth(260.0, 2.0, 0.0, 320.0, 180.0) == pytest.approx(8.0)
    # Pitched down by p: the optical centre ray hits the ground at h / sin p.
    p = math.radians(5.0)
    assert flat_ground_depth(180.0, 1.5, p, 320.0, 180.0) == pytest.approx(1.5 / math.sin(p))
    # Rows at or above the horizon have no ground.
    assert np.isinf(flat_ground_depth(np.array([0.0, 180.0]), 2.0, 0.0, 320.0, 180.0)).all()


def test_backproject_and_project_are_inverse():
    intr = CameraIntrinsics.from_fov(640, 360, 75.0)
    rng = np.random.default_rng(0)
    u, v = rng.uniform(0, 640, 50), rng.uniform(0, 360, 50)
    depth = rng.uniform(1, 80, 50)
    points = backproject(u, v, depth, intr)
    assert np.allclose(points[:, 2], depth)
    assert np.allclose(project(points, intr), np.stack([u, v], -1))


def test_class_ids_are_fixed():
    assert CLASSES[0] == "car" and CLASSES[-1] == "traffic_sign" and len(CLASSES) == 8
    assert category_id("pedestrian") == 6 and class_index("bus") == 2
    with pytest.raises(ValueError, match="unknown class 'tree'"):
        class_index("tree")
