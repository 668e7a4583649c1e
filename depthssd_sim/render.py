"""Vectorised analytic renderer of box worlds on a flat ground plane (numpy, one core).

Every pixel's ray is intersected in closed form: the ground plane z = 0, and each box with the
slab method (three pairs of parallel planes), so depth, instance and class maps are exact for
what is drawn, not approximations of a rasteriser. Boxes are only evaluated inside the bounding
rectangle of their (near-clipped) projection, and a z-buffer keeps the nearest hit. The colour
of a pixel (``shading.py``) and the shadows on the ground (``shadows.py``) never touch depth or
the instance map.

The world frame is x forward (along the road start), y left, z up. Pixel (u, v) of an image is
the ray through the continuous image point (u, v) (OpenCV convention: integer coordinates are
pixel centres), so ``depth[v, u]`` agrees with ``flat_ground_depth(v, ...)`` and ``backproject``.
The camera may roll: the ground is then intersected per pixel instead of per row.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from depthssd_core.geometry import CameraIntrinsics

from .types import SKY_DEPTH_M

NEAR_M = 0.05
"""Surfaces closer than this to the camera plane are not drawn."""
DRAW_DISTANCE_M = 150.0
"""Boxes whose nearest corner is further than this (planar depth) are not drawn..."""
FAR_DRAW_DISTANCE_M = 250.0
"""...except parts flagged ``TEX_FAR`` (buildings), which close the view down the street."""
DETAIL_DISTANCE_M = 40.0
"""Parts flagged ``TEX_DETAIL`` (lamps, lights) are dropped beyond this depth."""
SKY_SLOT0 = 8
"""Slots (and palette indices) below this are ground materials (``road.GROUND_*``)..."""
SKY_BINS = 96
"""...the next ``SKY_BINS`` are the sky's colours from the horizon up..."""
GROUND_SLOTS = SKY_SLOT0 + SKY_BINS
"""...and part p of a render is slot ``GROUND_SLOTS + p``."""
FIRST_FREE_PAINT = GROUND_SLOTS
"""Palette index of the first actor colour (the palette starts with ground and sky)."""
SKY_SLOPE = 2.5
"""Sky bin of a ray: ``SKY_BINS * clip(SKY_SLOPE * world z of the ray (optical z = 1))``."""
SMALL_AREA_PX = 160
"""Parts whose bounding rectangle has at most this many pixels are ray-cast in one batch."""
GROUND_TEXELS_PER_M = 12.0
"""Density of ground textures (tile rows follow world x, columns world y)."""
GROUP_BUDGET = 12000
"""The parts of one object are cast together over their union rectangle when (parts x pixels
of that rectangle) is at most this: one set of array operations instead of one per part."""

