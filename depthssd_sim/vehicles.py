"""Vehicle templates: body, cabin, windows, wheels and lights as boxes, with varied proportions.

Frames: x forward (front at +length/2), y left, z up, origin on the ground under the centre.
Sizes follow real-world figures (car about 4.5 x 1.8 x 1.5 m, bus 12 x 2.55 x 3.2 m, semi
16.5 x 2.55 x 4 m, ...). Paint follows the colour shares of real fleets (white, black, grey
and silver make up about three quarters) mixed with random colours.

Body styles of the training look: sedan, hatchback, SUV, van, pickup, box truck, semi, city
bus, articulated bus, coach, motorcycle, bicycle. Held out (``heldout=True`` only): the
stepped-nose car, the tanker semi, the double-decker bus and the scooter, and two-tone paint.
"""

from __future__ import annotations

import colorsys

import numpy as np

from .actors import Part
from .people import rider_parts
from .scene import TEX_DETAIL, TEX_EMISSIVE, TEX_GLASS, TEX_LIVERY, TEX_PLAIN

_LIGHT = TEX_PLAIN | TEX_DETAIL | TEX_EMISSIVE
_TYRE = (24.0, 24.0, 26.0)
_HEAD = (235.0, 232.0, 215.0)
_TAIL = (200.0, 25.0, 22.0)

FLEET_COLOURS = (  # (share, rgb): about the colour mix of recent car fleets
    (0.27, (236, 236, 233)), (0.20, (24, 24, 27)), (0.16, (108, 110, 114)),
    (0.12, (176, 179, 183)), (0.09, (30, 56, 126)), (0.08, (150, 22, 26)),
    (0.03, (110, 80, 56)), (0.015, (200, 186, 150)), (0.02, (36, 86, 52)),
    (0.01, (212, 172, 32)), (0.01, (204, 92, 26)))
_FLEET_P = np.array([p for p, _ in FLEET_COLOURS]) / sum(p for p, _ in FLEET_COLOURS)
RANDOM_PAINT_SHARE = 0.22
"""Share of vehicles painted a uniformly random colour instead of a fleet colour."""

HELDOUT_SHARE = 0.5
"""Share of held-out body styles among the vehicles of the held-out look."""
STYLES = {  # class: (training styles, their shares, held-out styles)
    "car": (("sedan", "hatchback", "suv", "van", "pickup"), (0.38, 0.2, 0.24, 0.1, 0.08),
            ("stepped",)),
    "truck": (("box", "semi"), (0.65, 0.35), ("tanker",)),
    "bus": (("city", "articulated", "coach"), (0.65, 0.15, 0.2), ("double_decker",)),
    "motorcycle": (("motorcycle",), (1.0,), ("scooter",)),
    "bicycle": (("bicycle",), (1.0,), ()),
}
HELDOUT_STYLES = frozenset(name for _, _, held in STYLES.values() for name in held)


def choose_style(rng: np.random.Generator, kind: str, heldout: bool) -> str:
    """A body style of vehicle class ``kind``; held-out styles only when ``heldout``."""
    train, shares, held = STYLES[kind]
    if heldout and held and rng.random() < HELDOUT_SHARE:
        return held[int(rng.integers(len(held)))]
    return train[int(rng.choice(len(train), p=shares))]


def paint(rng: np.random.Generator) -> tuple[float, float, float]:
    """A vehicle paint colour: a fleet colour (jittered) or, sometimes, any colour."""
    if rng.random() < RANDOM_PAINT_SHARE:
        r, g, b = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.25, 1.0),
                                      rng.uniform(0.2, 0.95))
        return (255 * r, 255 * g, 255 * b)
    base = np.asarray(FLEET_COLOURS[int(rng.choice(len(FLEET_COLOURS), p=_FLEET_P))][1],
                      np.float64)
    return tuple(np.clip(base + rng.normal(0.0, 8.0, 3), 0, 255))


def _gloss(rng: np.random.Generator) -> float:
    return float(rng.uniform(0.5, 1.0) if rng.random() < 0.7 else rng.uniform(0.0, 0.2))


def _glass(rng: np.random.Generator) -> tuple[float, float, float]:
    base = rng.uniform(30, 65)
    return (base, base + rng.uniform(0, 10), base + rng.uniform(5, 20))


def _axle(x: float, width: float, radius: float, length: float | None = None) -> Part:
    """A pair of wheels (or a bogie of several, ``length`` long) as one dark block."""
    return Part((x, 0.0, radius), (length or 2 * radius, width * 0.94, 2 * radius), _TYRE)


