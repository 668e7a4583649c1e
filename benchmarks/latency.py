"""Per-stage latency of the depthssd runtime on every available backend, against the two-model
pipeline a user would otherwise run (ultralytics YOLO26n detector + YOLO26n-depth, both ONNX).

Both pipelines go from a 640x360 bgra8 frame to per-object distances: pre-processing, network(s),
box decoding + class-wise NMS, depth, the same robust per-object distance estimator
(``depthssd_core.distance``). Weights are random (latency does not depend on their values);
to load the post-processing like a busy street, both keep the top ``--top-k`` candidates before
NMS and report up to ``--max-detections`` objects per frame.

ultralytics is only a benchmark extra (``pip install ultralytics onnxslim``); the YOLO models are
built offline from their yaml (``YOLO_OFFLINE=1``) and exported to ONNX in a temporary folder.

    python benchmarks/latency.py --runs 60 --threads 2
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from depthssd_core.backends.loading import tensorrt_usable  # noqa: E402
from depthssd_core.config import ModelConfig  # noqa: E402
from depthssd_core.distance import estimate_object_distances  # noqa: E402
from depthssd_core.geometry import CameraIntrinsics  # noqa: E402
from depthssd_core.model_info import model_info_from_module  # noqa: E402
from depthssd_core.runtime import Perceptor, PerceptorSettings  # noqa: E402

WIDTH, HEIGHT = 640, 360
#: The floors of issue 15: the joint pipeline on ONNX Runtime with 2 threads, and its speed-up
#: over YOLO26n + YOLO26n-depth measured in the same run.
MAX_JOINT_MS = 25.0
MIN_SPEEDUP = 4.0
STAGES = ("preprocess", "inference", "decode", "distance", "tracking", "total")


def make_frames(n: int) -> list[np.ndarray]:
    """Deterministic textured bgra8 frames (a road-like gradient with moving blocks)."""
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, size=(HEIGHT // 8, WIDTH // 8, 3), dtype=np.uint8)
    base = cv2.resize(base, (WIDTH, HEIGHT), interpolation=cv2.INTER_CUBIC)
    frames = []
    for k in range(n):
        img = base.copy()
        for j in range(6):
            x = (40 + 90 * j + 3 * k) % (WIDTH - 60)
            img[180 + 10 * (j % 3):240 + 10 * (j % 3), x:x + 50] = (30 * j, 200 - 20 * j, 90)
        frames.append(np.concatenate([img, np.full((HEIGHT, WIDTH, 1), 255, np.uint8)], 2))
    return frames


def median_stages(samples: list[dict[str, float]]) -> dict[str, float]:
    return {k: float(np.median([s[k] for s in samples])) for k in samples[0]}


# ------------------------------------------------------------------ two-model pipeline


def letterbox(rgb: np.ndarray, height: int, width: int) -> tuple[np.ndarray, float, int]:
    """Ultralytics-style letterbox to (height, width): keep aspect, pad rows evenly (grey)."""
    scale = min(height / rgb.shape[0], width / rgb.shape[1])
    new_w, new_h = round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)
    resized = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    top = (height - new_h) // 2
    canvas = np.full((height, width, 3), 114, np.uint8)
    canvas[top:top + new_h, :new_w] = resized
    return canvas, scale, top


class TwoModelPipeline:
    """YOLO26n detection + YOLO26n-depth on ONNX Runtime, then NMS and per-object distance."""

    def __init__(self, det_onnx: Path, depth_onnx: Path, threads: int, top_k: int,
                 max_detections: int, score_threshold: float, spinning: bool) -> None:
        import onnxruntime as ort

        def session(path: Path):
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
            # The same session options as depthssd's OnnxRuntimeBackend.
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.add_session_config_entry("session.intra_op.allow_spinning",
                                          "1" if spinning else "0")
            return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])

        self.det = session(det_onnx)
        self.depth = session(depth_onnx)
        self.in_h, self.in_w = self.det.get_inputs()[0].shape[2:]
        self.top_k, self.max_detections = top_k, max_detections
        self.score_threshold = score_threshold

    def process(self, frame_bgra: np.ndarray) -> tuple[dict[str, float], int]:
        from torchvision.ops import batched_nms

        t0 = time.perf_counter()
        rgb = np.ascontiguousarray(frame_bgra[:, :, 2::-1])
        boxed, scale, top = letterbox(rgb, self.in_h, self.in_w)
        blob = np.ascontiguousarray(boxed.transpose(2, 0, 1)[None], dtype=np.float32) / 255.0
        t1 = time.perf_counter()
        (raw,) = self.det.run(None, {self.det.get_inputs()[0].name: blob})
        t2 = time.perf_counter()
        pred = torch.from_numpy(raw[0])
        if pred.shape[-1] == 6:  # end-to-end head: (N, x1 y1 x2 y2 score class)
            boxes, scores, labels = pred[:, :4], pred[:, 4], pred[:, 5].long()
        else:  # (4 + classes, N): cx cy w h, class scores
            pred = pred.T
            cxcywh, cls = pred[:, :4], pred[:, 4:]
            scores, labels = cls.max(dim=1)
            boxes = torch.cat([cxcywh[:, :2] - cxcywh[:, 2:] / 2,
                               cxcywh[:, :2] + cxcywh[:, 2:] / 2], dim=1)
        keep = torch.nonzero(scores > self.score_threshold).squeeze(1)
        if keep.numel() > self.top_k:
            keep = keep[torch.topk(scores[keep], self.top_k).indices]
        kept = batched_nms(boxes[keep], scores[keep], labels[keep], 0.5)[:self.max_detections]
        boxes = boxes[keep][kept].numpy()
        t3 = time.perf_counter()
        (depth,) = self.depth.run(None, {self.depth.get_inputs()[0].name: blob})
        t4 = time.perf_counter()
        depth_map = depth.reshape(self.in_h, self.in_w)
        intr = CameraIntrinsics.from_fov(WIDTH, HEIGHT, 90.0)
        intr_in = CameraIntrinsics(intr.fx * scale, intr.fy * scale, intr.cx * scale,
                                   intr.cy * scale + top, self.in_w, self.in_h)
        estimate_object_distances(depth_map, boxes, intr_in)  # as the depthssd runtime does
        t5 = time.perf_counter()
        stages = {"preprocess": t1 - t0, "detector": t2 - t1, "decode": t3 - t2,
                  "depth model": t4 - t3, "distance": t5 - t4, "total": t5 - t0}
        return {k: v * 1000.0 for k, v in stages.items()}, len(boxes)


def export_yolo(workdir: Path, imgsz: tuple[int, int]) -> tuple[Path, Path, str, str]:
    """Build YOLO26n and YOLO26n-depth from yaml (offline) and export both to ONNX."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(workdir / "ultralytics_cfg"))
    import ultralytics
    from ultralytics import YOLO
    from ultralytics.cfg import TASKS

    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        det = workdir / Path(YOLO("yolo26n.yaml").export(format="onnx", imgsz=imgsz, simplify=True,
                                               batch=1, verbose=False))
        if "depth" in TASKS:
            depth_label = "YOLO26n-depth"
            depth = workdir / Path(YOLO("yolo26n-depth.yaml").export(format="onnx", imgsz=imgsz,
                                                           simplify=True, batch=1,
                                                           verbose=False))
        else:  # older ultralytics: no depth task; say so in the table
            depth_label = "no depth task in this ultralytics; YOLO26n-seg as a stand-in"
            depth = workdir / Path(YOLO("yolo26n-seg.yaml").export(format="onnx", imgsz=imgsz,
                                                         simplify=True, batch=1, verbose=False))
    finally:
        os.chdir(cwd)
    return det, depth, ultralytics.__version__, depth_label


