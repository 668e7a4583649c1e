"""``depthssd-data validate`` and ``preview`` on datasets with planted defects."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from dataset_helpers import toy_frame, toy_frames

from depthssd_train.cli.data import main
from depthssd_train.dataset.validate import validate_dataset
from depthssd_train.dataset.writer import write_split


@pytest.fixture
def root(tmp_path):
    frames = toy_frames(2, 3)
    frames[5] = toy_frame("seq1", 2, depth=False, shift_m=1.0)
    write_split(tmp_path / "ds", "train", frames)
    return tmp_path / "ds"


def test_clean_dataset_validates(root, capsys):
    assert validate_dataset(root) == []
    assert main(["validate", str(root)]) == 0
    assert "ok" in capsys.readouterr().out


def test_validate_names_every_bad_file(root, capsys):
    (root / "images/train/seq0/000001.png").write_bytes(b"\x89PNG broken")
    (root / "depth/train/seq0/000002.png").unlink()
    cv2.imwrite(str(root / "depth/train/seq1/000000.png"), np.ones((45, 80), np.uint16))
    cv2.imwrite(str(root / "depth/train/seq1/000001.png"), np.ones((90, 160, 3), np.uint8))
    coco_path = root / "annotations/instances_train.json"
    coco = json.loads(coco_path.read_text())
    coco["annotations"][0]["category_id"] = 42
    coco["annotations"][1]["bbox"] = [150.0, 10.0, 30.0, 10.0]
    coco_path.write_text(json.dumps(coco))
    index = root / "meta/index_train.csv"
    lines = index.read_text().splitlines()
    index.write_text("\n".join(lines[:-1]) + "\n")  # drop seq1/000002 from the index
    (root / ".partial-val-deadbeef").mkdir()

    problems = validate_dataset(root)
    text = "\n".join(problems)
    expected = [
        "images/train/seq0/000001.png: corrupt or unreadable PNG",
        "depth/train/seq0/000002.png: depth file is missing",
        "depth/train/seq1/000000.png: depth is 80x45, image is 160x90",
        "depth/train/seq1/000001.png: expected single-channel uint16",
        "unknown category id 42",
        "lies outside the 160x90 image",
        "images/train/seq1/000002.png: missing from meta/index_train.csv",
        ".partial-val-deadbeef: staging folder",
    ]
    for line in expected:
        assert line in text, f"{line!r} not reported in:\n{text}"
    assert "images/train/seq0/000000.png: annotation" in text  # bad annotation names its image
    assert main(["validate", str(root)]) == 1
    err = capsys.readouterr().err
    assert f"{len(problems)} problem(s)" in err and "000001.png" in err


def test_validate_and_preview_errors_are_one_line(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nope")]) == 1
    assert "not a folder" in capsys.readouterr().err
    assert main(["preview", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no split index" in err
    assert main(["synth", "--out", str(tmp_path)]) == 2  # usage: --sequences missing


def test_preview_writes_a_contact_sheet(root, tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert main(["preview", str(root), "--out", str(out), "--frames", "6"]) == 0
    sheet = cv2.imread(str(out))
    # 6 tiles of 320 x (180 image + 180 depth) in 4 columns -> 2 rows.
    assert sheet.shape == (720, 1280, 3)
    # The depth half of the first tile is colourised; the sky (no depth) stays black.
    depth_tile = sheet[180:360, :320]
    assert np.all(depth_tile[:20] == 0) and depth_tile[-10:].std() > 0
    assert len(np.unique(depth_tile.reshape(-1, 3), axis=0)) > 10