def _lights(length: float, width: float, z_front: float, z_rear: float,
            lit: bool) -> list[Part]:
    flags = _LIGHT if lit else TEX_PLAIN | TEX_DETAIL
    return [Part((length / 2 - 0.02, 0.0, z_front), (0.05, width * 0.78, 0.1), _HEAD, flags),
            Part((-length / 2 + 0.02, 0.0, z_rear), (0.05, width * 0.82, 0.1), _TAIL, flags)]


def _car_body(rng: np.random.Generator, length: float, width: float, height: float,
              bottom: float, radius: float, belt: float, cabin: float, cabin_x: float,
              lit: bool, two_tone: bool) -> list[Part]:
    body = paint(rng)
    roof_rgb = paint(rng) if two_tone else body
    g = _gloss(rng)
    roof = rng.uniform(0.05, 0.1)
    ax = length / 2 - radius * rng.uniform(1.3, 1.6)
    return [_axle(ax, width, radius), _axle(-ax, width, radius),
            Part((0.0, 0.0, (bottom + belt) / 2), (length, width, belt - bottom), body,
                 TEX_PLAIN, gloss=g),
            Part((cabin_x, 0.0, (belt + height - roof) / 2),
                 (cabin, width * rng.uniform(0.86, 0.92), height - roof - belt), _glass(rng),
                 TEX_GLASS, gloss=0.9),
            Part((cabin_x, 0.0, height - roof / 2), (cabin * 0.94, width * 0.86, roof),
                 roof_rgb, TEX_PLAIN | TEX_DETAIL, gloss=g),
            *_lights(length, width, belt - 0.12, belt - 0.1, lit)]


#: Body styles with one cabin on the body: (low, high) of length, width, height, body bottom
#: and wheel radius [m], then belt height, cabin length and cabin offset (rearward) as
#: fractions of the height, the length and the length.
_CABIN_CARS = {
    "sedan": ((4.3, 5.0), (1.75, 1.9), (1.38, 1.52), (0.22, 0.3), (0.3, 0.34), (0.58, 0.64),
              (0.44, 0.54), (0.0, 0.06)),
    "hatchback": ((3.7, 4.3), (1.68, 1.82), (1.42, 1.56), (0.2, 0.28), (0.29, 0.32),
                  (0.56, 0.62), (0.55, 0.64), (0.08, 0.14)),
    "suv": ((4.4, 4.95), (1.82, 1.98), (1.65, 1.85), (0.32, 0.42), (0.35, 0.4), (0.55, 0.6),
            (0.6, 0.7), (0.07, 0.12)),
}


def car_parts(rng: np.random.Generator, heldout: bool = False, lit: bool = True,
              style: str | None = None) -> list[Part]:
    """A car of a random body style (about 3.7-6 m long, 1.45-2.5 m high).

    Args:
        rng: generator.
        heldout: whether held-out styles and two-tone paint may be drawn.
        lit: whether its lights shine at night (driving) or not (parked).
        style: force one style (see ``STYLES``).
    """
    style = style or choose_style(rng, "car", heldout)
    two_tone = heldout and rng.random() < 0.4
    u = rng.uniform
    if style in _CABIN_CARS:
        # Drawn in the table's order, which the world's frames depend on.
        ln, wd, ht, bottom, radius, belt, cabin, offset = (u(lo, hi)
                                                            for lo, hi in _CABIN_CARS[style])
        return _car_body(rng, ln, wd, ht, bottom, radius, ht * belt, ln * cabin, -ln * offset,
                         lit, two_tone)
    if style == "pickup":
        length, width, height = u(5.1, 5.9), u(1.85, 2.0), u(1.75, 1.95)
        cab = length * u(0.32, 0.4)
        return _car_body(rng, length, width, height, u(0.35, 0.45), u(0.37, 0.4),
                         height * u(0.55, 0.6), cab, length * 0.5 - length * 0.27 - cab / 2,
                         lit, two_tone)
    if style == "van":
        return _van(rng, lit, two_tone)
    if style == "stepped":
        return _stepped(rng, lit, two_tone)
    raise ValueError(f"unknown car style {style!r}")


