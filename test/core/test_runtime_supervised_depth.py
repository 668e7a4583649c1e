"""The runtime publishes depth only where training supervised it (``SUPERVISED_DEPTH_RANGE_M``).

The depth head of a tiny model is set to a constant canonical depth, so the published depth is
known exactly: inside the supervised range it is published, beyond it NaN by default, and an
explicit ``max_depth_m`` still opens the model's whole output range.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from tiny_models import build_tiny_model

from depthssd_core.backends.torch_backend import TorchBackend
from depthssd_core.config import SUPERVISED_DEPTH_RANGE_M
from depthssd_core.geometry import CameraIntrinsics
from depthssd_core.model import DepthSSD
from depthssd_core.model_info import model_info_from_module
from depthssd_core.runtime import Perceptor, PerceptorSettings

IN_W, IN_H = 160, 96
# 90 deg over 160 px gives f = 80 px, so with this canonical focal depth_m equals depth_c.
INTR = CameraIntrinsics.from_fov(IN_W, IN_H, 90.0)


def _constant_depth_model(depth_c_m: float) -> DepthSSD:
    model = build_tiny_model(IN_H, IN_W, seed=0, canonical_focal_px=INTR.fx)
    head = model.depth
    share = (1.0 / depth_c_m - head.inv_min) / (head.inv_max - head.inv_min)
    with torch.no_grad():
        head.predict.weight.zero_()
        head.predict.bias.fill_(float(torch.logit(torch.tensor(share, dtype=torch.float64))))
    return model


def _depth(model: DepthSSD, **settings: float) -> np.ndarray:
    perceptor = Perceptor(TorchBackend(model, device="cpu"), model_info_from_module(model),
                          settings=PerceptorSettings(**settings))
    frame = np.full((IN_H, IN_W, 3), 90, np.uint8)
    return perceptor.process(frame, "rgb8", INTR, 0.0).depth_m


@pytest.mark.parametrize("depth_m", [5.0, 100.0])
def test_depth_inside_the_supervised_range_is_published(depth_m):
    published = _depth(_constant_depth_model(depth_m))
    np.testing.assert_allclose(published, depth_m, rtol=1e-4)


@pytest.mark.parametrize("depth_m", [150.0, 900.0])
def test_depth_beyond_supervision_is_nan_unless_asked_for(depth_m):
    model = _constant_depth_model(depth_m)
    assert depth_m > SUPERVISED_DEPTH_RANGE_M[1] and depth_m < model.cfg.max_depth_m
    assert np.isnan(_depth(model)).all()
    np.testing.assert_allclose(_depth(model, max_depth_m=1000.0), depth_m, rtol=1e-4)


def test_depth_range_follows_supervision_model_and_settings():
    model = _constant_depth_model(10.0)
    perceptor = Perceptor(TorchBackend(model, device="cpu"), model_info_from_module(model))
    assert perceptor.depth_range_m == SUPERVISED_DEPTH_RANGE_M
    perceptor.update_settings(max_depth_m=500.0)
    assert perceptor.depth_range_m == (SUPERVISED_DEPTH_RANGE_M[0], 500.0)
    # A head that cannot reach 120 m publishes up to its own maximum.
    short = DepthSSD(dataclasses.replace(model.cfg, max_depth_m=80.0)).eval()
    perceptor = Perceptor(TorchBackend(short, device="cpu"), model_info_from_module(short))
    assert perceptor.depth_range_m == (SUPERVISED_DEPTH_RANGE_M[0], 80.0)
