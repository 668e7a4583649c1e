"""Training loop of DepthSSD: clips with the memory carried through, AdamW, DDP, checkpoints.

One optimizer step takes a batch of B clips of T consecutive frames. The memory state starts
from ``model.initial_state`` at the clip start, is carried from frame to frame with its graph
(truncated back-propagation through the clip), and is occasionally reset mid-clip (the
initial state is fed instead) so the network also learns to work right after a reset. Clips
start at random frames of their sequence.

Data come from a dataset folder (``ClipDataset``) or are rendered on the fly by the synthetic
world. Several processes train together when started by ``torchrun`` (``WORLD_SIZE``/``RANK``
in the environment): DDP over NCCL on GPUs, gloo on CPU.

A run directory holds ``config.yaml`` (the resolved config), ``last.safetensors`` (the model,
loadable by ``depthssd_core.checkpoint.load_model``), ``optimizer.safetensors`` (AdamW moments,
loss weights, scheduler and RNG state; safetensors, no pickle) and ``tb/`` (TensorBoard). A loss
term that is not finite or exceeds ``max_loss`` stops the run with a diagnosis
(:class:`TrainingDivergedError`), leaving the last good checkpoint untouched.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from torch.utils.data import DataLoader, IterableDataset, get_worker_info
from tqdm import tqdm

from depthssd_core.config import ModelConfig
from depthssd_core.model import build_model
from depthssd_train.dataset.augment import Compose, Resize, default_train_transform
from depthssd_train.dataset.format import frame_from_synth
from depthssd_train.dataset.torch_data import (
    ClipDataset,
    collate_clips,
    sample_from_frame,
    to_tensors,
)
from depthssd_train.losses import DepthSSDLoss, FrameTargets
from depthssd_train.train_config import StageConfig, TrainConfig, load_config, save_config

CHECKPOINT_NAME = "last.safetensors"
OPTIMIZER_NAME = "optimizer.safetensors"
CONFIG_NAME = "config.yaml"


class TrainingDivergedError(RuntimeError):
    """A loss term or the gradient norm went non-finite or exploded; the message says which."""


@dataclass
class DistInfo:
    """Where this process sits in a (possibly single-process) training job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Whether this process logs and writes checkpoints."""
        return self.rank == 0


# ------------------------------------------------------------------------------------------------
# Devices, precision, distribution
# ------------------------------------------------------------------------------------------------

def init_distributed(device_pref: str) -> tuple[DistInfo, torch.device]:
    """Join the process group torchrun describes in the environment (if any) and pick a device.

    Returns:
        (dist info, device). Without ``WORLD_SIZE`` > 1 nothing is initialised.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device_pref == "auto":
        device = torch.device(f"cuda:{local}" if torch.cuda.is_available() else "cpu")
    elif device_pref == "cuda" and world > 1:
        device = torch.device(f"cuda:{local}")
    else:
        device = torch.device(device_pref)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device_pref!r} asked for but CUDA is not available")
    if world > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local), device


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype for the run (None = full FP32).

    ``auto`` picks bf16 on GPUs that support it and on CPUs with AMX tiles (where oneDNN runs
    bf16 convolutions and matmuls several times faster than FP32); elsewhere FP32.
    """
    if precision == "fp32":
        return None
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    return torch.bfloat16 if amx() else None


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------

class RandomClipStream(IterableDataset):
    """Endless clips from sequences rendered on the fly by the synthetic world.

    Each rank and DataLoader worker renders its own share of the sequence ids
    ``{prefix}{i:05d}`` for ``i`` in ``0..num_sequences-1`` (world seed ``seed``) in a random
    order per pass, cuts ``frames_per_sequence // clip_length`` clips at random start frames
    from each, and yields them through a shuffle buffer so a batch mixes sequences.
    """

    def __init__(self, *, seed: int, num_sequences: int, frames_per_sequence: int,
                 clip_length: int, width: int, height: int, fov_deg: float | None,
                 transform: Any, rank: int = 0, world_size: int = 1, sample_seed: int = 0,
                 buffer_clips: int = 16, prefix: str = "train") -> None:
        self.seed, self.num_sequences = seed, num_sequences
        self.frames, self.clip_length = frames_per_sequence, clip_length
        self.width, self.height, self.fov_deg = width, height, fov_deg
        self.transform, self.rank, self.world_size = transform, rank, world_size
        self.sample_seed, self.buffer_clips, self.prefix = sample_seed, buffer_clips, prefix

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        from depthssd_sim.world import SyntheticWorld  # heavy: import in the worker

        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        shard = self.rank * workers + worker
        shards = self.world_size * workers
        mine = [i for i in range(self.num_sequences) if i % shards == shard]
        mine = mine or [shard % self.num_sequences]  # more shards than sequences: share some
        world = SyntheticWorld(seed=self.seed, width=self.width, height=self.height,
                               fov_deg=self.fov_deg)
        rng = np.random.default_rng([self.sample_seed, shard])
        buffer: list[list[dict[str, Any]]] = []
        while True:
            for index in rng.permutation(mine):
                frames = [sample_from_frame(frame_from_synth(f)) for f in
                          world.sequence(f"{self.prefix}{int(index):05d}", self.frames)]
                for _ in range(max(1, self.frames // self.clip_length)):
                    start = int(rng.integers(0, self.frames - self.clip_length + 1))
                    clip_seed = int(rng.integers(0, 2**62))
                    # One generator seed per clip: every frame gets the same augmentation.
                    buffer.append([to_tensors(self.transform(s, np.random.default_rng(clip_seed)))
                                   for s in frames[start:start + self.clip_length]])
                while len(buffer) > self.buffer_clips:
                    yield buffer.pop(int(rng.integers(0, len(buffer))))


def _transform(cfg: TrainConfig, stage: StageConfig) -> Any:
    if cfg.data.augment:
        return default_train_transform(stage.width, stage.height)
    return Compose([Resize(stage.width, stage.height)])


def build_loader(cfg: TrainConfig, stage: StageConfig, stage_index: int, dinfo: DistInfo,
                 epoch_seed: int) -> Iterator[list[dict[str, Any]]]:
    """Endless iterator of clip batches (lists of T batched frames) for one stage."""
    transform = _transform(cfg, stage)
    d = cfg.data
    workers = d.num_workers
    if d.source == "synthetic":
        width = d.synth_width or stage.width
        height = d.synth_height or stage.height
        dataset = RandomClipStream(
            seed=d.synth_seed, num_sequences=d.synth_sequences,
            frames_per_sequence=d.synth_frames_per_sequence, clip_length=stage.clip_length,
            width=width, height=height, fov_deg=d.fov_deg, transform=transform,
            rank=dinfo.rank, world_size=dinfo.world_size, buffer_clips=d.shuffle_buffer_clips,
            sample_seed=cfg.seed * 1000 + stage_index * 100 + epoch_seed)
        loader = DataLoader(dataset, batch_size=stage.batch_size, num_workers=workers,
                            collate_fn=collate_clips, persistent_workers=False)
        yield from loader
        return
    dataset = ClipDataset(d.path, d.split, stage.clip_length, stride=1, transform=transform)
    epoch = 0
    while True:
        gen = torch.Generator().manual_seed(cfg.seed * 1000 + stage_index * 100 + epoch_seed
                                            + epoch)
        order = torch.randperm(len(dataset), generator=gen).tolist()
        # Each rank takes every world_size-th clip of the shared permutation.
        indices = order[dinfo.rank::dinfo.world_size]
        loader = DataLoader(torch.utils.data.Subset(dataset, indices),
                            batch_size=stage.batch_size, shuffle=False, drop_last=True,
                            num_workers=workers, collate_fn=collate_clips)
        if len(loader) == 0:
            raise ValueError(f"data.path: {d.path} has fewer than schedule batch_size "
                             f"({stage.batch_size}) clips of {stage.clip_length} frames")
        yield from loader
        epoch += 1


def frame_targets(batch: dict[str, Any], device: torch.device) -> FrameTargets:
    """Loss targets of one batched frame (from ``collate_frames``)."""
    depth = batch["depth_m"][:, 0].to(device)
    valid = batch["depth_valid"][:, 0].to(device)
    return FrameTargets(
        boxes=[b.to(device) for b in batch["boxes_xyxy"]],
        labels=[lab.to(device) for lab in batch["labels"]],
        depth_m=torch.where(valid, depth, torch.full_like(depth, float("nan"))),
        # sqrt(fx * fy), as the runtime rescales canonical depth (focal_for_depth).
        focal_px=torch.sqrt(batch["intrinsics"][:, 0] * batch["intrinsics"][:, 1]).to(device),
        has_boxes=batch["has_boxes"].to(device),
        has_depth=batch["has_depth"].to(device),
    )


# ------------------------------------------------------------------------------------------------
# Model + loss as one module (so DDP also synchronises learned loss weights)
# ------------------------------------------------------------------------------------------------

class ClipTrainer(nn.Module):
    """Runs a clip through the network, carrying the memory, and returns the mean frame loss."""

    def __init__(self, model: nn.Module, loss_fn: DepthSSDLoss, channels_last: bool = False
                 ) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn
        self.channels_last = channels_last
        cfg: ModelConfig = model.cfg
        self.register_buffer("mean", torch.tensor(cfg.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(cfg.std).view(1, 3, 1, 1), persistent=False)
        self._anchors: dict[tuple[int, int], Tensor] = {}

    def anchors(self, height: int, width: int, device: torch.device) -> Tensor:
        """Anchors of an input size, cached."""
        key = (height, width)
        if key not in self._anchors:
            self._anchors[key] = self.model.anchors(height, width).float().to(device)
        return self._anchors[key]

    def forward(self, frames: list[dict[str, Any]], resets: Tensor
                ) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss of a clip batch.

        Args:
            frames: T batched frames (``collate_clips``), images 0..1 RGB.
            resets: bool [T, B]; True feeds the initial state at that frame (row 0 is ignored:
                every clip starts from the initial state).

        Returns:
            (mean total loss over frames, mean detached terms over frames).
        """
        device = self.mean.device
        batch = frames[0]["image"].shape[0]
        init_m, init_s = self.model.initial_state(batch)
        init_m, init_s = init_m.to(device), init_s.to(device)
        mem_m, mem_s = init_m, init_s
        total = torch.zeros((), device=device)
        terms: dict[str, Tensor] = {}
        for t, frame in enumerate(frames):
            if t > 0:
                r = resets[t].to(device).view(-1, 1, 1, 1)
                mem_m = torch.where(r, init_m, mem_m)
                mem_s = torch.where(r, init_s, mem_s)
            image = (frame["image"].to(device) - self.mean) / self.std
            if self.channels_last:
                image = image.contiguous(memory_format=torch.channels_last)
            cls_logits, box_reg, depth_c, mem_m, mem_s = self.model(image, mem_m, mem_s)
            height, width = image.shape[-2:]
            # Losses in FP32 even under bf16 autocast: log, sqrt and sums need the range.
            with torch.autocast(device.type, enabled=False):
                loss, frame_terms = self.loss_fn(
                    cls_logits.float(), box_reg.float(), depth_c.float(),
                    self.anchors(height, width, device), frame_targets(frame, device))
            total = total + loss
            for k, v in frame_terms.items():
                terms[k] = terms.get(k, torch.zeros((), device=device)) + v
        steps = len(frames)
        return total / steps, {k: v / steps for k, v in terms.items()}


