"""Model files -> a ready backend and the model facts the runtime needs.

Accepted files:

- ``.safetensors`` checkpoint: the torch backend runs it directly; ONNX Runtime and TensorRT
  run its ONNX export, cached by the checkpoint's sha256 (next to the checkpoint when that folder
  is writable, else under ``$XDG_CACHE_HOME/depthssd``).
- ``.onnx`` with its sidecar ``<onnx>.json`` (written by ``depthssd_core.export``): ONNX Runtime
  or TensorRT. The sidecar is checked against the graph; a mismatch names what differs.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from depthssd_core.backends.base import InferenceBackend

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


def _cache_folder(model_path: Path, cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        folder = Path(cache_dir)
    elif os.access(model_path.parent, os.W_OK):
        folder = model_path.parent
    else:
        from depthssd_core.engine import user_cache_dir

        folder = user_cache_dir() / "onnx"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def export_cached_onnx(checkpoint: Path, model: Any, cache_dir: str | Path | None,
                       fp16: bool = False) -> Path:
    """The ONNX export of a checkpoint, made once per checkpoint content (sha256) and precision.

    TensorRT gets the FP16 export (a strongly typed build takes its precision from the graph).

    The sidecar gets the model's initial memory values (``memory.initial_mem_m/_s``), which the
    graph cannot hold (M_0 is a weight used outside ``forward``).
    """
    from depthssd_core import export
    from depthssd_core.hashing import file_sha256
    from depthssd_core.runtime import model_info_from_module

    digest = file_sha256(checkpoint)[:16]
    name = f"{checkpoint.stem}.{digest}{'.fp16' if fp16 else ''}.onnx"
    onnx_path = _cache_folder(checkpoint, cache_dir) / name
    sidecar = export.sidecar_path(onnx_path)
    if not (onnx_path.is_file() and sidecar.is_file()):
        tmp = onnx_path.with_name(f".{onnx_path.stem}.{os.getpid()}.tmp.onnx")
        export.export_onnx(model, tmp, fp16=fp16)
        tmp_sidecar = export.sidecar_path(tmp)
        data = json.loads(tmp_sidecar.read_text())
        info = model_info_from_module(model)
        data.setdefault("memory", {}).update(
            initial_mem_m=info.initial_mem_m.tolist(), initial_mem_s=info.initial_mem_s.tolist())
        tmp_sidecar.write_text(json.dumps(data))
        # Sidecar first, graph last: a graph without its sidecar is never visible.
        os.replace(tmp_sidecar, sidecar)
        os.replace(tmp, onnx_path)
    return onnx_path


def read_onnx_sidecar(onnx_path: Path) -> dict[str, Any]:
    """The JSON sidecar of an ONNX model, checked against the graph's sha256.

    Raises:
        FileNotFoundError: no sidecar (named). ValueError: unreadable, unknown format, or
            written for another graph (sha256 differs).
    """
    from depthssd_core import export

    sidecar = export.sidecar_path(onnx_path)
    if not sidecar.is_file():
        raise FileNotFoundError(f"ONNX sidecar not found: {sidecar} (export writes it next to "
                                f"{onnx_path.name})")
    return export.read_sidecar(onnx_path, verify_hash=True)


def model_info_from_sidecar(onnx_path: Path, sidecar: dict[str, Any]):
    """:class:`~depthssd_core.runtime.ModelInfo` from an ONNX sidecar.

    Raises:
        ValueError: a required key is missing or malformed (the sidecar file is named).
    """
    from depthssd_core.config import ModelConfig
    from depthssd_core.runtime import ModelInfo

    where = onnx_path.with_name(onnx_path.name + ".json")
    cfg_dict = sidecar.get("model_config", sidecar.get("config"))
    if cfg_dict is None:
        raise ValueError(f"ONNX sidecar {where} has no 'model_config'")
    try:
        cfg = ModelConfig.from_dict(cfg_dict)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"ONNX sidecar {where}: bad model_config: {exc}") from exc
    image = sidecar.get("input", {})
    height = int(image.get("height", cfg.input_height))
    width = int(image.get("width", cfg.input_width))
    memory = sidecar.get("memory", {})
    mem_shape = (1, *cfg.memory_shape)
    if "initial_mem_m" not in memory:
        raise ValueError(
            f"ONNX sidecar {where} has no initial memory values (memory.initial_mem_m); load "
            "the .safetensors checkpoint instead (its export records them)"
        )
    try:
        mem_m = np.asarray(memory["initial_mem_m"], dtype=np.float32).reshape(mem_shape)
        mem_s = np.asarray(memory.get("initial_mem_s", np.zeros(mem_shape)),
                           dtype=np.float32).reshape(mem_shape)
    except ValueError as exc:
        raise ValueError(f"ONNX sidecar {where}: initial memory does not have the shape "
                         f"{list(mem_shape)}: {exc}") from exc
    return ModelInfo(cfg, height, width, mem_m, mem_s)


def check_graph_against_info(onnx_path: Path, info: Any) -> None:
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
                 ) -> tuple[InferenceBackend, Any]:
    """Open a model file on a backend.

    Returns:
        (backend, ModelInfo).

    Raises:
        FileNotFoundError: the file (or the ONNX sidecar) is missing; ValueError: unsupported
            suffix, corrupt file or inconsistent sidecar (naming the path); ImportError: the
            requested backend is not installed.
    """
    from depthssd_core.runtime import model_info_from_module

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    if path.suffix not in (".safetensors", ".onnx"):
        raise ValueError(f"{path}: model files are .safetensors checkpoints or .onnx exports")
    name = resolve_backend(backend, path)
    if path.suffix == ".safetensors":
        from depthssd_core.checkpoint import load_model

        model = load_model(path)
        info = model_info_from_module(model)
        if name == "torch":
            from depthssd_core.backends.torch_backend import TorchBackend

            return TorchBackend(model, device=device, num_threads=num_threads), info
        onnx_path = export_cached_onnx(path, model, cache_dir, fp16=name == "tensorrt")
    else:
        if name == "torch":
            raise ValueError(f"{path}: the torch backend needs a .safetensors checkpoint")
        onnx_path = path
    info = model_info_from_sidecar(onnx_path, read_onnx_sidecar(onnx_path))
    check_graph_against_info(onnx_path, info)
    if name == "onnxruntime":
        from depthssd_core.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(onnx_path, intra_op_threads=num_threads), info
    from depthssd_core.backends.tensorrt_backend import TensorRTBackend

    return TensorRTBackend(onnx_path), info
