"""Checkpoints of a training run: the shipped model, the resumable state and snapshots.

A run directory holds:

- ``config.yaml``: the resolved training config;
- ``last.safetensors``: the model to ship (the EMA weights when ``ema.enabled``), loadable by
  ``depthssd_core.checkpoint.load_model``; ``last_raw.safetensors``: the raw weights beside it
  when EMA is on, so both can be evaluated;
- ``optimizer.safetensors``: everything else a resumed run needs (raw weights, AdamW moments,
  EMA step, learned loss weights, images seen); safetensors, no pickle;
- ``snapshots/images_<N>.safetensors``: the shipped weights after N training images, every
  ``snapshot_every_images`` (the learning curve, ``tools/learning_curve.py``).

Files are written to a temporary name and renamed, so an interrupted write never leaves a
half-written checkpoint in place of the last good one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from depthssd_core.checkpoint import load_model, save_checkpoint
from depthssd_train.train_config import TrainConfig, save_config

CHECKPOINT_NAME = "last.safetensors"
RAW_CHECKPOINT_NAME = "last_raw.safetensors"
OPTIMIZER_NAME = "optimizer.safetensors"
CONFIG_NAME = "config.yaml"
SNAPSHOT_DIR = "snapshots"


def snapshot_path(run_dir: Path, images: int) -> Path:
    """Where the snapshot after ``images`` training images goes."""
    return Path(run_dir) / SNAPSHOT_DIR / f"images_{images:010d}.safetensors"


def list_snapshots(run_dir: str | Path) -> list[tuple[int, Path]]:
    """(images seen, path) of every snapshot of a run, in order."""
    folder = Path(run_dir) / SNAPSHOT_DIR
    found = []
    for path in sorted(folder.glob("images_*.safetensors")):
        try:
            found.append((int(path.stem.split("_", 1)[1]), path))
        except ValueError:
            continue
    return found


def _atomic_checkpoint(path: Path, model: nn.Module, extra: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_checkpoint(tmp, model, extra=extra)
    os.replace(tmp, path)


def save_snapshot(run_dir: Path, model: nn.Module, images: int, step: int,
                  cfg: TrainConfig) -> Path:
    """Keep a copy of the shipped weights after ``images`` training images."""
    path = snapshot_path(run_dir, images)
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_checkpoint(path, model, {"step": step, "images_seen": images,
                                     "weights": "ema" if cfg.ema.enabled else "raw",
                                     "train_config": cfg.to_dict()})
    return path


def save_train_state(run_dir: Path, model: nn.Module, shipped: nn.Module,
                     optimizer: torch.optim.Optimizer, loss_log_vars: Tensor | None,
                     cfg: TrainConfig, step: int, images: int,
                     metrics: dict[str, float], precision: str = "") -> None:
    """Write the shipped model, the raw model (with EMA) and the resumable state.

    Args:
        run_dir: the run directory.
        model: the trained (raw) network.
        shipped: what ``last.safetensors`` holds (the EMA copy, or ``model`` itself).
        optimizer: its moments are saved by parameter position.
        loss_log_vars: learned loss weights, if any.
        cfg: the resolved config.
        step: optimizer steps done.
        images: training images seen (this rank).
        metrics: last training losses, for the metadata.
        precision: the precision the run trains in (a resumed ``auto`` run keeps it).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG_NAME)
    extra = {"step": step, "images_seen": images, "train_config": cfg.to_dict(),
             "train_metrics": metrics, "weights": "ema" if shipped is not model else "raw"}
    tensors: dict[str, Tensor] = {}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for i, p in enumerate(params):
        for key, value in optimizer.state.get(p, {}).items():
            if torch.is_tensor(value):
                tensors[f"state.{i}.{key}"] = value.detach().cpu().contiguous()
    for name, value in model.state_dict().items():
        tensors[f"model.{name}"] = value.detach().cpu().contiguous().clone()
    if loss_log_vars is not None:
        tensors["loss.log_vars"] = loss_log_vars.detach().cpu().contiguous()
    meta = {"step": str(step), "images_seen": str(images), "num_params": str(len(params)),
            "precision": precision,
            "lr": json.dumps([g["lr"] for g in optimizer.param_groups])}
    tmp_opt = run_dir / (OPTIMIZER_NAME + ".tmp")
    save_file(tensors, str(tmp_opt), metadata=meta)
    _atomic_checkpoint(run_dir / CHECKPOINT_NAME, shipped, {**extra})
    if shipped is not model:
        _atomic_checkpoint(run_dir / RAW_CHECKPOINT_NAME, model, {**extra, "weights": "raw"})
    os.replace(tmp_opt, run_dir / OPTIMIZER_NAME)


def saved_precision(run_dir: Path) -> str | None:
    """Precision a run in ``run_dir`` trained in, if it recorded one."""
    path = Path(run_dir) / OPTIMIZER_NAME
    if not path.is_file():
        return None
    with safe_open(str(path), "pt") as f:
        return (f.metadata() or {}).get("precision") or None


def load_train_state(run_dir: Path, model: nn.Module, shipped: nn.Module,
                     optimizer: torch.optim.Optimizer, loss_log_vars: Tensor | None
                     ) -> tuple[int, int]:
    """Restore raw and shipped weights, optimizer state and loss weights from ``run_dir``.

    Returns:
        (optimizer steps done, training images seen).

    Raises:
        ValueError: naming the file when the state does not fit this model and optimizer.
    """
    path = run_dir / OPTIMIZER_NAME
    if not path.is_file():
        raise ValueError(f"--resume {run_dir}: no {OPTIMIZER_NAME} there")
    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    tensors = load_file(str(path))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if int(meta.get("num_params", -1)) != len(params):
        raise ValueError(f"{path}: optimizer state is for {meta.get('num_params')} parameters, "
                         f"the model has {len(params)}")
    state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    if state:
        model.load_state_dict(state)
    else:  # a run written before the raw weights moved here: they are last.safetensors
        model.load_state_dict(load_model(run_dir / CHECKPOINT_NAME).state_dict())
    if shipped is not model:
        shipped.load_state_dict(load_model(run_dir / CHECKPOINT_NAME).state_dict())
    for name, value in tensors.items():
        if name.startswith("state."):
            _, index, key = name.split(".", 2)
            p = params[int(index)]
            if value.shape == p.shape:  # moments: keep the parameter's memory format
                value = torch.empty_like(p).copy_(value)
            optimizer.state.setdefault(p, {})[key] = value
    if "loss.log_vars" in tensors and loss_log_vars is not None:
        with torch.no_grad():
            loss_log_vars.copy_(tensors["loss.log_vars"])
    step = int(meta["step"])
    return step, int(meta.get("images_seen", -1))
