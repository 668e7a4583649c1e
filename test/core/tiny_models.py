"""The tiny random-weight DepthSSD the core tests run: every part of the network, small enough
for a forward pass in milliseconds on one CPU thread."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from depthssd_core.config import ModelConfig
from depthssd_core.model import DepthSSD


def tiny_config(height: int, width: int, **overrides: Any) -> ModelConfig:
    """The default configuration at a ``height`` x ``width`` input with a narrow neck and depth
    head, a small memory and one extra level; ``overrides`` replace further fields."""
    return dataclasses.replace(ModelConfig(), input_height=height, input_width=width,
                               neck_dim=32, depth_dim=16, memory_dk=8, memory_dv=8,
                               extra_levels=1, **overrides)


def build_tiny_model(height: int, width: int, seed: int, **overrides: Any) -> DepthSSD:
    """A :func:`tiny_config` network with weights drawn after ``torch.manual_seed(seed)``, in
    eval mode."""
    torch.manual_seed(seed)
    return DepthSSD(tiny_config(height, width, **overrides)).eval()
