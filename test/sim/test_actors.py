"""Actor templates and motion of the synthetic world (shapes, sizes, walking, crossing)."""

from __future__ import annotations

import numpy as np
import pytest

from depthssd_core.classes import category_id
from depthssd_sim.actors import CAST_PARTS, ActorTable, Part
from depthssd_sim.people import HELDOUT_EXTRAS, choose_extra, pedestrian_parts
from depthssd_sim.props import (
    FURNITURE,
    barrier_parts,
    cone_parts,
    traffic_light_parts,
    traffic_sign_parts,
    tree_parts,
)
from depthssd_sim.road import Road
from depthssd_sim.scene import TEX_EMISSIVE, TEX_GLASS, TEX_KIND_MASK
from depthssd_sim.vehicles import HELDOUT_STYLES, STYLES, VEHICLE_TEMPLATES, choose_style

# (length, width, height) bounds in metres of each class's labelled box, over every style.
SIZES = {
    "car": ((3.7, 5.95), (1.65, 2.1), (1.3, 2.55)),
    "truck": ((6.5, 17.1), (2.3, 2.6), (3.0, 4.1)),
    "bus": ((10.0, 18.6), (2.5, 2.6), (2.9, 4.5)),
    "motorcycle": ((1.6, 2.3), (0.6, 0.8), (1.4, 1.8)),
    "bicycle": ((1.6, 1.9), (0.5, 0.6), (1.6, 1.95)),
}


def _boxes(table, t_s=0.0):
    _, labelled, _ = table.at_time(t_s, Road(), -1e9, 1e9, 8)
    return labelled


@pytest.mark.parametrize("heldout", [False, True])
@pytest.mark.parametrize("kind", sorted(SIZES))
def test_vehicle_sizes_are_realistic(kind, heldout):
    rng = np.random.default_rng(1)
    table = ActorTable()
    for i in range(60):
        table.add(kind, VEHICLE_TEMPLATES[kind](rng, heldout=heldout), 30.0 * i, 0.0)
    for box in _boxes(table):
        assert box.category_id == category_id(kind)
        for value, (lo, hi) in zip(box.size_m, SIZES[kind], strict=True):
            assert lo <= value <= hi, (kind, box.size_m)


@pytest.mark.parametrize("kind, style", [(k, s) for k, (train, _, held) in STYLES.items()
                                         for s in train + held if k in ("car", "truck",
                                                                        "bus")])
def test_motor_vehicles_have_wheels_body_windows_and_lights(kind, style):
    """Every car, truck and bus style: dark wheel blocks on the ground, a painted body, glass
    and light parts; its labelled box is exactly the union of its parts."""
    parts = VEHICLE_TEMPLATES[kind](np.random.default_rng(3), style=style)
    assert len(parts) >= 7
    bottoms = [p.offset[2] - p.size[2] / 2 for p in parts]
    wheels = [p for p, b in zip(parts, bottoms, strict=True) if abs(b) < 1e-9
              and max(p.rgb) < 40]
    assert len(wheels) >= 2
    assert any((p.texture & TEX_KIND_MASK) == TEX_GLASS for p in parts)
    assert sum((p.texture & TEX_EMISSIVE) != 0 for p in parts) >= 2
    table = ActorTable()
    table.add(kind, parts, 0.0, 0.0)
    box = _boxes(table)[0]
    lo = np.min([np.subtract(p.offset, np.divide(p.size, 2)) for p in parts], axis=0)
    hi = np.max([np.add(p.offset, np.divide(p.size, 2)) for p in parts], axis=0)
    np.testing.assert_allclose(box.size_m, hi - lo, atol=1e-12)
    np.testing.assert_allclose(box.center_m, (lo + hi) / 2, atol=1e-12)


@pytest.mark.parametrize("kind", ["motorcycle", "bicycle"])
def test_two_wheelers_have_riders_or_stand_parked(kind):
    rng = np.random.default_rng(4)
    ridden = VEHICLE_TEMPLATES[kind](rng, rider=True)
    parked = VEHICLE_TEMPLATES[kind](rng, rider=False)
    assert len(ridden) >= len(parked) + 4  # thighs, shins, torso, arms, head
    top = max(p.offset[2] + p.size[2] / 2 for p in ridden)
    assert top > max(p.offset[2] + p.size[2] / 2 for p in parked) + 0.4


def test_held_out_styles_and_extras_only_in_the_held_out_look():
    rng = np.random.default_rng(5)
    for kind in STYLES:
        train = {choose_style(rng, kind, False) for _ in range(400)}
        held = {choose_style(rng, kind, True) for _ in range(400)}
        assert not train & HELDOUT_STYLES
        assert train == set(STYLES[kind][0])
        assert held == set(STYLES[kind][0]) | set(STYLES[kind][2])
    assert {choose_extra(rng, False) for _ in range(300)} == {None}
    assert {choose_extra(rng, True) for _ in range(300)} == {None, *HELDOUT_EXTRAS}


