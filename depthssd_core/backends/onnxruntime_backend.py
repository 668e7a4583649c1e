"""ONNX Runtime backend: runs the exported ONNX graph on whatever providers are installed."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from depthssd_core.backends.base import InferenceBackend, check_outputs
from depthssd_core.graph_contract import INPUT_NAMES, OUTPUT_NAMES

# Preferred order; only providers both installed and requested are used. The TensorRT EP is
# left out on purpose: depthssd builds its own cached engines (engine.py).
_PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CoreMLExecutionProvider",
                        "CPUExecutionProvider")


def _import_onnxruntime():
    try:
        import onnxruntime
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ImportError(
            "the onnxruntime backend needs the 'onnxruntime' (or 'onnxruntime-gpu') package"
        ) from exc
    return onnxruntime


class OnnxRuntimeBackend(InferenceBackend):
    """Runs an ONNX file with ``onnxruntime.InferenceSession``.

    Args:
        onnx_path: path of the exported graph.
        intra_op_threads: CPU threads for one operator (0 lets ONNX Runtime decide).
        providers: execution providers to try, in order; ``None`` uses every available one of
            CUDA, CoreML, CPU. ``session.get_providers()`` is checked after loading, because
            onnxruntime-gpu silently falls back to CPU when CUDA cannot start.
        allow_spinning: let idle intra-op threads busy-wait for the next operator. Off by
            default: after ``run`` the spinning threads keep the cores busy while the
            runtime decodes, which on a small shared CPU made the post-processing several
            times slower (measured on this project's 2-core machine).
    """

    name = "onnxruntime"

    def __init__(self, onnx_path: str | Path, intra_op_threads: int = 2,
                 providers: list[str] | None = None, allow_spinning: bool = False) -> None:
        self.onnx_path = Path(onnx_path)
        self.allow_spinning = allow_spinning
        self.intra_op_threads = int(intra_op_threads)
        self.requested_providers = providers
        self.session = None
        self.providers: list[str] = []
        self.device = "cpu"

    def load(self) -> None:
        """Create the session and check its IO names.

        Raises:
            FileNotFoundError: the ONNX file does not exist.
            ValueError: the file is not a loadable ONNX graph or lacks the DepthSSD IO names.
        """
        if self.session is not None:
            return
        ort = _import_onnxruntime()
        if not self.onnx_path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.onnx_path}")
        available = ort.get_available_providers()
        wanted = self.requested_providers or [p for p in _PREFERRED_PROVIDERS if p in available]
        providers = [p for p in wanted if p in available] or ["CPUExecutionProvider"]
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.intra_op_threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning",
                                         "1" if self.allow_spinning else "0")
        try:
            session = ort.InferenceSession(str(self.onnx_path), sess_options=options,
                                           providers=providers)
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ValueError(f"cannot load ONNX model {self.onnx_path}: {exc}") from exc
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if sorted(inputs) != sorted(INPUT_NAMES) or not set(OUTPUT_NAMES) <= set(outputs):
            raise ValueError(
                f"{self.onnx_path} has inputs {inputs} and outputs {outputs}; expected inputs "
                f"{list(INPUT_NAMES)} and outputs {list(OUTPUT_NAMES)}"
            )
        self.session = session
        self.providers = list(session.get_providers())
        missing = [p for p in providers if p not in self.providers]
        if missing:
            # onnxruntime-gpu drops a provider it cannot start without raising; say so.
            warnings.warn(f"ONNX Runtime could not start {missing} for {self.onnx_path}; "
                          f"running on {self.providers}", RuntimeWarning, stacklevel=2)
        self.device = self.providers[0]
        self.input_types = {i.name: i.type for i in session.get_inputs()}

    def infer(self, image: np.ndarray, mem_m: np.ndarray, mem_s: np.ndarray,
              ) -> dict[str, np.ndarray]:
        """Run the session; see :meth:`InferenceBackend.infer`."""
        self.load()
        feeds = {}
        for name, value in zip(INPUT_NAMES, (image, mem_m, mem_s), strict=True):
            # An FP16-exported graph takes float16 inputs; cast here so callers need not care.
            dtype = np.float16 if self.input_types[name] == "tensor(float16)" else np.float32
            feeds[name] = np.ascontiguousarray(value, dtype=dtype)
        values = self.session.run(list(OUTPUT_NAMES), feeds)
        return check_outputs(dict(zip(OUTPUT_NAMES, values, strict=True)), self.name)

    def close(self) -> None:
        """Drop the session."""
        self.session = None
