"""The DepthSSD network: backbone, HoPE transformer neck, Titans memory, SSDLite + depth heads.

``anchors_for`` and friends import without torch so torch-free backends can use them; the torch
modules (``DepthSSD`` ...) load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from depthssd_core.model.anchors import anchors_for, anchors_per_location, feature_sizes

if TYPE_CHECKING:
    from depthssd_core.config import ModelConfig
    from depthssd_core.model.network import DepthSSD

__all__ = ["DepthSSD", "anchors_for", "anchors_per_location", "build_model", "feature_sizes"]


def __getattr__(name: str) -> Any:
    # Only for names this module does not define: DepthSSD, which pulls in torch and timm.
    if name == "DepthSSD":
        from depthssd_core.model.network import DepthSSD

        return DepthSSD
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def build_model(cfg: ModelConfig | str | None = None) -> DepthSSD:
    """Build a DepthSSD from a ``ModelConfig``, a named configuration string or None (default)."""
    from depthssd_core.config import ModelConfig
    from depthssd_core.model.network import DepthSSD

    if isinstance(cfg, str):
        cfg = ModelConfig.named(cfg)
    return DepthSSD(cfg)
