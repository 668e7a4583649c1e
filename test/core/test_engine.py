"""TensorRT engine cache, sidecar, staleness/rebuild decisions, IO validation, API branching.

TensorRT cannot be installed on this project's machines and there is no GPU, so these tests run
the real ``depthssd_core.engine`` code against a test double of the ``tensorrt`` module
(``FakeTensorRT`` below) that implements the documented 10.x/11.x builder/runtime API surface
this code uses and records the flags it was given; the GPU identity is patched too. The
"missing tensorrt" and "no GPU" errors are tested against the real environment.
"""

from __future__ import annotations

import json
import sys
import types

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from depthssd_core import engine
from depthssd_core.cli import build_engine as cli
from depthssd_core.graph_contract import INPUT_NAMES, OUTPUT_NAMES

OUT_SHAPES = {"cls_logits": [1, 12, 9], "box_regression": [1, 12, 4], "depth_c": [1, 1, 8, 16],
              "mem_m_out": [1, 2, 4, 4], "mem_s_out": [1, 2, 4, 4]}


def write_onnx(path, fp16=True, height=32, width=64, drop_output=None, fp16_weights=False):
    """A tiny graph with the DepthSSD IO names and shapes (Identity ops only); ``fp16_weights``
    keeps float32 IO but adds a float16 weight, like depthssd's FP16 export."""
    elem = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("image", elem, [1, 3, height, width]),
              helper.make_tensor_value_info("mem_m", TensorProto.FLOAT, [1, 2, 4, 4]),
              helper.make_tensor_value_info("mem_s", TensorProto.FLOAT, [1, 2, 4, 4])]
    outputs, nodes = [], []
    for name, shape in OUT_SHAPES.items():
        if name == drop_output:
            continue
        src = {"mem_m_out": "mem_m", "mem_s_out": "mem_s"}.get(name, "image")
        nodes.append(helper.make_node("Identity", [src], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, shape))
    weights = [helper.make_tensor("w", TensorProto.FLOAT16, [2], [0.5, 1.0])] \
        if fp16_weights else []
    graph = helper.make_graph(nodes, "fake_depthssd", inputs, outputs, initializer=weights)
    onnx.save(helper.make_model(graph), str(path))
    return path


