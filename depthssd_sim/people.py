"""People as boxes: pedestrians (head, torso, arms, legs) and riders of two-wheelers.

Heights run from small children (about 1 m) to tall adults (2 m); proportions follow the
usual figures (legs a little under half the height, a head of about an eighth, children's
heads larger). Clothes take the colours people mostly wear (dark, grey, denim, white, beige)
or, sometimes, a bright one, with a plain or patterned texture. Frames as in ``actors.py``:
x forward, y left, z up, origin on the ground.

Held out (``heldout=True`` only): long coats and dresses (a flared block over the legs), wide
hats, and shopping bags carried at the side.
"""

from __future__ import annotations

import colorsys

import numpy as np

from .actors import Part
from .scene import TEX_CLOTH_A, TEX_CLOTH_B, TEX_DETAIL, TEX_PLAIN

SKIN = ((238, 200, 172), (224, 172, 138), (198, 145, 104), (160, 110, 75), (120, 80, 55),
        (85, 58, 42))
HAIR = ((20, 16, 14), (55, 38, 26), (105, 75, 45), (200, 170, 110), (150, 150, 150),
        (130, 55, 30))
CLOTHES = (  # (share, rgb)
    (0.22, (26, 26, 29)), (0.12, (32, 38, 62)), (0.14, (100, 100, 106)),
    (0.10, (224, 224, 220)), (0.12, (60, 82, 122)), (0.08, (170, 152, 112)),
    (0.06, (92, 66, 46)))
_CLOTHES_P = np.array([p for p, _ in CLOTHES] + [0.16])
_CLOTHES_P = _CLOTHES_P / _CLOTHES_P.sum()
HELDOUT_SHARE = 0.5
"""Share of held-out pedestrians that wear or carry one of ``HELDOUT_EXTRAS``."""
HELDOUT_EXTRAS = ("coat", "wide_hat", "bag")


def choose_extra(rng: np.random.Generator, heldout: bool) -> str | None:
    """A held-out garment or accessory, or None (always None for the training look)."""
    if heldout and rng.random() < HELDOUT_SHARE:
        return HELDOUT_EXTRAS[int(rng.integers(len(HELDOUT_EXTRAS)))]
    return None


def clothes_colour(rng: np.random.Generator) -> tuple[float, float, float]:
    """A colour of clothes: mostly muted, sometimes bright."""
    k = int(rng.choice(len(_CLOTHES_P), p=_CLOTHES_P))
    if k == len(CLOTHES):
        r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.4, 1.0), rng.uniform(0.3, 1.0))
        return (255 * r, 255 * g, 255 * b)
    return tuple(np.clip(np.asarray(CLOTHES[k][1], np.float64) + rng.normal(0, 8, 3), 0, 255))


def _pick(rng: np.random.Generator, table: tuple, jitter: float = 8.0) -> tuple:
    base = np.asarray(table[int(rng.integers(len(table)))], np.float64)
    return tuple(np.clip(base + rng.normal(0.0, jitter, 3), 0, 255))


def _cloth_texture(rng: np.random.Generator) -> int:
    r = rng.random()
    return TEX_PLAIN if r < 0.55 else (TEX_CLOTH_A if r < 0.8 else TEX_CLOTH_B)


def pedestrian_height(rng: np.random.Generator) -> float:
    """Standing height: about one in seven a child (0.95-1.45 m), adults 1.5-2.0 m."""
    if rng.random() < 0.14:
        return float(rng.uniform(0.95, 1.45))
    return float(np.clip(rng.normal(1.71, 0.1), 1.5, 2.0))


