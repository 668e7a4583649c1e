"""A stand-in for the ``carla`` module *and* a CARLA server, which cannot run here (no simulator
binary, no GPU).

It mirrors the parts of the 0.9.16 Python API the capture uses, with their real names and
semantics (checked against the installed ``carla`` wheel): ``Client`` (``set_timeout``,
``get_world``, ``get_server_version``, ``get_trafficmanager``, ``apply_batch_sync`` returning
``command.Response``-like objects), ``World`` (``get_settings``/``apply_settings`` on a
``WorldSettings`` copy, ``tick(seconds)`` returning the frame id, ``wait_for_tick`` and
``get_snapshot`` returning a ``WorldSnapshot`` of ``ActorSnapshot``\\ s, ``get_actors(ids)``,
``try_spawn_actor``/``spawn_actor`` with ``attach_to``, ``get_random_location_from_navigation``,
``set_pedestrians_seed``/``set_pedestrians_cross_factor``), a ``BlueprintLibrary`` whose
``filter`` takes wildcards and lists blueprints in no particular order, blueprints with
``base_type``/``number_of_wheels``/``role_name``/``color``/``speed`` attributes, walkers and
``controller.ai.walker`` (``start``, ``go_to_location``, ``set_max_speed``, ``stop``), and
cameras that deliver their images from another thread, in order, each carrying the frame id of
its tick.

It renders the toy scene of ``dataset_helpers`` into raw BGRA images exactly as CARLA's RGB,
depth and instance cameras encode them, so decoding and writing are real. A frame marker makes
mismatched images visible: the R value of RGB pixel (0, 0) and the depth at (0, 0) are the frame
id, and a 4x6 px traffic sign (scenery, id 0) sits at x = 100 + 4 * (frame % 10) in the
instance map. It records settings, spawned/destroyed actors and controller calls, and can inject
faults: dropped or late images, Ctrl-C or SIGTERM at a tick, real signals during cleanup, a
server that stops answering.
"""

from __future__ import annotations

import fnmatch
import math
import os
import queue
import random
import threading
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
from dataset_helpers import TOY_OBJECTS, toy_frame, toy_instance_map

from depthssd_train.carla.decode import encode_depth_bgra


@dataclass
class Location:
    x: float = 0.0
    y: float = 0.0
    z: float = 0.0


@dataclass
class Rotation:
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0


@dataclass
class Transform:
    location: Location = field(default_factory=Location)
    rotation: Rotation = field(default_factory=Rotation)


@dataclass
class WorldSettings:
    synchronous_mode: bool = False
    fixed_delta_seconds: float | None = None
    no_rendering_mode: bool = False


class Attribute:
    """``carla.ActorAttribute``: typed views of a string value."""

    def __init__(self, value, recommended=(), modifiable=True):
        self.value, self.recommended_values = str(value), list(recommended)
        self.is_modifiable = modifiable

    def as_str(self):
        return self.value

    def as_int(self):
        return int(self.value)

    def as_float(self):
        return float(self.value)


class Blueprint:
    """``carla.ActorBlueprint``. Fixed attributes (``base_type``, ...) refuse ``set``."""

    def __init__(self, bp_id, tags=(), box=((0, 0, 0.5), (0.5, 0.5, 0.5)), **attributes):
        self.id, self.semantic_tags, self.box = bp_id, list(tags), box
        self.attributes: dict[str, Attribute] = {"role_name": Attribute("")}
        for name, value in attributes.items():
            self.attributes[name] = value if isinstance(value, Attribute) else \
                Attribute(value, modifiable=False)

    def has_attribute(self, name):
        return name in self.attributes

    def get_attribute(self, name):
        return self.attributes[name]

    def set_attribute(self, name, value):
        attribute = self.attributes[name]
        if not attribute.is_modifiable:
            raise RuntimeError(f"attribute {name!r} is not modifiable")
        self.attributes[name] = Attribute(value, attribute.recommended_values)

    def copy(self):
        other = Blueprint(self.id, self.semantic_tags, self.box)
        other.attributes = dict(self.attributes)
        return other


