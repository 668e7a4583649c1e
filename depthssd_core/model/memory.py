"""Titans linear memory (Behrouz et al. 2025, "Titans: Learning to Memorize at Test Time").

A matrix memory M per head is read by the current frame's tokens and then updated by one step
of gradient descent with momentum S and forgetting on the associative loss
``0.5 * sum_i theta_i * ||k_i M - v_i||^2 / N``. One frame is one chunk: the whole update is a
handful of matmuls, so the state (M, S) goes in and out of the exported graph and the graph
itself stays stateless. All state arithmetic runs in FP32, also inside an FP16 model: the state
is carried from frame to frame, so half-precision rounding of each update would pile up over a
drive (the update itself sums only the pooled tokens: 28 at a 320x180 input with
``kv_pool`` 6, 112 at 640x360); autocast is switched off inside the memory so bf16
training computes the same FP32 state.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class MemoryProjections(NamedTuple):
    """Per-frame quantities of the memory update (shapes for B frames, h heads, N tokens)."""

    q: torch.Tensor  # [B, h, N, d_k], unit rows
    k: torch.Tensor  # [B, h, N, d_k], unit rows
    v: torch.Tensor  # [B, h, N, d_v]
    alpha: torch.Tensor  # [B, h, 1, 1] forgetting gate
    eta: torch.Tensor  # [B, h, 1, 1] momentum decay
    theta: torch.Tensor  # [B, h, N, 1] per-token learning rate


class TitansMemory(nn.Module):
    """Linear (matrix) memory with momentum and forgetting, read then updated once per frame.

    Args:
        dim: Token width.
        heads: Memory heads.
        dk: Key width per head.
        dv: Value width per head.
        theta_max: Upper bound of the per-token learning rate.
    """

    def __init__(self, dim: int, heads: int, dk: int, dv: int, theta_max: float) -> None:
        super().__init__()
        self.heads, self.dk, self.dv = heads, dk, dv
        self.theta_max = float(theta_max)
        self.w_q = nn.Linear(dim, heads * dk, bias=False)
        self.w_k = nn.Linear(dim, heads * dk, bias=False)
        self.w_v = nn.Linear(dim, heads * dv, bias=False)
        self.w_alpha = nn.Linear(dim, heads)
        self.w_eta = nn.Linear(dim, heads)
        self.w_theta = nn.Linear(dim, heads)
        self.w_out = nn.Linear(heads * dv, dim)
        self.m0 = nn.Parameter(torch.randn(heads, dk, dv) * 0.02)
        # Start forgetting little (alpha ~ 0.05) with moderate momentum (eta ~ 0.5).
        nn.init.constant_(self.w_alpha.bias, -3.0)
        nn.init.constant_(self.w_eta.bias, 0.0)

    def initial_state(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(M_0 repeated over the batch, zero momentum), both float32 [B, h, d_k, d_v].

        M keeps its autograd link to ``m0`` so training learns M_0 (detach for inference).
        """
        m = self.m0.float().unsqueeze(0).repeat(batch, 1, 1, 1)
        return m, torch.zeros_like(m)

    def projections(self, tokens: torch.Tensor) -> MemoryProjections:
        """Queries, keys, values and gates of a frame's tokens [B, N, dim].

        Computed in the memory's own dtype (float32, also inside an FP16 model).
        """
        x = tokens.to(self.w_q.weight.dtype)
        b, n, _ = x.shape
        h = self.heads

        def split(t: torch.Tensor, width: int) -> torch.Tensor:
            return t.reshape(b, n, h, width).transpose(1, 2)

        q = F.normalize(split(F.silu(self.w_q(x)), self.dk), dim=-1)
        k = F.normalize(split(F.silu(self.w_k(x)), self.dk), dim=-1)
        v = split(F.silu(self.w_v(x)), self.dv)
        summary = x.mean(dim=1)
        alpha = torch.sigmoid(self.w_alpha(summary)).reshape(b, h, 1, 1)
        eta = torch.sigmoid(self.w_eta(summary)).reshape(b, h, 1, 1)
        theta = self.theta_max * torch.sigmoid(self.w_theta(x)).transpose(1, 2).unsqueeze(-1)
        return MemoryProjections(q, k, v, alpha, eta, theta)

    def forward(
        self, tokens: torch.Tensor, mem_m: torch.Tensor, mem_s: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Read the memory for every token, then update it with this frame.

        Args:
            tokens: [B, N, dim] frame tokens (any float dtype).
            mem_m: [B, h, d_k, d_v] memory M_in (float32).
            mem_s: [B, h, d_k, d_v] momentum S_in (float32).

        Returns:
            read: [B, N, dim] memory read projected to token width, in the tokens' dtype.
            mem_m_out, mem_s_out: the updated state, float32.
        """
        # Autocast (training in bf16) would run these linears and matmuls in low precision;
        # the state must follow the FP32 arithmetic that export and serving use.
        with torch.autocast(tokens.device.type, enabled=False):
            p = self.projections(tokens)
            mem_m = mem_m.to(p.q.dtype)
            mem_s = mem_s.to(p.q.dtype)
            n = tokens.shape[1]
            read = p.q @ mem_m
            error = p.k @ mem_m - p.v
            grad = p.k.transpose(-1, -2) @ (p.theta * error) / n
            mem_s_out = p.eta * mem_s - grad
            mem_m_out = (1.0 - p.alpha) * mem_m + mem_s_out
            b = tokens.shape[0]
            read = self.w_out(read.transpose(1, 2).reshape(b, n, self.heads * self.dv))
        return read.to(tokens.dtype), mem_m_out, mem_s_out
