"""2D HoPE rotary position encoding for the neck's attention.

Rotary embeddings (Su et al. 2021, RoFormer) make a query-key logit depend only on the relative
offset of the two tokens. HoPE (Chen et al. 2024, "HoPE: A Novel Positional Encoding Without
Long-Term Decay"; Li et al. 2025 for 2D grids) keeps only the rotary pairs whose period fits
the context and leaves the others position-free. Here the rotary pairs alternate between the x
and y axes; a pair is kept if its period ``2 * pi / omega`` fits the stride-8 token grid of the
configured input size along its axis. Which pairs rotate is fixed at construction (from the
configured input size), so the model is the same function at every input size.

Layout: a head vector of width ``d`` is split in halves ``[a, b]``; pair j is (a_j, b_j).
"""

from __future__ import annotations

import math

import torch
from torch import nn


class HoPE2D(nn.Module):
    """Angles and application of the 2D HoPE rotation.

    Args:
        head_dim: Width of one attention head (multiple of 4: pairs split over two axes).
        base: Rotary base; the per-axis frequencies are ``base ** (-m / pairs_per_axis)``.
        grid_rows: Token rows of the configured input (stride-8 grid height).
        grid_cols: Token columns of the configured input (stride-8 grid width).
    """

    def __init__(self, head_dim: int, base: float, grid_rows: int, grid_cols: int) -> None:
        super().__init__()
        if head_dim % 4:
            raise ValueError(f"head_dim must be a multiple of 4, got {head_dim}")
        pairs = head_dim // 2
        per_axis = pairs // 2
        # Pair j rotates with the x axis when j is even and with the y axis when j is odd.
        axis = torch.arange(pairs) % 2
        level = torch.arange(pairs) // 2
        omega = base ** (-level.double() / per_axis)
        period = 2 * math.pi / omega
        extent = torch.where(axis == 0, float(grid_cols), float(grid_rows)).double()
        keep = period <= extent
        # angle = pos @ freq, with freq[0] the x frequencies and freq[1] the y ones; dropped
        # pairs get frequency 0, i.e. the identity rotation.
        freq = torch.zeros(2, pairs, dtype=torch.float64)
        freq[0] = torch.where((axis == 0) & keep, omega, 0.0)
        freq[1] = torch.where((axis == 1) & keep, omega, 0.0)
        self.register_buffer("freq", freq.float(), persistent=False)
        self.register_buffer("keep", keep, persistent=False)
        self.register_buffer("axis", axis, persistent=False)
        # 1.0 on the channels of position-free pairs (both halves), 0.0 on rotating ones.
        free = (~keep).float()
        self.register_buffer("identity_mask", torch.cat([free, free]), persistent=False)

    @property
    def kept_pairs(self) -> int:
        """Number of rotary pairs that carry position."""
        return int(self.keep.sum())

    def tables(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Cosine and sine tables for token positions.

        Args:
            positions: [N, 2] (x, y) in stride-8 token units (fractional allowed).

        Returns:
            cos, sin: each [N, head_dim // 2].
        """
        # Always FP32, also under autocast (which would run the matmul in bf16/fp16): an FP16
        # angle of ~80 rad is off by up to 0.03 rad, a bf16 one by up to 0.07 rad.
        with torch.autocast(positions.device.type, enabled=False):
            angle = positions.float() @ self.freq.float()
            return torch.cos(angle), torch.sin(angle)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate the pairs (x[..., j], x[..., j + d/2]) of x [..., N, d] by the tabled angles."""
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    cos = cos.to(x.dtype)
    sin = sin.to(x.dtype)
    return torch.cat([a * cos - b * sin, a * sin + b * cos], dim=-1)


def grid_positions(rows: int, cols: int) -> torch.Tensor:
    """(x, y) of every cell of a rows x cols grid, row-major, as float [rows * cols, 2]."""
    ys = torch.arange(rows, dtype=torch.float32)
    xs = torch.arange(cols, dtype=torch.float32)
    y, x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1)


def pooled_positions(rows: int, cols: int, pool: int) -> torch.Tensor:
    """Centres of ``pool`` x ``pool`` average-pooling cells (ceil mode) in fine-grid units.

    A partial cell at the bottom/right edge is centred on the fine cells it actually averages,
    so relative offsets between fine queries and pooled keys stay exact.
    """

    def centres(n: int) -> torch.Tensor:
        starts = torch.arange(0, n, pool, dtype=torch.float32)
        ends = torch.clamp(starts + pool, max=float(n))
        return (starts + ends - 1.0) / 2.0

    y, x = torch.meshgrid(centres(rows), centres(cols), indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1)