class FakeTensorRT(types.ModuleType):
    """Stand-in for the ``tensorrt`` module (see the module docstring)."""

    def __init__(self, version: str, drop_output: str | None = None):
        super().__init__("tensorrt")
        self.__version__ = version
        self.builds: list[dict] = []
        fake = self
        major_minor = tuple(int(p) for p in version.split(".")[:2])

        class Logger:
            WARNING = 2

            def __init__(self, severity=None):
                self.severity = severity

        class NetworkDefinitionCreationFlag:
            STRONGLY_TYPED = 1

        flag_names = {"TF32": 3, "OBEY_PRECISION_CONSTRAINTS": 4}
        if major_minor < (11, 0):
            flag_names["FP16"] = 0
        self.BuilderFlag = type("BuilderFlag", (), flag_names)  # TRT 11: no FP16 flag
        self.MemoryPoolType = type("MemoryPoolType", (), {"WORKSPACE": 0})
        self.TensorIOMode = type("TensorIOMode", (), {"INPUT": "in", "OUTPUT": "out"})
        self.DataType = type("DataType", (), {"FLOAT": "f32", "HALF": "f16", "INT32": "i32",
                                              "BOOL": "b"})

        class Tensor:
            def __init__(self, name, shape, dtype):
                self.name, self.shape, self.dtype = name, tuple(shape), dtype

        class Layer:
            def __init__(self, name, out_dtype):
                self.name, self.precision, self.output_types = name, None, {}
                self.outputs = [Tensor(name, (1,), out_dtype)]

            num_outputs = property(lambda self: len(self.outputs))

            def get_output(self, j):
                return self.outputs[j]

            def set_output_type(self, j, dtype):
                self.output_types[j] = dtype

        class Network:
            def __init__(self, flags):
                self.flags = flags
                self.inputs, self.outputs = [], []
                # Like an FP16 export: half layers plus a float32 memory island and a shape op.
                self.layers = [Layer("/backbone/Conv", "f16"), Layer("/neck/memory/MatMul", "f32"),
                               Layer("/neck/Shape", "i32")]
                fake.network = self

            num_layers = property(lambda self: len(self.layers))

            def get_layer(self, i):
                return self.layers[i]

            num_inputs = property(lambda self: len(self.inputs))
            num_outputs = property(lambda self: len(self.outputs))

            def get_input(self, i):
                return self.inputs[i]

            def get_output(self, i):
                return self.outputs[i]

        class OnnxParser:
            num_errors = 0

            def __init__(self, network, logger):
                self.network = network

            def parse_from_file(self, path):
                io = engine.onnx_io(path)
                for name, spec in io["inputs"].items():
                    self.network.inputs.append(Tensor(name, spec["shape"], spec["dtype"]))
                for name, spec in io["outputs"].items():
                    if name != drop_output:
                        self.network.outputs.append(Tensor(name, spec["shape"], spec["dtype"]))
                return True

        class TimingCache:
            def __init__(self, data):
                self.data = data

            def serialize(self):
                return self.data + b"+timing"

        class Config:
            def __init__(self):
                self.flags, self.pools, self.cache = set(), {}, None

            def set_memory_pool_limit(self, pool, size):
                self.pools[pool] = size

            def set_flag(self, flag):
                self.flags.add(flag)

            def create_timing_cache(self, data):
                return TimingCache(bytes(data))

            def set_timing_cache(self, cache, ignore_mismatch):
                self.cache = cache
                return True

            def get_timing_cache(self):
                return self.cache

        class Builder:
            def __init__(self, logger):
                pass

            def create_network(self, flags=0):
                return Network(flags)

            def create_builder_config(self):
                return Config()

            def build_serialized_network(self, network, config):
                record = {"network_flags": network.flags, "builder_flags": sorted(config.flags),
                          "workspace": config.pools.get(0),
                          "timing_cache_in": config.cache.data.decode() if config.cache else None}
                fake.builds.append(record)
                io = [{"name": t.name, "mode": "in", "shape": list(t.shape)}
                      for t in network.inputs]
                io += [{"name": t.name, "mode": "out", "shape": list(t.shape)}
                       for t in network.outputs]
                return json.dumps({"io": io}).encode()

        class Engine:
            def __init__(self, io):
                self.io = io

            num_io_tensors = property(lambda self: len(self.io))

            def get_tensor_name(self, i):
                return self.io[i]["name"]

            def _get(self, name):
                return next(t for t in self.io if t["name"] == name)

            def get_tensor_mode(self, name):
                return self._get(name)["mode"]

            def get_tensor_shape(self, name):
                return tuple(self._get(name)["shape"])

        class Runtime:
            def __init__(self, logger):
                pass

            def deserialize_cuda_engine(self, data):
                try:
                    return Engine(json.loads(bytes(data))["io"])
                except ValueError:
                    return None

        self.Logger, self.Builder, self.OnnxParser, self.Runtime = Logger, Builder, OnnxParser, \
            Runtime
        self.NetworkDefinitionCreationFlag = NetworkDefinitionCreationFlag


GPU = {"gpu_name": "NVIDIA Fake 100", "compute_capability": "8.7"}


@pytest.fixture
def fake_trt(monkeypatch):
    """Install a FakeTensorRT of the requested version and a fake GPU; returns a factory."""
    monkeypatch.setattr(engine, "gpu_identity", lambda device_index=0: dict(GPU))

    def install(version="10.12.0", **kwargs):
        module = FakeTensorRT(version, **kwargs)
        monkeypatch.setitem(sys.modules, "tensorrt", module)
        return module

    return install


