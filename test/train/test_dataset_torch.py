"""Torch datasets over the format: frames, clips, collation, asymmetric labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dataset_helpers import toy_frame, toy_frames
from torch.utils.data import DataLoader

from depthssd_train.dataset.augment import Compose, HorizontalFlip, RandomScaleCrop, Resize
from depthssd_train.dataset.torch_data import (
    ClipDataset,
    FrameDataset,
    collate_clips,
    collate_frames,
)
from depthssd_train.dataset.writer import write_split


@pytest.fixture
def dataset_root(tmp_path):
    frames = toy_frames(2, 3)
    frames[4] = toy_frame("seq1", 1, boxes=False, shift_m=0.5)  # depth-only frame
    write_split(tmp_path, "train", frames)
    return tmp_path, frames


def test_frame_dataset_items_match_written_frames(dataset_root):
    root, frames = dataset_root
    ds = FrameDataset(root, "train")
    assert len(ds) == 6
    item = ds[0]
    assert item["image"].shape == (3, 90, 160) and item["image"].dtype == torch.float32
    np.testing.assert_allclose(item["image"].permute(1, 2, 0).numpy() * 255, frames[0].rgb,
                               atol=1e-3)
    depth = frames[0].depth_m
    valid = depth < 256
    assert torch.equal(item["depth_valid"][0], torch.from_numpy(valid))
    assert np.max(np.abs(item["depth_m"][0].numpy()[valid] - depth[valid])) < 0.5 / 256 + 1e-5
    assert torch.all(item["depth_m"][0][~torch.from_numpy(valid)] == 0)
    torch.testing.assert_close(item["intrinsics"], torch.tensor([80.0, 80.0, 80.0, 45.0]))
    assert item["labels"].tolist() == [1, 6] and item["boxes_xyxy"].shape == (2, 4)
    assert item["distances_m"].tolist() == pytest.approx([12.0, 20.0])
    assert item["has_boxes"] and item["has_depth"] and item["sequence"] == "seq0"
    depth_only = ds[4]
    assert not depth_only["has_boxes"] and depth_only["has_depth"]
    assert depth_only["boxes_xyxy"].shape == (0, 4)


def test_dataloader_batches_frames(dataset_root):
    root, _ = dataset_root
    ds = FrameDataset(root, "train", transform=Resize(96, 64))
    batch = next(iter(DataLoader(ds, batch_size=4, collate_fn=collate_frames)))
    assert batch["image"].shape == (4, 3, 64, 96) and batch["depth_m"].shape == (4, 1, 64, 96)
    assert batch["intrinsics"].shape == (4, 4) and len(batch["boxes_xyxy"]) == 4
    assert batch["has_boxes"].tolist() == [True, True, True, True]
    assert batch["intrinsics"][0, 0].item() == pytest.approx(80 * 96 / 160)


def test_collate_rejects_mixed_sizes(dataset_root):
    root, _ = dataset_root
    ds = FrameDataset(root, "train")
    small = FrameDataset(root, "train", transform=Resize(80, 45))
    with pytest.raises(ValueError, match="different sizes"):
        collate_frames([ds[0], small[0]])


def test_clip_dataset_gives_consecutive_frames_with_one_augmentation(dataset_root):
    root, _ = dataset_root
    transform = Compose([HorizontalFlip(), RandomScaleCrop(96, 64, (1.0, 1.5))])
    ds = ClipDataset(root, "train", clip_length=2, stride=1, transform=transform)
    assert len(ds) == 4  # 2 sequences x (3 - 2 + 1)
    torch.manual_seed(0)
    for clip in ds:
        assert len({f["sequence"] for f in clip}) == 1
        assert [f["frame_index"] for f in clip] == list(range(clip[0]["frame_index"],
                                                              clip[0]["frame_index"] + 2))
        torch.testing.assert_close(clip[0]["intrinsics"], clip[1]["intrinsics"])
    steps = collate_clips([ds[0], ds[3]])
    assert len(steps) == 2 and steps[0]["image"].shape == (2, 3, 64, 96)
    assert steps[1]["frame_index"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="no sequence"):
        ClipDataset(root, "train", clip_length=4)


def test_corrupt_png_names_the_file(dataset_root):
    root, _ = dataset_root
    ds = FrameDataset(root, "train")
    ds.records[1].image_path.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=r"seq0/000001\.png: not a readable image"):
        ds[1]
