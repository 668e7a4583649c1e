"""Capture a labelled dataset split from a running CARLA server.

The simulator runs in synchronous mode at 20 Hz (``fixed_delta_seconds = 0.05``) with an ego
car, NPC traffic on the Traffic Manager and walkers on AI controllers (see
:mod:`~depthssd_train.carla.session`). Three cameras share one transform, size and field of
view on the ego: RGB, depth and instance segmentation, so their pixels align, and a frame is
recorded only when all three delivered an image of exactly its tick. Each frame gives RGB,
planar depth decoded from the depth camera, and 2D boxes of our classes from the instance map,
with a 3D box where an instance id is the id of an actor of that frame. Frames go through
:class:`~depthssd_train.dataset.format.DatasetWriter`, so an aborted capture leaves no split
behind (unless ``keep_partial``).

The stored camera pose is CARLA's: metres in CARLA's left-handed world (x forward, y right,
z up, as Unreal) and ``Rotation`` angles (roll, pitch up, yaw towards +y) in radians.

Whatever happens (error, Ctrl-C, SIGTERM, a second Ctrl-C during cleanup), the capture destroys
the actors it spawned and puts the world and the Traffic Manager back into asynchronous mode.
``carla`` is imported lazily so this module loads without it; pass ``carla_module`` to inject
another implementation.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from depthssd_core.geometry import CameraIntrinsics
from depthssd_train.carla.decode import (
    FrameActor,
    decode_depth_bgra,
    decode_instance_bgra,
    objects_from_instances,
)
from depthssd_train.carla.session import (
    CarlaSession,
    instance_ids_are_actor_ids,
    sigterm_as_interrupt,
    transform_matrix,
)
from depthssd_train.carla.settings import FIXED_DELTA_S, CaptureError, CaptureSettings
from depthssd_train.dataset.format import LabeledFrame
from depthssd_train.dataset.writer import DatasetWriter
from depthssd_train.signals import STOP_SIGNALS, signal_handlers

__all__ = ["FIXED_DELTA_S", "CaptureError", "CaptureResult", "CaptureSettings", "build_frame",
           "camera_pose", "capture", "check_output", "connect", "import_carla"]


@dataclass
class CaptureResult:
    """What a capture wrote.

    Attributes:
        frames: frames written.
        skipped_frames: ticks dropped because a camera had no image of exactly that tick.
        vehicles: NPC vehicles spawned (the ego not counted).
        walkers: walkers spawned.
        sequence: the sequence name.
        actor_ids_trusted: whether instance ids were mapped to actors (3D boxes).
    """

    frames: int
    skipped_frames: int
    vehicles: int
    walkers: int
    sequence: str
    actor_ids_trusted: bool


def import_carla() -> Any:
    """Import the ``carla`` client module, explaining how to install it if missing."""
    try:
        import carla
    except ImportError as err:
        raise CaptureError(f"the CARLA Python client is not installed ({err}); "
                           "install it with: pip install carla==0.9.16") from None
    return carla


def _interrupt_ends_process() -> contextlib.AbstractContextManager[bool]:
    """Ctrl-C and SIGTERM end the process at once (default dispositions) inside the block.

    The ``carla`` client holds the GIL while it waits for a server, so a Python handler would
    run only after the full timeout. Nothing needs cleaning while connecting: no server state is
    changed and no file is written yet.
    """
    return signal_handlers(STOP_SIGNALS, signal.SIG_DFL)


def connect(carla: Any, host: str, port: int, timeout_s: float) -> tuple[Any, Any, str]:
    """Connect and fetch the world, or fail with one clear line within ``timeout_s``.

    Returns:
        (client, world, server version).
    """
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise CaptureError(f"cannot resolve the CARLA host {host!r} ({reason}); check "
                           "--host") from None
    try:
        client = carla.Client(host, int(port))
    except (RuntimeError, OverflowError, TypeError) as err:
        raise CaptureError(f"cannot create a CARLA client for {host}:{port} ({err})") from None
    client.set_timeout(float(timeout_s))
    try:
        world = client.get_world()
        version = str(client.get_server_version())
    except RuntimeError as err:
        raise CaptureError(f"no CARLA server answered at {host}:{port} within {timeout_s:g} s "
                           f"({' '.join(str(err).split())}); start CarlaUE4.sh or check "
                           "--host/--port") from None
    return client, world, version


def check_output(out: Path, split: str, append: bool) -> None:
    """Fail before connecting if the split exists (without ``append``) or ``out`` is unusable.

    Raises:
        ValueError: naming the folder and what is wrong with it.
    """
    out = Path(out)
    if (out / "meta" / f"index_{split}.csv").exists() and not append:
        raise ValueError(f"{out}: split {split!r} already exists (pass --append to add a "
                         "sequence to it, or choose another --split)")
    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(f"output folder {out}: {probe} is not a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ValueError(f"output folder {out}: {probe} is not writable (permission denied)")


def camera_pose(transform: Any) -> tuple[float, float, float, float, float, float]:
    """Camera pose (x, y, z, roll, pitch, yaw) in CARLA's left-handed world (m, radians)."""
    loc, rot = transform.location, transform.rotation
    return (loc.x, loc.y, loc.z, math.radians(rot.roll), math.radians(rot.pitch),
            math.radians(rot.yaw))


