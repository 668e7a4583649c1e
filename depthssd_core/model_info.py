"""What the runtime must know about a model besides its graph: config, input size, initial memory.

A ``.safetensors`` checkpoint gives it through the ``DepthSSD`` module
(:func:`model_info_from_module`); an exported ONNX through its sidecar
(:func:`model_info_from_sidecar`). The backends loader (``depthssd_core.backends.loading``)
builds one for every model file, and :class:`~depthssd_core.runtime.Perceptor` consumes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from depthssd_core.config import ModelConfig
from depthssd_core.graph_contract import sidecar_path

if TYPE_CHECKING:
    from depthssd_core.model.network import DepthSSD


@dataclass(frozen=True)
class ModelInfo:
    """A model's facts the runtime works with.

    Attributes:
        cfg: the model configuration (normalisation, anchors, depth range, canonical focal).
        input_height: network input height, pixels.
        input_width: network input width, pixels.
        initial_mem_m: float32 [1, heads, d_k, d_v], the learned M_0 (a sequence starts here).
        initial_mem_s: float32 [1, heads, d_k, d_v], the initial momentum (zeros).
    """

    cfg: ModelConfig
    input_height: int
    input_width: int
    initial_mem_m: np.ndarray
    initial_mem_s: np.ndarray


def model_info_from_module(model: DepthSSD, input_height: int | None = None,
                           input_width: int | None = None) -> ModelInfo:
    """:class:`ModelInfo` of a ``DepthSSD`` module (input size defaults to its config's)."""
    import torch

    cfg = model.cfg
    with torch.no_grad():
        mem_m, mem_s = model.initial_state(1)
    return ModelInfo(cfg, int(input_height or cfg.input_height),
                     int(input_width or cfg.input_width),
                     mem_m.detach().float().cpu().numpy(), mem_s.detach().float().cpu().numpy())


def model_info_from_sidecar(onnx_path: Path, sidecar: dict[str, Any]) -> ModelInfo:
    """:class:`ModelInfo` from an ONNX sidecar (as ``graph_contract.read_onnx_sidecar`` reads it).

    Raises:
        ValueError: a required key is missing or malformed (the sidecar file is named).
    """
    where = sidecar_path(onnx_path)
    cfg_dict = sidecar.get("model_config")
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
            f"ONNX sidecar {where} has no initial memory values (memory.initial_mem_m); export "
            "the model again with depthssd-export, or load its .safetensors checkpoint"
        )
    try:
        mem_m = np.asarray(memory["initial_mem_m"], dtype=np.float32).reshape(mem_shape)
        mem_s = np.asarray(memory.get("initial_mem_s", np.zeros(mem_shape)),
                           dtype=np.float32).reshape(mem_shape)
    except ValueError as exc:
        raise ValueError(f"ONNX sidecar {where}: initial memory does not have the shape "
                         f"{list(mem_shape)}: {exc}") from exc
    return ModelInfo(cfg, height, width, mem_m, mem_s)
