"""Vectorised analytic renderer of box worlds on a flat ground plane (numpy, one core).

Every pixel's ray is intersected in closed form: the ground plane z = 0 here, and each box
with the slab method (three pairs of parallel planes, ``boxes.py``), so depth, instance and
class maps are exact for what is drawn, not approximations of a rasteriser. Boxes are only
evaluated inside the bounding rectangle of their (near-clipped) projection, and a z-buffer
keeps the nearest hit. The colour of a pixel (``shading.py``) and the light on the ground
(shadows, lamps: ``shadows.py``) never touch depth or the instance map.

The world frame is x forward (along the road start), y left, z up. Pixel (u, v) of an image is
the ray through the continuous image point (u, v) (OpenCV convention: integer coordinates are
pixel centres), so ``depth[v, u]`` agrees with ``flat_ground_depth(v, ...)`` and ``backproject``.
The camera may roll: the ground is then intersected per pixel instead of per row.
"""

from __future__ import annotations

import math

import numpy as np

from depthssd_core.geometry import CameraIntrinsics

from .boxes import draw_boxes
from .scene import (
    GROUND_SLOTS,
    GROUND_TEXELS_PER_M,
    NEAR_M,
    SKY_BINS,
    SKY_SLOPE,
    SKY_SLOT0,
    BoxParts,
    CameraState,
    GroundPainter,
    Look,
    RenderOutput,
    camera_rays,
    draw_distance,
)
from .shading import shade_image
from .shadows import ground_light
from .types import SKY_DEPTH_M


def render(camera: CameraState, parts: BoxParts, look: Look, ground: GroundPainter | None,
           frame_index: int = 0, casters: BoxParts | None = None) -> RenderOutput:
    """Render boxes and the ground plane seen by ``camera``.

    Args:
        camera: pose and intrinsics.
        parts: the boxes to draw (already culled or not; off-screen ones cost little).
        look: palette, lighting, textures, fog and camera response.
        ground: painter of the ground plane, or None for bare ground of material 0.
        frame_index: selects the sensor-noise offset so it changes from frame to frame.
        casters: boxes whose shadows fall on the ground (when ``look.shadows``); they may lie
            outside the view.

    Returns:
        RGB image, planar depth (sky = 1000), instance map (labelled owners, else 0) and
        for every labelled owner the number of pixels it covers alone.
    """
    intr = camera.intrinsics
    width, height = intr.width, intr.height
    r_wo = camera.world_from_optical()
    cam = np.asarray(camera.position_m, dtype=np.float64)
    rays = camera_rays(camera)
    fg = rays.first_ground
    up = rays.up
    with np.errstate(divide="ignore"):
        ground_depth = np.where(up < 0, -cam[2] / np.where(up < 0, up, -1.0), SKY_DEPTH_M)
    zbuf = np.empty((height, width), np.float32)
    zbuf[:] = np.minimum(ground_depth, SKY_DEPTH_M).astype(np.float32)
    # Each pixel stores a slot: < SKY_SLOT0 a ground material, then sky bins, then parts.
    # intp: np.take would otherwise convert every index array it is given.
    slot = np.empty((height, width), np.intp)
    if rays.sky_rows:
        bins = np.clip((up[:rays.sky_rows] * (SKY_SLOPE * SKY_BINS)).astype(np.intp), 0,
                       SKY_BINS - 1) + SKY_SLOT0
        slot[:rays.sky_rows] = bins
    shade = np.ones((height, width), np.float32)
    if fg < height:
        gz = zbuf[fg:]
        rows = slice(fg, None)
        gx = gz * rays.combine((1.0, 0.0, 0.0), rows) + np.float32(cam[0])
        gy = gz * rays.combine((0.0, 1.0, 0.0), rows) + np.float32(cam[1])
        if ground is None:
            gpaint, gbright = np.zeros(gz.shape, np.uint8), None
        else:
            gpaint, gbright = ground(gx, gy)
        gshade = ground_light(camera, look, casters, gx, gy, gpaint, rays)
        if gbright is not None:
            gshade *= gbright
        # Ground texture of each material from the world (x, y) of each ground pixel.
        k = np.float32(GROUND_TEXELS_PER_M)
        gidx = (gpaint.astype(np.int32) << 16) \
            | (((gx * k).astype(np.int32) & 255) << 8) | ((gy * k).astype(np.int32) & 255)
        gshade *= np.take(look.ground_textures.reshape(-1), gidx)
        if rays.rolled:
            on_ground = up[fg:] < 0
            np.copyto(slot[fg:], gpaint, where=on_ground)
            np.copyto(shade[fg:], gshade, where=on_ground)
        else:
            slot[fg:] = gpaint
            shade[fg:] = gshade

    parts = _cull(parts, r_wo, cam, intr)
    footprint, visible = draw_boxes(camera, r_wo, cam, parts, look, rays.xn, rays.yn, zbuf,
                                    slot, shade)
    owner_lut = np.concatenate([np.zeros(GROUND_SLOTS, np.int64),
                                np.maximum(parts.owner, 0)]).astype(np.int32)
    # Unlabelled parts (negative owners) map to 0 like ground: the result is the instance map.
    owner = np.take(owner_lut, slot)
    rgb = shade_image(look, parts, rays, cam, zbuf, slot, shade, frame_index)
    return RenderOutput(rgb, zbuf, owner, footprint, visible)


def _cull(parts: BoxParts, r_wo: np.ndarray, cam: np.ndarray,
          intr: CameraIntrinsics) -> BoxParts:
    """Keep the parts whose bounding sphere may reach the view frustum within draw distance."""
    if len(parts.center_m) == 0:
        return parts
    c = (parts.center_m - cam) @ r_wo  # optical-frame centres
    r = np.linalg.norm(parts.half_m, axis=1)
    tan_x = max(intr.cx, intr.width - intr.cx) / intr.fx
    tan_y = max(intr.cy, intr.height - intr.cy) / intr.fy
    # A sphere is outside a side plane when its centre lies beyond it by more than r; the
    # plane normals are not unit vectors, hence the sqrt(1 + tan^2) factors.
    keep = (c[:, 2] + r > NEAR_M) & (c[:, 2] - r < draw_distance(parts.texture))
    keep &= np.abs(c[:, 0]) - tan_x * c[:, 2] < r * math.sqrt(1.0 + tan_x * tan_x)
    keep &= np.abs(c[:, 1]) - tan_y * c[:, 2] < r * math.sqrt(1.0 + tan_y * tan_y)
    if keep.all():
        return parts
    return parts.select(keep)