# Texture of a box part: a kind (index into the look's texture stack) plus flags.
TEX_PLAIN = 0
TEX_WINDOWS = 1
TEX_FOLIAGE = 2
TEX_FLAT = 3
TEX_FACADE_B = 4
TEX_FACADE_C = 5
TEX_CLOTH_A = 6
TEX_CLOTH_B = 7
TEX_LIVERY = 8
TEX_PROP = 9
TEX_BARK = 10
TEX_BANDS = 11
TEX_GLASS = 12
NUM_TEXTURES = 13
TEX_KIND_MASK = 31
TEX_DETAIL = 32
"""Flag: a small part left out beyond ``DETAIL_DISTANCE_M``."""
TEX_EMISSIVE = 64
"""Flag: a light source (lamp, head or tail light): lit with ``Look.emissive_light``."""
TEX_FAR = 128
"""Flag: drawn up to ``FAR_DRAW_DISTANCE_M`` (buildings)."""

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
        roll_rad: rotation about the viewing direction (REP-103: positive lowers the right
            side, so the horizon runs up to the right in the image).
    """

    intrinsics: CameraIntrinsics
    position_m: tuple[float, float, float]
    yaw_rad: float
    pitch_rad: float
    roll_rad: float = 0.0

    def world_from_optical(self) -> np.ndarray:
        """3x3 rotation taking optical-frame vectors to the world frame."""
        cp, sp = math.cos(self.pitch_rad), math.sin(self.pitch_rad)
        cr, sr = math.cos(self.roll_rad), math.sin(self.roll_rad)
        # Rotation about body y (left) by +pitch tilts the forward axis down; about body x
        # (forward) by +roll lifts the left axis.
        pitch = np.array([[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]])
        roll = np.array([[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]])
        return rotation_z(self.yaw_rad) @ pitch @ roll @ _BODY_FROM_OPTICAL


@dataclass
class BoxParts:
    """Flat arrays describing P oriented boxes standing in the world.

    Attributes:
        center_m: (P, 3) world box centres.
        half_m: (P, 3) half sizes along the box's (length, width, height) axes.
        yaw_rad: (P,) heading of each box's length axis about world z.
        paint: (P,) index into the palette given to :func:`render`.
        texture: (P,) a ``TEX_*`` kind plus flags.
        owner: (P,) instance id (> 0) of the labelled object the part belongs to, or a
            negative number for unlabelled background (buildings, trees, poles). The parts
            of one owner are consecutive.
        gloss: (P,) specular strength 0 (matte) .. 1 (glass, polished paint), or None.
        uv_offset: (P,) texture u offset (texels) that pins the texture to a moving part, or
            None (textures anchored to the world).
    """

    center_m: np.ndarray
    half_m: np.ndarray
    yaw_rad: np.ndarray
    paint: np.ndarray
    texture: np.ndarray
    owner: np.ndarray
    gloss: np.ndarray | None = None
    uv_offset: np.ndarray | None = None

    def select(self, keep: np.ndarray) -> BoxParts:
        """The parts where ``keep`` (boolean mask or index array) selects them."""
        return BoxParts(self.center_m[keep], self.half_m[keep], self.yaw_rad[keep],
                        self.paint[keep], self.texture[keep], self.owner[keep],
                        None if self.gloss is None else self.gloss[keep],
                        None if self.uv_offset is None else self.uv_offset[keep])


@dataclass
class Look:
    """What the renderer needs to light a frame (see ``shading.py`` for the colour pass).

    Attributes:
        palette: (N, 3) float32 RGB 0..255 (ground materials, sky bins, then actor paints).
        sun_dir: unit vector towards the sun (or moon) in the world frame.
        ambient: light on faces turned away from the sun, and on ground in shadow.
        sun: extra light on faces turned to the sun (times the cosine).
        fog_density_per_m: extinction per metre (0 = clear).
        fog_rgb: colour that distant surfaces fade to.
        textures: (NUM_TEXTURES, 256, 256) float32 brightness tiles of box parts.
        ground_textures: (8, 256, 256) float32 brightness tiles, one per ground material.
        emissive_light: light of ``TEX_EMISSIVE`` parts (above 1 saturates towards white).
        specular: strength of sun highlights on glossy parts (0 = none).
        shadows: whether objects cast shadows on the ground.
        ground_sheen: wet-road reflection towards the horizon on asphalt (0 = dry).
        lamp_pools: (L, 3) world (x, y, radius) of pools of lamp light on the ground.
        lamp_light: extra ground light at the centre of a lamp pool.
        headlight_light: extra ground light in the ego's headlight beam (0 = off).
        white_rgb: colour that light above 1 saturates towards (None: 255 white).
        response: camera response applied to the final image (``shading.CameraResponse``),
            or None for a plain linear one.
    """

    palette: np.ndarray
    sun_dir: np.ndarray
    ambient: float
    sun: float
    fog_density_per_m: float
    fog_rgb: np.ndarray
    textures: np.ndarray
    ground_textures: np.ndarray
    emissive_light: float = 1.3
    specular: float = 0.0
    shadows: bool = False
    ground_sheen: float = 0.0
    lamp_pools: np.ndarray | None = None
    lamp_light: float = 0.0
    headlight_light: float = 0.0
    white_rgb: np.ndarray | None = None
    response: object | None = None


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
    """Raw render buffers, and visible / unoccluded pixel counts of labelled owners."""

    rgb: np.ndarray
    depth_m: np.ndarray
    owner: np.ndarray
    footprint: dict[int, int]
    visible: dict[int, int]


GroundPainter = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]]
"""Maps world (x, y) of ground pixels to (material index < SKY_SLOT0, brightness or None)."""


@dataclass
class Rays:
    """World ray directions of the pixels (optical z = 1) and where ground and sky are.

    A ray's world component i is ``a[i] * xn[col] + b[i] * yn[row] + c[i]`` (the columns of
    the camera rotation), so any linear combination of components is one broadcast product;
    :meth:`combine` builds them only where they are needed.

    Attributes:
        xn: (W,) normalised image x of the columns.
        yn: (H,) normalised image y of the rows.
        rotation: world-from-optical rotation (its rows are a, b, c per world axis).
        up: the world z component in float64, (H, 1) without roll (it depends on the row
            only) or (H, W) with roll; ground depth is ``-camera height / up`` where up < 0.
        rolled: whether the world z component depends on the column (camera roll).
        first_ground: first row holding a ground pixel (H if none).
        sky_rows: rows [0, sky_rows) hold every sky pixel (0 if none).
    """

    xn: np.ndarray
    yn: np.ndarray
    rotation: np.ndarray
    up: np.ndarray
    rolled: bool
    first_ground: int
    sky_rows: int

    def combine(self, weights: tuple[float, float, float], rows: slice = slice(None)
                ) -> np.ndarray:
        """float32 (rows, W) of ``sum_i weights[i] * world component i`` of the rays."""
        w = np.asarray(weights, np.float64) @ self.rotation
        return (np.float32(w[0]) * self.xn)[None, :] \
            + (np.float32(w[1]) * self.yn[rows] + np.float32(w[2]))[:, None]


def camera_rays(camera: CameraState) -> Rays:
    """The rays of every pixel, and the row ranges of ground and sky."""
    intr = camera.intrinsics
    r_wo = camera.world_from_optical()
    x64 = (np.arange(intr.width) - intr.cx) / intr.fx
    y64 = (np.arange(intr.height) - intr.cy) / intr.fy
    rolled = abs(r_wo[2, 0]) > 1e-12
    # Float64 for the ground: near the horizon the float32 sum loses digits.
    up = (r_wo[2, 1] * y64 + r_wo[2, 2])[:, None]
    if rolled:
        up = up + r_wo[2, 0] * x64[None, :]
    down = (up < 0).any(axis=1)
    sky = (up >= 0).any(axis=1)
    first_ground = int(np.argmax(down)) if down.any() else intr.height
    sky_rows = int(len(sky) - np.argmax(sky[::-1])) if sky.any() else 0
    return Rays(x64.astype(np.float32), y64.astype(np.float32), r_wo, up, rolled,
                first_ground, sky_rows)


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
    from .shading import shade_image  # the colour pass; imports this module's constants
    from .shadows import ground_light

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
    footprint, visible = _draw_boxes(camera, r_wo, cam, parts, look, rays.xn, rays.yn, zbuf,
                                     slot, shade)
    owner_lut = np.concatenate([np.zeros(GROUND_SLOTS, np.int64),
                                np.maximum(parts.owner, 0)]).astype(np.int32)
    # Unlabelled parts (negative owners) map to 0 like ground: the result is the instance map.
    owner = np.take(owner_lut, slot)
    rgb = shade_image(look, parts, rays, cam, zbuf, slot, shade, frame_index)
    return RenderOutput(rgb, zbuf, owner, footprint, visible)


def draw_distance(texture: np.ndarray) -> np.ndarray:
    """Per-part draw distance from the texture flags."""
    return np.where((texture & TEX_FAR) != 0, FAR_DRAW_DISTANCE_M, DRAW_DISTANCE_M)


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
    axes_o = np.matmul(r_ow, axes_w)  # batched products: much faster than einsum here
    center_o = (center_m - cam) @ r_ow.T
    corners = center_o[:, None, :] + np.matmul(_SIGNS[None] * half_m[:, None, :],
                                               axes_o.transpose(0, 2, 1))
    return center_o, axes_o, corners


def _face_light(parts: BoxParts, look: Look, axes_o: np.ndarray, center_o: np.ndarray,
                cam: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Brightness (P, 3) of the camera-facing face of each axis, and ``q`` = axis . centre.

    The camera sees the face whose outward normal is ``-sign(q) * axis``. Diffuse light is
    ambient plus sun times the cosine; glossy parts add a sun highlight (Blinn-Phong with the
    view direction to the part's centre, one value per face); light sources shine with
    ``look.emissive_light`` whatever the sun does.
    """
    axes_w = rotation_z(parts.yaw_rad)
    sun_cos = look.sun_dir @ axes_w  # (P, 3) axis . sun
    q = (axes_o * center_o[:, :, None]).sum(axis=1)  # axis . centre, per axis
    sign = np.where(q > 0, -1.0, 1.0)
    face_cos = sign * sun_cos
    lit = look.ambient + look.sun * np.maximum(0.0, face_cos)
    if parts.gloss is not None and look.specular > 0 and np.any(parts.gloss > 0):
        view = cam - parts.center_m
        view /= np.maximum(np.linalg.norm(view, axis=1, keepdims=True), 1e-9)
        half = view + look.sun_dir
        half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-9)
        n_dot_h = sign * np.einsum("pc,pca->pa", half, axes_w)
        lit = lit + (look.specular * parts.gloss)[:, None] \
            * np.maximum(0.0, n_dot_h) ** 24 * (face_cos > 0)
    emissive = (parts.texture & TEX_EMISSIVE) != 0
    if emissive.any():
        lit[emissive] = np.maximum(lit[emissive], look.emissive_light)
    return lit.astype(np.float32), q


