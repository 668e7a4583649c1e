"""The CARLA capture's orchestration against a stand-in server (``fake_carla``).

No CARLA server can run here (no simulator binary, no GPU): every test below that passes a
``FakeCarla`` is a stand-in for a real server and says so. The fake mirrors the 0.9.16 API the
capture uses; what it cannot show is a real server's timing and rendering.
"""

from __future__ import annotations

import signal

import numpy as np
import pytest
from dataset_helpers import TOY_OBJECTS, pixel_box, toy_frame
from fake_carla import Blueprint, FakeCarla, default_blueprints

from depthssd_core.classes import category_id
from depthssd_train.carla.capture import CaptureError, CaptureSettings, capture
from depthssd_train.dataset.format import (
    list_splits,
    load_coco,
    load_depth_format,
    load_index,
    read_depth_png,
    read_rgb_png,
)

BASE_TYPES = {bp.id: bp.attributes["base_type"].value for bp in default_blueprints()
              if "base_type" in bp.attributes}


def _settings(tmp_path, **kw):
    values = {"out": tmp_path / "ds", "split": "train", "frames": 3, "timeout_s": 0.5,
              "width": 160, "height": 90, "fov_deg": 90.0, "num_vehicles": 2, "num_walkers": 4,
              "warmup_ticks": 2, **kw}
    return CaptureSettings(**values)


def _assert_cleaned_up(fake, joined=False):
    """Nothing the capture spawned is left and the world is as it found it."""
    assert fake.spawned() and fake.alive_spawned() == []
    assert sorted(fake.destroyed) == sorted(fake.spawned())
    if joined:
        assert fake.applied == [] and fake.tm_sync == []
        return
    assert fake.applied[0].synchronous_mode and fake.applied[0].fixed_delta_seconds == 0.05
    assert not fake.settings.synchronous_mode and fake.settings.fixed_delta_seconds is None
    assert fake.tm_sync == [True, False]
    for i in fake.spawned("controller.ai.walker"):
        assert [c[0] for c in fake.spawned_actors[i].calls][-1] == "stop"
    for i in fake.spawned("sensor."):
        assert not fake.spawned_actors[i].listening


def _frame_marker(root, rec):
    """(frame id from the RGB image, from the depth image, traffic-sign x from the labels)."""
    rgb = read_rgb_png(rec.image_path)
    depth = read_depth_png(rec.depth_path, load_depth_format(root))
    signs = [b for b, c in zip(rec.boxes_xyxy, rec.labels, strict=True)
             if c == category_id("traffic_sign")]
    return int(rgb[0, 0, 0]), round(float(depth[0, 0])), int(signs[0][0])


