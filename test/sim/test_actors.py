"""Actor templates and motion of the synthetic world (sizes, walking, crossing)."""

from __future__ import annotations

import numpy as np
import pytest

from depthssd_core.classes import category_id
from depthssd_sim.actors import (
    VEHICLE_TEMPLATES,
    ActorTable,
    pedestrian_parts,
    traffic_light_parts,
    traffic_sign_parts,
)
from depthssd_sim.road import Road

# (length, width, height) bounds in metres of each class's labelled box.
SIZES = {
    "car": ((3.8, 5.0), (1.65, 1.96), (1.35, 1.86)),
    "truck": ((6.5, 10.0), (2.4, 2.62), (3.0, 4.0)),
    "bus": ((10.5, 13.1), (2.5, 2.63), (3.0, 3.41)),
    "motorcycle": ((1.6, 2.3), (0.7, 0.9), (1.4, 1.9)),
    "bicycle": ((1.6, 1.85), (0.4, 0.5), (1.6, 2.0)),
}


def _boxes(table, t_s=0.0):
    _, labelled = table.at_time(t_s, Road(), -1e9, 1e9, 8)
    return labelled


@pytest.mark.parametrize("kind", sorted(SIZES))
def test_vehicle_sizes_are_realistic(kind):
    rng = np.random.default_rng(1)
    table = ActorTable()
    for i in range(30):
        table.add(kind, VEHICLE_TEMPLATES[kind](rng), 10.0 * i, 0.0)
    for box in _boxes(table):
        assert box.category_id == category_id(kind)
        for value, (lo, hi) in zip(box.size_m, SIZES[kind], strict=True):
            assert lo <= value <= hi, (kind, box.size_m)


def test_pedestrian_signal_and_sign_heights():
    rng = np.random.default_rng(2)
    table = ActorTable()
    for i in range(30):
        table.add("pedestrian", pedestrian_parts(rng), 5.0 * i, 0.0)
    heights = [b.size_m[2] for b in _boxes(table)]
    assert min(heights) >= 1.1 and max(heights) <= 1.95 and np.median(heights) > 1.5
    table = ActorTable()
    table.add("traffic_light", traffic_light_parts(rng, 4.0), 0.0, 0.0)
    table.add("traffic_sign", traffic_sign_parts(rng, 2.0), 5.0, 0.0)
    light, sign = _boxes(table)
    assert light.center_m[2] - light.size_m[2] / 2 == pytest.approx(4.0)
    assert sign.center_m[2] - sign.size_m[2] / 2 == pytest.approx(2.0, abs=0.02)


def test_walkers_swing_legs_inside_their_box_and_standers_do_not():
    rng = np.random.default_rng(3)
    table = ActorTable()
    parts = pedestrian_parts(rng)
    table.add("pedestrian", parts, 0.0, 0.0, vx=1.4)
    table.add("pedestrian", parts, 50.0, 0.0)  # standing
    legs = []
    for t in np.arange(0.0, 1.0, 0.05):
        boxes, labelled = table.at_time(t, Road(), -1e9, 1e9, 8)
        walker = labelled[0]
        # Legs are parts 0 and 1 of each actor; their x relative to the body (part 2).
        legs.append((boxes.center_m[0, 0] - boxes.center_m[2, 0],
                     boxes.center_m[1, 0] - boxes.center_m[2, 0],
                     boxes.center_m[4, 0] - boxes.center_m[6, 0]))
        # Every part stays inside the labelled box.
        for p in range(3):
            dx = abs(boxes.center_m[p, 0] - walker.center_m[0]) + boxes.half_m[p, 0]
            assert dx <= walker.size_m[0] / 2 + 1e-9
    legs = np.array(legs)
    assert np.ptp(legs[:, 0]) > 0.15  # the walker's legs move...
    np.testing.assert_allclose(legs[:, 0], -legs[:, 1], atol=1e-9)  # ...in opposition
    assert np.all(legs[:, 2] == 0.0)  # the standing pedestrian's do not


def test_crossing_pedestrian_stops_at_the_far_curb():
    table = ActorTable()
    table.add("pedestrian", pedestrian_parts(np.random.default_rng(4)), 20.0, -9.0, vd=1.5,
              t0=2.0, dmin=-9.0, dmax=9.0)
    ys = [_boxes(table, t)[0].center_m[1] for t in (0.0, 2.0, 8.0, 14.0, 20.0)]
    assert ys[0] == ys[1] == pytest.approx(-9.0)
    assert ys[2] == pytest.approx(0.0)
    assert ys[3] == ys[4] == pytest.approx(9.0)


def test_actor_exists_only_between_t_on_and_t_off():
    table = ActorTable()
    table.add("pedestrian", pedestrian_parts(np.random.default_rng(5)), 0.0, 0.0, t_on=1.0,
              t_off=3.0)
    table.add("car", VEHICLE_TEMPLATES["car"](np.random.default_rng(6)), 10.0, 0.0)
    walker = table.owner[0]
    present = [walker in {b.instance_id for b in _boxes(table, t)}
               for t in (0.0, 0.95, 1.0, 2.0, 2.95, 3.0, 9.0)]
    assert present == [False, False, True, True, True, False, False]
    assert all(len(_boxes(table, t)) >= 1 for t in (0.0, 2.0, 9.0))  # the car always is


def test_walker_gait_does_not_depend_on_its_row_in_the_table():
    """Legs follow the walker's id, not how many actors other groups added before it."""
    parts = pedestrian_parts(np.random.default_rng(7))
    legs = []
    for n_before in (0, 5):
        table = ActorTable()
        for i in range(n_before):  # unlabelled background of another group
            table.add(None, [((0.0, 0.0, 1.0), (1.0, 1.0, 2.0), (90.0, 90.0, 90.0), 0)],
                      100.0 + i, 5.0)
        table.group = 40
        table.add("pedestrian", parts, 0.0, 0.0, vx=1.3)
        boxes, _ = table.at_time(0.7, Road(), -1e9, 1e9, 8)
        legs.append(boxes.center_m[n_before:n_before + 2].copy())
    np.testing.assert_array_equal(legs[0], legs[1])
