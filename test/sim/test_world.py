"""Sequences of the procedural synthetic world: determinism, variation and label consistency."""

from __future__ import annotations

import itertools
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sim_helpers import assert_labels_match_maps

from depthssd_core.classes import NUM_CLASSES, category_id
from depthssd_core.geometry import CameraIntrinsics, flat_ground_depth
from depthssd_sim import FRAME_DT_S, SKY_DEPTH_M, SyntheticWorld, preview

W, H = 128, 72


def _frames(seed=0, seq="a", n=3, **kwargs):
    return list(SyntheticWorld(seed, W, H, **kwargs).sequence(seq, n))


def _same_object(o1, o2):
    """Every field of two SynthObjects equal, exactly (arrays element by element)."""
    f1, f2 = vars(o1), vars(o2)
    return f1.keys() == f2.keys() and all(
        np.array_equal(f1[k], f2[k]) if isinstance(f1[k], np.ndarray) else f1[k] == f2[k]
        for k in f1)


def _same(f1, f2):
    return (f1.rgb.tobytes() == f2.rgb.tobytes() and f1.depth_m.tobytes() == f2.depth_m.tobytes()
            and f1.instance.tobytes() == f2.instance.tobytes()
            and f1.semantic.tobytes() == f2.semantic.tobytes()
            and len(f1.objects) == len(f2.objects)
            and all(_same_object(o1, o2) for o1, o2 in zip(f1.objects, f2.objects, strict=True))
            and f1.pose == f2.pose and f1.timestamp_s == f2.timestamp_s
            and f1.frame_index == f2.frame_index and f1.intrinsics == f2.intrinsics)


def test_same_seed_same_bytes_and_prefix_stable():
    a = _frames(7, "x", 3)
    b = _frames(7, "x", 3)
    assert all(_same(f1, f2) for f1, f2 in zip(a, b, strict=True))
    longer = _frames(7, "x", 5)
    assert all(_same(f1, f2) for f1, f2 in zip(a, longer[:3], strict=True))


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("seq", [0, 1, "x"])
def test_longer_sequence_starts_with_the_shorter_one(seed, seq):
    """A longer sequence only appends actors: its first frames are the shorter one's, bit for bit.

    (Pedestrians' gait phase once followed their row in the actor table, which shifts when
    earlier groups grow, and walkers of far-off crossings stood on the curb from t = 0.)
    """
    world = SyntheticWorld(seed, 96, 54)
    two = list(world.sequence(seq, 2))
    five = list(world.sequence(seq, 5))
    sixty_head = list(itertools.islice(world.sequence(seq, 60), 5))
    assert all(_same(a, b) for a, b in zip(two, five[:2], strict=True))
    assert all(_same(a, b) for a, b in zip(five, sixty_head, strict=True))
    assert sum(len(f.objects) for f in five) > 0  # the comparison covers labelled objects


def test_long_sequence_prefix_over_crossings_and_walkers():
    """60 frames (3 s) against the start of 400 (20 s, more crossings): every frame equal."""
    world = SyntheticWorld(7, 96, 54)
    sixty = list(world.sequence(0, 60))
    head = list(itertools.islice(world.sequence(0, 400), 60))
    assert all(_same(a, b) for a, b in zip(sixty, head, strict=True))
    assert any(o.category_id == category_id("pedestrian") for f in sixty for o in f.objects)


def test_different_seed_or_sequence_differs():
    a = _frames(1, "x", 1)[0]
    assert a.rgb.tobytes() != _frames(2, "x", 1)[0].rgb.tobytes()
    assert a.rgb.tobytes() != _frames(1, "y", 1)[0].rgb.tobytes()


def test_frame_fields_and_timing():
    frames = _frames(3, "t", 4)
    for i, f in enumerate(frames):
        assert f.rgb.shape == (H, W, 3) and f.rgb.dtype == np.uint8
        assert f.depth_m.shape == (H, W) and f.depth_m.dtype == np.float32
        assert f.instance.dtype == np.int32 and f.semantic.dtype == np.uint8
        assert f.frame_index == i and f.sequence == "t"
        assert f.timestamp_s == pytest.approx(i * FRAME_DT_S)
        assert np.all(f.depth_m > 0) and np.all(f.depth_m <= SKY_DEPTH_M)
        assert f.semantic.max() <= NUM_CLASSES
    # The ego drives forward along the road.
    x = [f.pose[0] for f in frames]
    assert all(b > a for a, b in itertools.pairwise(x))


