"""Capture a labelled dataset split from a running CARLA server.

The simulator runs in synchronous mode at 20 Hz (``fixed_delta_seconds = 0.05``) with an ego
vehicle and traffic on autopilot (Traffic Manager in synchronous mode). Three cameras share one
transform, size and field of view on the ego vehicle: RGB, depth and instance segmentation, so
their pixels align. Each tick gives one frame: RGB, planar depth decoded from the depth camera,
and 2D boxes of our classes from the instance map (3D boxes where the instance id is an actor's
id). Frames go through :class:`~depthssd_train.dataset.format.DatasetWriter`, so an aborted
capture leaves no split behind (unless ``keep_partial``).

Whatever happens (error, Ctrl-C, SIGTERM), the capture destroys the actors it spawned and puts
the world and the Traffic Manager back into asynchronous mode. ``carla`` is imported lazily so
this module loads without it; pass ``carla_module`` to inject another implementation.
"""

from __future__ import annotations

import contextlib
import math
import queue
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depthssd_core.geometry import CameraIntrinsics
from depthssd_train.carla.decode import (
    box3d_in_optical,
    carla_transform_matrix,
    decode_depth_bgra,
    decode_instance_bgra,
    objects_from_instances,
)
from depthssd_train.dataset.format import LabeledFrame
from depthssd_train.dataset.writer import DatasetWriter

FIXED_DELTA_S = 0.05  # 20 Hz, as carla-ros-bridge runs by default
# Actors whose bounding boxes can become 3D labels.
_BOXED_ACTOR_PREFIXES = ("vehicle.", "walker.pedestrian.")


class CaptureError(RuntimeError):
    """A capture failed for a reason worth one line to the user."""


@dataclass
class CaptureSettings:
    """What to capture and from where.

    Attributes:
        host: CARLA server host.
        port: CARLA server RPC port.
        out: dataset root.
        split: split to write.
        frames: frames to record.
        timeout_s: client timeout (connection and each sensor wait).
        width: camera width in pixels.
        height: camera height in pixels.
        fov_deg: horizontal field of view.
        num_vehicles: traffic vehicles to spawn besides the ego.
        warmup_ticks: ticks before recording (cars start moving, sensors fill).
        seed: random seed for blueprint and spawn point choice (and the Traffic Manager).
        tm_port: Traffic Manager port.
        camera_xyz_m: camera position on the ego (the bridge's rgb_front default).
        sequence: sequence name (default: ``carla_<map>_<seed>``).
        keep_partial: on Ctrl-C, keep the frames already captured instead of discarding.
        append: add the capture as a new sequence of an existing split.
    """

    host: str = "localhost"
    port: int = 2000
    out: Path = Path("data/carla")
    split: str = "train"
    frames: int = 100
    timeout_s: float = 10.0
    width: int = 640
    height: int = 360
    fov_deg: float = 90.0
    num_vehicles: int = 30
    warmup_ticks: int = 20
    seed: int = 0
    tm_port: int = 8000
    camera_xyz_m: tuple[float, float, float] = (2.0, 0.0, 2.0)
    sequence: str | None = None
    keep_partial: bool = False
    append: bool = False


def import_carla() -> Any:
    """Import the ``carla`` client module, explaining how to install it if missing."""
    try:
        import carla
    except ImportError as err:
        raise CaptureError(f"the CARLA Python client is not installed ({err}); "
                           "install it with: pip install carla==0.9.16") from None
    return carla


def connect(carla: Any, host: str, port: int, timeout_s: float) -> tuple[Any, Any]:
    """Connect and fetch the world, or fail with one clear line within ``timeout_s``."""
    client = carla.Client(host, int(port))
    client.set_timeout(float(timeout_s))
    try:
        world = client.get_world()
    except RuntimeError as err:
        raise CaptureError(f"no CARLA server answered at {host}:{port} within {timeout_s:g} s "
                           f"({err}); start CarlaUE4.sh or check --host/--port") from None
    return client, world


def _transform_matrix(transform: Any) -> np.ndarray:
    loc, rot = transform.location, transform.rotation
    return carla_transform_matrix((loc.x, loc.y, loc.z), (rot.pitch, rot.yaw, rot.roll))


def _pose(transform: Any) -> tuple[float, float, float, float, float, float]:
    """Camera pose (x, y, z, roll, pitch, yaw) in CARLA's world (left-handed, radians)."""
    loc, rot = transform.location, transform.rotation
    return (loc.x, loc.y, loc.z, math.radians(rot.roll), math.radians(rot.pitch),
            math.radians(rot.yaw))


