"""``depthssd-eval``: evaluate a model through the runtime on a dataset split.

Usage::

    depthssd-eval --model models/depthssd_conv_small.safetensors --data DATASET \\
        [--split test] [--backend torch|onnxruntime|auto] [--score-threshold S] --out runs/eval

Writes ``OUT/metrics.json`` (detection AP, depth, per-object distance, matched share, jitter,
memory ablation, floors) and PNG plots; prints the headline numbers and every floor. AP uses
detections down to ``--ap-score-threshold``; distances, jitter and the matched share are those
of the node at its operating point ``--score-threshold`` (default: the node's default in
``config/depthssd.yaml``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from depthssd_train.cli import run_cli

PROG = "depthssd-eval"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, type=Path,
                        help=".safetensors checkpoint or .onnx export")
    parser.add_argument("--data", required=True, type=Path, help="dataset root")
    parser.add_argument("--split", help="split (default: the only one, else 'test')")
    parser.add_argument("--backend", default="torch",
                        choices=("torch", "onnxruntime", "auto"), help="runtime backend")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="the node's operating point, for distance, jitter and matched "
                             "share (default: score_threshold of config/depthssd.yaml)")
    parser.add_argument("--ap-score-threshold", type=float, default=0.05,
                        help="lowest score kept for the AP (default 0.05)")
    parser.add_argument("--max-sequences", type=int, help="only the first N sequences")
    parser.add_argument("--max-frames", type=int, help="only the first N frames per sequence")
    parser.add_argument("--no-memory-ablation", action="store_true",
                        help="skip the second pass with the memory off")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the backend")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def _fmt(value: float | None) -> str:
    return "n/a" if value is None or value != value else f"{value:.4f}"


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    for name in ("max_sequences", "max_frames"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    for name in ("score_threshold", "ap_score_threshold"):
        value = getattr(args, name)
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(f"--{name.replace('_', '-')} must be in [0, 1], got {value}")
    if not args.model.exists():
        raise ValueError(f"--model {args.model}: file not found")
    from depthssd_train.evaluate import EvalOptions, evaluate, headline

    opts = EvalOptions(score_threshold=args.score_threshold,
                       ap_score_threshold=args.ap_score_threshold,
                       max_sequences=args.max_sequences, max_frames=args.max_frames,
                       memory_ablation=not args.no_memory_ablation, num_threads=args.threads)
    metrics = evaluate(args.model, args.data, args.out, backend=args.backend, split=args.split,
                       options=opts, progress=not args.no_progress)
    values = headline(metrics)
    print(f"{PROG}: {metrics['num_frames']} frames, backend {metrics['backend']}, operating "
          f"point {metrics['operating_point']['score_threshold']:g}: "
          + ", ".join(f"{k} {_fmt(v)}" for k, v in values.items()))
    near = metrics["near_detection"]
    print(f"{PROG}: near AP@.5 per class (ground-truth boxes): " + ", ".join(
        f"{name} {_fmt(row['ap50'])} ({row['num_gt']})" for name, row in near["per_class"].items())
        + (f"; no ground truth for {', '.join(near['missing_classes'])}: near AP is n/a"
           if near["missing_classes"] else ""))
    ablation = metrics.get("memory_ablation")
    if ablation:
        print(f"{PROG}: memory off: " + ", ".join(
            f"{k} {_fmt(v)}" for k, v in ablation["memory_off"].items()))
    for key, floor in metrics["floors"].items():
        verdict = "met" if floor["met"] else "MISSED"
        print(f"{PROG}: floor {key} {floor['target']}: {_fmt(floor['value'])} {verdict} "
              f"(margin {_fmt(floor['margin'])})")
    print(f"{PROG}: wrote {args.out / 'metrics.json'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``depthssd-eval``; returns the exit code."""
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
