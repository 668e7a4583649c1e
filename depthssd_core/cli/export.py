"""depthssd-export: turn a DepthSSD checkpoint into an ONNX file plus its JSON sidecar.

Example::

    depthssd-export --model runs/best.safetensors --onnx models/depthssd.onnx --fp16
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

PROG = "depthssd-export"


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``depthssd-export``."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="checkpoint (.safetensors)")
    parser.add_argument("--onnx", required=True, help="output ONNX path (sidecar: <path>.json)")
    parser.add_argument("--height", type=int, default=None, help="input height (px)")
    parser.add_argument("--width", type=int, default=None, help="input width (px)")
    parser.add_argument(
        "--fp16", action="store_true", help="FP16 compute (memory and depth decoding stay FP32)"
    )
    parser.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17)")
    parser.add_argument(
        "--benchmark",
        type=int,
        default=0,
        metavar="RUNS",
        help="after export, time RUNS ONNX Runtime CPU runs (2 threads) and print the median",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the exporter; returns the process exit code (0 ok, 1 bad input, 2 bad usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse already printed its usage line
        return int(exc.code or 0)
    for name in ("height", "width"):
        value = getattr(args, name)
        if value is not None and value < 32:
            print(f"{PROG}: error: --{name} must be >= 32, got {value}", file=sys.stderr)
            return 1
    if args.benchmark < 0:
        print(f"{PROG}: error: --benchmark must be >= 0, got {args.benchmark}", file=sys.stderr)
        return 1

    # Heavy imports after argument checks so usage errors answer instantly.
    from depthssd_core.checkpoint import load_model
    from depthssd_core.export import export_onnx
    from depthssd_core.graph_contract import sidecar_path

    try:
        model = load_model(args.model)
        path = export_onnx(
            model, args.onnx, args.height, args.width, fp16=args.fp16, opset=args.opset
        )
    except (ValueError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} and {sidecar_path(path)}")
    if args.benchmark > 0:
        from depthssd_core.export import measure_ort_latency

        stats = measure_ort_latency(path, threads=2, runs=args.benchmark)
        print(
            f"onnxruntime CPU, 2 threads, {args.benchmark} runs: median "
            f"{stats['median_ms']:.2f} ms, p90 {stats['p90_ms']:.2f} ms, "
            f"min {stats['min_ms']:.2f} ms"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
