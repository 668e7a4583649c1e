"""ONNX export of DepthSSD with a JSON sidecar describing how to feed and decode it.

The graph is tensors in, tensors out: inputs ``image`` (float32 [1, 3, H, W], RGB normalised
with the sidecar's mean/std), ``mem_m``, ``mem_s`` (float32 memory state); outputs
``cls_logits``, ``box_regression``, ``depth_c``, ``mem_m_out``, ``mem_s_out`` (all float32).
The FP16 variant computes in half precision except for the Titans memory arithmetic, the HoPE
angle tables and the depth decoding, which stay FP32 (explicit casts in the graph), so the graph
is ready for a strongly typed TensorRT build; its IO stays float32.
"""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path
from typing import Any

import torch

from depthssd_core.classes import CLASSES
from depthssd_core.hashing import file_sha256
from depthssd_core.model.anchors import (
    anchor_scales,
    anchors_for,
    anchors_per_location,
    feature_sizes,
)

INPUT_NAMES = ("image", "mem_m", "mem_s")
OUTPUT_NAMES = ("cls_logits", "box_regression", "depth_c", "mem_m_out", "mem_s_out")
BOX_CODER_WEIGHTS = (10.0, 10.0, 5.0, 5.0)
SIDECAR_FORMAT = "depthssd-onnx/1"


def sidecar_path(onnx_path: str | Path) -> Path:
    """Path of the JSON sidecar of an ONNX file: ``<onnx_path>.json``."""
    onnx_path = Path(onnx_path)
    return onnx_path.with_name(onnx_path.name + ".json")