def test_capture_writes_labelled_frames_and_cleans_up(tmp_path):
    """Stand-in server: spawns, labels, pose, 3D boxes by actor id, full cleanup."""
    fake = FakeCarla()
    result = capture(_settings(tmp_path), carla_module=fake)
    assert (result.frames, result.skipped_frames, result.vehicles, result.walkers) == (3, 0, 2, 4)
    assert result.actor_ids_trusted
    _assert_cleaned_up(fake)
    ego = fake.spawned_actors[fake.spawned("vehicle.")[0]]
    assert BASE_TYPES[ego.type_id] == "car" and ego.attributes["role_name"] == "hero"
    assert ego.autopilot == (True, 8000)
    traffic = [fake.spawned_actors[i] for i in fake.spawned("vehicle.")[1:]]
    assert len(traffic) == 2 and all(a.autopilot == (True, 8000) for a in traffic)
    assert all(a.attributes["role_name"] == "autopilot" for a in traffic)
    assert fake.tm_seed == 0
    cameras = sorted(fake.spawned_actors[i].type_id for i in fake.spawned("sensor."))
    assert cameras == ["sensor.camera.depth", "sensor.camera.instance_segmentation",
                       "sensor.camera.rgb"]
    assert all(fake.spawned_actors[i].parent is ego for i in fake.spawned("sensor."))
    assert {fake.spawned_actors[i].attributes["fov"] for i in fake.spawned("sensor.")} == {"90.0"}

    records = load_index(tmp_path / "ds", "train")
    assert [r.sequence for r in records] == ["carla_Town10HD_Opt_0000"] * 3
    assert [r.frame_index for r in records] == [0, 1, 2]
    truth = toy_frame()
    ego_xyz = (ego.transform.location.x, ego.transform.location.y, ego.transform.location.z)
    for rec in records:
        assert rec.has_boxes and rec.has_depth
        frame_rgb, frame_depth, sign_x = _frame_marker(tmp_path / "ds", rec)
        assert frame_rgb == frame_depth and sign_x == 100 + 4 * (frame_rgb % 10)
        assert rec.timestamp_s == pytest.approx(0.05 * frame_rgb)
        # CARLA's own frame: camera 2 m ahead of and 2 m above the ego's origin, no rotation.
        np.testing.assert_allclose(rec.pose, (ego_xyz[0] + 2, ego_xyz[1], ego_xyz[2] + 2,
                                              0, 0, 0))
        objects = [(c, b) for c, b in zip(rec.labels, rec.boxes_xyxy, strict=True)
                   if c != category_id("traffic_sign")]
        assert [c for c, _ in objects] == [1, 6]
        np.testing.assert_allclose([b for _, b in objects],
                                   [pixel_box(o, 160, 90) for o in truth.objects])
        depth = read_depth_png(rec.depth_path, load_depth_format(tmp_path / "ds"))
        ok = truth.depth_m < 255
        ok[0, 0] = False  # the frame marker
        assert np.max(np.abs(depth[ok] - truth.depth_m[ok])) < 0.5 / 256 + 1e-3
    anns = load_coco(tmp_path / "ds", "train")["annotations"]
    car = next(a for a in anns if a["category_id"] == 1)
    # Its actor id is 0x10001; the instance map carries the low 16 bits.
    assert car["instance_id"] == 1 and car["distance_m"] == pytest.approx(12.0, abs=0.01)
    np.testing.assert_allclose(car["box3d"]["center_optical_m"], TOY_OBJECTS[0][1:4], atol=1e-6)
    sign = next(a for a in anns if a["category_id"] == category_id("traffic_sign"))
    assert sign["instance_id"] < 0 and sign["box3d"] is None  # scenery: no actor, no 3D box


def test_walkers_get_ai_controllers_started_after_a_tick(tmp_path):
    """Stand-in server: walkers from walker.pedestrian.*, each with a started controller."""
    fake = FakeCarla(navigation_none_every=3)  # CARLA may find no navigation point
    result = capture(_settings(tmp_path, num_walkers=6, walker_cross_fraction=0.25),
                     carla_module=fake)
    walkers = fake.spawned("walker.pedestrian.")
    controllers = [fake.spawned_actors[i] for i in fake.spawned("controller.ai.walker")]
    assert result.walkers == len(walkers) == len(controllers) == 4  # 2 of 6 draws gave None
    assert {c.parent.id for c in controllers} == set(walkers)
    assert all(fake.spawned_actors[i].attributes["is_invincible"] == "false" for i in walkers)
    assert fake.cross_factor == 0.25
    for c in controllers:
        names = [call[0] for call in c.calls]
        assert names[:3] == ["start", "go_to_location", "set_max_speed"]
        assert c.calls[0][1] > c.spawn_frame  # a tick came between spawn and start
        assert c.calls[2][1] == pytest.approx(1.3)  # the blueprint's walking speed
    _assert_cleaned_up(fake)


def test_no_walkers_and_no_traffic(tmp_path):
    """Stand-in server: --walkers 0 --vehicles 0 spawn only the ego and its cameras."""
    fake = FakeCarla()
    result = capture(_settings(tmp_path, num_walkers=0, num_vehicles=0), carla_module=fake)
    assert (result.vehicles, result.walkers) == (0, 0)
    assert len(fake.spawned()) == 4
    _assert_cleaned_up(fake)


@pytest.mark.parametrize("seed", range(6))
def test_ego_is_a_car_chosen_from_sorted_blueprints(tmp_path, seed):
    """Stand-in server: whatever order the server lists blueprints in, a seed picks one car."""
    egos = []
    for order in (0, 1, 2):
        fake = FakeCarla(library_order_seed=order)
        capture(_settings(tmp_path / str(order), seed=seed, frames=1), carla_module=fake)
        egos.append([fake.spawned_actors[i].type_id for i in fake.spawned("vehicle.")])
    assert egos[0] == egos[1] == egos[2]
    assert BASE_TYPES[egos[0][0]] == "car"


