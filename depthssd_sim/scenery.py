"""Scenery of a synthetic sequence: buildings, trees, lamps, signals, furniture, work zones.

Laid out along both roadsides from fixed anchors, each group from its own random stream (see
``generate.populate``), away from side streets; furniture stands between the curb trees, cones
and barriers close stretches of parking strip (work zones), which parked cars then avoid.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

from .actors import CAST_PARTS, CAST_UNION, ActorTable, mirrored, union_length
from .props import (
    FURNITURE,
    FURNITURE_P,
    barrier_parts,
    building_parts,
    cone_parts,
    hedge_parts,
    pole_parts,
    street_lamp_parts,
    traffic_light_parts,
    traffic_sign_parts,
    tree_parts,
    utility_pole_parts,
)
from .road import Road

Stream = Callable[[int], np.random.Generator]
"""Maps an actor group number to its own, reproducible random generator."""

BEHIND_M = 30.0
"""The ego starts this far past the first actors laid out behind it."""
LAYOUT_MARGIN_M = 100.0
"""Crossings, junctions and work zones are laid out this far beyond the scenery, so the ones
a longer sequence adds never change scenery that a shorter one already placed."""

Zones = tuple[list[tuple[float, float]], list[tuple[float, float]]]
"""Work zones (x ranges) in the right and left parking strips."""


def sides(road: Road) -> list[tuple[float, float]]:
    """(curb offset, outward sign) of the right and left roadside."""
    return [(road.right_edge_m, -1.0), (road.left_edge_m, 1.0)]


def add_background(actors: ActorTable, parts: list, x: float, d: float, out: float,
                   yaw_off: float = 0.0, caster: int = CAST_PARTS) -> None:
    """Add unlabelled background whose +y side faces the road."""
    actors.add(None, mirrored(parts) if out > 0 else parts, x, d, yaw_off=yaw_off,
               caster=caster)


def scenery(stream: Stream, road: Road, actors: ActorTable, x_lo: float,
            x_hi: float) -> list[list[float]]:
    """Buildings, hedges, trees, lamps and poles; returns the x of the curb trees per side."""
    trees_x: list[list[float]] = [[], []]
    for side, (curb, out) in enumerate(sides(road)):
        _, walk_end = road.sidewalk_span(out)
        # Buildings: blocks with gaps, set back from the sidewalk; some stretches are open
        # (a hedge or a fence then), none across a side street.
        rng = stream(10 + side)
        x = x_lo + float(rng.uniform(0, 10))
        while x < x_hi:
            length = float(rng.uniform(8.0, 32.0))
            kind = rng.random()
            depth = float(rng.uniform(8.0, 20.0))
            setback = float(rng.uniform(0.0, 6.0))
            height = float(rng.uniform(4.0, 14.0) if rng.random() < 0.6
                           else rng.uniform(14.0, 40.0))
            if not road.side_street_at(x, x + length, out, 2.0):
                if kind < 0.82:
                    d = walk_end + out * (setback + depth / 2)
                    add_background(actors, building_parts(rng, length, depth, height),
                                    x + length / 2, d, out)
                elif kind < 0.95:
                    add_background(actors, hedge_parts(rng, length), x + length / 2,
                                    walk_end + out * 0.6, out)
            x += length + float(rng.uniform(0.0, 10.0))
        # Trees, street lamps and utility poles near the curb (in the verge if there is one).
        rng = stream(12 + side)
        x = x_lo + float(rng.uniform(0, 8))
        d = curb + out * (0.6 + road.verge_m / 2)
        while x < x_hi:
            r = rng.random()
            if road.side_street_at(x - 2.0, x + 2.0, out):
                rng.random()
            elif r < 0.6:
                actors.add(None, tree_parts(rng), x, d + out * float(rng.uniform(-0.2, 0.2)),
                           caster=CAST_PARTS)
            elif r < 0.9:
                parts, lamp_d, lamp_h = street_lamp_parts(rng, -out)
                actors.add(None, parts, x, d, caster=CAST_PARTS)
                actors.lamps.append((x, d + lamp_d, 0.9 * lamp_h))
            else:
                actors.add(None, utility_pole_parts(rng), x, d, caster=CAST_PARTS)
            trees_x[side].append(x)
            x += float(rng.uniform(7.0, 30.0))
    return trees_x


def signals(stream: Stream, road: Road, actors: ActorTable, x_lo: float, x_hi: float) -> None:
    """Traffic lights at the crossings (labelled) on poles, and signs along both sides."""
    # Traffic lights before each crossing, facing the traffic that approaches it.
    for i, xc in enumerate(road.crossings_x_m):
        rng = stream(1000 + i)
        actors.group = 1000 + i
        for (curb, out), facing, dx in zip(sides(road), (math.pi, 0.0), (-3.0, 3.0),
                                           strict=True):
            if out > 0 and road.lanes_left == 0:
                continue
            d_pole = curb + out * 0.4
            bottom = float(rng.uniform(3.0, 5.0))
            overhead = rng.random() < 0.5
            reach = float(rng.uniform(2.5, 4.5)) if overhead else 0.0
            actors.add(None, pole_parts(bottom + (1.1 if overhead else 0.0), reach, -out),
                       xc + dx, d_pole, caster=CAST_PARTS)
            d_light = d_pole - out * reach
            actors.add("traffic_light", traffic_light_parts(rng, bottom), xc + dx, d_light,
                       yaw_off=facing, caster=CAST_PARTS)
    # Signs along both sides, mostly facing the traffic of their side.
    for side, (curb, out) in enumerate(sides(road)):
        rng = stream(20 + side)
        actors.group = 20 + side
        x = x_lo + float(rng.uniform(0, 30))
        while x < x_hi:
            d = curb + out * 0.45
            bottom = float(rng.uniform(1.9, 2.4))
            facing = (math.pi if out < 0 else 0.0) + (math.pi if rng.random() < 0.15 else 0.0)
            actors.add(None, pole_parts(bottom + 0.5), x, d, caster=CAST_PARTS)
            actors.add("traffic_sign", traffic_sign_parts(rng, bottom), x, d + out * 0.03,
                       yaw_off=facing, caster=CAST_PARTS)
            x += float(rng.uniform(20.0, 80.0))


def work_zones(stream: Stream, road: Road, x_hi: float) -> Zones:
    """Stretches of parking strip closed with cones or barriers (none without parking)."""
    zones: Zones = ([], [])
    if road.parking_m <= 0:
        return zones
    for side in (0, 1):
        rng = stream(70 + side)
        x = -BEHIND_M - 20.0 + float(rng.uniform(0, 150))
        while x < x_hi + LAYOUT_MARGIN_M:
            length = float(rng.uniform(8.0, 30.0))
            zones[side].append((x, x + length))
            x += length + float(rng.uniform(80.0, 400.0))
    return zones


def in_zone(zones: list[tuple[float, float]], x0: float, x1: float) -> bool:
    """Whether [x0, x1] comes within a metre of a work zone."""
    return any(x0 < b + 1.0 and x1 > a - 1.0 for a, b in zones)


def furniture(stream: Stream, road: Road, actors: ActorTable, trees_x: list[list[float]],
              zones: Zones) -> None:
    """Bins, benches, bollards and hydrants between the trees; cones in work zones."""
    names = sorted(FURNITURE)
    for side, (curb, out) in enumerate(sides(road)):
        inner, _ = road.sidewalk_span(out)
        rng = stream(60 + side)
        # The curb zone of the sidewalk, clear of the walkers (at half its width and more).
        d = inner + out * 0.4
        wide = road.sidewalk_m >= 2.5
        for a, b in itertools.pairwise(trees_x[side]):
            name = names[int(rng.choice(len(names), p=FURNITURE_P))]
            parts = FURNITURE[name](rng)
            x = (a + b) / 2 + float(rng.uniform(-0.2, 0.2)) * (b - a)
            if rng.random() < 0.45 or not wide or b - a < 5.0 \
                    or road.side_street_at(x - 2.5, x + 2.5, out):
                continue
            if name == "bollard":  # a row of them
                for k in range(int(rng.integers(1, 4))):
                    actors.add(None, parts, x + 1.2 * k, d)
            else:  # benches turn their backs to the road
                add_background(actors, parts, x, d, -out, caster=CAST_UNION)
        # Cones or barriers along the work zones of this side's parking strip.
        rng = stream(72 + side)
        d = curb - out * road.parking_m * float(rng.uniform(0.3, 0.7))
        for a, b in zones[side]:
            cones = rng.random() < 0.6
            x = a
            while x < b:
                parts = cone_parts(rng) if cones else barrier_parts(rng)
                actors.add(None, parts, x, d)
                x += float(rng.uniform(1.5, 3.0)) if cones else union_length(parts) + 0.3
