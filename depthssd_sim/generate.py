"""Random draws of one synthetic sequence: camera, road, light, weather, traffic and scenery.

The sequence's parameters come from one ``numpy.random.Generator`` seeded from (world seed,
sequence id), and every group of actors from its own generator keyed on the same pair and the
group number, so a sequence is a pure function of its seed and arguments.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import cv2
import numpy as np

from .actors import (
    VEHICLE_TEMPLATES,
    ActorTable,
    bicycle_parts,
    building_parts,
    motorcycle_parts,
    pedestrian_parts,
    pole_parts,
    traffic_light_parts,
    traffic_sign_parts,
    tree_parts,
)
from .render import Look
from .road import FIRST_FREE_PAINT, SKY, Road

FRAME_DT_S = 0.05
"""Simulated time between frames (CARLA synchronous mode at 20 Hz)."""

Stream = Callable[[int], np.random.Generator]
"""Maps an actor group number to its own, reproducible random generator."""

BEHIND_M = 30.0
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
        time_of_day: 0 = dusk, 1 = noon (drives light level, sun height and tint).
        overcast: whether direct sunlight is weak.
        night: dark sky and weak, bluish light (time_of_day is then ignored).
        fog_density_per_m: fog extinction per metre (0 = clear).
        ego_speed_mps: speed of the camera's vehicle.
        ego_lane: the ego's lane (0 = next to the centreline).
        traffic_density: scale of vehicle counts (about 0.3..1.5).
        pedestrian_density: scale of pedestrian counts.
        road: lane layout and centreline.
    """

    fov_deg: float
    camera_height_m: float
    camera_pitch_rad: float
    time_of_day: float
    overcast: bool
    night: bool
    fog_density_per_m: float
    ego_speed_mps: float
    ego_lane: int
    traffic_density: float
    pedestrian_density: float
    road: Road


def draw_params(rng: np.random.Generator, fov_deg: float | None,
                camera_height_m: float | None, camera_pitch_rad: float | None) -> SequenceParams:
    """Draw a sequence's parameters; given (non-None) camera values are kept."""
    fov = float(rng.uniform(60.0, 110.0))
    height = float(rng.uniform(1.4, 2.4))
    pitch = float(np.radians(rng.uniform(-5.0, 5.0)))
    lanes_right = int(rng.choice([1, 2, 2, 3]))
    lanes_left = int(rng.choice([0, 1, 2, 2, 3]))
    if rng.random() < 0.5:
        n_terms = int(rng.integers(1, 3))
        amps = tuple(float(a) for a in rng.uniform(4.0, 22.0, n_terms))
        waves = tuple(float(2 * math.pi / w) for w in rng.uniform(260.0, 700.0, n_terms))
        phases = tuple(float(p) for p in rng.uniform(0, 2 * math.pi, n_terms))
    else:
        amps, waves, phases = (), (), ()
    road = Road(amps, waves, phases, lanes_right, lanes_left,
                lane_width_m=float(rng.uniform(3.0, 3.8)),
                parking_m=float(rng.choice([0.0, 2.3])),
                sidewalk_m=float(rng.uniform(2.0, 4.5)),
                dashed_centre=bool(rng.random() < 0.3 or lanes_left == 0))
    return SequenceParams(
        fov_deg=fov if fov_deg is None else float(fov_deg),
        camera_height_m=height if camera_height_m is None else float(camera_height_m),
        camera_pitch_rad=pitch if camera_pitch_rad is None else float(camera_pitch_rad),
        time_of_day=float(rng.uniform(0.0, 1.0)),
        overcast=bool(rng.random() < 0.3),
        night=bool(rng.random() < 0.12),
        fog_density_per_m=0.0 if rng.random() < 0.6 else float(rng.uniform(0.004, 0.04)),
        ego_speed_mps=float(rng.uniform(4.0, 14.0)),
        ego_lane=int(rng.integers(lanes_right)),
        traffic_density=float(rng.uniform(0.3, 1.5)),
        pedestrian_density=float(rng.uniform(0.3, 1.5)),
        road=road,
    )


