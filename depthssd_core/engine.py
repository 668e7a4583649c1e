"""TensorRT engine builder and cache.

Engines are built from the exported ONNX on the machine that runs them, cached next to the ONNX
(or in the user cache directory, ``depthssd_core.cache``, when that is read-only) and never
committed. Every engine has a JSON sidecar (``graph_contract.sidecar_path``) holding its cache
key: the ONNX sha256, the TensorRT version, the GPU name and compute capability, the precision
and the input shapes. An engine whose key differs from the
current one is stale and is rebuilt; an engine whose IO tensors do not match the ONNX graph is
rebuilt once, then reported with what differs.

TensorRT API branches:

- TensorRT >= 10.12 (including 11): a **strongly typed** network
  (``NetworkDefinitionCreationFlag.STRONGLY_TYPED``); precision comes from the ONNX itself (the
  FP16 export), and TensorRT 11 has no ``BuilderFlag.FP16`` at all.
- Older TensorRT (10.3 on JetPack 6): weakly typed network with ``BuilderFlag.FP16``.

``tensorrt`` is imported lazily, so this module imports on machines without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from depthssd_core.cache import user_cache_dir
from depthssd_core.graph_contract import (
    INPUT_NAMES,
    OUTPUT_NAMES,
    read_onnx_sidecar,
    read_sidecar,
    sidecar_path,
)
from depthssd_core.hashing import file_sha256

#: First TensorRT version that builds the strongly typed network from the FP16 ONNX.
STRONGLY_TYPED_MIN_VERSION = (10, 12)
SIDECAR_FORMAT = 1


class EngineMismatchError(ValueError):
    """An engine's IO tensors differ from what the graph/runtime expects."""


def import_tensorrt() -> Any:
    """Import the ``tensorrt`` module or raise ``ImportError`` saying how to get it."""
    try:
        return importlib.import_module("tensorrt")
    except ImportError as exc:
        raise ImportError(
            "the tensorrt backend needs NVIDIA TensorRT's Python package ('tensorrt', 10.x or "
            "11.x, from NVIDIA's package index or JetPack) and a CUDA GPU; use "
            "backend='onnxruntime' or 'torch' on this machine"
        ) from exc


def tensorrt_version(trt: Any) -> tuple[int, int]:
    """(major, minor) of a tensorrt module's ``__version__``."""
    parts = str(trt.__version__).split(".")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


def uses_strongly_typed(trt: Any) -> bool:
    """Whether this TensorRT builds strongly typed networks (>= 10.12, and always for 11)."""
    return tensorrt_version(trt) >= STRONGLY_TYPED_MIN_VERSION


def gpu_identity(device_index: int = 0) -> dict[str, str]:
    """Name and compute capability of the CUDA GPU engines are built for.

    Raises:
        RuntimeError: no CUDA GPU is visible.
    """
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(
            "TensorRT engines need a CUDA GPU and none is visible (torch.cuda.is_available() "
            "is False); use backend='onnxruntime' or 'torch'"
        )
    major, minor = torch.cuda.get_device_capability(device_index)
    return {"gpu_name": torch.cuda.get_device_name(device_index),
            "compute_capability": f"{major}.{minor}"}