# ------------------------------------------------------------------------------------------------
# Optimizer, schedule, checkpoints
# ------------------------------------------------------------------------------------------------

def build_optimizer(trainer: ClipTrainer, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW; weight decay only on weight matrices/kernels (not norms, biases, states)."""
    decay, no_decay = [], []
    for name, p in trainer.named_parameters():
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 and not name.startswith("loss_fn.") else no_decay).append(p)
    o = cfg.optim
    return torch.optim.AdamW([{"params": decay, "weight_decay": o.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}],
                             lr=o.lr, betas=(o.beta1, o.beta2))


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Learning-rate multiplier at ``step``: linear warm-up, then cosine to ``min_lr_ratio``
    (over all stages, or within each stage with ``optim.restart_each_stage``)."""
    o = cfg.optim
    total = cfg.total_steps
    if o.restart_each_stage:
        index, stage = cfg.stage_at(step)
        step -= cfg.stage_start(index)
        total = stage.steps
    if o.warmup_steps > 0 and step < o.warmup_steps:
        return (step + 1) / o.warmup_steps
    span = max(1, total - o.warmup_steps)
    progress = min(1.0, (step - o.warmup_steps) / span)
    return o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def save_train_state(run_dir: Path, trainer: ClipTrainer, optimizer: torch.optim.Optimizer,
                     cfg: TrainConfig, step: int, metrics: dict[str, float]) -> None:
    """Write model checkpoint, optimizer state and config atomically (tmp file + rename)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(cfg, run_dir / CONFIG_NAME)
    extra = {"step": step, "train_config": cfg.to_dict(), "train_metrics": metrics}
    from depthssd_core.checkpoint import save_checkpoint

    tmp = run_dir / (CHECKPOINT_NAME + ".tmp")
    save_checkpoint(tmp, trainer.model, extra=extra)
    tensors: dict[str, Tensor] = {}
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for i, p in enumerate(params):
        for key, value in optimizer.state.get(p, {}).items():
            if torch.is_tensor(value):
                tensors[f"state.{i}.{key}"] = value.detach().cpu().contiguous()
    if trainer.loss_fn.log_vars is not None:
        tensors["loss.log_vars"] = trainer.loss_fn.log_vars.detach().cpu().contiguous()
    tensors["rng.torch"] = torch.get_rng_state()
    meta = {"step": str(step), "num_params": str(len(params)),
            "lr": json.dumps([g["lr"] for g in optimizer.param_groups])}
    tmp_opt = run_dir / (OPTIMIZER_NAME + ".tmp")
    save_file(tensors, str(tmp_opt), metadata=meta)
    os.replace(tmp, run_dir / CHECKPOINT_NAME)
    os.replace(tmp_opt, run_dir / OPTIMIZER_NAME)


def load_train_state(run_dir: Path, trainer: ClipTrainer, optimizer: torch.optim.Optimizer
                     ) -> int:
    """Restore model, loss weights and optimizer state from ``run_dir``; return the step."""
    from depthssd_core.checkpoint import load_model

    model = load_model(run_dir / CHECKPOINT_NAME)
    trainer.model.load_state_dict(model.state_dict())
    path = run_dir / OPTIMIZER_NAME
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    tensors = load_file(str(path))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    if int(meta.get("num_params", -1)) != len(params):
        raise ValueError(f"{path}: optimizer state is for {meta.get('num_params')} parameters, "
                         f"the model has {len(params)}")
    for name, value in tensors.items():
        if name.startswith("state."):
            _, index, key = name.split(".", 2)
            p = params[int(index)]
            if value.shape == p.shape:  # moments: keep the parameter's memory format
                value = torch.empty_like(p).copy_(value)
            optimizer.state.setdefault(p, {})[key] = value
    if "loss.log_vars" in tensors and trainer.loss_fn.log_vars is not None:
        with torch.no_grad():
            trainer.loss_fn.log_vars.copy_(tensors["loss.log_vars"])
    if "rng.torch" in tensors:
        torch.set_rng_state(tensors["rng.torch"])
    return int(meta["step"])


# ------------------------------------------------------------------------------------------------
# The loop
# ------------------------------------------------------------------------------------------------

def _check_terms(terms: dict[str, Tensor], step: int, max_loss: float) -> None:
    for name, value in terms.items():
        if name == "num_pos":
            continue
        v = float(value)
        if not math.isfinite(v) or v > max_loss:
            what = "is not finite" if not math.isfinite(v) else f"exceeds max_loss {max_loss:g}"
            raise TrainingDivergedError(f"loss term '{name}' = {v:g} {what} at step {step}")


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train according to ``cfg``; returns a summary (steps, last losses, paths, images/s).

    Args:
        cfg: validated training config; ``cfg.run_dir`` receives checkpoints and logs.
        resume: continue from the checkpoint in ``cfg.run_dir``.
        progress: show a tqdm bar (on the main process).

    Raises:
        TrainingDivergedError: a loss term or the gradient norm went bad; the last good checkpoint
            in the run directory is kept.
        ValueError: bad configuration or data.
    """
    cfg.validate()
    dinfo, device = init_distributed(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed + dinfo.rank)
    run_dir = Path(cfg.run_dir)
    model_cfg = cfg.model.build_config()
    model = build_model(model_cfg)
    if cfg.model.init_from and not resume:
        from depthssd_core.checkpoint import load_model

        init = load_model(cfg.model.init_from)
        model.load_state_dict(init.state_dict())
    loss_fn = DepthSSDLoss(cfg.loss, model_cfg.canonical_focal_px)
    amp_dtype = resolve_precision(cfg.precision, device)
    channels_last = device.type == "cpu" and amp_dtype is not None
    trainer = ClipTrainer(model, loss_fn, channels_last=channels_last).to(device)
    if channels_last:
        trainer.model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(trainer, cfg)
    start = 0
    if resume:
        start = load_train_state(run_dir, trainer, optimizer)
    module: nn.Module = trainer
    if dinfo.world_size > 1:
        module = nn.parallel.DistributedDataParallel(
            trainer, device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=loss_fn.log_vars is not None)
    writer = None
    if dinfo.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / CONFIG_NAME)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run_dir / "tb"))
    reset_gen = torch.Generator()
    total_steps = cfg.total_steps
    bar = tqdm(total=total_steps, initial=start, disable=not (progress and dinfo.is_main),
               dynamic_ncols=True, desc="train")
    summary: dict[str, Any] = {"run_dir": str(run_dir), "start_step": start}
    last_terms: dict[str, float] = {}
    loader: Iterator[list[dict[str, Any]]] | None = None
    current_stage = -1
    images_per_s = 0.0
    step = start
    try:
        for step in range(start, total_steps):
            stage_index, stage = cfg.stage_at(step)
            if stage_index != current_stage:
                loader = build_loader(cfg, stage, stage_index, dinfo, epoch_seed=step)
                current_stage = stage_index
            assert loader is not None
            for group in optimizer.param_groups:
                group["lr"] = cfg.optim.lr * lr_factor(step, cfg)
            t0 = time.perf_counter()
            frames = next(loader)
            batch = frames[0]["image"].shape[0]
            # Seeded per step, so a resumed run draws the same resets as an uninterrupted one.
            reset_gen.manual_seed(cfg.seed * 1_000_003 + dinfo.rank * 7919 + step)
            resets = torch.rand(len(frames), batch, generator=reset_gen) < \
                cfg.temporal.reset_prob
            module.train()
            autocast = (torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None
                        else contextlib.nullcontext())
            with autocast:
                loss, terms = module(frames, resets)
            terms = {k: v.float() for k, v in terms.items()}
            if dinfo.world_size > 1:
                packed = torch.stack([terms[k] for k in sorted(terms)])
                dist.all_reduce(packed)
                terms = {k: packed[i] / dinfo.world_size for i, k in enumerate(sorted(terms))}
            _check_terms(terms, step + 1, cfg.max_loss)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(trainer.parameters(),
                                                       cfg.optim.grad_clip_norm)
            if not torch.isfinite(grad_norm):
                raise TrainingDivergedError(f"gradient norm is {float(grad_norm):g} at step "
                                       f"{step + 1} (loss terms: "
                                       + ", ".join(f"{k}={float(v):.4g}"
                                                   for k, v in terms.items()) + ")")
            optimizer.step()
            elapsed = time.perf_counter() - t0
            n_images = batch * len(frames) * dinfo.world_size
            images_per_s = n_images / max(elapsed, 1e-9)
            last_terms = {k: float(v) for k, v in terms.items()}
            bar.update(1)
            bar.set_postfix(loss=f"{last_terms['total']:.3f}", img_s=f"{images_per_s:.1f}",
                            res=f"{stage.width}x{stage.height}", refresh=False)
            done = step + 1
            if writer is not None and (done % cfg.log_every == 0 or done == total_steps):
                for k, v in last_terms.items():
                    writer.add_scalar(f"loss/{k}", v, done)
                writer.add_scalar("opt/lr", optimizer.param_groups[0]["lr"], done)
                writer.add_scalar("opt/grad_norm", float(grad_norm), done)
                writer.add_scalar("perf/images_per_s", images_per_s, done)
                if loss_fn.log_vars is not None:
                    for i, name in enumerate(("cls", "box", "depth")):
                        writer.add_scalar(f"loss/log_var_{name}", float(loss_fn.log_vars[i]),
                                          done)
                bar.write(f"step {done}/{total_steps} " + " ".join(
                    f"{k}={v:.4f}" for k, v in last_terms.items()) +
                    f" lr={optimizer.param_groups[0]['lr']:.2e} img/s={images_per_s:.2f}")
            if dinfo.is_main and (done % cfg.checkpoint_every == 0 or done == total_steps):
                save_train_state(run_dir, trainer, optimizer, cfg, done, last_terms)
        step = total_steps
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    summary.update(steps=step, last_terms=last_terms, images_per_s=images_per_s,
                   checkpoint=str(run_dir / CHECKPOINT_NAME), model=trainer.model)
    if dinfo.world_size > 1:
        dist.barrier()
    return summary


def train_from_args(config_path: str | None, overrides: list[str], resume_dir: str | None,
                    progress: bool = True) -> dict[str, Any]:
    """Load the config and train; with ``resume_dir`` continue that run, under
    ``config_path`` if given (else the run's saved config)."""
    if resume_dir:
        saved = Path(resume_dir) / CONFIG_NAME
        if not saved.is_file():
            raise ValueError(f"--resume {resume_dir}: no {CONFIG_NAME} there")
        # A new config file continues the run under a longer schedule (e.g. one more stage).
        cfg = load_config(config_path or saved, [*overrides, f"run_dir={resume_dir}"])
        return train(cfg, resume=True, progress=progress)
    return train(load_config(config_path, overrides), progress=progress)
