"""Scenery and street furniture as boxes: buildings, trees, poles, lamps, signals, distractors.

Traffic lights and signs are labelled classes; everything else here is unlabelled background,
including the distractors that look a little like objects of our classes without being one
(poles, cones, barriers, bins, benches, bollards, hydrants, hedges, fences, shelters, trees).
Frames as in ``actors.py``: x forward (along the road for furniture on the curb), y left, z up.
"""

from __future__ import annotations

import numpy as np

from .actors import Part
from .scene import (
    TEX_BANDS,
    TEX_BARK,
    TEX_DETAIL,
    TEX_EMISSIVE,
    TEX_FACADE_B,
    TEX_FACADE_C,
    TEX_FAR,
    TEX_FOLIAGE,
    TEX_GLASS,
    TEX_PLAIN,
    TEX_PROP,
    TEX_WINDOWS,
)

_WALLS = ((170, 160, 150), (120, 110, 100), (200, 190, 170), (140, 70, 50), (90, 100, 110),
          (210, 210, 215), (180, 150, 110), (95, 85, 80), (150, 160, 150), (225, 215, 190))
_METAL = (95.0, 95.0, 100.0)


def _colour(rng: np.random.Generator, choices: tuple, jitter: float = 14.0) -> tuple:
    base = np.asarray(choices[int(rng.integers(len(choices)))], dtype=np.float64)
    return tuple(np.clip(base + rng.normal(0.0, jitter, 3), 0, 255))


def _rgb(rng: np.random.Generator, lo: float = 20, hi: float = 235) -> tuple:
    return tuple(rng.uniform(lo, hi, 3))


def building_parts(rng: np.random.Generator, length: float, depth: float,
                   height: float) -> list[Part]:
    """A building block whose road side is +y (``mirrored`` for the left side of the road).

    A facade texture (windows, bricks, panels...), sometimes a shop front band on the ground
    floor, a cornice, a lower annex in front or a setback upper storey.
    """
    wall = _colour(rng, _WALLS) if rng.random() < 0.75 else _rgb(rng, 40, 230)
    facade = (TEX_WINDOWS, TEX_WINDOWS, TEX_FACADE_B, TEX_FACADE_C)[int(rng.integers(4))]
    far = TEX_FAR
    parts = [Part((0.0, 0.0, height / 2), (length, depth, height), wall, facade | far)]
    front = depth / 2
    if height > 6 and rng.random() < 0.4:  # shop fronts
        parts.append(Part((0.0, front - 0.05, 1.6), (length * 0.96, 0.14, 3.0),
                          _rgb(rng, 25, 120), TEX_GLASS | far, gloss=0.8))
        parts.append(Part((0.0, front + 0.2, 3.25), (length * 0.96, 0.45, 0.35),
                          _rgb(rng, 30, 230), TEX_PROP | far))
    if rng.random() < 0.35:  # cornice
        parts.append(Part((0.0, 0.0, height + 0.15), (length + 0.3, depth + 0.3, 0.3),
                          tuple(c * 0.8 for c in wall), TEX_PLAIN | far))
    if height > 12 and rng.random() < 0.3:  # setback storeys
        top = rng.uniform(3.0, 9.0)
        parts.append(Part((0.0, -depth * 0.1, height + top / 2),
                          (length * 0.8, depth * 0.7, top), _colour(rng, _WALLS),
                          TEX_WINDOWS | far))
    elif height > 8 and rng.random() < 0.25:  # a lower annex in front
        parts.append(Part((0.0, front + 1.0, 1.75), (length * 0.9, 2.0, 3.5),
                          _rgb(rng, 60, 200), TEX_FACADE_C | far))
    return parts