def onnx_io(onnx_path: str | Path) -> dict[str, dict[str, Any]]:
    """Names, shapes (None for dynamic dims) and element types of an ONNX graph's IO.

    Returns:
        {"inputs": {name: {"shape": [...], "dtype": "float16"|...}}, "outputs": {...},
        "fp16_weights": whether any initializer is float16}.
    """
    import onnx

    path = Path(onnx_path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ValueError(f"cannot read ONNX model {path}: {exc}") from exc

    def describe(values) -> dict[str, dict[str, Any]]:
        out = {}
        for value in values:
            tensor = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor.shape.dim]
            out[value.name] = {"shape": dims,
                               "dtype": onnx.helper.tensor_dtype_to_np_dtype(
                                   tensor.elem_type).name}
        return out

    initializers = {init.name for init in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    fp16_weights = any(init.data_type == onnx.TensorProto.FLOAT16
                       for init in model.graph.initializer)
    return {"inputs": describe(inputs), "outputs": describe(model.graph.output),
            "fp16_weights": fp16_weights}


def onnx_precision(io: dict[str, Any]) -> str:
    """``fp16`` when the graph computes in half precision, else ``fp32``.

    depthssd's FP16 export keeps float32 IO (its image input is cast inside the graph), so
    the weights decide; a float16 image input counts too.
    """
    image = io["inputs"].get("image", next(iter(io["inputs"].values()), {}))
    return "fp16" if io.get("fp16_weights") or image.get("dtype") == "float16" else "fp32"


def cache_key_fields(onnx_sha256: str, trt_version: str, gpu: dict[str, str], precision: str,
                     input_shapes: dict[str, list[int]]) -> dict[str, Any]:
    """The values an engine depends on; any change makes a cached engine stale."""
    return {
        "onnx_sha256": onnx_sha256,
        "tensorrt_version": str(trt_version),
        "gpu_name": gpu["gpu_name"],
        "compute_capability": gpu["compute_capability"],
        "precision": precision,
        "input_shapes": {k: [int(d) for d in v] for k, v in sorted(input_shapes.items())},
    }


def cache_key(fields: dict[str, Any]) -> str:
    """Stable hex digest of :func:`cache_key_fields`."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _writable_dir(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK)


def default_engine_path(onnx_path: str | Path, precision: str) -> Path:
    """``<onnx stem>.<precision>.engine`` next to the ONNX, or in the user cache if read-only."""
    onnx_path = Path(onnx_path)
    name = f"{onnx_path.stem}.{precision}.engine"
    if _writable_dir(onnx_path.parent):
        return onnx_path.with_name(name)
    return user_cache_dir() / "engines" / name


def read_engine_sidecar(engine_path: str | Path) -> dict[str, Any] | None:
    """The engine's sidecar, or None when missing or unreadable (then the engine is stale)."""
    try:
        return read_sidecar(engine_path, SIDECAR_FORMAT)
    except (OSError, ValueError):
        return None


def stale_reason(engine_path: str | Path, key_fields: dict[str, Any]) -> str | None:
    """Why the cached engine at ``engine_path`` cannot be reused, or None when it can."""
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        return "no engine file"
    sidecar = read_engine_sidecar(engine_path)
    if sidecar is None:
        return "no readable sidecar"
    cached = sidecar.get("key_fields", {})
    changed = [k for k in key_fields if cached.get(k) != key_fields[k]]
    if changed:
        details = ", ".join(f"{k}: {cached.get(k)!r} -> {key_fields[k]!r}" for k in changed)
        return f"cache key changed ({details})"
    return None


def expected_io(io: dict[str, dict[str, Any]], input_shapes: dict[str, list[int]],
                ) -> dict[str, dict[str, Any]]:
    """The engine IO implied by the ONNX graph: inputs at the build shapes, outputs by name."""
    return {
        "inputs": {n: list(input_shapes[n]) for n in io["inputs"]},
        "outputs": {n: [d if d is not None else -1 for d in v["shape"]]
                    for n, v in io["outputs"].items()},
    }


def engine_io(trt: Any, engine: Any) -> dict[str, dict[str, list[int]]]:
    """Names and shapes of a deserialized engine's IO tensors."""
    result: dict[str, dict[str, list[int]]] = {"inputs": {}, "outputs": {}}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        mode = engine.get_tensor_mode(name)
        kind = "inputs" if mode == trt.TensorIOMode.INPUT else "outputs"
        result[kind][name] = [int(d) for d in engine.get_tensor_shape(name)]
    return result


def io_differences(actual: dict[str, dict[str, list[int]]],
                   expected: dict[str, dict[str, list[int]]]) -> list[str]:
    """Human-readable differences between two IO descriptions (empty when they agree).

    A -1 (dynamic) dimension in ``expected`` matches any size.
    """
    problems = []
    for kind in ("inputs", "outputs"):
        got, want = actual.get(kind, {}), expected.get(kind, {})
        for name in sorted(set(want) - set(got)):
            problems.append(f"missing {kind[:-1]} {name!r}")
        for name in sorted(set(got) - set(want)):
            problems.append(f"unexpected {kind[:-1]} {name!r}")
        for name in sorted(set(got) & set(want)):
            g, w = list(got[name]), list(want[name])
            same = len(g) == len(w) and all(b in (-1, None) or a == b
                                            for a, b in zip(g, w, strict=True))
            if not same:
                problems.append(f"{kind[:-1]} {name!r} has shape {g}, expected {w}")
    return problems


@dataclass
class EngineInfo:
    """A ready engine file: where it is, its sidecar and whether this call built it."""

    engine_path: Path
    sidecar: dict[str, Any]
    built: bool


def _resolve_input_shapes(io: dict[str, dict[str, Any]],
                          input_shapes: dict[str, list[int]] | None) -> dict[str, list[int]]:
    shapes = {}
    for name, spec in io["inputs"].items():
        if input_shapes and name in input_shapes:
            shapes[name] = [int(d) for d in input_shapes[name]]
        elif all(isinstance(d, int) and d > 0 for d in spec["shape"]):
            shapes[name] = list(spec["shape"])
        else:
            raise ValueError(
                f"ONNX input {name!r} has dynamic shape {spec['shape']}; pass input_shapes"
            )
    return shapes


def _keep_fp32_islands(trt: Any, network: Any, config: Any) -> int:
    """Pin the layers the FP16 export computes in float32 (Titans memory, HoPE angles, depth
    decoding) to FP32 in a weakly typed build, where the FP16 flag would otherwise let TensorRT
    run them in half precision (the memory state is carried across frames, so rounding in its
    update would accumulate over a drive; see ``depthssd_core/model/memory.py``).

    Returns:
        The number of layers pinned.
    """
    float32 = trt.DataType.FLOAT
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if outputs and all(t.dtype == float32 for t in outputs):
            layer.precision = float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, float32)
            pinned += 1
    if pinned:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return pinned


