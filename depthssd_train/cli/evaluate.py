"""``depthssd-eval``: evaluate a model through the runtime on a dataset split.

Usage::

    depthssd-eval --model models/depthssd_conv_small.safetensors --data DATASET \\
        [--split test] [--backend torch|onnxruntime|auto] --out runs/eval

Writes ``OUT/metrics.json`` (detection AP, depth, per-object distance, jitter, memory ablation,
floors) and PNG plots; prints the headline numbers.
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
    parser.add_argument("--score-threshold", type=float, default=0.05,
                        help="runtime score threshold for AP (default 0.05)")
    parser.add_argument("--distance-score-threshold", type=float, default=0.35,
                        help="score of detections used for distance/jitter (default 0.35)")
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
    if not 0.0 <= args.score_threshold <= args.distance_score_threshold <= 1.0:
        raise ValueError("need 0 <= --score-threshold <= --distance-score-threshold <= 1")
    if not args.model.exists():
        raise ValueError(f"--model {args.model}: file not found")
    from depthssd_train.evaluate import EvalOptions, evaluate, headline

    opts = EvalOptions(score_threshold=args.score_threshold,
                       distance_score_threshold=args.distance_score_threshold,
                       max_sequences=args.max_sequences, max_frames=args.max_frames,
                       memory_ablation=not args.no_memory_ablation, num_threads=args.threads)
    metrics = evaluate(args.model, args.data, args.out, backend=args.backend, split=args.split,
                       options=opts, progress=not args.no_progress)
    values = headline(metrics)
    print(f"{PROG}: {metrics['num_frames']} frames, backend {metrics['backend']}: "
          + ", ".join(f"{k} {_fmt(v)}" for k, v in values.items()))
    ablation = metrics.get("memory_ablation")
    if ablation:
        print(f"{PROG}: memory off: " + ", ".join(
            f"{k} {_fmt(v)}" for k, v in ablation["memory_off"].items())
            + f"; memory on no worse: {ablation['no_worse']}")
    print(f"{PROG}: wrote {args.out / 'metrics.json'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``depthssd-eval``; returns the exit code."""
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
