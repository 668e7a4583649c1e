"""``TensorRTBackend`` over a recurrent sequence, its shape/address binding order and errors.

TensorRT cannot be installed on this project's machines and there is no GPU: these tests run
the real backend against the stand-in ``tensorrt`` module (``tensorrt_standin.py``, which
follows the real bindings of TensorRT 10.3.0, 10.16.1.11, 11.0.0.114 and 11.4.0.106; checked in
``test_tensorrt_standin.py``) with host memory in place of CUDA memory
(``tensorrt_standin.HostMemory``). The stand-in's execution context reads and writes the raw
buffer addresses the backend binds, as TensorRT does with device pointers, and computes with
ONNX Runtime on the engine's graph, so its outputs must equal ONNX Runtime's frame by frame
when the backend feeds the memory state back correctly.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tensorrt_standin
from onnx import TensorProto, helper
from tiny_models import build_tiny_model

from depthssd_core import engine
from depthssd_core.backends import loading, tensorrt_backend
from depthssd_core.backends.onnxruntime_backend import OnnxRuntimeBackend
from depthssd_core.backends.tensorrt_backend import TensorRTBackend
from depthssd_core.checkpoint import save_checkpoint
from depthssd_core.geometry import CameraIntrinsics
from depthssd_core.graph_contract import OUTPUT_NAMES, read_onnx_sidecar
from depthssd_core.model import DepthSSD
from depthssd_core.model_info import model_info_from_sidecar
from depthssd_core.runtime import Perceptor, PerceptorSettings

H, W = 64, 96
FRAMES = 5


@pytest.fixture(scope="module")
def model() -> DepthSSD:
    return build_tiny_model(H, W, seed=3)


@pytest.fixture(scope="module")
def files(model, tmp_path_factory):
    """A checkpoint and its FP16 export (what the TensorRT backend gets)."""
    folder = tmp_path_factory.mktemp("trt_models")
    ckpt = folder / "tiny.safetensors"
    save_checkpoint(ckpt, model)
    onnx_fp16 = loading.export_cached_onnx(ckpt, model, folder / "onnx", fp16=True)
    return ckpt, onnx_fp16, folder


def _frames(model, n):
    rng = np.random.default_rng(7)
    m0, s0 = (t.detach().numpy() for t in model.initial_state(1))
    images = [rng.normal(size=(1, 3, H, W)).astype(np.float32) for _ in range(n)]
    return images, m0, s0


def _run(backend, images, m0, s0):
    """Feed each frame's memory output into the next frame, as the runtime does."""
    outputs, m, s = [], m0, s0
    for image in images:
        out = backend.infer(image, m, s)
        outputs.append(out)
        m, s = out["mem_m_out"], out["mem_s_out"]
    return outputs


@pytest.mark.parametrize("version", tensorrt_standin.VERSIONS)
def test_recurrent_sequence_matches_onnxruntime(standin, model, files, tmp_path, version):
    trt = standin(version)
    _, onnx_fp16, _ = files
    images, m0, s0 = _frames(model, FRAMES)
    backend = TensorRTBackend(onnx_fp16, tmp_path / "tiny.engine",
                              memory=tensorrt_standin.HostMemory)
    got = _run(backend, images, m0, s0)
    snapshot = [{k: v.copy() for k, v in out.items()} for out in got]
    want = _run(OnnxRuntimeBackend(onnx_fp16, intra_op_threads=1), images, m0, s0)
    for k, (a, b) in enumerate(zip(got, want, strict=True)):
        for name in OUTPUT_NAMES:
            assert a[name].dtype == np.float32
            np.testing.assert_allclose(a[name], b[name], rtol=1e-6, atol=1e-7,
                                       err_msg=f"frame {k} {name}")
    # Nothing handed back aliases an engine buffer that a later frame overwrote.
    for a, b in zip(got, snapshot, strict=True):
        for name in OUTPUT_NAMES:
            np.testing.assert_array_equal(a[name], b[name])
    # The memory really moved, so the feedback was exercised.
    assert np.abs(got[-1]["mem_m_out"] - m0).max() > 1e-3
    assert np.abs(got[-1]["mem_m_out"] - got[-2]["mem_m_out"]).max() > 1e-5
    # One execution per frame, on the memory's (non-default) stream; one logger in all.
    assert trt._standin.executions == [tensorrt_standin.HostMemory.STREAM] * FRAMES
    assert len(trt._standin.loggers) == 1
    assert backend.device == tensorrt_standin.DEFAULT_GPU["gpu_name"]


def test_perceptor_on_tensorrt_equals_onnxruntime(standin, model, files, monkeypatch):
    """The whole path a node takes: checkpoint -> FP16 export -> engine -> Perceptor, with
    the memory state carried across frames by the runtime."""
    standin("10.3.0")
    monkeypatch.setattr(tensorrt_backend, "CudaMemory", tensorrt_standin.HostMemory)
    ckpt, onnx_fp16, folder = files
    settings = PerceptorSettings(score_threshold=0.05)
    trt_run = Perceptor.from_model(ckpt, backend="tensorrt", cache_dir=folder / "onnx",
                                   settings=settings)
    assert isinstance(trt_run.backend, TensorRTBackend)
    assert trt_run.backend.onnx_path == onnx_fp16
    info = model_info_from_sidecar(onnx_fp16, read_onnx_sidecar(onnx_fp16))
    ort_run = Perceptor(OnnxRuntimeBackend(onnx_fp16, intra_op_threads=1), info,
                        settings=PerceptorSettings(score_threshold=0.05))
    rng = np.random.default_rng(11)
    intrinsics = CameraIntrinsics.from_fov(W, H, 90.0)
    for k in range(4):
        frame = rng.integers(0, 255, size=(H, W, 3), dtype=np.uint8)
        a = trt_run.process(frame, "rgb8", intrinsics, 0.05 * k)
        b = ort_run.process(frame, "rgb8", intrinsics, 0.05 * k)
        for x, y in zip(trt_run.memory_state, ort_run.memory_state, strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)
        assert [d.class_index for d in a.detections] == [d.class_index for d in b.detections]
        np.testing.assert_allclose([d.box_xyxy for d in a.detections],
                                   [d.box_xyxy for d in b.detections], atol=1e-4)
        np.testing.assert_allclose(a.depth_m, b.depth_m, rtol=1e-5)
        assert a.backend == "tensorrt"
    assert np.abs(trt_run.memory_state[0] - info.initial_mem_m).max() > 1e-3