def _build(trt: Any, onnx_path: Path, engine_path: Path, input_shapes: dict[str, list[int]],
           precision: str, workspace_bytes: int, timing_cache: Path | None) -> list[dict]:
    """Build and write a serialized engine; return the network's IO description."""
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    strongly_typed = uses_strongly_typed(trt)
    flags = 0
    if strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if not strongly_typed and precision == "fp16":
        # Weakly typed (TensorRT < 10.12): FP16 kernels are allowed by flag, not by the graph.
        config.set_flag(trt.BuilderFlag.FP16)
        _keep_fp32_islands(trt, network, config)
    dynamic = any(-1 in tuple(network.get_input(i).shape) for i in range(network.num_inputs))
    if dynamic:
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            name = network.get_input(i).name
            shape = tuple(input_shapes[name])
            profile.set_shape(name, shape, shape, shape)
        config.add_optimization_profile(profile)
    cache = None
    if timing_cache is not None:
        data = timing_cache.read_bytes() if timing_cache.is_file() else b""
        cache = config.create_timing_cache(data)
        config.set_timing_cache(cache, ignore_mismatch=True)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} (see log above)")
    engine_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = engine_path.with_name(engine_path.name + ".tmp")
    tmp.write_bytes(bytes(serialized))
    os.replace(tmp, engine_path)
    if cache is not None:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        timing_cache.write_bytes(bytes(config.get_timing_cache().serialize()))
    tensors = []
    for i in range(network.num_inputs):
        t = network.get_input(i)
        tensors.append({"name": t.name, "mode": "input", "shape": list(input_shapes[t.name]),
                        "dtype": str(t.dtype)})
    for i in range(network.num_outputs):
        t = network.get_output(i)
        tensors.append({"name": t.name, "mode": "output", "shape": [int(d) for d in t.shape],
                        "dtype": str(t.dtype)})
    return tensors


