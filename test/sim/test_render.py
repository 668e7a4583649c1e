"""Closed-form checks of the synthetic renderer on scenes placed by hand.

World frame: x forward, y left, z up; with zero yaw and pitch, a world point (x, y, z) is seen
at optical (-y, h - z, x) for a camera at height h.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from depthssd_core.classes import category_id
from depthssd_core.geometry import CameraIntrinsics, flat_ground_depth
from depthssd_sim import (
    SKY_DEPTH_M,
    PlacedObject,
    Scene,
    render_scene,
    rotation_world_from_optical,
)


def _only(frame, instance_id=1):
    matches = [o for o in frame.objects if o.instance_id == instance_id]
    assert len(matches) == 1
    return matches[0]


@pytest.mark.parametrize("pitch_rad", [0.0, 0.06, -0.05])
def test_empty_road_depth_matches_flat_ground_formula(pitch_rad):
    frame = render_scene(Scene(width=64, height=48, fov_deg=80.0, camera_height_m=1.7,
                               camera_pitch_rad=pitch_rad))
    intr = frame.intrinsics
    rows = np.arange(intr.height)
    expected = flat_ground_depth(rows, 1.7, pitch_rad, intr.fy, intr.cy)
    ground = np.isfinite(expected) & (expected < SKY_DEPTH_M)
    assert ground.sum() > 10
    got = frame.depth_m[:, intr.width // 3]
    np.testing.assert_allclose(got[ground], expected[ground], rtol=2e-6)
    # Every column of a row sees the same planar depth on flat ground.
    assert np.all(frame.depth_m[ground] == frame.depth_m[ground][:, :1])
    # Above the horizon there is only sky, at exactly 1000 m.
    assert np.all(frame.depth_m[~np.isfinite(expected)] == np.float32(SKY_DEPTH_M))
    assert frame.depth_m.dtype == np.float32
    assert not frame.objects and not frame.instance.any() and not frame.semantic.any()


def test_sky_is_1000_and_ground_is_not():
    frame = render_scene(Scene(width=40, height=30, camera_pitch_rad=0.0))
    assert np.all(frame.depth_m[:15] == 1000.0)  # rows above the principal point (cy = 15)
    assert np.all(frame.depth_m[16:] < 1000.0)


def test_intrinsics_from_fov():
    frame = render_scene(Scene(width=640, height=360, fov_deg=90.0, road=None))
    assert frame.intrinsics == CameraIntrinsics.from_fov(640, 360, 90.0)
    assert frame.intrinsics.fx == pytest.approx(320.0)
    assert (frame.intrinsics.cx, frame.intrinsics.cy) == (320.0, 180.0)


def test_object_size_and_face_depth_match_pinhole_model():
    z_face, width_m, height_m, length_m = 20.0, 2.0, 3.0, 4.0
    scene = Scene(width=320, height=240, fov_deg=90.0, camera_height_m=1.6,
                  objects=[PlacedObject("truck", (z_face + length_m / 2, 0.0, height_m / 2),
                                        (length_m, width_m, height_m))])
    frame = render_scene(scene)
    intr = frame.intrinsics
    obj = _only(frame)
    mask = frame.instance == 1
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    # Pixel extent of the camera-facing face: fy * H / Z and fx * W / Z, within a pixel.
    assert abs(len(rows) - intr.fy * height_m / z_face) <= 1.0
    assert abs(len(cols) - intr.fx * width_m / z_face) <= 1.0
    # Top and bottom rows follow from the projection of the face's edges.
    top = intr.cy + intr.fy * (1.6 - height_m) / z_face
    bottom = intr.cy + intr.fy * 1.6 / z_face
    assert rows[0] == math.ceil(top) and rows[-1] == math.floor(bottom)
    # Only the front face is visible (camera inside the box's width and below its top).
    np.testing.assert_allclose(frame.depth_m[mask], z_face, rtol=1e-6)
    assert obj.distance_m == pytest.approx(z_face, rel=1e-6)
    assert obj.category_id == category_id("truck")
    np.testing.assert_allclose(obj.center_optical, (0.0, 1.6 - height_m / 2,
                                                    z_face + length_m / 2), atol=1e-9)
    assert obj.size_m == (length_m, width_m, height_m)
    # Heading along world x = away from the camera = optical +z: KITTI yaw -pi/2.
    assert obj.yaw_rad == pytest.approx(-math.pi / 2)
    assert obj.occlusion == 0.0 and obj.truncation == 0.0
    assert obj.visible_pixels == obj.footprint_pixels == int(mask.sum())


def test_yawed_object_heading_and_rotation():
    scene = Scene(width=160, height=120, objects=[
        PlacedObject("car", (15.0, 2.0, 0.75), (4.5, 1.8, 1.5), yaw_rad=math.pi / 2)])
    obj = _only(render_scene(scene))
    # Heading along world +y (left) = optical -x: forward (cos yaw, 0, -sin yaw) = (-1, 0, 0).
    assert abs(abs(obj.yaw_rad) - math.pi) < 1e-9
    np.testing.assert_allclose(obj.rotation_optical[:, 0], (-1.0, 0.0, 0.0), atol=1e-12)
    np.testing.assert_allclose(obj.rotation_optical[:, 2], (0.0, -1.0, 0.0), atol=1e-12)


def test_box_and_class_map_agree_with_instance_mask():
    objects = [PlacedObject("car", (12.0, -1.5, 0.75), (4.5, 1.8, 1.5)),
               PlacedObject("pedestrian", (9.0, 3.0, 0.875), (0.5, 0.5, 1.75)),
               PlacedObject(None, (25.0, 8.0, 5.0), (10.0, 6.0, 10.0)),
               PlacedObject("traffic_sign", (14.0, -4.0, 2.3), (0.05, 0.7, 0.7))]
    frame = render_scene(Scene(width=200, height=120, objects=objects))
    assert {o.instance_id for o in frame.objects} == set(np.unique(frame.instance)) - {0}
    for obj in frame.objects:
        mask = frame.instance == obj.instance_id
        ys, xs = np.nonzero(mask)
        assert obj.box_xyxy == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert obj.visible_pixels == mask.sum()
        assert np.all(frame.semantic[mask] == obj.category_id)
        assert obj.distance_m == pytest.approx(float(np.median(frame.depth_m[mask])))
    assert np.all(frame.semantic[frame.instance == 0] == 0)
    # The unlabelled building is drawn (depth) but has no instance.
    assert np.any(np.isclose(frame.depth_m, 22.0, atol=0.5) & (frame.instance == 0))


def test_occlusion_of_object_behind_another():
    car = PlacedObject("car", (30.0, 0.0, 1.0), (4.0, 2.0, 2.0))
    wall = PlacedObject("bus", (15.0, 3.0, 2.0), (1.0, 6.0, 4.0))  # covers y > 0 (left half)
    alone = render_scene(Scene(width=320, height=180, objects=[car]))
    both = render_scene(Scene(width=320, height=180, objects=[car, wall]))
    ref = _only(alone, 1)
    occluded = _only(both, 1)
    assert occluded.footprint_pixels == ref.visible_pixels == ref.footprint_pixels
    # Exactly the columns left of the optical axis are hidden: half of the car.
    cx = both.intrinsics.cx
    expected_visible = int(((alone.instance == 1) & (np.arange(320) >= cx)[None]).sum())
    assert occluded.visible_pixels == expected_visible
    assert occluded.occlusion == pytest.approx(1 - expected_visible / ref.visible_pixels)
    assert occluded.occlusion == pytest.approx(0.5, abs=0.05)
    assert occluded.box_xyxy[0] == cx
    assert _only(both, 2).occlusion == 0.0


def test_truncation_of_object_cut_by_image_edge():
    # A thin plate facing the camera, centred on the left image border.
    z, w = 10.0, 2.0
    scene = Scene(width=200, height=100, fov_deg=90.0, camera_height_m=1.5, road=None)
    intr = CameraIntrinsics.from_fov(200, 100, 90.0)
    y_left = (intr.cx + 0.5) * z / intr.fx  # world y whose projection is u = -0.5
    scene.objects = [PlacedObject("traffic_sign", (z, y_left, 1.5), (0.01, w, 1.0))]
    obj = _only(render_scene(scene))
    assert obj.truncation == pytest.approx(0.5, abs=0.01)
    assert obj.box_xyxy[0] == 0.0


def test_partly_behind_camera_object_is_drawn_without_error():
    # A long wall beside the camera that starts behind it.
    scene = Scene(width=120, height=80, objects=[
        PlacedObject(None, (5.0, 4.0, 2.0), (30.0, 1.0, 4.0)),
        PlacedObject("bus", (2.0, -3.0, 1.6), (12.0, 2.5, 3.2))])
    frame = render_scene(scene)
    bus = _only(frame)
    assert bus.truncation > 0.3
    assert bus.visible_pixels > 100
    assert np.all(frame.depth_m > 0)


def test_scene_rejects_bad_input():
    with pytest.raises(ValueError, match="fov_deg"):
        render_scene(Scene(fov_deg=200.0))
    with pytest.raises(ValueError, match="width"):
        render_scene(Scene(width=0))
    with pytest.raises(ValueError, match="size_m"):
        render_scene(Scene(objects=[PlacedObject("car", (5, 0, 1), (0, 1, 1))]))
    with pytest.raises(ValueError, match="unknown class"):
        render_scene(Scene(objects=[PlacedObject("tree", (5, 0, 1), (1, 1, 1))]))


@pytest.mark.parametrize("seed", range(4))
def test_random_hand_built_scenes_keep_label_invariants(seed):
    """Random boxes, cameras and pitches (also steep ones): labels always match the pixels."""
    rng = np.random.default_rng(seed)
    names = ["car", "truck", "bus", "motorcycle", "bicycle", "pedestrian", "traffic_light",
             "traffic_sign", None]
    objects = [PlacedObject(names[int(rng.integers(len(names)))],
                            (float(rng.uniform(-5, 40)), float(rng.uniform(-10, 10)),
                             float(rng.uniform(0.2, 3.0))),
                            tuple(float(v) for v in rng.uniform(0.1, 6.0, 3)),
                            yaw_rad=float(rng.uniform(-math.pi, math.pi)))
               for _ in range(25)]
    scene = Scene(width=int(rng.integers(20, 120)), height=int(rng.integers(20, 90)),
                  fov_deg=float(rng.uniform(40, 120)), camera_height_m=float(rng.uniform(1, 3)),
                  camera_pitch_rad=float(rng.uniform(-0.8, 0.8)),
                  camera_yaw_rad=float(rng.uniform(-1, 1)), objects=objects)
    frame = render_scene(scene)
    assert np.all(frame.depth_m > 0) and np.all(frame.depth_m <= SKY_DEPTH_M)
    assert {o.instance_id for o in frame.objects} == set(np.unique(frame.instance)) - {0}
    for obj in frame.objects:
        mask = frame.instance == obj.instance_id
        ys, xs = np.nonzero(mask)
        assert obj.box_xyxy == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        assert 0 < obj.visible_pixels == mask.sum() <= obj.footprint_pixels
        assert 0.0 <= obj.truncation <= 1.0
        assert np.all(frame.semantic[mask] == obj.category_id)


@pytest.mark.parametrize("roll_rad, pitch_rad", [(0.05, 0.0), (-0.3, 0.08), (0.6, -0.1)])
def test_rolled_camera_ground_depth_is_exact_per_pixel(roll_rad, pitch_rad):
    """With roll the ground is no longer row-constant: every pixel's depth is h / (-ray z)."""
    scene = Scene(width=96, height=64, fov_deg=80.0, camera_height_m=1.7,
                  camera_pitch_rad=pitch_rad, camera_roll_rad=roll_rad, road=None)
    frame = render_scene(scene)
    intr = frame.intrinsics
    r_wo = rotation_world_from_optical(frame)
    v, u = np.mgrid[0:intr.height, 0:intr.width]
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones(u.shape)], -1)
    rz = rays @ r_wo[2]
    ground = rz < -1.7 / 900.0  # nearer than the 1000 m far plane
    expected = 1.7 / -rz[ground]
    np.testing.assert_allclose(frame.depth_m[ground], expected, rtol=3e-6)
    assert np.all(frame.depth_m[rz >= 0] == np.float32(SKY_DEPTH_M))
    # The horizon is tilted: some row holds both sky and ground.
    mixed = (frame.depth_m >= SKY_DEPTH_M).any(axis=1) & (frame.depth_m < SKY_DEPTH_M).any(axis=1)
    assert mixed.sum() >= 2
    assert frame.pose[3] == roll_rad


