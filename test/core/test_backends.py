"""Backends and model loading: torch / ONNX Runtime outputs, backend choice, model files
(.safetensors with a cached ONNX export, .onnx with its sidecar) and every bad-file error.

TensorRT cannot run here (no GPU, not installable): only its import error and argument checks
are tested in this file; the engine logic is tested with a test double in test_engine.py.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings

import numpy as np
import pytest
import torch
from tiny_models import build_tiny_model

from depthssd_core import engine, graph_contract
from depthssd_core.backends import loading
from depthssd_core.backends.onnxruntime_backend import OnnxRuntimeBackend
from depthssd_core.backends.tensorrt_backend import TensorRTBackend
from depthssd_core.backends.torch_backend import TorchBackend
from depthssd_core.cache import user_cache_dir
from depthssd_core.checkpoint import save_checkpoint
from depthssd_core.geometry import CameraIntrinsics
from depthssd_core.graph_contract import OUTPUT_NAMES
from depthssd_core.hashing import file_sha256
from depthssd_core.model import DepthSSD
from depthssd_core.model_info import model_info_from_sidecar
from depthssd_core.runtime import Perceptor, PerceptorSettings

H, W = 64, 96


@pytest.fixture(scope="module")
def model() -> DepthSSD:
    return build_tiny_model(H, W, seed=1)


@pytest.fixture(scope="module")
def files(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    ckpt = folder / "tiny.safetensors"
    save_checkpoint(ckpt, model)
    onnx_path = loading.export_cached_onnx(ckpt, model, None)
    return ckpt, onnx_path


def _inputs(model):
    rng = np.random.default_rng(0)
    mem_m, mem_s = (t.detach().numpy() for t in model.initial_state(1))
    return rng.normal(size=(1, 3, H, W)).astype(np.float32), mem_m, mem_s


def test_torch_and_onnxruntime_backends_agree(model, files):
    _, onnx_path = files
    image, mem_m, mem_s = _inputs(model)
    a = TorchBackend(model, device="cpu").infer(image, mem_m, mem_s)
    ort_backend = OnnxRuntimeBackend(onnx_path, intra_op_threads=1)
    b = ort_backend.infer(image, mem_m, mem_s)
    assert "CPUExecutionProvider" in ort_backend.providers
    options = ort_backend.session.get_session_options()
    assert options.intra_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert list(a) == list(b) == list(OUTPUT_NAMES)
    for name in OUTPUT_NAMES:
        assert a[name].dtype == b[name].dtype == np.float32
        np.testing.assert_allclose(b[name], a[name], rtol=1e-3, atol=1e-4, err_msg=name)
    assert a["depth_c"].shape == (1, 1, H // 4, W // 4)


def test_onnxruntime_bad_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope\.onnx"):
        OnnxRuntimeBackend(tmp_path / "nope.onnx").load()
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx file at all")
    with pytest.raises(ValueError, match=r"bad\.onnx"):
        OnnxRuntimeBackend(bad).load()


def test_onnxruntime_rejects_foreign_graphs(tmp_path):
    class Other(torch.nn.Module):
        def forward(self, x):
            return x * 2

    path = tmp_path / "other.onnx"
    torch.onnx.export(Other(), (torch.zeros(1, 3),), str(path), input_names=["x"],
                      output_names=["y"], dynamo=False)
    with pytest.raises(ValueError, match="expected inputs"):
        OnnxRuntimeBackend(path).load()


def test_tensorrt_backend_errors(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="onnx_path or an engine_path"):
        TensorRTBackend()
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(ImportError, match="tensorrt"):
        TensorRTBackend(onnx_path=tmp_path / "m.onnx").load()


def test_auto_backend_choice(monkeypatch, tmp_path):
    onnx_file = tmp_path / "m.onnx"
    monkeypatch.setattr(loading, "tensorrt_usable", lambda: True)
    assert loading.resolve_backend("auto", onnx_file) == "tensorrt"
    monkeypatch.setattr(loading, "tensorrt_usable", lambda: False)
    assert loading.resolve_backend("auto", onnx_file) == "onnxruntime"
    real_find_spec = loading.importlib.util.find_spec
    monkeypatch.setattr(loading.importlib.util, "find_spec",
                        lambda name: None if name == "onnxruntime" else real_find_spec(name))
    assert loading.resolve_backend("auto", tmp_path / "m.safetensors") == "torch"
    with pytest.raises(ValueError, match="needs onnxruntime or tensorrt"):
        loading.resolve_backend("auto", onnx_file)
    with pytest.raises(ValueError, match="unknown backend"):
        loading.resolve_backend("cuda", onnx_file)


def test_from_model_checkpoint_and_onnx(model, files):
    ckpt, onnx_path = files
    frame = np.random.default_rng(2).integers(0, 255, size=(72, 108, 3), dtype=np.uint8)
    intr = CameraIntrinsics.from_fov(108, 72, 90.0)
    settings = PerceptorSettings(score_threshold=0.05, max_detections=10)
    results = {}
    for path, backend in ((ckpt, "torch"), (ckpt, "onnxruntime"), (onnx_path, "onnxruntime"),
                          (onnx_path, "auto")):
        perceptor = Perceptor.from_model(path, backend=backend,
                                         settings=dataclasses.replace(settings), num_threads=1,
                                         device="cpu" if backend == "torch" else None)
        result = perceptor.process(frame, "rgb8", intr, 1.0)
        assert result.backend == ("torch" if backend == "torch" else "onnxruntime")
        assert perceptor.backend.device in ("cpu", "CPUExecutionProvider")
        results[(path.suffix, backend)] = result
        # The initial memory state comes from the checkpoint (or the sidecar): M_0 itself.
        np.testing.assert_allclose(perceptor.model.initial_mem_m,
                                   model.initial_state(1)[0].detach().numpy(), atol=1e-7)
    ref = results[(".safetensors", "torch")]
    for result in results.values():
        np.testing.assert_allclose(result.depth_m, ref.depth_m, rtol=1e-3, atol=1e-3)
        assert [d.class_index for d in result.detections] == \
            [d.class_index for d in ref.detections]


def test_checkpoint_export_is_cached_by_hash_in_the_user_cache(model, files, tmp_path):
    ckpt, onnx_path = files
    # The test session points DEPTHSSD_CACHE_DIR at its own folder (test/conftest.py).
    assert onnx_path.parent == user_cache_dir() / "onnx" != ckpt.parent
    assert onnx_path.name.startswith(f"{ckpt.stem}.{file_sha256(ckpt)[:16]}")
    assert sorted(p.name for p in ckpt.parent.iterdir()) == [ckpt.name]  # nothing beside it
    mtime = onnx_path.stat().st_mtime_ns
    assert loading.export_cached_onnx(ckpt, model, None) == onnx_path
    assert onnx_path.stat().st_mtime_ns == mtime
    # An explicit folder wins; the same content gives the same name there.
    mine = loading.export_cached_onnx(ckpt, model, tmp_path / "mine")
    assert mine == tmp_path / "mine" / onnx_path.name and mine.is_file()
    assert graph_contract.sidecar_path(mine).is_file()


def test_user_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("DEPTHSSD_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert user_cache_dir() == tmp_path / "explicit"
    assert loading.onnx_cache_dir() == tmp_path / "explicit" / "onnx"
    monkeypatch.delenv("DEPTHSSD_CACHE_DIR")
    assert user_cache_dir() == tmp_path / "xdg" / "depthssd"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache_dir() == tmp_path / "home" / ".cache" / "depthssd"


def test_model_file_errors(files, tmp_path):
    _, onnx_path = files
    with pytest.raises(FileNotFoundError, match=r"missing\.safetensors"):
        Perceptor.from_model(tmp_path / "missing.safetensors")
    bad = tmp_path / "corrupt.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match=r"corrupt\.safetensors"):
        Perceptor.from_model(bad, backend="torch")
    other = tmp_path / "model.pt"
    other.write_bytes(b"x")
    with pytest.raises(ValueError, match=r"\.safetensors checkpoints or \.onnx"):
        Perceptor.from_model(other)
    with pytest.raises(ValueError, match="torch backend needs"):
        Perceptor.from_model(onnx_path, backend="torch")
    # An ONNX without its sidecar.
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(onnx_path.read_bytes())
    with pytest.raises(FileNotFoundError, match=r"lone\.onnx\.json"):
        Perceptor.from_model(lone, backend="onnxruntime")


def _copy_with_sidecar(onnx_path, folder, edit):
    dst = folder / "copy.onnx"
    dst.write_bytes(onnx_path.read_bytes())
    data = json.loads(graph_contract.sidecar_path(onnx_path).read_text())
    edit(data)
    graph_contract.sidecar_path(dst).write_text(json.dumps(data))
    return dst


def test_sidecar_graph_mismatches_say_what_differs(files, tmp_path):
    _, onnx_path = files

    def wrong_size(d):
        d["input"]["height"] = H * 2

    with pytest.raises(ValueError, match=rf"input 'image': graph \[1, 3, {H}, {W}\] vs sidecar"):
        Perceptor.from_model(_copy_with_sidecar(onnx_path, tmp_path, wrong_size),
                             backend="onnxruntime")

    def other_graph(d):
        d["onnx_sha256"] = "0" * 64

    with pytest.raises(ValueError, match="sha256 differs"):
        Perceptor.from_model(_copy_with_sidecar(onnx_path, tmp_path, other_graph),
                             backend="onnxruntime")

    def no_memory_values(d):
        d["memory"].pop("initial_mem_m")

    with pytest.raises(ValueError, match="no initial memory values"):
        Perceptor.from_model(_copy_with_sidecar(onnx_path, tmp_path, no_memory_values),
                             backend="onnxruntime")

    def other_coder(d):
        d["anchors"]["box_coder_weights"] = [1.0, 1.0, 1.0, 1.0]

    with pytest.raises(ValueError, match=r"anchors disagree.*box_coder_weights"):
        Perceptor.from_model(_copy_with_sidecar(onnx_path, tmp_path, other_coder),
                             backend="onnxruntime")

    def wrong_memory_shape(d):
        d["memory"]["initial_mem_m"] = [[1.0, 2.0]]

    with pytest.raises(ValueError, match="initial memory does not have the shape"):
        Perceptor.from_model(_copy_with_sidecar(onnx_path, tmp_path, wrong_memory_shape),
                             backend="onnxruntime")


def test_onnxruntime_warns_when_a_provider_falls_back(files, monkeypatch):
    """As onnxruntime-gpu does without a usable GPU: CUDA asked for, CPU given."""
    import onnxruntime

    _, onnx_path = files
    monkeypatch.setattr(onnxruntime, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    backend = OnnxRuntimeBackend(onnx_path, intra_op_threads=1)
    with warnings.catch_warnings():
        # onnxruntime's own note about the missing provider; ours is checked below.
        warnings.filterwarnings("ignore", category=UserWarning, module="onnxruntime")
        with pytest.warns(RuntimeWarning, match="CUDAExecutionProvider"):
            backend.load()
    assert backend.providers == ["CPUExecutionProvider"]
    assert backend.device == "CPUExecutionProvider"


def test_tensorrt_gets_the_fp16_export(files):
    """TensorRT builds strongly typed from the graph, so a checkpoint is exported in FP16."""
    ckpt, fp32_onnx = files
    backend, info = loading.load_backend(ckpt, "tensorrt")
    assert isinstance(backend, TensorRTBackend)  # not loaded: there is no GPU here
    assert backend.onnx_path.name.endswith(".fp16.onnx") and backend.onnx_path != fp32_onnx
    assert graph_contract.read_onnx_sidecar(backend.onnx_path)["precision"] == "fp16"
    # The engine builder sees the real FP16 export as FP16 (its IO stays float32).
    assert engine.onnx_precision(engine.onnx_io(backend.onnx_path)) == "fp16"
    assert engine.onnx_precision(engine.onnx_io(fp32_onnx)) == "fp32"
    np.testing.assert_array_equal(info.initial_mem_m,
                                  model_info_from_sidecar(
                                      fp32_onnx,
                                      graph_contract.read_onnx_sidecar(fp32_onnx)).initial_mem_m)