def test_missing_tensorrt_gives_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` fail
    with pytest.raises(ImportError, match="onnxruntime"):
        engine.import_tensorrt()
    onnx_path = write_onnx(tmp_path / "m.onnx")
    assert cli.main(["--onnx", str(onnx_path)]) == 1


def test_no_gpu_gives_a_clear_error(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "tensorrt", FakeTensorRT("10.12.0"))
    with pytest.raises(RuntimeError, match="CUDA GPU"):
        engine.build_engine(write_onnx(tmp_path / "m.onnx"))


@pytest.mark.parametrize(("version", "fp16", "fp16_weights", "strongly_typed", "fp16_flag"), [
    ("10.3.0", True, False, False, True),   # JetPack 6: weakly typed + FP16 flag
    ("10.3.0", False, True, False, True),   # FP16 weights behind float32 IO: still FP16
    ("10.3.0", False, False, False, False),  # FP32 export: no FP16 flag
    ("10.12.0", True, False, True, False),  # strongly typed from 10.12
    ("11.0.1", False, True, True, False),   # TensorRT 11 has no FP16 flag at all
])
def test_api_version_branching(fake_trt, tmp_path, version, fp16, fp16_weights, strongly_typed,
                               fp16_flag):
    trt = fake_trt(version)
    info = engine.build_engine(write_onnx(tmp_path / "m.onnx", fp16=fp16,
                                          fp16_weights=fp16_weights), workspace_bytes=123)
    (record,) = trt.builds
    assert bool(record["network_flags"] & (1 << trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
                ) == strongly_typed
    assert (0 in record["builder_flags"]) == fp16_flag
    assert record["workspace"] == 123
    assert info.sidecar["strongly_typed"] == strongly_typed
    # A weakly typed FP16 build pins the graph's float32 layers (the memory island) to FP32.
    pinned = {layer.name: layer.precision for layer in trt.network.layers}
    if fp16_flag:
        assert pinned == {"/backbone/Conv": None, "/neck/memory/MatMul": "f32",
                          "/neck/Shape": None}
        assert 4 in record["builder_flags"]
    else:
        assert set(pinned.values()) == {None} and 4 not in record["builder_flags"]
    assert info.sidecar["key_fields"]["precision"] == ("fp16" if fp16 or fp16_weights
                                                       else "fp32")


def test_cache_key_sidecar_and_staleness(fake_trt, tmp_path, monkeypatch):
    trt = fake_trt("10.12.0")
    onnx_path = write_onnx(tmp_path / "m.onnx")
    model_sidecar = {"format": "depthssd-onnx/1", "input_height": 32}
    (tmp_path / "m.onnx.json").write_text(json.dumps(model_sidecar))
    first = engine.build_engine(onnx_path)
    assert first.built and first.engine_path == tmp_path / "m.fp16.engine"
    side = json.loads(engine.sidecar_path(first.engine_path).read_text())
    assert side["key_fields"] == {
        "onnx_sha256": engine.file_sha256(onnx_path), "tensorrt_version": "10.12.0",
        "gpu_name": GPU["gpu_name"], "compute_capability": "8.7", "precision": "fp16",
        "input_shapes": {"image": [1, 3, 32, 64], "mem_m": [1, 2, 4, 4],
                         "mem_s": [1, 2, 4, 4]}}
    assert side["key"] == engine.cache_key(side["key_fields"])
    assert side["model"] == model_sidecar
    # Timing cache written after the build and fed to the next one.
    timing = tmp_path / "depthssd.timing.cache"
    assert timing.read_bytes() == b"+timing"
    # Unchanged: reused.
    assert not engine.build_engine(onnx_path).built
    assert len(trt.builds) == 1
    # Forced: rebuilt, with the previous timing cache.
    assert engine.build_engine(onnx_path, force=True).built
    assert trt.builds[-1]["timing_cache_in"] == "+timing"
    # New TensorRT version: stale.
    fake_trt("10.13.1")
    again = engine.build_engine(onnx_path)
    assert again.built and "tensorrt_version" in again.sidecar["rebuild_reason"]
    # Another GPU: stale.
    monkeypatch.setattr(engine, "gpu_identity",
                        lambda device_index=0: {"gpu_name": "Orin", "compute_capability": "8.7"})
    assert "gpu_name" in engine.build_engine(onnx_path).sidecar["rebuild_reason"]
    # Changed ONNX (other input size): stale, and the shapes are in the reason.
    write_onnx(onnx_path, height=64)
    reason = engine.build_engine(onnx_path).sidecar["rebuild_reason"]
    assert "onnx_sha256" in reason and "input_shapes" in reason
    # Missing sidecar: stale.
    engine.sidecar_path(first.engine_path).unlink()
    assert engine.build_engine(onnx_path).sidecar["rebuild_reason"] == "no readable sidecar"


def test_cache_key_changes_with_every_field():
    base = engine.cache_key_fields("a" * 64, "10.12.0", GPU, "fp16", {"image": [1, 3, 32, 64]})
    variants = [
        engine.cache_key_fields("b" * 64, "10.12.0", GPU, "fp16", {"image": [1, 3, 32, 64]}),
        engine.cache_key_fields("a" * 64, "11.0.0", GPU, "fp16", {"image": [1, 3, 32, 64]}),
        engine.cache_key_fields("a" * 64, "10.12.0", {**GPU, "compute_capability": "9.0"},
                                "fp16", {"image": [1, 3, 32, 64]}),
        engine.cache_key_fields("a" * 64, "10.12.0", GPU, "fp32", {"image": [1, 3, 32, 64]}),
        engine.cache_key_fields("a" * 64, "10.12.0", GPU, "fp16", {"image": [1, 3, 64, 64]}),
    ]
    keys = {engine.cache_key(base)} | {engine.cache_key(v) for v in variants}
    assert len(keys) == 6
    assert engine.cache_key(base) == engine.cache_key(dict(reversed(list(base.items()))))


def test_io_validation_rebuilds_a_mismatched_engine(fake_trt, tmp_path):
    trt = fake_trt("10.12.0")
    onnx_path = write_onnx(tmp_path / "m.onnx")
    info = engine.build_engine(onnx_path)
    # Corrupt the cached engine's IO while its sidecar still says it is current.
    data = json.loads(info.engine_path.read_bytes())
    data["io"] = [t for t in data["io"] if t["name"] != "depth_c"]
    info.engine_path.write_bytes(json.dumps(data).encode())
    info2, _, eng = engine.ensure_engine(onnx_path)
    assert info2.built and len(trt.builds) == 2
    names = {eng.get_tensor_name(i) for i in range(eng.num_io_tensors)}
    assert names == set(INPUT_NAMES) | set(OUTPUT_NAMES)
    # An unreadable engine file is rebuilt too.
    info.engine_path.write_bytes(b"\x00garbage")
    assert engine.ensure_engine(onnx_path)[0].built


def test_io_mismatch_after_a_fresh_build_fails_loudly(fake_trt, tmp_path):
    fake_trt("10.12.0", drop_output="depth_c")  # a "parser" that loses an output
    with pytest.raises(engine.EngineMismatchError, match="missing output 'depth_c'"):
        engine.ensure_engine(write_onnx(tmp_path / "m.onnx"))


def test_io_differences_reports_shapes():
    got = {"inputs": {"image": [1, 3, 32, 64]}, "outputs": {"x": [1, 5]}}
    want = {"inputs": {"image": [1, 3, 64, 64]}, "outputs": {"x": [1, -1], "y": [2]}}
    assert engine.io_differences(got, want) == [
        "input 'image' has shape [1, 3, 32, 64], expected [1, 3, 64, 64]",
        "missing output 'y'"]


def test_engine_path_falls_back_to_user_cache_when_read_only(tmp_path, monkeypatch):
    folder = tmp_path / "ro"
    folder.mkdir()
    monkeypatch.setattr(engine, "_writable_dir", lambda p: False)
    monkeypatch.delenv("DEPTHSSD_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert engine.default_engine_path(folder / "m.onnx", "fp16") == \
        tmp_path / "cache" / "depthssd" / "engines" / "m.fp16.engine"


def test_bad_onnx_files_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothere\.onnx"):
        engine.onnx_io(tmp_path / "nothere.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match=r"bad\.onnx"):
        engine.onnx_io(bad)


def test_cli_builds_then_reuses(fake_trt, tmp_path, capsys):
    fake_trt("11.0.0")
    onnx_path = write_onnx(tmp_path / "m.onnx")
    engine_path = tmp_path / "out" / "x.engine"
    assert cli.main(["--onnx", str(onnx_path), "--engine", str(engine_path),
                     "--build-only"]) == 0
    assert "built engine" in capsys.readouterr().out and engine_path.is_file()
    assert cli.main(["--onnx", str(onnx_path), "--engine", str(engine_path)]) == 0
    assert "reused cached engine" in capsys.readouterr().out
    assert cli.main(["--onnx", str(tmp_path / "missing.onnx")]) == 1
    assert "missing.onnx" in capsys.readouterr().err
