"""Everything a capture changes on a CARLA server, and the guarantee that it is undone.

:class:`CarlaSession` claims the world (synchronous at 20 Hz, unless it joins another client's
ticks), spawns the ego, NPC traffic on the Traffic Manager, walkers with AI controllers and three
aligned cameras, hands out frames whose images all carry the frame id of one tick, and on exit
restores the world and destroys every actor it spawned. The cleanup cannot be cut short by a
second Ctrl-C or a SIGTERM: both are deferred while it runs, and the interrupt is raised once
the server is clean. Only the ``carla`` API is used (passed in, so a stand-in can be injected).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import re
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from depthssd_core.geometry import CameraIntrinsics
from depthssd_train.carla.decode import FrameActor, carla_transform_matrix, frame_actor
from depthssd_train.carla.settings import FIXED_DELTA_S, CaptureError, CaptureSettings
from depthssd_train.signals import STOP_SIGNALS, signal_handlers

_log = logging.getLogger(__name__)
CAMERAS = (("rgb", "sensor.camera.rgb"), ("depth", "sensor.camera.depth"),
           ("instance", "sensor.camera.instance_segmentation"))
# CARLA's large maps (tiles streamed around the hero): Town11, Town12, Town13, Town15.
_LARGE_MAP = re.compile(r"Town1[1235](?![0-9])")
_LABELLED_TYPES = ("vehicle.", "walker.pedestrian.", "traffic.")
_WALKING_SPEED_MPS = 1.4  # used when a walker blueprint recommends no speed


def is_large_map(map_name: str) -> bool:
    """Whether ``map_name`` (e.g. ``Carla/Maps/Town12/Town12``) is one of CARLA's large maps."""
    return bool(_LARGE_MAP.search(map_name))


def instance_ids_are_actor_ids(map_name: str, server_version: str) -> bool:
    """Whether instance ids can be trusted as actor ids on this map and server.

    0.9.16 writes wrong actor ids into the instance map on large maps (carla-simulator issue
    #9491, fixed after the release); an unreadable version counts as affected.
    """
    if not is_large_map(map_name):
        return True
    found = re.match(r"\D*(\d+)\.(\d+)\.(\d+)", server_version or "")
    return found is not None and tuple(int(v) for v in found.groups()) > (0, 9, 16)


def transform_matrix(transform: Any) -> np.ndarray:
    """4x4 parent-from-local matrix of a ``carla.Transform``."""
    loc, rot = transform.location, transform.rotation
    return carla_transform_matrix((loc.x, loc.y, loc.z), (rot.pitch, rot.yaw, rot.roll))


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM unwind like Ctrl-C so the session's cleanup runs (main thread only)."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    with signal_handlers((signal.SIGTERM,), handler):
        yield


class _DeferredInterrupts:
    """A handler that notes SIGINT and SIGTERM instead of raising (:meth:`note`)."""

    def __init__(self, notify: Callable[[str], None]) -> None:
        self.notify = notify
        self.received = False

    def note(self, signum: int, frame: Any) -> None:
        if not self.received:
            self.notify("cleaning up the CARLA server first (settings, actors); please wait")
        self.received = True


@dataclass(frozen=True)
class _ActorInfo:
    """The static part of an actor, fetched once per actor id."""

    type_id: str
    attributes: dict[str, str]
    semantic_tags: tuple[int, ...]
    box_center_m: tuple[float, float, float]
    box_extent_m: tuple[float, float, float]


@dataclass
class CarlaFrame:
    """One tick: its frame id, simulation time, world snapshot and one image per camera."""

    frame: int
    timestamp_s: float
    snapshot: Any
    images: dict[str, Any]


