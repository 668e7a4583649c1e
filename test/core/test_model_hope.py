"""2D HoPE: which rotary pairs are kept, and what attention logits depend on."""

from __future__ import annotations

import math

import pytest
import torch

from depthssd_core.model.hope import HoPE2D, apply_rotary, pooled_positions
from depthssd_core.model.neck import HoPEAttention


def test_pairs_kept_where_the_period_fits_the_grid():
    hope = HoPE2D(head_dim=32, base=100.0, grid_rows=45, grid_cols=80)
    per_axis = 8
    for j in range(16):
        omega = 100.0 ** (-(j // 2) / per_axis)
        extent = 80 if j % 2 == 0 else 45
        assert bool(hope.keep[j]) == (2 * math.pi / omega <= extent)
        assert int(hope.axis[j]) == j % 2  # pairs alternate x, y
    # Periods 2*pi*100**(m/8): x keeps m <= 4 (62.8 <= 80), y keeps m <= 3 (35.3 <= 45).
    assert hope.kept_pairs == 9
    # A larger base keeps fewer pairs (docs/REFERENCES.md: base 10000 keeps about 5 of 16).
    assert HoPE2D(32, 10000.0, 45, 80).kept_pairs < hope.kept_pairs


def _logit(hope, q, k, pos_q, pos_k):
    cq, sq = hope.tables(torch.tensor([pos_q], dtype=torch.float32))
    ck, sk = hope.tables(torch.tensor([pos_k], dtype=torch.float32))
    return float((apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum())


def test_logit_depends_only_on_relative_offset():
    torch.manual_seed(0)
    hope = HoPE2D(32, 100.0, 45, 80)
    q, k = torch.randn(1, 32), torch.randn(1, 32)
    base = _logit(hope, q, k, (3.0, 4.0), (10.0, 2.0))
    for dx, dy in [(5, 0), (0, 7), (-2, 11), (30.5, 17.25)]:
        shifted = _logit(hope, q, k, (3.0 + dx, 4.0 + dy), (10.0 + dx, 2.0 + dy))
        assert shifted == pytest.approx(base, abs=2e-4)
    # A different relative offset, along either axis, changes the logit.
    assert abs(_logit(hope, q, k, (3.0, 4.0), (11.0, 2.0)) - base) > 1e-3
    assert abs(_logit(hope, q, k, (3.0, 4.0), (10.0, 3.0)) - base) > 1e-3


def test_dropped_pairs_carry_no_position():
    torch.manual_seed(1)
    hope = HoPE2D(32, 100.0, 45, 80)
    mask = hope.identity_mask
    q = torch.randn(1, 32) * mask  # only position-free channels
    k = torch.randn(1, 32)
    a = _logit(hope, q, k, (0.0, 0.0), (0.0, 0.0))
    b = _logit(hope, q, k, (17.0, 9.0), (2.0, 30.0))
    assert a == pytest.approx(b, abs=1e-5)
    # While kept pairs do (the mask is not trivially all ones).
    assert 0 < mask.sum() < 32


def test_pooled_positions_are_centres_of_partial_cells():
    pos = pooled_positions(rows=45, cols=10, pool=4)
    xs = sorted(set(pos[:, 0].tolist()))
    ys = sorted(set(pos[:, 1].tolist()))
    assert xs == [1.5, 5.5, 8.5]  # last cell covers columns 8..9
    assert ys[:2] == [1.5, 5.5] and ys[-1] == 44.0  # last cell covers row 44 only
    assert len(ys) == 12


def test_attention_logits_shift_invariant_including_persistent_tokens():
    """Shifting queries and keys together leaves every logit unchanged (grid and persistent)."""
    torch.manual_seed(2)
    hope = HoPE2D(16, 100.0, 12, 20)
    attn = HoPEAttention(dim=32, heads=2, persistent=3, hope=hope)
    torch.nn.init.normal_(attn.persistent_k, std=1.0)
    queries, keys = torch.randn(1, 5, 32), torch.randn(1, 4, 32)
    qpos = torch.rand(5, 2) * 10
    kpos = torch.rand(4, 2) * 10
    logits, values = attn.logits(queries, keys, qpos, kpos)
    assert logits.shape == (1, 2, 5, 4 + 3) and values.shape == (1, 2, 4 + 3, 16)
    shift = torch.tensor([6.0, -3.5])
    shifted, _ = attn.logits(queries, keys, qpos + shift, kpos + shift)
    torch.testing.assert_close(shifted, logits, atol=2e-5, rtol=0)
    # Moving only the queries changes the grid logits but not the persistent-token logits
    # (they sit at relative angle 0, in the position-free channels).
    moved, _ = attn.logits(queries, keys, qpos + shift, kpos)
    assert (moved[..., :4] - logits[..., :4]).abs().max() > 1e-3
    torch.testing.assert_close(moved[..., 4:], logits[..., 4:], atol=2e-5, rtol=0)


def test_angle_tables_are_fp32_under_bf16_autocast():
    """Without the island a bf16 matmul puts ~80 rad angles off by up to 0.07 rad; with it the
    tables are exactly the FP32 ones."""
    hope = HoPE2D(32, 100.0, 45, 80)
    ys, xs = torch.meshgrid(torch.arange(45.0), torch.arange(80.0), indexing="ij")
    positions = torch.stack([xs.flatten(), ys.flatten()], dim=-1)
    cos_ref, sin_ref = hope.tables(positions)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        cos, sin = hope.tables(positions)
        low = positions @ hope.freq  # what the matmul would give without the island
    assert cos.dtype == sin.dtype == torch.float32
    torch.testing.assert_close(cos, cos_ref, rtol=0, atol=0)
    torch.testing.assert_close(sin, sin_ref, rtol=0, atol=0)
    assert low.dtype == torch.bfloat16
    assert float((low.float() - positions @ hope.freq).abs().max()) > 0.01