def half_precision_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` in FP16 whose FP32 islands (memory, HoPE tables) stay float32.

    The depth decoding casts its logits to float32 itself, and ``DepthSSD.forward`` casts the
    image in and the outputs out, so the result takes and returns float32 tensors.
    """
    half = copy.deepcopy(model).half()
    if half.neck.memory is not None:
        half.neck.memory.float()
    half.neck.hope.float()
    return half


def export_onnx(
    model: torch.nn.Module,
    path: str | Path,
    height: int | None = None,
    width: int | None = None,
    fp16: bool = False,
    opset: int = 17,
) -> Path:
    """Export a DepthSSD to ONNX (fixed input size, batch 1) and write its sidecar.

    Args:
        model: The network (left unchanged; a CPU copy in eval mode is exported).
        path: Output ``.onnx`` file; the sidecar goes to ``<path>.json``.
        height: Input height in pixels (default ``cfg.input_height``).
        width: Input width in pixels (default ``cfg.input_width``).
        fp16: Compute in FP16 with the FP32 islands described in the module docstring.
        opset: ONNX opset (17 is what TensorRT 10 and ONNX Runtime here handle well).

    Returns:
        The ONNX path.

    Raises:
        ValueError: for a non-positive input size.
    """
    import onnx

    cfg = model.cfg
    height = cfg.input_height if height is None else int(height)
    width = cfg.input_width if width is None else int(width)
    if height < 32 or width < 32:
        raise ValueError(f"input size must be at least 32x32 pixels, got {height}x{width}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    net = copy.deepcopy(model).cpu().float().eval()
    if fp16:
        net = half_precision_copy(net)
    image = torch.zeros(1, 3, height, width)
    mem_m, mem_s = (t.detach() for t in net.initial_state(1))
    with torch.no_grad(), warnings.catch_warnings():
        # Shapes are fixed at export; the tracer's notes about Python ints are expected.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # dynamo=False is deliberate
        torch.onnx.export(
            net,
            (image, mem_m, mem_s),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            do_constant_folding=True,
        )
        outputs = net(image, mem_m, mem_s)
    onnx.checker.check_model(str(path))

    sidecar = build_sidecar(model, path, height, width, fp16, opset, outputs)
    sidecar_path(path).write_text(json.dumps(sidecar, indent=2) + "\n")
    return path


def build_sidecar(
    model: torch.nn.Module,
    onnx_path: Path,
    height: int,
    width: int,
    fp16: bool,
    opset: int,
    outputs: tuple[torch.Tensor, ...],
) -> dict[str, Any]:
    """Everything a backend needs besides the graph: preprocessing, anchors, decoding, versions."""
    import onnx

    from depthssd_core import __version__

    cfg = model.cfg
    with torch.no_grad():
        initial_m, initial_s = (t.detach().float().cpu().numpy() for t in model.initial_state(1))
    return {
        "format": SIDECAR_FORMAT,
        "classes": list(CLASSES),
        "background_index": 0,
        "input": {
            "name": "image",
            "height": height,
            "width": width,
            "layout": "NCHW",
            "color": "RGB",
            "dtype": "float32",
            "normalisation": "(pixel / 255 - mean) / std",
            "mean": list(cfg.mean),
            "std": list(cfg.std),
        },
        "precision": "fp16" if fp16 else "fp32",
        "fp32_islands": ["titans_memory", "hope_angles", "depth_decoding"] if fp16 else [],
        "io_dtype": "float32",
        "outputs": {name: list(t.shape) for name, t in zip(OUTPUT_NAMES, outputs, strict=True)},
        "canonical_focal_px": cfg.canonical_focal_px,
        "min_depth_m": cfg.min_depth_m,
        "max_depth_m": cfg.max_depth_m,
        "depth_stride": 4,
        "memory": {
            "enabled": cfg.memory,
            "shape": [1, *cfg.memory_shape],
            "dtype": "float32",
            # M_0 is a learned weight: an ONNX-only backend needs its values to start a sequence.
            "initial_mem_m": initial_m.tolist(),
            "initial_mem_s": initial_s.tolist(),
        },
        "anchors": {
            "num_anchors": int(anchors_for(cfg, height, width).shape[0]),
            "feature_sizes": [list(s) for s in feature_sizes(cfg, height, width)],
            "strides": list(cfg.detection_strides),
            "anchors_per_location": anchors_per_location(cfg),
            "aspect_ratios": list(cfg.anchor_aspect_ratios),
            "min_ratio": cfg.anchor_min_ratio,
            "max_ratio": cfg.anchor_max_ratio,
            "spacing": cfg.anchor_spacing,
            "scales": anchor_scales(cfg),
            "clip": cfg.anchor_clip,
            "centres": cfg.anchor_centres,
            "scale_reference": "min(height, width)",
            "format": "xyxy pixels",
            "box_coder_weights": list(BOX_CODER_WEIGHTS),
        },
        "model_config": cfg.to_dict(),
        "versions": {
            "depthssd": __version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "opset": opset,
        },
        "onnx_sha256": file_sha256(onnx_path),
    }


def read_sidecar(onnx_path: str | Path, verify_hash: bool = True) -> dict[str, Any]:
    """Load the sidecar of an ONNX file, optionally checking the recorded SHA-256.

    Raises:
        ValueError: naming the file when the sidecar is missing, unreadable or out of date.
    """
    side = sidecar_path(onnx_path)
    if not side.is_file():
        raise ValueError(f"ONNX sidecar not found: {side}")
    try:
        data = json.loads(side.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"ONNX sidecar {side} is not valid JSON: {exc}") from exc
    if data.get("format") != SIDECAR_FORMAT:
        raise ValueError(f"ONNX sidecar {side}: unknown format {data.get('format')!r}")
    if verify_hash and data.get("onnx_sha256") != file_sha256(onnx_path):
        raise ValueError(f"ONNX sidecar {side} does not match {onnx_path} (sha256 differs)")
    return data


def measure_ort_latency(
    onnx_path: str | Path, threads: int = 2, runs: int = 50, warmup: int = 5, seed: int = 0
) -> dict[str, float]:
    """Time the exported graph alone with ONNX Runtime on the CPU.

    Args:
        onnx_path: Exported model (random inputs of its declared shapes are fed).
        threads: ``intra_op_num_threads``.
        runs: Timed runs after ``warmup`` untimed ones.
        warmup: Untimed runs.
        seed: Seed of the random inputs.

    Returns:
        ``median_ms``, ``p90_ms``, ``min_ms`` and ``runs``.
    """
    import time

    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(seed)
    feed = {
        i.name: rng.standard_normal(i.shape).astype(np.float32) * 0.1 for i in session.get_inputs()
    }
    for _ in range(warmup):
        session.run(None, feed)
    times_ms = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times_ms.append((time.perf_counter() - start) * 1e3)
    return {
        "median_ms": float(np.median(times_ms)),
        "p90_ms": float(np.percentile(times_ms, 90)),
        "min_ms": float(np.min(times_ms)),
        "runs": float(runs),
    }
