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
DRAW_DISTANCE_M = 150.0
"""Boxes whose nearest corner is further than this (planar depth) are not drawn..."""
FAR_DRAW_DISTANCE_M = 250.0
"""...except buildings (``TEX_WINDOWS`` parts), which close the view down the street."""
DETAIL_DISTANCE_M = 40.0
"""Parts marked as detail (``TEX_DETAIL`` bit) are dropped beyond this depth."""
GROUND_SLOTS = 8
SMALL_AREA_PX = 160
"""Parts whose bounding rectangle has at most this many pixels are ray-cast in one batch."""
"""Palette indices below this are ground materials and sky; box parts use the ones above."""

# Texture kinds of box parts (how the final shading pass decorates them).
TEX_PLAIN = 0
TEX_WINDOWS = 1
TEX_FOLIAGE = 2
TEX_FLAT = 3
TEX_DETAIL = 8
"""Flag added to a texture kind: a small part left out beyond ``DETAIL_DISTANCE_M``."""

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
        sensor_noise: (H + 16, W + 16) float32 multiplicative noise around 1, or None.
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
    textures: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.textures is None:
            self.textures = texture_stack(self.noise_tile)


def texture_stack(noise_tile: np.ndarray) -> np.ndarray:
    """The (4, 256, 256) brightness tiles indexed by texture kind.

    Tiles are sampled at 4 texels per metre with u = x + y and v = z of the world point, so they
    stick to walls of any orientation. Kind 0 is plain noise, 1 adds a grid of window panes
    (3 m floors, 2.5 m spacing), 2 is high-contrast foliage, 3 is flat (the ground pass applies
    its own noise, since v is constant on the ground).
    """
    tile = noise_tile.astype(np.float32)
    rows = np.arange(256)[:, None]
    cols = np.arange(256)[None, :]
    pane = ((rows % 12) >= 4) & ((rows % 12) < 10) & ((cols % 10) >= 2) & ((cols % 10) < 8)
    windows = np.where(pane, np.float32(0.45) * tile.T, tile)
    foliage = tile * tile.T * tile.T
    return np.stack([tile, windows, foliage, np.ones_like(tile)]).astype(np.float32)