def make_look(rng: np.random.Generator, params: SequenceParams, actors: ActorTable,
              width: int, height: int) -> Look:
    """Palette (ground materials, sky, actor paints), light, fog and noise of a sequence."""
    tod = params.time_of_day
    tint = np.array([1.0, 0.86 + 0.14 * tod, 0.72 + 0.28 * tod])  # warm light at dusk
    ground = np.zeros((FIRST_FREE_PAINT, 3))
    ground[0] = (rng.uniform(50, 90), rng.uniform(80, 120), rng.uniform(35, 60)) \
        if rng.random() < 0.6 else (rng.uniform(110, 150), rng.uniform(95, 125),
                                    rng.uniform(70, 95))
    asphalt = rng.uniform(55, 105)
    ground[1] = asphalt + rng.normal(0, 3, 3)
    ground[2] = rng.uniform(200, 240)
    ground[3] = (rng.uniform(200, 235), rng.uniform(160, 190), rng.uniform(30, 60))
    ground[4] = rng.uniform(130, 185) + rng.normal(0, 6, 3)
    ground[5] = rng.uniform(150, 200)
    horizon = np.array([rng.uniform(170, 215), rng.uniform(190, 225), rng.uniform(215, 245)])
    top = np.array([rng.uniform(40, 100), rng.uniform(90, 150), rng.uniform(180, 240)])
    if params.overcast:
        horizon = np.full(3, rng.uniform(170, 215))
        top = horizon * 0.85
    level = 0.55 + 0.5 * tod
    if params.night:
        tint = np.array([0.8, 0.87, 1.0])
        horizon = np.array([rng.uniform(30, 60), rng.uniform(35, 65), rng.uniform(55, 90)])
        top = np.array([8.0, 10.0, 25.0])
        level = float(rng.uniform(0.25, 0.4))
    horizon = horizon * tint
    top = top * tint
    ground[SKY] = horizon * (1.0 if params.night else level)
    palette = np.concatenate([ground * tint, np.asarray(actors.palette).reshape(-1, 3) * tint])
    palette[SKY] = ground[SKY]
    sun_elev = math.radians(5 + 55 * tod)
    sun_az = rng.uniform(0, 2 * math.pi)
    sun_dir = np.array([math.cos(sun_elev) * math.cos(sun_az),
                        math.cos(sun_elev) * math.sin(sun_az), math.sin(sun_elev)])
    sun = (0.15 if params.overcast or params.night else 0.55) * level
    ambient = (0.75 if params.overcast else 0.5) * level
    tile = cv2.resize(rng.uniform(0.8, 1.2, (32, 32)).astype(np.float32), (256, 256),
                      interpolation=cv2.INTER_LINEAR)
    tile *= rng.uniform(0.93, 1.07, (256, 256)).astype(np.float32)
    noise = 1.0 + rng.normal(0.0, rng.uniform(0.004, 0.025), (height + 16, width + 16))
    fog_rgb = (ground[SKY] * 0.9).astype(np.float32)
    top = top if params.night else top * level
    return Look(palette.astype(np.float32), SKY, top.astype(np.float32), sun_dir,
                float(ambient), float(sun), params.fog_density_per_m, fog_rgb, tile,
                noise.astype(np.float32))


def populate(stream: Stream, params: SequenceParams,
             num_frames: int) -> tuple[SequenceParams, ActorTable]:
    """Place scenery, traffic lights, signs, vehicles and pedestrians along the ego's route.

    Every group of actors (a lane's traffic, one side's buildings, one crossing's walkers...)
    draws from its own random stream ``stream(group)`` and is laid out from a fixed anchor, so
    a longer sequence only appends actors to each group. The appended ones lie outside the
    drawn road window during the shorter sequence's frames (each group's layout limit is
    chosen so), or, for crossing walkers, do not exist yet; hence the first frames of a
    longer sequence equal a shorter one's.

    Args:
        stream: maps a group number to a fresh generator, the same for the same number.
        params: the sequence's draws.
        num_frames: length of the sequence (how far the ego drives).

    Returns:
        The parameters with the road's crossings filled in, and the actors.
    """
    road = params.road
    duration = num_frames * FRAME_DT_S
    x_lo, x_hi = -BEHIND_M - 20.0, params.ego_speed_mps * duration + AHEAD_M + 20.0
    actors = ActorTable()
    rng = stream(1)
    crossings = []
    x = float(rng.uniform(25.0, 80.0))
    while x < x_hi:
        crossings.append(x)
        x += float(rng.uniform(60.0, 160.0))
    params = replace(params, road=replace(road, crossings_x_m=tuple(crossings)))
    _scenery(stream, params.road, actors, x_lo, x_hi)
    _signals(stream, params.road, actors, x_lo, x_hi)
    _traffic(stream, params, actors, duration)
    _pedestrians(stream, params, actors, duration, x_lo, x_hi)
    return params, actors


