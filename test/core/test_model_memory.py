"""Titans linear memory: the closed-form update against autograd, gates, and the initial state."""

from __future__ import annotations

import torch

from depthssd_core.model.memory import TitansMemory


def _memory(seed: int = 0) -> TitansMemory:
    torch.manual_seed(seed)
    mem = TitansMemory(dim=16, heads=2, dk=8, dv=6, theta_max=0.7).double()
    # Non-default gate biases so alpha, eta are far from their init and from each other.
    torch.nn.init.normal_(mem.w_alpha.bias, std=1.0)
    torch.nn.init.normal_(mem.w_eta.bias, std=1.0)
    return mem


def test_update_is_one_gradient_step_with_momentum_and_forgetting():
    mem = _memory()
    b, n = 2, 11
    x = torch.randn(b, n, 16, dtype=torch.float64)
    m_in = torch.randn(b, 2, 8, 6, dtype=torch.float64)
    s_in = torch.randn(b, 2, 8, 6, dtype=torch.float64)

    read, m_out, s_out = mem(x, m_in, s_in)

    p = mem.projections(x)
    m_var = m_in.clone().requires_grad_(True)
    # The associative loss (docs/REFERENCES.md, "Titans memory"), summed over batch and heads
    # (they do not interact).
    residual = p.k.detach() @ m_var - p.v.detach()
    loss = 0.5 * (p.theta.detach() * residual.pow(2)).sum() / n
    (grad,) = torch.autograd.grad(loss, m_var)

    expected_s = p.eta * s_in - grad
    expected_m = (1.0 - p.alpha) * m_in + expected_s
    torch.testing.assert_close(s_out, expected_s, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(m_out, expected_m, rtol=1e-12, atol=1e-12)

    # The read uses M_in (before the update): R = q M_in, projected to token width.
    expected_read = mem.w_out((p.q @ m_in).transpose(1, 2).reshape(b, n, 12))
    torch.testing.assert_close(read, expected_read)


def test_projection_definitions():
    mem = _memory(1)
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    p = mem.projections(x)
    torch.testing.assert_close(p.q.norm(dim=-1), torch.ones(3, 2, 7, dtype=torch.float64))
    torch.testing.assert_close(p.k.norm(dim=-1), torch.ones(3, 2, 7, dtype=torch.float64))
    assert (p.v > -0.2785).all()  # SiLU's minimum is about -0.2785
    assert p.alpha.shape == p.eta.shape == (3, 2, 1, 1)
    assert p.theta.shape == (3, 2, 7, 1)
    assert ((p.theta > 0) & (p.theta < 0.7)).all()
    # alpha/eta come from the mean token: permuting tokens leaves them unchanged.
    perm = mem.projections(x[:, torch.randperm(7)])
    torch.testing.assert_close(perm.alpha, p.alpha)
    torch.testing.assert_close(perm.eta, p.eta)


def test_state_is_fp32_for_half_tokens():
    mem = _memory(2).float()
    x = torch.randn(1, 5, 16).half()
    m, s = mem.initial_state(1)
    read, m_out, s_out = mem(x, m, s)
    assert read.dtype == torch.float16
    assert m_out.dtype == s_out.dtype == torch.float32


def test_initial_state_is_m0_and_zero_momentum():
    mem = _memory(3).float()
    m, s = mem.initial_state(4)
    assert m.shape == s.shape == (4, 2, 8, 6)
    for i in range(4):
        torch.testing.assert_close(m[i], mem.m0.detach())
    assert not s.any()
    # M_0 is learned: the initial state keeps its autograd link.
    m.sum().backward()
    assert mem.m0.grad is not None and mem.m0.grad.abs().sum() > 0


def test_state_and_read_are_fp32_under_bf16_autocast():
    """Training runs under bf16 autocast; the memory switches it off, so its state is the FP32
    arithmetic that export and serving run (checked against the same module without autocast)."""
    torch.manual_seed(0)
    mem = TitansMemory(16, 2, 4, 4, 1.0)
    tokens = torch.randn(2, 300, 16)
    m0, s0 = mem.initial_state(2)
    m0 = m0 + 0.1 * torch.randn_like(m0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        read, m1, s1 = mem(tokens.bfloat16(), m0, s0)
        p = mem.projections(tokens)
    assert m1.dtype == s1.dtype == torch.float32
    assert read.dtype == torch.bfloat16  # handed back in the tokens' dtype
    # projections alone is not an island: autocast runs its linears in bf16
    assert p.q.dtype == torch.bfloat16
    ref_read, ref_m, ref_s = mem(tokens.bfloat16().float(), m0, s0)
    torch.testing.assert_close(m1, ref_m, rtol=0, atol=0)
    torch.testing.assert_close(s1, ref_s, rtol=0, atol=0)
    torch.testing.assert_close(read.float(), ref_read.bfloat16().float(), rtol=0, atol=0)