@dataclass
class ObjectBox3D:
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
        RGB image, planar depth (sky = 1000), instance map (labelled owners, else 0) and
        for every labelled owner the number of pixels it covers alone.
    """
    intr = camera.intrinsics
    width, height = intr.width, intr.height
    r_wo = camera.world_from_optical()
    cam = np.asarray(camera.position_m, dtype=np.float64)
    xn = ((np.arange(width) - intr.cx) / intr.fx).astype(np.float32)
    yn = ((np.arange(height) - intr.cy) / intr.fy).astype(np.float32)

    # World ray directions of each pixel (optical z = 1, so the ray parameter is the depth).
    ray_w = [(np.float32(r_wo[i, 0]) * xn)[None, :]
             + (np.float32(r_wo[i, 1]) * yn + np.float32(r_wo[i, 2]))[:, None]
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
    # Each pixel stores a slot: < GROUND_SLOTS a palette index of ground/sky, else 8 + part.
    # intp: np.take would otherwise convert every index array it is given.
    slot = np.full((height, width), look.sky_index, np.intp)
    shade = np.full((height, width), look.ambient + look.sun * max(0.0, look.sun_dir[2]),
                    np.float32)
    if first_ground < height:
        gz = zbuf[first_ground:]
        gx = gz * ray_w[0][first_ground:] + np.float32(cam[0])
        gy = gz * ray_w[1][first_ground:] + np.float32(cam[1])
        if ground is None:
            slot[first_ground:] = 0
        else:
            gpaint, gbright = ground(gx, gy)
            slot[first_ground:] = gpaint
            if gbright is not None:
                shade[first_ground:] *= gbright
        # Ground texture from the world (x, y) of each ground pixel.
        gidx = (((gx * np.float32(4.0)).astype(np.intp) & 255) << 8) \
            | ((gy * np.float32(4.0)).astype(np.intp) & 255)
        shade[first_ground:] *= np.take(look.noise_tile.reshape(-1), gidx)

    parts = _cull(parts, r_wo, cam, intr)
    footprint, visible = _draw_boxes(camera, r_wo, cam, parts, look, xn, yn, zbuf, slot,
                                     shade)
    paint_lut = np.concatenate([np.arange(GROUND_SLOTS), parts.paint]).astype(np.int32)
    # Unlabelled parts (negative owners) map to 0 like ground: the result is the instance map.
    owner_lut = np.concatenate([np.zeros(GROUND_SLOTS, np.int64),
                                np.maximum(parts.owner, 0)]).astype(np.int32)
    tex_lut = np.concatenate([np.full(GROUND_SLOTS, TEX_FLAT, np.int64),
                              parts.texture & (TEX_DETAIL - 1)]).astype(np.intp)
    owner = np.take(owner_lut, slot)
    texture = np.take(tex_lut << 16, slot)
    rgb = _shade(look, ray_w, cam, zbuf, slot, paint_lut, texture, shade, first_ground,
                 frame_index)
    return RenderOutput(rgb, zbuf, owner, footprint, visible)


def _draw_distance(texture: np.ndarray) -> np.ndarray:
    """Per-part draw distance from the texture kind."""
    return np.where((texture & (TEX_DETAIL - 1)) == TEX_WINDOWS, FAR_DRAW_DISTANCE_M,
                    DRAW_DISTANCE_M)


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
    keep = (c[:, 2] + r > NEAR_M) & (c[:, 2] - r < _draw_distance(parts.texture))
    keep &= np.abs(c[:, 0]) - tan_x * c[:, 2] < r * math.sqrt(1.0 + tan_x * tan_x)
    keep &= np.abs(c[:, 1]) - tan_y * c[:, 2] < r * math.sqrt(1.0 + tan_y * tan_y)
    if keep.all():
        return parts
    return BoxParts(parts.center_m[keep], parts.half_m[keep], parts.yaw_rad[keep],
                    parts.paint[keep], parts.texture[keep], parts.owner[keep])


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


def _draw_boxes(camera: CameraState, r_wo: np.ndarray, cam: np.ndarray, parts: BoxParts,
                look: Look, xn: np.ndarray, yn: np.ndarray, zbuf: np.ndarray,
                slot: np.ndarray, shade: np.ndarray) -> tuple[dict[int, int], dict[int, int]]:
    """Z-buffer every box part into the buffers.

    Returns:
        For every visible labelled owner, the pixels it would cover alone (clipped to the
        image) and the pixels it covers in the frame.

    Parts are drawn nearest first, so a part whose whole rectangle is already covered by
    nearer surfaces can be skipped; for labelled owners such hidden parts are kept aside and
    only evaluated (for the footprint) if their owner turns out to be visible.
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
    drawn = (zmax > NEAR_M) & (zmin < _draw_distance(parts.texture)) \
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
    # Brightness of the camera-facing face of each axis: the camera sees the face whose
    # outward normal is -sign(q) * axis (q = axis . centre in the optical frame).
    axes_w = rotation_z(parts.yaw_rad)
    sun_cos = look.sun_dir @ axes_w  # (P, 3) axis . sun
    q = (axes_o * center_o[:, :, None]).sum(axis=1)  # axis . centre, per axis
    face_cos = np.where(q > 0, -sun_cos, sun_cos)
    lit = (look.ambient + look.sun * np.maximum(0.0, face_cos)).astype(np.float32)
    union: dict[int, tuple[int, int, np.ndarray]] = {}
    hidden: dict[int, list[int]] = {}
    owners = parts.owner
    order = np.flatnonzero(drawn)
    area = (x1 - x0) * (y1 - y0)
    small = order[area[order] <= SMALL_AREA_PX]
    order = order[area[order] > SMALL_AREA_PX]
    order = order[np.argsort(zmin[order], kind="stable")]
    for p in order.tolist():
        ya, yb, xa, xb = int(y0[p]), int(y1[p]), int(x0[p]), int(x1[p])
        zr = zbuf[ya:yb, xa:xb]
        oid = int(owners[p])
        if oid > 0:
            if zr.max() <= zmin[p]:  # entirely behind what is drawn already
                hidden.setdefault(oid, []).append(p)
                continue
        else:
            # Background needs no footprint: shrink its rectangle to the rows and columns
            # where something further than its nearest corner is drawn so far.
            further = zr > zmin[p]
            cols = np.flatnonzero(further.any(axis=0))
            if len(cols) == 0:
                continue
            rows = np.flatnonzero(further[:, cols[0]:cols[-1] + 1].any(axis=1))
            ya, yb, xa, xb = ya + rows[0], ya + rows[-1] + 1, xa + cols[0], xa + cols[-1] + 1
            zr = zbuf[ya:yb, xa:xb]
        entry, hit, face = _slab(axes_o[p], q[p], parts.half_m[p], xn[xa:xb], yn[ya:yb],
                                 lit[p])
        closer = np.less(entry, zr)
        closer &= hit
        np.copyto(zr, entry, where=closer)
        np.copyto(slot[ya:yb, xa:xb], GROUND_SLOTS + p, where=closer)
        np.copyto(shade[ya:yb, xa:xb], face, where=closer)
        if oid > 0:
            _accumulate_union(union, oid, xa, ya, hit)
    small_hits = _draw_small(small, x0, y0, x1, y1, axes_o, q, parts.half_m, lit, owners, xn,
                             yn, zbuf, slot, shade)
    # Owners that ended up visible, and their pixel counts, from a histogram of part slots.
    counts = np.bincount(slot.reshape(-1), minlength=GROUND_SLOTS + len(owners))[GROUND_SLOTS:]
    seen = np.flatnonzero((counts > 0) & (owners > 0))
    uniq, inverse = np.unique(owners[seen], return_inverse=True)
    visible = dict(zip(uniq.tolist(), np.bincount(inverse, weights=counts[seen]).astype(int)
                       .tolist(), strict=True))
    footprint: dict[int, int] = {}
    for oid in visible:
        for p in hidden.get(oid, ()):
            ya, yb, xa, xb = int(y0[p]), int(y1[p]), int(x0[p]), int(x1[p])
            _, hit, _ = _slab(axes_o[p], q[p], parts.half_m[p], xn[xa:xb], yn[ya:yb], lit[p])
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


