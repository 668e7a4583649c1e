"""Light on the ground: sun and ambient, cast shadows, wet sheen, lamp pools and head lights.

Everything here only changes the brightness of ground pixels (the ``shade`` buffer before boxes
are drawn over it), never depth or the instance map.

Cast shadows are exact projections, computed analytically: a box (centre c, half sizes
h along its axes e1, e2 and the vertical) projects along the sun direction s onto the ground
z = 0 as the zonotope ``c' + [-1, 1] h1 e1 + [-1, 1] h2 e2 + [-1, 1] h3 d`` with
``c' = c_xy - c_z s_xy / s_z`` and ``d = -s_xy / s_z``: a hexagon with vertices in closed form.
Its vertices are projected into the image (clipped at a near plane when they reach behind the
camera) and the convex polygon is filled with OpenCV. Lamp pools and the ego's head light
beam are polygons on the ground filled the same way.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .road import GROUND_ASPHALT, GROUND_ASPHALT_2
from .scene import DRAW_DISTANCE_M, BoxParts, CameraState, Look, Rays

SHADOW_NEAR_M = 0.3
"""Ground polygons are clipped at this planar depth before projection."""
_SUBPIXEL_BITS = 4
_LEVEL_SCALE = 60.0  # lamp light is stored in a uint8 mask as round(60 x added light)
_RINGS = ((0.1, 1.0), (0.25, 0.78), (0.45, 0.58), (0.7, 0.4), (1.0, 0.24))
_DISC = np.stack([np.cos(np.arange(8) * math.pi / 4), np.sin(np.arange(8) * math.pi / 4)], 1)


def ground_light(camera: CameraState, look: Look, casters: BoxParts | None, gx: np.ndarray,
                 gy: np.ndarray, material: np.ndarray, rays: Rays) -> np.ndarray:
    """Brightness (float32, the shape of ``gx``) of the ground rows ``rays.first_ground:``.

    Args:
        camera: the camera.
        look: light, shadows, sheen and lamps of the frame.
        casters: boxes that cast shadows (or None).
        gx: world x of the ground pixels.
        gy: world y of the ground pixels.
        material: ground material of the pixels (``road.GROUND_*``).
        rays: the frame's rays.
    """
    fg = rays.first_ground
    sun_part = look.sun * max(0.0, float(look.sun_dir[2]))
    light = np.full(gx.shape, np.float32(look.ambient + sun_part), np.float32)
    if look.shadows and casters is not None and len(casters.center_m) and sun_part > 0:
        mask = shadow_mask(camera, casters, look.sun_dir, fg)
        if mask is not None:
            light -= np.float32(sun_part) * mask
    if look.ground_sheen > 0:
        # Wet asphalt mirrors the bright sky near the horizon (grazing rays): brighter with
        # distance, a Schlick-like rise as the ray flattens.
        rz = rays.combine((0.0, 0.0, 1.0), slice(fg, None))
        graze = np.clip(np.float32(1.0) + np.float32(4.0) * rz, 0.0, 1.0)
        graze *= graze
        graze *= graze
        wet = (material == GROUND_ASPHALT) | (material == GROUND_ASPHALT_2)
        light += np.where(wet, np.float32(look.ground_sheen) * graze, np.float32(0.0))
    pools = lamp_levels(camera, look, fg)
    if pools is not None:
        light += pools.astype(np.float32) * np.float32(1.0 / _LEVEL_SCALE)
    return light


def shadow_polygons(casters: BoxParts, sun_dir: np.ndarray) -> np.ndarray:
    """(N, 6, 2) world (x, y) vertices of the shadow of each box on the ground, in order."""
    s = np.asarray(sun_dir, dtype=np.float64)
    d = -s[:2] / s[2]
    c, h = casters.center_m, casters.half_m
    cos, sin = np.cos(casters.yaw_rad), np.sin(casters.yaw_rad)
    centre = c[:, :2] + c[:, 2:3] * d
    gens = np.stack([h[:, 0:1] * np.stack([cos, sin], 1),
                     h[:, 1:2] * np.stack([-sin, cos], 1),
                     h[:, 2:3] * np.broadcast_to(d, (len(c), 2))], axis=1)  # (N, 3, 2)
    # A 2D zonotope: turn each generator into the upper half plane, sort by angle, walk.
    flip = (gens[:, :, 1] < 0) | ((gens[:, :, 1] == 0) & (gens[:, :, 0] < 0))
    gens = np.where(flip[:, :, None], -gens, gens)
    order = np.argsort(np.arctan2(gens[:, :, 1], gens[:, :, 0]), axis=1)
    gens = np.take_along_axis(gens, order[:, :, None], axis=1)
    start = centre - gens.sum(axis=1)
    steps = np.cumsum(2.0 * np.concatenate([gens, -gens[:, :2]], axis=1), axis=1)
    return np.concatenate([start[:, None], start[:, None] + steps], axis=1)


def _fill_ground_polygons(camera: CameraState, polys_xy: np.ndarray, first_row: int,
                          mask: np.ndarray, value: int) -> None:
    """Fill convex ground polygons (N, M, 2 world x, y) into ``mask`` (rows from first_row).

    Projection and culling (behind the camera, beyond the draw distance, outside the image,
    smaller than a pixel) run on all polygons at once; only the survivors are filled one by
    one. Polygons that reach behind the near plane are clipped first.
    """
    if len(polys_xy) == 0:
        return
    intr = camera.intrinsics
    r_wo = camera.world_from_optical()
    cam = np.asarray(camera.position_m)
    # Optical frame: o = R^T (p - cam), written as a row-vector product.
    pts = np.concatenate([polys_xy - cam[:2], np.full((*polys_xy.shape[:2], 1), -cam[2])],
                         axis=2) @ r_wo
    z = pts[:, :, 2]
    zmin = z.min(axis=1)
    height, width = mask.shape
    scale = 1 << _SUBPIXEL_BITS
    whole = zmin > SHADOW_NEAR_M
    whole &= zmin < DRAW_DISTANCE_M
    if whole.any():
        w = pts[whole]
        u = intr.fx * w[:, :, 0] / w[:, :, 2] + intr.cx
        v = intr.fy * w[:, :, 1] / w[:, :, 2] + (intr.cy - first_row)
        umin, umax, vmin, vmax = u.min(1), u.max(1), v.min(1), v.max(1)
        seen = (umax >= -1) & (umin <= width) & (vmax >= -1) & (vmin <= height) \
            & ((umax - umin) + (vmax - vmin) > 1.0)
        img = np.rint(np.clip(np.stack([u[seen], v[seen]], axis=2), -1e6, 1e6) * scale) \
            .astype(np.int32)
        for poly in img:
            cv2.fillConvexPoly(mask, poly, value, cv2.LINE_8, _SUBPIXEL_BITS)
    for i in np.flatnonzero(~whole & (z.max(axis=1) > SHADOW_NEAR_M)
                            & (zmin < DRAW_DISTANCE_M)):
        poly = _clip_near(pts[i], SHADOW_NEAR_M)
        if len(poly) < 3:
            continue
        u = intr.fx * poly[:, 0] / poly[:, 2] + intr.cx
        v = intr.fy * poly[:, 1] / poly[:, 2] + intr.cy - first_row
        if u.max() < -1 or u.min() > width or v.max() < -1 or v.min() > height:
            continue
        img = np.clip(np.stack([u, v], axis=1), -1e6, 1e6) * scale
        cv2.fillConvexPoly(mask, np.rint(img).astype(np.int32), value, cv2.LINE_8,
                           _SUBPIXEL_BITS)


def _clip_near(poly: np.ndarray, near_m: float) -> np.ndarray:
    """Sutherland-Hodgman clip of a convex 3D polygon to z >= near_m (optical frame)."""
    out = []
    n = len(poly)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        a_in, b_in = a[2] >= near_m, b[2] >= near_m
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (near_m - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out) if out else np.zeros((0, 3))


def shadow_mask(camera: CameraState, casters: BoxParts, sun_dir: np.ndarray,
                first_row: int) -> np.ndarray | None:
    """uint8 mask (1 = in shadow) of the image rows from ``first_row``, or None (no sun)."""
    if sun_dir[2] < 0.05:
        return None
    intr = camera.intrinsics
    mask = np.zeros((intr.height - first_row, intr.width), np.uint8)
    _fill_ground_polygons(camera, shadow_polygons(casters, sun_dir), first_row, mask, 1)
    return mask


def lamp_levels(camera: CameraState, look: Look, first_row: int) -> np.ndarray | None:
    """uint8 added ground light (x ``_LEVEL_SCALE``) of lamp pools and head lights, or None.

    Each light is five nested polygons (``_RINGS``: share of its strength, share of its reach)
    that brighten towards its centre, drawn outer rings first so that overlapping lights keep
    the brighter level.
    """
    pools = look.lamp_pools if look.lamp_light > 0 else None
    if pools is not None and len(pools):
        cam = np.asarray(camera.position_m)
        near = np.hypot(pools[:, 0] - cam[0], pools[:, 1] - cam[1]) < 90.0
        pools = pools[near]
    beams = look.headlight_light > 0
    if (pools is None or not len(pools)) and not beams:
        return None
    intr = camera.intrinsics
    levels = np.zeros((intr.height - first_row, intr.width), np.uint8)
    for share, frac in _RINGS:
        if pools is not None and len(pools):
            rings = pools[:, None, :2] + frac * pools[:, None, 2:3] * _DISC[None]
            _fill_ground_polygons(camera, rings, first_row, levels,
                                  min(255, round(_LEVEL_SCALE * share * look.lamp_light)))
        if beams:
            _fill_ground_polygons(camera, _beam(camera, frac)[None], first_row, levels,
                                  min(255, round(_LEVEL_SCALE * share * look.headlight_light)))
    return levels


def _beam(camera: CameraState, frac: float) -> np.ndarray:
    """Trapezoid (4, 2) on the ground lit by the ego's head lights (shorter for inner rings)."""
    x, y, _ = camera.position_m
    c, s = math.cos(camera.yaw_rad), math.sin(camera.yaw_rad)
    reach = 4.0 + 28.0 * frac
    near, far = 0.5 + 1.3 * frac, 1.2 + 4.8 * frac  # half widths: soft edges, not one edge
    local = np.array([[3.0, near], [reach, far], [reach, -far], [3.0, -near]])
    return np.stack([x + c * local[:, 0] - s * local[:, 1],
                     y + s * local[:, 0] + c * local[:, 1]], axis=1)
