"""A CARLA capture scored by ``depthssd-eval`` end to end.

The capture runs against ``fake_carla`` (a stand-in: no CARLA server can run here) and writes
what a real capture writes, ``null`` occlusion and truncation included; the evaluation is the
real CLI with a tiny untrained model.
"""

from __future__ import annotations

import json

import pytest
import torch
from fake_carla import FakeCarla

from depthssd_core.checkpoint import save_checkpoint
from depthssd_core.config import ModelConfig
from depthssd_core.model import build_model
from depthssd_train.carla.capture import CaptureSettings, capture
from depthssd_train.cli.evaluate import main as eval_main
from depthssd_train.dataset.format import load_coco
from depthssd_train.metrics import near_subset

TINY_MODEL = ModelConfig(input_width=160, input_height=96, neck_dim=32, memory_dk=8,
                         memory_dv=8)


def test_depthssd_eval_scores_a_carla_capture(tmp_path, capsys):
    """Stand-in server for the capture; real depthssd-eval on what it wrote."""
    data = tmp_path / "carla"
    settings = CaptureSettings(out=data, split="test", frames=3, timeout_s=1.0, width=160,
                               height=96, num_vehicles=2, num_walkers=2, warmup_ticks=1)
    assert capture(settings, carla_module=FakeCarla()).frames == 3
    anns = load_coco(data, "test")["annotations"]
    assert anns and all(a["occlusion"] is None and a["truncation"] is None for a in anns)

    torch.manual_seed(0)
    model = save_checkpoint(tmp_path / "tiny.safetensors", build_model(TINY_MODEL))
    out = tmp_path / "eval"
    code = eval_main(["--model", str(model), "--data", str(data), "--out", str(out),
                      "--score-threshold", "0.001", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["split"] == "test" and m["num_frames"] == 3 and m["num_sequences"] == 1
    assert m["depth"]["num_images"] == 3 and m["depth"]["abs_rel"] > 0
    # Unknown occlusion/truncation do not hide the car and the pedestrian of each frame from
    # the "clearly visible" subset (they are 12 and 20 m away and tall enough).
    visible = m["near_visible_detection"]["per_class"]
    assert visible["car"]["num_gt"] == 3 and visible["pedestrian"]["num_gt"] == 3


def test_near_subset_takes_null_occlusion_as_unknown_not_hidden():
    gt = {"images": [{"id": 1, "height": 360}],
          "annotations": [
              {"id": k, "image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50],
               "distance_m": 10.0, "occlusion": occ, "truncation": trunc, "iscrowd": 0}
              for k, (occ, trunc) in enumerate([(None, None), (0.9, None), (None, 0.8),
                                                (0.1, 0.1)])],
          "categories": []}
    subset, _ = near_subset(gt, ("car",), 60.0, max_occlusion=0.5, max_truncation=0.3)
    assert [a["iscrowd"] for a in subset["annotations"]] == [0, 1, 1, 0]


@pytest.mark.parametrize("key", ["occlusion", "truncation"])
def test_near_subset_accepts_missing_keys(key):
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 50, 50], "iscrowd": 0}
    subset, _ = near_subset({"images": [], "annotations": [ann], "categories": []}, ("car",),
                            60.0, **{f"max_{key}": 0.1})
    assert subset["annotations"][0]["iscrowd"] == 0