def test_ego_base_types_are_configurable_and_checked(tmp_path):
    """Stand-in server: another base type can be asked for; a missing one is one line."""
    fake = FakeCarla()
    # A van is taller than the default mount: the camera goes on its roof.
    capture(_settings(tmp_path, ego_base_types=("van",), camera_xyz_m=(2.0, 0.0, 2.8)),
            carla_module=fake)
    assert fake.spawned_actors[fake.spawned("vehicle.")[0]].type_id == "vehicle.toy.sprinter"
    fake = FakeCarla()
    with pytest.raises(CaptureError, match=r"base_type in \['tank'\] \(offered: bicycle, bus, "
                                           r"car, motorcycle, truck, van\)"):
        capture(_settings(tmp_path / "b", ego_base_types=("tank",)), carla_module=fake)
    assert fake.spawned() == [] and not fake.settings.synchronous_mode


def test_camera_inside_the_ego_is_refused(tmp_path):
    """Stand-in server: a camera at (2, 0, 2) m sits inside a bus; the capture says so."""
    fake = FakeCarla()
    with pytest.raises(CaptureError, match=r"inside the ego vehicle\.toy\.bus"):
        capture(_settings(tmp_path, ego_base_types=("bus",)), carla_module=fake)
    _assert_cleaned_up(fake)


def test_a_missing_image_skips_the_frame_and_counts_it(tmp_path):
    """Stand-in server: the depth image of tick 6 never arrives and an instance image of
    tick 8 is late; only frames whose three images share one tick are written."""
    fake = FakeCarla(drop={(6, "sensor.camera.depth")})
    result = capture(_settings(tmp_path, frames=4, timeout_s=0.3), carla_module=fake)
    assert result.frames == 4 and result.skipped_frames == 1
    root = tmp_path / "ds"
    markers = [_frame_marker(root, rec) for rec in load_index(root, "train")]
    assert [m[0] for m in markers] == [4, 5, 7, 8]
    assert all(rgb == depth and x == 100 + 4 * (rgb % 10) for rgb, depth, x in markers)
    _assert_cleaned_up(fake)


def test_a_camera_that_stops_fails_after_the_bounded_skips(tmp_path):
    """Stand-in server: no depth image from tick 5 on; after 5 skips the capture fails."""
    fake = FakeCarla(drop={(f, "sensor.camera.depth") for f in range(5, 40)})
    with pytest.raises(CaptureError, match=r"6 frames in a row without a depth image"):
        capture(_settings(tmp_path, frames=10, timeout_s=0.1), carla_module=fake)
    _assert_cleaned_up(fake)
    assert list_splits(tmp_path / "ds") == []


def test_an_already_synchronous_world_is_refused(tmp_path):
    """Stand-in server: another client ticks; the capture refuses and changes nothing."""
    fake = FakeCarla(synchronous=True, other_client_ticks=True)
    with pytest.raises(CaptureError, match=r"already in synchronous mode.*--join"):
        capture(_settings(tmp_path), carla_module=fake)
    assert fake.applied == [] and fake.tm_sync == [] and fake.spawned() == []
    assert fake.settings.synchronous_mode
    assert not (tmp_path / "ds").exists()


def test_join_follows_the_other_clients_ticks_read_only(tmp_path):
    """Stand-in server: with join the capture never ticks and leaves the settings alone."""
    fake = FakeCarla(synchronous=True, other_client_ticks=True)
    result = capture(_settings(tmp_path, join=True), carla_module=fake)
    assert result.frames == 3
    _assert_cleaned_up(fake, joined=True)
    assert fake.settings.synchronous_mode  # still the other client's world
    assert fake.tm_seed is None
    fake = FakeCarla()
    with pytest.raises(CaptureError, match="--join needs a world"):
        capture(_settings(tmp_path / "b", join=True), carla_module=fake)


def _interrupts_during_cleanup():
    # Ctrl-C at tick 6, then real signals while the cleanup runs.
    return [("tm_async", signal.SIGINT), ("destroy", signal.SIGINT)]


