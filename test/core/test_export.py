"""ONNX export: ONNX Runtime against torch over a recurrent sequence, the FP16 variant, the
sidecar, checkpoints and the depthssd-export CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from depthssd_core.checkpoint import CheckpointError, load_model, read_metadata, save_checkpoint
from depthssd_core.classes import CLASSES
from depthssd_core.cli.export import main as export_main
from depthssd_core.export import export_onnx, measure_ort_latency
from depthssd_core.graph_contract import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    box_coder,
    read_onnx_sidecar,
    sidecar_path,
)
from depthssd_core.hashing import file_sha256
from depthssd_core.model import DepthSSD, anchors_for

HEIGHT, WIDTH = 96, 160  # export size; parity runs at this size on other (random) inputs
FRAMES = 10


def _calibrated_model() -> DepthSSD:
    """A DepthSSD whose BatchNorm statistics come from data, so activations have realistic
    magnitudes (fresh running stats make FP16 errors look smaller than they are)."""
    torch.manual_seed(0)
    model = DepthSSD()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batches
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(2, 3, HEIGHT, WIDTH), *model.initial_state(2))
    return model.eval()


def _session(path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One checkpoint, its FP32 export (API) and its FP16 export (through the CLI)."""
    folder = tmp_path_factory.mktemp("export")
    model = _calibrated_model()
    ckpt = save_checkpoint(folder / "model.safetensors", model, extra={"metrics": {"ap": 0.5}})
    fp32 = export_onnx(model, folder / "fp32.onnx", HEIGHT, WIDTH)
    fp16 = folder / "fp16.onnx"
    code = export_main(
        ["--model", str(ckpt), "--onnx", str(fp16), "--height", str(HEIGHT),
         "--width", str(WIDTH), "--fp16"]
    )  # fmt: skip
    assert code == 0
    return {"model": model, "ckpt": ckpt, "fp32": fp32, "fp16": fp16, "folder": folder}


def _run_sequence(step, frames, state):
    outs = []
    for frame in frames:
        out = step(frame, *state)
        state = out[3:]
        outs.append(out)
    return outs


def _frames(seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((1, 3, HEIGHT, WIDTH)).astype(np.float32) for _ in range(FRAMES)]


def test_onnx_io_names_and_shapes(exported):
    model = onnx.load(str(exported["fp32"]))
    assert [i.name for i in model.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES)
    for value in [*model.graph.input, *model.graph.output]:
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert max(op.version for op in model.opset_import if op.domain in ("", "ai.onnx")) == 17


def test_ort_matches_torch_over_a_recurrent_sequence(exported):
    """10 frames with the state fed back, on random inputs (the export traced zeros).
    Tolerance: 1e-4 absolute + 1e-4 relative on every output, every frame."""
    model, session = exported["model"], _session(exported["fp32"])
    frames = _frames(1)
    m0, s0 = (t.detach().numpy() for t in model.initial_state(1))

    def ort_step(image, mem_m, mem_s):
        return session.run(None, {"image": image, "mem_m": mem_m, "mem_s": mem_s})

    def torch_step(image, mem_m, mem_s):
        with torch.no_grad():
            out = model(torch.from_numpy(image), torch.as_tensor(mem_m), torch.as_tensor(mem_s))
        return [t.numpy() for t in out]

    got = _run_sequence(ort_step, frames, (m0, s0))
    want = _run_sequence(torch_step, frames, (m0, s0))
    for frame_got, frame_want in zip(got, want, strict=True):
        for name, a, b in zip(OUTPUT_NAMES, frame_got, frame_want, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4, err_msg=name)
    # The memory really moved over the sequence (otherwise the parity would be vacuous).
    assert np.abs(got[-1][3] - m0).max() > 1e-3


