"""The scene vocabulary of the renderer: cameras, box parts, looks, rays and their constants.

Kept apart from ``render.py`` so the drawing (``boxes.py``), colour (``shading.py``) and
ground-light (``shadows.py``) passes can share these types while ``render.render`` calls them,
without an import cycle. Conventions are ``render.py``'s.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from depthssd_core.geometry import CameraIntrinsics

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
GROUND_TEXELS_PER_M = 12.0
"""Density of ground textures (tile rows follow world x, columns world y)."""

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


def draw_distance(texture: np.ndarray) -> np.ndarray:
    """Per-part draw distance from the texture flags."""
    return np.where((texture & TEX_FAR) != 0, FAR_DRAW_DISTANCE_M, DRAW_DISTANCE_M)


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