def _van(rng: np.random.Generator, lit: bool, two_tone: bool) -> list[Part]:
    """A van: one tall volume, glazed in front (and along the sides for passenger vans)."""
    u = rng.uniform
    length, width, height = u(4.8, 5.9), u(1.9, 2.05), u(1.95, 2.5)
    radius, bottom = u(0.32, 0.36), u(0.25, 0.32)
    belt = bottom + u(0.6, 0.75)
    body = paint(rng) if rng.random() < 0.6 else (u(225, 245),) * 3
    g = _gloss(rng)
    upper_len = length * u(0.78, 0.86)
    upper_x = -(length - upper_len) / 2
    glass_len = length * u(0.25, 0.32)
    ax = length / 2 - radius * 1.5
    parts = [_axle(ax, width, radius), _axle(-ax, width, radius),
             Part((0.0, 0.0, (bottom + belt) / 2), (length, width, belt - bottom), body,
                  TEX_PLAIN, gloss=g),
             Part((upper_x, 0.0, (belt + height) / 2), (upper_len, width, height - belt),
                  paint(rng) if two_tone else body, TEX_PLAIN, gloss=g),
             Part((upper_x + upper_len / 2 - glass_len / 2 + 0.01, 0.0,
                   belt + (height - belt) * 0.45),
                  (glass_len, width * 1.004, (height - belt) * 0.62), _glass(rng), TEX_GLASS,
                  gloss=0.9)]
    if rng.random() < 0.5:  # passenger van: a band of side windows
        parts.append(Part((upper_x - glass_len / 2, 0.0, belt + (height - belt) * 0.5),
                          (upper_len - glass_len - 0.3, width * 1.004,
                           (height - belt) * 0.42), _glass(rng), TEX_GLASS, gloss=0.9))
    return parts + _lights(length, width, belt - 0.15, belt - 0.1, lit)


def _stepped(rng: np.random.Generator, lit: bool, two_tone: bool) -> list[Part]:
    """Held-out style: a wedge car whose bonnet and windscreen rise in steps."""
    u = rng.uniform
    length, width, height = u(4.0, 4.8), u(1.72, 1.88), u(1.35, 1.55)
    radius, bottom = u(0.29, 0.33), u(0.2, 0.28)
    belt = height * u(0.52, 0.58)
    body = paint(rng)
    g = _gloss(rng)
    ax = length / 2 - radius * 1.45
    nose = length * u(0.22, 0.3)
    glass = _glass(rng)
    cabin = length * u(0.4, 0.5)
    cabin_x = length / 2 - nose - cabin / 2 - length * 0.05
    parts = [_axle(ax, width, radius), _axle(-ax, width, radius),
             Part((-nose / 2, 0.0, (bottom + belt) / 2), (length - nose, width, belt - bottom),
                  body, TEX_PLAIN, gloss=g)]
    for i, frac in enumerate((0.55, 0.78)):  # bonnet steps rising to the windscreen
        top = bottom + (belt - bottom) * frac
        x0 = length / 2 - nose + nose * i / 2
        parts.append(Part(((length / 2 + x0) / 2, 0.0, (bottom + top) / 2),
                          (length / 2 - x0, width, top - bottom), body, TEX_PLAIN, gloss=g))
    parts += [Part((cabin_x + cabin * 0.1, 0.0, (belt + height) / 2 - 0.05),
                   (cabin * 0.8, width * 0.9, height - belt - 0.1), glass, TEX_GLASS, 0.0, 0.9),
              Part((cabin_x + cabin * 0.5, 0.0, belt + (height - belt) * 0.3),
                   (cabin * 0.2, width * 0.9, (height - belt) * 0.6), glass, TEX_GLASS, 0.0,
                   0.9),
              Part((cabin_x, 0.0, height - 0.04), (cabin * 0.7, width * 0.86, 0.08),
                   paint(rng) if two_tone else body, TEX_PLAIN, gloss=g)]
    return parts + _lights(length, width, bottom + (belt - bottom) * 0.45, belt - 0.1, lit)


