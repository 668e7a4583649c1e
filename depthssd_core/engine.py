"""TensorRT engine builder and cache.

Engines are built from the exported ONNX on the machine that runs them, cached next to the ONNX
(or in the user cache directory, ``depthssd_core.cache``, when that is read-only) and never
committed. Every engine has a JSON sidecar (``graph_contract.sidecar_path``) holding its cache
key: everything the build depends on (ONNX sha256, TensorRT version, the GPU's name, compute
capability, SM count and memory, precision, input shapes, the builder settings and this
module's :data:`BUILDER_VERSION`). An engine whose key differs from the current one is stale
and is rebuilt; an engine whose IO tensors do not match the ONNX graph is rebuilt once, then
reported with what differs.

TensorRT API branches. Every name used here (:data:`REQUIRED_API`) exists in the real Python
bindings of TensorRT 10.0.1, 10.2.0, 10.3.0, 10.16.1, 11.0.0 and 11.4.0 (read from NVIDIA's
wheels with ``tools/tensorrt_api_surface.py``; the last four are recorded in
``test/core/data/tensorrt_api_surface.json`` and checked by the tests):

- **Strongly typed, every supported release (the default).** The precision comes from the ONNX
  itself: the FP16 export computes in half precision except its float32 islands (Titans memory,
  HoPE angles, depth decoding). On 10.x (JetPack 6 ships 10.3) the network is created with
  ``NetworkDefinitionCreationFlag.STRONGLY_TYPED``, which every 10.x release has; 11.x is always
  strongly typed (the flag is deprecated and ignored there, so it is not passed).
- **Weakly typed, opt-in, 10.x only** (``network_typing="weak"``): ``BuilderFlag.FP16`` plus the
  islands pinned to FP32 (``layer.precision``, ``set_output_type``,
  ``OBEY_PRECISION_CONSTRAINTS``). No supported release needs it for depthssd's export; it is
  kept as the fallback should a 10.x strongly typed build of the graph fail. TensorRT 11
  removed every API it uses, so it is refused there.
- **TF32 is off in every build.** TensorRT enables ``BuilderFlag.TF32`` by default, which lets
  float32 matmuls and convolutions round their inputs to 10-bit mantissas; the float32 islands
  must stay real FP32 (the memory state is carried across frames, so rounding in its update
  accumulates over a drive).

The timing cache (tactic timings, which speed up rebuilds) is one file per TensorRT version and
GPU (:func:`timing_cache_path`), attached with ``ignore_mismatch=False``: a cache TensorRT
rejects (another device, driver or CUDA) is replaced by a new one, never forced in.

``tensorrt`` is imported lazily, so this module imports on machines without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import re
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

#: Version of what :func:`build_engine` makes from a graph (network flags, builder settings,
#: pinning rules); part of every cache key, so changing the builder invalidates old engines.
BUILDER_VERSION = 2
#: ``format`` of an engine sidecar.
SIDECAR_FORMAT = "depthssd-engine/2"
#: Network typing modes of :func:`build_engine`.
TYPINGS = ("strong", "weak")
#: Oldest TensorRT major version with the API below (10.0 introduced the tensor-name API that
#: every call here uses, and has the strongly typed flag).
MIN_TENSORRT_MAJOR = 10

#: The TensorRT names every build and run uses ("Class.member"); each exists in the real
#: bindings of 10.3 to 11.4 (``test/core/test_tensorrt_standin.py`` checks it).
REQUIRED_API = (
    "Logger", "Logger.WARNING", "Builder", "Builder.create_network",
    "Builder.create_builder_config", "Builder.create_optimization_profile",
    "Builder.build_serialized_network", "OnnxParser", "OnnxParser.parse_from_file",
    "OnnxParser.num_errors", "OnnxParser.get_error", "INetworkDefinition.num_inputs",
    "INetworkDefinition.get_input", "INetworkDefinition.num_outputs",
    "INetworkDefinition.get_output", "ITensor.name", "ITensor.shape", "ITensor.dtype",
    "IBuilderConfig.set_memory_pool_limit", "IBuilderConfig.clear_flag",
    "IBuilderConfig.get_flag", "IBuilderConfig.add_optimization_profile",
    "IBuilderConfig.create_timing_cache", "IBuilderConfig.set_timing_cache",
    "IBuilderConfig.get_timing_cache", "IOptimizationProfile.set_shape",
    "ITimingCache.serialize", "Runtime", "Runtime.deserialize_cuda_engine",
    "ICudaEngine.num_io_tensors", "ICudaEngine.get_tensor_name", "ICudaEngine.get_tensor_mode",
    "ICudaEngine.get_tensor_shape", "ICudaEngine.get_tensor_dtype",
    "ICudaEngine.get_tensor_profile_shape", "ICudaEngine.num_optimization_profiles",
    "ICudaEngine.create_execution_context", "IExecutionContext.set_input_shape",
    "IExecutionContext.infer_shapes", "IExecutionContext.get_tensor_shape",
    "IExecutionContext.set_tensor_address", "IExecutionContext.execute_async_v3",
    "BuilderFlag.TF32", "MemoryPoolType.WORKSPACE", "TensorIOMode.INPUT",
    "TensorIOMode.OUTPUT", "DataType.FLOAT", "DataType.HALF",
    "NetworkDefinitionCreationFlag.STRONGLY_TYPED",
)
#: The extra names of the weakly typed FP16 path (TensorRT 10.x only; 11 removed them).
WEAK_TYPING_API = (
    "BuilderFlag.FP16", "BuilderFlag.OBEY_PRECISION_CONSTRAINTS",
    "IBuilderConfig.set_flag", "INetworkDefinition.num_layers", "INetworkDefinition.get_layer",
    "ILayer.num_outputs", "ILayer.get_output", "ILayer.precision", "ILayer.set_output_type",
)


class EngineMismatchError(ValueError):
    """An engine's IO tensors differ from what the graph/runtime expects."""


