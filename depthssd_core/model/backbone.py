"""MobileNetV4 feature extractor (Qin et al. 2024, "MobileNetV4: Universal Models for the Mobile
Ecosystem") built by timm, returning the stride 4/8/16/32 feature maps.

The stride-4 map only feeds the depth decoder's skip connection; detection and the neck use
strides 8/16/32. Weights are never downloaded (``pretrained=False``): the network trains here.
"""

from __future__ import annotations

import timm
import torch
from torch import nn

# timm feature indices of the stride 4, 8, 16 and 32 outputs of MobileNetV4.
_OUT_INDICES = (1, 2, 3, 4)


class Backbone(nn.Module):
    """timm MobileNetV4 trunk with ``features_only=True``.

    Args:
        name: timm model name, e.g. ``mobilenetv4_conv_small``.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.body = timm.create_model(
            name, pretrained=False, features_only=True, out_indices=_OUT_INDICES
        )
        # Channel counts come from timm's feature_info so every variant works unchanged.
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.reductions: list[int] = list(self.body.feature_info.reduction())

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Return the feature maps at strides 4, 8, 16, 32 (finest first)."""
        return self.body(image)