@pytest.mark.parametrize("how", ["ctrl_c", "sigterm"])
def test_interrupt_cleans_up_and_leaves_no_split(tmp_path, how):
    """Stand-in server: Ctrl-C or SIGTERM during recording."""
    fake = FakeCarla(**{"interrupt_at_tick" if how == "ctrl_c" else "sigterm_at_tick": 6})
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        capture(_settings(tmp_path), carla_module=fake)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == previous
    _assert_cleaned_up(fake)
    assert list_splits(tmp_path / "ds") == [] and not (tmp_path / "ds").exists()


@pytest.mark.parametrize("second", [signal.SIGINT, signal.SIGTERM])
def test_cleanup_survives_two_more_interrupts(tmp_path, second):
    """Stand-in server: Ctrl-C at tick 6, then a real SIGINT/SIGTERM while the Traffic Manager
    goes asynchronous and another while the actors are destroyed. The world ends asynchronous,
    no actor is left, the interrupt is raised once, the handlers are back."""
    fake = FakeCarla(interrupt_at_tick=6,
                     signals_in_cleanup=[("tm_async", second), ("destroy", signal.SIGINT)])
    lines = []
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        capture(_settings(tmp_path), carla_module=fake, notify=lines.append)
    assert fake.signals_in_cleanup == []  # both signals were sent
    _assert_cleaned_up(fake)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == previous
    assert sum("please wait" in line for line in lines) == 1


def test_an_interrupt_during_cleanup_after_a_complete_capture(tmp_path):
    """Stand-in server: the frames are all recorded, a Ctrl-C arrives during cleanup: the
    cleanup finishes, then the interrupt is raised (nothing is committed)."""
    fake = FakeCarla(signals_in_cleanup=[("apply_settings", signal.SIGINT)])
    with pytest.raises(KeyboardInterrupt):
        capture(_settings(tmp_path), carla_module=fake)
    _assert_cleaned_up(fake)
    assert list_splits(tmp_path / "ds") == []


def test_a_server_that_stops_answering_during_cleanup_is_reported(tmp_path):
    """Stand-in server: restoring the settings times out; cleanup stops asking and warns."""
    fake = FakeCarla(gone_in_cleanup=True)
    lines = []
    capture(_settings(tmp_path), carla_module=fake, notify=lines.append)
    warning = [line for line in lines if line.startswith("warning: cleanup incomplete")]
    assert len(warning) == 1 and "restore world settings: time-out" in warning[0]
    assert fake.alive_spawned()  # a server that does not answer cannot be cleaned


def test_interrupt_with_keep_partial_keeps_whole_frames(tmp_path):
    """Stand-in server: Ctrl-C at tick 6 with keep_partial keeps the 2 frames recorded."""
    fake = FakeCarla(interrupt_at_tick=6)
    with pytest.raises(KeyboardInterrupt):
        capture(_settings(tmp_path, keep_partial=True), carla_module=fake)
    _assert_cleaned_up(fake)
    assert len(load_index(tmp_path / "ds", "train")) == 2


def test_existing_split_is_refused_before_connecting(tmp_path):
    """Stand-in server: a second capture into the same split never reaches the server."""
    capture(_settings(tmp_path), carla_module=FakeCarla())
    fake = FakeCarla()
    with pytest.raises(ValueError, match="already exists"):
        capture(_settings(tmp_path), carla_module=fake)
    assert not hasattr(fake, "client_address") and fake.spawned() == []
    result = capture(_settings(tmp_path, append=True, sequence="second"), carla_module=fake)
    assert result.frames == 3 and len(load_index(tmp_path / "ds", "train")) == 6


def test_scenery_ids_that_collide_with_actor_ids_get_no_3d_box(tmp_path):
    """Stand-in server: a parked car (scenery, no actor) whose Unreal id equals the walker's
    actor id, a sign with the car actor's id, and scenery with an id no actor has: each is a
    2D label of its own class, none gets an actor's 3D box."""
    walker_id, car_id = FakeCarla.SCENE_WALKER_ID, FakeCarla.SCENE_CAR_ID & 0xFFFF
    extras = [(14, walker_id, (2, 60, 20, 75), 25.0),    # tag car, walker's id: tag mismatch
              (8, car_id, (140, 20, 150, 30), 35.0),     # tag sign, car's id: tag mismatch
              (14, car_id, (130, 40, 150, 50), 22.0),    # tag car, car's id, far off its box
              (14, 4242, (20, 30, 36, 40), 28.0)]        # an id no actor of the frame has
    fake = FakeCarla(extras=extras)
    capture(_settings(tmp_path, frames=1), carla_module=fake)
    anns = load_coco(tmp_path / "ds", "train")["annotations"]
    by_box = {tuple(a["bbox"]): a for a in anns}
    for (tag, _, (x1, y1, x2, y2), depth_m) in extras:
        ann = by_box[(x1, y1, x2 - x1, y2 - y1)]
        assert ann["category_id"] == (1 if tag == 14 else category_id("traffic_sign"))
        assert ann["instance_id"] < 0 and ann["box3d"] is None
        assert ann["distance_m"] == pytest.approx(depth_m, abs=0.01)
    actors = [a for a in anns if a["instance_id"] > 0]
    assert sorted(a["instance_id"] for a in actors) == [1, 2]
    assert all(a["box3d"] is not None for a in actors)