class TensorRTApiError(RuntimeError):
    """The installed ``tensorrt`` module lacks names depthssd uses (an unsupported release)."""


def import_tensorrt() -> Any:
    """Import the ``tensorrt`` module and check it has the API used here.

    Raises:
        ImportError: no tensorrt (says how to get it).
        TensorRTApiError: an unsupported release (names what is missing).
    """
    try:
        trt = importlib.import_module("tensorrt")
    except ImportError as exc:
        raise ImportError(
            "the tensorrt backend needs NVIDIA TensorRT's Python package ('tensorrt', 10.x or "
            "11.x, from NVIDIA's package index or JetPack) and a CUDA GPU; use "
            "backend='onnxruntime' or 'torch' on this machine"
        ) from exc
    check_api(trt, REQUIRED_API)
    return trt


def missing_api(trt: Any, names: tuple[str, ...]) -> list[str]:
    """The ``Class.member`` names of ``names`` that the module ``trt`` does not have."""
    missing = []
    for dotted in names:
        obj = trt
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                missing.append(dotted)
                break
    return missing


def check_api(trt: Any, names: tuple[str, ...], purpose: str = "depthssd") -> None:
    """Raise :class:`TensorRTApiError` naming every name of ``names`` that ``trt`` lacks."""
    version = getattr(trt, "__version__", "?")
    try:
        major = tensorrt_version(trt)[0]
    except ValueError:
        major = 0
    missing = missing_api(trt, names)
    if major < MIN_TENSORRT_MAJOR or missing:
        detail = f"; missing {', '.join(missing)}" if missing else ""
        raise TensorRTApiError(
            f"TensorRT {version} does not have the API {purpose} uses (supported: TensorRT "
            f"10.x and 11.x){detail}"
        )


