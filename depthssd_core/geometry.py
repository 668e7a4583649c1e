"""Pinhole camera geometry in the ROS optical frame (x right, y down, z forward, metres).

Depth everywhere in depthssd is planar (z-buffer) depth, as CARLA's depth camera and ROS depth
images use, not range along the ray.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of an image of ``width`` x ``height`` pixels (no distortion)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float) -> CameraIntrinsics:
        """Intrinsics of a CARLA camera from its horizontal field of view.

        CARLA uses square pixels and the image centre as principal point:
        ``fx = fy = W / (2 tan(fov / 2))``, ``cx = W / 2``, ``cy = H / 2``.
        """
        if not (0.0 < fov_deg < 180.0) or not math.isfinite(fov_deg):
            raise ValueError(f"field of view must be in (0, 180) degrees, got {fov_deg}")
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        focal = width / (2.0 * math.tan(math.radians(fov_deg) / 2.0))
        return cls(focal, focal, width / 2.0, height / 2.0, int(width), int(height))

    @classmethod
    def from_matrix(cls, k: np.ndarray | list[float], width: int, height: int) -> CameraIntrinsics:
        """Intrinsics from a 3x3 matrix (or the 9 row-major values of ``CameraInfo.k``)."""
        k = np.asarray(k, dtype=np.float64).reshape(3, 3)
        intr = cls(float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2]),
                   int(width), int(height))
        intr.validate()
        return intr

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first field that cannot describe a camera."""
        for name in ("fx", "fy", "cx", "cy"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"intrinsics {name} is not finite ({value})")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"focal lengths must be positive (fx={self.fx}, fy={self.fy})")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(
                f"intrinsics image size must be positive ({self.width}x{self.height})")

    def resized(self, width: int, height: int) -> CameraIntrinsics:
        """The intrinsics of the same camera after resizing the image to ``width`` x ``height``."""
        sx = width / self.width
        sy = height / self.height
        return CameraIntrinsics(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy,
                                int(width), int(height))

    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def hfov_deg(self) -> float:
        """Horizontal field of view in degrees."""
        return math.degrees(2.0 * math.atan(self.width / (2.0 * self.fx)))


def flat_ground_depth(rows: np.ndarray | float, camera_height_m: float, pitch_rad: float,
                      fy: float, cy: float) -> np.ndarray:
    """Planar depth of a flat road seen at image rows ``rows``.

    ``Z = h / (sin p + cos p * (v - cy) / fy)`` with ``p`` the downward pitch of the camera.
    Rows at or above the horizon have no ground: their depth is ``inf``.
    """
    v = np.asarray(rows, dtype=np.float64)
    denom = math.sin(pitch_rad) + math.cos(pitch_rad) * (v - cy) / fy
    with np.errstate(divide="ignore"):
        return np.where(denom > 0, camera_height_m / np.where(denom > 0, denom, 1.0), np.inf)


def backproject(u: np.ndarray | float, v: np.ndarray | float, depth_m: np.ndarray | float,
                intrinsics: CameraIntrinsics) -> np.ndarray:
    """Points in the optical frame (..., 3) of pixels (u, v) with planar depth ``depth_m``."""
    z = np.asarray(depth_m, dtype=np.float64)
    x = (np.asarray(u, dtype=np.float64) - intrinsics.cx) * z / intrinsics.fx
    y = (np.asarray(v, dtype=np.float64) - intrinsics.cy) * z / intrinsics.fy
    return np.stack(np.broadcast_arrays(x, y, z), axis=-1)


def project(points_optical: np.ndarray, intrinsics: CameraIntrinsics) -> np.ndarray:
    """Pixel coordinates (..., 2) of optical-frame points (..., 3) with z > 0."""
    p = np.asarray(points_optical, dtype=np.float64)
    z = p[..., 2]
    return np.stack([intrinsics.fx * p[..., 0] / z + intrinsics.cx,
                     intrinsics.fy * p[..., 1] / z + intrinsics.cy], axis=-1)