def _draw_boxes(camera: CameraState, r_wo: np.ndarray, cam: np.ndarray, parts: BoxParts,
                look: Look, xn: np.ndarray, yn: np.ndarray, zbuf: np.ndarray,
                slot: np.ndarray, shade: np.ndarray) -> tuple[dict[int, int], dict[int, int]]:
    """Z-buffer every box part into the buffers.

    Returns:
        For every visible labelled owner, the pixels it would cover alone (clipped to the
        image) and the pixels it covers in the frame.

    Objects are drawn nearest first, so one whose whole rectangle is already covered by
    nearer surfaces can be skipped; for labelled owners such hidden parts are kept aside and
    only evaluated (for the footprint) if their owner turns out to be visible. Tiny parts are
    cast in one batch; the parts of a mid-sized object together over its rectangle.
    """
    intr = camera.intrinsics
    width, height = intr.width, intr.height
    if len(parts.center_m) == 0:
        return {}, {}
    r_ow = r_wo.T
    center_o, axes_o, corners = box_corners_optical(parts.center_m, parts.half_m,
                                                    parts.yaw_rad, r_ow, cam)
    zc = corners[:, :, 2]
    zmin, zmax = zc.min(axis=1), zc.max(axis=1)
    detail = (parts.texture & TEX_DETAIL) != 0
    drawn = (zmax > NEAR_M) & (zmin < draw_distance(parts.texture)) \
        & ~(detail & (zmin > DETAIL_DISTANCE_M))
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intr.fx * corners[:, :, 0] / zc + intr.cx
        v = intr.fy * corners[:, :, 1] / zc + intr.cy
    umin, umax = u.min(1), u.max(1)
    vmin, vmax = v.min(1), v.max(1)
    for p in np.flatnonzero(drawn & (zmin < NEAR_M)):  # crossing the near plane: clip first
        pts = clipped_projection(corners[p], intr)
        umin[p], vmin[p] = pts.min(axis=0)
        umax[p], vmax[p] = pts.max(axis=0)
    with np.errstate(invalid="ignore"):
        x0 = np.clip(np.ceil(umin), 0, width).astype(np.int64)
        x1 = np.clip(np.floor(umax) + 1, 0, width).astype(np.int64)
        y0 = np.clip(np.ceil(vmin), 0, height).astype(np.int64)
        y1 = np.clip(np.floor(vmax) + 1, 0, height).astype(np.int64)
    drawn &= (x1 > x0) & (y1 > y0)
    lit, q = _face_light(parts, look, axes_o, center_o, cam)
    buffers = _Buffers(zbuf, slot, shade, xn, yn, axes_o.astype(np.float32),
                       q.astype(np.float32), parts.half_m.astype(np.float32), lit)
    owners = parts.owner
    area = (x1 - x0) * (y1 - y0)
    small = np.flatnonzero(drawn & (area <= SMALL_AREA_PX))
    big = np.flatnonzero(drawn & (area > SMALL_AREA_PX))
    # Runs of consecutive big parts of one owner are drawn as one object.
    starts = np.flatnonzero(np.r_[True, owners[big[1:]] != owners[big[:-1]]])
    groups = np.split(big, starts[1:]) if len(big) else []
    groups.sort(key=lambda g: float(zmin[g].min()))
    for g in groups:
        oid = int(owners[g[0]])
        ya, yb = int(y0[g].min()), int(y1[g].max())
        xa, xb = int(x0[g].min()), int(x1[g].max())
        if len(g) > 1 and len(g) * (yb - ya) * (xb - xa) <= GROUP_BUDGET:
            zr = zbuf[ya:yb, xa:xb]
            if zr.max() <= zmin[g].min():
                if oid > 0:
                    buffers.hidden.setdefault(oid, []).extend(g.tolist())
                continue
            buffers.draw_group(g, oid, ya, yb, xa, xb)
            continue
        for p in g[np.argsort(zmin[g], kind="stable")].tolist():
            buffers.draw_part(p, oid, int(y0[p]), int(y1[p]), int(x0[p]), int(x1[p]),
                              float(zmin[p]))
    small_hits = _draw_small(small, x0, y0, x1, y1, buffers, owners)
    # Owners that ended up visible, and their pixel counts, from a histogram of part slots.
    counts = np.bincount(slot.reshape(-1), minlength=GROUND_SLOTS + len(owners))[GROUND_SLOTS:]
    seen = np.flatnonzero((counts > 0) & (owners > 0))
    uniq, inverse = np.unique(owners[seen], return_inverse=True)
    visible = dict(zip(uniq.tolist(), np.bincount(inverse, weights=counts[seen]).astype(int)
                       .tolist(), strict=True))
    footprint: dict[int, int] = {}
    union = buffers.union
    for oid in visible:
        for p in buffers.hidden.get(oid, ()):
            ya, yb, xa, xb = int(y0[p]), int(y1[p]), int(x0[p]), int(x1[p])
            _, hit, _ = _slab(buffers.axes[p], buffers.q[p], buffers.half[p], xn[xa:xb],
                              yn[ya:yb], lit[p])
            _accumulate_union(union, oid, xa, ya, hit)
        if oid not in small_hits:
            footprint[oid] = int(np.count_nonzero(union[oid][2]))
            continue
        ids = small_hits[oid]
        if oid in union:
            ox, oy, mask = union[oid]
            rows, cols = np.nonzero(mask)
            ids = np.union1d(ids, (rows + oy) * width + cols + ox)
        footprint[oid] = len(ids)
    return footprint, visible