def build_engine(onnx_path: str | Path, engine_path: str | Path | None = None,
                 force: bool = False, workspace_bytes: int = 2 << 30,
                 timing_cache: str | Path | None = None,
                 input_shapes: dict[str, list[int]] | None = None) -> EngineInfo:
    """Build the TensorRT engine of an ONNX graph, or reuse the cached one if still valid.

    Args:
        onnx_path: exported DepthSSD graph.
        engine_path: where the engine goes; default :func:`default_engine_path`.
        force: rebuild even when the cached engine is current.
        workspace_bytes: TensorRT workspace memory pool limit.
        timing_cache: timing cache file, read if present and written after the build;
            default ``<engine dir>/depthssd.timing.cache``.
        input_shapes: build shapes of dynamic inputs (static ONNX shapes are used otherwise).

    Returns:
        :class:`EngineInfo`.

    Raises:
        ImportError: tensorrt is not installed.
        RuntimeError: no GPU, or the parse/build failed.
        FileNotFoundError / ValueError: the ONNX file is missing or unreadable.
    """
    trt = import_tensorrt()
    onnx_path = Path(onnx_path)
    io = onnx_io(onnx_path)
    gpu = gpu_identity()
    precision = onnx_precision(io)
    shapes = _resolve_input_shapes(io, input_shapes)
    fields = cache_key_fields(file_sha256(onnx_path), str(trt.__version__), gpu, precision,
                              shapes)
    engine_path = Path(engine_path) if engine_path else default_engine_path(onnx_path, precision)
    reason = "forced" if force else stale_reason(engine_path, fields)
    if reason is None:
        return EngineInfo(engine_path, read_engine_sidecar(engine_path) or {}, built=False)
    timing = Path(timing_cache) if timing_cache else engine_path.parent / "depthssd.timing.cache"
    tensors = _build(trt, onnx_path, engine_path, shapes, precision, workspace_bytes, timing)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "key": cache_key(fields),
        "key_fields": fields,
        "onnx_path": str(onnx_path.resolve()),
        "strongly_typed": uses_strongly_typed(trt),
        "tensors": tensors,
        "expected_io": expected_io(io, shapes),
        "rebuild_reason": reason,
    }
    # The model sidecar is informational here; a missing or broken one is the runtime's to
    # report.
    with contextlib.suppress(OSError, ValueError):
        sidecar["model"] = read_onnx_sidecar(onnx_path, verify_hash=False)
    sidecar_path(engine_path).write_text(json.dumps(sidecar, indent=2))
    return EngineInfo(engine_path, sidecar, built=True)


def load_engine(trt: Any, engine_path: str | Path, expected: dict | None, logger: Any = None):
    """Deserialize an engine and check its IO against ``expected``.

    Returns:
        (runtime, engine); keep the runtime alive as long as the engine.

    Raises:
        FileNotFoundError: no engine file.
        RuntimeError: TensorRT could not deserialize it (corrupt or built by another version).
        EngineMismatchError: IO names or shapes differ (the message lists each difference).
    """
    engine_path = Path(engine_path)
    if not engine_path.is_file():
        raise FileNotFoundError(f"TensorRT engine not found: {engine_path}")
    runtime = trt.Runtime(logger or trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise RuntimeError(f"TensorRT could not deserialize engine {engine_path}")
    want = expected or {"inputs": {n: [] for n in INPUT_NAMES},
                        "outputs": {n: [] for n in OUTPUT_NAMES}}
    got = engine_io(trt, engine)
    if expected is None:
        # Without the ONNX graph, check names only.
        got = {k: {n: [] for n in v} for k, v in got.items()}
    problems = io_differences(got, want)
    if problems:
        raise EngineMismatchError(f"engine {engine_path} does not match: {'; '.join(problems)}")
    return runtime, engine


def ensure_engine(onnx_path: str | Path, engine_path: str | Path | None = None,
                  force: bool = False, **build_kwargs: Any):
    """Build or reuse the engine, deserialize it and validate its IO; rebuild once on mismatch.

    Returns:
        (EngineInfo, runtime, engine).
    """
    trt = import_tensorrt()
    info = build_engine(onnx_path, engine_path, force=force, **build_kwargs)
    expected = info.sidecar.get("expected_io")
    try:
        runtime, engine = load_engine(trt, info.engine_path, expected)
    except (EngineMismatchError, RuntimeError):
        if info.built:
            raise
        info = build_engine(onnx_path, info.engine_path, force=True, **build_kwargs)
        runtime, engine = load_engine(trt, info.engine_path, info.sidecar.get("expected_io"))
    return info, runtime, engine
