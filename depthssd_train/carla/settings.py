"""What a CARLA capture records and from where (one dataclass, checked before any connection).

The defaults follow CARLA's own conventions: synchronous mode at 20 Hz, the ego a
``base_type == 'car'`` blueprint with role name ``hero`` (large maps stream their tiles around
the hero), cameras at carla-ros-bridge's ``rgb_front`` mount.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

FIXED_DELTA_S = 0.05  # 20 Hz, as carla-ros-bridge runs by default


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
        timeout_s: client timeout: the connection, each server call, each tick, and the wait
            for one frame's images.
        width: camera width in pixels.
        height: camera height in pixels.
        fov_deg: horizontal field of view.
        num_vehicles: NPC vehicles to spawn besides the ego (any ``vehicle.*`` blueprint).
        num_walkers: pedestrians to spawn, each walked by a ``controller.ai.walker``.
        walker_cross_fraction: share of pedestrians that cross roads (0..1).
        warmup_ticks: ticks before recording (cars start moving, sensors fill).
        seed: seeds every choice (blueprints, spawn points, Traffic Manager, pedestrians).
        tm_port: Traffic Manager port.
        ego_filter: blueprint wildcard the ego is drawn from.
        ego_base_types: ``base_type`` attribute values the ego may have (CARLA's examples use
            ``car`` for vehicles safe to drive: no trucks, vans, buses or two-wheelers).
        ego_role: the ego's ``role_name`` (``hero``: large maps load tiles around it).
        camera_xyz_m: camera position on the ego (the bridge's rgb_front default).
        sequence: sequence name (default: ``carla_<map>_<seed>``).
        keep_partial: on Ctrl-C, keep the frames already captured instead of discarding.
        append: add the capture as a new sequence of an existing split.
        join: the world is already synchronous and ticked by another client (e.g.
            carla-ros-bridge): follow its ticks instead of refusing. The capture then never
            ticks and never changes world or Traffic Manager settings; it still spawns and
            destroys its own ego, traffic, walkers and cameras.
        max_consecutive_skips: frames in a row that may lack an image before the capture
            fails (a skipped frame is counted, never written).
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
    num_walkers: int = 50
    walker_cross_fraction: float = 0.1
    warmup_ticks: int = 20
    seed: int = 0
    tm_port: int = 8000
    ego_filter: str = "vehicle.*"
    ego_base_types: tuple[str, ...] = ("car",)
    ego_role: str = "hero"
    camera_xyz_m: tuple[float, float, float] = (2.0, 0.0, 2.0)
    sequence: str | None = None
    keep_partial: bool = False
    append: bool = False
    join: bool = False
    max_consecutive_skips: int = 5

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first setting that cannot work."""
        for name in ("port", "tm_port"):
            value = getattr(self, name)
            if not (isinstance(value, int) and 1 <= value <= 65535):
                raise ValueError(f"{name} must be a TCP port in 1..65535, got {value}")
        if not self.host or any(c.isspace() for c in self.host):
            raise ValueError(f"host must be a host name or address, got {self.host!r}")
        if not (math.isfinite(self.timeout_s) and self.timeout_s > 0):
            raise ValueError(f"timeout must be a positive number of seconds, got "
                             f"{self.timeout_s}")
        for name in ("frames", "width", "height", "max_consecutive_skips"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("num_vehicles", "num_walkers", "warmup_ticks"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if not (0.0 <= self.walker_cross_fraction <= 1.0):
            raise ValueError(f"walker_cross_fraction must be in 0..1, got "
                             f"{self.walker_cross_fraction}")
        if not (math.isfinite(self.fov_deg) and 0.0 < self.fov_deg < 180.0):
            raise ValueError(f"fov must be in (0, 180) degrees, got {self.fov_deg}")
        if not self.ego_base_types:
            raise ValueError("ego_base_types must name at least one base_type (e.g. car)")
        if not all(math.isfinite(v) for v in self.camera_xyz_m):
            raise ValueError(f"camera position must be finite, got {self.camera_xyz_m}")