# ------------------------------------------------------------------ main


def build_perceptors(args, workdir: Path) -> list[tuple[str, Perceptor]]:
    from depthssd_core.backends.onnxruntime_backend import OnnxRuntimeBackend
    from depthssd_core.backends.torch_backend import TorchBackend
    from depthssd_core.model import DepthSSD

    settings = PerceptorSettings(score_threshold=args.score_threshold,
                                 max_detections=args.max_detections,
                                 pre_nms_top_k=args.top_k)
    if args.checkpoint:
        from depthssd_core.checkpoint import load_model

        model = load_model(args.checkpoint)
    else:
        torch.manual_seed(0)
        cfg = dataclasses.replace(ModelConfig.named(args.config), input_height=HEIGHT,
                                  input_width=WIDTH)
        model = DepthSSD(cfg).eval()
    info = model_info_from_module(model)
    from depthssd_core import export

    onnx_path = workdir / "depthssd.onnx"
    export.export_onnx(model, onnx_path)
    ort_backend = OnnxRuntimeBackend(onnx_path, args.threads, allow_spinning=args.ort_spinning)
    out = [("onnxruntime", Perceptor(ort_backend, info,
                                     dataclasses.replace(settings)))]
    if tensorrt_usable():
        from depthssd_core.backends.tensorrt_backend import TensorRTBackend

        out.append(("tensorrt", Perceptor(TensorRTBackend(onnx_path), info,
                                          dataclasses.replace(settings))))
    if not args.skip_torch:
        torch.set_num_threads(args.threads)
        out.append(("torch", Perceptor(TorchBackend(model, device="cpu"), info,
                                       dataclasses.replace(settings))))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=60, help="timed frames (median reported)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (ORT intra-op)")
    parser.add_argument("--config", default="conv_small", help="named model configuration")
    parser.add_argument("--checkpoint", default=None, help="trained .safetensors (optional)")
    parser.add_argument("--top-k", type=int, default=1000, help="candidates entering NMS")
    parser.add_argument("--max-detections", type=int, default=20)
    parser.add_argument("--score-threshold", type=float, default=0.0,
                        help="0 keeps the top-k candidates of random weights (a busy street)")
    parser.add_argument("--ort-spinning", action="store_true",
                        help="let ONNX Runtime threads busy-wait (both pipelines)")
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--skip-two-model", action="store_true")
    parser.add_argument("--json", default=None, help="also write the numbers here")
    args = parser.parse_args(argv)

    frames = make_frames(8)
    intr = CameraIntrinsics.from_fov(WIDTH, HEIGHT, 90.0)
    rows: dict[str, dict[str, float]] = {}
    notes = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        # name -> callable(frame index) returning (stage latencies in ms, detection count)
        pipelines = {}
        slow = {}
        for name, perceptor in build_perceptors(args, workdir):
            def step(i, p=perceptor):
                result = p.process(frames[i % len(frames)], "bgra8", intr, 0.05 * i)
                return result.latency_ms, len(result.detections)

            label = f"depthssd {args.config} ({name})"
            (slow if name == "torch" else pipelines)[label] = step
        if not args.skip_two_model:
            try:
                det, depth, version, depth_label = export_yolo(workdir, (384, 640))
                notes.append(f"ultralytics {version}: YOLO26n detector + {depth_label}, ONNX "
                             f"at 384x640 (640x360 letterboxed)")
                two = TwoModelPipeline(det, depth, args.threads, args.top_k,
                                       args.max_detections, args.score_threshold,
                                       args.ort_spinning)
                pipelines["two-model YOLO26n + YOLO26n-depth (onnxruntime)"] = \
                    lambda i: two.process(frames[i % len(frames)])
            except ImportError as exc:
                notes.append(f"two-model pipeline skipped: {exc}")
        # Interleave the pipelines frame by frame so load changes on a shared machine hit all
        # of them alike; the (much slower) eager torch backend runs afterwards on its own.
        for group in (pipelines, slow):
            samples: dict[str, list[dict[str, float]]] = {n: [] for n in group}
            counts: dict[str, int] = {}
            for i in range(args.warmup + args.runs):
                for name, step in group.items():
                    stages, counts[name] = step(i)
                    if i >= args.warmup:
                        samples[name].append(stages)
            for name in group:
                rows[name] = {**median_stages(samples[name]), "detections": float(counts[name])}

    columns = ["preprocess", "inference", "detector", "depth model", "decode", "distance",
               "tracking", "total", "detections"]
    print(f"\n## Latency at {WIDTH}x{HEIGHT}, median of {args.runs} runs after {args.warmup} "
          f"warm-up, {args.threads} CPU threads ({platform.processor() or platform.machine()}, "
          f"torch {torch.__version__})\n")
    print("| pipeline | " + " | ".join(c + (" [ms]" if c != "detections" else "")
                                       for c in columns) + " |")
    print("|" + "---|" * (len(columns) + 1))
    for name, row in rows.items():
        cells = [(f"{row[c]:.0f}" if c == "detections" else f"{row[c]:.2f}") if c in row else ""
                 for c in columns]
        print(f"| {name} | " + " | ".join(cells) + " |")
    joint = rows.get(f"depthssd {args.config} (onnxruntime)")
    two = next((r for n, r in rows.items() if n.startswith("two-model")), None)
    if joint:
        print(f"\nFloor: joint ORT total {joint['total']:.1f} ms <= {MAX_JOINT_MS:g} ms: "
              f"{'met' if joint['total'] <= MAX_JOINT_MS else 'NOT met'}")
    if joint and two:
        ratio = two["total"] / joint["total"]
        print(f"Joint (ORT) vs two-model total: {ratio:.2f}x faster ({joint['total']:.1f} ms "
              f"vs {two['total']:.1f} ms); floor >= {MIN_SPEEDUP:g}x: "
              f"{'met' if ratio >= MIN_SPEEDUP else 'NOT met'}")
    for note in notes:
        print(f"- {note}")
    print(f"\nCommand: {shlex.join([sys.executable, *sys.argv])}")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "notes": notes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