class _Buffers:
    """The z-buffer, slot and shade images and the per-part arrays the drawing steps share."""

    def __init__(self, zbuf: np.ndarray, slot: np.ndarray, shade: np.ndarray, xn: np.ndarray,
                 yn: np.ndarray, axes: np.ndarray, q: np.ndarray, half: np.ndarray,
                 lit: np.ndarray) -> None:
        self.zbuf, self.slot, self.shade, self.xn, self.yn = zbuf, slot, shade, xn, yn
        self.axes, self.q, self.half, self.lit = axes, q, half, lit
        self.union: dict[int, tuple[int, int, np.ndarray]] = {}
        self.hidden: dict[int, list[int]] = {}

    def draw_part(self, p: int, oid: int, ya: int, yb: int, xa: int, xb: int,
                  zmin: float) -> None:
        """Cast one part over its rectangle and keep its nearer pixels."""
        zr = self.zbuf[ya:yb, xa:xb]
        if oid > 0:
            if zr.max() <= zmin:  # entirely behind what is drawn already
                self.hidden.setdefault(oid, []).append(p)
                return
        else:
            # Background needs no footprint: shrink its rectangle to the rows and columns
            # where something further than its nearest corner is drawn so far.
            further = zr > zmin
            cols = np.flatnonzero(further.any(axis=0))
            if len(cols) == 0:
                return
            rows = np.flatnonzero(further[:, cols[0]:cols[-1] + 1].any(axis=1))
            ya, yb, xa, xb = ya + rows[0], ya + rows[-1] + 1, xa + cols[0], xa + cols[-1] + 1
            zr = self.zbuf[ya:yb, xa:xb]
        entry, hit, face = _slab(self.axes[p], self.q[p], self.half[p], self.xn[xa:xb],
                                 self.yn[ya:yb], self.lit[p])
        closer = np.less(entry, zr)
        closer &= hit
        np.copyto(zr, entry, where=closer)
        np.copyto(self.slot[ya:yb, xa:xb], GROUND_SLOTS + p, where=closer)
        np.copyto(self.shade[ya:yb, xa:xb], face, where=closer)
        if oid > 0:
            _accumulate_union(self.union, oid, xa, ya, hit)

    def draw_group(self, g: np.ndarray, oid: int, ya: int, yb: int, xa: int, xb: int) -> None:
        """Cast the K parts ``g`` of one owner together over their union rectangle.

        Same slab method as :func:`_slab` on (K, 3 axes, rows, cols) arrays; the nearest part
        of each pixel wins.
        """
        a = self.axes[g]  # (K, 3 components, 3 axes)
        xs = self.xn[xa:xb][None, None, None, :]
        ys = self.yn[ya:yb][None, None, :, None]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            s = a[:, 0, :, None, None] * xs + (a[:, 1, :, None, None] * ys
                                                + a[:, 2, :, None, None])
            inv = np.reciprocal(s, out=s)
            qq = self.q[g][:, :, None, None]
            hh = self.half[g][:, :, None, None]
            t1 = (qq - hh) * inv
            t2 = np.multiply(qq + hh, inv, out=inv)
            lo = np.minimum(t1, t2)
            hi = np.maximum(t1, t2, out=t2)
            face = lo.argmax(axis=1)  # (K, rows, cols)
            entry = lo.max(axis=1)
            hit = (entry <= hi.min(axis=1)) & (entry > np.float32(NEAR_M))
        entry[~hit] = np.inf
        best = entry.argmin(axis=0)[None]
        nearest = np.take_along_axis(entry, best, axis=0)[0]
        zr = self.zbuf[ya:yb, xa:xb]
        closer = nearest < zr
        part = np.asarray(g)[best[0]]
        lit = self.lit[part, np.take_along_axis(face, best, axis=0)[0]]
        np.copyto(zr, nearest, where=closer)
        np.copyto(self.slot[ya:yb, xa:xb], GROUND_SLOTS + part, where=closer)
        np.copyto(self.shade[ya:yb, xa:xb], lit, where=closer)
        if oid > 0:
            _accumulate_union(self.union, oid, xa, ya, hit.any(axis=0))


