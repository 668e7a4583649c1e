"""Multi-scale neck: FPN/PAN fusion (Lin et al. 2017; Liu et al. 2018) around a small
transformer over the stride-8 tokens whose attention uses 2D HoPE (see ``hope.py``) and reads a
Titans linear memory (see ``memory.py``).

Full attention over 45 x 80 = 3600 tokens is too slow for the CPU budget, so queries at stride 8
attend to keys/values average-pooled ``kv_pool`` times per axis (positioned at the pooled cells'
centres, in stride-8 units, so offsets stay exact for HoPE) plus a few learned persistent tokens.
Persistent tokens sit at relative angle 0 to every query (their keys use only the position-free
HoPE pairs), which makes every attention logit a function of (dx, dy) only.

The Titans memory is read and updated on the pooled tokens (one update per frame); its read is
added to the keys/values, so every stride-8 query sees the memory through attention at a cost
independent of the input resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import Conv2dNormActivation

from depthssd_core.config import ModelConfig
from depthssd_core.model.hope import HoPE2D, apply_rotary, grid_positions, pooled_positions
from depthssd_core.model.memory import TitansMemory


class HoPEAttention(nn.Module):
    """Multi-head attention of fine-grid queries over pooled keys and persistent tokens.

    Args:
        dim: Token width.
        heads: Attention heads.
        persistent: Number of learned persistent key/value tokens.
        hope: Shared rotary encoder.
    """

    def __init__(self, dim: int, heads: int, persistent: int, hope: HoPE2D) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = dim // heads
        self.hope = hope
        self.w_q = nn.Linear(dim, dim)
        self.w_kv = nn.Linear(dim, 2 * dim)
        self.w_out = nn.Linear(dim, dim)
        self.persistent_k = nn.Parameter(torch.randn(heads, persistent, self.head_dim) * 0.02)
        self.persistent_v = nn.Parameter(torch.randn(heads, persistent, self.head_dim) * 0.02)

    def logits(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pos: torch.Tensor,
        key_pos: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention logits and the values they weigh.

        Exposed so tests can check the positional behaviour of the logits directly.

        Args:
            queries: [B, N, dim] query tokens.
            keys: [B, M, dim] key/value tokens.
            query_pos: [N, 2] (x, y) of the queries in stride-8 units.
            key_pos: [M, 2] (x, y) of the keys in stride-8 units.

        Returns:
            logits [B, h, N, M + P] (P persistent tokens last) and values [B, h, M + P, d].
        """
        b, n, _ = queries.shape
        h, d = self.heads, self.head_dim
        q = self.w_q(queries).reshape(b, n, h, d).transpose(1, 2)
        k, v = self.w_kv(keys).reshape(b, -1, 2, h, d).permute(2, 0, 3, 1, 4)
        cos_q, sin_q = self.hope.tables(query_pos)
        cos_k, sin_k = self.hope.tables(key_pos)
        # The 1/sqrt(d) scale is folded into q before the rotation (a rotation is linear).
        q = apply_rotary(q * d**-0.5, cos_q, sin_q)
        k = apply_rotary(k, cos_k, sin_k)
        if self.persistent_k.shape[1]:
            # Persistent keys live only in the position-free (identity) pairs, so meeting a
            # rotated query they act as if at relative angle 0: their logits do not depend on
            # the query's position, and they join the rotated keys with one cheap concat.
            pk = (self.persistent_k * self.hope.identity_mask).to(k.dtype)
            pv = self.persistent_v.to(v.dtype)
            k = torch.cat([k, pk.unsqueeze(0).expand(b, -1, -1, -1)], dim=2)
            v = torch.cat([v, pv.unsqueeze(0).expand(b, -1, -1, -1)], dim=2)
        return q @ k.transpose(-1, -2), v

    def forward(
        self,
        queries: torch.Tensor,
        keys: torch.Tensor,
        query_pos: torch.Tensor,
        key_pos: torch.Tensor,
    ) -> torch.Tensor:
        """Attend: queries [B, N, dim], keys [B, M, dim] -> [B, N, dim]."""
        logits, values = self.logits(queries, keys, query_pos, key_pos)
        out = torch.softmax(logits, dim=-1) @ values
        b, n, _ = queries.shape
        return self.w_out(out.transpose(1, 2).reshape(b, n, -1))


class TransformerLayer(nn.Module):
    """Pre-norm block: HoPE attention, then (if ``neck_ffn_ratio`` > 0) an MLP, both residual."""

    def __init__(self, cfg: ModelConfig, hope: HoPE2D) -> None:
        super().__init__()
        dim = cfg.neck_dim
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = HoPEAttention(dim, cfg.neck_heads, cfg.persistent_tokens, hope)
        hidden = round(dim * cfg.neck_ffn_ratio)
        self.mlp = (
            nn.Sequential(
                nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)
            )
            if hidden
            else None
        )

    def forward(
        self,
        tokens: torch.Tensor,
        keys: torch.Tensor,
        query_pos: torch.Tensor,
        key_pos: torch.Tensor,
    ) -> torch.Tensor:
        """tokens [B, N, dim] attend to keys [B, M, dim] -> [B, N, dim]."""
        tokens = tokens + self.attn(self.norm_q(tokens), self.norm_kv(keys), query_pos, key_pos)
        if self.mlp is not None:
            tokens = tokens + self.mlp(tokens)
        return tokens


