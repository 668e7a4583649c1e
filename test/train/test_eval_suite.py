"""The floors suite (depthssd_train.eval_suite, benchmarks/model_floors.py): a tiny untrained
model on tiny splits rendered by the real ``depthssd-data synth``, scored through ONNX Runtime;
the held-out-look rule and the floor rows against hand-computed values."""

from __future__ import annotations

import json
import math

import pytest
import torch

from depthssd_core.checkpoint import save_checkpoint
from depthssd_core.config import ModelConfig
from depthssd_core.model import build_model
from depthssd_train import eval_suite
from depthssd_train.eval_suite import (
    HELD_OUT_LOOK,
    REFERENCE,
    SPLITS,
    collect_floors,
    held_out_entry,
    run_suite,
    synth_supports_look,
)
from depthssd_train.evaluate import FLOORS, MEMORY_FLOORS

TINY_MODEL = ModelConfig(input_width=160, input_height=96, neck_dim=32, memory_dk=8,
                         memory_dv=8)
OWN_SPLITS = [s for s in SPLITS if s.look is None]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    torch.manual_seed(0)
    return save_checkpoint(tmp_path_factory.mktemp("suite") / "tiny.safetensors",
                           build_model(TINY_MODEL))


@pytest.fixture(scope="module")
def own_suite(tiny_model, tmp_path_factory):
    """(report, cache, out) of the own-look splits, 1 sequence x 2 frames each."""
    root = tmp_path_factory.mktemp("suite_run")
    report = run_suite(tiny_model, root / "cache", root / "out", splits=OWN_SPLITS,
                       sequences=1, frames=2, score_threshold=0.1, num_threads=1, plots=False)
    return report, root / "cache", root / "out"


def test_suite_renders_scores_and_reports_every_floor(own_suite):
    report, cache, out = own_suite
    saved = json.loads((out / "suite.json").read_text())
    assert saved["summary"] == report["summary"]
    for spec in OWN_SPLITS:
        res = saved["splits"][spec.name]
        assert res["status"] == "evaluated" and res["backend"] == "onnxruntime"
        assert res["cached"] is False
        metrics = json.loads((out / spec.name / "metrics.json").read_text())
        assert metrics["num_frames"] == 2 and "memory_ablation" in metrics
        # The split is the camera it claims: the intrinsics of the rendered frames.
        assert metrics["operating_point"]["score_threshold"] == 0.1
        index = (cache / spec.name / "meta" / "index_test.csv").read_text().splitlines()
        header, first = index[0].split(","), index[1].split(",")
        row = dict(zip(header, first, strict=True))
        assert (int(row["width"]), int(row["height"])) == (spec.width, spec.height)
        fx = float(row["fx"])
        assert 2 * math.degrees(math.atan(spec.width / (2 * fx))) == pytest.approx(spec.fov_deg)
    rows = {(r["floor"], r["split"]): r for r in saved["floors"]}
    for key in (*FLOORS, *MEMORY_FLOORS):
        assert (key, REFERENCE) in rows
    for name in ("own_fov60", "own_fov110", "own_800x600"):
        assert ("distance_median_ratio_under_40m", name) in rows
    assert all(set(r) >= {"target", "value", "met", "margin"} for r in saved["floors"])
    assert saved["summary"]["met"] + saved["summary"]["missed"] == len(saved["floors"])
    table = (out / "suite.md").read_text()
    assert "| Floor | Split | Target | Value | Met | Margin | Note |" in table
    assert table.count("\n| distance_median_ratio_under_40m | own_") == 4


def test_suite_reuses_cached_splits_and_rerenders_changed_ones(own_suite, tiny_model, tmp_path):
    _, cache, _ = own_suite
    spec = OWN_SPLITS[1]  # not the split the other tests reuse
    marker = cache / spec.name / "suite_split.json"
    stamp = marker.stat().st_mtime_ns
    again = run_suite(tiny_model, cache, tmp_path / "again", splits=[spec], sequences=1,
                      frames=2, score_threshold=0.1, num_threads=1, plots=False)
    assert again["splits"][spec.name]["cached"] is True
    assert marker.stat().st_mtime_ns == stamp
    longer = run_suite(tiny_model, cache, tmp_path / "longer", splits=[spec], sequences=1,
                       frames=3, score_threshold=0.1, num_threads=1, plots=False)
    assert longer["splits"][spec.name]["cached"] is False
    assert json.loads(marker.read_text())["frames"] == 3


