"""Casting box parts into the z-buffer: the slab method per part, per object or in one batch.

Each pixel's ray meets a box where it is inside all three slabs (pairs of parallel planes) of
the box; the entry depth is exact. Parts are cast nearest first over the bounding rectangle of
their projection: one at a time when large, the parts of a mid-sized object together over
their union rectangle, and tiny parts all in one flat batch. Every labelled owner's visible
pixels and footprint (the pixels it would cover alone) come out of the same pass.
"""

from __future__ import annotations

import numpy as np

from .scene import (
    DETAIL_DISTANCE_M,
    GROUND_SLOTS,
    NEAR_M,
    TEX_DETAIL,
    TEX_EMISSIVE,
    BoxParts,
    CameraState,
    Look,
    box_corners_optical,
    clipped_projection,
    draw_distance,
    rotation_z,
)

SMALL_AREA_PX = 160
"""Parts whose bounding rectangle has at most this many pixels are ray-cast in one batch."""
GROUP_BUDGET = 12000
"""The parts of one object are cast together over their union rectangle when (parts x pixels
of that rectangle) is at most this: one set of array operations instead of one per part."""


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


def draw_boxes(camera: CameraState, r_wo: np.ndarray, cam: np.ndarray, parts: BoxParts,
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
        if oid not in union:
            footprint[oid] = len(ids)  # distinct pixel ids already
            continue
        # Mark the small parts' pixels in the owner's mask (grown to hold them) and count.
        rows, cols = ids // width, ids % width
        r0, c0 = int(rows.min()), int(cols.min())
        _accumulate_union(union, oid, c0, r0, np.zeros((int(rows.max()) - r0 + 1,
                                                        int(cols.max()) - c0 + 1), bool))
        ox, oy, mask = union[oid]
        mask[rows - oy, cols - ox] = True
        footprint[oid] = int(np.count_nonzero(mask))
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
