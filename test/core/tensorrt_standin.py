"""A stand-in for NVIDIA's ``tensorrt`` Python module, for tests only.

TensorRT cannot be installed on this project's machines and none has a GPU, so the engine
builder and the TensorRT backend are tested against this module instead. It is NOT TensorRT:
it has no kernels, tactics or precision effects (an FP16 graph runs as ONNX Runtime runs it).

What it follows, per version (TensorRT 10.3.0, 10.16.1.11, 11.0.0.114 and 11.4.0.106, the real
Python bindings as recorded in ``data/tensorrt_api_surface.json`` by
``tools/tensorrt_api_surface.py``):

- names: its classes carry only members the real class of that version has, with the real
  parameter names (``test_tensorrt_standin.py`` checks it). TensorRT 11 thus has no
  ``BuilderFlag.FP16``/``OBEY_PRECISION_CONSTRAINTS`` and no ``ILayer.precision``,
  ``precision_is_set`` or ``set_output_type``;
- enums: built from the recorded members with their real values (``BuilderFlag.REFIT`` is 4,
  ``TF32`` 6; ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` is 1 on 10.x and 0 on 11.x);
- documented behaviour (the bindings' docstrings, NvInfer.h, NvInferRuntime.h): dynamic
  dimensions read -1 on network inputs and engine tensors, and on an execution context's
  outputs until every input shape is set; an unset ``layer.precision`` reads
  ``DataType.FLOAT`` with ``precision_is_set`` False; a strongly typed network refuses
  precision flags and layer precisions; TF32 is on in a new builder config; a network with
  dynamic inputs needs an optimization profile; the parser returns False (with errors) for a
  file that is not a valid ONNX graph; ``build_serialized_network`` returns None after logging
  an error; engine plans only deserialize with the TensorRT version and compute capability they
  were built with; ``set_timing_cache(..., ignore_mismatch=False)`` returns False for a cache
  another device wrote; ``set_input_shape``, ``set_tensor_address`` and ``execute_async_v3``
  return bools.

The execution context reads its inputs from, and writes its outputs to, the raw addresses bound
with ``set_tensor_address``, exactly as TensorRT does with device pointers; :class:`HostMemory`
supplies host memory in their place, and the outputs are computed by ONNX Runtime on the
engine's ONNX graph.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import enum
import json
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto

SURFACE_PATH = Path(__file__).with_name("data") / "tensorrt_api_surface.json"
#: The real API surface per TensorRT version (see the module docstring).
SURFACE: dict[str, Any] = json.loads(SURFACE_PATH.read_text())["versions"]
VERSIONS: tuple[str, ...] = tuple(SURFACE)
#: The GPU a stand-in pretends to be (the tests patch ``engine.gpu_identity`` to the same).
DEFAULT_GPU = {"gpu_name": "NVIDIA Stand-in 100", "compute_capability": "8.7",
               "gpu_sm_count": 16, "gpu_memory_mib": 15_000}

_PLAN_MAGIC = b"DEPTHSSD-TENSORRT-STANDIN-PLAN\n"
_TIMING_MAGIC = b"DEPTHSSD-TENSORRT-STANDIN-TIMING\n"
_NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32,
          "INT64": np.int64, "BOOL": np.bool_, "UINT8": np.uint8}
_FROM_ONNX = {TensorProto.FLOAT: "FLOAT", TensorProto.FLOAT16: "HALF",
              TensorProto.BFLOAT16: "BF16", TensorProto.INT8: "INT8", TensorProto.UINT8: "UINT8",
              TensorProto.INT32: "INT32", TensorProto.INT64: "INT64", TensorProto.BOOL: "BOOL"}
_PRECISION_FLAGS = ("FP16", "BF16", "INT8", "FP8", "INT4", "FP4", "OBEY_PRECISION_CONSTRAINTS",
                    "PREFER_PRECISION_CONSTRAINTS")


class BindingEnum(enum.Enum):
    """An enum that behaves like a pybind11 one: ``int()``/index give the value."""

    def __int__(self) -> int:
        return int(self.value)

    def __index__(self) -> int:
        return int(self.value)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}.{self.name}: {self.value}>"

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.name}"


@dataclass
class StandInState:
    """What a stand-in module records, and the knobs tests turn to make TensorRT fail."""

    version: str
    gpu: dict[str, Any]
    loggers: list[Any] = field(default_factory=list)
    messages: list[tuple[str, str]] = field(default_factory=list)
    builds: list[dict[str, Any]] = field(default_factory=list)
    timing_cache_attaches: list[tuple[bool, bool]] = field(default_factory=list)
    executions: list[int] = field(default_factory=list)
    parse_error: str | None = None
    build_fails: bool = False
    drop_output: str | None = None
    refuse_input_shape: set[str] = field(default_factory=set)
    refuse_address: set[str] = field(default_factory=set)
    fail_execute: bool = False

    def errors(self) -> list[str]:
        return [msg for sev, msg in self.messages if sev in ("ERROR", "INTERNAL_ERROR")]


class _IndexedIO:
    """Inputs and outputs by index, as both ``ILayer`` and ``INetworkDefinition`` give them
    (from ``self._inputs`` and ``self._outputs``)."""

    num_inputs = property(lambda self: len(self._inputs))
    num_outputs = property(lambda self: len(self._outputs))

    def get_input(self, index):
        return self._inputs[index]

    def get_output(self, index):
        return self._outputs[index]


def _tagged_json(data: bytes, magic: bytes) -> Any:
    """The JSON a stand-in blob carries after its ``magic`` tag; None for another tag or bad
    JSON (what a real TensorRT says is corrupted)."""
    if not data.startswith(magic):
        return None
    try:
        return json.loads(data[len(magic):])
    except ValueError:
        return None


def _view(address: int, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """The memory at ``address`` as a writable numpy array (what a device pointer is to TRT)."""
    dtype = np.dtype(dtype)
    count = int(np.prod(shape, dtype=np.int64))
    raw = (ctypes.c_char * (count * dtype.itemsize)).from_address(address)
    return np.frombuffer(raw, dtype=dtype, count=count).reshape(shape)


class HostMemory:
    """Host memory in place of CUDA memory for ``TensorRTBackend(memory=HostMemory)`` on the
    stand-in: torch CPU tensors whose ``data_ptr()`` the stand-in context reads and writes."""

    #: A made-up non-default stream handle (the stand-in records which one it was given).
    STREAM = 0x5EED

    def __init__(self) -> None:
        self.allocated: list[Any] = []

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        import torch

        tensor = torch.empty(shape, dtype=dtype)
        self.allocated.append(tensor)
        return tensor

    def stream_handle(self) -> int:
        return self.STREAM

    def scope(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def synchronize(self) -> None:
        """Nothing is asynchronous on the host."""


def make_tensorrt(version: str, gpu: dict[str, Any] | None = None) -> types.ModuleType:
    """A stand-in ``tensorrt`` module of one recorded version (see the module docstring).

    Its ``_standin`` attribute is the :class:`StandInState` (records and failure knobs).
    """
    surface = SURFACE[version]
    major = int(version.split(".")[0])
    weak_api = "precision" in surface["classes"]["ILayer"]
    state = StandInState(version, dict(gpu or DEFAULT_GPU))
    enums = {name: BindingEnum(name.split(".")[-1], members)
             for name, members in surface["enums"].items()}
    BuilderFlag = enums["BuilderFlag"]
    NetworkFlag = enums["NetworkDefinitionCreationFlag"]
    DataType = enums["DataType"]
    TensorIOMode = enums["TensorIOMode"]
    Severity = enums["ILogger.Severity"]
    ErrorCode = enums["ErrorCode"]
    Strategy = enums["ExecutionContextAllocationStrategy"]

    def device_header() -> dict[str, Any]:
        return {"tensorrt": version, **state.gpu}

    class Dims(tuple):
        def __new__(cls, shape=()):
            return super().__new__(cls, (int(d) for d in shape))

    class ILogger:
        INTERNAL_ERROR = Severity.INTERNAL_ERROR
        ERROR = Severity.ERROR
        WARNING = Severity.WARNING
        INFO = Severity.INFO
        VERBOSE = Severity.VERBOSE

        def __init__(self):
            pass

        def log(self, severity, msg):
            raise NotImplementedError("ILogger.log is implemented by subclasses")

    ILogger.Severity = Severity

    class Logger(ILogger):
        def __init__(self, min_severity=Severity.WARNING):
            super().__init__()
            self.min_severity = min_severity
            state.loggers.append(self)

        def log(self, severity, msg):
            if int(severity) <= int(self.min_severity):
                state.messages.append((severity.name, str(msg)))

    class IHostMemory:
        def __init__(self, data: bytes):
            self._data = bytes(data)

        @property
        def nbytes(self):
            return len(self._data)

        def __bytes__(self):
            return self._data

    class ITensor:
        def __init__(self, name, shape, dtype, role=""):
            self._name, self._shape, self._dtype, self._role = name, Dims(shape), dtype, role

        name = property(lambda self: self._name)
        shape = property(lambda self: self._shape)
        dtype = property(lambda self: self._dtype)
        is_network_input = property(lambda self: self._role == "input")
        is_network_output = property(lambda self: self._role == "output")

    class ILayer(_IndexedIO):
        def __init__(self, name, inputs, outputs, network):
            self._name, self._inputs, self._outputs = name, inputs, outputs
            self._network = network
            self._precision, self._output_types = None, {}

        name = property(lambda self: self._name)

        def get_output_type(self, index):
            return self._output_types.get(index, self._outputs[index].dtype)

        if weak_api:
            def _get_precision(self):
                # An unset precision reads FLOAT (precision_is_set tells the two apart).
                return DataType.FLOAT if self._precision is None else self._precision

            def _set_precision(self, dtype):
                self._network._precision_requests.append(self._name)
                self._precision = dtype

            precision = property(_get_precision, _set_precision)
            precision_is_set = property(lambda self: self._precision is not None)

            def reset_precision(self):
                self._precision = None

            def set_output_type(self, index, dtype):
                self._network._precision_requests.append(self._name)
                self._output_types[index] = dtype

            def output_type_is_set(self, index):
                return index in self._output_types

            def reset_output_type(self, index):
                self._output_types.pop(index, None)

    class INetworkDefinition(_IndexedIO):
        def __init__(self, flags):
            self._flags = int(flags)
            self._inputs, self._outputs, self._layers = [], [], []
            self._onnx = None
            self._precision_requests: list[str] = []

        flags = property(lambda self: self._flags)
        num_layers = property(lambda self: len(self._layers))

        def get_layer(self, index):
            return self._layers[index]

        def get_flag(self, flag):
            return bool(self._flags >> int(flag) & 1)

        @property
        def _strongly_typed(self):
            # TensorRT 11: always strongly typed (the flag is deprecated and ignored).
            return major >= 11 or self.get_flag(NetworkFlag.STRONGLY_TYPED)

    class ParserError:
        def __init__(self, code, desc, node=-1, node_name="", node_operator=""):
            self._code, self._desc = code, desc
            self._node, self._node_name, self._node_operator = node, node_name, node_operator

        def code(self):
            return self._code

        def desc(self):
            return self._desc

        def node(self):
            return self._node

        def node_name(self):
            return self._node_name

        def node_operator(self):
            return self._node_operator

        def __str__(self):
            where = f" (node {self._node} {self._node_name})" if self._node >= 0 else ""
            return f"{self._code.name}: {self._desc}{where}"

    def onnx_tensor_types(model) -> dict[str, tuple[list[int], Any]]:
        inferred = onnx.shape_inference.infer_shapes(model)
        found = {}
        for value in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
            tensor = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
            found[value.name] = (dims, DataType[_FROM_ONNX.get(tensor.elem_type, "FLOAT")])
        for init in inferred.graph.initializer:
            found[init.name] = (list(init.dims), DataType[_FROM_ONNX.get(init.data_type,
                                                                          "FLOAT")])
        return found

    class OnnxParser:
        def __init__(self, network, logger):
            self._network, self._logger, self._errors = network, logger, []

        num_errors = property(lambda self: len(self._errors))

        def get_error(self, index):
            return self._errors[index]

        def clear_errors(self):
            self._errors = []

        def _fail(self, code, desc, **where):
            self._errors.append(ParserError(code, desc, **where))
            self._logger.log(Severity.ERROR, desc)
            return False

        def parse_from_file(self, model):
            try:
                data = Path(model).read_bytes()
            except OSError as exc:
                return self._fail(ErrorCode.MODEL_DESERIALIZE_FAILED, f"cannot read {model}: "
                                                                      f"{exc}")
            return self.parse(data, model)

        def parse(self, model, path=None):
            data = bytes(model)
            try:
                proto = onnx.load_from_string(data)
                onnx.checker.check_model(proto)
            except Exception as exc:  # what onnx raises for a file that is not a graph
                return self._fail(ErrorCode.MODEL_DESERIALIZE_FAILED,
                                  f"failed to parse ONNX model: {exc}")
            if state.parse_error:
                node = proto.graph.node[0] if proto.graph.node else None
                return self._fail(ErrorCode.UNSUPPORTED_NODE, state.parse_error,
                                  node=0, node_name=node.name if node else "",
                                  node_operator=node.op_type if node else "")
            types_ = onnx_tensor_types(proto)
            initializers = {i.name for i in proto.graph.initializer}
            net = self._network
            for value in proto.graph.input:
                if value.name not in initializers:
                    dims, dtype = types_[value.name]
                    net._inputs.append(ITensor(value.name, dims, dtype, "input"))
            for k, node in enumerate(proto.graph.node):
                outs = [ITensor(o, *types_.get(o, ([], DataType.FLOAT))) for o in node.output
                        if o]
                ins = [ITensor(i, *types_.get(i, ([], DataType.FLOAT))) for i in node.input if i]
                net._layers.append(ILayer(node.name or f"{node.op_type}_{k}", ins, outs, net))
            for value in proto.graph.output:
                if value.name != state.drop_output:
                    net._outputs.append(ITensor(value.name, *types_[value.name], "output"))
            net._onnx = data
            return True

    class IOptimizationProfile:
        def __init__(self):
            self._shapes: dict[str, list[Dims]] = {}

        def set_shape(self, input, min, opt, max):  # the real parameter names
            shapes = [Dims(min), Dims(opt), Dims(max)]
            if len({len(s) for s in shapes}) != 1 or not all(
                    0 <= a <= b <= c for a, b, c in zip(*shapes, strict=True)):
                raise ValueError(f"inconsistent profile shapes for {input!r}: {shapes}")
            self._shapes[input] = shapes

        def get_shape(self, input):
            return list(self._shapes.get(input, []))

    class ITimingCache:
        def __init__(self, device=None, entries=0):
            self._device, self._entries = device, entries

        def serialize(self):
            body = json.dumps({"device": self._device, "entries": self._entries})
            return IHostMemory(_TIMING_MAGIC + body.encode())

    class IBuilderConfig:
        def __init__(self, logger):
            self._logger = logger
            self._flags = {BuilderFlag.TF32}  # TensorRT enables TF32 by default
            self._pools, self._cache, self._profiles = {}, None, []

        def _get_flags(self):
            return sum(1 << int(f) for f in self._flags)

        def _set_flags(self, bits):
            self._flags = {f for f in BuilderFlag if bits >> int(f) & 1}

        flags = property(_get_flags, _set_flags)
        num_optimization_profiles = property(lambda self: len(self._profiles))

        def set_flag(self, flag):
            self._flags.add(flag)

        def clear_flag(self, flag):
            self._flags.discard(flag)

        def get_flag(self, flag):
            return flag in self._flags

        def set_memory_pool_limit(self, pool, pool_size):
            self._pools[pool] = int(pool_size)

        def get_memory_pool_limit(self, pool):
            return self._pools.get(pool, 0)

        def create_timing_cache(self, serialized_timing_cache):
            data = bytes(serialized_timing_cache)
            if not data:
                return ITimingCache()
            body = _tagged_json(data, _TIMING_MAGIC)
            if body is None:
                self._logger.log(Severity.ERROR, "timing cache data is corrupted")
                return None
            return ITimingCache(body["device"], body["entries"])

        def set_timing_cache(self, cache, ignore_mismatch):
            accepted = (cache._device is None or cache._device == device_header()
                        or bool(ignore_mismatch))
            state.timing_cache_attaches.append((bool(ignore_mismatch), accepted))
            if not accepted:
                self._logger.log(Severity.ERROR, "timing cache was created on another device")
                return False
            self._cache = cache
            return True

        def get_timing_cache(self):
            return self._cache

        def add_optimization_profile(self, profile):
            if not profile._shapes:
                return -1
            self._profiles.append(profile)
            return len(self._profiles) - 1

    class Builder:
        def __init__(self, logger):
            self._logger = logger

        def create_network(self, flags=0):
            return INetworkDefinition(flags)

        def create_builder_config(self):
            return IBuilderConfig(self._logger)

        def create_optimization_profile(self):
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):
            errors = self._check(network, config)
            state.builds.append({
                "strongly_typed": network._strongly_typed,
                "network_flags": network.flags,
                "builder_flags": sorted(f.name for f in config._flags),
                "workspace": config._pools.get(enums["MemoryPoolType"].WORKSPACE),
                "pinned": sorted({n for n in network._precision_requests}),
                "profiles": [{k: [list(s) for s in v] for k, v in p._shapes.items()}
                             for p in config._profiles],
                "timing_cache_entries_in": None if config._cache is None
                else config._cache._entries,
                "errors": errors,
            })
            if errors:
                for error in errors:
                    self._logger.log(Severity.ERROR, error)
                return None
            if config._cache is not None:
                config._cache._device = device_header()
                config._cache._entries += network.num_layers
            profile = config._profiles[0] if config._profiles else None
            io = [{"name": t.name, "mode": "INPUT", "dtype": t.dtype.name, "shape": list(t.shape),
                   "profile": [list(s) for s in profile.get_shape(t.name)] if profile else []}
                  for t in network._inputs]
            io += [{"name": t.name, "mode": "OUTPUT", "dtype": t.dtype.name,
                    "shape": list(t.shape), "profile": []} for t in network._outputs]
            plan = {"tensorrt": version, "gpu": dict(state.gpu), "io": io,
                    "num_profiles": len(config._profiles),
                    "onnx": base64.b64encode(network._onnx).decode()}
            return IHostMemory(_PLAN_MAGIC + json.dumps(plan).encode())

        @staticmethod
        def _check(network, config) -> list[str]:
            errors = []
            if network._onnx is None or not network._outputs:
                errors.append("network has no outputs")
            if network._strongly_typed:
                flags = sorted(f.name for f in config._flags if f.name in _PRECISION_FLAGS)
                if flags:
                    errors.append(f"builder flags {flags} are not allowed for a strongly typed "
                                  "network")
                if network._precision_requests:
                    errors.append("layer precision and output types cannot be set in a "
                                  "strongly typed network")
            profile = config._profiles[0] if config._profiles else None
            for t in network._inputs:
                if -1 not in t.shape:
                    continue
                shapes = profile.get_shape(t.name) if profile else []
                if not shapes:
                    errors.append("network has dynamic or shape inputs, but no optimization "
                                  f"profile defines {t.name!r}")
                elif any(len(s) != len(t.shape) or any(d != -1 and d != x
                                                       for d, x in zip(t.shape, s, strict=True))
                         for s in shapes):
                    errors.append(f"profile shapes of {t.name!r} contradict its dims "
                                  f"{list(t.shape)}")
            if state.build_fails:
                errors.append("builder failed (stand-in failure knob)")
            return errors

    class ICudaEngine:
        def __init__(self, plan):
            self._plan = plan
            self._io = {t["name"]: t for t in plan["io"]}
            self._names = [t["name"] for t in plan["io"]]
            self._session = None

        num_io_tensors = property(lambda self: len(self._names))
        num_optimization_profiles = property(lambda self: self._plan["num_profiles"])

        def get_tensor_name(self, index):
            return self._names[index]

        def get_tensor_mode(self, name):
            tensor = self._io.get(name)
            return TensorIOMode[tensor["mode"]] if tensor else TensorIOMode.NONE

        def get_tensor_shape(self, name):
            return Dims(self._io[name]["shape"])

        def get_tensor_dtype(self, name):
            return DataType[self._io[name]["dtype"]]

        def get_tensor_profile_shape(self, name, profile_index):
            tensor = self._io[name]
            if tensor["mode"] != "INPUT" or profile_index >= self._plan["num_profiles"]:
                return []
            return [Dims(s) for s in tensor["profile"]] or [Dims(tensor["shape"])] * 3

        def create_execution_context(self, strategy=Strategy.STATIC):
            return IExecutionContext(self)

        def _run(self, feeds):
            if self._session is None:
                import onnxruntime

                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = 1
                self._session = onnxruntime.InferenceSession(
                    base64.b64decode(self._plan["onnx"]), options,
                    providers=["CPUExecutionProvider"])
            names = [o.name for o in self._session.get_outputs()]
            return dict(zip(names, self._session.run(None, feeds), strict=True))

    class IExecutionContext:
        def __init__(self, engine):
            self._engine, self._shapes, self._addresses = engine, {}, {}

        def _logger_error(self, msg):
            state.messages.append(("ERROR", msg))

        def set_input_shape(self, name, shape):
            tensor = self._engine._io.get(name)
            shape = tuple(int(d) for d in shape)
            if tensor is None or tensor["mode"] != "INPUT" or name in state.refuse_input_shape:
                self._logger_error(f"set_input_shape refused for {name!r}")
                return False
            dims = tensor["shape"]
            low, _opt, high = tensor["profile"] or [dims] * 3
            if len(shape) != len(dims) or any(
                    (d != -1 and s != d) or not lo <= s <= hi
                    for s, d, lo, hi in zip(shape, dims, low, high, strict=True)):
                self._logger_error(f"shape {shape} of {name!r} outside {dims} / profile")
                return False
            self._shapes[name] = shape
            return True

        def infer_shapes(self):
            return [n for n, t in self._engine._io.items()
                    if t["mode"] == "INPUT" and -1 in t["shape"] and n not in self._shapes]

        def _input_shape(self, name):
            return self._shapes.get(name, tuple(self._engine._io[name]["shape"]))

        def get_tensor_shape(self, name):
            tensor = self._engine._io[name]
            if tensor["mode"] == "INPUT" or -1 not in tensor["shape"]:
                return Dims(self._input_shape(name) if tensor["mode"] == "INPUT"
                            else tensor["shape"])
            if self.infer_shapes():
                return Dims(tensor["shape"])  # unknown until every input shape is set
            feeds = {n: np.zeros(self._input_shape(n), _NUMPY[t["dtype"]])
                     for n, t in self._engine._io.items() if t["mode"] == "INPUT"}
            return Dims(self._engine._run(feeds)[name].shape)

        def set_tensor_address(self, name, memory):
            if name not in self._engine._io or name in state.refuse_address:
                self._logger_error(f"set_tensor_address refused for {name!r}")
                return False
            self._addresses[name] = int(memory)
            return True

        def get_tensor_address(self, name):
            return self._addresses.get(name, 0)

        def execute_async_v3(self, stream_handle):
            state.executions.append(int(stream_handle))
            io = self._engine._io
            unset = [n for n in io if not self._addresses.get(n)]
            if state.fail_execute or self.infer_shapes() or unset:
                self._logger_error(f"execute_async_v3 failed (unset addresses {unset})")
                return False
            feeds = {n: _view(self._addresses[n], self._input_shape(n),
                              _NUMPY[t["dtype"]]).copy()
                     for n, t in io.items() if t["mode"] == "INPUT"}
            results = self._engine._run(feeds)
            for name, tensor in io.items():
                if tensor["mode"] != "OUTPUT":
                    continue
                value = results[name]
                _view(self._addresses[name], value.shape, _NUMPY[tensor["dtype"]])[...] = value
            return True

    class Runtime:
        def __init__(self, logger):
            self._logger = logger

        def deserialize_cuda_engine(self, serialized_engine):
            data = bytes(serialized_engine)
            plan = _tagged_json(data, _PLAN_MAGIC)
            if plan is None:
                self._logger.log(Severity.ERROR, "engine plan is corrupted (magic tag)")
                return None
            if plan["tensorrt"] != version:
                self._logger.log(Severity.ERROR, "the engine plan file is not compatible with "
                                                 f"this version of TensorRT ({version})")
                return None
            if plan["gpu"]["compute_capability"] != state.gpu["compute_capability"]:
                self._logger.log(Severity.ERROR, "engine built for another compute capability")
                return None
            if plan["gpu"]["gpu_name"] != state.gpu["gpu_name"]:
                self._logger.log(Severity.WARNING, "using an engine plan file across different "
                                                   "models of devices is not recommended")
            return ICudaEngine(plan)

    module = types.ModuleType("tensorrt")
    module.__version__ = version
    for name, value in enums.items():
        if "." not in name:
            setattr(module, name, value)
    for cls in (Dims, ILogger, Logger, IHostMemory, ITensor, ILayer, INetworkDefinition,
                ParserError, OnnxParser, IOptimizationProfile, ITimingCache, IBuilderConfig,
                Builder, ICudaEngine, IExecutionContext, Runtime):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        setattr(module, cls.__name__, cls)
    module._standin = state
    return module


def install(monkeypatch: Any, version: str, gpu: dict[str, Any] | None = None,
            ) -> types.ModuleType:
    """Make ``import tensorrt`` return a stand-in of ``version`` and make depthssd see the
    stand-in's GPU (``engine.gpu_identity``) for the rest of the test."""
    import sys

    from depthssd_core import engine

    module = make_tensorrt(version, gpu)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    monkeypatch.setattr(engine, "gpu_identity", lambda device_index=0: dict(module._standin.gpu))
    return module