def truck_parts(rng: np.random.Generator, heldout: bool = False, lit: bool = True,
                style: str | None = None) -> list[Part]:
    """A truck: box truck (6.5-9.5 m) or semi-trailer (15.5-18.5 m); tanker when held out."""
    style = style or choose_style(rng, "truck", heldout)
    u = rng.uniform
    width = u(2.35, 2.55)
    cab_colour = paint(rng)
    g = _gloss(rng)
    if style == "box":
        length, height = u(6.5, 9.5), u(3.0, 3.8)
        cab, cab_h, radius = u(1.9, 2.4), height * u(0.72, 0.85), 0.5
        cargo = length - cab - 0.15
        cargo_rgb = (u(215, 245),) * 3 if rng.random() < 0.5 else paint(rng)
        parts = [_axle(length / 2 - 1.2, width, radius), _axle(-length / 2 + 1.6, width, radius),
                 Part((length / 2 - cab / 2, 0.0, (0.55 + cab_h) / 2), (cab, width, cab_h - 0.55),
                      cab_colour, TEX_PLAIN, gloss=g),
                 Part((length / 2 - cab * 0.42, 0.0, cab_h * 0.8),
                      (cab * 0.86, width * 1.005, cab_h * 0.28), _glass(rng), TEX_GLASS,
                      gloss=0.9),
                 Part((-length / 2 + cargo / 2, 0.0, (0.95 + height) / 2),
                      (cargo, width, height - 0.95), cargo_rgb, TEX_LIVERY, gloss=0.1)]
        return parts + _lights(length, width, 0.9, 1.05, lit)
    tractor, cab_h = u(2.3, 2.6), u(3.0, 3.6)
    trailer = u(12.0, 13.6)
    # The trailer starts just behind the cab, over the tractor's drive axles.
    length = tractor + 0.8 + trailer
    front = length / 2
    parts = [_axle(front - 1.1, width, 0.52),
             _axle(front - tractor - 1.9, width, 0.52, 2.3),
             _axle(-front + 2.0, width, 0.52, 2.6),
             Part((front - tractor / 2, 0.0, (0.6 + cab_h) / 2), (tractor, width, cab_h - 0.6),
                  cab_colour, TEX_PLAIN, gloss=g),
             Part((front - tractor * 0.45, 0.0, cab_h * 0.78),
                  (tractor * 0.9, width * 1.005, cab_h * 0.26), _glass(rng), TEX_GLASS,
                  gloss=0.9)]
    t_x = -front + trailer / 2
    if style == "tanker":
        steel = (u(170, 215),) * 3
        parts += [Part((t_x, 0.0, 2.3), (trailer, width * 0.98, 1.6), steel, TEX_PLAIN,
                       gloss=0.8),
                  Part((t_x, 0.0, 3.3), (trailer * 0.98, width * 0.7, 0.45), steel, TEX_PLAIN,
                       gloss=0.8),
                  Part((t_x, 0.0, 1.3), (trailer * 0.98, width * 0.7, 0.45), steel, TEX_PLAIN,
                       gloss=0.8)]
    elif style == "semi":
        box_rgb = (u(215, 245),) * 3 if rng.random() < 0.5 else paint(rng)
        parts.append(Part((t_x, 0.0, (1.2 + 4.0) / 2), (trailer, width, 2.8 + u(-0.1, 0.05)),
                          box_rgb, TEX_LIVERY, gloss=0.1))
    else:
        raise ValueError(f"unknown truck style {style!r}")
    return parts + _lights(length, width, 0.95, 1.1, lit)


def bus_parts(rng: np.random.Generator, heldout: bool = False, lit: bool = True,
              style: str | None = None) -> list[Part]:
    """A bus: city bus (10.5-12.5 m), articulated (17-18.5 m), coach, or double-decker."""
    style = style or choose_style(rng, "bus", heldout)
    u = rng.uniform
    width = u(2.5, 2.56)
    colour = paint(rng) if rng.random() < 0.5 else \
        ((200, 40, 30), (230, 180, 30), (30, 90, 170), (225, 225, 225), (40, 130, 70))[
            int(rng.integers(5))]
    g = _gloss(rng)
    glass = _glass(rng)
    if style == "double_decker":
        length, height = u(10.0, 11.5), u(4.2, 4.45)
        bands = ((1.15, 1.95), (2.65, height - 0.45))
    elif style == "coach":
        length, height = u(11.5, 13.0), u(3.4, 3.8)
        bands = ((1.55, height - 0.3),)
    else:
        length = u(17.0, 18.5) if style == "articulated" else u(10.5, 12.5)
        height = u(2.95, 3.3)
        bands = ((1.15, height - 0.35),)
    parts = [_axle(length / 2 - 2.6, width, 0.5), _axle(-length / 2 + 3.0, width, 0.5),
             Part((0.0, 0.0, (0.35 + height) / 2), (length, width, height - 0.35), colour,
                  TEX_LIVERY, gloss=g)]
    if style == "articulated":
        parts.append(_axle(0.0, width, 0.5))
    for lo, hi in bands:
        parts.append(Part((0.0, 0.0, (lo + hi) / 2), (length + 0.02, width + 0.02, hi - lo),
                          glass, TEX_GLASS, gloss=0.9))
    parts.append(Part((length / 2 - 0.02, 0.0, height - 0.22), (0.05, width * 0.6, 0.22),
                      (240.0, 170.0, 40.0), TEX_PLAIN | TEX_DETAIL | TEX_EMISSIVE))
    return parts + _lights(length, width, 0.75, 0.9, lit)


