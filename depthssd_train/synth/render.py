"""Vectorised analytic renderer of box worlds on a flat ground plane (numpy, one core).

Every pixel's ray is intersected in closed form: the ground plane z = 0 per image row, and each
box with the slab method (three pairs of parallel planes), so depth, instance and class maps are
exact for what is drawn, not approximations of a rasteriser. Boxes are only evaluated inside the
bounding rectangle of their (near-clipped) projection, and a z-buffer keeps the nearest hit.

The world frame is x forward (along the road start), y left, z up. Pixel (u, v) of an image is
the ray through the continuous image point (u, v) (OpenCV convention: integer coordinates are
pixel centres), so ``depth[v, u]`` agrees with ``flat_ground_depth(v, ...)`` and ``backproject``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from depthssd_core.geometry import CameraIntrinsics

from .types import SKY_DEPTH_M

NEAR_M = 0.05
"""Surfaces closer than this to the camera plane are not drawn."""

# Texture kinds of box parts (how the final shading pass decorates them).
TEX_PLAIN = 0
TEX_WINDOWS = 1
TEX_FOLIAGE = 2

# Box corners as sign patterns, and the 12 edges (corner pairs differing in one sign).
_SIGNS = np.array(list(itertools.product((-1.0, 1.0), repeat=3)))
_EDGES = [(i, i ^ (1 << b)) for i in range(8) for b in range(3) if i < i ^ (1 << b)]
# Optical axes expressed in the camera body frame (x forward, y left, z up).
_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def rotation_z(yaw_rad: np.ndarray | float) -> np.ndarray:
    """Rotation matrices (..., 3, 3) about the world z axis (up)."""
    c, s = np.cos(yaw_rad), np.sin(yaw_rad)
    z, o = np.zeros_like(c), np.ones_like(c)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1),
                     np.stack([z, z, o], -1)], -2)


@dataclass(frozen=True)
class CameraState:
    """Pose of a pinhole camera in the world.

    Attributes:
        intrinsics: image size and pinhole parameters.
        position_m: (x, y, z) of the optical centre in the world.
        yaw_rad: heading about world z (counter-clockwise, 0 = along world x).
        pitch_rad: downward tilt (positive looks at the ground).
    """

    intrinsics: CameraIntrinsics
    position_m: tuple[float, float, float]
    yaw_rad: float
    pitch_rad: float

    def world_from_optical(self) -> np.ndarray:
        """3x3 rotation taking optical-frame vectors to the world frame."""
        cp, sp = math.cos(self.pitch_rad), math.sin(self.pitch_rad)
        # Rotation about body y (left) by +pitch tilts the forward axis down.
        pitch = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
        return rotation_z(self.yaw_rad) @ pitch @ _BODY_FROM_OPTICAL


@dataclass
class BoxParts:
    """Flat arrays describing P oriented boxes standing in the world.

    Attributes:
        center_m: (P, 3) world box centres.
        half_m: (P, 3) half sizes along the box's (length, width, height) axes.
        yaw_rad: (P,) heading of each box's length axis about world z.
        paint: (P,) index into the palette given to :func:`render`.
        texture: (P,) one of the ``TEX_*`` kinds.
        owner: (P,) instance id (> 0) of the labelled object the part belongs to, or a
            negative number for unlabelled background (buildings, trees, poles).
    """

    center_m: np.ndarray
    half_m: np.ndarray
    yaw_rad: np.ndarray
    paint: np.ndarray
    texture: np.ndarray
    owner: np.ndarray


@dataclass
class Look:
    """Appearance of a frame: palette, light, sky, fog and sensor noise.

    Attributes:
        palette: (N, 3) float32 RGB 0..255 for paint indices (ground materials first).
        sky_index: palette index used for sky pixels.
        sky_top_rgb: colour of the sky straight up (horizon colour is ``palette[sky_index]``).
        sun_dir: unit vector towards the sun in the world frame.
        ambient: light on faces turned away from the sun.
        sun: extra light on faces turned to the sun (times the cosine).
        fog_density_per_m: extinction per metre (0 = clear).
        fog_rgb: colour that distant surfaces fade to.
        noise_tile: (256, 256) float32 texture multipliers around 1.
        sensor_noise: (H + 16, W + 16, 3) int16 additive noise, or None.
    """

    palette: np.ndarray
    sky_index: int
    sky_top_rgb: np.ndarray
    sun_dir: np.ndarray
    ambient: float
    sun: float
    fog_density_per_m: float
    fog_rgb: np.ndarray
    noise_tile: np.ndarray
    sensor_noise: np.ndarray | None = None


@dataclass
class LabelledBox:
    """Full 3D box of a labelled object (the union of its parts), used for the ground truth."""

    instance_id: int
    category_id: int
    center_m: np.ndarray
    size_m: np.ndarray
    yaw_rad: float


@dataclass
class RenderOutput:
    """Raw render buffers and per-instance footprint counts."""

    rgb: np.ndarray
    depth_m: np.ndarray
    owner: np.ndarray
    footprint: dict[int, int]


GroundPainter = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]]
"""Maps world (x, y) of ground pixels to (palette index, brightness factor or None)."""


def render(camera: CameraState, parts: BoxParts, look: Look,
           ground: GroundPainter | None, frame_index: int = 0) -> RenderOutput:
    """Render boxes and the ground plane seen by ``camera``.

    Args:
        camera: pose and intrinsics (no roll).
        parts: the boxes to draw (already culled or not; off-screen ones cost little).
        look: palette, lighting and fog.
        ground: painter of the ground plane, or None for bare ground of palette index 0.
        frame_index: selects the sensor-noise offset so it changes from frame to frame.

    Returns:
        RGB image, planar depth (sky = 1000), owner map (part owners, 0 = ground or sky) and
        for every labelled owner the number of pixels it covers alone.
    """
    intr = camera.intrinsics
    width, height = intr.width, intr.height
    r_wo = camera.world_from_optical()
    cam = np.asarray(camera.position_m, dtype=np.float64)
    xn = ((np.arange(width) - intr.cx) / intr.fx).astype(np.float32)
    yn = ((np.arange(height) - intr.cy) / intr.fy).astype(np.float32)

    # World ray directions of each pixel (optical z = 1, so the ray parameter is the depth).
    ray_w = [(r_wo[i, 0] * xn)[None, :] + (r_wo[i, 1] * yn + r_wo[i, 2])[:, None]
             for i in range(3)]
    # Ground: without roll the world-z component of a ray depends on the row only.
    rz_row = r_wo[2, 1] * yn.astype(np.float64) + r_wo[2, 2]
    with np.errstate(divide="ignore"):
        ground_row = np.where(rz_row < 0, -cam[2] / np.where(rz_row < 0, rz_row, -1.0), np.inf)
    ground_row = np.minimum(ground_row, SKY_DEPTH_M)
    first_ground = int(np.argmax(np.isfinite(ground_row) & (rz_row < 0))) \
        if np.any(rz_row < 0) else height

    zbuf = np.empty((height, width), np.float32)
    zbuf[:] = ground_row.astype(np.float32)[:, None]
    owner = np.zeros((height, width), np.int32)
    paint = np.full((height, width), look.sky_index, np.uint16)
    texture = np.zeros((height, width), np.uint8)
    shade = np.full((height, width), look.ambient + look.sun * max(0.0, look.sun_dir[2]),
                    np.float32)
    if first_ground < height:
        gz = zbuf[first_ground:]
        gx = gz * ray_w[0][first_ground:] + np.float32(cam[0])
        gy = gz * ray_w[1][first_ground:] + np.float32(cam[1])
        if ground is None:
            paint[first_ground:] = 0
        else:
            gpaint, gbright = ground(gx, gy)
            paint[first_ground:] = gpaint
            if gbright is not None:
                shade[first_ground:] *= gbright

    footprint = _draw_boxes(camera, r_wo, cam, parts, look, xn, yn, zbuf, owner, paint,
                            texture, shade)
    rgb = _shade(camera, look, ray_w, cam, zbuf, paint, texture, shade, first_ground,
                 frame_index)
    return RenderOutput(rgb, zbuf, owner, footprint)


def clipped_projection(corners_opt: np.ndarray, intr: CameraIntrinsics,
                       near_m: float = NEAR_M) -> np.ndarray:
    """Image points (M, 2) of a box's corners after clipping the box at z = ``near_m``.

    The convex hull of these points is the image outline of the part of the box in front of the
    near plane. Returns an empty (0, 2) array when the whole box is behind it.
    """
    z = corners_opt[:, 2]
    inside = z >= near_m
    pts = [corners_opt[inside]]
    for i, j in _EDGES:
        if inside[i] != inside[j]:
            t = (near_m - z[i]) / (z[j] - z[i])
            pts.append((corners_opt[i] + t * (corners_opt[j] - corners_opt[i]))[None])
    p = np.concatenate(pts, axis=0)
    if len(p) == 0:
        return np.zeros((0, 2))
    return np.stack([intr.fx * p[:, 0] / p[:, 2] + intr.cx,
                     intr.fy * p[:, 1] / p[:, 2] + intr.cy], axis=1)


def box_corners_optical(center_m: np.ndarray, half_m: np.ndarray, yaw_rad: np.ndarray,
                        r_ow: np.ndarray, cam: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """Optical-frame centres (P, 3), axes (P, 3, 3: columns length/width/up), corners (P, 8, 3)."""
    axes_w = rotation_z(yaw_rad)
    axes_o = np.einsum("ij,pjk->pik", r_ow, axes_w)
    center_o = (center_m - cam) @ r_ow.T
    corners = center_o[:, None, :] + np.einsum("sk,pk,pik->psi", _SIGNS, half_m, axes_o)
    return center_o, axes_o, corners


def _draw_boxes(camera: CameraState, r_wo: np.ndarray, cam: np.ndarray, parts: BoxParts,
                look: Look, xn: np.ndarray, yn: np.ndarray, zbuf: np.ndarray,
                owner: np.ndarray, paint: np.ndarray, texture: np.ndarray,
                shade: np.ndarray) -> dict[int, int]:
    """Z-buffer every box part into the buffers; return labelled owners' footprints."""
    intr = camera.intrinsics
    width, height = intr.width, intr.height
    if len(parts.center_m) == 0:
        return {}
    r_ow = r_wo.T
    center_o, axes_o, corners = box_corners_optical(parts.center_m, parts.half_m,
                                                    parts.yaw_rad, r_ow, cam)
    zc = corners[:, :, 2]
    zmin, zmax = zc.min(axis=1), zc.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intr.fx * corners[:, :, 0] / zc + intr.cx
        v = intr.fy * corners[:, :, 1] / zc + intr.cy
    bounds = np.stack([u.min(1), v.min(1), u.max(1), v.max(1)], axis=1)
    # Face brightness: a face seen from the camera has outward normal -sign(s) * axis.
    axes_w = rotation_z(parts.yaw_rad)
    sun_cos = np.einsum("pjk,j->pk", axes_w, look.sun_dir)  # (P, 3) axis . sun
    lit_pos = (look.ambient + look.sun * np.maximum(0.0, sun_cos)).astype(np.float32)
    lit_neg = (look.ambient + look.sun * np.maximum(0.0, -sun_cos)).astype(np.float32)
    q = np.einsum("pik,pi->pk", axes_o, center_o)  # axis . centre, per axis
    union: dict[int, tuple[int, int, np.ndarray]] = {}
    footprint: dict[int, int] = {}

    for p in np.flatnonzero(zmax > NEAR_M):
        if zmin[p] >= NEAR_M:
            umin, vmin, umax, vmax = bounds[p]
        else:
            pts = clipped_projection(corners[p], intr)
            umin, vmin = pts.min(axis=0)
            umax, vmax = pts.max(axis=0)
        x0 = max(0, math.ceil(umin))
        x1 = min(width, math.floor(umax) + 1)
        y0 = max(0, math.ceil(vmin))
        y1 = min(height, math.floor(vmax) + 1)
        if x0 >= x1 or y0 >= y1:
            continue
        t, face_shade = _slab(axes_o[p], q[p], parts.half_m[p], xn[x0:x1], yn[y0:y1],
                              lit_pos[p], lit_neg[p])
        zr = zbuf[y0:y1, x0:x1]
        closer = t < zr
        np.copyto(zr, t, where=closer)
        oid = int(parts.owner[p])
        owner[y0:y1, x0:x1][closer] = oid
        paint[y0:y1, x0:x1][closer] = parts.paint[p]
        texture[y0:y1, x0:x1][closer] = parts.texture[p]
        np.copyto(shade[y0:y1, x0:x1], face_shade, where=closer)
        if oid > 0:
            _accumulate_union(union, oid, x0, y0, np.isfinite(t))
    for oid, (_, _, mask) in union.items():
        footprint[oid] = int(np.count_nonzero(mask))
    return footprint


