"""``depthssd-build-engine``: build (or validate the cached) TensorRT engine of an ONNX model.

Run it once on the target machine (for example a Jetson) before starting the node, so the node
does not spend minutes building on its first frame::

    depthssd-build-engine --onnx models/depthssd.onnx [--engine PATH] [--build-only] [--force]
"""

from __future__ import annotations

import argparse
import sys
import time

from depthssd_core import engine as trt_engine


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="depthssd-build-engine",
        description="Build and cache the TensorRT engine of a depthssd ONNX model.",
    )
    parser.add_argument("--onnx", required=True, help="exported depthssd ONNX file")
    parser.add_argument("--engine", default=None,
                        help="engine file (default: <onnx stem>.<precision>.engine next to it, "
                             "or under $XDG_CACHE_HOME/depthssd when that folder is read-only)")
    parser.add_argument("--build-only", action="store_true",
                        help="build or reuse the engine without loading and validating it")
    parser.add_argument("--force", action="store_true",
                        help="rebuild even when the cached engine is current")
    parser.add_argument("--workspace-mib", type=int, default=2048,
                        help="TensorRT workspace memory limit (MiB)")
    parser.add_argument("--timing-cache", default=None,
                        help="timing cache file (default: next to the engine)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 1 error with one line on stderr)."""
    args = _parser().parse_args(argv)
    kwargs = {"workspace_bytes": args.workspace_mib << 20, "timing_cache": args.timing_cache}
    start = time.perf_counter()
    try:
        if args.build_only:
            info = trt_engine.build_engine(args.onnx, args.engine, force=args.force, **kwargs)
        else:
            info, _runtime, _engine = trt_engine.ensure_engine(args.onnx, args.engine,
                                                               force=args.force, **kwargs)
    except (ImportError, RuntimeError, ValueError, OSError) as exc:
        print(f"depthssd-build-engine: error: {exc}", file=sys.stderr)
        return 1
    elapsed_s = time.perf_counter() - start
    action = "built" if info.built else "reused cached"
    fields = info.sidecar.get("key_fields", {})
    print(f"{action} engine {info.engine_path} ({fields.get('precision', '?')}, TensorRT "
          f"{fields.get('tensorrt_version', '?')}, {fields.get('gpu_name', '?')}) "
          f"in {elapsed_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