def tree_parts(rng: np.random.Generator) -> list[Part]:
    """A tree of one of several shapes: round, conifer, columnar, palm, young, or a bush."""
    green = (rng.uniform(25, 85), rng.uniform(70, 145), rng.uniform(20, 65))
    if rng.random() < 0.12:  # autumn colours
        green = (rng.uniform(140, 210), rng.uniform(70, 140), rng.uniform(20, 50))
    bark = (rng.uniform(60, 110), rng.uniform(45, 75), rng.uniform(30, 55))
    shape = int(rng.choice(6, p=[0.38, 0.17, 0.12, 0.06, 0.15, 0.12]))
    if shape == 4:  # bush
        w = rng.uniform(1.0, 2.2)
        return [Part((0.0, 0.0, w * 0.4), (w, w, w * 0.8), green, TEX_FOLIAGE)]
    trunk_w = rng.uniform(0.18, 0.45)
    if shape == 3:  # palm
        trunk_h = rng.uniform(5.0, 9.0)
        crown = rng.uniform(3.0, 4.5)
        return [Part((0.0, 0.0, trunk_h / 2), (trunk_w, trunk_w, trunk_h), bark, TEX_BARK),
                Part((0.0, 0.0, trunk_h + 0.3), (crown, crown, 0.7), green, TEX_FOLIAGE),
                Part((0.0, 0.0, trunk_h + 0.75), (crown * 0.5, crown * 0.5, 0.5), green,
                     TEX_FOLIAGE)]
    trunk_h = rng.uniform(1.2, 3.2)
    parts = [Part((0.0, 0.0, trunk_h / 2), (trunk_w, trunk_w, trunk_h), bark, TEX_BARK)]
    if shape == 0:  # round
        crown = rng.uniform(2.2, 5.0)
        parts.append(Part((0.0, 0.0, trunk_h + crown / 2), (crown, crown, crown * 0.9), green,
                          TEX_FOLIAGE))
        if rng.random() < 0.6:
            top = crown * rng.uniform(0.5, 0.7)
            parts.append(Part((0.0, 0.0, trunk_h + crown * 0.9 + top / 2 - 0.3), (top, top, top),
                              tuple(c * 1.1 for c in green), TEX_FOLIAGE))
    elif shape == 1:  # conifer: tiers shrinking upwards
        width = rng.uniform(2.5, 4.5)
        z = trunk_h * 0.5
        for k in range(3):
            tier = width * (1.0 - 0.3 * k)
            h = rng.uniform(1.4, 2.4)
            parts.append(Part((0.0, 0.0, z + h / 2), (tier, tier, h), green, TEX_FOLIAGE))
            z += h * 0.85
    elif shape == 2:  # columnar (poplar, cypress)
        w = rng.uniform(1.2, 2.2)
        h = rng.uniform(6.0, 12.0)
        parts.append(Part((0.0, 0.0, trunk_h * 0.5 + h / 2), (w, w, h), green, TEX_FOLIAGE))
    else:  # young tree
        parts[0] = Part((0.0, 0.0, 1.5), (0.12, 0.12, 3.0), bark, TEX_BARK)
        c = rng.uniform(1.2, 2.0)
        parts.append(Part((0.0, 0.0, 3.0 + c / 2 - 0.3), (c, c, c * 1.2), green, TEX_FOLIAGE))
    return parts


def pole_parts(height: float, arm_m: float = 0.0, arm_dir: float = 1.0,
               colour: tuple = _METAL) -> list[Part]:
    """A vertical pole, optionally with a horizontal arm reaching ``arm_m`` along ``arm_dir`` y."""
    parts = [Part((0.0, 0.0, height / 2), (0.18, 0.18, height), colour)]
    if arm_m > 0:
        parts.append(Part((0.0, arm_dir * arm_m / 2, height - 0.15), (0.14, arm_m, 0.14),
                          colour))
    return parts


def street_lamp_parts(rng: np.random.Generator, arm_dir: float) -> tuple[list[Part], float,
                                                                          float]:
    """A street lamp; returns its parts, the lamp head's lateral offset and its height."""
    height = float(rng.uniform(6.0, 9.0))
    arm = float(rng.uniform(0.8, 2.2))
    colour = _METAL if rng.random() < 0.6 else _rgb(rng, 20, 120)
    parts = pole_parts(height, arm, arm_dir, colour)
    parts.append(Part((0.0, arm_dir * arm, height - 0.3), (0.5, 0.3, 0.16),
                      (250.0, 235.0, 190.0), TEX_PLAIN | TEX_DETAIL | TEX_EMISSIVE))
    return parts, arm_dir * arm, height