def _draw_small(ps: np.ndarray, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray,
                y1: np.ndarray, buf: _Buffers, owners: np.ndarray) -> dict[int, np.ndarray]:
    """Draw many small parts at once: one flat array holds every pixel of their rectangles.

    Per-part Python overhead dominates for parts a few pixels large (far objects, poles), so
    they are ray-cast together and the nearest hit per pixel is picked by sorting.

    Returns:
        For each labelled owner, the sorted flat pixel ids its small parts cover.
    """
    if len(ps) == 0:
        return {}
    zbuf = buf.zbuf
    width = zbuf.shape[1]
    w_p = x1[ps] - x0[ps]
    a_p = w_p * (y1[ps] - y0[ps])
    pid = np.repeat(ps, a_p)
    k = np.arange(len(pid)) - np.repeat(np.cumsum(a_p) - a_p, a_p)
    wr = np.repeat(w_p, a_p)
    u = np.repeat(x0[ps], a_p) + k % wr
    v = np.repeat(y0[ps], a_p) + k // wr
    axes = buf.axes[pid]  # (M, 3 components, 3 axes)
    s = axes[:, 0, :] * buf.xn[u, None] + axes[:, 1, :] * buf.yn[v, None] + axes[:, 2, :]
    qq, hh = buf.q[pid], buf.half[pid]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (qq - hh) / s
        t2 = (qq + hh) / s
        lo = np.minimum(t1, t2)
        entry = lo.max(axis=1)
        hit = (entry <= np.maximum(t1, t2).min(axis=1)) & (entry > NEAR_M)
    face = lo.argmax(axis=1)[hit]
    pid, entry = pid[hit], entry[hit]
    pix = v[hit] * width + u[hit]
    # Nearest hit per pixel, straight into the z-buffer (an unbuffered minimum); a hit wins
    # where it is that minimum and nearer than what was drawn before.
    zflat = zbuf.reshape(-1)
    before = zflat[pix]
    np.minimum.at(zflat, pix, entry)
    closer = np.flatnonzero((entry == zflat[pix]) & (entry < before))
    cp = pix[closer]
    buf.slot.reshape(-1)[cp] = GROUND_SLOTS + pid[closer]
    buf.shade.reshape(-1)[cp] = buf.lit[pid[closer], face[closer]]
    labelled = owners[pid] > 0
    keys = np.unique(owners[pid[labelled]] * zflat.size + pix[labelled])
    if len(keys) == 0:
        return {}
    key_owner = keys // zflat.size  # sorted, like keys
    starts = np.flatnonzero(np.r_[True, key_owner[1:] != key_owner[:-1]])
    bounds = [*starts[1:].tolist(), len(keys)]
    return {int(key_owner[a]): keys[a:b] % zflat.size
            for a, b in zip(starts.tolist(), bounds, strict=True)}


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