def _vehicle(bp_id, base_type, wheels, tags, extent):
    return Blueprint(bp_id, tags, ((0.0, 0.0, extent[2]), extent), base_type=base_type,
                     number_of_wheels=wheels,
                     color=Attribute("0,0,0", ["10,10,10", "200,0,0", "0,0,200"]))


def default_blueprints():
    """A small library: cars, a truck, a van, a bus, two-wheelers, walkers, cameras."""
    cam = {"image_size_x": Attribute(800), "image_size_y": Attribute(600), "fov": Attribute(90)}
    speed = Attribute("1.4", ["0.0", "1.3", "2.6"])
    return [
        _vehicle("vehicle.toy.sedan", "car", 4, [14], (2.3, 1.0, 0.75)),
        _vehicle("vehicle.toy.hatch", "car", 4, [14], (2.0, 0.9, 0.75)),
        _vehicle("vehicle.toy.firetruck", "truck", 4, [15], (4.3, 1.4, 1.9)),
        _vehicle("vehicle.toy.sprinter", "van", 4, [14], (3.0, 1.0, 1.3)),
        _vehicle("vehicle.toy.bus", "bus", 4, [16], (6.0, 1.5, 1.7)),
        _vehicle("vehicle.toy.ninja", "motorcycle", 2, [18, 13], (1.0, 0.4, 0.8)),
        _vehicle("vehicle.toy.crossbike", "bicycle", 2, [19, 13], (0.8, 0.3, 0.8)),
        *[Blueprint(f"walker.pedestrian.000{k}", [12], ((0, 0, 0), (0.3, 0.3, 0.9)),
                    is_invincible=Attribute("true"), speed=speed) for k in (1, 2, 3)],
        Blueprint("controller.ai.walker"),
        Blueprint("sensor.camera.rgb", **cam),
        Blueprint("sensor.camera.depth", **cam),
        Blueprint("sensor.camera.instance_segmentation", **cam),
    ]


class BlueprintLibrary:
    """``carla.BlueprintLibrary``: ``filter`` by wildcard, ``find`` by exact id."""

    def __init__(self, blueprints):
        self.blueprints = blueprints

    def filter(self, pattern):
        return [bp.copy() for bp in self.blueprints if fnmatch.fnmatchcase(bp.id, pattern)]

    def find(self, bp_id):
        for bp in self.blueprints:
            if bp.id == bp_id:
                return bp.copy()
        raise IndexError(f"blueprint {bp_id!r} not found")


class Actor:
    """``carla.Actor`` (and ``Vehicle``, ``Walker``, ``WalkerAIController``, ``Sensor``)."""

    def __init__(self, server, actor_id, bp, transform, parent=None):
        self.server, self.id, self.type_id = server, actor_id, bp.id
        self.attributes = {k: a.value for k, a in bp.attributes.items()}
        self.semantic_tags = list(bp.semantic_tags)
        (cx, cy, cz), (ex, ey, ez) = bp.box
        self.bounding_box = SimpleNamespace(location=Location(cx, cy, cz),
                                            extent=Location(ex, ey, ez))
        self.transform, self.parent = transform, parent
        self.autopilot = None
        self.callback = None
        self.listening = False
        self.calls: list[tuple] = []

    @property
    def is_alive(self):
        return self.id in self.server.actors

    def get_transform(self):
        return self.server.world_transform(self)

    def set_autopilot(self, enabled, port):
        self.autopilot = (enabled, port)

    # sensor
    def listen(self, callback):
        self.callback, self.listening = callback, True

    def stop(self):
        self.listening = False
        self.calls.append(("stop", self.server.frame))

    def destroy(self):
        self.server.cleanup_call("destroy")
        return self.server.remove(self.id)

    # walker controller
    def start(self):
        self.calls.append(("start", self.server.frame))

    def go_to_location(self, location):
        self.calls.append(("go_to_location", location))

    def set_max_speed(self, speed):
        self.calls.append(("set_max_speed", speed))


@dataclass
class ActorSnapshot:
    id: int
    transform: Transform

    def get_transform(self):
        return self.transform


