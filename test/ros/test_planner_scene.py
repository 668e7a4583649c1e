"""The example planner on scripted scenes: cars parked beside the lane, a car stopping ahead,
a car cutting in.

The scenes are rendered with the synthetic world (``render_scene``: a straight road of 3.5 m
lanes, the ego camera 2 m high driving at 8 m/s, 640x360 at 90 degrees, 20 Hz). Each frame's
detections are what the perception node would publish for a perfect detector: the box of the
visible pixels and the point on the box-centre ray at the object's distance (as the synthetic
camera's ground truth). That geometry is the hard part for a planner: a parked car seen close
and from the side has a box that takes in its side, so its point is only 0.2-0.3 m outside the
1.8 m corridor. The detections are then perturbed like a trained model's distances (a bias per
object and noise per frame, seeded) and thinned to the demo's detection rate (every third
frame). Asserted: no ``brake`` for a parked car (and, with perfect detections, no ``caution``
either), ``brake`` for the car that stops ahead while the ego is still 8-10 m from it,
``caution`` for a car cutting in soon after it enters the lane, and log lines without NaN.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from depthssd_core.geometry import backproject
from depthssd_ros.planner_node import CorridorPlanner, Obstacle, describe_decision
from depthssd_sim.road import Road
from depthssd_sim.world import PlacedObject, Scene, render_scene

RATE_HZ = 20.0
EGO_SPEED_MPS = 8.0
CAR_SIZE_M = (4.5, 1.8, 1.5)
#: Parked cars: centre 1.15 m inside the curb of a 2.3 m parking strip beside a 3.5 m lane, as
#: the synthetic world parks them (world y is to the left; these stand on the right).
PARKED_Y_M = -(1.75 + 1.15)
PARKED_X_M = (14.0, 20.0, 26.0, 37.0, 43.0, 49.0)
LEAD_START_M, LEAD_BRAKE_AT_S, LEAD_DECEL_MPS2 = 30.0, 1.0, 4.0


def _lead_x_m(t_s: float) -> float:
    """The lead car: at the ego's speed, then braking from LEAD_BRAKE_AT_S to a stop."""
    if t_s < LEAD_BRAKE_AT_S:
        return LEAD_START_M + EGO_SPEED_MPS * t_s
    tb = min(t_s - LEAD_BRAKE_AT_S, EGO_SPEED_MPS / LEAD_DECEL_MPS2)
    return (LEAD_START_M + EGO_SPEED_MPS * LEAD_BRAKE_AT_S + EGO_SPEED_MPS * tb
            - 0.5 * LEAD_DECEL_MPS2 * tb * tb)


def _cut_in_y_m(t_s: float) -> float:
    """Lateral position of a car changing from the left lane into the ego's over 2 s from 1 s."""
    a = min(max((t_s - 1.0) / 2.0, 0.0), 1.0)
    return 3.5 * (1.0 - (3.0 * a * a - 2.0 * a ** 3))


def _render(objects_at, seconds: float) -> list[tuple[float, object]]:
    frames = []
    for i in range(round(seconds * RATE_HZ)):
        t = i / RATE_HZ
        scene = Scene(width=640, height=360, fov_deg=90.0, camera_height_m=2.0,
                      camera_x_m=EGO_SPEED_MPS * t, objects=objects_at(t),
                      road=Road(lanes_right=2, lanes_left=2, lane_width_m=3.5, parking_m=2.3))
        frames.append((t, render_scene(scene, timestamp_s=t)))
    return frames


@pytest.fixture(scope="module")
def parked_and_stopping():
    """Frames, the lead car's instance id and the parked cars' ids."""
    def objects_at(t):
        parked = [PlacedObject("car", (x, PARKED_Y_M, 0.75), CAR_SIZE_M) for x in PARKED_X_M]
        lead = PlacedObject("car", (_lead_x_m(t), 0.0, 0.75), CAR_SIZE_M, color_rgb=(40, 60, 160))
        return [*parked, lead]
    # render_scene numbers labelled objects 1, 2, ... in order: the lead car is the last.
    return _render(objects_at, 5.0), str(len(PARKED_X_M) + 1)


