"""tools/learning_curve.py: scores a run's snapshots on a validation split, refuses the test
world, and plots; plus tools/depth_diagnosis.py's edge mask."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from depthssd_train.cli.data import main as data_main
from depthssd_train.train import train
from depthssd_train.train_config import load_config

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _synth(out: Path, seed: int) -> Path:
    assert data_main(["synth", "--out", str(out), "--split", "val", "--sequences", "1",
                      "--frames", "2", "--seed", str(seed), "--width", "160", "--height", "96",
                      "--fov", "90", "--no-progress"]) == 0
    return out


def test_learning_curve_scores_snapshots_and_refuses_the_test_world(tmp_path, capsys):
    tool = _tool("learning_curve")
    run = tmp_path / "run"
    cfg = load_config("config/train/smoke.yaml", [
        f"run_dir={run}", "schedule.0.steps=2", "schedule.0.batch_size=1",
        "schedule.0.clip_length=2", "data.synth_sequences=1", "data.synth_frames_per_sequence=2",
        "threads=1", "snapshot_every_images=2"])
    train(cfg, progress=False)
    test_world = _synth(tmp_path / "test", 9001)
    assert tool.world_seeds(test_world, None) == {9001}
    assert tool.main(["--run", str(run), "--data", str(test_world), "--no-progress"]) == 1
    assert "test world" in capsys.readouterr().err
    val = _synth(tmp_path / "val", 7000)
    assert tool.main(["--run", str(run), "--data", str(val), "--no-progress",
                      "--backend", "torch"]) == 0
    curve = json.loads((run / "learning_curve.json").read_text())
    assert [r["images_seen"] for r in curve["rows"]] == [2, 4, 4]  # two snapshots and last
    assert [r["name"] for r in curve["rows"]][-1] == "last"
    assert (run / "learning_curve.png").stat().st_size > 0
    # A second call scores nothing again (the metrics are cached per snapshot).
    stamp = (run / "learning_curve" / "images_0000000002" / "metrics.json").stat().st_mtime
    assert tool.main(["--run", str(run), "--data", str(val), "--no-progress",
                      "--backend", "torch"]) == 0
    assert (run / "learning_curve" / "images_0000000002" / "metrics.json").stat().st_mtime \
        == stamp


def test_a_continued_run_is_drawn_after_the_runs_it_continues(tmp_path):
    tool = _tool("learning_curve")
    first = tmp_path / "first"
    first.mkdir()
    (first / "learning_curve.json").write_text(json.dumps({"data": "val", "rows": [
        {"name": "images_0000000010", "images_seen": 10}, {"name": "last", "images_seen": 25}]}))
    second = [{"name": "images_0000000010", "images_seen": 10},
              {"name": "last", "images_seen": 12}]
    rows = tool.chain_runs([first], "second", second)
    assert [(r["run"], r["name"], r["images_seen"]) for r in rows] == [
        ("first", "first/images_0000000010", 10), ("first", "first/last", 25),
        ("second", "second/images_0000000010", 35), ("second", "second/last", 37)]
    assert tool.chain_runs([], "second", second)[-1]["images_seen"] == 12
    with pytest.raises(ValueError, match="score that run first"):
        tool.chain_runs([tmp_path / "missing"], "second", second)


def test_a_committed_curve_file_comes_first_and_keeps_its_rows(tmp_path, capsys):
    tool = _tool("learning_curve")
    history = tmp_path / "curve.json"
    history.write_text(json.dumps({"rows": [
        {"run": "warm", "name": "warm/last", "images_seen": 30},
        {"run": "warm2", "name": "warm2/last", "images_seen": 50}]}))
    third = tmp_path / "third"
    third.mkdir()
    (third / "learning_curve.json").write_text(json.dumps({"rows": [
        {"name": "last", "images_seen": 20}]}))
    rows = tool.chain_runs([history, third], "fourth", [{"name": "last", "images_seen": 5}])
    assert [(r["run"], r["name"], r["images_seen"]) for r in rows] == [
        ("warm", "warm/last", 30), ("warm2", "warm2/last", 50), ("third", "third/last", 70),
        ("fourth", "fourth/last", 75)]
    # A curve file must hold chained rows, and only the oldest source may be one.
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rows": [{"name": "last", "images_seen": 5}]}))
    with pytest.raises(ValueError, match="chained rows"):
        tool.chain_runs([bad], "fourth", [])
    run = tmp_path / "run"
    run.mkdir()
    assert tool.main(["--run", str(run), "--data", str(tmp_path), "--after", str(third),
                      "--after", str(history), "--no-progress"]) == 1
    assert "can only come first" in capsys.readouterr().err


def test_depth_diagnosis_edge_mask_marks_both_sides_of_a_jump():
    tool = _tool("depth_diagnosis")
    depth = np.full((6, 10), 10.0, np.float32)
    depth[:, 5:] = 30.0
    mask = tool.edge_mask(depth, width_px=1)
    assert mask[:, 3:7].all() and not mask[:, :3].any() and not mask[:, 7:].any()
