"""PyTorch datasets over the depthssd format and over the synthetic world, plus collation.

Every item is a dict of tensors (see :func:`to_tensors`):

- ``image``: float32 [3, H, W], RGB in 0..1, **not** normalised: training normalises with
  ``ModelConfig.mean/std`` so the same numbers reach the exported graph.
- ``depth_m``: float32 [1, H, W] planar metres, 0 where invalid; ``depth_valid`` bool [1, H, W].
  Frames without depth (``has_depth`` false) have an all-false mask.
- ``boxes_xyxy``: float32 [N, 4] pixels; ``labels``: int64 [N] in 1..8 (= network class);
  ``distances_m``: float32 [N] (NaN when unknown). ``has_boxes`` false means the frame is not
  labelled for detection: its empty box list is not a negative example.
- ``intrinsics``: float32 [4] = (fx, fy, cx, cy) of the image as returned (after augmentation).
- ``sequence`` (str), ``frame_index``, ``image_id`` (ints), ``timestamp_s`` (float).

:class:`ClipDataset` returns lists of T consecutive frames of one sequence for training the
recurrent memory; :func:`collate_clips` turns a batch of clips into T batched frames.
:class:`SyntheticClipGroups` is the one stream of clips rendered on the fly by the synthetic
world: every item is a pure function of its index, so a resumed run sees the same data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from depthssd_train.dataset.augment import Sample
from depthssd_train.dataset.format import (
    DEFAULT_METRES_PER_UNIT,
    FrameRecord,
    LabeledFrame,
    frame_from_synth,
    group_by_sequence,
    load_depth_format,
    load_index,
    read_depth_png,
    read_rgb_png,
)

Transform = Callable[[Sample, np.random.Generator], Sample]
# Depth beyond what the default PNG scale can hold counts as invalid, on disk and on the fly.
MAX_DEPTH_M = 65535 * DEFAULT_METRES_PER_UNIT


def load_sample(record: FrameRecord, metres_per_unit: float) -> Sample:
    """Read one indexed frame from disk.

    Raises:
        ValueError: naming the file on a missing/corrupt PNG or an image/depth size mismatch.
    """
    rgb = read_rgb_png(record.image_path)
    height, width = rgb.shape[:2]
    if (width, height) != (record.intrinsics.width, record.intrinsics.height):
        raise ValueError(f"{record.image_path}: image is {width}x{height}, index says "
                         f"{record.intrinsics.width}x{record.intrinsics.height}")
    if record.has_depth and record.depth_path is not None:
        depth = read_depth_png(record.depth_path, metres_per_unit)
        if depth.shape != (height, width):
            raise ValueError(f"{record.depth_path}: depth is {depth.shape[1]}x{depth.shape[0]},"
                             f" image is {width}x{height}")
    else:
        depth = np.zeros((height, width), np.float32)
    return Sample(
        rgb=rgb, depth_m=depth, depth_valid=depth > 0, intrinsics=record.intrinsics,
        boxes_xyxy=record.boxes_xyxy, labels=record.labels, distances_m=record.distances_m,
        has_boxes=record.has_boxes, has_depth=record.has_depth, sequence=record.sequence,
        frame_index=record.frame_index, image_id=record.image_id,
        timestamp_s=record.timestamp_s)


def sample_from_frame(frame: LabeledFrame, max_depth_m: float = MAX_DEPTH_M) -> Sample:
    """A sample from an in-memory frame, with the same validity rule as the PNG writer."""
    height, width = frame.rgb.shape[:2]
    if frame.depth_m is not None:
        depth = np.asarray(frame.depth_m, np.float32)
        valid = np.isfinite(depth) & (depth > 0) & (depth <= max_depth_m)
        depth = np.where(valid, depth, 0.0).astype(np.float32)
    else:
        depth, valid = np.zeros((height, width), np.float32), np.zeros((height, width), bool)
    objects = frame.objects or []
    return Sample(
        rgb=np.asarray(frame.rgb, np.uint8), depth_m=depth, depth_valid=valid,
        intrinsics=frame.intrinsics,
        boxes_xyxy=np.array([o.box_xyxy for o in objects], np.float32).reshape(-1, 4),
        labels=np.array([o.category_id for o in objects], np.int64),
        distances_m=np.array([np.nan if o.distance_m is None else o.distance_m
                              for o in objects], np.float32),
        has_boxes=frame.objects is not None, has_depth=frame.depth_m is not None,
        sequence=frame.sequence, frame_index=frame.frame_index, timestamp_s=frame.timestamp_s)


def to_tensors(sample: Sample) -> dict[str, Any]:
    """Convert a sample to the dict of tensors described in the module docstring."""
    intr = sample.intrinsics
    return {
        "image": torch.from_numpy(np.ascontiguousarray(sample.rgb)).permute(2, 0, 1).float()
        / 255.0,
        "depth_m": torch.from_numpy(np.ascontiguousarray(sample.depth_m, np.float32))[None],
        "depth_valid": torch.from_numpy(np.ascontiguousarray(sample.depth_valid, bool))[None],
        "boxes_xyxy": torch.from_numpy(np.asarray(sample.boxes_xyxy, np.float32).reshape(-1, 4)),
        "labels": torch.from_numpy(np.asarray(sample.labels, np.int64)),
        "distances_m": torch.from_numpy(np.asarray(sample.distances_m, np.float32)),
        "intrinsics": torch.tensor([intr.fx, intr.fy, intr.cx, intr.cy], dtype=torch.float32),
        "has_boxes": bool(sample.has_boxes),
        "has_depth": bool(sample.has_depth),
        "sequence": sample.sequence,
        "frame_index": int(sample.frame_index),
        "image_id": int(sample.image_id),
        "timestamp_s": float(sample.timestamp_s),
    }


def collate_frames(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch frames: images, depth, masks, intrinsics and flags are stacked; boxes, labels and
    distances stay lists (their counts differ); ids become lists/tensors.

    Raises:
        ValueError: when images in the batch differ in size (resize or crop them first).
    """
    sizes = {tuple(item["image"].shape) for item in items}
    if len(sizes) != 1:
        raise ValueError(f"cannot batch images of different sizes {sorted(sizes)}; "
                         "add a Resize or RandomScaleCrop transform")
    return {
        "image": torch.stack([i["image"] for i in items]),
        "depth_m": torch.stack([i["depth_m"] for i in items]),
        "depth_valid": torch.stack([i["depth_valid"] for i in items]),
        "intrinsics": torch.stack([i["intrinsics"] for i in items]),
        "boxes_xyxy": [i["boxes_xyxy"] for i in items],
        "labels": [i["labels"] for i in items],
        "distances_m": [i["distances_m"] for i in items],
        "has_boxes": torch.tensor([i["has_boxes"] for i in items]),
        "has_depth": torch.tensor([i["has_depth"] for i in items]),
        "sequence": [i["sequence"] for i in items],
        "frame_index": torch.tensor([i["frame_index"] for i in items]),
        "image_id": torch.tensor([i["image_id"] for i in items]),
        "timestamp_s": torch.tensor([i["timestamp_s"] for i in items], dtype=torch.float64),
    }


