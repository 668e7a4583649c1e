"""TensorRT backend (10.x / 11.x API): a cached engine run with ``execute_async_v3``.

IO buffers are CUDA torch tensors bound once by name (``set_tensor_address``); each frame copies
the inputs in, enqueues the engine on a torch CUDA stream and copies the outputs back. ``tensorrt``
and CUDA are only touched in :meth:`TensorRTBackend.load`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from depthssd_core.backends.base import InferenceBackend, check_outputs
from depthssd_core.engine import ensure_engine, gpu_identity, import_tensorrt, load_engine
from depthssd_core.graph_contract import INPUT_NAMES, OUTPUT_NAMES


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
        engine_path: engine file; with no ``onnx_path`` it must exist and is only validated by
            IO names.
        force_rebuild: rebuild the engine even if the cache is current.
        build_kwargs: passed to :func:`depthssd_core.engine.build_engine` (workspace, timing
            cache).
    """

    name = "tensorrt"

    def __init__(self, onnx_path: str | Path | None = None,
                 engine_path: str | Path | None = None, force_rebuild: bool = False,
                 **build_kwargs: Any) -> None:
        if onnx_path is None and engine_path is None:
            raise ValueError("TensorRTBackend needs an onnx_path or an engine_path")
        self.onnx_path = Path(onnx_path) if onnx_path else None
        self.engine_path = Path(engine_path) if engine_path else None
        self.force_rebuild = force_rebuild
        self.build_kwargs = build_kwargs
        self.device = "cuda"
        self._context = None

    def load(self) -> None:
        """Build/load the engine, create the context, allocate and bind IO buffers.

        Raises:
            ImportError: tensorrt missing. RuntimeError: no GPU or a failed build.
            EngineMismatchError: the engine's IO differs from the DepthSSD contract.
        """
        if self._context is not None:
            return
        trt = import_tensorrt()
        import torch

        self.device = gpu_identity()["gpu_name"]
        if self.onnx_path is not None:
            info, self._runtime, self._engine = ensure_engine(
                self.onnx_path, self.engine_path, force=self.force_rebuild, **self.build_kwargs)
            self.engine_path = info.engine_path
        else:
            self._runtime, self._engine = load_engine(trt, self.engine_path, None)
        self._context = self._engine.create_execution_context()
        self._buffers: dict[str, torch.Tensor] = {}
        for i in range(self._engine.num_io_tensors):
            name = self._engine.get_tensor_name(i)
            shape = tuple(self._engine.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                shape = tuple(self._context.get_tensor_shape(name))
            dtype = _torch_dtype(trt, self._engine.get_tensor_dtype(name))
            self._buffers[name] = torch.empty(shape, dtype=dtype, device="cuda")
            if self._engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._context.set_input_shape(name, shape)
            self._context.set_tensor_address(name, self._buffers[name].data_ptr())
        self._stream = torch.cuda.Stream()

    def infer(self, image: np.ndarray, mem_m: np.ndarray, mem_s: np.ndarray,
              ) -> dict[str, np.ndarray]:
        """Run the engine; see :meth:`InferenceBackend.infer`."""
        import torch

        self.load()
        with torch.cuda.stream(self._stream):
            for name, value in zip(INPUT_NAMES, (image, mem_m, mem_s), strict=True):
                buf = self._buffers[name]
                src = torch.from_numpy(np.ascontiguousarray(value))
                if tuple(src.shape) != tuple(buf.shape):
                    raise ValueError(
                        f"input {name} has shape {tuple(src.shape)}, engine expects "
                        f"{tuple(buf.shape)}"
                    )
                buf.copy_(src.to(buf.dtype), non_blocking=False)
            if not self._context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError(f"TensorRT execution failed for engine {self.engine_path}")
            outputs = {n: self._buffers[n].float().cpu() for n in OUTPUT_NAMES}
        self._stream.synchronize()
        return check_outputs({n: t.numpy() for n, t in outputs.items()}, self.name)

    def close(self) -> None:
        """Free the context, engine and buffers."""
        self._context = None
        self._buffers = {}
        self._engine = None
        self._runtime = None