def test_fp16_variant_error_against_fp32(exported):
    """FP16 vs FP32 graphs in ONNX Runtime over 10 recurrent frames, in the units that matter.

    Bounds (measured errors are about a third of them): class probabilities within 0.02,
    decoded boxes within 2 px, canonical depth within 1% relative, memory state within 5% of
    its magnitude (the state arithmetic is FP32; its inputs come from the FP16 trunk).
    """
    s32, s16 = _session(exported["fp32"]), _session(exported["fp16"])
    m0, s0 = (t.detach().numpy() for t in exported["model"].initial_state(1))

    def stepper(session):
        return lambda image, m, s: session.run(None, {"image": image, "mem_m": m, "mem_s": s})

    frames = _frames(2)
    ref = _run_sequence(stepper(s32), frames, (m0, s0))
    half = _run_sequence(stepper(s16), frames, (m0, s0))
    anchors = torch.from_numpy(anchors_for(exported["model"].cfg, HEIGHT, WIDTH))
    coder = box_coder()
    for a, b in zip(ref, half, strict=True):
        assert all(y.dtype == np.float32 for y in b)
        probs_a = torch.softmax(torch.from_numpy(a[0]), -1)
        probs_b = torch.softmax(torch.from_numpy(b[0]), -1)
        assert (probs_a - probs_b).abs().max() < 0.02
        boxes_a = coder.decode_single(torch.from_numpy(a[1][0]), anchors)
        boxes_b = coder.decode_single(torch.from_numpy(b[1][0]), anchors)
        assert (boxes_a - boxes_b).abs().max() < 2.0
        assert np.max(np.abs(b[2] - a[2]) / a[2]) < 0.01
        for x, y in zip(a[3:], b[3:], strict=True):
            assert np.max(np.abs(y - x)) < 0.05 * np.max(np.abs(x))


def test_fp16_graph_keeps_memory_and_depth_decoding_in_fp32(exported):
    graph = onnx.load(str(exported["fp16"])).graph
    init_types = {t.name: t.data_type for t in graph.initializer}
    conv_weights = [n.input[1] for n in graph.node if n.op_type == "Conv"]
    assert conv_weights and all(init_types[w] == onnx.TensorProto.FLOAT16 for w in conv_weights)
    memory_matmuls = [
        n for n in graph.node if n.name.startswith("/neck/memory/") and n.op_type == "MatMul"
    ]
    assert memory_matmuls
    inferred = onnx.shape_inference.infer_shapes(onnx.load(str(exported["fp16"])))
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    for node in memory_matmuls:
        assert types[node.output[0]] == onnx.TensorProto.FLOAT, node.name
    sigmoids = [n for n in graph.node if n.name.startswith("/depth/") and n.op_type == "Sigmoid"]
    assert sigmoids and all(types[n.output[0]] == onnx.TensorProto.FLOAT for n in sigmoids)


def test_sidecar(exported):
    for key, precision in (("fp32", "fp32"), ("fp16", "fp16")):
        path = exported[key]
        side = json.loads(sidecar_path(path).read_text())
        assert side == read_onnx_sidecar(path)
        assert side["precision"] == precision
        assert side["onnx_sha256"] == file_sha256(path)
        assert side["classes"] == list(CLASSES)
        assert (side["input"]["height"], side["input"]["width"]) == (HEIGHT, WIDTH)
        cfg = exported["model"].cfg
        assert side["input"]["mean"] == list(cfg.mean) and side["input"]["std"] == list(cfg.std)
        assert side["canonical_focal_px"] == cfg.canonical_focal_px
        assert side["memory"]["shape"] == [1, *cfg.memory_shape]
        m0, s0 = exported["model"].initial_state(1)
        np.testing.assert_array_equal(
            np.asarray(side["memory"]["initial_mem_m"], np.float32), m0.detach().numpy()
        )
        assert not np.asarray(side["memory"]["initial_mem_s"]).any()
        assert np.asarray(side["memory"]["initial_mem_s"]).shape == tuple(s0.shape)
        assert side["anchors"]["num_anchors"] == anchors_for(cfg, HEIGHT, WIDTH).shape[0]
        assert side["anchors"]["box_coder_weights"] == [10.0, 10.0, 5.0, 5.0]
        assert set(side["versions"]) >= {"depthssd", "torch", "onnx"}
        assert side["outputs"]["cls_logits"] == [1, side["anchors"]["num_anchors"], 9]
    # A changed ONNX file no longer matches its sidecar.
    copy = exported["folder"] / "copy.onnx"
    copy.write_bytes(exported["fp32"].read_bytes() + b"\0")
    sidecar_path(copy).write_text(sidecar_path(exported["fp32"]).read_text())
    with pytest.raises(ValueError, match="sha256"):
        read_onnx_sidecar(copy)


