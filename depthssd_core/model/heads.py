"""Prediction heads: SSDLite detection (Sandler et al. 2018, "MobileNetV2"; torchvision's
``SSDLiteClassificationHead``/``SSDLiteRegressionHead``) and a metric depth decoder in a
canonical camera (Yin et al. 2023, "Metric3D").

The depth head predicts inverse canonical depth through a sigmoid scaled into
``[1 / max_depth_m, 1 / min_depth_m]`` and returns ``depth_c = 1 / inverse`` in FP32 (the
decoding is cast to float32 even inside an FP16 model, so far depths keep their precision).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection.ssdlite import (
    SSDLiteClassificationHead,
    SSDLiteRegressionHead,
)
from torchvision.ops import Conv2dNormActivation

from depthssd_core.config import ModelConfig

# Initial canonical depth of the untrained depth head: a plausible mid-range street distance.
_INITIAL_DEPTH_M = 20.0


class DetectionHead(nn.Module):
    """SSDLite classification and box regression over all detection levels.

    Args:
        cfg: Model configuration.
        anchors_per_location: Boxes per feature-map cell.
    """

    def __init__(self, cfg: ModelConfig, anchors_per_location: int) -> None:
        super().__init__()
        norm = functools.partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
        channels = [cfg.neck_dim] * cfg.num_detection_levels
        anchors = [anchors_per_location] * cfg.num_detection_levels
        self.classification = SSDLiteClassificationHead(
            channels, anchors, cfg.num_classes + 1, norm
        )
        self.regression = SSDLiteRegressionHead(channels, anchors, norm)

    def forward(self, levels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Return cls_logits [B, A, classes + 1] and box_regression [B, A, 4]."""
        return self.classification(levels), self.regression(levels)


class DepthHead(nn.Module):
    """Stride-4 decoder: backbone stride-4 skip + upsampled neck stride-8 features.

    Args:
        cfg: Model configuration.
        skip_channels: Backbone channels at stride 4.
    """

    def __init__(self, cfg: ModelConfig, skip_channels: int) -> None:
        super().__init__()
        dim = cfg.depth_dim
        self.skip = Conv2dNormActivation(skip_channels, dim, 1, activation_layer=nn.ReLU6)
        self.context = Conv2dNormActivation(cfg.neck_dim, dim, 1, activation_layer=None)
        self.refine = nn.Sequential(
            Conv2dNormActivation(dim, dim, 3, groups=dim, activation_layer=nn.ReLU6),
            Conv2dNormActivation(dim, dim, 1, activation_layer=nn.ReLU6),
            Conv2dNormActivation(dim, dim, 3, groups=dim, activation_layer=nn.ReLU6),
            Conv2dNormActivation(dim, dim, 1, activation_layer=nn.ReLU6),
        )
        self.predict = nn.Conv2d(dim, 1, 1)
        self.inv_min = 1.0 / cfg.max_depth_m
        self.inv_max = 1.0 / cfg.min_depth_m
        start = (1.0 / _INITIAL_DEPTH_M - self.inv_min) / (self.inv_max - self.inv_min)
        nn.init.normal_(self.predict.weight, std=0.01)
        nn.init.constant_(self.predict.bias, float(torch.logit(torch.tensor(start))))

    def forward(self, skip4: torch.Tensor, neck8: torch.Tensor) -> torch.Tensor:
        """Return depth_c [B, 1, rows4, cols4] float32 canonical metres."""
        x = self.skip(skip4)
        ctx = F.interpolate(self.context(neck8), size=x.shape[-2:], mode="bilinear")
        logit = self.predict(self.refine(x + ctx))
        return self.decode(logit)

    def decode(self, logit: torch.Tensor) -> torch.Tensor:
        """Map head logits to canonical depth in FP32 (sigmoid in inverse depth, then 1/x)."""
        inverse = self.inv_min + torch.sigmoid(logit.float()) * (self.inv_max - self.inv_min)
        return 1.0 / inverse
