"""Everything that stands on the ground of the synthetic world, as boxes built from templates.

An actor is one labelled object (car, pedestrian, ...) or one piece of unlabelled background
(building, tree, pole), made of box parts given in its own frame (x forward, y left, z up,
origin on the ground). Actors move in road coordinates with one linear law,
``x(t) = x0 + vx t`` and ``d(t) = clip(d0 + vd max(t - t0, 0), dmin, dmax)``, which covers
parked and driving vehicles, pedestrians walking along a sidewalk and pedestrians crossing.
An actor exists for ``t_on <= t < t_off`` (always, by default): a pedestrian crossing the road
turns up at the curb shortly before it starts and leaves a little after it arrives.
Sizes follow real-world figures (car about 4.5 x 1.8 x 1.5 m, bus 12 x 2.55 x 3.2 m, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from depthssd_core.classes import category_id

from .render import (
    TEX_DETAIL,
    TEX_FOLIAGE,
    TEX_PLAIN,
    TEX_WINDOWS,
    BoxParts,
    ObjectBox3D,
    rotation_z,
)
from .road import Road

Part = tuple
"""(centre offset xyz, size lwh, rgb colour, texture kind[, swing]) of one box in an actor's
frame; ``swing`` (metres) moves the box back and forth along x while the actor walks."""

_GLASS = (40.0, 48.0, 58.0)
_TYRE = (22.0, 22.0, 24.0)
_SKIN = ((230.0, 190.0, 160.0), (190.0, 140.0, 100.0), (120.0, 80.0, 55.0), (90.0, 60.0, 45.0))
_CAR_COLOURS = ((200, 200, 205), (30, 30, 35), (150, 20, 25), (20, 50, 130), (230, 230, 225),
                (90, 95, 100), (180, 150, 40), (30, 90, 50), (120, 60, 20), (160, 170, 180))


def _colour(rng: np.random.Generator, choices: tuple, jitter: float = 18.0) -> tuple:
    base = np.asarray(choices[int(rng.integers(len(choices)))], dtype=np.float64)
    return tuple(np.clip(base + rng.normal(0.0, jitter, 3), 0, 255))


def _random_rgb(rng: np.random.Generator, lo: float = 20, hi: float = 235) -> tuple:
    return tuple(rng.uniform(lo, hi, 3))


def _wheels(length: float, width: float, radius: float) -> list[Part]:
    """Two axle blocks standing for the wheels (front and back)."""
    x = length / 2 - radius * 1.4
    return [((sx, 0.0, radius), (2 * radius, width * 0.96, 2 * radius), _TYRE, TEX_DETAIL)
            for sx in (x, -x)]


def car_parts(rng: np.random.Generator) -> list[Part]:
    """A car: wheels, body, glass cabin (about 4.5 x 1.8 x 1.5 m)."""
    length, width = rng.uniform(3.8, 5.0), rng.uniform(1.68, 1.95)
    height = rng.uniform(1.4, 1.85) if rng.random() < 0.3 else rng.uniform(1.38, 1.6)
    paint = _colour(rng, _CAR_COLOURS)
    belt = height * rng.uniform(0.55, 0.65)
    cabin_len = length * rng.uniform(0.45, 0.65)
    return [*_wheels(length, width, 0.32),
            ((0.0, 0.0, (0.3 + belt) / 2), (length, width, belt - 0.3), paint, TEX_PLAIN),
            ((-length * rng.uniform(0.0, 0.1), 0.0, (belt + height) / 2),
             (cabin_len, width * 0.9, height - belt), _GLASS, TEX_PLAIN)]


def truck_parts(rng: np.random.Generator) -> list[Part]:
    """A truck: cab in front of a cargo box (about 8 x 2.5 x 3.5 m)."""
    length, width, height = rng.uniform(6.5, 10.0), rng.uniform(2.4, 2.6), rng.uniform(3.0, 4.0)
    cab = rng.uniform(1.9, 2.5)
    cab_h = height * rng.uniform(0.75, 0.9)
    cargo = length - cab - 0.2
    cab_colour = _colour(rng, _CAR_COLOURS)
    return [*_wheels(length, width, 0.5),
            ((length / 2 - cab / 2, 0.0, (0.6 + cab_h) / 2), (cab, width, cab_h - 0.6),
             cab_colour, TEX_PLAIN),
            ((length / 2 - cab * 0.4, 0.0, cab_h * 0.8), (cab * 0.82, width * 1.005,
                                                        cab_h * 0.28), _GLASS, TEX_PLAIN),
            ((-length / 2 + cargo / 2, 0.0, (0.9 + height) / 2), (cargo, width, height - 0.9),
             _random_rgb(rng, 60, 240), TEX_PLAIN)]


def bus_parts(rng: np.random.Generator) -> list[Part]:
    """A bus: long body with a band of windows (about 12 x 2.55 x 3.2 m)."""
    length, width, height = rng.uniform(10.5, 13.0), rng.uniform(2.5, 2.6), rng.uniform(3.0, 3.4)
    colour = _colour(rng, ((200, 40, 30), (230, 180, 30), (30, 90, 170), (220, 220, 220)))
    return [*_wheels(length, width, 0.5),
            ((0.0, 0.0, (0.35 + height) / 2), (length, width, height - 0.35), colour, TEX_PLAIN),
            ((0.0, 0.0, height * 0.7), (length + 0.02, width + 0.02, height * 0.3), _GLASS,
             TEX_PLAIN)]


def _rider(rng: np.random.Generator, seat_z: float, x: float) -> list[Part]:
    torso = rng.uniform(0.6, 0.72)
    head = 0.24
    return [((x, 0.0, seat_z + torso / 2), (0.35, 0.45, torso), _random_rgb(rng), TEX_PLAIN),
            ((x + 0.03, 0.0, seat_z + torso + head / 2), (0.24, 0.22, head),
             _colour(rng, ((30, 30, 30), (220, 220, 220), (200, 30, 30))), TEX_PLAIN)]


def motorcycle_parts(rng: np.random.Generator, rider: bool = True) -> list[Part]:
    """A motorcycle, ridden (about 2.1 x 0.8 x 1.6 m) or parked (about 2.1 x 0.8 x 1.0 m)."""
    length = rng.uniform(1.9, 2.3)
    body = _colour(rng, _CAR_COLOURS)
    parts = [*_wheels(length, 0.22, 0.32),
             ((0.0, 0.0, 0.7), (length * 0.75, 0.45, 0.55), body, TEX_PLAIN)]
    if rider:
        parts += [((-0.05, 0.0, 0.55), (0.4, 0.8, 0.3), _TYRE, TEX_PLAIN),  # legs and pegs
                  *_rider(rng, 0.9, -0.15)]
    return parts


def bicycle_parts(rng: np.random.Generator, rider: bool = True) -> list[Part]:
    """A bicycle, ridden (about 1.75 x 0.6 x 1.75 m) or parked (about 1.75 x 0.1 x 1.0 m)."""
    length = rng.uniform(1.6, 1.85)
    frame = _random_rgb(rng)
    parts = [((0.0, 0.0, 0.36), (length, 0.08, 0.7), _TYRE, TEX_PLAIN),
             ((0.0, 0.0, 0.8), (length * 0.55, 0.1, 0.25), frame, TEX_PLAIN)]
    if rider:
        parts += [((-0.1, 0.0, 0.62), (0.3, 0.45, 0.4), _random_rgb(rng, 20, 120), TEX_PLAIN),
                  *_rider(rng, 1.0, -0.1)]
    return parts


def pedestrian_parts(rng: np.random.Generator) -> list[Part]:
    """A pedestrian: two swinging legs, torso with arms, head (about 0.5 x 0.5 x 1.75 m).

    About one in eight is a child (1.1 to 1.4 m tall).
    """
    height = rng.uniform(1.1, 1.4) if rng.random() < 0.12 else rng.uniform(1.55, 1.95)
    width = height * rng.uniform(0.26, 0.32)
    legs = height * 0.47
    head = height * 0.13
    torso = height - legs - head
    swing = rng.uniform(0.12, 0.22)  # half the step length
    trousers = _random_rgb(rng, 15, 150)
    return [((0.0, side * width * 0.17, legs / 2), (0.16, width * 0.3, legs), trousers,
             TEX_PLAIN, side * swing) for side in (1.0, -1.0)] + [
            ((0.0, 0.0, legs + torso / 2), (0.3, width, torso), _random_rgb(rng), TEX_PLAIN),
            ((0.02, 0.0, height - head / 2), (0.2, 0.18, head),
             _SKIN[int(rng.integers(len(_SKIN)))], TEX_PLAIN)]


def traffic_light_parts(rng: np.random.Generator, bottom_m: float) -> list[Part]:
    """A traffic light housing with three lamps on its front (+x) face, bottom at ``bottom_m``."""
    h = rng.uniform(0.8, 1.0)
    lit = int(rng.integers(3))
    parts: list[Part] = [((0.0, 0.0, bottom_m + h / 2), (0.3, 0.34, h), (25.0, 25.0, 28.0),
                          TEX_PLAIN)]
    lamp_on = ((255.0, 60.0, 40.0), (255.0, 190.0, 40.0), (60.0, 255.0, 120.0))
    lamp_off = ((70.0, 20.0, 20.0), (70.0, 55.0, 15.0), (15.0, 60.0, 30.0))
    for i in range(3):
        z = bottom_m + h * (0.8 - 0.3 * i)
        colour = lamp_on[i] if i == lit else lamp_off[i]
        parts.append(((0.17, 0.0, z), (0.04, 0.2, 0.2), colour, TEX_DETAIL))
    return parts


def traffic_sign_parts(rng: np.random.Generator, bottom_m: float) -> list[Part]:
    """A sign plate facing +x (grey back), bottom edge at ``bottom_m``."""
    w = rng.uniform(0.55, 0.9)
    h = w * (rng.uniform(1.0, 1.5) if rng.random() < 0.3 else 1.0)
    face = _colour(rng, ((230, 230, 230), (20, 70, 170), (200, 25, 25), (240, 200, 20),
                         (30, 120, 60)))
    return [((-0.015, 0.0, bottom_m + h / 2), (0.03, w, h), (120.0, 120.0, 125.0), TEX_PLAIN),
            ((0.01, 0.0, bottom_m + h / 2), (0.02, w * 0.96, h * 0.96), face, TEX_PLAIN)]


GROUP_STRIDE = 10000
"""Instance ids of labelled actors are group * GROUP_STRIDE + index within the group."""

VEHICLE_TEMPLATES = {"car": car_parts, "truck": truck_parts, "bus": bus_parts,
                     "motorcycle": motorcycle_parts, "bicycle": bicycle_parts}


@dataclass
class ActorTable:
    """All actors of a sequence as flat arrays (see the module docstring for the motion law)."""

    x0: list[float] = field(default_factory=list)
    vx: list[float] = field(default_factory=list)
    d0: list[float] = field(default_factory=list)
    vd: list[float] = field(default_factory=list)
    t0: list[float] = field(default_factory=list)
    dmin: list[float] = field(default_factory=list)
    dmax: list[float] = field(default_factory=list)
    t_on: list[float] = field(default_factory=list)
    t_off: list[float] = field(default_factory=list)
    yaw_off: list[float] = field(default_factory=list)
    owner: list[int] = field(default_factory=list)
    category: list[int] = field(default_factory=list)
    part_actor: list[int] = field(default_factory=list)
    part_offset: list[tuple] = field(default_factory=list)
    part_swing: list[float] = field(default_factory=list)
    part_size: list[tuple] = field(default_factory=list)
    part_paint: list[int] = field(default_factory=list)
    part_texture: list[int] = field(default_factory=list)
    palette: list[tuple] = field(default_factory=list)
    group: int = 0
    _group_counts: dict = field(default_factory=dict)
    _frozen: dict = field(default_factory=dict)

    def add(self, category: str | None, parts: list[Part], x0: float, d0: float,
            yaw_off: float = 0.0, vx: float = 0.0, vd: float = 0.0, t0: float = 0.0,
            dmin: float = -np.inf, dmax: float = np.inf, t_on: float = -np.inf,
            t_off: float = np.inf) -> int:
        """Add an actor; returns its owner id (> 0 labelled instance id, < 0 background).

        Labelled ids are ``group * GROUP_STRIDE + k`` for the k-th labelled actor (from 1) of
        the current ``group``, so an actor's id does not depend on how many actors other
        groups hold (which grows with the length of a sequence).
        """
        index = len(self.x0)
        if category is None:
            oid, cat = -(index + 1), 0
        else:
            k = self._group_counts.get(self.group, 0) + 1
            if k >= GROUP_STRIDE:
                raise ValueError(f"too many actors in group {self.group} (limit {GROUP_STRIDE})")
            self._group_counts[self.group] = k
            oid, cat = self.group * GROUP_STRIDE + k, category_id(category)
        for name, value in (("x0", x0), ("vx", vx), ("d0", d0), ("vd", vd), ("t0", t0),
                            ("dmin", dmin), ("dmax", dmax), ("t_on", t_on),
                            ("t_off", t_off), ("yaw_off", yaw_off),
                            ("owner", oid), ("category", cat)):
            getattr(self, name).append(value)
        for offset, size, rgb, tex, *swing in parts:
            self.part_actor.append(index)
            self.part_offset.append(offset)
            self.part_swing.append(float(swing[0]) if swing else 0.0)
            self.part_size.append(size)
            self.part_paint.append(len(self.palette))
            self.palette.append(tuple(float(c) for c in rgb))
            self.part_texture.append(tex)
        self._frozen.clear()
        return oid

    def _arrays(self) -> dict:
        if not self._frozen:
            f = self._frozen
            for name in ("x0", "vx", "d0", "vd", "t0", "dmin", "dmax", "t_on", "t_off",
                         "yaw_off"):
                f[name] = np.asarray(getattr(self, name), dtype=np.float64)
            f["owner"] = np.asarray(self.owner, dtype=np.int64)
            f["category"] = np.asarray(self.category, dtype=np.int64)
            f["part_actor"] = np.asarray(self.part_actor, dtype=np.int64).reshape(-1)
            f["part_offset"] = np.asarray(self.part_offset, dtype=np.float64).reshape(-1, 3)
            f["part_swing"] = np.asarray(self.part_swing, dtype=np.float64)
            f["swings"] = bool(np.any(f["part_swing"]))
            # Walking cadence: one stride (two steps, about 1.4 m) per cycle; the phase is
            # spread over actors with the golden angle so neighbours do not march in step.
            # It is keyed on the owner id, not the row: rows shift when a longer sequence
            # adds actors to earlier groups, ids do not.
            f["gait_rad_per_m"] = 2 * np.pi / 1.4
            f["gait_phase"] = np.mod(f["owner"] * 2.39996, 2 * np.pi)
            f["part_size"] = np.asarray(self.part_size, dtype=np.float64).reshape(-1, 3)
            f["part_paint"] = np.asarray(self.part_paint, dtype=np.int64)
            f["part_texture"] = np.asarray(self.part_texture, dtype=np.int64)
            # Union box of each actor's parts in its own frame (the labelled 3D box).
            n = len(self.x0)
            lo = np.full((n, 3), np.inf)
            hi = np.full((n, 3), -np.inf)
            if len(f["part_actor"]):
                # The labelled box holds the parts at any point of their swing.
                reach = f["part_size"] / 2
                reach[:, 0] += np.abs(f["part_swing"])
                np.minimum.at(lo, f["part_actor"], f["part_offset"] - reach)
                np.maximum.at(hi, f["part_actor"], f["part_offset"] + reach)
            f["box_offset"] = (lo + hi) / 2
            f["box_size"] = hi - lo
        return self._frozen

    def at_time(self, t_s: float, road: Road, x_lo: float, x_hi: float,
                paint_offset: int) -> tuple[BoxParts, list[ObjectBox3D]]:
        """World boxes of the actors that exist at time ``t_s`` with road x in [x_lo, x_hi].

        Args:
            t_s: simulated time.
            road: the road that maps road coordinates to the world.
            x_lo: low end of the road x window worth drawing.
            x_hi: high end of it.
            paint_offset: palette index of the actors' first colour.
        """
        f = self._arrays()
        if not len(f["x0"]):
            empty = np.zeros((0, 3))
            return BoxParts(empty, empty, np.zeros(0), np.zeros(0, np.int64),
                            np.zeros(0, np.int64), np.zeros(0, np.int64)), []
        x = f["x0"] + f["vx"] * t_s
        d = np.clip(f["d0"] + f["vd"] * np.maximum(t_s - f["t0"], 0.0), f["dmin"], f["dmax"])
        keep = (x >= x_lo) & (x <= x_hi) & (f["t_on"] <= t_s) & (t_s < f["t_off"])
        wx, wy, theta = road.to_world(x[keep], d[keep])
        yaw = theta + f["yaw_off"][keep]
        index = np.full(len(x), -1)
        index[keep] = np.arange(int(keep.sum()))
        rot = rotation_z(yaw)  # (K, 3, 3)
        pos = np.stack([wx, wy, np.zeros_like(wx)], axis=1)
        pk = index[f["part_actor"]]
        psel = pk >= 0
        pk = pk[psel]
        offsets = f["part_offset"][psel]
        if f["swings"]:
            # Walkers swing their legs while they move: along a sidewalk, or across the road
            # between leaving one curb and reaching the other.
            travelled = np.abs(f["vx"]) * t_s + np.abs(f["vd"]) * np.maximum(t_s - f["t0"], 0.0)
            moving = (f["vx"] != 0) | ((f["vd"] != 0) & (t_s > f["t0"]) & (d > f["dmin"])
                                       & (d < f["dmax"]))
            angle = np.where(moving, travelled * f["gait_rad_per_m"], 0.0) + f["gait_phase"]
            stride = np.where(moving, np.sin(angle), 0.0)
            actor = f["part_actor"][psel]
            offsets = offsets.copy()
            offsets[:, 0] += f["part_swing"][psel] * stride[actor]
        centres = pos[pk] + np.matmul(rot[pk], offsets[:, :, None])[:, :, 0]
        parts = BoxParts(centres, f["part_size"][psel] / 2, yaw[pk],
                         f["part_paint"][psel] + paint_offset, f["part_texture"][psel],
                         f["owner"][f["part_actor"][psel]])
        labelled = []
        for k, a in enumerate(np.flatnonzero(keep)):
            if f["category"][a] > 0:
                centre = pos[k] + rot[k] @ f["box_offset"][a]
                labelled.append(ObjectBox3D(int(f["owner"][a]), int(f["category"][a]), centre,
                                            f["box_size"][a].copy(), float(yaw[k])))
        return parts, labelled


def building_parts(rng: np.random.Generator, length: float, depth: float,
                   height: float) -> list[Part]:
    """A building block (with windows), sometimes with a lower annex in front."""
    wall = _colour(rng, ((170, 160, 150), (120, 110, 100), (200, 190, 170), (140, 70, 50),
                         (90, 100, 110), (210, 210, 215)), 12.0)
    parts: list[Part] = [((0.0, 0.0, height / 2), (length, depth, height), wall, TEX_WINDOWS)]
    if height > 8 and rng.random() < 0.3:
        parts.append(((0.0, depth / 2 + 1.0, 1.75), (length * 0.9, 2.0, 3.5),
                      _random_rgb(rng, 60, 200), TEX_PLAIN))
    return parts


def tree_parts(rng: np.random.Generator) -> list[Part]:
    """A tree: trunk and one or two foliage blocks."""
    trunk_h = rng.uniform(1.8, 3.2)
    crown = rng.uniform(2.0, 4.5)
    green = (rng.uniform(30, 80), rng.uniform(80, 140), rng.uniform(25, 60))
    parts: list[Part] = [((0.0, 0.0, trunk_h / 2), (0.3, 0.3, trunk_h), (85.0, 60.0, 40.0),
                          TEX_PLAIN),
                         ((0.0, 0.0, trunk_h + crown / 2), (crown, crown, crown), green,
                          TEX_FOLIAGE)]
    if rng.random() < 0.5:
        top = crown * 0.6
        parts.append(((0.0, 0.0, trunk_h + crown + top / 2 - 0.3), (top, top, top),
                      tuple(c * 1.1 for c in green), TEX_FOLIAGE))
    return parts


def pole_parts(height: float, arm_m: float = 0.0, arm_dir: float = 1.0,
               colour: tuple = (95.0, 95.0, 100.0)) -> list[Part]:
    """A vertical pole, optionally with a horizontal arm reaching ``arm_m`` along ``arm_dir`` y."""
    parts: list[Part] = [((0.0, 0.0, height / 2), (0.18, 0.18, height), colour, TEX_PLAIN)]
    if arm_m > 0:
        parts.append(((0.0, arm_dir * arm_m / 2, height - 0.15), (0.14, arm_m, 0.14), colour,
                      TEX_PLAIN))
    return parts