def test_a_motorcycle_rider_seen_alone_is_a_motorcycle(tmp_path):
    """Stand-in server: a motorcycle actor whose visible pixels are all Rider (13) is labelled
    motorcycle (its blueprint's base_type), a bicycle's rider bicycle."""
    moto = Blueprint("vehicle.toy.ninja", [18, 13], ((0, 0, 0), (1.0, 0.4, 0.8)),
                     base_type="motorcycle", number_of_wheels=2)
    bike = Blueprint("vehicle.toy.crossbike", [19, 13], ((0, 0, 0), (0.8, 0.3, 0.8)),
                     base_type="bicycle", number_of_wheels=2)
    # Both 15 m ahead (optical x -6 and 6): their boxes project to x 43..52 and 108..117.
    scene = [(7, moto, (-6.0, 0.3, 15.0)), (8, bike, (6.0, 0.3, 15.0))]
    extras = [(13, 7, (45, 42, 51, 50), 15.0), (13, 8, (109, 42, 115, 50), 15.0)]
    fake = FakeCarla(scene_actors=scene, extras=extras)
    capture(_settings(tmp_path, frames=1), carla_module=fake)
    anns = {a["instance_id"]: a for a in load_coco(tmp_path / "ds", "train")["annotations"]}
    assert anns[7]["category_id"] == category_id("motorcycle")
    assert anns[8]["category_id"] == category_id("bicycle")
    assert anns[7]["box3d"] is not None


def test_large_map_uses_hero_and_no_actor_ids_on_0_9_16(tmp_path):
    """Stand-in server: Town12 on 0.9.16 writes wrong actor ids (carla #9491): the capture
    warns, labels by semantic tag only and attaches no 3D box; the ego is the hero."""
    lines = []
    fake = FakeCarla(map_name="Carla/Maps/Town12/Town12")
    result = capture(_settings(tmp_path), carla_module=fake, notify=lines.append)
    assert not result.actor_ids_trusted
    assert any("#9491" in line for line in lines)
    ego = fake.spawned_actors[fake.spawned("vehicle.")[0]]
    assert ego.attributes["role_name"] == "hero"
    anns = load_coco(tmp_path / "ds", "train")["annotations"]
    assert {a["category_id"] for a in anns} == {1, 6, category_id("traffic_sign")}
    assert all(a["box3d"] is None and a["instance_id"] < 0 for a in anns)
    # Traffic spawns at the spawn points nearest the hero (only they are simulated).
    here = ego.transform.location.x
    gaps = sorted(abs(fake.spawned_actors[i].transform.location.x - here)
                  for i in fake.spawned("vehicle.")[1:])
    assert gaps == [100.0, 100.0] or gaps == [100.0, 200.0]
    fake = FakeCarla(map_name="Carla/Maps/Town12/Town12", server_version="0.9.17")
    assert capture(_settings(tmp_path / "b"), carla_module=fake).actor_ids_trusted


def test_a_missing_blueprint_is_one_clear_error(tmp_path):
    """Stand-in server without controller.ai.walker: the capture names it and cleans up."""
    blueprints = [bp for bp in default_blueprints() if bp.id != "controller.ai.walker"]
    fake = FakeCarla(blueprints=blueprints)
    with pytest.raises(CaptureError, match=r"no blueprint 'controller\.ai\.walker'"):
        capture(_settings(tmp_path), carla_module=fake)
    _assert_cleaned_up(fake)
