"""Model configuration: one dataclass holding every setting that shapes the DepthSSD network.

A checkpoint stores ``ModelConfig.to_dict()`` so that a model can be rebuilt from the file alone,
and the ONNX sidecar repeats the values the runtime needs (mean/std, canonical focal, anchors).
Named configurations (``NAMED_CONFIGS``) are the starting points; a YAML file or a CLI may
override single fields with ``dataclasses.replace``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from depthssd_core.classes import NUM_CLASSES

# JSON has no tuples: these fields come back from a dict as lists and are turned into tuples.
_TUPLE_FIELDS = ("anchor_aspect_ratios", "mean", "std")

ANCHOR_SPACINGS = ("linear", "geometric")
ANCHOR_CENTRES = ("spread", "stride")
BACKBONES = ("mobilenetv4_conv_small", "mobilenetv4_conv_medium", "mobilenetv4_hybrid_medium")
#: True metric depth (metres) that carries depth supervision in training (the loss's default
#: ``depth_min_m``/``depth_max_m``). The runtime publishes NaN outside it by default: the head
#: can output up to ``ModelConfig.max_depth_m``, but nothing taught it what lies beyond 120 m.
SUPERVISED_DEPTH_RANGE_M: tuple[float, float] = (0.5, 120.0)


@dataclass(frozen=True)
class ModelConfig:
    """Settings of the joint detection + metric depth network.

    Attributes:
        name: Label of the configuration (informational, stored in checkpoints).
        backbone: timm MobileNetV4 variant; built with ``pretrained=False``.
        num_classes: Object classes without background (the network predicts ``num_classes + 1``).
        neck_dim: Channels of every fused pyramid level and of the transformer tokens.
        neck_heads: Attention heads of the neck transformer.
        neck_layers: Transformer layers over the stride-8 tokens.
        neck_ffn_ratio: Hidden width of the transformer MLP relative to ``neck_dim`` (0: no MLP;
            the separable convolutions of the PAN after the transformer act per pixel anyway,
            and a stride-8 MLP costs about a fifth of the backbone's CPU time).
        kv_pool: Keys/values are the stride-8 tokens average-pooled by this factor (per axis);
            6 gives 8 x 14 keys at 640x360 and saves ~10% of the total CPU time against 4.
        persistent_tokens: Learned key/value tokens every query can attend to (relative angle 0).
        hope_base: Rotary base of the 2D HoPE encoding (small base -> more pairs kept).
        memory: Whether the Titans linear memory is read and updated.
        memory_heads: Heads of the linear memory.
        memory_dk: Key dimension per memory head.
        memory_dv: Value dimension per memory head.
        memory_theta_max: Upper bound of the per-token learning rate theta_i.
        extra_levels: Detection levels added after stride 32 (each halves the resolution).
        anchor_aspect_ratios: Extra aspect ratios per detection level (SSD style, each adds two).
        anchor_min_ratio: Smallest anchor scale, relative to min(height, width) of the input.
        anchor_max_ratio: Largest anchor scale, relative to min(height, width) of the input.
        anchor_spacing: How the level scales run from min to max: ``linear`` (SSD, torchvision)
            or ``geometric`` (a constant factor per level, which keeps small objects from
            falling between the two finest levels).
        anchor_clip: Clip anchor width/height to the image size (torchvision's ``clip``).
        anchor_centres: Where a level's anchor centres sit: ``spread`` spreads the cells evenly
            over the input (torchvision; the spacing is ``size / cells``, e.g. 15.65 px for 23
            rows of a 360-px input at stride 16) or ``stride`` puts cell j at
            ``(j + 0.5) * stride``, where its receptive field is whatever the input size. Only
            ``stride`` gives a crop the anchors the full input has at the same place, which
            native-scale crop training needs.
        depth_dim: Channels of the stride-4 depth decoder.
        canonical_focal_px: Focal length of the canonical camera the depth head predicts for.
        min_depth_m: Smallest canonical depth ``depth_c`` the head can output (metres).
        max_depth_m: Largest canonical depth ``depth_c`` the head can output (metres).
        mean: RGB mean (0..1 scale) subtracted before the graph.
        std: RGB standard deviation (0..1 scale) divided before the graph.
        input_height: Default network input height (pixels); also fixes which HoPE pairs rotate.
        input_width: Default network input width (pixels).
    """

    name: str = "conv_small"
    backbone: str = "mobilenetv4_conv_small"
    num_classes: int = NUM_CLASSES
    neck_dim: int = 64
    neck_heads: int = 2
    neck_layers: int = 1
    neck_ffn_ratio: float = 0.0
    kv_pool: int = 6
    persistent_tokens: int = 8
    hope_base: float = 100.0
    memory: bool = True
    memory_heads: int = 2
    memory_dk: int = 32
    memory_dv: int = 32
    memory_theta_max: float = 1.0
    extra_levels: int = 2
    anchor_aspect_ratios: tuple[int, ...] = (2, 3)
    anchor_min_ratio: float = 0.08
    anchor_max_ratio: float = 0.95
    anchor_spacing: str = "linear"
    anchor_clip: bool = True
    anchor_centres: str = "spread"
    depth_dim: int = 32
    canonical_focal_px: float = 1000.0
    min_depth_m: float = 0.5
    max_depth_m: float = 1000.0
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    input_height: int = 360
    input_width: int = 640

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_detection_levels(self) -> int:
        """Detection feature maps: strides 8, 16, 32 and ``extra_levels`` more."""
        return 3 + self.extra_levels

    @property
    def detection_strides(self) -> tuple[int, ...]:
        """Nominal stride of every detection level, finest first."""
        return tuple(8 * 2**i for i in range(self.num_detection_levels))

    @property
    def memory_shape(self) -> tuple[int, int, int]:
        """Per-sample shape of the memory state tensors ``(heads, d_k, d_v)``."""
        return (self.memory_heads, self.memory_dk, self.memory_dv)

    def validate(self) -> None:
        """Check value ranges.

        Raises:
            ValueError: naming the first bad field.
        """
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone: {self.backbone!r} is not one of {BACKBONES}")
        positive_ints = [
            "num_classes",
            "neck_dim",
            "neck_heads",
            "kv_pool",
            "memory_heads",
            "memory_dk",
            "memory_dv",
            "depth_dim",
            "input_height",
            "input_width",
        ]
        for name in positive_ints:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}: must be a positive integer, got {value!r}")
        if self.neck_dim % self.neck_heads:
            raise ValueError(f"neck_dim: {self.neck_dim} is not divisible by neck_heads")
        if (self.neck_dim // self.neck_heads) % 4:
            raise ValueError("neck_dim: per-head width must be a multiple of 4 for 2D HoPE")
        if min(self.persistent_tokens, self.extra_levels, self.neck_layers) < 0:
            raise ValueError("persistent_tokens/extra_levels/neck_layers: must be >= 0")
        if not 0 <= self.neck_ffn_ratio < 16:
            raise ValueError(f"neck_ffn_ratio: must be in [0, 16), got {self.neck_ffn_ratio!r}")
        for name in ("hope_base", "memory_theta_max", "canonical_focal_px"):
            value = getattr(self, name)
            if not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name}: must be a positive finite number, got {value!r}")
        if not 0 < self.anchor_min_ratio < self.anchor_max_ratio <= 1.0:
            raise ValueError("anchor_min_ratio/anchor_max_ratio: need 0 < min < max <= 1")
        if self.anchor_spacing not in ANCHOR_SPACINGS:
            raise ValueError(f"anchor_spacing: must be one of {', '.join(ANCHOR_SPACINGS)}, "
                             f"got {self.anchor_spacing!r}")
        if self.anchor_centres not in ANCHOR_CENTRES:
            raise ValueError(f"anchor_centres: must be one of {', '.join(ANCHOR_CENTRES)}, "
                             f"got {self.anchor_centres!r}")
        if any(int(r) != r or r < 1 for r in self.anchor_aspect_ratios):
            raise ValueError(
                f"anchor_aspect_ratios: need integers >= 1, got {self.anchor_aspect_ratios}"
            )
        if not 0 < self.min_depth_m < self.max_depth_m or not math.isfinite(self.max_depth_m):
            raise ValueError("min_depth_m/max_depth_m: need 0 < min < max < inf")
        for name in ("mean", "std"):
            value = getattr(self, name)
            if len(value) != 3:
                raise ValueError(f"{name}: needs 3 values (RGB), got {value!r}")
        if any(s <= 0 for s in self.std):
            raise ValueError(f"std: values must be > 0, got {self.std!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible dict of every field (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Build a config from ``to_dict()`` output; missing keys take their defaults.

        Raises:
            ValueError: for an unknown key (named) or a bad value.
        """
        if not isinstance(data, dict):
            raise ValueError(f"model config must be a dict, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown model config key(s): {', '.join(unknown)}")
        values = dict(data)
        for name in _TUPLE_FIELDS:
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)

    @classmethod
    def named(cls, name: str) -> ModelConfig:
        """Return one of ``NAMED_CONFIGS`` by name.

        Raises:
            ValueError: naming the unknown configuration.
        """
        if name not in NAMED_CONFIGS:
            raise ValueError(f"unknown model config {name!r}; known: {sorted(NAMED_CONFIGS)}")
        return NAMED_CONFIGS[name]


# conv_small is sized for the CPU budget (about 2x the backbone's ONNX Runtime time); the medium
# variants target a GPU and afford a wider, deeper neck.
# The neck and depth decoder shared by the medium backbones.
_MEDIUM_NECK: dict[str, Any] = {
    "neck_dim": 96, "neck_layers": 2, "neck_ffn_ratio": 2.0, "kv_pool": 4, "depth_dim": 48}

NAMED_CONFIGS: dict[str, ModelConfig] = {
    "conv_small": ModelConfig(),
    "conv_medium": ModelConfig(
        name="conv_medium", backbone="mobilenetv4_conv_medium", **_MEDIUM_NECK),
    "hybrid_medium": ModelConfig(
        name="hybrid_medium", backbone="mobilenetv4_hybrid_medium", **_MEDIUM_NECK),
}