def motorcycle_parts(rng: np.random.Generator, rider: bool = True, heldout: bool = False,
                     lit: bool = True, style: str | None = None) -> list[Part]:
    """A motorcycle (or, held out, a scooter), ridden or parked (about 2 x 0.75 x 1.1-1.7 m)."""
    style = style or choose_style(rng, "motorcycle", heldout)
    u = rng.uniform
    body = paint(rng)
    g = _gloss(rng)
    flags = _LIGHT if lit else TEX_PLAIN | TEX_DETAIL
    if style == "scooter":
        r = u(0.2, 0.25)
        parts = [Part((0.62, 0.0, r), (2 * r, 0.12, 2 * r), _TYRE),
                 Part((-0.62, 0.0, r), (2 * r, 0.14, 2 * r), _TYRE),
                 Part((0.0, 0.0, 0.32), (0.8, 0.34, 0.12), body, TEX_PLAIN, gloss=g),
                 Part((0.5, 0.0, 0.72), (0.14, 0.46, 0.72), body, TEX_PLAIN, gloss=g),
                 Part((-0.3, 0.0, 0.6), (0.8, 0.36, 0.36), body, TEX_PLAIN, gloss=g),
                 Part((0.52, 0.0, 1.12), (0.06, 0.66, 0.05), _TYRE, TEX_PLAIN | TEX_DETAIL),
                 Part((0.58, 0.0, 0.9), (0.05, 0.18, 0.12), _HEAD, flags)]
        seat_z, hands = 0.72, (0.5, 1.1)
    else:
        r = u(0.3, 0.34)
        length = u(1.95, 2.25)
        wx = length / 2 - r
        parts = [Part((wx, 0.0, r), (2 * r, 0.13, 2 * r), _TYRE),
                 Part((-wx, 0.0, r), (2 * r, 0.16, 2 * r), _TYRE),
                 Part((0.0, 0.0, 0.55), (length * 0.45, 0.34, 0.42), (55.0, 55.0, 58.0)),
                 Part((0.05, 0.0, 0.84), (length * 0.42, 0.32, 0.2), body, TEX_PLAIN, gloss=g),
                 Part((-0.3, 0.0, 0.86), (0.55, 0.28, 0.1), (20.0, 20.0, 22.0),
                      TEX_PLAIN | TEX_DETAIL),
                 Part((wx - 0.2, 0.0, 1.02), (0.06, 0.74, 0.05), _TYRE, TEX_PLAIN | TEX_DETAIL),
                 Part((wx - 0.05, 0.0, 0.92), (0.06, 0.16, 0.14), _HEAD, flags)]
        seat_z, hands = 0.82, (wx - 0.2, 1.02)
    if rider:
        parts += rider_parts(rng, seat_x=-0.25, seat_z=seat_z, hands_x=hands[0],
                             hands_z=hands[1], feet_z=0.35, helmet=True, heldout=heldout)
    return parts


def bicycle_parts(rng: np.random.Generator, rider: bool = True, heldout: bool = False,
                  lit: bool = True) -> list[Part]:
    """A bicycle, ridden (about 1.75 x 0.6 x 1.75 m) or parked (about 1.75 x 0.55 x 1.05 m)."""
    u = rng.uniform
    length = u(1.65, 1.85)
    frame = paint(rng) if rng.random() < 0.7 else (u(20, 235), u(20, 235), u(20, 235))
    r = u(0.32, 0.35)
    wx = length / 2 - r
    parts = [Part((wx, 0.0, r), (2 * r, 0.05, 2 * r), _TYRE),
             Part((-wx, 0.0, r), (2 * r, 0.05, 2 * r), _TYRE),
             Part((0.0, 0.0, 0.58), (wx * 1.6, 0.05, 0.34), frame, TEX_PLAIN, gloss=0.4),
             Part((wx - 0.1, 0.0, 1.0), (0.05, 0.56, 0.04), _TYRE, TEX_PLAIN | TEX_DETAIL),
             Part((-wx + 0.3, 0.0, 0.92), (0.24, 0.12, 0.06), (20.0, 20.0, 22.0),
                  TEX_PLAIN | TEX_DETAIL)]
    if rider:
        parts += rider_parts(rng, seat_x=-wx + 0.3, seat_z=0.95, hands_x=wx - 0.1,
                             hands_z=1.0, feet_z=0.25, helmet=rng.random() < 0.5,
                             heldout=heldout)
    return parts


VEHICLE_TEMPLATES = {"car": car_parts, "truck": truck_parts, "bus": bus_parts,
                     "motorcycle": motorcycle_parts, "bicycle": bicycle_parts}
"""Template of each vehicle class: ``template(rng, heldout=..., lit=...)`` -> parts."""