class WorldSnapshot:
    """``carla.WorldSnapshot``: frame, timestamp and an ``ActorSnapshot`` per actor."""

    def __init__(self, frame, actors):
        self.frame = frame
        self.timestamp = SimpleNamespace(elapsed_seconds=0.05 * frame, frame=frame)
        self._actors = actors

    def __iter__(self):
        return iter(self._actors)

    def __len__(self):
        return len(self._actors)

    def find(self, actor_id):
        return next((a for a in self._actors if a.id == actor_id), None)

    def has_actor(self, actor_id):
        return self.find(actor_id) is not None


class FakeCarla:
    """The ``carla`` module and its server (see the module docstring)."""

    SCENE_CAR_ID = 0x10001  # its instance-map id is its low 16 bits: 1
    SCENE_WALKER_ID = 2

    def __init__(self, *, map_name="Carla/Maps/Town10HD_Opt/Town10HD_Opt",
                 server_version="0.9.16", synchronous=False, other_client_ticks=False,
                 library_order_seed=0, blueprints=None, extras=(), scene_actors=None,
                 drop=(), interrupt_at_tick=None, sigterm_at_tick=None,
                 signals_in_cleanup=(), gone_in_cleanup=False, navigation_none_every=7):
        self.map_name, self.server_version = map_name, server_version
        self.settings = WorldSettings(synchronous, 0.05 if synchronous else None)
        self.other_client_ticks = other_client_ticks
        self.applied: list[WorldSettings] = []
        self.tm_sync: list[bool] = []
        self.tm_seed = None
        blueprints = blueprints if blueprints is not None else default_blueprints()
        random.Random(library_order_seed).shuffle(blueprints)  # servers list in no order
        self.library = BlueprintLibrary(blueprints)
        self.actors: dict[int, Actor] = {}
        self.spawned_ids: list[int] = []
        self.spawned_actors: dict[int, Actor] = {}  # kept after destruction, for inspection
        self.destroyed: list[int] = []
        self.frame = 0
        self.extras = list(extras)  # (tag, instance id, (x1, y1, x2, y2) px, depth_m)
        self.drop = set(drop)  # (frame, camera type id): image never delivered
        self.interrupt_at_tick, self.sigterm_at_tick = interrupt_at_tick, sigterm_at_tick
        self.signals_in_cleanup = list(signals_in_cleanup)  # (call name, signal number)
        self.gone_in_cleanup = gone_in_cleanup
        self.cross_factor = None
        self._nav = random.Random(0)
        self._nav_calls = 0
        self._nav_none_every = navigation_none_every
        self.cleaning = False
        self.command = SimpleNamespace(DestroyActor=lambda actor_id: ("destroy", actor_id))
        self.Transform, self.Location, self.Rotation = Transform, Location, Rotation
        self._deliveries: queue.Queue = queue.Queue()
        threading.Thread(target=self._deliver, daemon=True).start()
        for actor_id, bp, offset in (scene_actors if scene_actors is not None
                                     else self.default_scene()):
            actor = Actor(self, actor_id, bp, Transform())
            actor.camera_offset = offset  # where it stands in the camera's optical frame
            self.actors[actor_id] = actor

    @classmethod
    def default_scene(cls):
        """The toy objects as actors (a car and a pedestrian), a spectator, a traffic light."""
        car, ped = TOY_OBJECTS
        return [
            (cls.SCENE_CAR_ID, Blueprint("vehicle.toy.parkedcar", [14],
                                         ((0, 0, 0), (car[4] / 2, car[4] / 2, car[5] / 2)),
                                         base_type="car", number_of_wheels=4), car[1:4]),
            (cls.SCENE_WALKER_ID, Blueprint("walker.pedestrian.0009", [12],
                                            ((0, 0, 0), (ped[4] / 2, ped[4] / 2, ped[5] / 2))),
             ped[1:4]),
            (3, Blueprint("spectator"), None),
            (4, Blueprint("traffic.traffic_light", [7]), (0.0, -3.0, 40.0)),
        ]

    # ------------------------------------------------------------------ carla module API
    def Client(self, host, port):  # noqa: N802 - mirrors carla.Client
        if not 0 <= int(port) <= 65535:
            raise OverflowError("bad numeric conversion: positive overflow")
        self.client_address = (host, port)
        return SimpleNamespace(
            set_timeout=lambda seconds: None, get_world=lambda: self,
            get_server_version=lambda: self.server_version,
            get_trafficmanager=lambda port=8000: SimpleNamespace(
                set_synchronous_mode=self._tm_sync, get_port=lambda: port,
                set_random_device_seed=lambda seed: setattr(self, "tm_seed", seed)),
            apply_batch_sync=self._apply_batch_sync)

    def _tm_sync(self, enabled):
        if not enabled:
            self.cleanup_call("tm_async")
        self.tm_sync.append(enabled)

    def _apply_batch_sync(self, commands, do_tick=False):
        self.cleanup_call("destroy")
        responses = []
        for _, actor_id in commands:
            ok = self.remove(actor_id)
            responses.append(SimpleNamespace(actor_id=actor_id,
                                             error="" if ok else f"actor {actor_id} not found"))
        return responses

    def cleanup_call(self, name):
        """A call that only cleanup makes: maybe a real signal arrives while it runs."""
        self.cleaning = True
        for entry in list(self.signals_in_cleanup):
            if entry[0] == name:
                self.signals_in_cleanup.remove(entry)
                os.kill(os.getpid(), entry[1])

    def remove(self, actor_id):
        actor = self.actors.pop(actor_id, None)
        if actor is None:
            return False
        self.destroyed.append(actor_id)
        return True

    # ------------------------------------------------------------------------ world API
    def get_settings(self):
        s = self.settings
        return WorldSettings(s.synchronous_mode, s.fixed_delta_seconds, s.no_rendering_mode)

    def apply_settings(self, settings, seconds=0.0):
        if self.gone_in_cleanup and not settings.synchronous_mode:
            raise RuntimeError("time-out of 1000ms while waiting for the simulator, make sure "
                               "the simulator is ready and connected to localhost:2000")
        if not settings.synchronous_mode:
            self.cleanup_call("apply_settings")
        self.settings = settings
        self.applied.append(settings)
        return self.frame

    def get_blueprint_library(self):
        return self.library

    def get_map(self):
        points = [Transform(Location(100.0 * k, 50.0, 0.3)) for k in range(6)]
        return SimpleNamespace(name=self.map_name, get_spawn_points=lambda: points)

    def get_random_location_from_navigation(self):
        self._nav_calls += 1
        if self._nav_calls % self._nav_none_every == 0:
            return None  # CARLA returns None when no navigation point is found
        return Location(self._nav.uniform(-50, 50), self._nav.uniform(-50, 50), 1.0)

    def set_pedestrians_seed(self, seed):
        self._nav = random.Random(seed)

    def set_pedestrians_cross_factor(self, percentage):
        self.cross_factor = percentage

    def _spawn(self, bp, transform, attach_to=None):
        if bp.id.startswith("vehicle."):
            for other in self.actors.values():
                if other.type_id.startswith("vehicle.") and other.parent is None and \
                        math.dist(_xyz(other.transform), _xyz(transform)) < 1.0:
                    return None  # collision at the spawn point
        if bp.id == "controller.ai.walker" and (
                attach_to is None or not attach_to.type_id.startswith("walker.")):
            raise RuntimeError("a walker controller must be attached to a walker")
        actor_id = 100 + len(self.spawned_ids)
        actor = Actor(self, actor_id, bp, transform, parent=attach_to)
        actor.spawn_frame = self.frame
        self.actors[actor_id] = actor
        self.spawned_ids.append(actor_id)
        self.spawned_actors[actor_id] = actor
        return actor

    def try_spawn_actor(self, bp, transform, attach_to=None):
        return self._spawn(bp, transform, attach_to)

    def spawn_actor(self, bp, transform, attach_to=None):
        actor = self._spawn(bp, transform, attach_to)
        if actor is None:
            raise RuntimeError("Spawn failed because of collision at spawn position")
        if bp.id.startswith("sensor."):
            actor.size = (int(bp.attributes["image_size_x"].value),
                          int(bp.attributes["image_size_y"].value))
        return actor

    def get_actors(self, actor_ids=None):
        if actor_ids is None:
            return list(self.actors.values())
        return [self.actors[i] for i in actor_ids if i in self.actors]

    def world_transform(self, actor):
        """World transform of an actor; scene actors stand at fixed places before the camera."""
        offset = getattr(actor, "camera_offset", None)
        camera = self.camera_transform() if offset is not None else None
        if camera is not None:
            x, y, z = offset  # optical -> Unreal axes, relative to the (unrotated) camera
            loc = camera.location
            return Transform(Location(loc.x + z, loc.y + x, loc.z - y))
        if actor.parent is not None:
            base = actor.parent.transform.location
            loc = actor.transform.location
            return Transform(Location(base.x + loc.x, base.y + loc.y, base.z + loc.z),
                             actor.parent.transform.rotation)
        return actor.transform

    def camera_transform(self):
        cams = [a for a in self.actors.values() if a.type_id.startswith("sensor.camera.")]
        return self.world_transform(cams[0]) if cams else None

    def snapshot(self):
        return WorldSnapshot(self.frame, [ActorSnapshot(a.id, a.get_transform())
                                          for a in self.actors.values()])

    def get_snapshot(self):
        return self.snapshot()

    def tick(self, seconds=0.0):
        assert not self.other_client_ticks, "only one client may tick"
        assert self.settings.synchronous_mode and self.settings.fixed_delta_seconds == 0.05
        return self._step()

    def wait_for_tick(self, seconds=0.0):
        # The other client ticks while we wait.
        assert self.other_client_ticks, "nobody ticks: wait_for_tick would time out"
        self._step()
        return self.snapshot()

    def _step(self):
        self.frame += 1
        if self.frame == self.interrupt_at_tick:
            raise KeyboardInterrupt
        if self.frame == self.sigterm_at_tick:
            os.kill(os.getpid(), 15)
        cameras = [a for a in self.actors.values() if a.type_id.startswith("sensor.camera.")]
        if cameras:
            raw = self.render(*cameras[0].size)
            for camera in cameras:
                if (self.frame, camera.type_id) in self.drop:
                    continue
                image = SimpleNamespace(
                    frame=self.frame, timestamp=0.05 * self.frame,
                    transform=self.world_transform(camera), width=camera.size[0],
                    height=camera.size[1], raw_data=raw[camera.type_id].tobytes())
                self._deliveries.put((camera, image))
        return self.frame

    def _deliver(self):
        while True:
            camera, image = self._deliveries.get()
            if camera.listening:
                camera.callback(image)

    def render(self, width, height):
        """Raw BGRA images of the three cameras for the current frame."""
        frame = toy_frame(width=width, height=height, fov_deg=90.0)
        tags, ids = toy_instance_map(frame)
        depth = frame.depth_m.copy()
        marker = (self.frame % 10) * 4 + 100
        extras = [*self.extras, (8, 0, (marker, 2, marker + 4, 8), 30.0)]
        for tag, instance_id, (x1, y1, x2, y2), depth_m in extras:
            tags[y1:y2, x1:x2], ids[y1:y2, x1:x2], depth[y1:y2, x1:x2] = \
                tag, instance_id, depth_m
        depth[0, 0] = self.frame
        rgb = frame.rgb[..., ::-1].copy()
        rgb[0, 0] = (0, 0, self.frame % 256)  # BGR: R is the frame id
        alpha = np.full((height, width), 255, np.uint8)
        return {
            "sensor.camera.rgb": np.dstack([rgb, alpha]),
            "sensor.camera.depth": encode_depth_bgra(depth),
            "sensor.camera.instance_segmentation": np.dstack(
                [(ids >> 8).astype(np.uint8), (ids & 255).astype(np.uint8), tags, alpha]),
        }

    # ------------------------------------------------------------------ test helpers
    def spawned(self, prefix=""):
        """Ids of the actors the client spawned whose type starts with ``prefix``."""
        return [i for i, a in self.spawned_actors.items() if a.type_id.startswith(prefix)]

    def alive_spawned(self):
        return [i for i in self.spawned_ids if i in self.actors]


def _xyz(transform):
    loc = transform.location
    return (loc.x, loc.y, loc.z)