def test_fixed_camera_arguments_and_ground_rows():
    frames = _frames(5, "c", 2, fov_deg=75.0, camera_height_m=1.9, camera_pitch_rad=0.03)
    for f in frames:
        assert f.intrinsics == CameraIntrinsics.from_fov(W, H, 75.0)
        assert f.camera_height_m == 1.9 and f.camera_pitch_rad == 0.03
        # Nothing stands within a few metres of the camera: the bottom row is flat road.
        expected = flat_ground_depth(H - 1, 1.9, 0.03, f.intrinsics.fy, f.intrinsics.cy)
        assert f.depth_m[H - 1, W // 2] == pytest.approx(float(expected), rel=1e-5)


def test_random_camera_draws_within_ranges():
    world = SyntheticWorld(11, W, H)
    params = [world.sequence_params(seq) for seq in range(40)]
    fovs = [p.fov_deg for p in params]
    heights = [p.camera_height_m for p in params]
    pitches = [math.degrees(p.camera_pitch_rad) for p in params]
    rolls = [math.degrees(p.camera_roll_rad) for p in params]
    assert 50 <= min(fovs) < 60 and 110 < max(fovs) <= 120
    assert 1.0 <= min(heights) < 1.3 and 2.7 < max(heights) <= 3.0
    assert -10 <= min(pitches) < -7 and 7 < max(pitches) <= 10
    assert -3 <= min(rolls) < -2 and 2 < max(rolls) <= 3
    assert {p.sensor_aspect for p in params} == {16 / 9, 4 / 3}
    for seq in (0, 1, 2, 3):
        f = next(world.sequence(seq, 1))
        p = params[seq]
        assert f.intrinsics.hfov_deg == pytest.approx(p.fov_deg)
        # A 4:3 camera rendered into a 16:9 image is squeezed: fy = 0.75 fx.
        assert f.intrinsics.fy / f.intrinsics.fx == pytest.approx(p.sensor_aspect * H / W)
        assert f.pose[3] == pytest.approx(p.camera_roll_rad)


def test_fixed_fov_and_pitch_mean_a_square_pixel_level_camera():
    """A fixed field of view keeps square pixels and a fixed pitch keeps the camera level,
    unless sensor_aspect / camera_roll_rad say otherwise (the ROS node relies on this)."""
    world = SyntheticWorld(3, W, H, fov_deg=90.0, camera_height_m=2.0, camera_pitch_rad=0.0)
    for seq in range(6):
        p = world.sequence_params(seq)
        assert p.sensor_aspect is None and p.camera_roll_rad == 0.0
    f = next(world.sequence(0, 1))
    assert f.intrinsics == CameraIntrinsics.from_fov(W, H, 90.0) and f.pose[3] == 0.0
    world = SyntheticWorld(3, W, H, fov_deg=90.0, camera_pitch_rad=0.0, sensor_aspect="4:3",
                           camera_roll_rad=0.02)
    f = next(world.sequence(0, 1))
    assert f.intrinsics.fy == pytest.approx(0.75 * f.intrinsics.fx) and f.pose[3] == 0.02


def test_labels_consistent_with_maps_over_many_frames():
    classes_seen = set()
    frames = []
    for seq in range(4):
        frames += list(SyntheticWorld(seq, 160, 90).sequence(seq, 2))
    for f in frames:
        assert_labels_match_maps(f, box_slack_m=2e-3)
        for o in f.objects:
            assert 0.0 <= o.occlusion <= 1.0 and 0.0 <= o.truncation <= 1.0
            assert all(s > 0 for s in o.size_m)
            classes_seen.add(o.category_id)
    assert len(classes_seen) >= 4


def test_objects_move_and_keep_their_ids():
    frames = _frames(4, "m", 8)
    first = {o.instance_id: o for o in frames[0].objects}
    last = {o.instance_id: o for o in frames[-1].objects}
    common = set(first) & set(last)
    assert common
    moved = [np.linalg.norm(np.subtract(first[i].center_optical, last[i].center_optical))
             for i in common]
    assert max(moved) > 0.5


def test_preview_is_side_by_side():
    f = _frames(0, "p", 1)[0]
    img = preview(f)
    assert img.shape == (H, 2 * W, 3) and img.dtype == np.uint8


@pytest.mark.parametrize("kwargs, name", [({"width": 0}, "width"), ({"fov_deg": 0.0}, "fov_deg"),
                                          ({"camera_height_m": -1.0}, "camera_height_m"),
                                          ({"seed": -3}, "seed")])
def test_world_rejects_bad_arguments(kwargs, name):
    args = {"seed": 0, "width": W, "height": H, **kwargs}
    with pytest.raises(ValueError, match=name):
        SyntheticWorld(**args)


def test_sequence_rejects_negative_length():
    with pytest.raises(ValueError, match="num_frames"):
        list(SyntheticWorld(0, W, H).sequence("a", -1))


def test_speed_benchmark_prints_one_result_line():
    """Runs benchmarks/synth_speed.py on a tiny image; the number itself is machine-dependent."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "synth_speed.py"
    out = subprocess.run([sys.executable, str(script), "--width", "64", "--height", "36",
                          "--frames", "2", "--runs", "1"], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    lines = [line for line in out.splitlines() if line.startswith("synth_speed:")]
    assert len(lines) == 1
    assert re.match(r"synth_speed: [0-9.]+ frames/s wall-clock, [0-9.]+ frames/s by CPU time, "
                    r"at 64x36", lines[0])
