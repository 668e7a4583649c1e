"""Procedural brightness textures of the synthetic world, drawn per sequence from families.

A texture is a 256 x 256 float32 tile of brightness factors (about 1 on average) that repeats
over a surface: box parts sample it at 8 texels per metre with u = x + y and v = z, the
ground at 12 per metre with (x, y). Each sequence draws one tile per texture *slot* (the
``TEX_*`` kinds of ``render.py``: facades, clothes, liveries, props, ...) from the families
that slot may use, and one per ground material.

Families are split into the ones the training look draws and the held-out ones that only the
held-out look (``look="heldout"``) draws, so a test split can measure a look never trained on:

- training: ``noise``, ``stripes_h``, ``stripes_v``, ``checks``, ``bricks``, ``windows``,
  ``panels``, ``patches`` (plus ``foliage``, ``pavers``, ``slabs``, ``grass``, ``gravel``,
  ``asphalt`` for their own slots);
- held out: ``dots``, ``diagonal``, ``cells``, ``veins`` (plus ``hex``, ``cobbles``,
  ``clumps`` for sidewalks, roads and foliage).
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from . import scene as R
from .road import (
    GROUND_ASPHALT,
    GROUND_ASPHALT_2,
    GROUND_CURB,
    GROUND_LANE_PAINT,
    GROUND_SIDEWALK,
    GROUND_TERRAIN,
    GROUND_WHITE,
    GROUND_YELLOW,
    NUM_GROUND,
)

TILE = 256
_YY, _XX = np.mgrid[0:TILE, 0:TILE].astype(np.float32)

Family = Callable[[np.random.Generator, bool], np.ndarray]


def _wrap_noise(rng: np.random.Generator, cells: int) -> np.ndarray:
    """Smooth value noise in [-1, 1] that tiles seamlessly (``cells`` divides 256)."""
    grid = rng.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    step = TILE // cells
    padded = np.pad(grid, 2, mode="wrap")
    big = cv2.resize(padded, ((cells + 4) * step, (cells + 4) * step),
                     interpolation=cv2.INTER_CUBIC if cells < 32 else cv2.INTER_LINEAR)
    return big[2 * step:2 * step + TILE, 2 * step:2 * step + TILE]


def _fbm(rng: np.random.Generator, base_cells: int = 8, octaves: int = 3) -> np.ndarray:
    """Fractal noise (a few octaves of value noise), about unit spread."""
    out = np.zeros((TILE, TILE), np.float32)
    amp, cells, total = 1.0, base_cells, 0.0
    for _ in range(octaves):
        out += amp * _wrap_noise(rng, min(cells, TILE))
        total += amp
        amp *= 0.5
        cells *= 2
    return out / total


_GRAIN = np.random.default_rng(20261201).standard_normal((TILE, TILE), np.float32)
"""One tile of unit Gaussian grain, shifted at random per use (drawing fresh grain for every
tile of every sequence cost more than all the patterns together)."""


def _grain(rng: np.random.Generator, amount: float) -> np.ndarray:
    dy, dx = (int(v) for v in rng.integers(0, TILE, 2))
    grain = np.roll(_GRAIN[::-1] if rng.random() < 0.5 else _GRAIN, (dy, dx), axis=(0, 1))
    return np.float32(1.0) + np.float32(amount) * grain


def _finish(tile: np.ndarray, rng: np.random.Generator, grain: float = 0.03) -> np.ndarray:
    """Add grain, clip to positive factors and normalise the mean to 1."""
    tile = np.asarray(tile, np.float32) * _grain(rng, grain)
    np.clip(tile, 0.05, None, out=tile)
    tile *= np.float32(1.0 / float(tile.mean()))
    return tile


def _period(rng: np.random.Generator, choices: tuple[int, ...]) -> int:
    return int(choices[int(rng.integers(len(choices)))])


# ---------------------------------------------------------------- families of the training look
def noise(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Smooth stains of random scale and strength."""
    cells = _period(rng, (4, 8, 16, 32))
    return _finish(1.0 + rng.uniform(0.04, 0.3) * _fbm(rng, cells), rng)