class CarlaSession:
    """Owns everything the capture changes on the server, and undoes it on exit.

    Args:
        carla: the ``carla`` module.
        client: a connected ``carla.Client``.
        world: its ``carla.World``.
        settings: what to spawn and how to tick.
        notify: where status and warning lines go.
    """

    def __init__(self, carla: Any, client: Any, world: Any, settings: CaptureSettings,
                 notify: Callable[[str], None] | None = None) -> None:
        self.carla, self.client, self.world, self.settings = carla, client, world, settings
        self.notify = notify or _log.info
        self.intrinsics = CameraIntrinsics.from_fov(settings.width, settings.height,
                                                    settings.fov_deg)
        self.map_name = ""
        self.vehicles: list[Any] = []  # the ego first
        self.walkers: list[Any] = []
        self.controllers: list[Any] = []
        self.sensors: dict[str, Any] = {}
        self.queues: dict[str, queue.Queue] = {}
        self.skipped_frames = 0
        self._pending: dict[str, Any] = {}
        self._consecutive_skips = 0
        self._original_settings = None
        self._traffic_manager = None
        self._actor_info: dict[int, _ActorInfo | None] = {}
        self._rng = np.random.default_rng(settings.seed)
        self.ego_spawn: Any = None

    # ------------------------------------------------------------------------------ lifetime
    def __enter__(self) -> CarlaSession:
        try:
            self._setup()
        except BaseException:
            self.close(raise_interrupt=False)
            raise
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        # With an exception already unwinding, a Ctrl-C during cleanup must not replace it.
        self.close(raise_interrupt=exc_type is None)

    @property
    def ego(self) -> Any:
        """The ego vehicle the cameras ride on."""
        return self.vehicles[0]

    def _setup(self) -> None:
        carla_map = self.world.get_map()  # one call: it transfers the map's OpenDRIVE
        self.map_name = str(carla_map.name)
        self._claim_world()
        library = self.world.get_blueprint_library()
        spawn_points = list(carla_map.get_spawn_points())
        if not spawn_points:
            raise CaptureError(f"the map {self.map_name} has no spawn points")
        order = [spawn_points[int(k)] for k in self._rng.permutation(len(spawn_points))]
        rest = self._spawn_ego(library, order)
        if is_large_map(self.map_name):
            # Only actors near the hero are simulated on a large map: keep the traffic close.
            here = self.ego_spawn.location
            rest.sort(key=lambda t: (t.location.x - here.x) ** 2 + (t.location.y - here.y) ** 2)
        self._spawn_traffic(library, rest)
        self._spawn_walkers(library)
        self._spawn_cameras(library)
        self.notify(f"spawned ego {self.ego.type_id}, {len(self.vehicles) - 1} of "
                    f"{self.settings.num_vehicles} vehicles and {len(self.walkers)} of "
                    f"{self.settings.num_walkers} walkers on {self.map_name}")

    def _claim_world(self) -> None:
        s = self.settings
        current = self.world.get_settings()
        if current.synchronous_mode and not s.join:
            raise CaptureError(
                "the world is already in synchronous mode: another client (e.g. "
                "carla-ros-bridge) ticks it, and only one client may; stop it, pass --join to "
                "record its ticks, or restart the server if a crashed client left it so")
        if s.join and not current.synchronous_mode:
            raise CaptureError("--join needs a world that another client ticks in synchronous "
                               "mode; this one is asynchronous (drop --join)")
        self._traffic_manager = self.client.get_trafficmanager(s.tm_port)
        if s.join:
            return
        self._original_settings = current
        sync = self.world.get_settings()
        sync.synchronous_mode = True
        sync.fixed_delta_seconds = FIXED_DELTA_S
        self.world.apply_settings(sync)
        self._traffic_manager.set_synchronous_mode(True)
        self._traffic_manager.set_random_device_seed(s.seed)

    def _blueprints(self, library: Any, pattern: str) -> list[Any]:
        # Sorted by id so that one seed gives one choice whatever order the server lists them.
        return sorted(library.filter(pattern), key=lambda bp: bp.id)

    @staticmethod
    def _find(library: Any, blueprint_id: str) -> Any:
        try:
            return library.find(blueprint_id)
        except (IndexError, RuntimeError) as err:  # the client raises IndexError for unknown ids
            raise CaptureError(f"the server has no blueprint {blueprint_id!r} ({err})") from None

    def _choose(self, items: Sequence[Any]) -> Any:
        return items[int(self._rng.integers(len(items)))]

    def _spawn_ego(self, library: Any, order: list[Any]) -> list[Any]:
        s = self.settings
        wanted = {t.lower() for t in s.ego_base_types}
        candidates = self._blueprints(library, s.ego_filter)
        cars = [bp for bp in candidates if bp.has_attribute("base_type")
                and bp.get_attribute("base_type").as_str().lower() in wanted]
        if not cars:
            offered = sorted({bp.get_attribute("base_type").as_str() for bp in candidates
                              if bp.has_attribute("base_type")})
            raise CaptureError(f"no blueprint matching {s.ego_filter!r} has base_type in "
                               f"{sorted(wanted)} (offered: {', '.join(offered) or 'none'})")
        bp = self._choose(cars)
        if bp.has_attribute("role_name"):
            bp.set_attribute("role_name", s.ego_role)
        for k, point in enumerate(order):
            actor = self.world.try_spawn_actor(bp, point)
            if actor is not None:
                self.vehicles.append(actor)
                self.ego_spawn = point
                actor.set_autopilot(True, self._traffic_manager.get_port())
                self._check_camera_outside(actor)
                return order[:k] + order[k + 1:]
        raise CaptureError(f"could not spawn the ego {bp.id} at any of {len(order)} spawn "
                           "points (all blocked?)")

    def _check_camera_outside(self, ego: Any) -> None:
        bb = ego.bounding_box
        x, y, z = self.settings.camera_xyz_m
        if (abs(x - bb.location.x) < bb.extent.x and abs(y - bb.location.y) < bb.extent.y
                and abs(z - bb.location.z) < bb.extent.z):
            raise CaptureError(f"the camera at {self.settings.camera_xyz_m} m is inside the "
                               f"ego {ego.type_id} (half sizes {bb.extent.x:.2f}, "
                               f"{bb.extent.y:.2f}, {bb.extent.z:.2f} m); move it with "
                               "--camera-xyz or choose another ego")

    def _spawn_traffic(self, library: Any, points: list[Any]) -> None:
        want = self.settings.num_vehicles
        if want > len(points):
            self.notify(f"warning: {want} vehicles asked, the map has {len(points)} free spawn "
                        "points")
        pool = self._blueprints(library, "vehicle.*")
        tm_port = self._traffic_manager.get_port()
        for point in points[:want]:
            bp = self._choose(pool)
            if bp.has_attribute("role_name"):
                bp.set_attribute("role_name", "autopilot")
            if bp.has_attribute("color"):
                colours = list(bp.get_attribute("color").recommended_values)
                if colours:
                    bp.set_attribute("color", self._choose(colours))
            actor = self.world.try_spawn_actor(bp, point)
            if actor is not None:
                self.vehicles.append(actor)
                actor.set_autopilot(True, tm_port)

    def _spawn_walkers(self, library: Any) -> None:
        s = self.settings
        if s.num_walkers == 0:
            return
        pool = self._blueprints(library, "walker.pedestrian.*")
        if not pool:
            self.notify("warning: the server offers no walker.pedestrian.* blueprints")
            return
        self.world.set_pedestrians_seed(s.seed)
        speeds = []
        for _ in range(s.num_walkers):
            location = self.world.get_random_location_from_navigation()
            if location is None:
                continue
            bp = self._choose(pool)
            if bp.has_attribute("is_invincible"):
                bp.set_attribute("is_invincible", "false")
            speed = _WALKING_SPEED_MPS
            if bp.has_attribute("speed"):
                recommended = list(bp.get_attribute("speed").recommended_values)
                if len(recommended) > 1:  # [still, walking, running]
                    speed = float(recommended[1])
            walker = self.world.try_spawn_actor(bp, self.carla.Transform(location))
            if walker is not None:
                self.walkers.append(walker)
                speeds.append(speed)
        controller_bp = self._find(library, "controller.ai.walker")
        started = []
        for walker, speed in zip(self.walkers, speeds, strict=True):
            controller = self.world.try_spawn_actor(controller_bp, self.carla.Transform(),
                                                    attach_to=walker)
            if controller is not None:
                self.controllers.append(controller)
                started.append((controller, speed))
        self._advance()  # the controllers need the walkers' first transform from a tick
        self.world.set_pedestrians_cross_factor(float(s.walker_cross_fraction))
        for controller, speed in started:
            controller.start()
            for _ in range(5):  # no navigation point found is a None, not an error
                destination = self.world.get_random_location_from_navigation()
                if destination is not None:
                    controller.go_to_location(destination)
                    break
            controller.set_max_speed(speed)

    def _spawn_cameras(self, library: Any) -> None:
        s = self.settings
        x, y, z = s.camera_xyz_m
        mount = self.carla.Transform(self.carla.Location(x=x, y=y, z=z))
        for name, blueprint in CAMERAS:
            bp = self._find(library, blueprint)
            bp.set_attribute("image_size_x", str(s.width))
            bp.set_attribute("image_size_y", str(s.height))
            bp.set_attribute("fov", str(s.fov_deg))
            sensor = self.world.spawn_actor(bp, mount, attach_to=self.ego)
            self.sensors[name] = sensor
            self.queues[name] = queue.Queue()
            sensor.listen(self.queues[name].put)

    # -------------------------------------------------------------------------------- frames
    def _advance(self) -> Any:
        """Let the simulation take one step; the world snapshot of that step."""
        timeout = self.settings.timeout_s
        try:
            if self.settings.join:
                return self.world.wait_for_tick(timeout)
            frame = self.world.tick(timeout)
            snapshot = self.world.get_snapshot()
        except RuntimeError as err:
            raise CaptureError(f"the server did not complete a tick within {timeout:g} s "
                               f"({err})") from None
        if snapshot.frame != frame:  # nobody else ticks in our synchronous world
            raise CaptureError(f"tick returned frame {frame} but the world is at "
                               f"{snapshot.frame}: another client ticks this world")
        return snapshot

    def warm_up(self, ticks: int) -> None:
        """Step ``ticks`` times without recording, dropping the images they produce."""
        for _ in range(ticks):
            self._advance()
        for q in self.queues.values():
            with contextlib.suppress(queue.Empty):
                while True:
                    q.get_nowait()

    def _image_for(self, name: str, frame: int, deadline: float) -> Any:
        """The image of ``name`` with exactly ``frame``, or ``None`` if it is missing."""
        pending = self._pending.get(name)
        if pending is not None and pending.frame >= frame:
            if pending.frame > frame:
                return None
            return self._pending.pop(name)
        while True:
            try:
                image = self.queues[name].get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None
            if image.frame == frame:
                return image
            if image.frame > frame:  # this camera skipped our frame: keep it for its own
                self._pending[name] = image
                return None
            # older frames: images of warm-up ticks or of a frame given up on

    def next_frame(self) -> CarlaFrame | None:
        """Step once; the frame if every camera delivered an image of exactly that tick.

        Waits at most ``timeout_s`` for the images. A frame missing an image is counted in
        ``skipped_frames`` and ``None`` returned; more than ``max_consecutive_skips`` in a row
        fail the capture.
        """
        snapshot = self._advance()
        deadline = time.monotonic() + self.settings.timeout_s
        images, missing = {}, []
        for name in self.queues:
            image = self._image_for(name, snapshot.frame, deadline)
            if image is None:
                missing.append(name)
            images[name] = image
        if missing:
            self.skipped_frames += 1
            self._consecutive_skips += 1
            if self._consecutive_skips > self.settings.max_consecutive_skips:
                raise CaptureError(f"{self._consecutive_skips} frames in a row without a "
                                   f"{'/'.join(missing)} image of their tick (waited "
                                   f"{self.settings.timeout_s:g} s each)")
            return None
        self._consecutive_skips = 0
        return CarlaFrame(frame=int(snapshot.frame), timestamp_s=float(images["rgb"].timestamp),
                          snapshot=snapshot, images=images)

    def _info(self, actor_ids: list[int]) -> None:
        new = [i for i in actor_ids if i not in self._actor_info]
        if not new:
            return
        for i in new:
            self._actor_info[i] = None
        for actor in self.world.get_actors(new):
            type_id = str(actor.type_id)
            if not type_id.startswith(_LABELLED_TYPES):
                continue
            bb = actor.bounding_box
            self._actor_info[int(actor.id)] = _ActorInfo(
                type_id=type_id,
                attributes={str(k): str(v) for k, v in dict(actor.attributes).items()},
                semantic_tags=tuple(int(t) for t in actor.semantic_tags),
                box_center_m=(bb.location.x, bb.location.y, bb.location.z),
                box_extent_m=(bb.extent.x, bb.extent.y, bb.extent.z))

    def frame_actors(self, frame: CarlaFrame, camera_world: np.ndarray
                     ) -> dict[int, FrameActor]:
        """The actors of ``frame`` that can own pixels, keyed by their id in the instance map.

        Transforms come from the frame's own snapshot. Two actors sharing the low 16 bits of
        their ids are both left out (their pixels then count as scenery).
        """
        snapshots = {int(a.id): a for a in frame.snapshot}
        self._info(sorted(snapshots))
        ego_id = int(self.ego.id)
        actors: dict[int, FrameActor] = {}
        ambiguous: set[int] = set()
        for actor_id, snap in snapshots.items():
            info = self._actor_info.get(actor_id)
            if info is None:
                continue
            key = actor_id & 0xFFFF
            if key in actors or key in ambiguous:
                actors.pop(key, None)
                ambiguous.add(key)
                continue
            entry = frame_actor(info.type_id, info.attributes, info.semantic_tags,
                                transform_matrix(snap.get_transform()), info.box_center_m,
                                info.box_extent_m, camera_world, self.intrinsics,
                                ignore=actor_id == ego_id)
            if entry is not None:
                actors[key] = entry
        return actors

    # ------------------------------------------------------------------------------- cleanup
    def close(self, raise_interrupt: bool = True) -> None:
        """Destroy cameras, controllers, walkers and vehicles; restore the world settings.

        Never raises an error. SIGINT and SIGTERM are deferred while it runs; if one arrived
        (or a step was interrupted), ``KeyboardInterrupt`` is raised once everything is done,
        unless ``raise_interrupt`` is false. After a server time-out the remaining steps are
        skipped (a server that does not answer cannot be cleaned) and a warning says so.
        """
        problems: list[str] = []
        interrupted = False
        gone = False

        def step(what: str, action: Callable[[], Any]) -> None:
            nonlocal interrupted, gone
            if gone:
                return
            try:
                action()
            except KeyboardInterrupt:
                interrupted = True
            except Exception as err:  # cleanup goes on, whatever failed
                problems.append(f"{what}: {' '.join(str(err).split())}")
                gone = "time-out" in str(err) or "timed out" in str(err)

        deferred = _DeferredInterrupts(self.notify)
        with signal_handlers(STOP_SIGNALS, deferred.note):
            for sensor in self.sensors.values():
                step("stop camera", sensor.stop)
                step("destroy camera", sensor.destroy)
            self.sensors.clear()
            # Back to asynchronous first, so destroying the actors needs no tick from us.
            if self._original_settings is not None:
                step("Traffic Manager to asynchronous",
                     lambda: self._traffic_manager.set_synchronous_mode(False))
                step("restore world settings",
                     lambda: self.world.apply_settings(self._original_settings))
                if not gone:
                    self._original_settings = None
            for controller in self.controllers:
                step("stop walker controller", controller.stop)
            doomed = [*self.controllers, *self.walkers, *self.vehicles]
            if doomed:
                step("destroy actors", lambda: self._destroy(doomed, problems))
            self.controllers.clear()
            self.walkers.clear()
            self.vehicles.clear()
        if problems:
            self.notify(f"warning: cleanup incomplete ({'; '.join(problems[:3])}); if the world "
                        "stays synchronous or actors remain, restart the server")
        if (interrupted or deferred.received) and raise_interrupt:
            raise KeyboardInterrupt

    def _destroy(self, actors: list[Any], problems: list[str]) -> None:
        responses = self.client.apply_batch_sync(
            [self.carla.command.DestroyActor(a.id) for a in actors])
        failed = [r.error for r in responses if r.error]
        if failed:
            problems.append(f"{len(failed)} of {len(actors)} actors not destroyed "
                            f"({failed[0]})")