def _slab(axes_o: np.ndarray, q: np.ndarray, half: np.ndarray, xn: np.ndarray,
          yn: np.ndarray, lit: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                   np.ndarray | np.float32]:
    """Entry depth, hit mask and entry-face brightness of one box over a pixel rectangle.

    Slab method: the ray through (xn, yn, 1) meets the slab |a . X - q| <= h for t between
    (q - h) / s and (q + h) / s with s = a . r; the box is the intersection of three slabs, so
    the ray enters at the largest entry and leaves at the smallest exit. When the camera is
    outside a slab (|q| > h) the near plane is always the one at q - sign(q) h, whose face has
    brightness ``lit[k]``; an axis with no x component (the vertical axis of an unrolled
    camera) depends on the row only. Operations run in place to spare allocations.
    """
    shape = (len(yn), len(xn))
    entry = exit_ = None
    face: np.ndarray | np.float32 = np.float32(0.0)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for k in range(3):
            a = axes_o[:, k]
            col = (np.float32(a[1]) * yn + np.float32(a[2]))[:, None]
            s = col if abs(a[0]) < 1e-12 else np.add(col, np.float32(a[0]) * xn)
            inv = np.reciprocal(s, out=s) if s.shape == shape else np.float32(1.0) / s
            qk, hk = float(q[k]), float(half[k])
            if abs(qk) > hk:
                sign = 1.0 if qk > 0 else -1.0
                near = inv * np.float32(qk - sign * hk)
                far = np.multiply(inv, np.float32(qk + sign * hk), out=inv)
                if entry is None:
                    entry, face = near, np.float32(lit[k])
                else:
                    newer = near > entry
                    face = np.where(newer, np.float32(lit[k]), face)
                    entry = np.maximum(entry, near, out=entry if entry.shape == shape else None)
            else:
                t1 = inv * np.float32(qk - hk)
                far = np.maximum(t1, np.multiply(inv, np.float32(qk + hk), out=inv), out=inv)
            if exit_ is None:
                exit_ = far
            else:
                exit_ = np.minimum(exit_, far, out=exit_ if exit_.shape == shape else None)
        if entry is None:  # the camera is inside the box: its faces are not drawn
            return np.full(shape, np.inf, np.float32), np.zeros(shape, bool), face
        if entry.shape != shape:
            entry = np.broadcast_to(entry, shape)
        hit = np.less_equal(entry, exit_)
        hit &= entry > np.float32(NEAR_M)
    return entry, hit, face


def polygon_truncation(points: np.ndarray, width: int, height: int) -> float:
    """Fraction of the convex hull of image ``points`` that lies outside the image.

    The image covers [-0.5, W - 0.5] x [-0.5, H - 0.5] (pixel centres at integers).
    """
    import cv2

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
