"""DepthSSD: one network for SSDLite detection and canonical metric depth with a recurrent
Titans memory, assembled from ``backbone``, ``neck`` (HoPE transformer + memory) and ``heads``.

The forward pass is tensors in, tensors out (the contract in docs/ARCHITECTURE.md): input
normalisation, anchor decoding, NMS and the focal rescaling of depth happen outside the graph.
"""

from __future__ import annotations

import torch
from torch import nn

from depthssd_core.config import ModelConfig
from depthssd_core.model.anchors import anchors_for, anchors_per_location, feature_sizes
from depthssd_core.model.backbone import Backbone
from depthssd_core.model.heads import DepthHead, DetectionHead
from depthssd_core.model.neck import Neck


class DepthSSD(nn.Module):
    """Joint detector + metric depth network.

    Args:
        cfg: Model configuration (defaults to ``conv_small``).
    """

    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg if cfg is not None else ModelConfig()
        self.backbone = Backbone(self.cfg.backbone)
        skip4, *pyramid = self.backbone.channels
        self.neck = Neck(self.cfg, pyramid)
        self.detection = DetectionHead(self.cfg, anchors_per_location(self.cfg))
        self.depth = DepthHead(self.cfg, skip4)
        if not self.cfg.memory:
            # Memory "off" still has a state of the contract's shape (the runtime feeds it back);
            # the state passes through unchanged.
            self.register_buffer("_m0_off", torch.zeros(self.cfg.memory_shape), persistent=False)

    def forward(
        self, image: torch.Tensor, mem_m: torch.Tensor, mem_s: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Run one frame.

        Args:
            image: float32 [B, 3, H, W], RGB normalised with ``cfg.mean``/``cfg.std``.
            mem_m: float32 [B, heads, d_k, d_v] memory M_in.
            mem_s: float32 [B, heads, d_k, d_v] momentum S_in.

        Returns:
            cls_logits [B, A, num_classes + 1] (index 0 background), box_regression [B, A, 4]
            (BoxCoder weights (10, 10, 5, 5) against ``anchors``), depth_c
            [B, 1, ceil(H/4), ceil(W/4)] canonical metres, mem_m_out, mem_s_out (float32).
        """
        # In an FP16 export the weights are half; IO stays float32 and is cast here.
        compute_dtype = self.depth.skip[0].weight.dtype
        feats = self.backbone(image.to(compute_dtype))
        levels, mem_m_out, mem_s_out = self.neck(feats[1:], mem_m, mem_s)
        cls_logits, box_regression = self.detection(levels)
        depth_c = self.depth(feats[0], levels[0])
        return (
            cls_logits.float(),
            box_regression.float(),
            depth_c,
            mem_m_out.float(),
            mem_s_out.float(),
        )

    def initial_state(self, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Memory state of a fresh sequence: (M_0 expanded over the batch, zeros), float32."""
        if self.neck.memory is None:
            m = self._m0_off.float().unsqueeze(0).repeat(batch, 1, 1, 1)
            return m, torch.zeros_like(m)
        return self.neck.memory.initial_state(batch)

    def anchors(self, height: int, width: int, reference_px: float | None = None
                ) -> torch.Tensor:
        """Anchors [A, 4] xyxy in input pixels, in head output order (see ``anchors_for``)."""
        return torch.from_numpy(anchors_for(self.cfg, height, width, reference_px))

    def feature_sizes(self, height: int, width: int) -> list[tuple[int, int]]:
        """(rows, cols) of each detection level for an input size."""
        return feature_sizes(self.cfg, height, width)