def test_pedestrians_have_head_torso_arms_legs_from_children_to_tall_adults():
    rng = np.random.default_rng(2)
    table = ActorTable()
    counts = []
    for i in range(400):
        parts = pedestrian_parts(rng)
        counts.append(len(parts))
        table.add("pedestrian", parts, 5.0 * i, 0.0)
    assert min(counts) >= 6  # two legs, torso, two arms, head (+ hair, cap, backpack)
    heights = [b.size_m[2] for b in _boxes(table)]
    assert min(heights) < 1.15 and max(heights) > 1.92
    assert min(heights) >= 0.95 and max(heights) <= 2.0 and 1.6 < np.median(heights) < 1.8


def test_signal_and_sign_heights():
    rng = np.random.default_rng(2)
    table = ActorTable()
    table.add("traffic_light", traffic_light_parts(rng, 4.0), 0.0, 0.0)
    table.add("traffic_sign", traffic_sign_parts(rng, 2.0), 5.0, 0.0)
    light, sign = _boxes(table)
    assert light.center_m[2] - light.size_m[2] / 2 == pytest.approx(4.0)
    assert sign.center_m[2] - sign.size_m[2] / 2 == pytest.approx(2.0, abs=0.02)


def test_distractors_are_unlabelled_and_stand_on_the_ground():
    rng = np.random.default_rng(6)
    table = ActorTable()
    makers = [cone_parts, barrier_parts, tree_parts, *FURNITURE.values()]
    for i, make in enumerate(makers * 5):
        table.add(None, make(rng), 3.0 * i, 0.0, caster=CAST_PARTS)
    parts, labelled, casters = table.at_time(0.0, Road(), -1e9, 1e9, 8)
    assert not labelled and np.all(parts.owner < 0)
    bottoms = parts.center_m[:, 2] - parts.half_m[:, 2]
    per_actor = [bottoms[parts.owner == o].min() for o in np.unique(parts.owner)]
    np.testing.assert_allclose(per_actor, 0.0, atol=1e-9)
    assert len(casters.center_m) > 0


def test_walkers_swing_legs_and_arms_inside_their_box_and_standers_do_not():
    rng = np.random.default_rng(3)
    table = ActorTable()
    parts = pedestrian_parts(rng)
    n = len(parts)
    table.add("pedestrian", parts, 0.0, 0.0, vx=1.4)
    table.add("pedestrian", parts, 50.0, 0.0)  # standing
    limbs = []
    for t in np.arange(0.0, 1.0, 0.05):
        boxes, labelled, _ = table.at_time(t, Road(), -1e9, 1e9, 8)
        walker = labelled[0]
        # Parts 0, 1 are the legs, 2 the torso, 3, 4 the arms; x relative to the torso.
        x = boxes.center_m[:, 0]
        limbs.append((x[0] - x[2], x[1] - x[2], x[3] - x[2], x[4] - x[2],
                      x[n] - x[n + 2], x[n + 3] - x[n + 2]))
        # Every part stays inside the labelled box.
        for p in range(n):
            dx = abs(boxes.center_m[p, 0] - walker.center_m[0]) + boxes.half_m[p, 0]
            assert dx <= walker.size_m[0] / 2 + 1e-9
    limbs = np.array(limbs)
    assert np.ptp(limbs[:, 0]) > 0.15  # the walker's legs move...
    np.testing.assert_allclose(limbs[:, 0], -limbs[:, 1], atol=1e-9)  # ...in opposition
    assert np.all(limbs[:, 0] * limbs[:, 2] <= 1e-12)  # the left arm against the left leg
    assert np.all(limbs[:, 4:] == 0.0)  # the standing pedestrian's do not move


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
            table.add(None, [Part((0.0, 0.0, 1.0), (1.0, 1.0, 2.0), (90.0, 90.0, 90.0))],
                      100.0 + i, 5.0)
        table.group = 40
        table.add("pedestrian", parts, 0.0, 0.0, vx=1.3)
        boxes, _, _ = table.at_time(0.7, Road(), -1e9, 1e9, 8)
        legs.append(boxes.center_m[n_before:n_before + 2].copy())
    np.testing.assert_array_equal(legs[0], legs[1])


def test_moving_parts_carry_their_texture_offset():
    """The texture u offset follows a moving part, so its pattern moves with it."""
    table = ActorTable()
    table.add("car", VEHICLE_TEMPLATES["car"](np.random.default_rng(8)), 0.0, 0.0, vx=10.0)
    a, _, _ = table.at_time(0.0, Road(), -1e9, 1e9, 8)
    b, _, _ = table.at_time(0.5, Road(), -1e9, 1e9, 8)
    np.testing.assert_allclose(b.uv_offset - a.uv_offset, 8.0 * 5.0, atol=1e-9)
