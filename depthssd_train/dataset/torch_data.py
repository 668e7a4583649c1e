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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

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
    """

    def __init__(self, root: Path | str, split: str, clip_length: int, stride: int | None = None,
                 transform: Transform | None = None) -> None:
        if clip_length < 1:
            raise ValueError(f"clip_length must be >= 1, got {clip_length}")
        self.root = Path(root)
        self.metres_per_unit = load_depth_format(self.root)
        self.clip_length = clip_length
        self.transform = transform
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

    def __getitem__(self, index: int) -> list[dict[str, Any]]:
        seed = _draw_seed()
        return [_apply(load_sample(rec, self.metres_per_unit), self.transform, seed)
                for rec in self.clips[index]]


class SyntheticStreamDataset(IterableDataset):
    """Frames (or clips) rendered on the fly by ``SyntheticWorld``, without touching disk.

    Sequences are split between DataLoader workers; every sequence id is rendered once per
    epoch, so an epoch yields ``num_sequences * frames_per_sequence`` frames (or the clips
    cut from them).

    Args:
        num_sequences: sequences per epoch.
        frames_per_sequence: frames rendered per sequence.
        clip_length: yield lists of this many consecutive frames instead of single frames.
        transform: optional augmentation (shared by the frames of a clip).
        seed: world seed; sequence ids are ``sequence_prefix + index``.
        world_kwargs: passed to ``SyntheticWorld`` (``width``, ``height``, ``fov_deg``, ...).
    """

    def __init__(self, num_sequences: int, frames_per_sequence: int, *,
                 clip_length: int | None = None, transform: Transform | None = None,
                 seed: int = 0, sequence_prefix: str = "stream", **world_kwargs: Any) -> None:
        if clip_length is not None and not 1 <= clip_length <= frames_per_sequence:
            raise ValueError(f"clip_length must be in 1..{frames_per_sequence}, "
                             f"got {clip_length}")
        self.num_sequences, self.frames_per_sequence = num_sequences, frames_per_sequence
        self.clip_length, self.transform = clip_length, transform
        self.seed, self.sequence_prefix, self.world_kwargs = seed, sequence_prefix, world_kwargs

    def _world(self) -> Any:
        from depthssd_sim import SyntheticWorld  # the renderer is heavy; load late

        return SyntheticWorld(seed=self.seed, **self.world_kwargs)

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        world = self._world()
        for index in range(worker, self.num_sequences, workers):
            frames = world.sequence(f"{self.sequence_prefix}{index:04d}",
                                    self.frames_per_sequence)
            samples = (sample_from_frame(frame_from_synth(f)) for f in frames)
            if self.clip_length is None:
                for sample in samples:
                    yield _apply(sample, self.transform, _draw_seed())
                continue
            clip: list[Sample] = []
            for sample in samples:
                clip.append(sample)
                if len(clip) == self.clip_length:
                    seed = _draw_seed()
                    yield [_apply(s, self.transform, seed) for s in clip]
                    clip = []

    def __len__(self) -> int:
        per_seq = (self.frames_per_sequence if self.clip_length is None
                   else self.frames_per_sequence // self.clip_length)
        return self.num_sequences * per_seq