class Neck(nn.Module):
    """FPN top-down, memory read/update and transformer at stride 8, PAN bottom-up, extras.

    Args:
        cfg: Model configuration.
        in_channels: Backbone channels at strides 8, 16, 32.
    """

    def __init__(self, cfg: ModelConfig, in_channels: list[int]) -> None:
        super().__init__()
        dim = cfg.neck_dim
        self.lateral = nn.ModuleList(
            Conv2dNormActivation(c, dim, 1, activation_layer=None) for c in in_channels
        )
        self.smooth = nn.ModuleList(_separable(dim, dim) for _ in range(2))
        self.memory = (
            TitansMemory(dim, cfg.memory_heads, cfg.memory_dk, cfg.memory_dv, cfg.memory_theta_max)
            if cfg.memory
            else None
        )
        self.memory_shape = cfg.memory_shape
        self.kv_pool = cfg.kv_pool
        self.hope = HoPE2D(
            dim // cfg.neck_heads,
            cfg.hope_base,
            _ceil_div(cfg.input_height, 8),
            _ceil_div(cfg.input_width, 8),
        )
        self.layers = nn.ModuleList(
            TransformerLayer(cfg, self.hope) for _ in range(cfg.neck_layers)
        )
        self.down = nn.ModuleList(_downsample(dim) for _ in range(2 + cfg.extra_levels))
        self.fuse = nn.ModuleList(_separable(dim, dim) for _ in range(2))

    def forward(
        self, feats: list[torch.Tensor], mem_m: torch.Tensor, mem_s: torch.Tensor
    ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        """Fuse features at strides 8/16/32 and return all detection levels plus the state."""
        l8, l16, l32 = (lat(f) for lat, f in zip(self.lateral, feats, strict=True))
        p16 = self.smooth[1](l16 + _upsample(l32, l16))
        p8 = self.smooth[0](l8 + _upsample(p16, l8))

        b, dim, rows, cols = p8.shape
        query_pos = grid_positions(rows, cols).to(p8.device)
        key_pos = pooled_positions(rows, cols, self.kv_pool).to(p8.device)
        grid = p8
        tokens = p8.flatten(2).transpose(1, 2)
        read = None
        for i, layer in enumerate(self.layers):
            if i:
                grid = tokens.transpose(1, 2).reshape(b, dim, rows, cols)
            keys = self._pool(grid)
            if self.memory is not None:
                if read is None:
                    # One read and one update per frame, from the first layer's pooled tokens.
                    read, mem_m, mem_s = self.memory(keys, mem_m, mem_s)
                keys = keys + read
            tokens = layer(tokens, keys, query_pos, key_pos)
        if self.layers:
            n8 = tokens.transpose(1, 2).reshape(b, dim, rows, cols)
        else:
            n8 = p8
            if self.memory is not None:
                _, mem_m, mem_s = self.memory(self._pool(p8), mem_m, mem_s)

        # Bottom-up path: carry the attended stride-8 context into the coarser levels.
        n16 = self.fuse[0](p16 + self.down[0](n8))
        n32 = self.fuse[1](l32 + self.down[1](n16))
        levels = [n8, n16, n32]
        for down in self.down[2:]:
            levels.append(down(levels[-1]))
        return levels, mem_m, mem_s

    def _pool(self, grid: torch.Tensor) -> torch.Tensor:
        """Average-pool a [B, dim, rows, cols] grid into key tokens [B, M, dim] (ceil mode)."""
        pooled = F.avg_pool2d(
            grid, self.kv_pool, self.kv_pool, ceil_mode=True, count_include_pad=False
        )
        return pooled.flatten(2).transpose(1, 2)


def _separable(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    """Depthwise 3x3 + pointwise 1x1, each with BN and ReLU6 (the SSDLite building block)."""
    return nn.Sequential(
        Conv2dNormActivation(c_in, c_in, 3, stride=stride, groups=c_in, activation_layer=nn.ReLU6),
        Conv2dNormActivation(c_in, c_out, 1, activation_layer=nn.ReLU6),
    )


def _downsample(dim: int) -> nn.Sequential:
    """Stride-2 separable block (kernel 3, padding 1: output length ceil(n / 2))."""
    return _separable(dim, dim, stride=2)


def _upsample(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    # size= rather than scale_factor: 360-row inputs give 45/23/12 rows, not exact halves.
    return F.interpolate(x, size=like.shape[-2:], mode="nearest")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)