def build_frame(rgb_bgra: Any, depth_bgra: Any, instance_bgra: Any,
                intrinsics: CameraIntrinsics, sequence: str, frame_index: int,
                timestamp_s: float, *, pose: tuple[float, ...] | None = None,
                actors: dict[int, FrameActor] | None = None) -> LabeledFrame:
    """One labelled frame from the three aligned raw BGRA camera images.

    Args:
        rgb_bgra: raw RGB camera data (H*W*4 bytes or HxWx4).
        depth_bgra: raw depth camera data.
        instance_bgra: raw instance segmentation data.
        intrinsics: the cameras' intrinsics.
        sequence: sequence name.
        frame_index: index in the sequence.
        timestamp_s: simulation time.
        pose: camera pose to store (see :func:`camera_pose`).
        actors: the frame's actors by instance-map id (:meth:`CarlaSession.frame_actors`);
            ``None`` takes every id as an object without 3D box, ``{}`` every id as scenery.
    """
    w, h = intrinsics.width, intrinsics.height
    rgb = np.frombuffer(bytes(rgb_bgra), np.uint8) if not isinstance(rgb_bgra, np.ndarray) \
        else rgb_bgra
    if rgb.size != w * h * 4:
        raise ValueError(f"RGB image has {rgb.size} bytes, expected {w * h * 4} for {w}x{h}")
    rgb = np.ascontiguousarray(rgb.reshape(h, w, 4)[..., 2::-1])
    depth = decode_depth_bgra(depth_bgra, w, h)
    tags, ids = decode_instance_bgra(instance_bgra, w, h)
    objects = objects_from_instances(tags, ids, depth, actors=actors)
    for obj in objects:
        actor = (actors or {}).get(int(obj.instance_id or 0))
        if actor is not None and actor.box3d is not None:
            obj.center_optical, obj.size_m, obj.yaw_rad = actor.box3d
    return LabeledFrame(sequence=sequence, frame_index=frame_index, rgb=rgb,
                        intrinsics=intrinsics, timestamp_s=timestamp_s, depth_m=depth,
                        objects=objects, pose=pose)


def capture(settings: CaptureSettings, carla_module: Any = None,
            progress: Callable[[int], None] | None = None,
            notify: Callable[[str], None] | None = None,
            interrupt_ends_connect: bool = False) -> CaptureResult:
    """Record ``settings.frames`` frames into ``settings.out`` / ``settings.split``.

    Args:
        settings: what to capture.
        carla_module: the ``carla`` module (imported lazily when ``None``).
        progress: called with 0 once recording starts (server connected, actors spawned), then
            with 1 after each recorded frame (e.g. to drive a ``tqdm`` bar).
        notify: receives status and warning lines (default: this module's logger).
        interrupt_ends_connect: let Ctrl-C end the process at once while connecting (the CLI
            does; see :func:`_interrupt_ends_process`).

    Returns:
        What was written.

    Raises:
        ValueError: bad settings or output folder (before connecting).
        CaptureError: no server within the timeout, nothing to spawn, sensors stall.
        KeyboardInterrupt: on Ctrl-C or SIGTERM, after cleaning up.
    """
    settings.validate()
    carla = carla_module if carla_module is not None else import_carla()
    check_output(settings.out, settings.split, settings.append)
    with _interrupt_ends_process() if interrupt_ends_connect else contextlib.nullcontext():
        client, world, version = connect(carla, settings.host, settings.port,
                                         settings.timeout_s)
    writer = DatasetWriter(settings.out, settings.split, append=settings.append)
    try:
        with sigterm_as_interrupt(), CarlaSession(carla, client, world, settings,
                                                  notify) as session:
            trusted = instance_ids_are_actor_ids(session.map_name, version)
            if not trusted:
                session.notify(f"warning: CARLA {version} writes wrong actor ids on the large "
                               f"map {session.map_name} (carla issue #9491): boxes get classes "
                               "from the semantic tags and no 3D boxes")
            map_name = Path(session.map_name).name or "map"
            sequence = settings.sequence or f"carla_{map_name}_{settings.seed:04d}"
            session.warm_up(settings.warmup_ticks)
            if progress is not None:
                progress(0)
            while writer.num_frames < settings.frames:
                frame = session.next_frame()
                if frame is None:
                    continue
                camera = frame.images["rgb"].transform
                actors = session.frame_actors(frame, transform_matrix(camera)) if trusted \
                    else {}
                writer.add(build_frame(
                    frame.images["rgb"].raw_data, frame.images["depth"].raw_data,
                    frame.images["instance"].raw_data, session.intrinsics, sequence,
                    writer.num_frames, frame.timestamp_s, pose=camera_pose(camera),
                    actors=actors))
                if progress is not None:
                    progress(1)
            result = CaptureResult(
                frames=writer.num_frames, skipped_frames=session.skipped_frames,
                vehicles=len(session.vehicles) - 1, walkers=len(session.walkers),
                sequence=sequence, actor_ids_trusted=trusted)
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
    return result