def tensorrt_version(trt: Any) -> tuple[int, int]:
    """(major, minor) of a tensorrt module's ``__version__``."""
    parts = re.findall(r"\d+", str(getattr(trt, "__version__", "")))
    if not parts:
        raise ValueError(f"cannot read the TensorRT version {getattr(trt, '__version__', None)!r}")
    return int(parts[0]), int(parts[1]) if len(parts) > 1 else 0


_LOGGERS: dict[int, tuple[Any, Any]] = {}


def trt_logger(trt: Any) -> Any:
    """The one ``trt.Logger`` (warnings and errors) shared by every builder, parser and runtime
    of this process: TensorRT keeps the first logger it is given, so a second one would never
    print."""
    entry = _LOGGERS.get(id(trt))
    if entry is None or entry[0] is not trt:
        entry = (trt, trt.Logger(trt.Logger.WARNING))
        _LOGGERS[id(trt)] = entry
    return entry[1]


def gpu_identity(device_index: int = 0) -> dict[str, Any]:
    """What identifies the CUDA GPU an engine is built for: name, compute capability, SM count
    and memory (engines are specific to the GPU model; two boards of one name can differ in
    the last two).

    Raises:
        RuntimeError: no CUDA GPU is visible.
    """
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError(
            "TensorRT engines need a CUDA GPU and none is visible (torch.cuda.is_available() "
            "is False); use backend='onnxruntime' or 'torch'"
        )
    props = torch.cuda.get_device_properties(device_index)
    return {"gpu_name": props.name, "compute_capability": f"{props.major}.{props.minor}",
            "gpu_sm_count": int(props.multi_processor_count),
            "gpu_memory_mib": int(props.total_memory) >> 20}


#: The :func:`gpu_identity` keys, in the cache key and the sidecar.
GPU_FIELDS = ("gpu_name", "compute_capability", "gpu_sm_count", "gpu_memory_mib")


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


def builder_settings(network_typing: str, workspace_bytes: int, dynamic_inputs: list[str],
                     precision: str) -> dict[str, Any]:
    """The builder configuration an engine depends on (part of its cache key)."""
    return {
        "builder_version": BUILDER_VERSION,
        "typing": network_typing,
        "tf32": False,
        "fp16_flag": network_typing == "weak" and precision == "fp16",
        "fp32_islands_pinned": network_typing == "weak" and precision == "fp16",
        "workspace_bytes": int(workspace_bytes),
        # Dynamic inputs get one optimization profile with min = opt = max = the build shape.
        "fixed_profile_inputs": sorted(dynamic_inputs),
    }


def cache_key_fields(onnx_sha256: str, trt_version: str, gpu: dict[str, Any], precision: str,
                     input_shapes: dict[str, list[int]], builder: dict[str, Any],
                     ) -> dict[str, Any]:
    """Every input of an engine build; any change makes a cached engine stale."""
    fields: dict[str, Any] = {"onnx_sha256": onnx_sha256, "tensorrt_version": str(trt_version)}
    fields.update({k: gpu[k] for k in GPU_FIELDS})
    fields["precision"] = precision
    fields["input_shapes"] = {k: [int(d) for d in v] for k, v in sorted(input_shapes.items())}
    fields["builder"] = dict(builder)
    return fields


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