def test_rolled_camera_sees_a_facing_wall_at_its_exact_depth_and_mask():
    """A wall across the road at x = 20 m stays at planar depth 20 under roll; its mask is the
    rotated rectangle that pinhole geometry predicts."""
    roll = 0.2
    scene = Scene(width=200, height=150, fov_deg=90.0, camera_height_m=1.5,
                  camera_roll_rad=roll, road=None,
                  objects=[PlacedObject("bus", (20.5, 0.0, 1.5), (1.0, 4.0, 3.0))])
    frame = render_scene(scene)
    obj = _only(frame)
    mask = frame.instance == 1
    np.testing.assert_allclose(frame.depth_m[mask], 20.0, rtol=1e-6)
    assert obj.distance_m == pytest.approx(20.0, rel=1e-6)
    # Pixel centres inside the wall's outline: optical (x, y) of its face rotated by roll.
    intr = frame.intrinsics
    v, u = np.mgrid[0:intr.height, 0:intr.width]
    x = (u - intr.cx) / intr.fx * 20.0
    y = (v - intr.cy) / intr.fy * 20.0
    c, s = math.cos(roll), math.sin(roll)
    left = -c * x + s * y  # world y of the face point (roll about the forward axis)
    up = 1.5 - s * x - c * y  # world z
    inside = (np.abs(left) < 2.0) & (up > 0.0) & (up < 3.0)
    assert np.count_nonzero(inside != mask) <= 0.01 * inside.sum()


