"""depthssd-eval end to end: a tiny untrained model on a tiny synthetic split, through the
runtime (Perceptor) with the torch and ONNX Runtime backends."""

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
                      "--backend", "torch", "--score-threshold", "0.001", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["num_frames"] == 4 and m["num_sequences"] == 2 and m["backend"] == "torch"
    assert set(m["detection"]["per_class"]) == {"car", "truck", "bus", "motorcycle", "bicycle",
                                                "pedestrian", "traffic_light", "traffic_sign"}
    for key in ("map", "map50"):
        assert key in m["detection"]
    assert m["near_detection"]["classes"] == ["car", "truck", "bus", "pedestrian"]
    assert "map50" in m["near_detection"]
    assert m["near_visible_detection"]["min_height_frac"] == pytest.approx(20 / 360)
    assert "map50" in m["near_visible_detection"]
    for key in ("abs_rel", "sq_rel", "rmse", "rmse_log", "delta1", "delta2", "delta3"):
        assert isinstance(m["depth"][key], float)
    assert m["depth"]["num_images"] == 4
    assert "median_abs_rel_under_40m" in m["distance"]
    assert set(m["distance"]["by_range"]) == {"0-20m", "20-40m", "40-80m"}
    assert {"rel_rms_diff", "static_rel_std", "definition"} <= set(m["jitter"])
    ablation = m["memory_ablation"]
    assert set(ablation["memory_on"]) == set(ablation["memory_off"])
    assert isinstance(ablation["no_worse"], bool)
    assert set(m["floors"]) == {"near_map50", "depth_abs_rel", "depth_delta1",
                                "distance_median_abs_rel_under_40m"}
    assert m["latency_ms"]["total"] > 0
    for name in PLOT_FILES:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_depth_matches_runtime_output_and_onnxruntime(tiny, tmp_path):
    """The reported AbsRel is the metric of what the runtime publishes, for both backends."""
    model, data = tiny
    records = [r for r in load_index(data, "test") if r.sequence == "t0"][:2]
    perceptor = Perceptor.from_model(model, backend="torch",
                                     settings=PerceptorSettings(score_threshold=0.05))
    values = []
    for rec in records:
        result = perceptor.process(read_rgb_png(rec.image_path), "rgb8", rec.intrinsics,
                                   rec.timestamp_s)
        gt = read_depth_png(rec.depth_path, load_depth_format(data))
        values.append(depth_metrics(result.depth_m, gt)["abs_rel"])
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


def test_eval_errors_are_one_line(tiny, tmp_path, capsys):
    model, data = tiny
    code = eval_main(["--model", str(model), "--data", str(data), "--split", "val",
                      "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and "val" in err and len(err.splitlines()) == 1
    code = eval_main(["--model", str(tmp_path / "missing.safetensors"), "--data", str(data),
                      "--out", str(tmp_path / "o")])
    assert code == 1 and "missing.safetensors" in capsys.readouterr().err