def _sides(road: Road) -> list[tuple[float, float]]:
    """(curb offset, outward sign) of the right and left roadside."""
    return [(road.right_edge_m, -1.0), (road.left_edge_m, 1.0)]


def _scenery(stream: Stream, road: Road, actors: ActorTable, x_lo: float, x_hi: float) -> None:
    for side, (curb, out) in enumerate(_sides(road)):
        walk_end = curb + out * (0.25 + road.sidewalk_m)
        # Buildings: blocks with gaps, set back from the sidewalk; some stretches are open.
        rng = stream(10 + side)
        x = x_lo + float(rng.uniform(0, 10))
        while x < x_hi:
            length = float(rng.uniform(8.0, 32.0))
            if rng.random() < 0.85:
                depth = float(rng.uniform(8.0, 20.0))
                setback = float(rng.uniform(0.0, 6.0))
                height = float(rng.uniform(4.0, 14.0) if rng.random() < 0.6
                               else rng.uniform(14.0, 40.0))
                d = walk_end + out * (setback + depth / 2)
                parts = building_parts(rng, length, depth, height)
                if out > 0:  # annexes point towards the road
                    parts = [((o[0], -o[1], o[2]), s, c, t) for o, s, c, t in parts]
                actors.add(None, parts, x + length / 2, d)
            x += length + float(rng.uniform(0.0, 10.0))
        # Trees and street lamps near the curb.
        rng = stream(12 + side)
        x = x_lo + float(rng.uniform(0, 8))
        while x < x_hi:
            d = curb + out * 0.6
            if rng.random() < 0.65:
                actors.add(None, tree_parts(rng), x, d)
            else:
                actors.add(None, pole_parts(float(rng.uniform(6.0, 8.5)), 1.5, -out), x, d)
            x += float(rng.uniform(7.0, 30.0))


def _signals(stream: Stream, road: Road, actors: ActorTable, x_lo: float, x_hi: float) -> None:
    # Traffic lights before each crossing, facing the traffic that approaches it.
    for i, xc in enumerate(road.crossings_x_m):
        rng = stream(1000 + i)
        actors.group = 1000 + i
        for (curb, out), facing, dx in zip(_sides(road), (math.pi, 0.0), (-3.0, 3.0),
                                           strict=True):
            if out > 0 and road.lanes_left == 0:
                continue
            d_pole = curb + out * 0.4
            bottom = float(rng.uniform(3.0, 5.0))
            overhead = rng.random() < 0.5
            reach = float(rng.uniform(2.5, 4.5)) if overhead else 0.0
            actors.add(None, pole_parts(bottom + (1.1 if overhead else 0.0), reach, -out),
                       xc + dx, d_pole)
            d_light = d_pole - out * reach
            actors.add("traffic_light", traffic_light_parts(rng, bottom), xc + dx, d_light,
                       yaw_off=facing)
    # Signs along both sides, mostly facing the traffic of their side.
    for side, (curb, out) in enumerate(_sides(road)):
        rng = stream(20 + side)
        actors.group = 20 + side
        x = x_lo + float(rng.uniform(0, 30))
        while x < x_hi:
            d = curb + out * 0.45
            bottom = float(rng.uniform(1.9, 2.4))
            facing = (math.pi if out < 0 else 0.0) + (math.pi if rng.random() < 0.15 else 0.0)
            actors.add(None, pole_parts(bottom + 0.5), x, d)
            actors.add("traffic_sign", traffic_sign_parts(rng, bottom), x, d + out * 0.03,
                       yaw_off=facing)
            x += float(rng.uniform(20.0, 80.0))


