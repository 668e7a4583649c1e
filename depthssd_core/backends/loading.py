"""Model files -> a ready backend and the model facts the runtime needs (:class:`ModelInfo`).

Accepted files:

- ``.safetensors`` checkpoint: the torch backend runs it directly; ONNX Runtime and TensorRT
  run its ONNX export, made once per checkpoint content (sha256) and precision and kept in the
  ONNX cache folder (:func:`onnx_cache_dir`).
- ``.onnx`` with its sidecar ``<onnx>.json`` (written by ``depthssd_core.export``): ONNX Runtime
  or TensorRT. The sidecar is checked against the graph; a mismatch names what differs.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import TYPE_CHECKING

from depthssd_core import graph_contract
from depthssd_core.backends.base import InferenceBackend
from depthssd_core.cache import user_cache_dir
from depthssd_core.model_info import ModelInfo, model_info_from_module, model_info_from_sidecar

if TYPE_CHECKING:
    from depthssd_core.model.network import DepthSSD

#: Values of the ``backend`` argument (and of the node's ``backend`` parameter).
BACKENDS = ("auto", "tensorrt", "onnxruntime", "torch")


def tensorrt_usable() -> bool:
    """Whether TensorRT can be imported and a CUDA GPU is visible."""
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False


def resolve_backend(backend: str, model_path: Path) -> str:
    """The concrete backend for ``auto`` (TensorRT > ONNX Runtime > torch) or check the name."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend != "auto":
        return backend
    if tensorrt_usable():
        return "tensorrt"
    if importlib.util.find_spec("onnxruntime") is not None:
        return "onnxruntime"
    if model_path.suffix == ".onnx":
        raise ValueError(f"{model_path}: an ONNX model needs onnxruntime or tensorrt installed")
    return "torch"


def onnx_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """Where checkpoints' ONNX exports are cached: ``cache_dir`` if given, else
    ``<user cache>/onnx`` (see :func:`depthssd_core.cache.user_cache_dir`)."""
    return Path(cache_dir) if cache_dir is not None else user_cache_dir() / "onnx"


def export_cached_onnx(checkpoint: Path, model: DepthSSD, cache_dir: str | Path | None = None,
                       fp16: bool = False) -> Path:
    """The ONNX export of a checkpoint, made once per checkpoint content (sha256) and precision.

    The file is ``<checkpoint stem>.<sha256[:16]>[.fp16].onnx`` in :func:`onnx_cache_dir`, never
    next to the checkpoint (an installed package's ``share/`` may be read-only). TensorRT gets
    the FP16 export (a strongly typed build takes its precision from the graph).
    """
    from depthssd_core import export
    from depthssd_core.hashing import file_sha256

    digest = file_sha256(checkpoint)[:16]
    name = f"{checkpoint.stem}.{digest}{'.fp16' if fp16 else ''}.onnx"
    folder = onnx_cache_dir(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = folder / name
    sidecar = graph_contract.sidecar_path(onnx_path)
    if not (onnx_path.is_file() and sidecar.is_file()):
        tmp = onnx_path.with_name(f".{onnx_path.stem}.{os.getpid()}.tmp.onnx")
        export.export_onnx(model, tmp, fp16=fp16)
        # Sidecar first, graph last: a graph without its sidecar is never visible.
        os.replace(graph_contract.sidecar_path(tmp), sidecar)
        os.replace(tmp, onnx_path)
    return onnx_path


def check_graph_against_info(onnx_path: Path, info: ModelInfo) -> None:
    """Raise ``ValueError`` listing each difference between the graph IO and the sidecar."""
    from depthssd_core.engine import onnx_io

    io = onnx_io(onnx_path)
    want = {"image": [1, 3, info.input_height, info.input_width],
            "mem_m": list(info.initial_mem_m.shape), "mem_s": list(info.initial_mem_s.shape)}
    problems = []
    for name, shape in want.items():
        got = io["inputs"].get(name)
        if got is None:
            problems.append(f"graph has no input {name!r}")
        elif any(g is not None and g != w for g, w in zip(got["shape"], shape, strict=False)) \
                or len(got["shape"]) != len(shape):
            problems.append(f"input {name!r}: graph {got['shape']} vs sidecar {shape}")
    if problems:
        raise ValueError(f"{onnx_path} and its sidecar disagree: {'; '.join(problems)}")


def load_backend(path: Path, backend: str = "auto", num_threads: int = 2,
                 cache_dir: str | Path | None = None, device: str | None = None,
                 ) -> tuple[InferenceBackend, ModelInfo]:
    """Open a model file on a backend.

    Args:
        path: ``.safetensors`` checkpoint or ``.onnx`` export.
        backend: one of :data:`BACKENDS`.
        num_threads: CPU threads (ONNX Runtime intra-op, torch).
        cache_dir: ONNX cache folder for a checkpoint (default :func:`onnx_cache_dir`).
        device: torch device of the torch backend; None picks CUDA when available.

    Returns:
        (backend, its model's :class:`ModelInfo`); the backend is not loaded yet.

    Raises:
        FileNotFoundError: the file (or the ONNX sidecar) is missing; ValueError: unsupported
            suffix, corrupt file or inconsistent sidecar (naming the path); ImportError: the
            requested backend is not installed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.suffix not in (".safetensors", ".onnx"):
        raise ValueError(f"{path}: model files are .safetensors checkpoints or .onnx exports")
    name = resolve_backend(backend, path)
    if path.suffix == ".safetensors":
        from depthssd_core.checkpoint import load_model

        model = load_model(path)
        if name == "torch":
            from depthssd_core.backends.torch_backend import TorchBackend

            return (TorchBackend(model, device=device, num_threads=num_threads),
                    model_info_from_module(model))
        onnx_path = export_cached_onnx(path, model, cache_dir, fp16=name == "tensorrt")
    else:
        if name == "torch":
            raise ValueError(f"{path}: the torch backend needs a .safetensors checkpoint")
        onnx_path = path
    sidecar = graph_contract.read_onnx_sidecar(onnx_path)
    info = model_info_from_sidecar(onnx_path, sidecar)
    check_graph_against_info(onnx_path, info)
    graph_contract.check_anchors_section(sidecar.get("anchors", {}), info.cfg, info.input_height,
                                         info.input_width, graph_contract.sidecar_path(onnx_path))
    if name == "onnxruntime":
        from depthssd_core.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(onnx_path, intra_op_threads=num_threads), info
    from depthssd_core.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(onnx_path), info
