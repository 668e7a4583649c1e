"""The exported graph's contract: the one place export, backends, engine builder, losses and
post-processing take it from.

- IO: the graph takes :data:`INPUT_NAMES` and returns :data:`OUTPUT_NAMES`, in that order.
- Box coding: ``box_regression`` holds torchvision ``BoxCoder`` offsets with
  :data:`BOX_CODER_WEIGHTS` against the model's anchors; :func:`box_coder` is the coder that
  training encodes targets with and the post-processing decodes with.
- Anchors: the sidecar's ``anchors`` section (:func:`anchors_section`) records the anchor
  settings of the model config (:data:`ANCHOR_CONFIG_KEYS`) and the coder weights;
  :func:`check_anchors_section` refuses a sidecar that disagrees with its own model config or
  with this module's coder.
- Sidecars: every model file depthssd writes (an ONNX graph, a TensorRT engine) has a JSON
  sidecar at ``<file>.json`` (:func:`sidecar_path`), read by :func:`read_sidecar` with one
  contract: ``FileNotFoundError`` when it is missing, ``ValueError`` naming the file when it is
  unreadable, of another format or (:func:`read_onnx_sidecar`) written for another graph.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from depthssd_core.config import ModelConfig
from depthssd_core.hashing import file_sha256
from depthssd_core.model.anchors import (
    anchor_scales,
    anchors_for,
    anchors_per_location,
    feature_sizes,
)

if TYPE_CHECKING:
    from torchvision.models.detection._utils import BoxCoder

#: Graph input names, in order.
INPUT_NAMES: tuple[str, ...] = ("image", "mem_m", "mem_s")
#: Graph output names, in order.
OUTPUT_NAMES: tuple[str, ...] = ("cls_logits", "box_regression", "depth_c", "mem_m_out",
                                 "mem_s_out")
#: torchvision's SSD box-coder weights (wx, wy, ww, wh).
BOX_CODER_WEIGHTS: tuple[float, float, float, float] = (10.0, 10.0, 5.0, 5.0)
#: Sidecar ``anchors`` key -> the ``ModelConfig`` field it records.
ANCHOR_CONFIG_KEYS: dict[str, str] = {
    "strides": "detection_strides",
    "aspect_ratios": "anchor_aspect_ratios",
    "min_ratio": "anchor_min_ratio",
    "max_ratio": "anchor_max_ratio",
    "spacing": "anchor_spacing",
    "clip": "anchor_clip",
    "centres": "anchor_centres",
}
#: ``format`` of an ONNX model sidecar.
ONNX_SIDECAR_FORMAT = "depthssd-onnx/1"


def box_coder() -> BoxCoder:
    """torchvision's ``BoxCoder`` with :data:`BOX_CODER_WEIGHTS` (and its default log-size
    clip, ``log(1000 / 16)``, which keeps ``exp`` of a wild code finite)."""
    from torchvision.models.detection._utils import BoxCoder

    return BoxCoder(weights=BOX_CODER_WEIGHTS)


def anchors_section(cfg: ModelConfig, height: int, width: int) -> dict[str, Any]:
    """The sidecar's ``anchors`` section for a ``height`` x ``width`` input."""
    section: dict[str, Any] = {
        "num_anchors": int(anchors_for(cfg, height, width).shape[0]),
        "feature_sizes": [list(s) for s in feature_sizes(cfg, height, width)],
        "anchors_per_location": anchors_per_location(cfg),
        "scales": anchor_scales(cfg),
        "scale_reference": "min(height, width)",
        "format": "xyxy pixels",
        "box_coder_weights": list(BOX_CODER_WEIGHTS),
    }
    for key, field in ANCHOR_CONFIG_KEYS.items():
        value = getattr(cfg, field)
        section[key] = list(value) if isinstance(value, tuple) else value
    return section


def check_anchors_section(section: dict[str, Any], cfg: ModelConfig, height: int, width: int,
                          where: Path) -> None:
    """Raise ``ValueError`` (naming ``where``) if a sidecar's anchors disagree with ``cfg``.

    The runtime rebuilds the anchors from the sidecar's model config and decodes with
    :func:`box_coder`; a sidecar that states other anchors or another coder would make it
    decode every box wrongly without a word.
    """
    want = anchors_section(cfg, height, width)
    keys = ("num_anchors", "box_coder_weights", *ANCHOR_CONFIG_KEYS)
    wrong = [f"{k}: sidecar {section.get(k)!r} vs {want[k]!r}" for k in keys
             if k in section and section[k] != want[k]]
    if wrong:
        raise ValueError(f"ONNX sidecar {where}: anchors disagree with its model_config or "
                         f"this depthssd's box coder ({'; '.join(wrong)})")


def sidecar_path(path: str | Path) -> Path:
    """The JSON sidecar of a model file (ONNX graph or TensorRT engine): ``<path>.json``."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def read_sidecar(path: str | Path, expected_format: str | int) -> dict[str, Any]:
    """The JSON sidecar of ``path``.

    Raises:
        FileNotFoundError: there is no sidecar (named).
        ValueError: it is not JSON or not of ``expected_format`` (named).
    """
    side = sidecar_path(path)
    try:
        text = side.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"sidecar not found: {side} (written next to "
                                f"{Path(path).name} when it was made)") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"sidecar {side} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != expected_format:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"sidecar {side}: unknown format {found!r} (expected "
                         f"{expected_format!r})")
    return data


def read_onnx_sidecar(onnx_path: str | Path, verify_hash: bool = True) -> dict[str, Any]:
    """The sidecar of an exported ONNX graph, optionally checked against the graph's sha256.

    Raises:
        FileNotFoundError: no sidecar. ValueError: unreadable, unknown format, or written for
            another graph (sha256 differs); each names the file.
    """
    data = read_sidecar(onnx_path, ONNX_SIDECAR_FORMAT)
    if verify_hash and data.get("onnx_sha256") != file_sha256(onnx_path):
        raise ValueError(f"ONNX sidecar {sidecar_path(onnx_path)} does not match {onnx_path} "
                         "(sha256 differs)")
    return data