def _vehicle(rng: np.random.Generator, outer: bool, kinds: list[str] | None = None,
             probs: list[float] | None = None) -> tuple:
    """A random vehicle kind, its parts and its length."""
    if kinds is None:
        kinds = ["car", "truck", "bus", "motorcycle"] + (["bicycle"] if outer else [])
        probs = [0.66, 0.1, 0.07, 0.1] + ([0.12] if outer else [])
    p = np.asarray(probs, dtype=np.float64)
    kind = str(kinds[int(rng.choice(len(kinds), p=p / p.sum()))])
    parts = VEHICLE_TEMPLATES[kind](rng)
    length = max(abs(o[0]) + s[0] / 2 for o, s, _, _ in parts) * 2
    return kind, parts, length


def _traffic(stream: Stream, params: SequenceParams, actors: ActorTable, duration: float) -> None:
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
                kind, parts, length = _vehicle(rng_dir, outer)
                pos = sign * (x + length / 2)
                if lane != params.ego_lane or not -10.0 - length < pos < 14.0 + length:
                    actors.add(kind, parts, pos, d + float(rng_dir.normal(0, 0.15)),
                               yaw_off=0.0 if direction > 0 else math.pi, vx=vx)
                x += length + float(rng_dir.uniform(6.0, 45.0)) * gap_scale
    if road.parking_m > 0:
        for side, (curb, out) in enumerate(_sides(road)):
            rng = stream(30 + side)
            actors.group = 30 + side
            x = -BEHIND_M - 20.0 + float(rng.uniform(0, 10))
            while x < v_e * duration + AHEAD_M + 20.0:
                kind, parts, length = _vehicle(rng, False, ["car", "truck", "motorcycle"],
                                               [0.85, 0.1, 0.05])
                if rng.random() < 0.7 * min(1.0, params.traffic_density):
                    actors.add(kind, parts, x + length / 2, curb - out * 1.15,
                               yaw_off=0.0 if out < 0 else math.pi)
                x += length + float(rng.uniform(1.0, 8.0))


def _pedestrians(stream: Stream, params: SequenceParams, actors: ActorTable, duration: float,
                 x_lo: float, x_hi: float) -> None:
    road = params.road
    density = params.pedestrian_density
    for side, (curb, out) in enumerate(_sides(road)):
        for line, frac in enumerate((0.5, 0.8)):
            group = 40 + 4 * side + 2 * line
            rng = stream(group)
            d = curb + out * (0.25 + road.sidewalk_m * frac)
            speed = float(rng.choice([-1.0, 1.0]) * rng.uniform(0.9, 1.6))
            reach = abs(speed) * duration
            for sign, limit in ((1.0, x_hi + reach), (-1.0, -(x_lo - reach))):
                rng_dir = rng if sign > 0 else stream(group + 1)
                actors.group = group + (0 if sign > 0 else 1)
                x = float(rng_dir.uniform(0, 5))
                while x < limit:
                    walking = rng_dir.random() < 0.8
                    actors.add("pedestrian", pedestrian_parts(rng_dir), sign * x,
                               d + float(rng_dir.normal(0, 0.1)),
                               yaw_off=(0.0 if speed > 0 else math.pi) if walking
                               else float(rng_dir.uniform(-math.pi, math.pi)),
                               vx=speed if walking else 0.0)
                    x += float(rng_dir.uniform(3.0, 40.0)) / density
    # Parked bicycles and motorcycles on the sidewalk next to the curb.
    for side, (curb, out) in enumerate(_sides(road)):
        rng = stream(50 + side)
        actors.group = 50 + side
        x = x_lo + float(rng.uniform(0, 30))
        while x < x_hi:
            kind = "bicycle" if rng.random() < 0.6 else "motorcycle"
            parts = (bicycle_parts if kind == "bicycle" else motorcycle_parts)(rng, rider=False)
            yaw = float(rng.choice([0.0, math.pi]))
            for k in range(int(rng.integers(1, 4))):  # a row of identical ones
                actors.add(kind, parts, x + 2.2 * k, curb + out * 0.55, yaw_off=yaw)
            x += float(rng.uniform(15.0, 90.0)) / density
    # Pedestrians crossing at zebra crossings, timed not to meet the ego on its lane.
    d_right = road.right_edge_m - 0.25 - road.sidewalk_m * 0.3
    d_left = road.left_edge_m + 0.25 + road.sidewalk_m * 0.3
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
            parts = pedestrian_parts(rng)
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
