"""ModelConfig: named configurations, dict round trip, and errors that name the bad key/field."""

from __future__ import annotations

import dataclasses
import json

import pytest

from depthssd_core.config import NAMED_CONFIGS, ModelConfig


def test_named_configs_are_the_documented_three():
    assert set(NAMED_CONFIGS) == {"conv_small", "conv_medium", "hybrid_medium"}
    assert ModelConfig() == NAMED_CONFIGS["conv_small"]
    assert ModelConfig.named("conv_medium").backbone == "mobilenetv4_conv_medium"
    assert ModelConfig.named("hybrid_medium").backbone == "mobilenetv4_hybrid_medium"


@pytest.mark.parametrize("name", sorted(NAMED_CONFIGS))
def test_round_trip_through_json(name):
    cfg = NAMED_CONFIGS[name]
    restored = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert restored == cfg
    assert isinstance(restored.mean, tuple) and isinstance(restored.anchor_aspect_ratios, tuple)


def test_defaults_follow_the_contract():
    cfg = ModelConfig()
    assert cfg.num_classes == 8
    assert cfg.canonical_focal_px == 1000.0
    assert (cfg.input_height, cfg.input_width) == (360, 640)
    assert cfg.memory_shape == (cfg.memory_heads, cfg.memory_dk, cfg.memory_dv)
    assert cfg.detection_strides == (8, 16, 32, 64, 128)


def test_unknown_key_is_named():
    data = ModelConfig().to_dict()
    data["neck_dimm"] = 3
    with pytest.raises(ValueError, match="neck_dimm"):
        ModelConfig.from_dict(data)


def test_unknown_named_config():
    with pytest.raises(ValueError, match="conv_huge"):
        ModelConfig.named("conv_huge")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("backbone", "resnet50"),
        ("neck_dim", 0),
        ("neck_heads", 5),
        ("min_depth_m", 2000.0),
        ("anchor_min_ratio", 0.99),
        ("std", (0.2, 0.0, 0.2)),
        ("mean", (0.5, 0.5)),
    ],
)
def test_bad_values_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        dataclasses.replace(ModelConfig(), **{field: value})