@pytest.fixture(scope="module")
def cutting_in():
    def objects_at(t):
        x = EGO_SPEED_MPS * t + 18.0 - 3.0 * t  # 18 m ahead, 3 m/s slower than the ego
        return [PlacedObject("car", (x, _cut_in_y_m(t), 0.75), CAR_SIZE_M)]
    return _render(objects_at, 5.0)


def _drive(frames, bias: float = 0.0, noise: float = 0.0, seed: int = 0, step: int = 1):
    """Run the planner over the frames; return every decision and the changes' log lines."""
    rng = np.random.default_rng(seed)
    biases: dict[int, float] = {}
    planner = CorridorPlanner()
    decisions, lines = [], []
    for t, frame in frames[::step]:
        obstacles = []
        for obj in frame.objects:
            scale = 1.0 + biases.setdefault(obj.instance_id, rng.uniform(-bias, bias))
            distance_m = obj.distance_m * (scale + rng.normal(0.0, noise))
            x1, y1, x2, y2 = obj.box_xyxy
            point = backproject(0.5 * (x1 + x2), 0.5 * (y1 + y2), distance_m, frame.intrinsics)
            obstacles.append(Obstacle(str(obj.instance_id), "car",
                                      tuple(float(v) for v in point)))
        decision = planner.update(t, obstacles)
        decisions.append(decision)
        if decision.changed:
            lines.append(describe_decision(decision))
    return decisions, lines


def _first(decisions, advisory: str):
    return next((d for d in decisions if d.advisory == advisory), None)


def test_perfect_detections_brake_for_the_stopped_car_only(parked_and_stopping):
    frames, lead = parked_and_stopping
    decisions, lines = _drive(frames)
    for d in decisions:
        if d.advisory != "none":
            assert d.nearest is not None and d.nearest.track_id == lead, describe_decision(d)
    brake = _first(decisions, "brake")
    assert brake is not None, lines
    # The lead car stands from 3 s on: the true time to contact falls to 2 s when the gap is
    # 16 m (t = 3.47 s); the fit over 1 s trails a little, but the ego is still 10 m away.
    assert brake.stamp_s < 3.8, lines
    assert brake.nearest_distance_m >= 10.0, describe_decision(brake)
    assert _first(decisions, "caution").stamp_s < brake.stamp_s
    assert lines and not any("nan" in line.lower() for line in lines), lines


@pytest.mark.parametrize("step", [1, 3], ids=["20Hz", "6.7Hz"])
@pytest.mark.parametrize("seed", range(6))
def test_noisy_distances_still_pass_the_parked_cars(parked_and_stopping, seed, step):
    """Per-object distance bias up to 20 % and 8 % per-frame noise (the shipped model's median
    error is 9 %)."""
    frames, lead = parked_and_stopping
    decisions, lines = _drive(frames, bias=0.2, noise=0.08, seed=seed, step=step)
    # (A caution may come for the parked car that is 12 m ahead in the very first frame: a
    # track without history has only that frame's offset.)
    parked = {d.nearest.track_id for d in decisions if d.advisory == "brake" and d.nearest
              and d.nearest.track_id != lead}
    assert not parked, lines
    brake = _first(decisions, "brake")
    assert brake is not None and brake.nearest.track_id == lead, lines
    assert brake.nearest_distance_m >= 8.0, describe_decision(brake)
    assert not any("nan" in line.lower() for line in lines), lines


def test_a_car_cutting_in_raises_caution_soon_after_it_enters_the_lane(cutting_in):
    decisions, lines = _drive(cutting_in)
    entered_s = next(t for t, _ in cutting_in if abs(_cut_in_y_m(t)) <= 1.8)
    caution = _first(decisions, "caution")
    assert caution is not None and caution.stamp_s - entered_s <= 0.75, (entered_s, lines)
    brake = _first(decisions, "brake")
    assert brake is not None and brake.nearest_distance_m >= 5.0, lines
    assert all(math.isfinite(d.nearest_distance_m) or d.nearest is None for d in decisions)