def _accumulate_union(union: dict[int, tuple[int, int, np.ndarray]], oid: int, x0: int,
                      y0: int, hit: np.ndarray) -> None:
    """OR a part's hit mask into its owner's footprint mask (growing the mask's rectangle)."""
    if oid not in union:
        union[oid] = (x0, y0, hit)
        return
    ox, oy, mask = union[oid]
    nx0, ny0 = min(ox, x0), min(oy, y0)
    nx1 = max(ox + mask.shape[1], x0 + hit.shape[1])
    ny1 = max(oy + mask.shape[0], y0 + hit.shape[0])
    if (nx0, ny0, nx1, ny1) != (ox, oy, ox + mask.shape[1], oy + mask.shape[0]):
        grown = np.zeros((ny1 - ny0, nx1 - nx0), bool)
        grown[oy - ny0:oy - ny0 + mask.shape[0], ox - nx0:ox - nx0 + mask.shape[1]] = mask
        mask = grown
    mask[y0 - ny0:y0 - ny0 + hit.shape[0], x0 - nx0:x0 - nx0 + hit.shape[1]] |= hit
    union[oid] = (nx0, ny0, mask)


def _slab(axes_o: np.ndarray, q: np.ndarray, half: np.ndarray, xn: np.ndarray, yn: np.ndarray,
          lit_pos: np.ndarray, lit_neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Entry depth (inf = miss) and face brightness of one box over a pixel rectangle.

    The ray through (xn, yn, 1) enters the slab |a . X - q| <= h at t = (q -+ h) / (a . r); the
    box is the intersection of three slabs, so the ray enters at the largest entry and leaves at
    the smallest exit.
    """
    entry = exit_ = None
    slopes = []
    lows = []
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for k in range(3):
            a = axes_o[:, k]
            s = (np.float32(a[1]) * yn + np.float32(a[2]))[:, None] + np.float32(a[0]) * xn
            inv = np.float32(1.0) / s
            t1 = inv * np.float32(q[k] - half[k])
            t2 = inv * np.float32(q[k] + half[k])
            lo = np.minimum(t1, t2)
            hi = np.maximum(t1, t2)
            slopes.append(s)
            lows.append(lo)
            entry = lo if entry is None else np.maximum(entry, lo)
            exit_ = hi if exit_ is None else np.minimum(exit_, hi)
        hit = (entry <= exit_) & (entry > NEAR_M)
    t = np.where(hit, entry, np.float32(np.inf))
    # Brightness of the face the ray enters through (s > 0 means the face whose normal is -a).
    shade_k = [np.where(slopes[k] > 0, lit_neg[k], lit_pos[k]) for k in range(3)]
    face_shade = np.where(entry == lows[0], shade_k[0],
                          np.where(entry == lows[1], shade_k[1], shade_k[2]))
    return t, face_shade.astype(np.float32, copy=False)


def _shade(camera: CameraState, look: Look, ray_w: list[np.ndarray], cam: np.ndarray,
           zbuf: np.ndarray, paint: np.ndarray, texture: np.ndarray, shade: np.ndarray,
           first_ground: int, frame_index: int) -> np.ndarray:
    """Final colour: palette x light x texture, sky gradient, fog and sensor noise."""
    height, width = zbuf.shape
    sky = zbuf >= np.float32(SKY_DEPTH_M)
    sky[first_ground:] &= False  # far ground clipped at 1000 m is ground, not sky
    surface = np.where(sky, np.float32(0.0), zbuf)
    px = surface * ray_w[0] + np.float32(cam[0])
    py = surface * ray_w[1] + np.float32(cam[1])
    pz = surface * ray_w[2] + np.float32(cam[2])
    # Cheap world-anchored texture: the two tile coordinates vary on ground and on walls of
    # any orientation, so textures stick to surfaces as the camera moves.
    iu = ((px + py) * np.float32(4.0)).astype(np.int32) & 255
    iv = ((pz + np.float32(0.37) * (px - py)) * np.float32(4.0)).astype(np.int32) & 255
    light = shade * look.noise_tile[iv, iu]
    windows = texture == TEX_WINDOWS
    if np.any(windows):
        fz = np.mod(pz, np.float32(3.2))
        fh = np.mod(px + py, np.float32(2.6))
        pane = windows & (fz > 1.0) & (fz < 2.4) & (fh > 0.5) & (fh < 2.1)
        light = np.where(pane, light * np.float32(0.45), light)
    foliage = texture == TEX_FOLIAGE
    if np.any(foliage):
        light = np.where(foliage, light * look.noise_tile[iu, iv] ** 2, light)
    rgb = look.palette[paint] * light[..., None]
    if np.any(sky):
        # Sky gradient from the horizon colour to the zenith colour with the ray's elevation.
        elev = np.clip(ray_w[2][:, :1] * np.float32(2.5), 0.0, 1.0)  # (H, 1), roll-free
        sky_rows = (look.palette[look.sky_index] * (1.0 - elev[..., None])
                    + look.sky_top_rgb * elev[..., None])
        rgb = np.where(sky[..., None], sky_rows, rgb)
    if look.fog_density_per_m > 0:
        keep = np.exp(surface * np.float32(-look.fog_density_per_m))
        rgb = rgb * keep[..., None] + look.fog_rgb * (1.0 - keep)[..., None]
    if look.sensor_noise is not None:
        off = (frame_index * 7) % 16
        rgb += look.sensor_noise[off:off + height, off:off + width]
    np.clip(rgb, 0.0, 255.0, out=rgb)
    return rgb.astype(np.uint8)


def polygon_truncation(points: np.ndarray, width: int, height: int) -> float:
    """Fraction of the convex hull of image ``points`` that lies outside the image.

    The image covers [-0.5, W - 0.5] x [-0.5, H - 0.5] (pixel centres at integers).
    """
    if len(points) < 3:
        return 0.0
    hull = cv2.convexHull(points.astype(np.float32))
    area = float(cv2.contourArea(hull))
    if area <= 1e-9:
        return 0.0
    rect = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [width - 0.5, height - 0.5],
                     [-0.5, height - 0.5]], np.float32)
    inter, _ = cv2.intersectConvexConvex(hull, rect)
    return float(min(1.0, max(0.0, 1.0 - max(inter, 0.0) / area)))
