"""``depthssd-data synth`` world flags: the held-out look and the randomization switches."""

from __future__ import annotations

import math

import numpy as np

from depthssd_sim import SyntheticWorld
from depthssd_train.cli.data import main
from depthssd_train.dataset.format import load_index, read_rgb_png
from depthssd_train.dataset.validate import validate_dataset

SIZE = ["--width", "96", "--height", "54", "--no-progress"]


def test_heldout_look_and_camera_flags_reach_the_world(tmp_path):
    out = tmp_path / "ds"
    args = ["synth", "--out", str(out), "--split", "test", "--sequences", "2", "--frames", "2",
            "--seed", "3", *SIZE, "--look", "heldout", "--camera-height", "2.2",
            "--camera-pitch-deg", "4", "--camera-roll-deg", "-2", "--sensor-aspect", "4:3",
            "--sky", "dust", "--no-shadows", "--no-camera-effects", "--no-distractors",
            "--world-options", '{"fov_range_deg": [70, 80]}']
    assert main(args) == 0
    assert validate_dataset(out) == []
    world = SyntheticWorld(3, 96, 54, look="heldout", camera_height_m=2.2,
                           camera_pitch_rad=math.radians(4), camera_roll_rad=math.radians(-2),
                           sensor_aspect="4:3", sky="dust", shadows=False,
                           camera_effects=False, distractors=False, fov_range_deg=[70, 80])
    expected = [f for k in range(2) for f in world.sequence(f"test0003_{k:04d}", 2)]
    records = load_index(out, "test")
    assert len(records) == 4
    for rec, frame in zip(records, expected, strict=True):
        np.testing.assert_array_equal(read_rgb_png(rec.image_path), frame.rgb)
        assert rec.intrinsics == frame.intrinsics
        assert rec.intrinsics.fy == np.float64(0.75) * rec.intrinsics.fx * 96 / 54 * 54 / 96
        assert 70 <= frame.intrinsics.hfov_deg <= 80


def test_bad_world_flags_fail_with_one_line_before_writing(tmp_path, capsys):
    out = tmp_path / "ds"
    base = ["synth", "--out", str(out), "--sequences", "1", "--frames", "1", *SIZE]
    assert main([*base, "--sky", "hail"]) == 1
    assert "sky must be one of" in capsys.readouterr().err
    assert main([*base, "--world-options", "{not json"]) == 1
    assert "--world-options is not valid JSON" in capsys.readouterr().err
    assert main([*base, "--world-options", '{"lok": 1}']) == 1
    assert "unknown world option" in capsys.readouterr().err
    assert not out.exists()
