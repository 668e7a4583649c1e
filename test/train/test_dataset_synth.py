"""The dataset built from the real SyntheticWorld: ``depthssd-data synth`` and the training
stream of clips rendered on the fly."""

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
from depthssd_train.dataset.torch_data import SyntheticClipGroups
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


def test_synthetic_clip_groups_render_on_the_fly_and_depend_only_on_the_index():
    kwargs = dict(world_seed=5, world_kwargs={"width": 160, "height": 90, "fov_deg": 90.0},
                  num_sequences=3, frames_per_sequence=4, clip_length=2, batch_size=3,
                  crops_per_clip=2, sample_seed=11, num_groups=4,
                  transform=Compose([HorizontalFlip(), RandomScaleCrop(80, 48,
                                                                       reference_size=(160, 90))]))
    groups = SyntheticClipGroups(**kwargs)
    # 2 clips x 2 crops per sequence and batches of 3: 3 sequences fill 4 batches per group.
    assert (groups.sequences_per_group, groups.batches_per_group) == (3, 4)
    group = groups[1]
    assert len(group) == 4
    seen = set()
    for batch in group:
        assert len(batch) == 2 and batch[0]["image"].shape == (3, 3, 48, 80)
        for b in range(3):
            seq = batch[0]["sequence"][b]
            assert batch[1]["sequence"][b] == seq  # one clip per row...
            assert int(batch[1]["frame_index"][b]) == int(batch[0]["frame_index"][b]) + 1
            # ...with one window for all its frames.
            torch.testing.assert_close(batch[0]["intrinsics"][b], batch[1]["intrinsics"][b])
            seen.add(seq)
    # Pass 0 uses every sequence before any repeats (3 sequences per group, 3 ids).
    assert seen == {"train00000", "train00001", "train00002"}
    # Same index, same bytes, in a fresh dataset (a resumed run sees what it would have seen).
    again = SyntheticClipGroups(**kwargs)[1]
    for x, y in zip(group, again, strict=True):
        torch.testing.assert_close(x[0]["image"], y[0]["image"], rtol=0, atol=0)
        torch.testing.assert_close(x[1]["depth_m"], y[1]["depth_m"], rtol=0, atol=0)
    other = groups[2]
    assert not torch.equal(other[0][0]["image"], group[0][0]["image"])
    # The world options pass through: frames carry the fixed fov's focal, scaled by the crop.
    world = SyntheticWorld(seed=5, width=160, height=90, fov_deg=90.0)
    fx = next(iter(world.sequence("train00000", 1))).intrinsics.fx
    scale = group[0][0]["intrinsics"][0, 0].item() / fx
    assert 0.9 - 1e-3 <= scale <= 1.4 + 1e-3


def test_synthetic_clip_groups_without_augmentation_are_the_world_frames():
    groups = SyntheticClipGroups(world_seed=5, world_kwargs={"width": 160, "height": 90,
                                                             "fov_deg": 90.0},
                                 num_sequences=2, frames_per_sequence=2, clip_length=1,
                                 batch_size=2, crops_per_clip=1, transform=None,
                                 sample_seed=0, num_groups=1)
    (batch,) = groups[0][:1]
    world = SyntheticWorld(seed=5, width=160, height=90, fov_deg=90.0)
    for b in range(2):
        seq, index = batch[0]["sequence"][b], int(batch[0]["frame_index"][b])
        frame = list(world.sequence(seq, index + 1))[index]
        torch.testing.assert_close(batch[0]["image"][b],
                                   torch.from_numpy(frame.rgb).permute(2, 0, 1).float() / 255)
        # Exact depth everywhere, the sky (1000 m) included: the loss teaches "far" on it.
        assert batch[0]["depth_valid"][b, 0].all()
        torch.testing.assert_close(batch[0]["depth_m"][b, 0], torch.from_numpy(frame.depth_m),
                                   rtol=0, atol=0)
        assert batch[0]["labels"][b].tolist() == [o.category_id for o in frame.objects]