def timing_cache_path(folder: str | Path, trt_version: str, gpu: dict[str, Any]) -> Path:
    """The timing cache of one TensorRT version on one GPU model, in ``folder``:
    ``depthssd.trt<version>.<gpu>.sm<cc>.<digest>.timing.cache`` (the digest covers the whole
    :func:`gpu_identity`)."""
    slug = re.sub(r"[^a-z0-9]+", "-", str(gpu["gpu_name"]).lower()).strip("-") or "gpu"
    digest = hashlib.sha256(json.dumps({"tensorrt": str(trt_version),
                                        **{k: gpu[k] for k in GPU_FIELDS}},
                                       sort_keys=True).encode()).hexdigest()[:8]
    cc = str(gpu["compute_capability"]).replace(".", "")
    return Path(folder) / f"depthssd.trt{trt_version}.{slug}.sm{cc}.{digest}.timing.cache"


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
    try:
        sidecar = read_sidecar(engine_path, SIDECAR_FORMAT)
    except FileNotFoundError:
        return "no sidecar"
    except (OSError, ValueError) as exc:
        return f"unusable sidecar ({exc})"
    cached = sidecar.get("key_fields")
    if not isinstance(cached, dict) or sidecar.get("key") != cache_key(cached):
        return "sidecar key does not match its fields"
    changed = [k for k in sorted(set(key_fields) | set(cached))
               if cached.get(k) != key_fields.get(k)]
    if changed:
        details = ", ".join(f"{k}: {cached.get(k)!r} -> {key_fields.get(k)!r}" for k in changed)
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
    """Names and shapes of a deserialized engine's IO tensors.

    ``engine.get_tensor_shape`` reports -1 for a dynamic dimension; a dynamic input whose first
    optimization profile has min = max (what :func:`build_engine` makes) can only run at that
    shape, which is reported instead. Outputs keep their -1s (they are known once every input
    shape is set on an execution context).
    """
    result: dict[str, dict[str, list[int]]] = {"inputs": {}, "outputs": {}}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
        shape = [int(d) for d in engine.get_tensor_shape(name)]
        if is_input and any(d < 0 for d in shape) and engine.num_optimization_profiles > 0:
            low, _opt, high = ([int(d) for d in s]
                               for s in engine.get_tensor_profile_shape(name, 0))
            if low == high:
                shape = low
        result["inputs" if is_input else "outputs"][name] = shape
    return result