def pedestrian_parts(rng: np.random.Generator, heldout: bool = False) -> list[Part]:
    """A pedestrian: two legs and two arms that swing in opposition, torso, head, hair.

    Sometimes a backpack or a cap; held out, a long coat or dress, a wide hat or a bag.
    """
    height = pedestrian_height(rng)
    child = height < 1.45
    head = height * (rng.uniform(0.15, 0.18) if child else rng.uniform(0.12, 0.135))
    legs = height * rng.uniform(0.45, 0.5)
    torso = height - legs - head
    shoulders = height * rng.uniform(0.23, 0.28)
    depth = height * rng.uniform(0.12, 0.16)
    leg_w = shoulders * rng.uniform(0.33, 0.42)
    arm_w = shoulders * rng.uniform(0.18, 0.24)
    step = rng.uniform(0.1, 0.2) * height / 1.75  # half the step length
    trousers, top = clothes_colour(rng), clothes_colour(rng)
    sleeves = top if rng.random() < 0.7 else _pick(rng, SKIN)
    skin = _pick(rng, SKIN)
    arm_len = torso * rng.uniform(0.85, 0.98)
    parts = [Part((0.0, side * (shoulders / 2 - leg_w / 2), legs / 2), (depth * 0.9, leg_w, legs),
                  trousers, TEX_PLAIN, side * step) for side in (1.0, -1.0)]
    parts += [Part((0.0, 0.0, legs + torso / 2), (depth, shoulders, torso), top,
                   _cloth_texture(rng)),
              *[Part((0.0, side * (shoulders / 2 + arm_w / 2), legs + torso - arm_len / 2),
                     (arm_w, arm_w, arm_len), sleeves, TEX_PLAIN, -0.7 * side * step)
                for side in (1.0, -1.0)],
              Part((depth * 0.05, 0.0, height - head / 2), (head * 0.85, head * 0.8, head), skin)]
    hair_z = height - head * 0.15
    if rng.random() < 0.15:  # cap
        parts.append(Part((head * 0.1, 0.0, height - head * 0.12), (head * 1.1, head * 0.85,
                                                                      head * 0.26),
                          clothes_colour(rng), TEX_PLAIN | TEX_DETAIL))
    elif rng.random() < 0.9:
        parts.append(Part((-head * 0.08, 0.0, hair_z), (head * 0.8, head * 0.84, head * 0.3),
                          _pick(rng, HAIR), TEX_PLAIN | TEX_DETAIL))
    if rng.random() < 0.2:  # backpack
        parts.append(Part((-(depth / 2 + 0.08), 0.0, legs + torso * 0.6),
                          (0.16, shoulders * 0.7, torso * 0.55), clothes_colour(rng)))
    extra = choose_extra(rng, heldout)
    if extra is not None:
        if extra == "coat":  # long coat or dress: a flared block over the thighs
            low = legs * rng.uniform(0.2, 0.55)
            parts.append(Part((0.0, 0.0, (low + legs + 0.05) / 2),
                              (depth * 1.3, shoulders * 1.08, legs + 0.05 - low),
                              top if rng.random() < 0.5 else clothes_colour(rng),
                              TEX_CLOTH_B))
        elif extra == "wide_hat":
            parts.append(Part((0.0, 0.0, height + 0.03), (head * 2.2, head * 2.2, 0.05),
                              clothes_colour(rng)))
        else:  # shopping bag held at the side
            parts.append(Part((0.0, -(shoulders / 2 + arm_w + 0.1), legs * 0.75),
                              (0.3, 0.14, 0.36), clothes_colour(rng), TEX_CLOTH_A))
    return parts


def rider_parts(rng: np.random.Generator, seat_x: float, seat_z: float, hands_x: float,
                hands_z: float, feet_z: float, helmet: bool, heldout: bool = False
                ) -> list[Part]:
    """A seated rider: thighs, shins, torso, arms reaching to the handlebar, head."""
    scale = pedestrian_height(rng) / 1.75
    scale = max(scale, 0.85)  # riders in traffic are teenagers or adults
    torso = 0.54 * scale
    shoulders = 0.44 * scale
    top = clothes_colour(rng)
    trousers = clothes_colour(rng)
    thigh = 0.45 * scale
    knee_x = seat_x + thigh
    head = 0.24 * scale
    shoulder_x = seat_x + 0.12
    shoulder_z = seat_z + 0.06 + torso * 0.9
    reach = max(hands_x - shoulder_x, 0.1)
    parts = [Part((seat_x + thigh / 2, 0.0, seat_z + 0.08), (thigh, shoulders * 0.8, 0.16),
                  trousers),
             Part((knee_x, 0.0, (feet_z + seat_z + 0.08) / 2), (0.13, shoulders * 0.8,
                                                                 seat_z + 0.08 - feet_z),
                  trousers),
             Part((seat_x + 0.06, 0.0, seat_z + 0.06 + torso / 2), (0.3 * scale, shoulders,
                                                                     torso), top,
                  _cloth_texture(rng)),
             Part((shoulder_x + reach / 2, 0.0, (shoulder_z + hands_z) / 2),
                  (reach, shoulders * 1.05, min(0.25, abs(shoulder_z - hands_z) + 0.08)), top),
             Part((seat_x + 0.1, 0.0, seat_z + 0.06 + torso + head / 2), (head, head * 0.9, head),
                  clothes_colour(rng) if helmet else _pick(rng, SKIN))]
    if heldout and rng.random() < 0.3:  # a box on the back (delivery riders)
        parts.append(Part((seat_x - 0.3, 0.0, seat_z + 0.45), (0.4, 0.42, 0.42),
                          clothes_colour(rng), TEX_CLOTH_A))
    return parts