def utility_pole_parts(rng: np.random.Generator) -> list[Part]:
    """A tall wooden or concrete pole with a cross arm."""
    h = float(rng.uniform(8.0, 11.0))
    colour = (rng.uniform(70, 110), rng.uniform(55, 80), rng.uniform(40, 60)) \
        if rng.random() < 0.5 else (rng.uniform(140, 175),) * 3
    return [Part((0.0, 0.0, h / 2), (0.26, 0.26, h), colour, TEX_BARK),
            Part((0.0, 0.0, h - 0.6), (0.12, 2.0, 0.12), colour)]


def traffic_light_parts(rng: np.random.Generator, bottom_m: float) -> list[Part]:
    """A traffic light housing with three lamps on its front (+x) face, bottom at ``bottom_m``."""
    h = rng.uniform(0.8, 1.0)
    lit = int(rng.integers(3))
    housing = (25.0, 25.0, 28.0) if rng.random() < 0.8 else (200.0, 170.0, 40.0)
    parts = [Part((0.0, 0.0, bottom_m + h / 2), (0.3, 0.34, h), housing)]
    lamp_on = ((255.0, 60.0, 40.0), (255.0, 190.0, 40.0), (60.0, 255.0, 120.0))
    lamp_off = ((70.0, 20.0, 20.0), (70.0, 55.0, 15.0), (15.0, 60.0, 30.0))
    for i in range(3):
        z = bottom_m + h * (0.8 - 0.3 * i)
        if i == lit:
            parts.append(Part((0.17, 0.0, z), (0.04, 0.2, 0.2), lamp_on[i],
                              TEX_PLAIN | TEX_DETAIL | TEX_EMISSIVE))
        else:
            parts.append(Part((0.17, 0.0, z), (0.04, 0.2, 0.2), lamp_off[i],
                              TEX_PLAIN | TEX_DETAIL))
    return parts


def traffic_sign_parts(rng: np.random.Generator, bottom_m: float) -> list[Part]:
    """A sign plate facing +x (grey back), bottom edge at ``bottom_m``."""
    w = rng.uniform(0.55, 0.9)
    h = w * (rng.uniform(1.0, 1.5) if rng.random() < 0.3 else 1.0)
    face = _colour(rng, ((230, 230, 230), (20, 70, 170), (200, 25, 25), (240, 200, 20),
                         (30, 120, 60)))
    return [Part((-0.015, 0.0, bottom_m + h / 2), (0.03, w, h), (120.0, 120.0, 125.0)),
            Part((0.01, 0.0, bottom_m + h / 2), (0.02, w * 0.96, h * 0.96), face)]


# ----------------------------------------------------------------------------- distractors
def cone_parts(rng: np.random.Generator) -> list[Part]:
    """A traffic cone (orange, a white band)."""
    h = float(rng.uniform(0.5, 0.9))
    orange = (rng.uniform(220, 255), rng.uniform(70, 120), rng.uniform(10, 40))
    return [Part((0.0, 0.0, 0.02), (0.38, 0.38, 0.04), (30.0, 30.0, 30.0)),
            Part((0.0, 0.0, h * 0.3), (0.26, 0.26, h * 0.5), orange, TEX_BANDS),
            Part((0.0, 0.0, h * 0.75), (0.14, 0.14, h * 0.45), orange)]


