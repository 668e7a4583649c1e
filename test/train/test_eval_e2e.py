"""depthssd-eval end to end: a tiny untrained model on a tiny synthetic split, through the
runtime (Perceptor) with the torch and ONNX Runtime backends; the node runtime at the operating
point is checked against a plain Perceptor at that threshold (what the node runs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from depthssd_core.checkpoint import save_checkpoint
from depthssd_core.config import ModelConfig
from depthssd_core.metrics import depth_metrics
from depthssd_core.model import build_model
from depthssd_core.runtime import Perceptor, PerceptorSettings
from depthssd_sim.world import SyntheticWorld
from depthssd_train.cli.evaluate import main as eval_main
from depthssd_train.dataset import DatasetWriter, frame_from_synth, read_rgb_png
from depthssd_train.dataset.format import load_depth_format, load_index, read_depth_png
from depthssd_train.evaluate import FLOORS, MEMORY_FLOORS, make_perceptors, node_score_threshold
from depthssd_train.plots import PLOT_FILES

TINY_MODEL = ModelConfig(input_width=160, input_height=96, neck_dim=32, memory_dk=8,
                         memory_dv=8)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(model path, dataset root): an untrained tiny model and 2 sequences x 2 frames."""
    root = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    model_path = save_checkpoint(root / "tiny.safetensors", build_model(TINY_MODEL))
    world = SyntheticWorld(seed=5, width=160, height=96, fov_deg=90.0)
    with DatasetWriter(root / "data", "test") as writer:
        for s in range(2):
            for frame in world.sequence(f"t{s}", 2):
                writer.add(frame_from_synth(frame))
    return model_path, root / "data"