def test_checkpoint_round_trip(exported):
    loaded = load_model(exported["ckpt"])
    model = exported["model"]
    assert loaded.cfg == model.cfg
    assert not loaded.training
    want, got = model.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    for key in want:
        assert torch.equal(want[key], got[key]), key
    meta = read_metadata(exported["ckpt"])
    assert meta["metrics"] == {"ap": 0.5}
    assert meta["depthssd_config"] == model.cfg.to_dict()
    assert b"pickle" not in exported["ckpt"].read_bytes()[:64]


def test_checkpoint_errors_name_the_path(tmp_path, exported):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(CheckpointError, match=r"nope\.safetensors"):
        load_model(missing)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json")
    with pytest.raises(CheckpointError, match=r"corrupt\.safetensors"):
        load_model(corrupt)
    # Weights saved for one config cannot be loaded as another.
    from dataclasses import replace

    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(exported["ckpt"]), framework="pt") as handle:
        tensors = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118
        meta = handle.metadata()
    other = replace(exported["model"].cfg, neck_dim=32)
    meta["depthssd_config"] = json.dumps(other.to_dict())
    mismatch = tmp_path / "mismatch.safetensors"
    save_file(tensors, str(mismatch), metadata=meta)
    with pytest.raises(CheckpointError, match=r"mismatch\.safetensors.*does not match"):
        load_model(mismatch)
    with pytest.raises(ValueError, match="reserved"):
        save_checkpoint(tmp_path / "x.safetensors", exported["model"], {"depthssd_config": 1})


def test_cli_bad_inputs_exit_nonzero_with_one_line(tmp_path, capsys, exported):
    code = export_main(["--model", str(tmp_path / "none.safetensors"), "--onnx", "x.onnx"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "none.safetensors" in err[0]
    code = export_main(["--model", str(exported["ckpt"]), "--onnx", "x.onnx", "--height", "8"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "--height" in err[0]
    assert export_main(["--onnx", "x.onnx"]) != 0  # argparse usage error
    assert not (tmp_path / "x.onnx").exists()


def test_latency_measurement_times_only_the_runs_after_warmup(exported, monkeypatch):
    """The real graph runs on ONNX Runtime; only the clock is scripted, so the statistics must
    be exactly those of the scripted durations: run k takes (k + 1) ms, warm-up is not timed."""
    import time

    runs = 10
    ticks = []
    for k in range(runs):
        ticks += [100.0 * k, 100.0 * k + 0.001 * (k + 1)]
    clock = iter(ticks)
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    stats = measure_ort_latency(exported["fp32"], threads=1, runs=runs, warmup=2)
    durations_ms = np.arange(1, runs + 1, dtype=np.float64)
    assert stats["runs"] == runs
    assert stats["min_ms"] == pytest.approx(1.0, abs=1e-6)
    assert stats["median_ms"] == pytest.approx(5.5, abs=1e-6)
    assert stats["p90_ms"] == pytest.approx(np.percentile(durations_ms, 90), abs=1e-6)
    # Two clock reads per timed run and none for the warm-up runs.
    assert next(clock, None) is None
