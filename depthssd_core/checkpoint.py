"""DepthSSD checkpoints: safetensors files that carry their own model configuration.

No pickle anywhere: tensors go into a safetensors file and the metadata (string to string) holds
``depthssd_config`` (JSON of ``ModelConfig.to_dict()``), ``depthssd_version`` and any extra
JSON entries such as ``metrics``. ``load_model`` rebuilds the network from the file alone.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from depthssd_core.config import ModelConfig

CONFIG_KEY = "depthssd_config"
VERSION_KEY = "depthssd_version"


class CheckpointError(ValueError):
    """A checkpoint file is missing, unreadable or does not match its configuration."""


def save_checkpoint(path: str | Path, model: Any, extra: dict[str, Any] | None = None) -> Path:
    """Write the model's weights and configuration to a safetensors file.

    Args:
        path: Output file (parent folders are created).
        model: A ``DepthSSD`` (anything with ``cfg`` and ``state_dict()``).
        extra: Further metadata entries (e.g. ``{"metrics": {...}, "epoch": 3}``); each value
            is stored as JSON under its key.

    Returns:
        The path written.

    Raises:
        ValueError: if an extra key is reserved or a value is not JSON-serialisable.
    """
    from depthssd_core import __version__

    path = Path(path)
    metadata = {CONFIG_KEY: json.dumps(model.cfg.to_dict()), VERSION_KEY: __version__}
    for key, value in (extra or {}).items():
        if key in metadata:
            raise ValueError(f"extra metadata key {key!r} is reserved")
        try:
            metadata[str(key)] = json.dumps(value)
        except TypeError as exc:
            raise ValueError(f"extra metadata {key!r} is not JSON-serialisable: {exc}") from exc
    # safetensors wants contiguous CPU tensors that share no storage.
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=metadata)
    return path


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Metadata of a checkpoint with JSON values decoded (``depthssd_config`` as a dict).

    Raises:
        CheckpointError: naming the path when it is missing or not a readable safetensors file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise CheckpointError(f"checkpoint {path} is not a valid safetensors file: {exc}") from exc
    out: dict[str, Any] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def load_model(path: str | Path, device: str | torch.device = "cpu") -> Any:
    """Rebuild a ``DepthSSD`` from a checkpoint, in eval mode.

    Args:
        path: safetensors file written by ``save_checkpoint``.
        device: Where to put the model.

    Returns:
        The model.

    Raises:
        CheckpointError: naming the path for a missing or corrupt file, a missing or invalid
            configuration, or weights that do not match the configuration.
    """
    from depthssd_core.model.network import DepthSSD

    path = Path(path)
    metadata = read_metadata(path)
    if CONFIG_KEY not in metadata:
        raise CheckpointError(f"checkpoint {path} has no {CONFIG_KEY!r} metadata")
    try:
        cfg = ModelConfig.from_dict(metadata[CONFIG_KEY])
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"checkpoint {path}: bad model config: {exc}") from exc
    model = DepthSSD(cfg)
    try:
        with safe_open(str(path), framework="pt") as handle:
            state = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path}: cannot read tensors: {exc}") from exc
    _check_state(path, model.state_dict(), state)
    model.load_state_dict(state)
    return model.to(device).eval()


def _check_state(
    path: Path, expected: dict[str, torch.Tensor], found: dict[str, torch.Tensor]
) -> None:
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    wrong = sorted(
        key
        for key in set(expected) & set(found)
        if tuple(expected[key].shape) != tuple(found[key].shape)
    )
    if missing or unexpected or wrong:
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", wrong)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {keys[0]})")
        raise CheckpointError(
            f"checkpoint {path} does not match its model config: {', '.join(parts)}"
        )
