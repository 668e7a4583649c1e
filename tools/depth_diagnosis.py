"""Where a model's depth error comes from: global scale, camera height, edges or range.

Run::

    .venv/bin/python tools/depth_diagnosis.py --model MODEL --data runs/data/val640 \\
        [--world-seed 7000] [--max-frames 10]

Every frame of the split goes through the runtime the node uses (``Perceptor``, memory on) and
its depth is compared with the truth on 1-80 m (the evaluation's range). Printed, per split:

- AbsRel as evaluated, and after scaling each image by its median ratio truth / prediction
  (what is left when the global scale is right): a large drop means the error is scale;
- the per-image log scale error against the sequence's camera height and pitch (drawn per
  sequence by the synthetic world, read back with ``SyntheticWorld.sequence_params``): a
  strong correlation means the network cannot tell the height of the camera, which fixes the
  scale of the whole road;
- AbsRel on pixels within 2 px of a depth edge (truth changes by > 10 % to a neighbour) and
  elsewhere: the quarter-resolution head blurs edges;
- AbsRel by true distance (0-10, 10-20, 20-40, 40-80 m).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too
from depthssd_core.runtime import Perceptor, PerceptorSettings
from depthssd_train.dataset.format import (
    group_by_sequence,
    list_splits,
    load_depth_format,
    load_index,
    read_depth_png,
    read_rgb_png,
)

_SYNTH_SEQUENCE = re.compile(r"^[A-Za-z_]*?(\d{4,})_\d{4}$")
RANGES_M = ((1.0, 10.0), (10.0, 20.0), (20.0, 40.0), (40.0, 80.0))


def edge_mask(gt: np.ndarray, rel_jump: float = 0.1, width_px: int = 2) -> np.ndarray:
    """Pixels within ``width_px`` of a neighbour pair whose true depth differs by > rel_jump."""
    g = np.where(np.isfinite(gt) & (gt > 0), gt, 1e6).astype(np.float32)
    jump = np.zeros(g.shape, bool)
    dx = np.abs(np.log(g[:, 1:]) - np.log(g[:, :-1])) > np.log1p(rel_jump)
    dy = np.abs(np.log(g[1:]) - np.log(g[:-1])) > np.log1p(rel_jump)
    jump[:, 1:] |= dx
    jump[:, :-1] |= dx
    jump[1:] |= dy
    jump[:-1] |= dy
    kernel = np.ones((2 * width_px + 1, 2 * width_px + 1), np.uint8)
    return cv2.dilate(jump.astype(np.uint8), kernel).astype(bool)


def diagnose(model: Path, data: Path, split: str | None, world_seed: int | None,
             max_frames: int | None, threads: int) -> dict:
    """Run the model over the split and return the error breakdown."""
    split = split or list_splits(data)[0]
    perceptor = Perceptor.from_model(model, backend="onnxruntime",
                                     settings=PerceptorSettings(score_threshold=0.3),
                                     num_threads=threads)
    mpu = load_depth_format(data)
    world = None
    per_image = []
    err_edge, err_flat = [], []
    by_range: dict[str, list[float]] = {f"{a:g}-{b:g} m": [] for a, b in RANGES_M}
    for name, recs in group_by_sequence(load_index(data, split)).items():
        perceptor.reset()
        params = None
        match = _SYNTH_SEQUENCE.match(name)
        seed = world_seed if world_seed is not None else (int(match.group(1)) if match
                                                          else None)
        if seed is not None:
            from depthssd_sim import SyntheticWorld

            if world is None or world.config.seed != seed:
                world = SyntheticWorld(seed=seed)
            params = world.sequence_params(name)
        for rec in recs[:max_frames] if max_frames else recs:
            result = perceptor.process(read_rgb_png(rec.image_path), "rgb8", rec.intrinsics,
                                       rec.timestamp_s)
            gt = read_depth_png(rec.depth_path, mpu)
            pred = result.depth_m
            mask = np.isfinite(gt) & (gt >= 1.0) & (gt <= 80.0) & np.isfinite(pred)
            if not mask.any():
                continue
            p = np.clip(pred[mask], 1e-3, 80.0)
            g = gt[mask]
            rel = np.abs(p - g) / g
            scale = float(np.median(g / p))
            rel_scaled = np.abs(np.clip(p * scale, 1e-3, 80.0) - g) / g
            edges = edge_mask(gt)[mask]
            err_edge.append(rel[edges])
            err_flat.append(rel[~edges])
            for (lo, hi), key in zip(RANGES_M, by_range, strict=True):
                sel = (g >= lo) & (g < hi)
                if sel.any():
                    by_range[key].append(float(rel[sel].mean()))
            per_image.append({
                "sequence": name, "abs_rel": float(rel.mean()),
                "abs_rel_median_scaled": float(rel_scaled.mean()),
                "log_scale_error": float(np.log(1.0 / scale)),
                "edge_share": float(edges.mean()),
                "camera_height_m": params.camera_height_m if params else None,
                "camera_pitch_deg": float(np.degrees(params.camera_pitch_rad)) if params
                else None})
    edge = np.concatenate(err_edge)
    flat = np.concatenate(err_flat)
    out = {
        "model": str(model), "data": str(data), "frames": len(per_image),
        "abs_rel": float(np.mean([r["abs_rel"] for r in per_image])),
        "abs_rel_median_scaled": float(np.mean([r["abs_rel_median_scaled"]
                                                for r in per_image])),
        "log_scale_error_rms": float(np.sqrt(np.mean([r["log_scale_error"] ** 2
                                                      for r in per_image]))),
        "abs_rel_edge_pixels": float(edge.mean()), "abs_rel_other_pixels": float(flat.mean()),
        "edge_pixel_share": float(edge.size / (edge.size + flat.size)),
        "abs_rel_by_range": {k: float(np.mean(v)) if v else None for k, v in by_range.items()},
    }
    with_params = [r for r in per_image if r["camera_height_m"] is not None]
    if len({r["camera_height_m"] for r in with_params}) > 1:
        log_err = np.array([r["log_scale_error"] for r in with_params])
        height = np.array([r["camera_height_m"] for r in with_params])
        pitch = np.array([r["camera_pitch_deg"] for r in with_params])
        out["corr_log_scale_error_vs_camera_height"] = float(np.corrcoef(log_err, height)[0, 1])
        out["corr_log_scale_error_vs_camera_pitch"] = float(np.corrcoef(log_err, pitch)[0, 1])
        out["per_sequence"] = {
            name: {"camera_height_m": next(r["camera_height_m"] for r in with_params
                                           if r["sequence"] == name),
                   "mean_log_scale_error": float(np.mean([r["log_scale_error"]
                                                          for r in with_params
                                                          if r["sequence"] == name])),
                   "abs_rel": float(np.mean([r["abs_rel"] for r in with_params
                                             if r["sequence"] == name]))}
            for name in dict.fromkeys(r["sequence"] for r in with_params)}
    return out


def main(argv: list[str] | None = None) -> int:
    """Print the breakdown as JSON (and write it with ``--out``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--split")
    parser.add_argument("--world-seed", type=int, help="default: read from the sequence ids")
    parser.add_argument("--max-frames", type=int, help="frames per sequence")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    result = diagnose(args.model, args.data, args.split, args.world_seed, args.max_frames,
                      args.threads)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
