"""Training loop of DepthSSD: clips with the memory carried through, AdamW, EMA, DDP.

One optimizer step takes a batch of B clips of T consecutive frames. The memory state starts
from ``model.initial_state`` at the clip start, is carried from frame to frame with its graph
(truncated back-propagation through the clip), and is occasionally reset mid-clip (the initial
state is fed instead) so the network also learns to work right after a reset.

A stage smaller than the model's input trains on native-scale crops (``train_data``): the
network is built for the full input (its HoPE pairs follow ``ModelConfig.input_*``) and the
crop's anchors are sized against the full input, so a crop sees the anchors and apparent sizes
the full input will have. Data come from ``train_data``, checkpoints go through
``train_checkpoint``, ``precision: auto`` is settled by ``train_precision``. Several processes
train together when started by ``torchrun`` (DDP over NCCL on GPUs, gloo on CPU).

Every step logs its data-wait share (time blocked on the loader over the step's wall time). A
loss term that is not finite or exceeds ``max_loss`` stops the run with a diagnosis
(:class:`TrainingDivergedError`), leaving the last good checkpoint untouched. A run may stop
early (``stop_after_minutes``, or Ctrl-C) with a checkpoint at the step reached; ``--resume``
continues it exactly as if it had not stopped.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
import torch.distributed as dist
from timm.utils import ModelEmaV3
from torch import Tensor, nn
from tqdm import tqdm

from depthssd_core.config import ModelConfig
from depthssd_core.model import build_model
from depthssd_core.model.anchors import anchors_per_location, feature_sizes
from depthssd_train.losses import DepthSSDLoss, FrameTargets
from depthssd_train.train_checkpoint import (
    CHECKPOINT_NAME,
    CONFIG_NAME,
    load_train_state,
    save_snapshot,
    save_train_state,
    saved_precision,
)
from depthssd_train.train_config import TrainConfig, load_config, save_config
from depthssd_train.train_data import Batch, DistInfo, build_loader, seeded_resets
from depthssd_train.train_precision import PrecisionChoice, choose_precision


class TrainingDivergedError(RuntimeError):
    """A loss term or the gradient norm went non-finite or exploded; the message says which."""


# ------------------------------------------------------------------------------------------------
# Devices, distribution, seeds
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


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def process_cpu_seconds() -> float:
    """CPU seconds (user + system) of this process and all its children, live or finished."""
    me = psutil.Process()
    times = me.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            t = child.cpu_times()
            total += t.user + t.system
    return total


# ------------------------------------------------------------------------------------------------
# Model + loss as one module (so DDP also synchronises learned loss weights)
# ------------------------------------------------------------------------------------------------

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
        self._anchors: dict[tuple[int, int], tuple[Tensor, list[int]]] = {}

    def anchors(self, height: int, width: int, device: torch.device) -> tuple[Tensor, list[int]]:
        """Anchors of an input (crop) size, sized against the model's full input, and the
        number of anchors per level; cached."""
        key = (height, width)
        if key not in self._anchors:
            cfg: ModelConfig = self.model.cfg
            reference = float(min(cfg.input_height, cfg.input_width))
            anchors = self.model.anchors(height, width, reference).float().to(device)
            per_loc = anchors_per_location(cfg)
            levels = [r * c * per_loc for r, c in feature_sizes(cfg, height, width)]
            self._anchors[key] = (anchors, levels)
        return self._anchors[key]

    def forward(self, frames: Batch, resets: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
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
        per_loc = anchors_per_location(self.model.cfg)
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
            anchors, levels = self.anchors(height, width, device)
            # Losses in FP32 even under bf16 autocast: log, sqrt and sums need the range.
            with torch.autocast(device.type, enabled=False):
                loss, frame_terms = self.loss_fn(
                    cls_logits.float(), box_reg.float(), depth_c.float(), anchors,
                    frame_targets(frame, device), levels, per_loc)
            total = total + loss
            for k, v in frame_terms.items():
                terms[k] = terms.get(k, torch.zeros((), device=device)) + v
        steps = len(frames)
        return total / steps, {k: v / steps for k, v in terms.items()}


# ------------------------------------------------------------------------------------------------
# Optimizer, schedule
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


def _check_terms(terms: dict[str, Tensor], step: int, max_loss: float) -> None:
    for name, value in terms.items():
        if name == "num_pos":
            continue
        v = float(value)
        if not math.isfinite(v) or v > max_loss:
            what = "is not finite" if not math.isfinite(v) else f"exceeds max_loss {max_loss:g}"
            raise TrainingDivergedError(f"loss term '{name}' = {v:g} {what} at step {step}")


# ------------------------------------------------------------------------------------------------
# The loop
# ------------------------------------------------------------------------------------------------

class _StopSignals:
    """Turns SIGINT/SIGTERM into a request to stop after the current step (with a checkpoint),
    so an interrupted run resumes exactly; a second signal interrupts at once."""

    def __init__(self) -> None:
        self.received: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:
            raise KeyboardInterrupt
        self.received = signal.Signals(signum).name

    def __enter__(self) -> _StopSignals | None:
        if threading.current_thread() is not threading.main_thread():
            return None
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class _Run:
    """The objects of one training run, set up once by :func:`train`."""

    def __init__(self, cfg: TrainConfig, resume: bool) -> None:
        cfg.validate()
        self.cfg = cfg
        self.dinfo, self.device = init_distributed(cfg.device)
        if cfg.threads > 0:
            torch.set_num_threads(cfg.threads)
        seed_everything(cfg.seed + self.dinfo.rank)
        self.run_dir = Path(cfg.run_dir)
        self.model_cfg = cfg.model.build_config()
        model = build_model(self.model_cfg)
        if cfg.model.init_from and not resume:
            from depthssd_core.checkpoint import load_model

            model.load_state_dict(load_model(cfg.model.init_from).state_dict())
        self.loss_fn = DepthSSDLoss(cfg.loss, self.model_cfg.canonical_focal_px)
        trainer = ClipTrainer(model, self.loss_fn).to(self.device)
        first = cfg.schedule[0]
        wanted = cfg.precision
        if resume and wanted == "auto":
            # Keep the first part's choice: a resumed run must compute what it did.
            wanted = saved_precision(self.run_dir) or wanted
        self.precision: PrecisionChoice = choose_precision(
            wanted, trainer, self.device, first.batch_size, first.height, first.width)
        if wanted != cfg.precision:
            self.precision.how = "resumed run's probe"
        if self.device.type == "cpu" and self.precision.dtype is not None:
            trainer.channels_last = True
            trainer.model.to(memory_format=torch.channels_last)
        self.trainer = trainer
        self.optimizer = build_optimizer(trainer, cfg)
        e = cfg.ema
        self.ema = (ModelEmaV3(trainer.model, decay=e.decay, use_warmup=e.warmup,
                               warmup_gamma=e.warmup_gamma, warmup_power=e.warmup_power)
                    if e.enabled else None)
        self.start, self.images = 0, 0
        if resume:
            self.start, images = load_train_state(self.run_dir, trainer.model, self.shipped,
                                                  self.optimizer, self.loss_fn.log_vars)
            self.images = images if images >= 0 else cfg.images_before(self.start)
        self.module: nn.Module = trainer
        if self.dinfo.world_size > 1:
            self.module = nn.parallel.DistributedDataParallel(
                trainer, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=self.loss_fn.log_vars is not None)

    @property
    def shipped(self) -> nn.Module:
        """The weights written to ``last.safetensors`` and snapshots (EMA when enabled)."""
        return self.ema.module if self.ema is not None else self.trainer.model

    def autocast(self) -> Any:
        dtype = self.precision.dtype
        return (torch.autocast(self.device.type, dtype=dtype) if dtype is not None
                else contextlib.nullcontext())

    def save(self, step: int, terms: dict[str, float]) -> None:
        if self.dinfo.is_main:
            save_train_state(self.run_dir, self.trainer.model, self.shipped, self.optimizer,
                             self.loss_fn.log_vars, self.cfg, step, self.images, terms,
                             self.precision.name)

    def step(self, frames: Batch, step: int) -> tuple[dict[str, float], float]:
        """One optimizer step; returns the (all-reduced) loss terms and the gradient norm."""
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.optim.lr * lr_factor(step, cfg)
        resets = seeded_resets(cfg, self.dinfo, step, len(frames), frames[0]["image"].shape[0])
        self.module.train()
        with self.autocast():
            loss, terms = self.module(frames, resets)
        terms = {k: v.float() for k, v in terms.items()}
        if self.dinfo.world_size > 1:
            packed = torch.stack([terms[k] for k in sorted(terms)])
            dist.all_reduce(packed)
            terms = {k: packed[i] / self.dinfo.world_size for i, k in enumerate(sorted(terms))}
        _check_terms(terms, step + 1, cfg.max_loss)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.trainer.parameters(),
                                                   cfg.optim.grad_clip_norm)
        if not torch.isfinite(grad_norm):
            raise TrainingDivergedError(
                f"gradient norm is {float(grad_norm):g} at step {step + 1} (loss terms: "
                + ", ".join(f"{k}={float(v):.4g}" for k, v in terms.items()) + ")")
        self.optimizer.step()
        if self.ema is not None:
            self.ema.update(self.trainer.model, step=step + 1)
        return {k: float(v) for k, v in terms.items()}, float(grad_norm)


def train(cfg: TrainConfig, resume: bool = False, progress: bool = True,
          stop_after_minutes: float | None = None, stop_after_steps: int | None = None
          ) -> dict[str, Any]:
    """Train according to ``cfg``; returns a summary (steps, losses, speed, data wait, paths).

    Args:
        cfg: validated training config; ``cfg.run_dir`` receives checkpoints and logs.
        resume: continue from the checkpoint in ``cfg.run_dir``.
        progress: show a tqdm bar (on the main process).
        stop_after_minutes: stop cleanly (checkpoint written) after this much wall time; the
            run continues with ``resume``.
        stop_after_steps: stop the same way after this many steps of this invocation.

    Raises:
        TrainingDivergedError: a loss term or the gradient norm went bad; the last good checkpoint
            in the run directory is kept.
        ValueError: bad configuration or data.
    """
    run = _Run(cfg, resume)
    dinfo = run.dinfo
    writer = None
    if dinfo.is_main:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run.run_dir / CONFIG_NAME)
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(run.run_dir / "tb"))
    total_steps = cfg.total_steps
    bar = tqdm(total=total_steps, initial=run.start, disable=not (progress and dinfo.is_main),
               dynamic_ncols=True, desc="train")
    if dinfo.is_main:
        bar.write(f"{run.precision.describe()}; {cfg.data.num_workers} data worker(s), "
                  f"{torch.get_num_threads()} threads")
    summary: dict[str, Any] = {"run_dir": str(run.run_dir), "start_step": run.start,
                               "precision": run.precision.name,
                               "precision_probe": {"fp32_s": run.precision.fp32_s,
                                                   "bf16_s": run.precision.bf16_s,
                                                   "how": run.precision.how}}
    last_terms: dict[str, float] = {}
    loader: Iterator[Batch] | None = None
    current_stage = -1
    wall0, cpu0 = time.perf_counter(), process_cpu_seconds()
    wait_total = step_total = 0.0
    images_run = 0
    window: list[tuple[float, float, int]] = []  # (wait, step time, images) since the last log
    deadline = None if stop_after_minutes is None else wall0 + 60.0 * stop_after_minutes
    step = run.start
    stopped: str | None = None
    signals = _StopSignals() if dinfo.world_size == 1 else contextlib.nullcontext(None)
    try:
        with signals as stop_signal:
            for step in range(run.start, total_steps):
                stage_index, stage = cfg.stage_at(step)
                if stage_index != current_stage:
                    loader = build_loader(cfg, stage_index, run.model_cfg, dinfo,
                                          start_step=step - cfg.stage_start(stage_index))
                    current_stage = stage_index
                assert loader is not None
                t0 = time.perf_counter()
                frames = next(loader)
                t_data = time.perf_counter()
                last_terms, grad_norm = run.step(frames, step)
                t1 = time.perf_counter()
                n_images = frames[0]["image"].shape[0] * len(frames)
                run.images += n_images
                images_run += n_images * dinfo.world_size
                wait, elapsed = t_data - t0, t1 - t0
                wait_total, step_total = wait_total + wait, step_total + elapsed
                window.append((wait, elapsed, n_images * dinfo.world_size))
                done = step + 1
                bar.update(1)
                bar.set_postfix(loss=f"{last_terms['total']:.3f}",
                                img_s=f"{n_images * dinfo.world_size / elapsed:.1f}",
                                wait=f"{wait / elapsed:.0%}", res=f"{stage.width}x{stage.height}",
                                refresh=False)
                if writer is not None:
                    writer.add_scalar("perf/data_wait_share", wait / elapsed, done)
                if writer is not None and (done % cfg.log_every == 0 or done == total_steps):
                    w_wait = sum(w for w, _, _ in window)
                    w_time = sum(e for _, e, _ in window)
                    w_images = sum(n for _, _, n in window)
                    window.clear()
                    for k, v in last_terms.items():
                        writer.add_scalar(f"loss/{k}", v, done)
                    writer.add_scalar("opt/lr", run.optimizer.param_groups[0]["lr"], done)
                    writer.add_scalar("opt/grad_norm", grad_norm, done)
                    writer.add_scalar("perf/images_per_s", w_images / w_time, done)
                    writer.add_scalar("perf/images_seen", run.images * dinfo.world_size, done)
                    if run.loss_fn.log_vars is not None:
                        for i, name in enumerate(("cls", "box", "depth")):
                            writer.add_scalar(f"loss/log_var_{name}",
                                              float(run.loss_fn.log_vars[i]), done)
                    bar.write(f"step {done}/{total_steps} " + " ".join(
                        f"{k}={v:.4f}" for k, v in last_terms.items()) +
                        f" lr={run.optimizer.param_groups[0]['lr']:.2e}"
                        f" img/s={w_images / w_time:.2f} data_wait={w_wait / w_time:.1%}")
                every = cfg.snapshot_every_images
                seen = run.images * dinfo.world_size
                if dinfo.is_main and every and (seen - n_images * dinfo.world_size) // every \
                        != seen // every:
                    save_snapshot(run.run_dir, run.shipped, seen, done, cfg)
                if deadline is not None and time.perf_counter() > deadline:
                    stopped = "time limit"
                elif stop_after_steps is not None and done - run.start >= stop_after_steps:
                    stopped = "step limit"
                elif stop_signal is not None and stop_signal.received:
                    stopped = f"signal {stop_signal.received}"
                if done % cfg.checkpoint_every == 0 or done == total_steps or stopped:
                    run.save(done, last_terms)
                if stopped and done < total_steps:
                    step = done
                    break
            else:
                step = total_steps
            stopped = stopped if step < total_steps else None
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    wall = time.perf_counter() - wall0
    summary.update(
        steps=step, stopped=stopped, last_terms=last_terms,
        images_seen=run.images * dinfo.world_size, images_this_run=images_run,
        images_per_s=images_run / max(step_total, 1e-9),
        data_wait_share=wait_total / max(step_total, 1e-9), wall_s=wall,
        cpu_s=process_cpu_seconds() - cpu0,
        checkpoint=str(run.run_dir / CHECKPOINT_NAME), model=run.shipped,
        raw_model=run.trainer.model)
    if dinfo.world_size > 1:
        dist.barrier()
    return summary


def train_from_args(config_path: str | None, overrides: list[str], resume_dir: str | None,
                    progress: bool = True, stop_after_minutes: float | None = None
                    ) -> dict[str, Any]:
    """Load the config and train; with ``resume_dir`` continue that run, under
    ``config_path`` if given (else the run's saved config)."""
    if resume_dir:
        saved = Path(resume_dir) / CONFIG_NAME
        if not saved.is_file():
            raise ValueError(f"--resume {resume_dir}: no {CONFIG_NAME} there")
        # A new config file continues the run under a longer schedule (e.g. one more stage).
        cfg = load_config(config_path or saved, [*overrides, f"run_dir={resume_dir}"])
        return train(cfg, resume=True, progress=progress,
                     stop_after_minutes=stop_after_minutes)
    return train(load_config(config_path, overrides), progress=progress,
                 stop_after_minutes=stop_after_minutes)