def test_eval_cli_writes_metrics_and_plots(tiny, tmp_path, capsys):
    model, data = tiny
    out = tmp_path / "out"
    code = eval_main(["--model", str(model), "--data", str(data), "--out", str(out),
                      "--backend", "torch", "--ap-score-threshold", "0.001", "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["num_frames"] == 4 and m["num_sequences"] == 2 and m["backend"] == "torch"
    # Distances at the node's default operating point, AP down to the low threshold.
    assert m["operating_point"]["score_threshold"] == node_score_threshold()
    assert m["operating_point"]["source"].endswith("depthssd.yaml")
    assert m["distance"]["score_threshold"] == node_score_threshold()
    assert m["jitter"]["score_threshold"] == node_score_threshold()
    assert m["detection"]["score_threshold"] == 0.001
    assert set(m["detection"]["per_class"]) == {"car", "truck", "bus", "motorcycle", "bicycle",
                                                "pedestrian", "traffic_light", "traffic_sign"}
    for key in ("map", "map50"):
        assert key in m["detection"]
    for key in ("near_detection", "near_visible_detection"):
        near = m[key]
        assert near["classes"] == ["car", "truck", "bus", "pedestrian"]
        assert list(near["per_class"]) == near["classes"]
        assert {"ap50", "ap", "num_gt"} <= set(near["per_class"]["car"])
        missing = [c for c in near["classes"] if near["per_class"][c]["num_gt"] == 0]
        assert near["missing_classes"] == missing
        assert (near["map50"] is None) == bool(missing)  # NaN is written as null
    assert m["near_visible_detection"]["min_height_frac"] == pytest.approx(20 / 360)
    assert "near AP@.5 per class" in printed and "floor near_map50 >= 0.5" in printed
    for key in ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3"):
        assert isinstance(m["depth"][key], float)
    assert m["depth"]["num_images"] == 4
    assert m["depth"]["published_range_m"] == [0.5, 120.0]
    assert 0.0 <= m["depth"]["published_coverage"] <= 1.0
    assert "median_abs_rel_under_40m" in m["distance"]
    assert "median_ratio_under_40m" in m["distance"]
    vis = m["visible_matched"]
    assert vis["max_distance_m"] == 40.0 and vis["num_objects"] >= vis["num_matched"] >= 0
    assert set(m["distance"]["by_range"]) == {"0-20m", "20-40m", "40-80m"}
    assert {"rel_rms_diff", "static_rel_std", "definition"} <= set(m["jitter"])
    ablation = m["memory_ablation"]
    assert set(ablation["memory_on"]) == set(ablation["memory_off"])
    assert isinstance(ablation["no_worse"], bool)
    assert set(m["floors"]) == set(FLOORS) | set(MEMORY_FLOORS)
    for floor in m["floors"].values():
        assert {"target", "value", "met", "margin"} <= set(floor)
    assert m["latency_ms"]["total"] > 0
    assert m["latency_ms_operating_point"]["inference"] == pytest.approx(
        m["latency_ms"]["inference"])
    for name in PLOT_FILES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_depth_matches_runtime_output_and_onnxruntime(tiny, tmp_path):
    """The reported AbsRel is the metric of the runtime's depth over the head's whole range
    (a depth the node would not publish still counts as an error), for both backends; the
    published coverage is the share of evaluable pixels the node's default runtime publishes."""
    model, data = tiny
    records = [r for r in load_index(data, "test") if r.sequence == "t0"][:2]
    whole = Perceptor.from_model(model, backend="torch", settings=PerceptorSettings(
        score_threshold=0.05, min_depth_m=TINY_MODEL.min_depth_m,
        max_depth_m=TINY_MODEL.max_depth_m))
    node = Perceptor.from_model(model, backend="torch")
    values, published = [], []
    for rec in records:
        rgb = read_rgb_png(rec.image_path)
        result = whole.process(rgb, "rgb8", rec.intrinsics, rec.timestamp_s)
        at_node = node.process(rgb, "rgb8", rec.intrinsics, rec.timestamp_s)
        gt = read_depth_png(rec.depth_path, load_depth_format(data))
        values.append(depth_metrics(result.depth_m, gt)["abs_rel"])
        evaluable = (gt >= 1.0) & (gt <= 80.0)
        published.append(np.isfinite(at_node.depth_m[evaluable]).mean())
    expected = float(np.mean(values))
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / backend
        code = eval_main(["--model", str(model), "--data", str(data), "--out", str(out),
                          "--backend", backend, "--max-sequences", "1", "--max-frames", "2",
                          "--no-memory-ablation", "--no-progress"])
        assert code == 0
        m = json.loads((out / "metrics.json").read_text())
        assert m["backend"] == backend and "memory_ablation" not in m
        assert m["depth"]["abs_rel"] == pytest.approx(expected, rel=1e-3)
        assert m["depth"]["published_coverage"] == pytest.approx(np.mean(published), abs=1e-3)


def test_eval_errors_are_one_line(tiny, tmp_path, capsys):
    model, data = tiny
    code = eval_main(["--model", str(model), "--data", str(data), "--split", "val",
                      "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "val" in err and len(err.splitlines()) == 1
    code = eval_main(["--model", str(tmp_path / "missing.safetensors"), "--data", str(data),
                      "--out", str(tmp_path / "o")])
    assert code == 1 and "missing.safetensors" in capsys.readouterr().err


def _threshold_with_detections(model, data) -> float:
    """A score that some, not all, of the untrained model's detections reach."""
    perceptor = Perceptor.from_model(model, backend="torch",
                                     settings=PerceptorSettings(score_threshold=0.0))
    rec = load_index(data, "test")[0]
    scores = [d.score for d in perceptor.process(read_rgb_png(rec.image_path), "rgb8",
                                                 rec.intrinsics, rec.timestamp_s).detections]
    return float(np.quantile(scores, 0.9))


def test_node_runtime_is_a_perceptor_at_the_operating_point(tiny):
    """The evaluation's node runtime (network replayed from the scoring runtime) publishes
    exactly what a plain Perceptor at the operating point does: same boxes, scores, tracks,
    smoothed distances and depth, over sequences, memory carried; the scoring runtime keeps
    the low-score detections a Perceptor at the AP threshold gives."""
    model, data = tiny
    threshold = _threshold_with_detections(model, data)
    scoring, node = make_perceptors(model, "torch", threshold, 0.05)
    plain_node = Perceptor.from_model(model, backend="torch",
                                      settings=PerceptorSettings(score_threshold=threshold))
    plain_low = Perceptor.from_model(model, backend="torch",
                                     settings=PerceptorSettings(score_threshold=0.05))
    seen = 0
    for rec in load_index(data, "test"):
        rgb = read_rgb_png(rec.image_path)
        low = scoring.process(rgb, "rgb8", rec.intrinsics, rec.timestamp_s)
        got = node.process(rgb, "rgb8", rec.intrinsics, rec.timestamp_s)
        want = plain_node.process(rgb, "rgb8", rec.intrinsics, rec.timestamp_s)
        want_low = plain_low.process(rgb, "rgb8", rec.intrinsics, rec.timestamp_s)
        assert got.memory_reset == want.memory_reset
        assert [(d.box_xyxy, d.score, d.track_id, d.distance_m) for d in got.detections] == \
            [(d.box_xyxy, d.score, d.track_id, d.distance_m) for d in want.detections]
        np.testing.assert_array_equal(got.depth_m, want.depth_m)
        assert [(d.box_xyxy, d.score) for d in low.detections] == \
            [(d.box_xyxy, d.score) for d in want_low.detections]
        assert len(low.detections) > len(got.detections)
        seen += len(got.detections)
    assert seen > 0


def test_node_runtime_refuses_a_frame_the_scoring_runtime_did_not_run(tiny):
    model, data = tiny
    scoring, node = make_perceptors(model, "torch", 0.3, 0.05)
    first, second = load_index(data, "test")[:2]
    scoring.process(read_rgb_png(first.image_path), "rgb8", first.intrinsics, first.timestamp_s)
    with pytest.raises(RuntimeError, match="differ"):
        node.process(read_rgb_png(second.image_path), "rgb8", second.intrinsics,
                     second.timestamp_s)


def test_eval_rejects_a_bad_operating_point(tiny, tmp_path, capsys):
    model, data = tiny
    code = eval_main(["--model", str(model), "--data", str(data), "--out", str(tmp_path / "o"),
                      "--score-threshold", "1.5"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "--score-threshold" in err and len(err.splitlines()) == 1
