"""The CARLA capture: a real client against no server, and the orchestration against a fake."""

from __future__ import annotations

import os
import signal
import socket
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest
from dataset_helpers import TOY_OBJECTS, pixel_box, toy_frame, toy_instance_map

from depthssd_train.carla.capture import CaptureSettings, capture
from depthssd_train.carla.decode import encode_depth_bgra
from depthssd_train.cli.carla_capture import main
from depthssd_train.dataset.format import (
    list_splits,
    load_coco,
    load_depth_format,
    load_index,
    read_depth_png,
)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_server_fails_within_the_timeout_with_one_line(tmp_path, capsys):
    pytest.importorskip("carla")
    port = _closed_port()
    start = time.monotonic()
    code = main(["--host", "127.0.0.1", "--port", str(port), "--timeout", "2", "--out",
                 str(tmp_path / "ds"), "--frames", "3", "--no-progress"])
    elapsed = time.monotonic() - start
    err = capsys.readouterr().err
    assert code == 1 and elapsed < 6.0
    assert err.count("\n") == 1
    assert f"no CARLA server answered at 127.0.0.1:{port} within 2 s" in err
    assert not (tmp_path / "ds").exists()


# --------------------------------------------------------------------------- fake simulator
@dataclass
class _Loc:
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0


@dataclass
class _Rot:
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0


@dataclass
class _Transform:
    location: _Loc = field(default_factory=_Loc)
    rotation: _Rot = field(default_factory=_Rot)


@dataclass
class _Settings:
    synchronous_mode: bool = False
    fixed_delta_seconds: float | None = None


class _Blueprint:
    def __init__(self, bp_id, wheels=None):
        self.id, self.attributes = bp_id, {"role_name": ""}
        if wheels is not None:
            self.attributes["number_of_wheels"] = wheels

    def has_attribute(self, name):
        return name in self.attributes

    def get_attribute(self, name):
        return SimpleNamespace(as_int=lambda: int(self.attributes[name]))

    def set_attribute(self, name, value):
        self.attributes[name] = value


class _Actor:
    def __init__(self, server, actor_id, type_id, transform, extent=(1, 1, 1)):
        self.server, self.id, self.type_id = server, actor_id, type_id
        self.transform = transform
        self.bounding_box = SimpleNamespace(location=_Loc(), extent=_Loc(*extent))
        self.autopilot = None
        self.callback = None
        self.stopped = False

    def get_transform(self):
        return self.transform

    def set_autopilot(self, enabled, port):
        self.autopilot = (enabled, port)

    def listen(self, callback):
        self.callback = callback

    def stop(self):
        self.stopped = True

    def destroy(self):
        self.server.destroyed.append(self.id)


class FakeCarla:
    """Stands in for the ``carla`` module *and* a CARLA server, which cannot run here (no
    simulator binary, no GPU). It renders the toy scene into raw BGRA images exactly as CARLA's
    RGB, depth and instance cameras encode them, so decoding and writing are real; it records
    settings, spawned and destroyed actors so cleanup can be checked."""

    def __init__(self, interrupt_at_tick=None, sigterm_at_tick=None):
        self.interrupt_at_tick, self.sigterm_at_tick = interrupt_at_tick, sigterm_at_tick
        self.settings = _Settings()
        self.applied: list[_Settings] = []
        self.tm_sync: list[bool] = []
        self.actors: dict[int, _Actor] = {}
        self.destroyed: list[int] = []
        self.frame = 0
        self.command = SimpleNamespace(DestroyActor=lambda a: ("destroy", a.id))
        self.Transform, self.Location = _Transform, _Loc
        # Scene actors whose ids are the toy instance ids: their boxes become 3D labels.
        for k, (_, x, y, z, w, h) in enumerate(TOY_OBJECTS):
            # optical (x, y, z) -> Unreal (z, x, -y); the box centre is the actor origin.
            self.actors[k + 1] = _Actor(self, k + 1, "vehicle.toy",
                                        _Transform(_Loc(z, x, -y)), (w / 2, w / 2, h / 2))

    # carla module API
    def Client(self, host, port):  # noqa: N802 - mirrors carla.Client
        return SimpleNamespace(
            set_timeout=lambda s: None, get_world=lambda: self,
            get_trafficmanager=lambda port: SimpleNamespace(
                set_synchronous_mode=self.tm_sync.append, set_random_device_seed=lambda s: None,
                get_port=lambda: port),
            apply_batch=lambda cmds: self.destroyed.extend(i for _, i in cmds))

    # world API
    def get_settings(self):
        return _Settings(self.settings.synchronous_mode, self.settings.fixed_delta_seconds)

    def apply_settings(self, settings):
        self.settings = settings
        self.applied.append(settings)

    def get_blueprint_library(self):
        bps = [_Blueprint("vehicle.toy.car", 4), _Blueprint("vehicle.toy.bike", 2)]
        return SimpleNamespace(filter=lambda pattern: bps, find=lambda bp_id: _Blueprint(bp_id))

    def get_map(self):
        points = [_Transform(_Loc(100.0 * k, 50.0, 0.0)) for k in range(5)]
        return SimpleNamespace(name="Carla/Maps/Town10HD_Opt", get_spawn_points=lambda: points)

    def _spawn(self, bp, transform):
        actor = _Actor(self, 100 + len(self.spawned()), bp.id, transform)
        actor.attributes = dict(bp.attributes)  # CARLA copies attributes at spawn time
        self.actors[actor.id] = actor
        return actor

    def try_spawn_actor(self, bp, transform):
        return self._spawn(bp, transform)

    def spawn_actor(self, bp, transform, attach_to=None):
        assert self.settings.synchronous_mode, "sensors must be spawned in synchronous mode"
        sensor = self._spawn(bp, transform)
        sensor.size = (int(bp.attributes["image_size_x"]), int(bp.attributes["image_size_y"]))
        return sensor

    def get_actors(self):
        return [a for a in self.actors.values() if a.id not in self.destroyed]

    def tick(self):
        assert self.settings.synchronous_mode and self.settings.fixed_delta_seconds == 0.05
        self.frame += 1
        if self.frame == self.interrupt_at_tick:
            raise KeyboardInterrupt
        if self.frame == self.sigterm_at_tick:
            os.kill(os.getpid(), signal.SIGTERM)
        sensors = [a for a in self.actors.values() if a.type_id.startswith("sensor.")]
        width, height = sensors[0].size
        frame = toy_frame(width=width, height=height, fov_deg=90.0)
        tags, ids = toy_instance_map(frame)
        alpha = np.full((height, width), 255, np.uint8)
        raw = {
            "sensor.camera.rgb": np.dstack([frame.rgb[..., ::-1], alpha]),
            "sensor.camera.depth": encode_depth_bgra(frame.depth_m),
            "sensor.camera.instance_segmentation": np.dstack(
                [(ids >> 8).astype(np.uint8), (ids & 255).astype(np.uint8), tags, alpha]),
        }
        for sensor in sensors:
            sensor.callback(SimpleNamespace(frame=self.frame, timestamp=0.05 * self.frame,
                                            transform=_Transform(),
                                            raw_data=raw[sensor.type_id].tobytes()))
        return self.frame

    def spawned(self):
        return [i for i in self.actors if i >= 100]