def build_frame(rgb_bgra: np.ndarray, depth_bgra: np.ndarray, instance_bgra: np.ndarray,
                intrinsics: CameraIntrinsics, sequence: str, frame_index: int,
                timestamp_s: float, camera_world: np.ndarray | None = None,
                actor_boxes: dict[int, tuple[np.ndarray, Any, Any]] | None = None,
                pose: tuple[float, ...] | None = None) -> LabeledFrame:
    """One labelled frame from the three aligned raw BGRA camera images.

    Args:
        rgb_bgra: raw RGB camera data (H*W*4 bytes or HxWx4).
        depth_bgra: raw depth camera data.
        instance_bgra: raw instance segmentation data.
        intrinsics: the cameras' intrinsics.
        sequence: sequence name.
        frame_index: index in the sequence.
        timestamp_s: simulation time.
        camera_world: 4x4 world-from-camera matrix (for 3D boxes).
        actor_boxes: actor id (low 16 bits) -> (world-from-actor matrix, box centre, extent).
        pose: camera pose to store.
    """
    w, h = intrinsics.width, intrinsics.height
    rgb = np.frombuffer(bytes(rgb_bgra), np.uint8) if not isinstance(rgb_bgra, np.ndarray) \
        else rgb_bgra
    if rgb.size != w * h * 4:
        raise ValueError(f"RGB image has {rgb.size} bytes, expected {w * h * 4} for {w}x{h}")
    rgb = np.ascontiguousarray(rgb.reshape(h, w, 4)[..., 2::-1])
    depth = decode_depth_bgra(depth_bgra, w, h)
    tags, ids = decode_instance_bgra(instance_bgra, w, h)
    objects = objects_from_instances(tags, ids, depth)
    if camera_world is not None and actor_boxes:
        for obj in objects:
            entry = actor_boxes.get(int(obj.instance_id or 0))
            if entry is None:
                continue
            centre, size, yaw = box3d_in_optical(entry[0], entry[1], entry[2], camera_world)
            if centre[2] > 0:  # a stale id match behind the camera is no label
                obj.center_optical, obj.size_m, obj.yaw_rad = centre, size, yaw
    return LabeledFrame(sequence=sequence, frame_index=frame_index, rgb=rgb,
                        intrinsics=intrinsics, timestamp_s=timestamp_s, depth_m=depth,
                        objects=objects, pose=pose)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM unwind like Ctrl-C so the cleanup below runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class CarlaSession:
    """Owns everything the capture changes on the server, and undoes it on exit."""

    def __init__(self, carla: Any, client: Any, world: Any, settings: CaptureSettings) -> None:
        self.carla, self.client, self.world, self.settings = carla, client, world, settings
        self.actors: list[Any] = []
        self.sensors: dict[str, Any] = {}
        self.queues: dict[str, queue.Queue] = {}
        self.original_settings = None
        self.traffic_manager = None
        self.intrinsics = CameraIntrinsics.from_fov(settings.width, settings.height,
                                                    settings.fov_deg)

    def __enter__(self) -> CarlaSession:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _setup(self) -> None:
        carla, world, s = self.carla, self.world, self.settings
        self.original_settings = world.get_settings()
        sync = world.get_settings()
        sync.synchronous_mode = True
        sync.fixed_delta_seconds = FIXED_DELTA_S
        world.apply_settings(sync)
        self.traffic_manager = self.client.get_trafficmanager(s.tm_port)
        self.traffic_manager.set_synchronous_mode(True)
        self.traffic_manager.set_random_device_seed(s.seed)

        rng = np.random.default_rng(s.seed)
        library = world.get_blueprint_library()
        vehicles = list(library.filter("vehicle.*"))
        # The ego is a car (four wheels); traffic may be anything with wheels.
        cars = [bp for bp in vehicles if not bp.has_attribute("number_of_wheels")
                or bp.get_attribute("number_of_wheels").as_int() == 4]
        if not cars:
            raise CaptureError("the server offers no four-wheeled vehicle blueprints")
        spawn_points = list(world.get_map().get_spawn_points())
        if not spawn_points:
            raise CaptureError("the map has no spawn points")
        order = rng.permutation(len(spawn_points))
        tm_port = self.traffic_manager.get_port()
        for k in order[:1 + s.num_vehicles]:
            pool = cars if not self.actors else vehicles
            bp = pool[int(rng.integers(len(pool)))]
            if bp.has_attribute("role_name"):
                bp.set_attribute("role_name", "ego_vehicle" if not self.actors else "traffic")
            actor = world.try_spawn_actor(bp, spawn_points[int(k)])
            if actor is None:
                continue
            self.actors.append(actor)
            actor.set_autopilot(True, tm_port)
        if not self.actors:
            raise CaptureError("could not spawn the ego vehicle (all spawn points blocked?)")
        ego = self.actors[0]
        x, y, z = s.camera_xyz_m
        mount = carla.Transform(carla.Location(x=x, y=y, z=z))
        for name, blueprint in (("rgb", "sensor.camera.rgb"), ("depth", "sensor.camera.depth"),
                                ("instance", "sensor.camera.instance_segmentation")):
            bp = library.find(blueprint)
            bp.set_attribute("image_size_x", str(s.width))
            bp.set_attribute("image_size_y", str(s.height))
            bp.set_attribute("fov", str(s.fov_deg))
            sensor = world.spawn_actor(bp, mount, attach_to=ego)
            self.sensors[name] = sensor
            self.queues[name] = queue.Queue()
            sensor.listen(self.queues[name].put)

    def tick(self) -> dict[str, Any]:
        """Advance one simulation step; the three images of that step."""
        frame = self.world.tick()
        images = {}
        for name, q in self.queues.items():
            while True:
                try:
                    image = q.get(timeout=self.settings.timeout_s)
                except queue.Empty:
                    raise CaptureError(f"no {name} image for frame {frame} within "
                                       f"{self.settings.timeout_s:g} s") from None
                if image.frame >= frame:
                    break  # older images are leftovers of warm-up ticks
            images[name] = image
        return images

    def actor_boxes(self) -> dict[int, tuple[np.ndarray, Any, Any]]:
        """Actor id (low 16 bits, as in the instance map) -> (matrix, box centre, extent)."""
        boxes = {}
        for actor in self.world.get_actors():
            if not str(actor.type_id).startswith(_BOXED_ACTOR_PREFIXES):
                continue
            bb = actor.bounding_box
            boxes[int(actor.id) & 0xFFFF] = (
                _transform_matrix(actor.get_transform()),
                (bb.location.x, bb.location.y, bb.location.z),
                (bb.extent.x, bb.extent.y, bb.extent.z))
        return boxes

    def close(self) -> None:
        """Destroy sensors and actors, restore asynchronous mode; never raises."""
        for sensor in self.sensors.values():
            with contextlib.suppress(Exception):
                sensor.stop()
            with contextlib.suppress(Exception):
                sensor.destroy()
        self.sensors.clear()
        # Back to asynchronous first, so destroying the vehicles needs no tick from us.
        if self.traffic_manager is not None:
            with contextlib.suppress(Exception):
                self.traffic_manager.set_synchronous_mode(False)
        if self.original_settings is not None:
            with contextlib.suppress(Exception):
                self.world.apply_settings(self.original_settings)
            self.original_settings = None
        if self.actors:
            with contextlib.suppress(Exception):
                self.client.apply_batch([self.carla.command.DestroyActor(a)
                                         for a in self.actors])
            self.actors.clear()