def barrier_parts(rng: np.random.Generator) -> list[Part]:
    """A barrier: a concrete or plastic jersey barrier, or a striped board on legs."""
    if rng.random() < 0.5:
        length = float(rng.uniform(2.0, 4.0))
        colour = (rng.uniform(150, 200),) * 3 if rng.random() < 0.6 else \
            ((230, 60, 40), (235, 235, 235), (230, 180, 30))[int(rng.integers(3))]
        return [Part((0.0, 0.0, 0.2), (length, 0.6, 0.4), colour, TEX_PROP),
                Part((0.0, 0.0, 0.6), (length, 0.25, 0.4), colour, TEX_PROP)]
    length = float(rng.uniform(1.2, 2.5))
    board = (rng.uniform(200, 250), rng.uniform(40, 200), rng.uniform(20, 60))
    return [Part((0.0, 0.0, 0.95), (length, 0.05, 0.3), board, TEX_BANDS),
            Part((length * 0.4, 0.0, 0.5), (0.06, 0.6, 1.0), _METAL),
            Part((-length * 0.4, 0.0, 0.5), (0.06, 0.6, 1.0), _METAL)]


def bin_parts(rng: np.random.Generator) -> list[Part]:
    """A waste bin or a wheelie bin."""
    w = float(rng.uniform(0.4, 0.75))
    h = float(rng.uniform(0.8, 1.15))
    colour = _rgb(rng, 20, 200) if rng.random() < 0.5 else (40.0, 60.0, 45.0)
    return [Part((0.0, 0.0, h / 2), (w, w, h), colour, TEX_PROP),
            Part((0.0, 0.0, h + 0.03), (w + 0.04, w + 0.04, 0.06), tuple(c * 0.7 for c in colour))]


def bench_parts(rng: np.random.Generator) -> list[Part]:
    """A bench along x: seat, back and legs."""
    length = float(rng.uniform(1.5, 2.4))
    wood = (rng.uniform(90, 160), rng.uniform(60, 110), rng.uniform(35, 70)) \
        if rng.random() < 0.6 else _rgb(rng, 30, 180)
    return [Part((0.0, 0.0, 0.45), (length, 0.45, 0.06), wood, TEX_BARK),
            Part((0.0, -0.2, 0.7), (length, 0.05, 0.4), wood, TEX_BARK),
            Part((0.0, 0.0, 0.21), (length * 0.85, 0.4, 0.42), _METAL)]


def bollard_parts(rng: np.random.Generator) -> list[Part]:
    """A short bollard."""
    h = float(rng.uniform(0.7, 1.1))
    colour = _rgb(rng, 20, 220)
    return [Part((0.0, 0.0, h / 2), (0.16, 0.16, h), colour, TEX_BANDS)]


def hydrant_parts(rng: np.random.Generator) -> list[Part]:
    """A fire hydrant."""
    red = (rng.uniform(170, 230), rng.uniform(20, 60), rng.uniform(20, 50)) \
        if rng.random() < 0.7 else (rng.uniform(200, 240), rng.uniform(170, 210), 40.0)
    return [Part((0.0, 0.0, 0.35), (0.26, 0.26, 0.7), red),
            Part((0.0, 0.0, 0.45), (0.12, 0.42, 0.1), red)]


def hedge_parts(rng: np.random.Generator, length: float) -> list[Part]:
    """A hedge or a fence along x (``length`` metres)."""
    if rng.random() < 0.5:
        h = float(rng.uniform(0.8, 2.2))
        green = (rng.uniform(25, 70), rng.uniform(70, 130), rng.uniform(20, 55))
        return [Part((0.0, 0.0, h / 2), (length, rng.uniform(0.6, 1.2), h), green,
                     TEX_FOLIAGE)]
    h = float(rng.uniform(0.9, 1.8))
    colour = _rgb(rng, 40, 220)
    return [Part((0.0, 0.0, h / 2), (length, 0.06, h), colour, TEX_FACADE_C)]


FURNITURE = {"bench": bench_parts, "bin": bin_parts, "bollard": bollard_parts,
             "hydrant": hydrant_parts}
FURNITURE_P = (0.25, 0.35, 0.25, 0.15)
"""Shares of the furniture kinds, in the sorted order of ``FURNITURE``'s names."""
