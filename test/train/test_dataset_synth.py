"""The dataset built from the real SyntheticWorld: ``depthssd-data synth`` and the stream."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from depthssd_sim import SyntheticWorld
from depthssd_train.cli.data import main
from depthssd_train.dataset.augment import Compose, HorizontalFlip, RandomScaleCrop
from depthssd_train.dataset.format import load_index, read_depth_png, read_rgb_png
from depthssd_train.dataset.torch_data import SyntheticStreamDataset, collate_clips
from depthssd_train.dataset.validate import validate_dataset

SIZE = ["--width", "160", "--height", "90"]


def test_synth_cli_writes_the_world_exactly(tmp_path, capsys):
    out = tmp_path / "ds"
    args = ["synth", "--out", str(out), "--split", "train", "--sequences", "2", "--frames",
            "3", "--seed", "7", *SIZE, "--fov", "90"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "wrote 6 frames" in captured.out and "6/6" in captured.err  # tqdm bar
    assert validate_dataset(out) == []
    records = load_index(out, "train")
    world = SyntheticWorld(seed=7, width=160, height=90, fov_deg=90.0)
    expected = [f for k in range(2) for f in world.sequence(f"train0007_{k:04d}", 3)]
    assert len(records) == len(expected) == 6
    for rec, frame in zip(records, expected, strict=True):
        assert (rec.sequence, rec.frame_index) == (frame.sequence, frame.frame_index)
        np.testing.assert_array_equal(read_rgb_png(rec.image_path), frame.rgb)
        depth = read_depth_png(rec.depth_path)
        near = frame.depth_m < 255
        assert np.max(np.abs(depth[near] - frame.depth_m[near])) <= 0.5 / 256 + 1e-4
        assert np.all(depth[frame.depth_m >= 1000] == 0)  # sky
        np.testing.assert_allclose(rec.boxes_xyxy, [o.box_xyxy for o in frame.objects]
                                   if frame.objects else np.zeros((0, 4)), atol=1e-4)
        assert rec.labels.tolist() == [o.category_id for o in frame.objects]
        assert rec.intrinsics == frame.intrinsics
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(out / "annotations" / "instances_train.json"))
    assert len(coco.getAnnIds()) == sum(len(f.objects) for f in expected) > 0
    # Same seed, same bytes; an existing split is refused unless --overwrite.
    assert main(args) == 1 and "already exists" in capsys.readouterr().err
    before = (out / "annotations" / "instances_train.json").read_bytes()
    assert main([*args, "--overwrite", "--no-progress"]) == 0
    assert (out / "annotations" / "instances_train.json").read_bytes() == before


def test_synth_fov_drawn_per_sequence_gives_per_sequence_intrinsics(tmp_path):
    out = tmp_path / "ds"
    assert main(["synth", "--out", str(out), "--sequences", "3", "--frames", "1",
                 "--seed", "1", *SIZE, "--no-progress"]) == 0
    intr = json.loads((out / "meta" / "intrinsics.json").read_text())["train"]
    assert len(intr) == 3 and len({round(v["fx"], 6) for v in intr.values()}) > 1
    for rec in load_index(out, "train"):
        assert rec.intrinsics.fx == pytest.approx(intr[rec.sequence]["fx"])


def test_stream_dataset_renders_on_the_fly():
    stream = SyntheticStreamDataset(2, 2, seed=5, width=160, height=90, fov_deg=90.0)
    items = list(stream)
    assert len(items) == len(stream) == 4
    assert [(i["sequence"], i["frame_index"]) for i in items] == [
        ("stream0000", 0), ("stream0000", 1), ("stream0001", 0), ("stream0001", 1)]
    frame = next(iter(SyntheticWorld(seed=5, width=160, height=90, fov_deg=90.0)
                      .sequence("stream0000", 1)))
    first = items[0]
    torch.testing.assert_close(first["image"], torch.from_numpy(frame.rgb).permute(2, 0, 1)
                               .float() / 255)
    assert first["labels"].tolist() == [o.category_id for o in frame.objects]
    # Valid: what the uint16 PNG can hold (256 m); the sky (1000 m) and far ground are not.
    beyond = torch.from_numpy(frame.depth_m > 65535 / 256)
    assert (frame.depth_m >= 1000).any()
    assert not first["depth_valid"][0][beyond].any() and first["depth_valid"][0][~beyond].all()

    clips = SyntheticStreamDataset(2, 2, clip_length=2, seed=5, width=96, height=54,
                                   transform=Compose([HorizontalFlip(),
                                                      RandomScaleCrop(96, 64)]))
    batch = list(clips)
    assert len(batch) == len(clips) == 2
    for clip in batch:
        assert [f["frame_index"] for f in clip] == [0, 1]
        torch.testing.assert_close(clip[0]["intrinsics"], clip[1]["intrinsics"])
    steps = collate_clips(batch[:2])
    assert len(steps) == 2 and steps[0]["image"].shape == (2, 3, 64, 96)


def test_stream_dataset_shards_sequences_between_workers():
    from torch.utils.data import DataLoader

    stream = SyntheticStreamDataset(3, 2, seed=2, width=64, height=36, fov_deg=90.0)
    loader = DataLoader(stream, batch_size=None, num_workers=2)
    seen = sorted((item["sequence"], item["frame_index"]) for item in loader)
    assert seen == [(f"stream{s:04d}", f) for s in range(3) for f in range(2)]
