"""Pure CARLA decoding functions on arrays: depth, instance ids, boxes, transforms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dataset_helpers import pixel_box, toy_frame, toy_instance_map

from depthssd_core.classes import category_id
from depthssd_core.geometry import CameraIntrinsics
from depthssd_train.carla.capture import build_frame, camera_pose
from depthssd_train.carla.decode import (
    FrameActor,
    box3d_in_optical,
    carla_transform_matrix,
    decode_depth_bgra,
    decode_instance_bgra,
    encode_depth_bgra,
    frame_actor,
    objects_from_instances,
    ue_to_optical,
    world_to_optical,
)


def _bgra(b, g, r):
    return np.array([[[b, g, r, 255]]], np.uint8)


def test_depth_decoding_golden_values():
    step = 1000.0 / (256**3 - 1)
    assert decode_depth_bgra(_bgra(0, 0, 1).tobytes(), 1, 1)[0, 0] == pytest.approx(step)
    assert decode_depth_bgra(_bgra(0, 1, 0), 1, 1)[0, 0] == pytest.approx(256 * step)
    assert decode_depth_bgra(_bgra(1, 0, 0), 1, 1)[0, 0] == pytest.approx(65536 * step)
    assert decode_depth_bgra(_bgra(255, 255, 255), 1, 1)[0, 0] == pytest.approx(1000.0)
    depth = np.array([[0.5, 12.345], [99.99, 1000.0]])
    back = decode_depth_bgra(encode_depth_bgra(depth), 2, 2)
    assert np.max(np.abs(back - depth)) < 1e-4
    with pytest.raises(ValueError, match="has 12 bytes, expected 16 for 2x2"):
        decode_depth_bgra(b"\x00" * 12, 2, 2)


def test_instance_decoding_tag_in_r_id_in_g_plus_256_b():
    tags, ids = decode_instance_bgra(np.array([[[55, 20, 14, 255], [0, 0, 7, 255]]],
                                              np.uint8).tobytes(), 2, 1)
    assert tags.tolist() == [[14, 7]] and ids.tolist() == [[20 + 256 * 55, 0]]


def test_boxes_from_instance_map():
    h, w = 60, 100
    tags = np.zeros((h, w), np.uint8)
    ids = np.zeros((h, w), np.int32)
    depth = np.full((h, w), 1000.0, np.float32)

    def paint(x1, y1, x2, y2, tag, iid, d):
        tags[y1:y2, x1:x2], ids[y1:y2, x1:x2], depth[y1:y2, x1:x2] = tag, iid, d

    paint(5, 30, 25, 45, 14, 300, 8.0)      # car
    paint(30, 20, 34, 40, 12, 301, 6.0)     # pedestrian
    paint(40, 40, 50, 50, 19, 302, 9.0)     # bicycle ...
    paint(42, 30, 48, 40, 13, 302, 9.5)     # ... its rider, same actor id
    paint(60, 45, 70, 55, 18, 304, 12.0)    # motorcycle ...
    paint(62, 36, 68, 44, 13, 303, 12.5)    # ... rider with its own id, 1 px above
    paint(80, 10, 84, 30, 13, 305, 20.0)    # rider alone -> bicycle
    paint(90, 5, 94, 9, 8, 0, 30.0)         # two traffic signs without actor id
    paint(90, 20, 94, 24, 8, 0, 31.0)
    paint(0, 55, 100, 60, 1, 0, 3.0)        # road: not ours
    paint(97, 50, 99, 52, 14, 306, 5.0)     # 4 px car: below min_pixels
    objects = objects_from_instances(tags, ids, depth, min_pixels=16)
    got = {o.instance_id: (o.category_id, o.box_xyxy, o.distance_m, o.visible_pixels)
           for o in objects}
    assert got == {
        300: (category_id("car"), (5, 30, 25, 45), 8.0, 300),
        301: (category_id("pedestrian"), (30, 20, 34, 40), 6.0, 80),
        302: (category_id("bicycle"), (40, 30, 50, 50), 9.0, 160),
        304: (category_id("motorcycle"), (60, 36, 70, 55), 12.0, 148),
        305: (category_id("bicycle"), (80, 10, 84, 30), 20.0, 80),
        -1: (category_id("traffic_sign"), (90, 5, 94, 9), 30.0, 16),
        -2: (category_id("traffic_sign"), (90, 20, 94, 24), 31.0, 16),
    }
    with pytest.raises(ValueError, match="one shape"):
        objects_from_instances(tags, ids[:, 1:], depth)


def test_ue_to_optical_axes():
    pts = np.array([[10.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]])
    np.testing.assert_array_equal(ue_to_optical(pts), [[0, 0, 10], [1, 0, 0], [0, -1, 0]])


def test_transform_matrix_matches_the_carla_client():
    carla = pytest.importorskip("carla")
    rng = np.random.default_rng(0)
    for _ in range(5):
        loc = rng.uniform(-50, 50, 3)
        pitch, yaw, roll = rng.uniform(-180, 180, 3)
        t = carla.Transform(carla.Location(*map(float, loc)),
                            carla.Rotation(pitch=float(pitch), yaw=float(yaw), roll=float(roll)))
        np.testing.assert_allclose(carla_transform_matrix(loc, (pitch, yaw, roll)),
                                   np.array(t.get_matrix()), atol=1e-5)


def test_world_to_optical_and_3d_box():
    # Camera 2 m up, pitched 10 deg down, looking along world +x.
    cam = carla_transform_matrix((0, 0, 2.0), (-10.0, 0.0, 0.0))
    p = world_to_optical(np.array([[20.0, 0, 2.0 - 20 * math.tan(math.radians(10))]]), cam)[0]
    assert p[0] == pytest.approx(0, abs=1e-9) and p[1] == pytest.approx(0, abs=1e-9)
    assert p[2] == pytest.approx(20 / math.cos(math.radians(10)))
    # A car 15 m ahead and 3 m right, heading across the view (yaw 90 deg: towards +y, right).
    level = carla_transform_matrix((0, 0, 0), (0, 0, 0))
    car = carla_transform_matrix((15.0, 3.0, 0.0), (0.0, 90.0, 0.0))
    centre, size, yaw = box3d_in_optical(car, (0.0, 0.0, 0.7), (2.3, 1.0, 0.7), level)
    np.testing.assert_allclose(centre, (3.0, -0.7, 15.0), atol=1e-9)
    assert size == (4.6, 2.0, 1.4) and yaw == pytest.approx(0.0, abs=1e-9)
    away = carla_transform_matrix((15.0, 0.0, 0.0), (0.0, 0.0, 0.0))
    assert box3d_in_optical(away, (0, 0, 0), (1, 1, 1), level)[2] == pytest.approx(-math.pi / 2)


def test_build_frame_from_raw_camera_images():
    frame = toy_frame(width=160, height=90)
    tags, ids = toy_instance_map(frame)
    rgb_bgra = np.dstack([frame.rgb[..., ::-1], np.full((90, 160), 255, np.uint8)])
    inst = np.dstack([(ids >> 8).astype(np.uint8), (ids & 255).astype(np.uint8), tags,
                      np.full((90, 160), 255, np.uint8)])
    out = build_frame(rgb_bgra.tobytes(), encode_depth_bgra(frame.depth_m).tobytes(),
                      inst.tobytes(), frame.intrinsics, "c", 3, 1.5)
    np.testing.assert_array_equal(out.rgb, frame.rgb)
    assert np.max(np.abs(out.depth_m - np.minimum(frame.depth_m, 1000))) < 1e-3
    assert [o.category_id for o in out.objects] == [o.category_id for o in frame.objects]
    for got, want in zip(out.objects, frame.objects, strict=True):
        assert got.box_xyxy == pixel_box(want, 160, 90)
        assert got.distance_m == pytest.approx(want.distance_m, abs=1e-3)


def _scene():
    """A 60x100 instance map with actors, colliding scenery and a rider (all depth 10 m)."""
    h, w = 60, 100
    tags = np.zeros((h, w), np.uint8)
    ids = np.zeros((h, w), np.int32)

    def paint(x1, y1, x2, y2, tag, iid):
        tags[y1:y2, x1:x2], ids[y1:y2, x1:x2] = tag, iid

    paint(5, 30, 25, 45, 14, 300)      # car actor 300
    paint(80, 5, 95, 15, 14, 300)      # scenery with the same id, far from 300's box
    paint(30, 20, 34, 40, 12, 301)     # walker actor 301
    paint(40, 20, 44, 40, 14, 301)     # a parked car with the walker's id: wrong tag
    paint(50, 30, 60, 45, 13, 302)     # only the rider of motorcycle actor 302 is visible
    paint(65, 40, 75, 50, 14, 303)     # the ego's hood
    paint(0, 50, 10, 60, 8, 4000)      # a sign and a light with one Unreal id, no actor
    paint(10, 50, 20, 60, 7, 4000)
    return tags, ids, np.full((h, w), 10.0, np.float32)


def test_instance_ids_name_actors_only_where_the_actor_can_be():
    tags, ids, depth = _scene()
    actors = {
        300: FrameActor(tags=frozenset({14, 15, 16}), rect_xyxy=(4.0, 29.0, 26.0, 46.0)),
        301: FrameActor(tags=frozenset({12})),
        302: FrameActor(tags=frozenset({18, 19, 13}), category_id=category_id("motorcycle")),
        303: FrameActor(tags=frozenset({14}), ignore=True),
    }
    got = sorted((o.instance_id, o.category_id, o.box_xyxy)
                 for o in objects_from_instances(tags, ids, depth, actors=actors))
    actor_objects = [g for g in got if g[0] > 0]
    assert actor_objects == [(300, category_id("car"), (5, 30, 25, 45)),
                             (301, category_id("pedestrian"), (30, 20, 34, 40)),
                             (302, category_id("motorcycle"), (50, 30, 60, 45))]
    scenery = sorted((c, b) for i, c, b in got if i < 0)
    assert scenery == sorted([(category_id("car"), (80, 5, 95, 15)),
                              (category_id("car"), (40, 20, 44, 40)),
                              (category_id("traffic_sign"), (0, 50, 10, 60)),
                              (category_id("traffic_light"), (10, 50, 20, 60))])
    assert len({i for i, _, _ in got}) == len(got)  # every scenery id unique
    # Without actors (CARLA before 0.9.16): every id is one object, the ego included.
    plain = {o.instance_id: o for o in objects_from_instances(tags, ids, depth)}
    assert plain[300].box_xyxy == (5, 5, 95, 45) and 303 in plain
    assert plain[302].category_id == category_id("bicycle")  # rider alone, no actor info


def test_build_frame_attaches_3d_boxes_of_actors_only():
    tags, ids, depth = _scene()
    alpha = np.full(tags.shape, 255, np.uint8)
    inst = np.dstack([(ids >> 8).astype(np.uint8), (ids & 255).astype(np.uint8), tags, alpha])
    box = ((-1.0, 0.5, 10.0), (4.0, 2.0, 1.5), 0.3)
    actors = {300: FrameActor(tags=frozenset({14}), rect_xyxy=(4.0, 29.0, 26.0, 46.0),
                              box3d=box)}
    intr = CameraIntrinsics.from_fov(100, 60, 90.0)
    frame = build_frame(np.zeros((60, 100, 4), np.uint8), encode_depth_bgra(depth),
                        inst.tobytes(), intr, "c", 0, 0.0, actors=actors)
    boxed = [o for o in frame.objects if o.center_optical is not None]
    assert [(o.instance_id, o.center_optical, o.size_m, o.yaw_rad) for o in boxed] == \
        [(300, *box)]


def test_frame_actor_from_type_attributes_and_geometry():
    intr = CameraIntrinsics.from_fov(100, 60, 90.0)
    camera = carla_transform_matrix((0, 0, 0), (0, 0, 0))
    ahead = carla_transform_matrix((10.0, 0.0, 0.0), (0, 0, 0))
    car = frame_actor("vehicle.audi.a2", {"base_type": "car", "number_of_wheels": "4"}, [14],
                      ahead, (0, 0, 0), (2.0, 1.0, 0.7), camera, intr)
    assert car.tags == {14, 15, 16} and car.category_id is None and not car.ignore
    # The near face (x = 8 m) spans y +-1 m, z +-0.7 m: u = 50 +- 50/8, v = 30 +- 50*0.7/8.
    np.testing.assert_allclose(car.rect_xyxy, (43.75, 25.625, 56.25, 34.375))
    np.testing.assert_allclose(car.box3d[0], (0, 0, 10))
    moto = frame_actor("vehicle.yamaha.yzf", {"base_type": "motorcycle"}, [18], ahead,
                       (0, 0, 0), (1, 0.4, 0.8), camera, intr)
    assert moto.tags == {18, 19, 13} and moto.category_id == category_id("motorcycle")
    bike = frame_actor("vehicle.bh.crossbike", {"number_of_wheels": "2"}, [19], ahead,
                       (0, 0, 0), (1, 0.4, 0.8), camera, intr)
    assert bike.tags == {18, 19, 13} and bike.category_id is None
    light = frame_actor("traffic.traffic_light", {}, [7], ahead, (0, 0, 0), (1, 1, 1), camera,
                        intr)
    assert light.tags == {7} and light.box3d is None and light.rect_xyxy is None
    behind = carla_transform_matrix((-10.0, 0.0, 0.0), (0, 0, 0))
    assert frame_actor("walker.pedestrian.0001", {}, [12], behind, (0, 0, 0), (0.3, 0.3, 0.9),
                       camera, intr) is None
    around = frame_actor("vehicle.audi.a2", {}, [14], ahead, (0, 0, 0), (12.0, 1.0, 0.7),
                         camera, intr, ignore=True)  # the camera is inside the box
    assert around.rect_xyxy is None and around.ignore
    assert frame_actor("sensor.camera.rgb", {}, [], ahead, (0, 0, 0), (1, 1, 1), camera,
                       intr) is None


def test_stored_carla_pose_convention():
    """The pose a capture stores: CARLA's transform in radians; back to degrees it gives the
    client's own matrix, and mirroring y gives the right-handed roll, -pitch, -yaw rotation
    (the carla-ros-bridge conversion the dataset format documents)."""
    carla = pytest.importorskip("carla")
    t = carla.Transform(carla.Location(x=12.0, y=-3.5, z=2.0),
                        carla.Rotation(pitch=-8.0, yaw=120.0, roll=4.0))
    x, y, z, roll, pitch, yaw = camera_pose(t)
    assert (x, y, z) == pytest.approx((12.0, -3.5, 2.0))
    assert (roll, pitch, yaw) == pytest.approx(tuple(math.radians(a) for a in (4, -8, 120)))
    matrix = carla_transform_matrix((x, y, z), [math.degrees(a) for a in (pitch, yaw, roll)])
    np.testing.assert_allclose(matrix, np.array(t.get_matrix()), atol=1e-5)

    def right_handed(r, p, w):  # R = Rz(yaw) Ry(pitch) Rx(roll), REP-103
        rz = np.array([[math.cos(w), -math.sin(w), 0], [math.sin(w), math.cos(w), 0], [0, 0, 1]])
        ry = np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
        rx = np.array([[1, 0, 0], [0, math.cos(r), -math.sin(r)], [0, math.sin(r), math.cos(r)]])
        return rz @ ry @ rx

    mirror = np.diag([1.0, -1.0, 1.0])
    np.testing.assert_allclose(mirror @ matrix[:3, :3] @ mirror,
                               right_handed(roll, -pitch, -yaw), atol=1e-5)
    # Positive roll puts the right side (+y) down.
    assert carla_transform_matrix((0, 0, 0), (0, 0, 30))[2, 1] < 0
