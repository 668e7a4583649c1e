"""Everything that stands on the ground of the synthetic world, as boxes, and how it moves.

An actor is one labelled object (car, pedestrian, ...) or one piece of unlabelled background
(building, tree, pole, bench), made of box :class:`Part` s given in its own frame (x forward,
y left, z up, origin on the ground); the templates live in ``vehicles.py``, ``people.py`` and
``props.py``. All parts of an actor share its instance id, and its labelled 3D box is the
union of its parts. Actors move in road coordinates with one linear law,
``x(t) = x0 + vx t`` and ``d(t) = clip(d0 + vd max(t - t0, 0), dmin, dmax)``, which covers
parked and driving vehicles, pedestrians walking along a sidewalk and pedestrians crossing.
An actor exists for ``t_on <= t < t_off`` (always, by default): a pedestrian crossing the road
turns up at the curb shortly before it starts and leaves a little after it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from depthssd_core.classes import category_id

from .road import Road
from .scene import TEX_DETAIL, TEX_PLAIN, BoxParts, ObjectBox3D, rotation_z
from .shading import TEXELS_PER_M

GROUP_STRIDE = 10000
"""Instance ids of labelled actors are group * GROUP_STRIDE + index within the group."""

CAST_NONE = 0
CAST_UNION = 1
"""The actor's shadow is that of its union box (vehicles, people, compact props)."""
CAST_PARTS = 2
"""Each of its parts casts its own shadow (trees, lamps: the union box would be far too big)."""


class Part(NamedTuple):
    """One box of an actor, in the actor's frame (x forward, y left, z up, metres).

    Attributes:
        offset: centre of the box.
        size: (length, width, height).
        rgb: colour 0..255 (before the sequence's light and camera).
        texture: a ``scene.TEX_*`` kind plus flags.
        swing: metres the box swings back and forth along x while the actor walks (legs one
            way, arms the other).
        gloss: specular strength 0..1.
    """

    offset: tuple[float, float, float]
    size: tuple[float, float, float]
    rgb: tuple[float, float, float]
    texture: int = TEX_PLAIN
    swing: float = 0.0
    gloss: float = 0.0


def mirrored(parts: list[Part]) -> list[Part]:
    """The parts mirrored left to right (y -> -y)."""
    return [p._replace(offset=(p.offset[0], -p.offset[1], p.offset[2])) for p in parts]


def union_length(parts: list[Part]) -> float:
    """Length along x of the union box of ``parts`` (centred on the origin)."""
    return 2.0 * max(abs(p.offset[0]) + p.size[0] / 2 for p in parts)


