"""Random draws of one synthetic sequence: camera, road, sky, weather, traffic and scenery.

The sequence's parameters come from one ``numpy.random.Generator`` seeded from (world seed,
sequence id), and every group of actors from its own generator keyed on the same pair and the
group number, so a sequence is a pure function of its seed and arguments. Every value is drawn
whether or not a fixed option replaces it, so fixing one option never shifts the others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

from .actors import ActorTable, union_length
from .appearance import draw_sky
from .config import WorldConfig, parse_aspect
from .people import pedestrian_parts
from .road import CENTRE_STYLES, Road, SideStreet
from .scenery import (
    BEHIND_M,
    LAYOUT_MARGIN_M,
    Stream,
    Zones,
    furniture,
    in_zone,
    scenery,
    sides,
    signals,
    work_zones,
)
from .vehicles import VEHICLE_TEMPLATES, bicycle_parts, motorcycle_parts

FRAME_DT_S = 0.05
"""Simulated time between frames (CARLA synchronous mode at 20 Hz)."""

AHEAD_M = 220.0
CROSSING_WAIT_S = 4.0
"""A crossing pedestrian waits this long at the curb before stepping onto the road..."""
CROSSING_LINGER_S = 3.0
"""...and stays this long at the far curb before leaving the scene."""


@dataclass(frozen=True)
class SequenceParams:
    """The per-sequence draws (camera, appearance, traffic), fixed or random.

    Attributes:
        fov_deg: horizontal field of view.
        camera_height_m: optical centre height above the ground.
        camera_pitch_rad: downward pitch.
        camera_roll_rad: roll (REP-103).
        sensor_aspect: aspect ratio of the camera rendered into the image, or None for the
            image's own (square pixels).
        sky: sky type (see ``appearance.SKIES``).
        fog_density_per_m: fog extinction per metre (0 = clear).
        wet_road: whether the road is wet (darker, with a sheen).
        ego_speed_mps: speed of the camera's vehicle.
        ego_lane: the ego's lane (0 = next to the centreline).
        traffic_density: scale of vehicle counts (about 0.3..1.5).
        pedestrian_density: scale of pedestrian counts.
        road: lane layout, centreline and junctions.
        look: "train" or "heldout".
    """

    fov_deg: float
    camera_height_m: float
    camera_pitch_rad: float
    camera_roll_rad: float
    sensor_aspect: float | None
    sky: str
    fog_density_per_m: float
    wet_road: bool
    ego_speed_mps: float
    ego_lane: int
    traffic_density: float
    pedestrian_density: float
    road: Road
    look: str = "train"

    @property
    def night(self) -> bool:
        """Whether it is night (lamps and head lights on)."""
        return self.sky == "night"


def draw_params(rng: np.random.Generator, config: WorldConfig) -> SequenceParams:
    """Draw a sequence's parameters; the config's fixed (non-None) values are kept."""
    c = config
    fov = float(rng.uniform(*c.fov_range_deg))
    height = float(rng.uniform(*c.camera_height_range_m))
    pitch = math.radians(float(rng.uniform(*c.camera_pitch_range_deg)))
    roll = math.radians(float(rng.uniform(*c.camera_roll_range_deg)))
    aspect = parse_aspect(c.sensor_aspects[int(rng.integers(len(c.sensor_aspects)))])
    lanes_right = int(rng.choice([1, 2, 2, 3]))
    lanes_left = int(rng.choice([0, 1, 1, 2, 2, 3]))
    if rng.random() < 0.5:
        n_terms = int(rng.integers(1, 3))
        amps = tuple(float(a) for a in rng.uniform(4.0, 22.0, n_terms))
        waves = tuple(float(2 * math.pi / w) for w in rng.uniform(260.0, 700.0, n_terms))
        phases = tuple(float(p) for p in rng.uniform(0, 2 * math.pi, n_terms))
    else:
        amps, waves, phases = (), (), ()
    style = CENTRE_STYLES[int(rng.choice(4, p=[0.35, 0.25, 0.3, 0.1]))]
    if lanes_left == 0:
        style = "none"
    elif style == "none" and lanes_left + lanes_right > 2:
        style = "dashed"
    road = Road(amps, waves, phases, lanes_right, lanes_left,
                lane_width_m=float(rng.uniform(2.8, 3.9)),
                parking_m=float(rng.uniform(2.0, 2.6)) if rng.random() < 0.45 else 0.0,
                sidewalk_m=float(rng.uniform(1.5, 5.0)),
                verge_m=float(rng.uniform(0.8, 2.5)) if rng.random() < 0.35 else 0.0,
                centre_style=style, dashed_centre=style == "dashed",
                edge_lines=bool(rng.random() < 0.8), lane_lines=bool(rng.random() < 0.95),
                coloured_lane=bool(lanes_right > 1 and rng.random() < 0.12))
    sky = draw_sky(rng, c.look)
    r = rng.random()
    fog = 0.0 if r < 0.55 else float(rng.uniform(0.002, 0.012) if r < 0.88
                                     else rng.uniform(0.015, 0.05))
    wet_p = {"overcast": 0.35, "night": 0.3}.get(sky, 0.15)
    wet = bool(rng.random() < wet_p)
    if c.camera_roll_rad is not None:
        roll = float(c.camera_roll_rad)
    elif c.camera_pitch_rad is not None:
        roll = 0.0
    if c.sensor_aspect is not None:
        aspect = parse_aspect(c.sensor_aspect)
    elif c.fov_deg is not None:
        aspect = None
    return SequenceParams(
        fov_deg=fov if c.fov_deg is None else float(c.fov_deg),
        camera_height_m=height if c.camera_height_m is None else float(c.camera_height_m),
        camera_pitch_rad=pitch if c.camera_pitch_rad is None else float(c.camera_pitch_rad),
        camera_roll_rad=roll,
        sensor_aspect=aspect,
        sky=sky if c.sky is None else c.sky,
        fog_density_per_m=fog,
        wet_road=wet,
        ego_speed_mps=float(rng.uniform(4.0, 14.0)),
        ego_lane=int(rng.integers(lanes_right)),
        traffic_density=float(rng.uniform(0.3, 1.5)),
        pedestrian_density=float(rng.uniform(0.3, 1.5)),
        road=road,
        look=c.look,
    )


def populate(stream: Stream, params: SequenceParams, num_frames: int,
             distractors: bool = True) -> tuple[SequenceParams, ActorTable]:
    """Place scenery, signals, furniture, vehicles and pedestrians along the ego's route.

    Every group of actors (a lane's traffic, one side's buildings, one crossing's walkers...)
    draws from its own random stream ``stream(group)`` and is laid out from a fixed anchor, so
    a longer sequence only appends actors to each group. The appended ones lie outside the
    drawn road window during the shorter sequence's frames (each group's layout limit is
    chosen so), or, for crossing walkers, do not exist yet; crossings, junctions and work
    zones, which other groups avoid, are laid out ``LAYOUT_MARGIN_M`` further. Hence the first
    frames of a longer sequence equal a shorter one's.

    Args:
        stream: maps a group number to a fresh generator, the same for the same number.
        params: the sequence's draws.
        num_frames: length of the sequence (how far the ego drives).
        distractors: whether to place street furniture, cones and barriers.

    Returns:
        The parameters with the road's crossings and junctions filled in, and the actors.
    """
    road = params.road
    duration = num_frames * FRAME_DT_S
    x_lo, x_hi = -BEHIND_M - 20.0, params.ego_speed_mps * duration + AHEAD_M + 20.0
    actors = ActorTable()
    rng = stream(1)
    crossings, streets = [], []
    x = float(rng.uniform(25.0, 80.0))
    while x < x_hi + LAYOUT_MARGIN_M:
        crossings.append(x)
        if rng.random() < 0.45:  # a junction just past the zebra crossing
            half = float(rng.uniform(3.5, 7.5))
            r = rng.random()
            right, left = (True, r < 0.4) if r < 0.75 else (False, True)
            if road.lanes_left == 0:
                left = False
                right = True
            streets.append(SideStreet(x + 3.5 + half, half, right, left))
        x += float(rng.uniform(60.0, 160.0))
    road = replace(road, crossings_x_m=tuple(crossings), side_streets=tuple(streets))
    params = replace(params, road=road)
    heldout = params.look == "heldout"
    zones = work_zones(stream, road, x_hi) if distractors else ([], [])
    trees_x = scenery(stream, road, actors, x_lo, x_hi)
    signals(stream, road, actors, x_lo, x_hi)
    if distractors:
        furniture(stream, road, actors, trees_x, zones)
    _traffic(stream, params, actors, duration, heldout, zones)
    _pedestrians(stream, params, actors, duration, x_lo, x_hi, heldout)
    return params, actors


def _vehicle(rng: np.random.Generator, outer: bool, heldout: bool, lit: bool,
             kinds: list[str] | None = None, probs: list[float] | None = None) -> tuple:
    """A random vehicle kind, its parts and its length."""
    if kinds is None:
        kinds = ["car", "truck", "bus", "motorcycle"] + (["bicycle"] if outer else [])
        probs = [0.68, 0.1, 0.06, 0.08] + ([0.1] if outer else [])
    p = np.asarray(probs, dtype=np.float64)
    kind = str(kinds[int(rng.choice(len(kinds), p=p / p.sum()))])
    if kind == "bicycle":
        parts = bicycle_parts(rng, heldout=heldout, lit=lit)
    elif kind == "motorcycle":
        parts = motorcycle_parts(rng, heldout=heldout, lit=lit)
    else:
        parts = VEHICLE_TEMPLATES[kind](rng, heldout=heldout, lit=lit)
    return kind, parts, union_length(parts)


def _traffic(stream: Stream, params: SequenceParams, actors: ActorTable, duration: float,
             heldout: bool, zones: Zones) -> None:
    road = params.road
    v_e = params.ego_speed_mps
    lanes = [(lane, 1.0) for lane in range(road.lanes_right)]
    lanes += [(-(lane + 1), -1.0) for lane in range(road.lanes_left)]
    for lane, direction in lanes:
        group = 100 + 2 * (lane + 8)
        rng = stream(group)
        outer = lane in (road.lanes_right - 1, -road.lanes_left)
        if lane == params.ego_lane:
            speed = v_e  # same speed as the ego: no vehicle ever drives through the camera
        elif direction > 0:
            speed = v_e * float(rng.uniform(0.6, 1.5))
        else:
            speed = float(rng.uniform(5.0, 15.0))
        vx = direction * speed
        gap_scale = 1.0 / params.traffic_density
        # Cover [ego - behind, ego + ahead] over the whole sequence, laid out forwards and
        # backwards from x = 0 with one stream each.
        lo = min(-BEHIND_M, v_e * duration - BEHIND_M - vx * duration)
        hi = max(AHEAD_M, v_e * duration + AHEAD_M - vx * duration)
        d = road.lane_center_m(lane)
        for sign, limit in ((1.0, hi), (-1.0, -lo)):
            rng_dir = stream(group + (0 if sign > 0 else 1)) if sign < 0 else rng
            actors.group = group + (0 if sign > 0 else 1)
            x = float(rng_dir.uniform(0, 20))
            while x < limit:
                kind, parts, length = _vehicle(rng_dir, outer, heldout, True)
                pos = sign * (x + length / 2)
                if lane != params.ego_lane or not -10.0 - length < pos < 14.0 + length:
                    actors.add(kind, parts, pos, d + float(rng_dir.normal(0, 0.15)),
                               yaw_off=0.0 if direction > 0 else math.pi, vx=vx)
                x += length + float(rng_dir.uniform(6.0, 45.0)) * gap_scale
    if road.parking_m > 0:
        for side, (curb, out) in enumerate(sides(road)):
            rng = stream(30 + side)
            actors.group = 30 + side
            x = -BEHIND_M - 20.0 + float(rng.uniform(0, 10))
            while x < v_e * duration + AHEAD_M + 20.0:
                kind, parts, length = _vehicle(rng, False, heldout, False,
                                               ["car", "truck", "motorcycle"], [0.86, 0.09, 0.05])
                free = not (road.side_street_at(x, x + length, out, 1.5)
                            or in_zone(zones[side], x, x + length))
                if rng.random() < 0.7 * min(1.0, params.traffic_density) and free:
                    actors.add(kind, parts, x + length / 2, curb - out * road.parking_m / 2,
                               yaw_off=0.0 if out < 0 else math.pi)
                x += length + float(rng.uniform(1.0, 8.0))
    # Vehicles waiting in the side streets of junctions, facing the road.
    for i, street in enumerate(road.side_streets):
        rng = stream(3000 + i)
        actors.group = 3000 + i
        for out, present in ((-1.0, street.right), (1.0, street.left)):
            curb = road.right_edge_m if out < 0 else road.left_edge_m
            if not present:
                continue
            n = int(rng.choice([0, 1, 1, 2]))
            depth = 2.5
            lane_x = street.x_m - out * street.half_width_m * 0.5  # its right-hand lane
            for _ in range(n):
                kind, parts, length = _vehicle(rng, False, heldout, True, ["car", "truck"],
                                               [0.9, 0.1])
                depth += length / 2
                actors.add(kind, parts, lane_x, curb + out * depth,
                           yaw_off=-out * math.pi / 2)
                depth += length / 2 + float(rng.uniform(1.5, 5.0))


def _pedestrians(stream: Stream, params: SequenceParams, actors: ActorTable, duration: float,
                 x_lo: float, x_hi: float, heldout: bool) -> None:
    road = params.road
    density = params.pedestrian_density
    for side, (_curb, out) in enumerate(sides(road)):
        inner, _ = road.sidewalk_span(out)
        for line, frac in enumerate((0.5, 0.8)):
            group = 40 + 4 * side + 2 * line
            rng = stream(group)
            d = inner + out * road.sidewalk_m * frac
            speed = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.9, 1.6))
            reach = abs(speed) * duration
            for sign, limit in ((1.0, x_hi + reach), (-1.0, -(x_lo - reach))):
                rng_dir = rng if sign > 0 else stream(group + 1)
                actors.group = group + (0 if sign > 0 else 1)
                x = float(rng_dir.uniform(0, 5))
                while x < limit:
                    walking = rng_dir.random() < 0.8
                    actors.add("pedestrian", pedestrian_parts(rng_dir, heldout), sign * x,
                               d + float(rng_dir.normal(0, 0.1)),
                               yaw_off=(0.0 if speed > 0 else math.pi) if walking
                               else float(rng_dir.uniform(-math.pi, math.pi)),
                               vx=speed if walking else 0.0)
                    x += float(rng_dir.uniform(3.0, 40.0)) / density
    # Parked bicycles and motorcycles on the sidewalk next to the curb.
    for side, (_curb, out) in enumerate(sides(road)):
        inner, _ = road.sidewalk_span(out)
        rng = stream(50 + side)
        actors.group = 50 + side
        x = x_lo + float(rng.uniform(0, 30))
        while x < x_hi:
            kind = "bicycle" if rng.random() < 0.6 else "motorcycle"
            parts = (bicycle_parts if kind == "bicycle" else motorcycle_parts)(
                rng, rider=False, heldout=heldout, lit=False)
            yaw = float(rng.choice([0.0, math.pi]))
            count = int(rng.integers(1, 4))
            if not road.side_street_at(x - 1.0, x + 2.2 * count, out):
                for k in range(count):  # a row of identical ones
                    actors.add(kind, parts, x + 2.2 * k, inner + out * 0.3, yaw_off=yaw)
            x += float(rng.uniform(15.0, 90.0)) / density
    # Pedestrians crossing at zebra crossings, timed not to meet the ego on its lane.
    d_right = road.sidewalk_span(-1.0)[0] - road.sidewalk_m * 0.3
    d_left = road.sidewalk_span(1.0)[0] + road.sidewalk_m * 0.3
    ego_d = road.lane_center_m(params.ego_lane)
    v_e = params.ego_speed_mps
    for i, xc in enumerate(road.crossings_x_m):
        rng = stream(2000 + i)
        actors.group = 2000 + i
        t0 = -8.0 + float(rng.exponential(4.0 / density))
        # A walker exists only around its crossing (from t0 - wait), so the ones a longer
        # sequence adds here turn up after a shorter one has ended.
        while t0 - CROSSING_WAIT_S < duration:
            speed = float(rng.uniform(1.0, 1.7))
            leftward = rng.random() < 0.5
            start, end = (d_right, d_left) if leftward else (d_left, d_right)
            vd = speed if leftward else -speed
            x = xc + float(rng.uniform(-1.5, 1.5))
            parts = pedestrian_parts(rng, heldout)
            # Times at which the walker is on the ego's lane, and when the ego passes.
            ta = t0 + (ego_d - 1.8 - start) / vd
            tb = t0 + (ego_d + 1.8 - start) / vd
            ta, tb = min(ta, tb), max(ta, tb)
            pa, pb = (xc - 14.0) / v_e, (xc + 4.0) / v_e
            if not (ta < pb and pa < tb):
                arrive = t0 + abs(end - start) / speed
                actors.add("pedestrian", parts, x, start,
                           yaw_off=math.pi / 2 if leftward else -math.pi / 2, vd=vd, t0=t0,
                           dmin=min(start, end), dmax=max(start, end),
                           t_on=t0 - CROSSING_WAIT_S, t_off=arrive + CROSSING_LINGER_S)
            t0 += float(rng.exponential(6.0 / density))


def lamp_pools(actors: ActorTable, road: Road) -> np.ndarray:
    """(L, 3) world (x, y, radius) of the street lamps' pools of light."""
    if not actors.lamps:
        return np.zeros((0, 3))
    lamps = np.asarray(actors.lamps, np.float64)
    wx, wy, _ = road.to_world(lamps[:, 0], lamps[:, 1])
    return np.stack([wx, wy, lamps[:, 2]], axis=1)
