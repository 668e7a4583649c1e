"""TensorRT engine builder: typing per version, TF32, dynamic shapes, timing cache, cache key
and sidecar, staleness, IO validation, one logger, the CLI's one-line errors.

TensorRT cannot be installed on this project's machines and there is no GPU, so these tests run
the real ``depthssd_core.engine`` code against a stand-in ``tensorrt`` module
(``tensorrt_standin.py``) that follows the real bindings of TensorRT 10.3.0, 10.16.1.11,
11.0.0.114 and 11.4.0.106 (names, enum values and signatures checked against them in
``test_tensorrt_standin.py``); the GPU identity is the stand-in's. The "missing tensorrt" and
"no GPU" errors are tested against the real environment.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest
import tensorrt_standin
from onnx import TensorProto, helper

from depthssd_core import engine
from depthssd_core.cli import build_engine as cli
from depthssd_core.graph_contract import INPUT_NAMES, OUTPUT_NAMES

OUT_SHAPES = {"cls_logits": [1, 12, 9], "box_regression": [1, 12, 4], "depth_c": [1, 1, 8, 16],
              "mem_m_out": [1, 2, 4, 4], "mem_s_out": [1, 2, 4, 4]}
TEN, ELEVEN = ("10.3.0", "10.16.1.11"), ("11.0.0.114", "11.4.0.106")


def write_onnx(path, height=32, width=64, drop_output=None, fp16_weights=False,
               dynamic=False):
    """A tiny graph with the DepthSSD IO names (float32 IO like depthssd's exports).

    ``fp16_weights`` adds a float16 weight and a half-precision branch (Cast -> Mul -> Cast),
    like the FP16 export; ``dynamic`` makes the image's height and width dynamic (the
    image-derived outputs follow).
    """
    image_shape = [1, 3, "h", "w"] if dynamic else [1, 3, height, width]
    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, image_shape),
              helper.make_tensor_value_info("mem_m", TensorProto.FLOAT, [1, 2, 4, 4]),
              helper.make_tensor_value_info("mem_s", TensorProto.FLOAT, [1, 2, 4, 4])]
    nodes, weights = [], []
    image = "image"
    if fp16_weights:
        weights = [helper.make_tensor("half_scale", TensorProto.FLOAT16, [], [0.5])]
        nodes += [helper.make_node("Cast", ["image"], ["image_h"], to=TensorProto.FLOAT16,
                                   name="/backbone/Cast"),
                  helper.make_node("Mul", ["image_h", "half_scale"], ["scaled_h"],
                                   name="/backbone/Mul"),
                  helper.make_node("Cast", ["scaled_h"], ["scaled"], to=TensorProto.FLOAT,
                                   name="/backbone/CastBack")]
        image = "scaled"
    nodes.append(helper.make_node("Add", ["mem_m", "mem_s"], ["mem_m_out"],
                                  name="/neck/memory/Add"))
    nodes.append(helper.make_node("Identity", ["mem_s"], ["mem_s_out"]))
    outputs = [helper.make_tensor_value_info("mem_m_out", TensorProto.FLOAT, [1, 2, 4, 4]),
               helper.make_tensor_value_info("mem_s_out", TensorProto.FLOAT, [1, 2, 4, 4])]
    for name in ("cls_logits", "box_regression", "depth_c"):
        nodes.append(helper.make_node("Identity", [image], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, image_shape))
    outputs = [o for o in outputs if o.name != drop_output]
    graph = helper.make_graph(nodes, "fake_depthssd", inputs, outputs, initializer=weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, str(path))
    return path


def test_missing_tensorrt_gives_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # makes `import tensorrt` fail
    with pytest.raises(ImportError, match="onnxruntime"):
        engine.import_tensorrt()
    onnx_path = write_onnx(tmp_path / "m.onnx")
    assert cli.main(["--onnx", str(onnx_path)]) == 1


def test_no_gpu_gives_a_clear_error(monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setitem(sys.modules, "tensorrt", tensorrt_standin.make_tensorrt("10.3.0"))
    with pytest.raises(RuntimeError, match="CUDA GPU"):
        engine.build_engine(write_onnx(tmp_path / "m.onnx"))


@pytest.mark.parametrize("version", TEN + ELEVEN)
def test_strongly_typed_on_every_release_with_tf32_off(standin, tmp_path, version):
    """The default build is strongly typed: on 10.x by the creation flag (its real value is 1
    there), on 11.x always (flag 0 and deprecated, so none is passed); no precision flag;
    TF32 (on by default) cleared so float32 layers really run in FP32."""
    trt = standin(version)
    info = engine.build_engine(write_onnx(tmp_path / "m.onnx", fp16_weights=True),
                               workspace_bytes=123)
    (record,) = trt._standin.builds
    assert record["errors"] == [] and record["strongly_typed"]
    assert record["network_flags"] == (2 if version in TEN else 0)
    assert record["builder_flags"] == [] and record["pinned"] == []
    assert record["workspace"] == 123
    assert info.sidecar["strongly_typed"]
    assert info.sidecar["key_fields"]["precision"] == "fp16"
    builder = info.sidecar["key_fields"]["builder"]
    assert builder["typing"] == "strong" and builder["tf32"] is False
    assert not builder["fp16_flag"] and builder["workspace_bytes"] == 123


@pytest.mark.parametrize("version", TEN)
def test_weakly_typed_fallback_on_10x_pins_the_fp32_islands(standin, tmp_path, version):
    trt = standin(version)
    onnx_path = write_onnx(tmp_path / "m.onnx", fp16_weights=True)
    info = engine.build_engine(onnx_path, network_typing="weak")
    (record,) = trt._standin.builds
    assert record["errors"] == [] and not record["strongly_typed"]
    assert record["builder_flags"] == ["FP16", "OBEY_PRECISION_CONSTRAINTS"]
    # The float32 layers (the casts back, the memory update, the identities on float32
    # tensors) are pinned; the half-precision ones are left to the FP16 flag.
    assert "/neck/memory/Add" in record["pinned"] and "/backbone/CastBack" in record["pinned"]
    assert "/backbone/Mul" not in record["pinned"] and "/backbone/Cast" not in record["pinned"]
    assert info.sidecar["fp32_layers_pinned"] == len(record["pinned"])
    assert not info.sidecar["strongly_typed"]
    # A weak build of an FP32 graph needs no FP16 flag and pins nothing.
    engine.build_engine(write_onnx(tmp_path / "f.onnx"), network_typing="weak")
    assert trt._standin.builds[-1]["builder_flags"] == []


@pytest.mark.parametrize("version", ELEVEN)
def test_weakly_typed_is_refused_on_tensorrt_11(standin, tmp_path, version):
    standin(version)
    with pytest.raises(engine.TensorRTApiError, match=r"BuilderFlag\.FP16"):
        engine.build_engine(write_onnx(tmp_path / "m.onnx"), network_typing="weak")
    code = cli.main(["--onnx", str(tmp_path / "m.onnx"), "--weakly-typed"])
    assert code == 1


def test_a_strongly_typed_network_refuses_the_fp16_flag(standin, tmp_path, monkeypatch):
    """The stand-in fails such a build like TensorRT does (None after an error), and the
    builder reports it in one line; here forced by making the 10.x weak path create a strongly
    typed network."""
    trt = standin("10.3.0")
    monkeypatch.setattr(engine, "tensorrt_version", lambda _trt: (10, 3))
    real_settings = engine.builder_settings
    monkeypatch.setattr(engine, "builder_settings",
                        lambda *a: {**real_settings(*a), "typing": "strong"})
    with pytest.raises(RuntimeError, match="failed to build"):
        engine.build_engine(write_onnx(tmp_path / "m.onnx", fp16_weights=True),
                            network_typing="weak")
    assert any("not allowed for a strongly typed" in e for e in trt._standin.errors())


@pytest.mark.parametrize("version", ("10.3.0", "11.4.0.106"))
def test_dynamic_shapes_build_with_a_fixed_profile_and_validate(standin, tmp_path, version):
    """engine.get_tensor_shape reports -1 for dynamic dims; a fresh build of a dynamic graph
    used to fail its own IO validation."""
    trt = standin(version)
    onnx_path = write_onnx(tmp_path / "d.onnx", dynamic=True)
    with pytest.raises(ValueError, match="pass input_shapes"):
        engine.build_engine(onnx_path)
    with pytest.raises(ValueError, match="does not fit"):
        engine.build_engine(onnx_path, input_shapes={"image": [1, 4, 32, 64]})
    with pytest.raises(ValueError, match="does not have"):
        engine.build_engine(onnx_path, input_shapes={"picture": [1, 3, 32, 64]})
    shapes = {"image": [1, 3, 32, 64]}
    info, _runtime, eng = engine.ensure_engine(onnx_path, input_shapes=shapes)
    assert info.built and len(trt._standin.builds) == 1  # no rebuild: it validated
    assert list(eng.get_tensor_shape("image")) == [1, 3, -1, -1]
    assert engine.engine_io(trt, eng)["inputs"]["image"] == [1, 3, 32, 64]
    assert trt._standin.builds[0]["profiles"][0]["image"] == [[1, 3, 32, 64]] * 3
    assert info.sidecar["key_fields"]["builder"]["fixed_profile_inputs"] == ["image"]
    assert not engine.build_engine(onnx_path, input_shapes=shapes).built
    # Other build shapes: another engine.
    again = engine.build_engine(onnx_path, input_shapes={"image": [1, 3, 64, 64]})
    assert again.built and "input_shapes" in again.sidecar["rebuild_reason"]


def test_timing_cache_per_tensorrt_and_gpu_strictly_attached(standin, tmp_path):
    trt = standin("10.16.1.11")
    onnx_path = write_onnx(tmp_path / "m.onnx")
    first = engine.build_engine(onnx_path)
    timing = first.sidecar["timing_cache"]
    expected = engine.timing_cache_path(tmp_path, "10.16.1.11", tensorrt_standin.DEFAULT_GPU)
    assert timing == {"path": str(expected), "status": "new"} and expected.is_file()
    assert "trt10.16.1.11" in expected.name and ".sm87." in expected.name
    assert all(ignore is False for ignore, _ in trt._standin.timing_cache_attaches)
    # The next build of the same TensorRT on the same GPU loads it.
    second = engine.build_engine(onnx_path, force=True)
    assert second.sidecar["timing_cache"]["status"] == "loaded"
    assert trt._standin.builds[-1]["timing_cache_entries_in"] > 0
    # Another GPU (same name, other SM count) and another TensorRT get their own files.
    other_gpu = {**tensorrt_standin.DEFAULT_GPU, "gpu_sm_count": 8}
    assert engine.timing_cache_path(tmp_path, "10.16.1.11", other_gpu) != expected
    assert engine.timing_cache_path(tmp_path, "11.4.0.106", tensorrt_standin.DEFAULT_GPU) \
        != expected
    standin("10.16.1.11", gpu=other_gpu)
    third = engine.build_engine(onnx_path)
    assert third.sidecar["timing_cache"]["status"] == "new"
    assert third.sidecar["timing_cache"]["path"] != str(expected)


def test_a_foreign_or_corrupt_timing_cache_is_replaced_not_forced(standin, tmp_path):
    onnx_path = write_onnx(tmp_path / "m.onnx")
    shared = tmp_path / "shared.timing.cache"
    standin("10.16.1.11", gpu={**tensorrt_standin.DEFAULT_GPU, "gpu_name": "Other GPU"})
    engine.build_engine(onnx_path, tmp_path / "a.engine", timing_cache=shared)
    trt = standin("10.16.1.11")
    info = engine.build_engine(onnx_path, tmp_path / "b.engine", timing_cache=shared)
    assert info.sidecar["timing_cache"]["status"].startswith("rejected by TensorRT")
    assert trt._standin.timing_cache_attaches == [(False, False), (False, True)]
    assert trt._standin.builds[-1]["timing_cache_entries_in"] == 0  # a fresh cache was used
    shared.write_bytes(b"\x00garbage")
    info = engine.build_engine(onnx_path, tmp_path / "b.engine", timing_cache=shared,
                               force=True)
    assert info.sidecar["timing_cache"]["status"].startswith("unreadable")


def test_cache_key_sidecar_and_staleness(standin, tmp_path):
    trt = standin("10.16.1.11")
    onnx_path = write_onnx(tmp_path / "m.onnx")
    model_sidecar = {"format": "depthssd-onnx/1", "input_height": 32}
    (tmp_path / "m.onnx.json").write_text(json.dumps(model_sidecar))
    first = engine.build_engine(onnx_path)
    assert first.built and first.engine_path == tmp_path / "m.fp32.engine"
    side = json.loads(engine.sidecar_path(first.engine_path).read_text())
    assert side["format"] == engine.SIDECAR_FORMAT
    assert side["key_fields"] == {
        "onnx_sha256": engine.file_sha256(onnx_path), "tensorrt_version": "10.16.1.11",
        **tensorrt_standin.DEFAULT_GPU, "precision": "fp32",
        "input_shapes": {"image": [1, 3, 32, 64], "mem_m": [1, 2, 4, 4],
                         "mem_s": [1, 2, 4, 4]},
        "builder": engine.builder_settings("strong", 2 << 30, [], "fp32")}
    assert side["key"] == engine.cache_key(side["key_fields"])
    assert side["model"] == model_sidecar
    assert not engine.build_engine(onnx_path).built and len(trt._standin.builds) == 1

    def reason(**kwargs) -> str:
        return engine.build_engine(onnx_path, **kwargs).sidecar["rebuild_reason"]

    assert reason(force=True) == "forced"
    assert "builder" in reason(workspace_bytes=1 << 30)  # a builder setting
    standin("10.16.1.11", gpu={**tensorrt_standin.DEFAULT_GPU, "gpu_memory_mib": 8_000})
    assert "gpu_memory_mib" in reason(workspace_bytes=1 << 30)
    standin("11.0.0.114", gpu={**tensorrt_standin.DEFAULT_GPU, "gpu_memory_mib": 8_000})
    assert "tensorrt_version" in reason(workspace_bytes=1 << 30)
    engine.BUILDER_VERSION += 1
    try:
        assert "builder_version" in reason(workspace_bytes=1 << 30)
    finally:
        engine.BUILDER_VERSION -= 1
    write_onnx(onnx_path, height=64)
    assert "onnx_sha256" in reason(workspace_bytes=1 << 30)
    # A sidecar of another format is compared, not silently taken.
    side_path = engine.sidecar_path(first.engine_path)
    old = json.loads(side_path.read_text())
    side_path.write_text(json.dumps({**old, "format": 1}))
    assert "unknown format 1" in reason(workspace_bytes=1 << 30)
    side_path.write_text(json.dumps({**old, "key": "0" * 64}))
    assert reason(workspace_bytes=1 << 30) == "sidecar key does not match its fields"
    side_path.unlink()
    assert reason(workspace_bytes=1 << 30) == "no sidecar"


def test_cache_key_changes_with_every_field():
    builder = engine.builder_settings("strong", 1 << 30, [], "fp16")
    base_args = ("a" * 64, "10.16.1", tensorrt_standin.DEFAULT_GPU, "fp16",
                 {"image": [1, 3, 32, 64]}, builder)
    base = engine.cache_key_fields(*base_args)
    variants = [("b" * 64,), (None, "11.0.0")]
    for gpu_key, value in (("gpu_name", "X"), ("compute_capability", "9.0"),
                           ("gpu_sm_count", 1), ("gpu_memory_mib", 1)):
        variants.append((None, None, {**tensorrt_standin.DEFAULT_GPU, gpu_key: value}))
    variants += [(None, None, None, "fp32"), (None, None, None, None, {"image": [1, 3, 1, 1]})]
    for key, value in (("typing", "weak"), ("workspace_bytes", 1), ("builder_version", 0),
                       ("fixed_profile_inputs", ["image"])):
        variants.append((None,) * 5 + ({**builder, key: value},))
    keys = {engine.cache_key(base)}
    for variant in variants:
        args = [v if v is not None else b for v, b in
                zip(variant + (None,) * (6 - len(variant)), base_args, strict=True)]
        keys.add(engine.cache_key(engine.cache_key_fields(*args)))
    assert len(keys) == 1 + len(variants)
    assert engine.cache_key(base) == engine.cache_key(dict(reversed(list(base.items()))))


def test_io_validation_rebuilds_a_mismatched_engine(standin, tmp_path):
    trt = standin("10.3.0")
    onnx_path = write_onnx(tmp_path / "m.onnx")
    info = engine.build_engine(onnx_path)
    # Another graph's engine under this one's (still current) sidecar.
    other = engine.build_engine(write_onnx(tmp_path / "o.onnx", drop_output="depth_c"),
                                tmp_path / "o.engine")
    info.engine_path.write_bytes(other.engine_path.read_bytes())
    info2, _, eng = engine.ensure_engine(onnx_path)
    assert info2.built and len(trt._standin.builds) == 3
    names = {eng.get_tensor_name(i) for i in range(eng.num_io_tensors)}
    assert names == set(INPUT_NAMES) | set(OUTPUT_NAMES)
    # An unreadable engine file is rebuilt too.
    info.engine_path.write_bytes(b"\x00garbage")
    assert engine.ensure_engine(onnx_path)[0].built


def test_io_mismatch_after_a_fresh_build_fails_loudly(standin, tmp_path):
    trt = standin("10.16.1.11")
    trt._standin.drop_output = "depth_c"  # a "parser" that loses an output
    with pytest.raises(engine.EngineMismatchError, match="missing output 'depth_c'"):
        engine.ensure_engine(write_onnx(tmp_path / "m.onnx"))


def test_parse_and_build_failures_are_one_line_errors(standin, tmp_path, capsys):
    trt = standin("11.4.0.106")
    onnx_path = write_onnx(tmp_path / "m.onnx")
    trt._standin.parse_error = "unsupported operator Foo"
    with pytest.raises(RuntimeError, match=r"could not parse .*unsupported operator Foo"):
        engine.build_engine(onnx_path)
    trt._standin.parse_error = None
    trt._standin.build_fails = True
    assert cli.main(["--onnx", str(onnx_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "failed to build an engine" in err
    assert not (tmp_path / "m.fp32.engine").exists()


def test_one_logger_for_every_builder_parser_and_runtime(standin, tmp_path):
    trt = standin("10.3.0")
    onnx_path = write_onnx(tmp_path / "m.onnx")
    engine.ensure_engine(onnx_path)
    engine.ensure_engine(onnx_path, force=True)
    assert len(trt._standin.loggers) == 1
    assert trt._standin.loggers[0].min_severity == trt.Logger.WARNING


def test_prebuilt_engine_is_checked_against_this_machine(standin, tmp_path):
    standin("10.3.0")
    info = engine.build_engine(write_onnx(tmp_path / "m.onnx"))
    trt = standin("10.3.0")
    assert engine.check_prebuilt_engine(trt, info.engine_path) == info.sidecar["expected_io"]
    trt = standin("10.16.1.11")
    with pytest.raises(engine.EngineMismatchError, match=r"tensorrt_version: '10\.3\.0'"):
        engine.check_prebuilt_engine(trt, info.engine_path)
    trt = standin("10.3.0", gpu={**tensorrt_standin.DEFAULT_GPU, "gpu_name": "Orin"})
    with pytest.raises(engine.EngineMismatchError, match="gpu_name"):
        engine.check_prebuilt_engine(trt, info.engine_path)
    engine.sidecar_path(info.engine_path).unlink()
    assert engine.check_prebuilt_engine(trt, info.engine_path) is None  # names only then
    # A plan of another TensorRT does not deserialize (real plans are version-bound).
    with pytest.raises(RuntimeError, match="could not deserialize"):
        engine.load_engine(standin("11.0.0.114"), info.engine_path, None)


def test_an_unsupported_tensorrt_is_one_line(standin, tmp_path, capsys):
    trt = standin("10.3.0")
    del trt.IExecutionContext.execute_async_v3  # like a release that renamed it
    with pytest.raises(engine.TensorRTApiError, match=r"IExecutionContext\.execute_async_v3"):
        engine.import_tensorrt()
    trt.__version__ = "8.6.1"
    assert cli.main(["--onnx", str(write_onnx(tmp_path / "m.onnx"))]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TensorRT 8.6.1 does not have the API" in err


def test_an_api_signature_mismatch_is_one_line(standin, tmp_path, capsys, monkeypatch):
    trt = standin("11.4.0.106")

    def renamed(self, pool, size_bytes):  # another signature than the code calls with
        raise TypeError("set_memory_pool_limit(): incompatible function arguments")

    monkeypatch.setattr(trt.IBuilderConfig, "set_memory_pool_limit", renamed)
    assert cli.main(["--onnx", str(write_onnx(tmp_path / "m.onnx"))]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "TensorRT 11.4.0.106 API mismatch" in err


def test_io_differences_reports_shapes():
    got = {"inputs": {"image": [1, 3, 32, 64], "mem_m": [1, 3, -1, -1]},
           "outputs": {"x": [1, 5], "z": [1, -1]}}
    want = {"inputs": {"image": [1, 3, 64, 64], "mem_m": [1, 3, 8, 8]},
            "outputs": {"x": [1, -1], "y": [2], "z": [1, 7]}}
    assert engine.io_differences(got, want) == [
        "input 'image' has shape [1, 3, 32, 64], expected [1, 3, 64, 64]",
        "input 'mem_m' has shape [1, 3, -1, -1], expected [1, 3, 8, 8]",
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


def test_cli_builds_then_reuses(standin, tmp_path, capsys):
    standin("11.0.0.114")
    onnx_path = write_onnx(tmp_path / "m.onnx")
    engine_path = tmp_path / "out" / "x.engine"
    assert cli.main(["--onnx", str(onnx_path), "--engine", str(engine_path),
                     "--build-only"]) == 0
    out = capsys.readouterr().out
    assert "built engine" in out and "strongly typed" in out and engine_path.is_file()
    assert "timing cache" in out and ": new" in out
    assert cli.main(["--onnx", str(onnx_path), "--engine", str(engine_path)]) == 0
    assert "reused cached engine" in capsys.readouterr().out
    assert cli.main(["--onnx", str(tmp_path / "missing.onnx")]) == 1
    assert "missing.onnx" in capsys.readouterr().err


def test_cli_takes_build_shapes_of_dynamic_inputs(standin, tmp_path, capsys):
    trt = standin("10.3.0")
    onnx_path = write_onnx(tmp_path / "d.onnx", dynamic=True)
    assert cli.main(["--onnx", str(onnx_path)]) == 1
    assert "pass input_shapes" in capsys.readouterr().err
    assert cli.main(["--onnx", str(onnx_path), "--input-shape", "image=1x3x24x40"]) == 0
    assert trt._standin.builds[-1]["profiles"][0]["image"] == [[1, 3, 24, 40]] * 3
    assert cli.main(["--onnx", str(onnx_path), "--input-shape", "image=1x3xbig"]) == 1
    assert "expected NAME=DIMS" in capsys.readouterr().err
