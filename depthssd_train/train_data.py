"""Training data of ``depthssd-train``: per-stage transforms and loaders, resumable and sharded.

Every batch a stage yields is a function of (seed, stage, step): the synthetic stream is the
map-style :class:`~depthssd_train.dataset.torch_data.SyntheticClipGroups` and a dataset folder is
read through a seeded :class:`~depthssd_train.dataset.torch_data.ClipDataset`. Several processes
(``torchrun``) split the data with ``DistributedSampler``; a resumed run starts the loader at its
step and sees what an uninterrupted run would have seen.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

from depthssd_core.config import ModelConfig
from depthssd_train.dataset.augment import CentreCrop, Compose, default_train_transform
from depthssd_train.dataset.torch_data import ClipDataset, SyntheticClipGroups, collate_clips
from depthssd_train.train_config import StageConfig, TrainConfig

Batch = list[dict[str, Any]]  # T batched frames (collate_clips)


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


def stage_transform(cfg: TrainConfig, stage: StageConfig, model_cfg: ModelConfig) -> Any:
    """Augmentation of one stage: windows of the stage size at the model's native scale."""
    reference = (model_cfg.input_width, model_cfg.input_height)
    if cfg.data.augment:
        return default_train_transform(stage.width, stage.height, tuple(stage.scale_range),
                                       reference)
    return Compose([CentreCrop(stage.width, stage.height, reference)])


def _sample_seed(cfg: TrainConfig, stage_index: int) -> int:
    return cfg.seed * 1000 + stage_index


def _groups_dataset(cfg: TrainConfig, stage_index: int, model_cfg: ModelConfig,
                    dinfo: DistInfo) -> SyntheticClipGroups:
    stage = cfg.schedule[stage_index]
    d = cfg.data
    probe = SyntheticClipGroups(
        world_seed=d.synth_seed, world_kwargs=d.world, num_sequences=d.synth_sequences,
        frames_per_sequence=d.synth_frames_per_sequence, clip_length=stage.clip_length,
        batch_size=stage.batch_size, crops_per_clip=stage.crops_per_clip,
        transform=stage_transform(cfg, stage, model_cfg),
        sample_seed=_sample_seed(cfg, stage_index), num_groups=1,
        min_sequences_per_group=d.sequences_per_group)
    probe.num_groups = math.ceil(stage.steps / probe.batches_per_group) * dinfo.world_size
    return probe


def batches_per_group(cfg: TrainConfig, stage_index: int, model_cfg: ModelConfig) -> int:
    """Optimizer steps one synthetic group feeds in a stage (1 for a dataset folder)."""
    if cfg.data.source != "synthetic":
        return 1
    return _groups_dataset(cfg, stage_index, model_cfg, DistInfo()).batches_per_group


def build_loader(cfg: TrainConfig, stage_index: int, model_cfg: ModelConfig, dinfo: DistInfo,
                 start_step: int = 0) -> Iterator[Batch]:
    """Endless iterator of this rank's clip batches of one stage, from stage step ``start_step``.

    Args:
        cfg: training config.
        stage_index: the stage.
        model_cfg: the model (its input size fixes the native scale of crops).
        dinfo: rank and world size.
        start_step: steps of this stage already done (a resumed run skips them exactly).
    """
    stage = cfg.schedule[stage_index]
    workers = cfg.data.num_workers
    if cfg.data.source == "synthetic":
        groups = _groups_dataset(cfg, stage_index, model_cfg, dinfo)
        per_group = groups.batches_per_group
        first, skip = divmod(start_step, per_group)
        # Rank r takes groups r, r + W, r + 2W, ... of the stage (no shuffling: the groups are
        # random draws already); a resumed run starts at its next local group.
        remaining = Subset(groups, range(first * dinfo.world_size, len(groups)))
        sampler = DistributedSampler(remaining, num_replicas=dinfo.world_size, rank=dinfo.rank,
                                     shuffle=False)
        loader = DataLoader(remaining, batch_size=None, sampler=sampler, num_workers=workers,
                            persistent_workers=False, prefetch_factor=2 if workers else None)
        while True:
            for group in loader:
                yield from group[skip:]
                skip = 0
            # A stage longer than its groups (never in a normal run) repeats them.
    dataset = ClipDataset(cfg.data.path, cfg.data.split, stage.clip_length, stride=1,
                          transform=stage_transform(cfg, stage, model_cfg),
                          seed=_sample_seed(cfg, stage_index))
    sampler = DistributedSampler(dataset, num_replicas=dinfo.world_size, rank=dinfo.rank,
                                 shuffle=True, seed=_sample_seed(cfg, stage_index),
                                 drop_last=True)
    per_epoch = len(sampler) // stage.batch_size
    if per_epoch == 0:
        raise ValueError(f"data.path: {cfg.data.path} has fewer than schedule batch_size "
                         f"({stage.batch_size}) clips of {stage.clip_length} frames per rank")
    epoch, skip = divmod(start_step, per_epoch)
    while True:
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        indices = list(sampler)[skip * stage.batch_size:]
        loader = DataLoader(Subset(dataset, indices), batch_size=stage.batch_size,
                            shuffle=False, drop_last=True, num_workers=workers,
                            collate_fn=collate_clips)
        yield from loader
        epoch, skip = epoch + 1, 0


def seeded_resets(cfg: TrainConfig, dinfo: DistInfo, step: int, frames: int, batch: int
                  ) -> torch.Tensor:
    """Memory resets [T, B] of a step, seeded by the step so a resumed run draws the same."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + dinfo.rank * 7919 + step)
    return torch.rand(frames, batch, generator=gen) < cfg.temporal.reset_prob
