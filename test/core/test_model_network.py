"""DepthSSD forward: output contract at several input sizes, memory state, depth range."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from depthssd_core.config import ModelConfig
from depthssd_core.model import DepthSSD, anchors_for, build_model


@pytest.mark.parametrize(("height", "width"), [(360, 640), (192, 320), (300, 500)])
def test_output_contract(model, height, width):
    cfg = model.cfg
    image = torch.randn(1, 3, height, width)
    mem_m, mem_s = model.initial_state(1)
    with torch.no_grad():
        cls_logits, box_regression, depth_c, m_out, s_out = model(image, mem_m, mem_s)
    num_anchors = anchors_for(cfg, height, width).shape[0]
    assert cls_logits.shape == (1, num_anchors, cfg.num_classes + 1)
    assert box_regression.shape == (1, num_anchors, 4)
    assert depth_c.shape == (1, 1, math.ceil(height / 4), math.ceil(width / 4))
    assert m_out.shape == s_out.shape == (1, *cfg.memory_shape)
    for t in (cls_logits, box_regression, depth_c, m_out, s_out):
        assert t.dtype == torch.float32 and torch.isfinite(t).all()
    assert (depth_c >= cfg.min_depth_m * (1 - 1e-5)).all()
    assert (depth_c <= cfg.max_depth_m * (1 + 1e-5)).all()


def test_memory_changes_with_frames_and_reset_restores_initial_state(model):
    torch.manual_seed(1)
    frames = torch.randn(3, 1, 3, 96, 160)
    state0 = model.initial_state(1)
    with torch.no_grad():
        outs = []
        state = state0
        for frame in frames:
            out = model(frame, *state)
            state = out[3:]
            outs.append(out)
        # The state evolves, and the memory read makes frame 3's output depend on the history.
        assert not torch.allclose(state[0], state0[0])
        assert state[1].abs().sum() > 0
        fresh = model(frames[2], *model.initial_state(1))
        assert not torch.allclose(fresh[0], outs[2][0])
        # Reset = feeding the initial state again reproduces the first frame exactly.
        again = model(frames[0], *model.initial_state(1))
    torch.testing.assert_close(again[0], outs[0][0], rtol=0, atol=0)
    m0, s0 = model.initial_state(2)
    torch.testing.assert_close(m0[1], model.neck.memory.m0.detach())
    assert not s0.any()


def test_batch_items_are_independent(model):
    torch.manual_seed(2)
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        both = model(images, *model.initial_state(2))
        single = model(images[1:], *model.initial_state(1))
    for a, b in zip(both, single, strict=True):
        torch.testing.assert_close(a[1:], b, atol=1e-4, rtol=1e-4)


def test_memory_off_passes_state_through():
    cfg = dataclasses.replace(ModelConfig(), memory=False)
    net = DepthSSD(cfg).eval()
    m, s = net.initial_state(1)
    assert m.shape == (1, *cfg.memory_shape)
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 96), m, s)
    assert torch.equal(out[3], m) and torch.equal(out[4], s)


def test_gradients_reach_every_part():
    torch.manual_seed(3)
    net = build_model("conv_small").train()
    out = net(torch.randn(2, 3, 64, 96), *net.initial_state(2))
    loss = sum(o.float().square().mean() for o in out)
    loss.backward()
    for name in ("backbone", "neck.lateral", "neck.layers", "neck.memory", "detection", "depth"):
        grads = [p.grad for n, p in net.named_parameters() if n.startswith(name)]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_conv_small_is_small(model):
    params = sum(p.numel() for p in model.parameters())
    assert params < 6_000_000  # < 25 MB as FP32 safetensors
