"""Domain randomization of the synthetic world: every option reachable, labels exact under all.

Appearance (sky, shadows, camera response, noise) must never move depth, instances or boxes;
shape and camera options may, but the labels must still agree with the pixels exactly.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sim_helpers import assert_labels_match_maps

from depthssd_sim import HELDOUT_SKIES, SKIES, TRAIN_SKIES, SyntheticWorld, WorldConfig
from depthssd_sim.textures import HELDOUT_ONLY

W, H = 128, 72


def _frames(seed=0, seq="a", n=2, **kwargs):
    return list(SyntheticWorld(seed, W, H, **kwargs).sequence(seq, n))


def _geometry_equal(a, b):
    return (np.array_equal(a.depth_m, b.depth_m) and np.array_equal(a.instance, b.instance)
            and np.array_equal(a.semantic, b.semantic)
            and [o.box_xyxy for o in a.objects] == [o.box_xyxy for o in b.objects]
            and [o.distance_m for o in a.objects] == [o.distance_m for o in b.objects])


@pytest.mark.parametrize("options", [
    {},
    {"look": "heldout"},
    {"sky": "night"},
    {"sky": "sunset", "camera_roll_rad": -0.05},
    {"look": "heldout", "sky": "dust", "sensor_aspect": "4:3"},
    {"look": "heldout", "sky": "violet_dusk", "fov_range_deg": [110, 120]},
    {"camera_pitch_range_deg": [8, 10], "camera_height_range_m": [2.8, 3.0]},
], ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default")
def test_labels_exact_under_every_randomization(options):
    frames = []
    for seq in range(3):
        frames += list(SyntheticWorld(seq, 160, 90, **options).sequence(seq, 2))
    for f in frames:
        assert_labels_match_maps(f, box_slack_m=3e-3)
    assert sum(len(f.objects) for f in frames) > 10


@pytest.mark.parametrize("options", [{"shadows": False}, {"camera_effects": False},
                                     {"sensor_noise": False}, {"sky": "night"},
                                     {"sky": "overcast"}, {"sky": "clear"}])
def test_appearance_options_never_move_depth_instances_or_boxes(options):
    """Shadows, skies, noise and the camera response change colours only."""
    for seq in ("p", "q"):
        base = _frames(7, seq, 3, sky="sunset")
        other = _frames(7, seq, 3, **{"sky": "sunset", **options})
        for a, b in zip(base, other, strict=True):
            assert _geometry_equal(a, b)
        assert any(a.rgb.tobytes() != b.rgb.tobytes() for a, b in zip(base, other,
                                                                        strict=True))


def test_shadows_darken_ground_only():
    """With a low sun, turning shadows off brightens ground pixels and nothing else."""
    found = False
    for seed in range(6):
        on = _frames(seed, "s", 1, sky="sunset", camera_effects=False, sensor_noise=False)[0]
        off = _frames(seed, "s", 1, sky="sunset", camera_effects=False, sensor_noise=False,
                      shadows=False)[0]
        assert _geometry_equal(on, off)
        diff = on.rgb.astype(int) - off.rgb.astype(int)
        changed = np.any(diff != 0, axis=2)
        # Only ground (no object, no part: depth on the ground plane) changes, and it darkens.
        assert np.all(on.instance[changed] == 0)
        assert np.all(diff[changed] <= 0)
        found |= changed.sum() > 50
    assert found


def test_each_option_reaches_the_frames():
    """Every WorldConfig option changes what comes out (draws, intrinsics, pose or pixels)."""
    base = SyntheticWorld(5, W, H, sky="clear")  # a sunny sky: shadows show
    ref = next(base.sequence(0, 1))
    ref_params = base.sequence_params(0)
    cases = {
        "look": {"look": "heldout"},
        "camera_roll_rad": {"camera_roll_rad": 0.1},
        "sensor_aspect": {"sensor_aspect": "1:1"},
        "fov_range_deg": {"fov_range_deg": [119.0, 120.0]},
        "camera_height_range_m": {"camera_height_range_m": [2.9, 3.0]},
        "camera_pitch_range_deg": {"camera_pitch_range_deg": [9.0, 10.0]},
        "camera_roll_range_deg": {"camera_roll_range_deg": [-0.1, 0.1]},
        "sensor_aspects": {"sensor_aspects": ["2:1"]},
        "sky": {"sky": "night"},
        "shadows": {"shadows": False},
        "camera_effects": {"camera_effects": False},
        "distractors": {"distractors": False},
        "sensor_noise": {"sensor_noise": False},
        "fov_deg": {"fov_deg": 70.0},
        "camera_height_m": {"camera_height_m": 1.1},
        "camera_pitch_rad": {"camera_pitch_rad": 0.1},
    }
    assert set(cases) | {"seed", "width", "height"} == set(WorldConfig().to_dict())
    for name, kwargs in cases.items():
        world = SyntheticWorld(5, W, H, **{"sky": "clear", **kwargs})
        frame = next(world.sequence(0, 1))
        changed = frame.rgb.tobytes() != ref.rgb.tobytes() \
            or world.sequence_params(0) != ref_params
        assert changed, name
    # The drawn ranges are honoured.
    p = SyntheticWorld(5, W, H, fov_range_deg=[119.0, 120.0]).sequence_params(0)
    assert 119.0 <= p.fov_deg <= 120.0
    p = SyntheticWorld(5, W, H, camera_pitch_range_deg=[9.0, 10.0]).sequence_params(0)
    assert math.radians(9.0) <= p.camera_pitch_rad <= math.radians(10.0)
    p = SyntheticWorld(5, W, H, sensor_aspects=["2:1"]).sequence_params(0)
    assert p.sensor_aspect == 2.0


def test_distractors_option_removes_street_furniture_only():
    """Without distractors there is less unlabelled clutter; walkers and traffic stay."""
    on = SyntheticWorld(2, W, H)._setup(1, 200)[3]
    off = SyntheticWorld(2, W, H, distractors=False)._setup(1, 200)[3]
    assert sum(c == 0 for c in off.category) < sum(c == 0 for c in on.category)
    moving = {o for o, v in zip(on.owner, on.vx, strict=True) if o > 0 and v != 0}
    assert moving and moving == {o for o, v in zip(off.owner, off.vx, strict=True)
                                 if o > 0 and v != 0}


def test_config_round_trips_through_json_and_refuses_bad_values():
    config = WorldConfig(seed=3, look="heldout", sensor_aspects=("4:3",), sky="dust")
    again = WorldConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config
    world = SyntheticWorld.from_config(again)
    assert world.config == config
    with pytest.raises(ValueError, match="unknown world option"):
        WorldConfig.from_dict({"lok": "heldout"})
    with pytest.raises(ValueError, match="unknown world option"):
        SyntheticWorld(0, W, H, lok="heldout")
    for bad, name in [({"look": "test"}, "look"), ({"sky": "dust"}, "sky"),
                      ({"sensor_aspect": "4x3"}, "sensor_aspect"),
                      ({"fov_range_deg": [120, 50]}, "fov_range_deg"),
                      ({"camera_roll_rad": 2.0}, "camera_roll_rad"),
                      ({"sensor_aspects": []}, "sensor_aspects"),
                      ({"shadows": "yes"}, "shadows")]:
        with pytest.raises(ValueError, match=name):
            SyntheticWorld(0, W, H, **bad)


def test_training_look_never_draws_held_out_families():
    train = SyntheticWorld(4, W, H)
    held = SyntheticWorld(4, W, H, look="heldout")
    train_skies, held_skies, train_fam, held_fam = set(), set(), set(), set()
    for seq in range(14):
        a, b = train.look_info(seq), held.look_info(seq)
        train_skies.add(a.sky)
        held_skies.add(b.sky)
        train_fam |= set(a.families.values())
        held_fam |= set(b.families.values())
    assert train_skies <= set(TRAIN_SKIES) and len(train_skies) >= 3
    assert held_skies & set(HELDOUT_SKIES)
    assert not train_fam & HELDOUT_ONLY
    assert held_fam & HELDOUT_ONLY
    assert set(SKIES["train"]) == set(TRAIN_SKIES)


def test_held_out_world_is_deterministic_and_prefix_stable():
    world = SyntheticWorld(9, 96, 54, look="heldout")
    two = list(world.sequence("h", 2))
    five = list(world.sequence("h", 5))
    for a, b in zip(two, five[:2], strict=True):
        assert a.rgb.tobytes() == b.rgb.tobytes() and _geometry_equal(a, b)