def test_four_by_three_sensor_is_squeezed_into_the_image():
    """A 4:3 camera at 160x90: fy = 0.75 fx, so a square plate is 0.75 as tall as wide."""
    scene = Scene(width=160, height=90, fov_deg=90.0, sensor_aspect=4 / 3, road=None,
                  objects=[PlacedObject("traffic_sign", (10.0, 0.0, 1.6), (0.02, 2.0, 2.0))])
    frame = render_scene(scene)
    intr = frame.intrinsics
    assert intr.fy == pytest.approx(0.75 * intr.fx) and intr.fx == pytest.approx(80.0)
    mask = frame.instance == 1
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    assert abs(len(cols) - intr.fx * 2.0 / 9.99) <= 1.0
    assert abs(len(rows) - intr.fy * 2.0 / 9.99) <= 1.0


def test_cast_shadow_is_the_exact_projection_of_the_box_along_the_sun():
    """Ground pixels darken exactly where the ray from the ground point to the sun meets the
    box (checked with an independent slab test); depth and instances do not change."""
    from depthssd_sim.appearance import plain_look

    look = plain_look(np.array([[200.0, 60.0, 60.0]]))
    look.sun_dir = np.array([0.6, -0.3, 0.6]) / np.linalg.norm([0.6, -0.3, 0.6])
    look.shadows = True
    box = PlacedObject("truck", (14.0, -2.0, 1.5), (4.0, 2.0, 3.0), yaw_rad=0.4)
    kwargs = dict(width=240, height=135, fov_deg=90.0, camera_height_m=2.0, road=None,
                  objects=[box], look=look)
    on = render_scene(Scene(shadows=True, **kwargs))
    off = render_scene(Scene(shadows=False, **kwargs))
    assert np.array_equal(on.depth_m, off.depth_m) and np.array_equal(on.instance, off.instance)
    darker = (on.rgb.astype(int) < off.rgb.astype(int)).any(axis=2)
    # Independent expectation: ground point -> sun ray vs the box's three slabs.
    intr = on.intrinsics
    r_wo = rotation_world_from_optical(on)
    v, u = np.mgrid[0:intr.height, 0:intr.width]
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones(u.shape)], -1)
    world = rays @ r_wo.T
    ground = (on.instance == 0) & (world[..., 2] < 0) & (on.depth_m < SKY_DEPTH_M)
    t = -2.0 / np.where(world[..., 2] < 0, world[..., 2], -1.0)
    p = np.array([0.0, 0.0, 2.0]) + t[..., None] * world - np.array(box.center_m)
    c, s = math.cos(box.yaw_rad), math.sin(box.yaw_rad)
    axes = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    lo, hi = np.full(t.shape, -np.inf), np.full(t.shape, np.inf)
    for axis, half in zip(axes, np.asarray(box.size_m) / 2, strict=True):
        q, d = p @ axis, look.sun_dir @ axis
        t1, t2 = (-half - q) / d, (half - q) / d
        lo, hi = np.maximum(lo, np.minimum(t1, t2)), np.minimum(hi, np.maximum(t1, t2))
    shadowed = ground & (lo <= hi) & (hi > 0)
    assert shadowed.sum() > 200
    assert not (darker & ~ground).any()
    # Polygon filling rounds at the shadow's outline: a pixel of border either way.
    kernel = np.ones((3, 3), np.uint8)
    inner = cv2.erode(shadowed.astype(np.uint8), kernel).astype(bool)
    outer = cv2.dilate(shadowed.astype(np.uint8), kernel).astype(bool)
    assert np.all(darker[inner & ground]) and not np.any(darker & ground & ~outer)


def test_grouped_casting_equals_casting_part_by_part(monkeypatch):
    """An object's parts cast together over their union rectangle give the same pixels as
    casting each part alone."""
    import depthssd_sim.boxes as boxes_module
    from depthssd_sim import SyntheticWorld

    world = SyntheticWorld(3, 160, 90, fov_deg=60.0, camera_pitch_rad=0.0)
    grouped = list(world.sequence("g", 2))
    monkeypatch.setattr(boxes_module, "GROUP_BUDGET", 0)
    single = list(world.sequence("g", 2))
    for a, b in zip(grouped, single, strict=True):
        np.testing.assert_allclose(a.depth_m, b.depth_m, rtol=2e-6)
        assert np.mean(a.instance != b.instance) < 1e-3