def stripes_h(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Horizontal bands (they depend on height only, so they never slide on moving objects)."""
    p = _period(rng, (2, 4, 8, 16, 32))
    duty = rng.uniform(0.25, 0.75)
    bands = ((_YY % p) < duty * p).astype(np.float32)
    return _finish(1.0 + rng.uniform(0.15, 0.6) * (bands - 0.5) * 2, rng)


def stripes_v(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Vertical bands (siding, curtain walls, corrugated panels)."""
    p = _period(rng, (2, 4, 8, 16))
    duty = rng.uniform(0.2, 0.8)
    bands = ((_XX % p) < duty * p).astype(np.float32)
    return _finish(1.0 + rng.uniform(0.1, 0.5) * (bands - 0.5) * 2
                   + 0.1 * _fbm(rng, 8), rng)


def checks(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """A checkerboard (tiles, tartans from afar)."""
    p = _period(rng, (2, 4, 8, 16))
    board = (((_YY // p) + (_XX // p)) % 2).astype(np.float32)
    return _finish(1.0 + rng.uniform(0.1, 0.45) * (board - 0.5) * 2, rng)


def bricks(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Running-bond blocks with mortar joints and a brightness per block."""
    h = _period(rng, (2, 4))
    w = h * _period(rng, (2, 4))
    row = _YY // h
    shift = (row % 2) * (w // 2)
    col = (_XX + shift) // w
    jitter = rng.uniform(-1, 1, (TILE // h + 1, TILE // w + 2)).astype(np.float32)
    tile = 1.0 + rng.uniform(0.05, 0.25) * jitter[row.astype(int), col.astype(int)]
    joint = ((_YY % h) == 0) | (((_XX + shift) % w) == 0)
    tile = np.where(joint, rng.uniform(0.55, 0.85), tile)
    return _finish(tile, rng)


def windows(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Rows of window panes (floors of 3 to 4 m, 2 to 4 m apart); lit at random at night."""
    floor = _period(rng, (24, 26, 28, 32))
    pitch = _period(rng, (16, 20, 24, 32))
    pane_h = int(floor * rng.uniform(0.4, 0.7))
    pane_w = int(pitch * rng.uniform(0.35, 0.85))
    y0 = int(rng.integers(2, max(3, floor - pane_h - 1)))
    fy, fx = _YY % floor, _XX % pitch
    pane = (fy >= y0) & (fy < y0 + pane_h) & (fx >= 2) & (fx < 2 + pane_w)
    wall = 1.0 + 0.1 * _fbm(rng, 8)
    glass = rng.uniform(0.3, 0.6) * (1.0 + 0.15 * _wrap_noise(rng, 32))
    if night:
        cell = (_YY // floor).astype(int) * 97 + (_XX // pitch).astype(int)
        lit = rng.random(int(cell.max()) + 1) < rng.uniform(0.2, 0.6)
        glass = np.where(lit[cell], rng.uniform(3.0, 7.0), glass * 0.6)
    if rng.random() < 0.3:  # horizontal mullion
        pane &= (fy - y0) != pane_h // 2
    return _finish(np.where(pane, glass, wall), rng, 0.02)


def panels(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Large panels with thin seams and a brightness per panel."""
    ph, pw = _period(rng, (8, 16, 32)), _period(rng, (8, 16, 32))
    jitter = rng.uniform(-1, 1, (TILE // ph, TILE // pw)).astype(np.float32)
    tile = 1.0 + rng.uniform(0.03, 0.15) * jitter[(_YY // ph).astype(int),
                                                   (_XX // pw).astype(int)]
    seam = ((_YY % ph) == 0) | ((_XX % pw) == 0)
    return _finish(np.where(seam, rng.uniform(0.5, 0.8), tile), rng)


def patches(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Random blotches (dirt, repairs, graffiti, camouflage)."""
    field = _fbm(rng, _period(rng, (4, 8, 16)), 2)
    thr = rng.uniform(-0.2, 0.4)
    level = rng.uniform(0.4, 1.6)
    return _finish(np.where(field > thr, level, 1.0) * (1.0 + 0.05 * _fbm(rng, 16)), rng)


def foliage(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """High-contrast leafy noise."""
    t = 1.0 + 0.35 * _fbm(rng, 16, 3)
    return _finish(t * (1.0 + 0.25 * _wrap_noise(rng, 64)), rng, 0.12)


def bark(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Vertical fibres."""
    fibres = cv2.resize(rng.uniform(-1, 1, (8, TILE)).astype(np.float32), (TILE, TILE),
                        interpolation=cv2.INTER_LINEAR)
    return _finish(1.0 + rng.uniform(0.1, 0.3) * fibres, rng, 0.05)


def glass(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Streaky reflections on glass."""
    streak = cv2.resize(rng.uniform(-1, 1, (4, 32)).astype(np.float32), (TILE, TILE),
                        interpolation=cv2.INTER_CUBIC)
    return _finish(1.0 + rng.uniform(0.1, 0.35) * streak, rng, 0.01)


def grass(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Terrain: grass, dry grass or dirt."""
    return _finish((1.0 + rng.uniform(0.15, 0.35) * _fbm(rng, 8, 4))
                   * (1.0 + 0.1 * _wrap_noise(rng, 128)), rng, rng.uniform(0.05, 0.15))


def gravel(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Terrain: fine speckle."""
    return _finish(1.0 + 0.1 * _fbm(rng, 16), rng, rng.uniform(0.12, 0.25))


def asphalt(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Road: fine aggregate, stains and repair patches."""
    t = 1.0 + rng.uniform(0.03, 0.12) * _fbm(rng, 8, 3)
    if rng.random() < 0.6:
        field = _fbm(rng, 4, 2)
        t = t * np.where(field > rng.uniform(0.3, 0.6), rng.uniform(0.75, 1.25), 1.0)
    return _finish(t, rng, rng.uniform(0.01, 0.04))


def pavers(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Sidewalk: small square or brick pavers with joints."""
    if rng.random() < 0.5:
        return bricks(rng)
    joints = ((_YY % 4) == 0) | ((_XX % 4) == 0)
    return _finish(checks(rng) * np.where(joints, 0.75, 1.0), rng)


def slabs(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Sidewalk: large concrete slabs."""
    p = _period(rng, (8, 16))
    seam = ((_YY % p) == 0) | ((_XX % p) == 0)
    return _finish(np.where(seam, 0.7, 1.0 + 0.06 * _fbm(rng, 8)), rng)


def worn_paint(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Road markings: paint worn in patches."""
    wear = _fbm(rng, 16, 2)
    return _finish(np.where(wear > rng.uniform(0.0, 0.6), rng.uniform(0.45, 0.8), 1.0), rng)


def curbstones(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Curb: stones about a metre long (joints across the road's x)."""
    return _finish(np.where((_YY % 8) == 0, 0.6, 1.0 + 0.05 * _fbm(rng, 8)), rng)


# ----------------------------------------------------------------- families only held out
def dots(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Polka dots on a staggered grid."""
    p = _period(rng, (4, 8, 16))
    row = _YY // p
    cx = (_XX + (row % 2) * (p / 2)) % p - p / 2
    cy = _YY % p - p / 2
    disc = (cx * cx + cy * cy) < (p * rng.uniform(0.2, 0.4)) ** 2
    return _finish(np.where(disc, rng.uniform(0.4, 1.7), 1.0), rng)


def diagonal(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Diagonal stripes or chevrons."""
    p = _period(rng, (4, 8, 16))
    u = _XX + _YY if rng.random() < 0.5 else np.abs((_XX % (2 * p)) - p) + _YY
    bands = ((u % p) < p / 2).astype(np.float32)
    return _finish(1.0 + rng.uniform(0.2, 0.6) * (bands - 0.5) * 2, rng)


def _cell_field(rng: np.random.Generator, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Jittered-grid Voronoi: (distance to nearest seed minus second nearest, seed id)."""
    n = TILE // cell
    seeds = rng.uniform(0.15, 0.85, (n, n, 2)).astype(np.float32) * cell
    gy, gx = (_YY // cell).astype(int), (_XX // cell).astype(int)
    best = np.full((TILE, TILE), np.inf, np.float32)
    second = best.copy()
    ident = np.zeros((TILE, TILE), np.int64)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            ny, nx = (gy + dy) % n, (gx + dx) % n
            sy = (gy + dy) * cell + seeds[ny, nx, 0]
            sx = (gx + dx) * cell + seeds[ny, nx, 1]
            dist = np.hypot(_YY - sy, _XX - sx)
            closer = dist < best
            second = np.where(closer, best, np.minimum(second, dist))
            ident = np.where(closer, ny * n + nx, ident)
            best = np.where(closer, dist, best)
    return second - best, ident


def cells(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Irregular stones (Voronoi cells with dark joints)."""
    edge, ident = _cell_field(rng, _period(rng, (4, 8, 16)))
    shade = rng.uniform(0.75, 1.25, int(ident.max()) + 1)[ident]
    return _finish(np.where(edge < rng.uniform(0.6, 1.2), 0.55, shade), rng)


def veins(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Marble veins or wood grain (a sine of a noise-warped coordinate)."""
    warp = _fbm(rng, 4, 3) * rng.uniform(8, 30)
    axis = _XX if rng.random() < 0.5 else _YY
    wave = np.sin((axis + warp) * (2 * np.pi / _period(rng, (8, 16, 32))))
    return _finish(1.0 + rng.uniform(0.15, 0.4) * wave ** 3, rng)


def hex_tiles(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Hexagonal pavers: cells of a staggered lattice, joints where two cells meet."""
    p = _period(rng, (4, 8))
    row_h = p * 0.8660254
    r0 = np.floor(_YY / row_h)
    dists = []
    for r in (r0 - 1, r0, r0 + 1):
        shift = (r % 2) * (p / 2)
        c0 = np.round((_XX - shift) / p)
        for c in (c0 - 1, c0, c0 + 1):
            dists.append(np.hypot(_YY - r * row_h, _XX - (c * p + shift)))
    d = np.sort(np.stack(dists), axis=0)
    edge = d[1] - d[0]
    return _finish(np.where(edge < 0.8, 0.6, 1.0 + 0.05 * _fbm(rng, 8)), rng)


def cobbles(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Road: cobblestones."""
    return cells(rng)


def clumps(rng: np.random.Generator, night: bool = False) -> np.ndarray:
    """Foliage in round clumps."""
    return _finish(cells(rng) * foliage(rng) ** 0.5, rng, 0.01)


FAMILIES: dict[str, Family] = {f.__name__: f for f in (
    noise, stripes_h, stripes_v, checks, bricks, windows, panels, patches, foliage, bark, glass,
    grass, gravel, asphalt, pavers, slabs, worn_paint, curbstones, dots, diagonal, cells, veins,
    hex_tiles, cobbles, clumps)}

# Which families each slot draws from, per look. FLAT (kind 3) is always ones.
SLOT_FAMILIES: dict[str, dict[int, tuple[str, ...]]] = {
    "train": {
        R.TEX_PLAIN: ("noise",),
        R.TEX_WINDOWS: ("windows",),
        R.TEX_FOLIAGE: ("foliage",),
        R.TEX_FACADE_B: ("bricks", "panels", "stripes_v", "stripes_h", "noise", "patches",
                         "checks", "windows"),
        R.TEX_FACADE_C: ("bricks", "panels", "stripes_v", "noise", "patches", "windows"),
        R.TEX_CLOTH_A: ("noise", "stripes_h", "checks", "patches"),
        R.TEX_CLOTH_B: ("noise", "stripes_h", "checks"),
        R.TEX_LIVERY: ("stripes_h", "patches", "noise", "panels"),
        R.TEX_PROP: ("noise", "patches", "stripes_h", "panels"),
        R.TEX_BARK: ("bark",),
        R.TEX_BANDS: ("stripes_h",),
        R.TEX_GLASS: ("glass",),
    },
    "heldout": {
        R.TEX_PLAIN: ("noise",),
        R.TEX_WINDOWS: ("windows",),
        R.TEX_FOLIAGE: ("clumps",),
        R.TEX_FACADE_B: ("cells", "veins", "dots", "diagonal"),
        R.TEX_FACADE_C: ("cells", "veins", "diagonal"),
        R.TEX_CLOTH_A: ("dots", "diagonal", "veins"),
        R.TEX_CLOTH_B: ("dots", "diagonal"),
        R.TEX_LIVERY: ("diagonal", "dots"),
        R.TEX_PROP: ("cells", "veins", "dots"),
        R.TEX_BARK: ("veins",),
        R.TEX_BANDS: ("diagonal",),
        R.TEX_GLASS: ("glass",),
    },
}
GROUND_FAMILIES: dict[str, dict[int, tuple[str, ...]]] = {
    "train": {
        GROUND_TERRAIN: ("grass", "gravel"),
        GROUND_ASPHALT: ("asphalt",),
        GROUND_WHITE: ("worn_paint",),
        GROUND_YELLOW: ("worn_paint",),
        GROUND_SIDEWALK: ("pavers", "slabs", "noise"),
        GROUND_CURB: ("curbstones",),
        GROUND_LANE_PAINT: ("worn_paint",),
        GROUND_ASPHALT_2: ("asphalt",),
    },
    "heldout": {
        GROUND_TERRAIN: ("grass", "gravel"),
        GROUND_ASPHALT: ("asphalt", "cobbles"),
        GROUND_WHITE: ("worn_paint",),
        GROUND_YELLOW: ("worn_paint",),
        GROUND_SIDEWALK: ("hex_tiles", "cells"),
        GROUND_CURB: ("curbstones",),
        GROUND_LANE_PAINT: ("worn_paint",),
        GROUND_ASPHALT_2: ("cobbles", "asphalt"),
    },
}
HELDOUT_ONLY = frozenset(
    {n for slots in (SLOT_FAMILIES["heldout"], GROUND_FAMILIES["heldout"])
     for names in slots.values() for n in names}
    - {n for slots in (SLOT_FAMILIES["train"], GROUND_FAMILIES["train"])
       for names in slots.values() for n in names})
"""Families that only the held-out look draws."""


def texture_bank(rng: np.random.Generator, look: str, night: bool
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Draw a sequence's texture tiles.

    Args:
        rng: the sequence's appearance generator.
        look: "train" or "heldout".
        night: whether windows may be lit.

    Returns:
        Box-part tiles (NUM_TEXTURES, 256, 256), ground tiles (NUM_GROUND, 256, 256) and the
        family drawn for each slot (``"box:<kind>"`` / ``"ground:<material>"`` -> name).
    """
    boxes = np.empty((R.NUM_TEXTURES, TILE, TILE), np.float32)
    boxes[R.TEX_FLAT] = 1.0
    drawn: dict[str, str] = {}
    for kind, names in SLOT_FAMILIES[look].items():
        name = names[int(rng.integers(len(names)))]
        boxes[kind] = FAMILIES[name](rng, night)
        drawn[f"box:{kind}"] = name
    if rng.random() < 0.3:  # plain paint is sometimes perfectly flat
        boxes[R.TEX_PLAIN] = 1.0
    ground = np.empty((NUM_GROUND, TILE, TILE), np.float32)
    for material, names in GROUND_FAMILIES[look].items():
        name = names[int(rng.integers(len(names)))]
        ground[material] = FAMILIES[name](rng, night)
        drawn[f"ground:{material}"] = name
    return boxes, ground, drawn
