"""Round trips, COCO compatibility and atomicity of the dataset format."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from dataset_helpers import toy_frame, toy_frames
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from depthssd_core.classes import CLASSES
from depthssd_train.dataset.format import (
    ObjectLabel,
    decode_depth,
    encode_depth,
    list_splits,
    load_depth_format,
    load_index,
    read_depth_png,
    read_rgb_png,
)
from depthssd_train.dataset.writer import DatasetWriter, write_split


def test_depth_codec_quantisation_and_invalid_values():
    depth = np.array([[0.0, 1.0, 12.3456, 255.99], [256.5, 1000.0, np.inf, 3.0]])
    units = encode_depth(depth)
    assert units.dtype == np.uint16
    back = decode_depth(units)
    valid = units > 0
    np.testing.assert_array_equal(valid, [[False, True, True, True], [False, False, False, True]])
    assert np.max(np.abs(back[valid] - depth[valid])) <= 0.5 / 256 + 1e-6
    mm = decode_depth(encode_depth(depth, 0.001), 0.001)
    assert abs(mm[0, 2] - 12.346) < 1e-4 and mm[1, 0] == 0  # 256.5 m > 65.535 m range
    with pytest.raises(ValueError, match="negative"):
        encode_depth(np.array([[1.0, -0.5]]))
    with pytest.raises(ValueError, match="NaN"):
        encode_depth(np.array([[1.0, np.nan]]))
    assert encode_depth(np.array([[np.nan, 2.0]]), nan_is_invalid=True)[0, 0] == 0


def test_round_trip_images_depth_boxes_and_intrinsics(tmp_path):
    frames = toy_frames(2, 3)
    assert write_split(tmp_path, "train", frames) == 6
    records = load_index(tmp_path, "train")
    assert [(r.sequence, r.frame_index) for r in records] == [
        (f.sequence, f.frame_index) for f in frames]
    for frame, rec in zip(frames, records, strict=True):
        np.testing.assert_array_equal(read_rgb_png(rec.image_path), frame.rgb)
        depth = read_depth_png(rec.depth_path, load_depth_format(tmp_path))
        sky = frame.depth_m >= 256
        assert np.all(depth[sky] == 0)
        assert np.max(np.abs(depth[~sky] - frame.depth_m[~sky])) <= 0.5 / 256 + 1e-5
        assert rec.intrinsics == frame.intrinsics
        assert rec.pose == frame.pose and rec.timestamp_s == frame.timestamp_s
        np.testing.assert_allclose(rec.boxes_xyxy, [o.box_xyxy for o in frame.objects],
                                   atol=1e-4)
        assert rec.labels.tolist() == [o.category_id for o in frame.objects]
        assert rec.has_boxes and rec.has_depth
    intr = json.loads((tmp_path / "meta" / "intrinsics.json").read_text())
    assert intr["train"]["seq1"]["fx"] == pytest.approx(80.0)  # 160 px at 90 deg


def test_coco_loads_unchanged_and_cocoeval_runs(tmp_path):
    write_split(tmp_path, "val", toy_frames(2, 3))
    path = tmp_path / "annotations" / "instances_val.json"
    raw = json.loads(path.read_text())
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    assert sorted(coco.getCatIds()) == list(range(1, len(CLASSES) + 1))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    assert len(coco.getImgIds()) == 6 and len(coco.getAnnIds()) == 12
    ann = coco.loadAnns(coco.getAnnIds(imgIds=[1]))[0]
    _, _, w, h = ann["bbox"]
    assert ann["area"] == pytest.approx(w * h) and ann["iscrowd"] == 0
    assert ann["distance_m"] == pytest.approx(12.0) and ann["box3d"]["size_m"][2] == 1.6
    img = coco.loadImgs([1])[0]
    assert img["depth_file"].startswith("depth/val/seq0/") and img["sequence"] == "seq0"
    assert img["has_boxes"] and img["has_depth"]
    assert coco.dataset == raw
    # Ground truth as detections: COCOeval must find perfect precision.
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
             "score": 1.0} for a in raw["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(coco, coco.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    assert ev.stats[1] == pytest.approx(1.0)  # AP at IoU 0.5


def test_asymmetric_labels_and_millimetre_depth(tmp_path):
    frames = [toy_frame("a", 0), toy_frame("a", 1, boxes=False), toy_frame("a", 2, depth=False)]
    write_split(tmp_path, "train", frames, metres_per_unit=0.001)
    assert load_depth_format(tmp_path) == 0.001
    recs = load_index(tmp_path, "train")
    assert [(r.has_boxes, r.has_depth) for r in recs] == [(True, True), (False, True),
                                                          (True, False)]
    assert recs[2].depth_path is None and len(recs[1].labels) == 0
    depth = read_depth_png(recs[1].depth_path, 0.001)
    finite = (frames[1].depth_m < 65.0)
    assert np.max(np.abs(depth[finite] - frames[1].depth_m[finite])) <= 0.0005 + 1e-6
    coco = json.loads((tmp_path / "annotations" / "instances_train.json").read_text())
    assert [i["has_boxes"] for i in coco["images"]] == [True, False, True]
    assert coco["images"][2]["depth_file"] is None
    # A second split in the same root must share the depth scale.
    with pytest.raises(ValueError, match="per unit"):
        DatasetWriter(tmp_path, "val")


def test_exception_mid_write_leaves_no_valid_looking_split(tmp_path):
    write_split(tmp_path, "train", toy_frames(1, 2))
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    def frames():
        yield toy_frame("s", 0)
        yield toy_frame("s", 1)
        raise RuntimeError("renderer crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        write_split(tmp_path, "val", frames())
    assert list_splits(tmp_path) == ["train"]
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    with pytest.raises(ValueError, match=r"index_val\.csv: missing"):
        load_index(tmp_path, "val")
    # A fresh root that fails is removed completely.
    fresh = tmp_path / "fresh"
    with pytest.raises(RuntimeError):
        write_split(fresh, "train", frames())
    assert not fresh.exists()


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: setattr(f, "depth_m", f.depth_m[:, :-1]), "depth shape"),
    (lambda f: f.depth_m.__setitem__((0, 0), -1.0), "negative"),
    (lambda f: f.depth_m.__setitem__((0, 0), np.nan), "NaN"),
    (lambda f: f.objects.append(ObjectLabel(9, (1, 1, 5, 5))), "unknown category id 9"),
    (lambda f: f.objects.append(ObjectLabel(1, (150, 1, 170, 5))), "outside"),
    (lambda f: setattr(f, "rgb", f.rgb[..., 0]), "rgb must be"),
])
def test_bad_frames_are_rejected_naming_the_frame(tmp_path, change, message):
    frame = toy_frame("bad", 7)
    change(frame)
    with pytest.raises(ValueError, match=message) as err:
        write_split(tmp_path / "ds", "train", [frame])
    assert "train/bad/000007" in str(err.value)
    assert not (tmp_path / "ds").exists()


def test_append_adds_sequences_atomically(tmp_path):
    from depthssd_train.dataset.validate import validate_dataset

    write_split(tmp_path, "train", toy_frames(2, 3))
    index_before = (tmp_path / "meta" / "index_train.csv").read_bytes()

    def failing():
        yield toy_frame("late", 0)
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        write_split(tmp_path, "train", failing(), append=True)
    assert (tmp_path / "meta" / "index_train.csv").read_bytes() == index_before
    assert not (tmp_path / "images" / "train" / "late").exists()
    with pytest.raises(ValueError, match="'seq1' is already in split"):
        write_split(tmp_path, "train", [toy_frame("seq1", 9)], append=True)

    extra = [toy_frame("late", f, boxes=f != 1) for f in range(2)]
    assert write_split(tmp_path, "train", extra, append=True) == 2
    records = load_index(tmp_path, "train")
    assert [(r.sequence, r.frame_index) for r in records][-3:] == [
        ("seq1", 2), ("late", 0), ("late", 1)]
    assert [r.image_id for r in records] == list(range(1, 9))
    assert validate_dataset(tmp_path) == []
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(tmp_path / "annotations" / "instances_train.json"))
    assert len(coco.getAnnIds()) == 14 and len(set(coco.getAnnIds())) == 14
    assert coco.loadImgs([7])[0]["sequence_id"] == 2
    intr = json.loads((tmp_path / "meta" / "intrinsics.json").read_text())["train"]
    assert sorted(intr) == ["late", "seq0", "seq1"]