def _draw_small(ps: np.ndarray, x0: np.ndarray, y0: np.ndarray, x1: np.ndarray,
                y1: np.ndarray, axes_o: np.ndarray, q: np.ndarray, half: np.ndarray,
                lit: np.ndarray, owners: np.ndarray, xn: np.ndarray, yn: np.ndarray,
                zbuf: np.ndarray, slot: np.ndarray, shade: np.ndarray) -> dict[int, np.ndarray]:
    """Draw many small parts at once: one flat array holds every pixel of their rectangles.

    Per-part Python overhead dominates for parts a few pixels large (far objects, poles), so
    they are ray-cast together and the nearest hit per pixel is picked by sorting.

    Returns:
        For each labelled owner, the sorted flat pixel ids its small parts cover.
    """
    if len(ps) == 0:
        return {}
    width = zbuf.shape[1]
    w_p = x1[ps] - x0[ps]
    a_p = w_p * (y1[ps] - y0[ps])
    pid = np.repeat(ps, a_p)
    k = np.arange(len(pid)) - np.repeat(np.cumsum(a_p) - a_p, a_p)
    wr = np.repeat(w_p, a_p)
    u = np.repeat(x0[ps], a_p) + k % wr
    v = np.repeat(y0[ps], a_p) + k // wr
    axes = axes_o[pid]  # (M, 3 components, 3 axes)
    s = axes[:, 0, :] * xn[u, None] + axes[:, 1, :] * yn[v, None] + axes[:, 2, :]
    qq, hh = q[pid], half[pid]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (qq - hh) / s
        t2 = (qq + hh) / s
        lo = np.minimum(t1, t2)
        entry = lo.max(axis=1)
        hit = (entry <= np.maximum(t1, t2).min(axis=1)) & (entry > NEAR_M)
    face = lo.argmax(axis=1)[hit]
    pid, entry = pid[hit], entry[hit]
    pix = v[hit] * width + u[hit]
    nearest = np.lexsort((entry, pix))
    first = np.ones(len(nearest), bool)
    first[1:] = pix[nearest[1:]] != pix[nearest[:-1]]
    nearest = nearest[first]
    zflat = zbuf.reshape(-1)
    closer = nearest[entry[nearest] < zflat[pix[nearest]]]
    cp = pix[closer]
    zflat[cp] = entry[closer]
    slot.reshape(-1)[cp] = GROUND_SLOTS + pid[closer]
    shade.reshape(-1)[cp] = lit[pid[closer], face[closer]]
    labelled = owners[pid] > 0
    keys = np.unique(owners[pid[labelled]] * zflat.size + pix[labelled])
    if len(keys) == 0:
        return {}
    key_owner = keys // zflat.size
    groups, starts = np.unique(key_owner, return_index=True)
    bounds = [*starts[1:].tolist(), len(keys)]
    return {int(o): keys[a:b] % zflat.size
            for o, a, b in zip(groups.tolist(), starts.tolist(), bounds, strict=True)}


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
            qk, hk = q[k], half[k]
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