def collate_clips(clips: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Batch clips of equal length T into a list of T batched frames (time-major)."""
    lengths = {len(c) for c in clips}
    if len(lengths) != 1:
        raise ValueError(f"clips in a batch must have one length, got {sorted(lengths)}")
    return [collate_frames([clip[t] for clip in clips]) for t in range(lengths.pop())]


def _draw_seed() -> int:
    # torch's generator is seeded per DataLoader worker, numpy's global one is not.
    return int(torch.randint(0, 2**62, (1,)).item())


def _apply(sample: Sample, transform: Transform | None, seed: int) -> dict[str, Any]:
    if transform is not None:
        sample = transform(sample, np.random.default_rng(seed))
    return to_tensors(sample)


class FrameDataset(Dataset):
    """Single frames of one split of a dataset on disk.

    Args:
        root: dataset root.
        split: split name.
        transform: optional augmentation ``(Sample, Generator) -> Sample``.
    """

    def __init__(self, root: Path | str, split: str, transform: Transform | None = None
                 ) -> None:
        self.root = Path(root)
        self.records = load_index(self.root, split)
        self.metres_per_unit = load_depth_format(self.root)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = load_sample(self.records[index], self.metres_per_unit)
        return _apply(sample, self.transform, _draw_seed())


class ClipDataset(Dataset):
    """Clips of ``clip_length`` consecutive frames of one sequence (for the memory).

    All frames of a clip get the same augmentation parameters, as a camera would see them.

    Args:
        root: dataset root.
        split: split name.
        clip_length: frames per clip (T).
        stride: frames between the starts of consecutive clips (default: T, no overlap).
        transform: optional augmentation.
        seed: makes the augmentation of clip i in epoch e a function of (seed, e, i) (see
            :meth:`set_epoch`), so a resumed run sees the same data; None draws from torch's
            per-worker generator.
    """

    def __init__(self, root: Path | str, split: str, clip_length: int, stride: int | None = None,
                 transform: Transform | None = None, seed: int | None = None) -> None:
        if clip_length < 1:
            raise ValueError(f"clip_length must be >= 1, got {clip_length}")
        self.root = Path(root)
        self.metres_per_unit = load_depth_format(self.root)
        self.clip_length = clip_length
        self.transform = transform
        self.seed, self.epoch = seed, 0
        stride = stride or clip_length
        self.clips: list[list[FrameRecord]] = []
        for recs in group_by_sequence(load_index(self.root, split)).values():
            for start in range(0, len(recs) - clip_length + 1, stride):
                self.clips.append(recs[start:start + clip_length])
        if not self.clips:
            raise ValueError(f"{self.root}: no sequence of split {split!r} has "
                             f"{clip_length} frames")

    def __len__(self) -> int:
        return len(self.clips)

    def set_epoch(self, epoch: int) -> None:
        """Epoch whose augmentation draws :meth:`__getitem__` makes (with ``seed``)."""
        self.epoch = int(epoch)

    def __getitem__(self, index: int) -> list[dict[str, Any]]:
        seed = (_draw_seed() if self.seed is None else
                int(np.random.default_rng([self.seed, self.epoch, index]).integers(0, 2**62)))
        return [_apply(load_sample(rec, self.metres_per_unit), self.transform, seed)
                for rec in self.clips[index]]


class SyntheticClipGroups(Dataset):
    """Clips rendered on the fly by ``SyntheticWorld``, in groups that share their renders.

    Item ``g`` is a list of ``batches_per_group`` batches, each ``batch_size`` clips of
    ``clip_length`` frames collated by :func:`collate_clips`. A group renders
    ``sequences_per_group`` whole sequences once, cuts ``frames // clip_length`` clips at random
    start frames from each and ``crops_per_clip`` differently augmented windows from every clip
    (the window and augmentation shared by the frames of the clip, as a camera would see them),
    then shuffles those and deals them into the batches: one rendered frame feeds
    ``crops_per_clip`` training images. Sequence ids ``{prefix}{i:05d}`` are drawn pass by pass
    through a permutation of ``0..num_sequences-1``, so no sequence repeats before all were used.

    Everything item ``g`` holds is a function of ``(sample_seed, g)`` only: a map-style sampler
    (``DistributedSampler`` for several ranks) decides which groups a process sees, and a resumed
    run sees exactly the data of an uninterrupted one.

    Args:
        world_seed: seed of the world.
        world_kwargs: keyword arguments of ``SyntheticWorld`` besides ``seed`` (``width``,
            ``height``, ``fov_deg``, ...), passed through unchanged.
        num_sequences: sequence ids to draw from.
        frames_per_sequence: frames rendered per sequence.
        clip_length: frames per clip (T).
        batch_size: clips per batch (B).
        crops_per_clip: augmented windows cut from every rendered clip.
        transform: augmentation ``(Sample, Generator) -> Sample`` (crop, flip, colour).
        sample_seed: seed of every draw (sequence order, start frames, augmentation).
        num_groups: length of the dataset.
        min_sequences_per_group: render at least this many sequences per group, so the clips
            of a batch come from several sequences.
        prefix: sequence id prefix.
    """

    def __init__(self, *, world_seed: int, world_kwargs: dict[str, Any], num_sequences: int,
                 frames_per_sequence: int, clip_length: int, batch_size: int,
                 crops_per_clip: int, transform: Transform | None, sample_seed: int,
                 num_groups: int, min_sequences_per_group: int = 1,
                 prefix: str = "train") -> None:
        if not 1 <= clip_length <= frames_per_sequence:
            raise ValueError(f"clip_length must be in 1..{frames_per_sequence}, "
                             f"got {clip_length}")
        if min(batch_size, crops_per_clip, num_sequences, num_groups) < 1:
            raise ValueError("batch_size, crops_per_clip, num_sequences and num_groups must "
                             "be >= 1")
        self.world_seed, self.world_kwargs = int(world_seed), dict(world_kwargs)
        self.num_sequences, self.frames = int(num_sequences), int(frames_per_sequence)
        self.clip_length, self.batch_size = int(clip_length), int(batch_size)
        self.crops_per_clip, self.transform = int(crops_per_clip), transform
        self.sample_seed, self.num_groups, self.prefix = int(sample_seed), num_groups, prefix
        clips_per_sequence = self.frames // self.clip_length
        per_sequence = clips_per_sequence * self.crops_per_clip
        # The fewest whole sequences whose clip windows fill whole batches, at least
        # ``min_sequences_per_group`` so a batch mixes sequences.
        fill = self.batch_size // math.gcd(self.batch_size, per_sequence)
        self.sequences_per_group = fill * max(1, -(-int(min_sequences_per_group) // fill))
        self.batches_per_group = self.sequences_per_group * per_sequence // self.batch_size
        self._world: Any = None

    def __len__(self) -> int:
        return self.num_groups

    def _sequence_index(self, slot: int) -> int:
        """Sequence of the ``slot``-th sequence draw: pass ``slot // n`` permutes 0..n-1."""
        n = self.num_sequences
        order = np.random.default_rng([self.sample_seed, 1, slot // n]).permutation(n)
        return int(order[slot % n])

    def __getitem__(self, group: int) -> list[list[dict[str, Any]]]:
        if not 0 <= group < self.num_groups:
            raise IndexError(f"group {group} out of range (0..{self.num_groups - 1})")
        if self._world is None:  # built lazily, once per worker process
            from depthssd_sim import SyntheticWorld

            self._world = SyntheticWorld(seed=self.world_seed, **self.world_kwargs)
        rng = np.random.default_rng([self.sample_seed, 0, group])
        items: list[list[dict[str, Any]]] = []
        t = self.clip_length
        for k in range(self.sequences_per_group):
            index = self._sequence_index(group * self.sequences_per_group + k)
            # The world's sky (1000 m) stays a valid label here: the loss teaches "far" on it.
            frames = [sample_from_frame(frame_from_synth(f), max_depth_m=math.inf) for f in
                      self._world.sequence(f"{self.prefix}{index:05d}", self.frames)]
            for _ in range(self.frames // t):
                start = int(rng.integers(0, self.frames - t + 1))
                for _ in range(self.crops_per_clip):
                    seed = int(rng.integers(0, 2**62))  # one window for all frames of a clip
                    items.append([_apply(s, self.transform, seed)
                                  for s in frames[start:start + t]])
        order = rng.permutation(len(items))
        b = self.batch_size
        return [collate_clips([items[i] for i in order[j * b:(j + 1) * b]])
                for j in range(self.batches_per_group)]