@dataclass
class ActorTable:
    """All actors of a sequence as flat arrays (see the module docstring for the motion law).

    ``lamps`` collects the road positions (x, d, radius of the pool of light) of street lamps.
    """

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
    caster: list[int] = field(default_factory=list)
    part_actor: list[int] = field(default_factory=list)
    part_offset: list[tuple] = field(default_factory=list)
    part_swing: list[float] = field(default_factory=list)
    part_size: list[tuple] = field(default_factory=list)
    part_paint: list[int] = field(default_factory=list)
    part_texture: list[int] = field(default_factory=list)
    part_gloss: list[float] = field(default_factory=list)
    palette: list[tuple] = field(default_factory=list)
    lamps: list[tuple[float, float, float]] = field(default_factory=list)
    group: int = 0
    _group_counts: dict = field(default_factory=dict)
    _frozen: dict = field(default_factory=dict)

    def add(self, category: str | None, parts: list, x0: float, d0: float,
            yaw_off: float = 0.0, vx: float = 0.0, vd: float = 0.0, t0: float = 0.0,
            dmin: float = -np.inf, dmax: float = np.inf, t_on: float = -np.inf,
            t_off: float = np.inf, caster: int = CAST_UNION) -> int:
        """Add an actor; returns its owner id (> 0 labelled instance id, < 0 background).

        Labelled ids are ``group * GROUP_STRIDE + k`` for the k-th labelled actor (from 1) of
        the current ``group``, so an actor's id does not depend on how many actors other
        groups hold (which grows with the length of a sequence).

        Args:
            category: class name, or None for unlabelled background.
            parts: :class:`Part` s (or tuples of their fields) in the actor's frame.
            x0: road x at t = 0.
            d0: lateral offset at t = 0.
            yaw_off: heading relative to the road direction.
            vx: speed along the road.
            vd: lateral speed (from ``t0``).
            t0: when the lateral motion starts.
            dmin: lowest lateral offset reached.
            dmax: highest lateral offset reached.
            t_on: when the actor appears.
            t_off: when it leaves.
            caster: how it casts shadows (``CAST_*``).
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
                            ("owner", oid), ("category", cat), ("caster", caster)):
            getattr(self, name).append(value)
        for raw in parts:
            part = raw if isinstance(raw, Part) else Part(*raw)
            self.part_actor.append(index)
            self.part_offset.append(tuple(part.offset))
            self.part_swing.append(float(part.swing))
            self.part_size.append(tuple(part.size))
            self.part_paint.append(len(self.palette))
            self.palette.append(tuple(float(c) for c in part.rgb))
            self.part_texture.append(int(part.texture))
            self.part_gloss.append(float(part.gloss))
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
            f["caster"] = np.asarray(self.caster, dtype=np.int64)
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
            f["part_gloss"] = np.asarray(self.part_gloss, dtype=np.float64)
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
            f["part_casts"] = (f["caster"][f["part_actor"]] == CAST_PARTS) \
                & ((f["part_texture"] & TEX_DETAIL) == 0) if n else np.zeros(0, bool)
        return self._frozen

    def at_time(self, t_s: float, road: Road, x_lo: float, x_hi: float,
                paint_offset: int) -> tuple[BoxParts, list[ObjectBox3D], BoxParts]:
        """World boxes of the actors that exist at time ``t_s`` with road x in [x_lo, x_hi].

        Args:
            t_s: simulated time.
            road: the road that maps road coordinates to the world.
            x_lo: low end of the road x window worth drawing.
            x_hi: high end of it.
            paint_offset: palette index of the actors' first colour.

        Returns:
            The parts to draw, the labelled objects' union boxes, and the shadow casters
            (union boxes or parts, per actor).
        """
        f = self._arrays()
        if not len(f["x0"]):
            empty = np.zeros((0, 3))
            none = BoxParts(empty, empty, np.zeros(0), np.zeros(0, np.int64),
                            np.zeros(0, np.int64), np.zeros(0, np.int64))
            return none, [], none
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
            # Walkers swing their legs and arms while they move: along a sidewalk, or across
            # the road between leaving one curb and reaching the other.
            travelled = np.abs(f["vx"]) * t_s + np.abs(f["vd"]) * np.maximum(t_s - f["t0"], 0.0)
            moving = (f["vx"] != 0) | ((f["vd"] != 0) & (t_s > f["t0"]) & (d > f["dmin"])
                                       & (d < f["dmax"]))
            angle = np.where(moving, travelled * f["gait_rad_per_m"], 0.0) + f["gait_phase"]
            stride = np.where(moving, np.sin(angle), 0.0)
            actor = f["part_actor"][psel]
            offsets = offsets.copy()
            offsets[:, 0] += f["part_swing"][psel] * stride[actor]
        centres = pos[pk] + np.matmul(rot[pk], offsets[:, :, None])[:, :, 0]
        owners = f["owner"][f["part_actor"][psel]]
        parts = BoxParts(centres, f["part_size"][psel] / 2, yaw[pk],
                         f["part_paint"][psel] + paint_offset, f["part_texture"][psel],
                         owners, f["part_gloss"][psel],
                         TEXELS_PER_M * (centres[:, 0] + centres[:, 1]))
        labelled = []
        kept = np.flatnonzero(keep)
        for k, a in enumerate(kept):
            if f["category"][a] > 0:
                centre = pos[k] + rot[k] @ f["box_offset"][a]
                labelled.append(ObjectBox3D(int(f["owner"][a]), int(f["category"][a]), centre,
                                            f["box_size"][a].copy(), float(yaw[k])))
        # Shadow casters: union boxes of CAST_UNION actors, single parts of CAST_PARTS ones.
        whole = np.flatnonzero(f["caster"][kept] == CAST_UNION)
        union_c = pos[whole] + np.matmul(rot[whole],
                                         f["box_offset"][kept[whole]][:, :, None])[:, :, 0]
        each = f["part_casts"][psel]
        centres_c = np.concatenate([union_c, centres[each]])
        half_c = np.concatenate([f["box_size"][kept[whole]] / 2, parts.half_m[each]])
        yaw_c = np.concatenate([yaw[whole], parts.yaw_rad[each]])
        zeros = np.zeros(len(yaw_c), np.int64)
        casters = BoxParts(centres_c, half_c, yaw_c, zeros, zeros, zeros)
        return parts, labelled, casters