def test_held_out_look_is_skipped_with_a_reason_without_the_look_flag(own_suite, tiny_model,
                                                                     tmp_path, monkeypatch):
    """An installed ``depthssd-data`` from before ``--look`` is simulated by patching the
    capability probe: the split is skipped, the report says why, nothing else is lost."""
    monkeypatch.setattr(eval_suite, "synth_supports_look", lambda: False)
    held = next(s for s in SPLITS if s.look is not None)
    _, cache, _ = own_suite
    report = run_suite(tiny_model, cache, tmp_path / "out",
                       splits=[OWN_SPLITS[0], held], sequences=1, frames=2,
                       score_threshold=0.1, num_threads=1, plots=False)
    assert report["splits"][HELD_OUT_LOOK]["status"] == "skipped"
    assert "--look" in report["splits"][HELD_OUT_LOOK]["reason"]
    skipped = [r for r in report["floors"] if r["split"] == HELD_OUT_LOOK]
    assert len(skipped) == 1 and skipped[0]["met"] is None and "--look" in skipped[0]["note"]
    assert report["summary"]["not_measured"] == 1
    assert not (cache / HELD_OUT_LOOK).exists()
    assert "skipped" in (tmp_path / "out" / "suite.md").read_text()


@pytest.mark.skipif(not synth_supports_look(), reason="depthssd-data synth has no --look yet")
def test_held_out_look_split_is_rendered_and_compared(tiny_model, tmp_path):
    held = next(s for s in SPLITS if s.look is not None)
    report = run_suite(tiny_model, tmp_path / "cache", tmp_path / "out",
                       splits=[OWN_SPLITS[0], held], sequences=1, frames=2,
                       score_threshold=0.1, num_threads=1, plots=False)
    assert report["splits"][HELD_OUT_LOOK]["status"] == "evaluated"
    assert {r["floor"] for r in report["floors"] if r["split"] == HELD_OUT_LOOK} == set(FLOORS)


def test_held_out_rule_hand_computed():
    # Higher is better: at least 75 % of the own look.
    entry = held_out_entry("near_map50", 0.46, 0.60)
    assert entry["met"] and entry["margin"] == pytest.approx(0.01)
    entry = held_out_entry("near_map50", 0.44, 0.60)
    assert not entry["met"] and entry["margin"] == pytest.approx(-0.01)
    assert held_out_entry("near_map50", 0.90, 0.60)["met"]  # better never misses
    # Lower is better: at most 125 %.
    entry = held_out_entry("depth_abs_rel", 0.126, 0.10)
    assert not entry["met"] and entry["margin"] == pytest.approx(-0.001)
    assert held_out_entry("depth_abs_rel", 0.124, 0.10)["met"]
    # The ratio: deviation from 1 at most 125 % of the own look's (0.02 -> 0.025).
    entry = held_out_entry("distance_median_ratio_under_40m", 0.976, 1.02)
    assert entry["met"] and entry["value"] == pytest.approx(0.024)
    assert entry["margin"] == pytest.approx(0.001)
    assert not held_out_entry("distance_median_ratio_under_40m", 1.026, 1.02)["met"]
    assert not held_out_entry("near_map50", 0.5, float("nan"))["met"]


def test_collect_floors_rows_hand_computed():
    good = {k: (0.9 if op == ">=" else 0.01 if op == "<=" else 1.0)
            for k, (op, _) in FLOORS.items()}
    good["jitter_rel_rms_diff"] = 0.02
    results = {
        REFERENCE: {"headline": good, "headline_memory_off": {**good, "near_map50": 0.95,
                                                              "jitter_rel_rms_diff": 0.03}},
        "own_fov60": {"headline": {**good, "distance_median_ratio_under_40m": 1.04}},
        HELD_OUT_LOOK: {"headline": {**good, "depth_abs_rel": 0.02}},
    }
    rows = {(r["floor"], r["split"]): r for r in collect_floors(results)}
    assert all(rows[(k, REFERENCE)]["met"] for k in FLOORS)
    assert not rows[("memory_near_map50_no_worse", REFERENCE)]["met"]  # 0.05 lower with memory
    assert rows[("memory_jitter_lower", REFERENCE)]["met"]
    assert not rows[("distance_median_ratio_under_40m", "own_fov60")]["met"]
    # AbsRel doubled on the held-out look (0.01 -> 0.02): more than 25 % worse.
    assert not rows[("depth_abs_rel", HELD_OUT_LOOK)]["met"]
    assert rows[("near_map50", HELD_OUT_LOOK)]["met"]
    assert len(rows) == len(FLOORS) + len(MEMORY_FLOORS) + 1 + len(FLOORS)


def test_suite_cli_errors_are_one_line(tmp_path, capsys):
    code = eval_suite.main(["--model", str(tmp_path / "missing.safetensors"),
                            "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "missing.safetensors" in err and len(err.splitlines()) == 1
