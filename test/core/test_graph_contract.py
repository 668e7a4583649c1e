"""The graph contract: golden IO names and coder weights, box coding closed forms, the anchors
section check and the one sidecar reader's errors."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest
import torch

from depthssd_core import graph_contract as gc
from depthssd_core.config import ModelConfig
from depthssd_core.model import anchors_for


def test_golden_names_and_weights():
    assert gc.INPUT_NAMES == ("image", "mem_m", "mem_s")
    assert gc.OUTPUT_NAMES == ("cls_logits", "box_regression", "depth_c", "mem_m_out",
                               "mem_s_out")
    assert gc.BOX_CODER_WEIGHTS == (10.0, 10.0, 5.0, 5.0)


def test_box_coder_closed_forms_and_round_trip():
    coder = gc.box_coder()
    anchors = torch.tensor([[10.0, 20.0, 30.0, 60.0]])
    # A box shifted by a quarter anchor width with twice the height: dx = 10 * 0.25,
    # dh = 5 * log 2.
    box = torch.tensor([[15.0, 0.0, 35.0, 80.0]])
    code = coder.encode_single(box, anchors)
    torch.testing.assert_close(code, torch.tensor([[2.5, 0.0, 0.0, 5 * math.log(2)]]))
    torch.testing.assert_close(coder.decode_single(code, anchors), box)
    # Wild log-size codes are clipped at log(1000 / 16): the box stays finite.
    wild = coder.decode_single(torch.tensor([[0.0, 0.0, 500.0, 500.0]]), anchors)
    torch.testing.assert_close(wild[0, 2] - wild[0, 0], torch.tensor(20.0 * 1000 / 16))


def test_sidecar_path_and_reader_errors(tmp_path):
    model = tmp_path / "m.onnx"
    assert gc.sidecar_path(model) == tmp_path / "m.onnx.json"
    with pytest.raises(FileNotFoundError, match=r"m\.onnx\.json"):
        gc.read_sidecar(model, gc.ONNX_SIDECAR_FORMAT)
    gc.sidecar_path(model).write_text("{not json")
    with pytest.raises(ValueError, match=r"m\.onnx\.json is not valid JSON"):
        gc.read_sidecar(model, gc.ONNX_SIDECAR_FORMAT)
    gc.sidecar_path(model).write_text(json.dumps({"format": "something-else/9"}))
    with pytest.raises(ValueError, match="unknown format 'something-else/9'"):
        gc.read_sidecar(model, gc.ONNX_SIDECAR_FORMAT)
    gc.sidecar_path(model).write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match="unknown format"):
        gc.read_sidecar(model, gc.ONNX_SIDECAR_FORMAT)
    gc.sidecar_path(model).write_text(json.dumps({"format": 1, "x": 2}))
    assert gc.read_sidecar(model, 1) == {"format": 1, "x": 2}


def test_anchors_section_records_the_config_and_is_checked(tmp_path):
    cfg = dataclasses.replace(ModelConfig(), anchor_aspect_ratios=(2,), anchor_min_ratio=0.05)
    section = json.loads(json.dumps(gc.anchors_section(cfg, 96, 160)))  # as read from disk
    assert section["num_anchors"] == anchors_for(cfg, 96, 160).shape[0]
    assert section["aspect_ratios"] == [2] and section["min_ratio"] == 0.05
    assert section["strides"] == list(cfg.detection_strides)
    assert section["box_coder_weights"] == [10.0, 10.0, 5.0, 5.0]
    gc.check_anchors_section(section, cfg, 96, 160, tmp_path / "m.onnx.json")
    for key, value in (("box_coder_weights", [1.0, 1.0, 1.0, 1.0]), ("min_ratio", 0.2),
                       ("num_anchors", 7)):
        with pytest.raises(ValueError, match=rf"m\.onnx\.json: anchors disagree.*{key}"):
            gc.check_anchors_section({**section, key: value}, cfg, 96, 160,
                                     tmp_path / "m.onnx.json")
    # Another input size has other anchors.
    with pytest.raises(ValueError, match="num_anchors"):
        gc.check_anchors_section(section, cfg, 192, 320, tmp_path / "m.onnx.json")


def test_contract_imports_without_torch():
    """ONNX Runtime and TensorRT deployments read the contract; it must not pull in torch (only
    ``box_coder()`` imports torchvision, when called)."""
    code = ("import sys, depthssd_core.graph_contract, depthssd_core.model_info; "
            "print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, check=True)
    assert result.stdout.strip() == "[]"
