"""TensorRT backend (10.x / 11.x API): a cached engine run with ``execute_async_v3``.

IO buffers are torch tensors in CUDA memory bound once by name (``set_tensor_address``); each
frame copies the inputs in, enqueues the engine on a non-default CUDA stream and copies the
outputs into fresh host arrays (the caller keeps the memory state across frames, so nothing it
gets back may alias a buffer the next frame overwrites). ``tensorrt`` and CUDA are only touched
in :meth:`TensorRTBackend.load`.

Binding order matters: an engine's output shapes are only defined once every input shape is set
on the execution context, so :meth:`TensorRTBackend.load` sets all input shapes first, checks
that none is left unspecified, and only then reads the output shapes and binds the buffers;
every bool TensorRT returns is checked.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from depthssd_core import engine as trt_engine
from depthssd_core.backends.base import InferenceBackend, check_outputs
from depthssd_core.graph_contract import INPUT_NAMES, OUTPUT_NAMES


class DeviceMemory(Protocol):
    """Where the IO buffers live and on which stream the engine runs."""

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """An uninitialised torch tensor of ``shape`` and torch ``dtype`` on the device."""

    def stream_handle(self) -> int:
        """The stream handle passed to ``execute_async_v3``."""

    def scope(self) -> AbstractContextManager:
        """Context in which copies are enqueued on that stream."""

    def synchronize(self) -> None:
        """Wait for everything enqueued on the stream."""


class CudaMemory:
    """CUDA memory through torch, and one non-default stream (TensorRT synchronises the
    default stream around every launch)."""

    def __init__(self) -> None:
        import torch

        self._torch = torch
        self._stream = torch.cuda.Stream()

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        return self._torch.empty(shape, dtype=dtype, device="cuda")

    def stream_handle(self) -> int:
        return int(self._stream.cuda_stream)

    def scope(self) -> AbstractContextManager:
        return self._torch.cuda.stream(self._stream)

    def synchronize(self) -> None:
        self._stream.synchronize()


def _torch_dtype(trt: Any, dtype: Any):
    import torch

    table = {trt.DataType.FLOAT: torch.float32, trt.DataType.HALF: torch.float16,
             trt.DataType.INT32: torch.int32, trt.DataType.BOOL: torch.bool}
    for name, value in (("INT64", torch.int64), ("BF16", torch.bfloat16)):
        if hasattr(trt.DataType, name):
            table[getattr(trt.DataType, name)] = value
    if dtype not in table:
        raise ValueError(f"unsupported TensorRT tensor dtype {dtype}")
    return table[dtype]


class TensorRTBackend(InferenceBackend):
    """Runs the DepthSSD graph as a TensorRT engine on a CUDA GPU.

    Args:
        onnx_path: the exported ONNX; the engine is built from it (and cached) when needed.
        engine_path: engine file; with no ``onnx_path`` it must exist and is checked against
            this machine by its sidecar (IO names only when it has none).
        force_rebuild: rebuild the engine even if the cache is current.
        memory: factory of the :class:`DeviceMemory` the IO buffers live in; default
            :class:`CudaMemory` (the tests pass host memory to a stand-in TensorRT).
        build_kwargs: passed to :func:`depthssd_core.engine.build_engine` (workspace, timing
            cache, input shapes, network typing).
    """

    name = "tensorrt"

    def __init__(self, onnx_path: str | Path | None = None,
                 engine_path: str | Path | None = None, force_rebuild: bool = False,
                 memory: Callable[[], DeviceMemory] | None = None,
                 **build_kwargs: Any) -> None:
        if onnx_path is None and engine_path is None:
            raise ValueError("TensorRTBackend needs an onnx_path or an engine_path")
        self.onnx_path = Path(onnx_path) if onnx_path else None
        self.engine_path = Path(engine_path) if engine_path else None
        self.force_rebuild = force_rebuild
        self.build_kwargs = build_kwargs
        self.device = "cuda"
        self._memory_factory = memory or CudaMemory
        self._context = None
        self._buffers: dict[str, Any] = {}

    def load(self) -> None:
        """Build/load the engine, create the context, set the shapes, bind IO buffers.

        Raises:
            ImportError: tensorrt missing. RuntimeError: no GPU, a failed build, or TensorRT
                refused a shape or an address. EngineMismatchError: the engine's IO differs
                from the DepthSSD contract or from its ONNX graph.
        """
        if self._context is not None:
            return
        trt = trt_engine.import_tensorrt()
        self.device = trt_engine.gpu_identity()["gpu_name"]
        if self.onnx_path is not None:
            info, runtime, engine = trt_engine.ensure_engine(
                self.onnx_path, self.engine_path, force=self.force_rebuild, **self.build_kwargs)
            self.engine_path = info.engine_path
            expected = info.sidecar.get("expected_io")
        else:
            expected = trt_engine.check_prebuilt_engine(trt, self.engine_path)
            runtime, engine = trt_engine.load_engine(trt, self.engine_path, expected)
        context = engine.create_execution_context()
        if context is None:
            raise RuntimeError(f"TensorRT could not create an execution context for "
                               f"{self.engine_path} (out of GPU memory?)")
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        for name in inputs:
            shape = self._input_shape(engine, name, expected)
            if not context.set_input_shape(name, shape):
                raise RuntimeError(f"TensorRT refused shape {list(shape)} for input {name!r} "
                                   f"of {self.engine_path}")
        unresolved = context.infer_shapes()
        if unresolved:
            raise RuntimeError(f"engine {self.engine_path}: shapes of {list(unresolved)} are "
                               "still unspecified after setting every input shape")
        shapes = {n: tuple(int(d) for d in context.get_tensor_shape(n)) for n in names}
        unknown = {n: s for n, s in shapes.items() if any(d < 0 for d in s)}
        if unknown:
            raise RuntimeError(f"engine {self.engine_path}: dynamic shapes left {unknown}")
        if expected is not None:
            outputs = {n: list(s) for n, s in shapes.items() if n not in inputs}
            problems = trt_engine.io_differences({"outputs": outputs},
                                                 {"outputs": expected["outputs"]})
            if problems:
                raise trt_engine.EngineMismatchError(
                    f"engine {self.engine_path} does not match: {'; '.join(problems)}")
        memory = self._memory_factory()
        buffers = {}
        for name in names:
            buffers[name] = memory.empty(shapes[name],
                                         _torch_dtype(trt, engine.get_tensor_dtype(name)))
            if not context.set_tensor_address(name, buffers[name].data_ptr()):
                raise RuntimeError(f"TensorRT refused the buffer address of {name!r} "
                                   f"({self.engine_path})")
        self._runtime, self._engine, self._memory = runtime, engine, memory
        self._buffers, self._context = buffers, context

    @staticmethod
    def _input_shape(engine: Any, name: str, expected: dict | None) -> tuple[int, ...]:
        """The shape to run input ``name`` at: the engine's own when static, else the build
        shape (sidecar), else its first profile's optimum."""
        shape = tuple(int(d) for d in engine.get_tensor_shape(name))
        if all(d >= 0 for d in shape):
            return shape
        if expected is not None and name in expected.get("inputs", {}):
            return tuple(int(d) for d in expected["inputs"][name])
        return tuple(int(d) for d in engine.get_tensor_profile_shape(name, 0)[1])

    def infer(self, image: np.ndarray, mem_m: np.ndarray, mem_s: np.ndarray,
              ) -> dict[str, np.ndarray]:
        """Run the engine; see :meth:`InferenceBackend.infer`."""
        import torch

        self.load()
        with self._memory.scope():
            for name, value in zip(INPUT_NAMES, (image, mem_m, mem_s), strict=True):
                buf = self._buffers[name]
                src = torch.from_numpy(np.ascontiguousarray(value))
                if tuple(src.shape) != tuple(buf.shape):
                    raise ValueError(
                        f"input {name} has shape {tuple(src.shape)}, engine expects "
                        f"{tuple(buf.shape)}"
                    )
                buf.copy_(src)
            if not self._context.execute_async_v3(self._memory.stream_handle()):
                raise RuntimeError(f"TensorRT execution failed for engine {self.engine_path}")
            outputs = {}
            for name in OUTPUT_NAMES:
                # A fresh float32 host tensor per output and frame: a copy on every device.
                host = torch.empty(tuple(self._buffers[name].shape), dtype=torch.float32)
                host.copy_(self._buffers[name])
                outputs[name] = host
        self._memory.synchronize()
        return check_outputs({n: t.numpy() for n, t in outputs.items()}, self.name)

    def close(self) -> None:
        """Free the context, engine and buffers."""
        self._context = None
        self._buffers = {}
        self._engine = None
        self._runtime = None
        self._memory = None