def io_differences(actual: dict[str, dict[str, list[int]]],
                   expected: dict[str, dict[str, list[int]]]) -> list[str]:
    """Human-readable differences between two IO descriptions (empty when they agree).

    A -1 (dynamic) dimension in ``expected`` matches any size; for outputs, a -1 in ``actual``
    does too (an engine's output dims stay -1 until its input shapes are set).
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
            same = len(g) == len(w) and all(
                b in (-1, None) or a == b or (kind == "outputs" and a == -1)
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
    given = dict(input_shapes or {})
    unknown = sorted(set(given) - set(io["inputs"]))
    if unknown:
        raise ValueError(f"input_shapes names {unknown}, which the ONNX graph does not have "
                         f"(its inputs: {list(io['inputs'])})")
    shapes = {}
    for name, spec in io["inputs"].items():
        graph = spec["shape"]
        if name in given:
            shape = [int(d) for d in given[name]]
            fits = len(shape) == len(graph) and all(
                d > 0 and (g is None or g == d) for d, g in zip(shape, graph, strict=True))
            if not fits:
                raise ValueError(f"input_shapes[{name!r}] = {shape} does not fit the ONNX "
                                 f"input shape {graph}")
            shapes[name] = shape
        elif all(isinstance(d, int) and d > 0 for d in graph):
            shapes[name] = list(graph)
        else:
            raise ValueError(f"ONNX input {name!r} has dynamic shape {graph}; pass input_shapes")
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


def _attach_timing_cache(config: Any, path: Path) -> tuple[Any, str]:
    """Attach the timing cache at ``path`` (strictly: ``ignore_mismatch=False``) or a new one.

    Returns:
        (the attached cache, what happened: "loaded", "new", or why a new one replaced it).
    """
    data = path.read_bytes() if path.is_file() else b""
    status = "loaded" if data else "new"
    cache = None
    if data:
        with contextlib.suppress(RuntimeError, ValueError, TypeError):
            cache = config.create_timing_cache(data)
        if cache is None:
            status = "unreadable, replaced by a new one"
        elif not config.set_timing_cache(cache, ignore_mismatch=False):
            # TensorRT checks the cache's device header: another GPU, driver or CUDA.
            cache, status = None, "rejected by TensorRT (another device), replaced by a new one"
    if cache is None:
        cache = config.create_timing_cache(b"")
        if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
            raise RuntimeError("TensorRT did not accept a new timing cache")
    return cache, status


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _build(trt: Any, onnx_path: Path, engine_path: Path, input_shapes: dict[str, list[int]],
           builder_cfg: dict[str, Any], timing_cache: Path) -> dict[str, Any]:
    """Build and write a serialized engine; return what the sidecar records of the build."""
    version = trt.__version__
    logger = trt_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    if builder_cfg["typing"] == "strong" and tensorrt_version(trt)[0] < 11:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT {version} could not parse {onnx_path}: "
                           f"{errors or 'no error reported'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, builder_cfg["workspace_bytes"])
    config.clear_flag(trt.BuilderFlag.TF32)
    if config.get_flag(trt.BuilderFlag.TF32):
        raise RuntimeError(f"TensorRT {version} kept TF32 enabled; the FP32 islands need FP32")
    pinned = 0
    if builder_cfg["fp16_flag"]:
        config.set_flag(trt.BuilderFlag.FP16)
        pinned = _keep_fp32_islands(trt, network, config)
    if builder_cfg["fixed_profile_inputs"]:
        profile = builder.create_optimization_profile()
        for i in range(network.num_inputs):
            name = network.get_input(i).name
            shape = tuple(input_shapes[name])
            try:
                profile.set_shape(name, shape, shape, shape)
            except ValueError as exc:
                raise ValueError(f"build shape {list(shape)} of input {name!r} does not fit "
                                 f"{onnx_path}: {exc}") from exc
        if config.add_optimization_profile(profile) < 0:
            raise RuntimeError(f"TensorRT {version} refused the optimization profile "
                               f"{input_shapes}")
    _cache, timing_status = _attach_timing_cache(config, timing_cache)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT {version} failed to build an engine from {onnx_path} "
                           "(its log above says why)")
    _write_atomically(engine_path, bytes(serialized))
    _write_atomically(timing_cache, bytes(config.get_timing_cache().serialize()))
    tensors = []
    for i in range(network.num_inputs):
        t = network.get_input(i)
        tensors.append({"name": t.name, "mode": "input", "shape": list(input_shapes[t.name]),
                        "dtype": str(t.dtype)})
    for i in range(network.num_outputs):
        t = network.get_output(i)
        tensors.append({"name": t.name, "mode": "output", "shape": [int(d) for d in t.shape],
                        "dtype": str(t.dtype)})
    return {"tensors": tensors, "fp32_layers_pinned": pinned,
            "timing_cache": {"path": str(timing_cache), "status": timing_status}}


def build_engine(onnx_path: str | Path, engine_path: str | Path | None = None,
                 force: bool = False, workspace_bytes: int = 2 << 30,
                 timing_cache: str | Path | None = None,
                 input_shapes: dict[str, list[int]] | None = None,
                 network_typing: str = "strong") -> EngineInfo:
    """Build the TensorRT engine of an ONNX graph, or reuse the cached one if still valid.

    Args:
        onnx_path: exported DepthSSD graph.
        engine_path: where the engine goes; default :func:`default_engine_path`.
        force: rebuild even when the cached engine is current.
        workspace_bytes: TensorRT workspace memory pool limit.
        timing_cache: timing cache file, read if present and written after the build;
            default :func:`timing_cache_path` in the engine's folder.
        input_shapes: build shapes of dynamic inputs (static ONNX shapes are used otherwise).
        network_typing: ``strong`` (default) or ``weak`` (TensorRT 10.x only; see the
            module docstring).

    Returns:
        :class:`EngineInfo`.

    Raises:
        ImportError: tensorrt is not installed. TensorRTApiError: an unsupported release.
        RuntimeError: no GPU, or the parse/build failed.
        FileNotFoundError / ValueError: the ONNX file is missing or unreadable, bad shapes or
            an unknown ``network_typing``.
    """
    if network_typing not in TYPINGS:
        raise ValueError(f"unknown network typing {network_typing!r}; choose one of "
                         f"{', '.join(TYPINGS)}")
    trt = import_tensorrt()
    if network_typing == "weak":
        check_api(trt, WEAK_TYPING_API, purpose="a weakly typed FP16 build (TensorRT 10.x only)")
    onnx_path = Path(onnx_path)
    io = onnx_io(onnx_path)
    gpu = gpu_identity()
    precision = onnx_precision(io)
    shapes = _resolve_input_shapes(io, input_shapes)
    dynamic = [n for n, spec in io["inputs"].items()
               if not all(isinstance(d, int) and d > 0 for d in spec["shape"])]
    builder_cfg = builder_settings(network_typing, workspace_bytes, dynamic, precision)
    fields = cache_key_fields(file_sha256(onnx_path), str(trt.__version__), gpu, precision,
                              shapes, builder_cfg)
    engine_path = Path(engine_path) if engine_path else default_engine_path(onnx_path, precision)
    reason = "forced" if force else stale_reason(engine_path, fields)
    if reason is None:
        return EngineInfo(engine_path, read_engine_sidecar(engine_path) or {}, built=False)
    timing = Path(timing_cache) if timing_cache else timing_cache_path(
        engine_path.parent, str(trt.__version__), gpu)
    built = _build(trt, onnx_path, engine_path, shapes, builder_cfg, timing)
    sidecar = {
        "format": SIDECAR_FORMAT,
        "key": cache_key(fields),
        "key_fields": fields,
        "onnx_path": str(onnx_path.resolve()),
        "strongly_typed": network_typing == "strong",
        **built,
        "expected_io": expected_io(io, shapes),
        "rebuild_reason": reason,
    }
    # The model sidecar is informational here; a missing or broken one is the runtime's to
    # report.
    with contextlib.suppress(OSError, ValueError):
        sidecar["model"] = read_onnx_sidecar(onnx_path, verify_hash=False)
    _write_atomically(sidecar_path(engine_path), json.dumps(sidecar, indent=2).encode())
    return EngineInfo(engine_path, sidecar, built=True)


def check_prebuilt_engine(trt: Any, engine_path: str | Path) -> dict[str, Any] | None:
    """Check an engine loaded without its ONNX against this machine, by its sidecar.

    Returns:
        The sidecar's ``expected_io``, or None when the engine has no sidecar (an engine
        built by another tool: then only the IO names can be checked).

    Raises:
        EngineMismatchError: the sidecar is unusable, or names another TensorRT version, GPU or
            builder version (the engine cannot be rebuilt here without its ONNX).
    """
    engine_path = Path(engine_path)
    try:
        sidecar = read_sidecar(engine_path, SIDECAR_FORMAT)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise EngineMismatchError(f"engine {engine_path}: {exc}; rebuild it with "
                                  "depthssd-build-engine --onnx <its ONNX> --force") from exc
    fields = sidecar.get("key_fields", {})
    here = {"tensorrt_version": str(trt.__version__), **gpu_identity()}
    built_for = {k: fields.get(k) for k in here}
    built_for["builder_version"] = fields.get("builder", {}).get("builder_version")
    here["builder_version"] = BUILDER_VERSION
    changed = [f"{k}: {built_for[k]!r} here {here[k]!r}" for k in here
               if built_for[k] != here[k]]
    if changed:
        raise EngineMismatchError(
            f"engine {engine_path} was built for another setup ({'; '.join(changed)}); rebuild "
            "it with depthssd-build-engine --onnx <its ONNX> --force")
    return sidecar.get("expected_io")


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
    runtime = trt.Runtime(logger or trt_logger(trt))
    engine = runtime.deserialize_cuda_engine(engine_path.read_bytes())
    if engine is None:
        raise RuntimeError(f"TensorRT {trt.__version__} could not deserialize engine "
                           f"{engine_path} (corrupt, or built by another TensorRT or GPU)")
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