def capture(settings: CaptureSettings, carla_module: Any = None,
            progress: Callable[[int], None] | None = None) -> int:
    """Record ``settings.frames`` frames into ``settings.out`` / ``settings.split``.

    Args:
        settings: what to capture.
        carla_module: the ``carla`` module (imported lazily when ``None``).
        progress: called with 1 after each recorded frame (e.g. ``tqdm.update``).

    Returns:
        The number of frames written.

    Raises:
        CaptureError: no server within the timeout, nothing to spawn, a sensor stalls.
        KeyboardInterrupt: on Ctrl-C or SIGTERM, after cleaning up.
    """
    if settings.frames < 1:
        raise ValueError(f"frames must be at least 1, got {settings.frames}")
    carla = carla_module if carla_module is not None else import_carla()
    # Open the writer first: a split that exists already fails before touching the server.
    writer = DatasetWriter(settings.out, settings.split, append=settings.append)
    try:
        client, world = connect(carla, settings.host, settings.port, settings.timeout_s)
        with _sigterm_as_interrupt(), CarlaSession(carla, client, world, settings) as session:
            map_name = Path(str(world.get_map().name)).name or "map"
            sequence = settings.sequence or f"carla_{map_name}_{settings.seed:04d}"
            for _ in range(settings.warmup_ticks):
                session.tick()
            for index in range(settings.frames):
                images = session.tick()
                camera = images["rgb"].transform
                writer.add(build_frame(
                    images["rgb"].raw_data, images["depth"].raw_data,
                    images["instance"].raw_data, session.intrinsics, sequence, index,
                    float(images["rgb"].timestamp), _transform_matrix(camera),
                    session.actor_boxes(), _pose(camera)))
                if progress is not None:
                    progress(1)
    except KeyboardInterrupt:
        if settings.keep_partial and writer.num_frames:
            writer.commit()
        else:
            writer.abort()
        raise
    except BaseException:
        writer.abort()
        raise
    writer.commit()
    return writer.num_frames