def _dynamic_onnx(path):
    """Identity-style graph with a dynamic image size and outputs that follow it."""
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, "h", "w"]),
              helper.make_tensor_value_info("mem_m", TensorProto.FLOAT, [1, 2, 4, 4]),
              helper.make_tensor_value_info("mem_s", TensorProto.FLOAT, [1, 2, 4, 4])]
    nodes = [helper.make_node("Identity", ["image"], [n])
             for n in ("cls_logits", "box_regression", "depth_c")]
    nodes += [helper.make_node("Add", ["mem_m", "mem_s"], ["mem_m_out"]),
              helper.make_node("Identity", ["mem_s"], ["mem_s_out"])]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, "h", "w"])
               for n in ("cls_logits", "box_regression", "depth_c")]
    outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 4, 4])
                for n in ("mem_m_out", "mem_s_out")]
    graph = helper.make_graph(nodes, "dynamic", inputs, outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                                ir_version=9), str(path))
    return path


@pytest.mark.parametrize("version", ("10.16.1.11", "11.0.0.114"))
def test_output_shapes_are_read_only_after_every_input_shape_is_set(standin, tmp_path,
                                                                    monkeypatch, version):
    trt = standin(version)
    calls = []
    real_get = trt.IExecutionContext.get_tensor_shape
    real_set = trt.IExecutionContext.set_input_shape

    def get_tensor_shape(self, name):
        calls.append(("get", name))
        return real_get(self, name)

    def set_input_shape(self, name, shape):
        calls.append(("set", name))
        return real_set(self, name, shape)

    monkeypatch.setattr(trt.IExecutionContext, "get_tensor_shape", get_tensor_shape)
    monkeypatch.setattr(trt.IExecutionContext, "set_input_shape", set_input_shape)
    onnx_path = _dynamic_onnx(tmp_path / "d.onnx")
    backend = TensorRTBackend(onnx_path, memory=tensorrt_standin.HostMemory,
                              input_shapes={"image": [1, 3, 16, 24]})
    image = np.random.default_rng(0).normal(size=(1, 3, 16, 24)).astype(np.float32)
    mem = np.ones((1, 2, 4, 4), np.float32)
    out = backend.infer(image, mem, 2 * mem)
    np.testing.assert_array_equal(out["depth_c"], image)
    np.testing.assert_array_equal(out["mem_m_out"], 3 * mem)
    last_set = max(i for i, c in enumerate(calls) if c[0] == "set")
    first_get = min(i for i, c in enumerate(calls) if c[0] == "get")
    assert [c[1] for c in calls if c[0] == "set"] == ["image", "mem_m", "mem_s"]
    assert first_get > last_set
    assert tuple(backend._buffers["depth_c"].shape) == (1, 3, 16, 24)
    with pytest.raises(ValueError, match="engine expects"):
        backend.infer(image[:, :, :8], mem, mem)


@pytest.mark.parametrize(("knob", "value", "message"), [
    ("refuse_input_shape", {"mem_m"}, "refused shape .* for input 'mem_m'"),
    ("refuse_address", {"depth_c"}, "refused the buffer address of 'depth_c'"),
    ("fail_execute", True, "execution failed"),
])
def test_tensorrt_refusals_are_errors_not_silence(standin, tmp_path, knob, value, message):
    trt = standin("10.3.0")
    setattr(trt._standin, knob, value)
    backend = TensorRTBackend(_dynamic_onnx(tmp_path / "d.onnx"),
                              memory=tensorrt_standin.HostMemory,
                              input_shapes={"image": [1, 3, 8, 8]})
    mem = np.zeros((1, 2, 4, 4), np.float32)
    with pytest.raises(RuntimeError, match=message):
        backend.infer(np.zeros((1, 3, 8, 8), np.float32), mem, mem)


def test_prebuilt_engine_runs_and_is_checked_against_this_machine(standin, files, tmp_path,
                                                                  model):
    standin("10.16.1.11")
    _, onnx_fp16, _ = files
    info = engine.build_engine(onnx_fp16, tmp_path / "pre.engine")
    images, m0, s0 = _frames(model, 2)
    backend = TensorRTBackend(engine_path=info.engine_path, memory=tensorrt_standin.HostMemory)
    want = _run(OnnxRuntimeBackend(onnx_fp16, intra_op_threads=1), images, m0, s0)
    for a, b in zip(_run(backend, images, m0, s0), want, strict=True):
        np.testing.assert_allclose(a["mem_m_out"], b["mem_m_out"], rtol=1e-6, atol=1e-7)
    standin("11.0.0.114")
    with pytest.raises(engine.EngineMismatchError, match="tensorrt_version"):
        TensorRTBackend(engine_path=info.engine_path, memory=tensorrt_standin.HostMemory).load()