def _settings(tmp_path, **kw):
    return CaptureSettings(out=tmp_path / "ds", split="train", frames=3, timeout_s=1.0,
                           width=160, height=90, fov_deg=90.0, num_vehicles=2,
                           warmup_ticks=2, **kw)


def _assert_cleaned_up(fake):
    assert sorted(fake.destroyed) == sorted(fake.spawned())
    assert fake.applied[0].synchronous_mode and fake.applied[0].fixed_delta_seconds == 0.05
    assert not fake.applied[-1].synchronous_mode and fake.applied[-1].fixed_delta_seconds is None
    assert fake.tm_sync == [True, False]
    assert all(fake.actors[i].stopped for i in fake.spawned()
               if fake.actors[i].type_id.startswith("sensor."))


def test_capture_writes_labelled_frames_and_cleans_up(tmp_path):
    fake = FakeCarla()
    assert capture(_settings(tmp_path), carla_module=fake) == 3
    assert fake.frame == 5  # 2 warm-up ticks + 3 frames
    _assert_cleaned_up(fake)
    ego = fake.actors[100]
    assert ego.autopilot == (True, 8000) and ego.type_id == "vehicle.toy.car"
    assert ego.attributes["role_name"] == "ego_vehicle"
    traffic = [fake.actors[i] for i in (101, 102)]
    assert all(a.type_id.startswith("vehicle.") and a.autopilot == (True, 8000)
               for a in traffic)
    cameras = sorted(fake.actors[i].type_id for i in (103, 104, 105))
    assert cameras == ["sensor.camera.depth", "sensor.camera.instance_segmentation",
                       "sensor.camera.rgb"]
    assert {fake.actors[i].attributes["fov"] for i in (103, 104, 105)} == {"90.0"}
    records = load_index(tmp_path / "ds", "train")
    assert [r.sequence for r in records] == ["carla_Town10HD_Opt_0000"] * 3
    truth = toy_frame()
    for rec in records:
        assert rec.has_boxes and rec.has_depth
        assert rec.labels.tolist() == [1, 6]
        np.testing.assert_allclose(rec.boxes_xyxy, [pixel_box(o, 160, 90)
                                                    for o in truth.objects])
        depth = read_depth_png(rec.depth_path, load_depth_format(tmp_path / "ds"))
        ok = truth.depth_m < 255
        assert np.max(np.abs(depth[ok] - truth.depth_m[ok])) < 0.5 / 256 + 1e-3
    anns = load_coco(tmp_path / "ds", "train")["annotations"]
    np.testing.assert_allclose(anns[0]["box3d"]["center_optical_m"], TOY_OBJECTS[0][1:4],
                               atol=1e-6)
    assert anns[0]["distance_m"] == pytest.approx(12.0, abs=0.01)


@pytest.mark.parametrize("how", ["ctrl_c", "sigterm"])
def test_interrupt_cleans_up_and_leaves_no_split(tmp_path, how):
    fake = FakeCarla(**{"interrupt_at_tick" if how == "ctrl_c" else "sigterm_at_tick": 4})
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        capture(_settings(tmp_path), carla_module=fake)
    assert signal.getsignal(signal.SIGTERM) == previous
    _assert_cleaned_up(fake)
    assert list_splits(tmp_path / "ds") == [] and not (tmp_path / "ds").exists()


def test_interrupt_with_keep_partial_keeps_whole_frames(tmp_path):
    fake = FakeCarla(interrupt_at_tick=5)
    with pytest.raises(KeyboardInterrupt):
        capture(_settings(tmp_path, keep_partial=True), carla_module=fake)
    _assert_cleaned_up(fake)
    assert len(load_index(tmp_path / "ds", "train")) == 2


def test_existing_split_is_refused_before_touching_the_server(tmp_path):
    assert capture(_settings(tmp_path), carla_module=FakeCarla()) == 3
    fake = FakeCarla()
    with pytest.raises(ValueError, match="already exists"):
        capture(_settings(tmp_path), carla_module=fake)
    assert fake.applied == [] and fake.spawned() == []