def _shade(look: Look, ray_w: list[np.ndarray], cam: np.ndarray,
           zbuf: np.ndarray, slot: np.ndarray, paint: np.ndarray, texture: np.ndarray,
           shade: np.ndarray, first_ground: int, frame_index: int) -> np.ndarray:
    """Final colour: palette x light x texture, sky gradient, fog and sensor noise.

    ``paint`` maps slots to palette indices; ``texture`` holds each pixel's texture kind
    already shifted into the tile-stack offset (kind << 16).

    Works on one colour plane at a time: gathers and products on HxW planes are several
    times faster in numpy than on interleaved HxWx3 arrays.
    """
    height, width = zbuf.shape
    sky = zbuf[:first_ground] >= np.float32(SKY_DEPTH_M)  # far ground (clipped) is not sky
    has_sky = bool(sky.any())
    surface = zbuf.copy()
    if has_sky:
        surface[:first_ground][sky] = 0.0
    # World-anchored textures (see texture_stack): one gather for every kind, with tile
    # coordinates u = 4 (x + y) and v = 4 z of the surface point camera + depth * ray.
    tu = np.float32(4.0) * (ray_w[0] + ray_w[1])
    iu = (surface * tu + np.float32(4.0 * (cam[0] + cam[1]))).astype(np.intp) & 255
    iv = (surface * (np.float32(4.0) * ray_w[2]) + np.float32(4.0 * cam[2])).astype(np.intp) \
        & 255
    light = shade * np.take(look.textures.reshape(-1), texture | (iv << 8) | iu)
    if look.sensor_noise is not None:
        off = (frame_index * 7) % 16
        light *= look.sensor_noise[off:off + height, off:off + width]
    fog = look.fog_density_per_m > 0
    if fog:
        keep = np.exp(surface * np.float32(-look.fog_density_per_m))
        fade = np.float32(1.0) - keep
        light *= keep
    if has_sky:
        # Sky gradient from the horizon colour to the zenith colour with the ray's elevation.
        elev = np.clip(ray_w[2][:first_ground, :1] * np.float32(2.5), 0.0, 1.0)  # roll-free
    planes = []
    for c in range(3):
        plane = np.take(np.ascontiguousarray(look.palette[paint, c]), slot) * light
        if fog:
            plane += np.float32(look.fog_rgb[c]) * fade
        if has_sky:
            horizon = np.float32(look.palette[look.sky_index, c])
            row = horizon + (np.float32(look.sky_top_rgb[c]) - horizon) * elev
            plane[:first_ground] = np.where(sky, row, plane[:first_ground])
        planes.append(plane)
    # Every term is non-negative, so OpenCV's saturating absolute conversion is a plain
    # round-and-clip to uint8, done in one pass.
    return cv2.convertScaleAbs(cv2.merge(planes))


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
