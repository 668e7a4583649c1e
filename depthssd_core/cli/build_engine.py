"""``depthssd-build-engine``: build (or validate the cached) TensorRT engine of an ONNX model.

Run it once on the target machine (for example a Jetson) before starting the node, so the node
does not spend minutes building on its first frame::

    depthssd-build-engine --onnx models/depthssd.onnx [--engine PATH] [--build-only] [--force]
        [--input-shape image=1x3x360x640] [--weakly-typed] [--timing-cache PATH]
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
                             "or under the user cache (see README) when that folder is "
                             "read-only)")
    parser.add_argument("--build-only", action="store_true",
                        help="build or reuse the engine without loading and validating it")
    parser.add_argument("--force", action="store_true",
                        help="rebuild even when the cached engine is current")
    parser.add_argument("--workspace-mib", type=int, default=2048,
                        help="TensorRT workspace memory limit (MiB)")
    parser.add_argument("--timing-cache", default=None,
                        help="timing cache file (default: one per TensorRT version and GPU, "
                             "next to the engine)")
    parser.add_argument("--input-shape", action="append", default=[], metavar="NAME=DIMS",
                        help="build shape of a dynamic ONNX input, e.g. image=1x3x360x640 "
                             "(repeat per input; depthssd's own exports are static)")
    parser.add_argument("--weakly-typed", action="store_true",
                        help="TensorRT 10.x only: build weakly typed with the FP16 flag and "
                             "the FP32 islands pinned, instead of strongly typed from the graph "
                             "(a fallback should the strongly typed build fail)")
    return parser


def _input_shapes(specs: list[str]) -> dict[str, list[int]] | None:
    """``NAME=AxBxC`` options as {name: [A, B, C]}; ValueError names a malformed one."""
    shapes = {}
    for spec in specs:
        name, _, dims = spec.partition("=")
        try:
            shapes[name.strip()] = [int(d) for d in dims.lower().split("x")]
        except ValueError:
            raise ValueError(f"--input-shape {spec!r}: expected NAME=DIMS such as "
                             "image=1x3x360x640") from None
        if not name.strip():
            raise ValueError(f"--input-shape {spec!r}: the input name is missing")
    return shapes or None


def _tensorrt_version() -> str:
    module = sys.modules.get("tensorrt")
    return str(getattr(module, "__version__", "?"))


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (0 ok, 1 error with one line on stderr)."""
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    try:
        kwargs = {"workspace_bytes": args.workspace_mib << 20,
                  "timing_cache": args.timing_cache,
                  "input_shapes": _input_shapes(args.input_shape),
                  "network_typing": "weak" if args.weakly_typed else "strong"}
        if args.build_only:
            info = trt_engine.build_engine(args.onnx, args.engine, force=args.force, **kwargs)
        else:
            info, _runtime, _engine = trt_engine.ensure_engine(args.onnx, args.engine,
                                                               force=args.force, **kwargs)
    except (ImportError, RuntimeError, ValueError, OSError) as exc:
        print(f"depthssd-build-engine: error: {exc}", file=sys.stderr)
        return 1
    except (AttributeError, TypeError) as exc:
        # A TensorRT whose Python API differs from the one depthssd was written against
        # (a renamed member or another signature) ends here instead of in a traceback.
        print(f"depthssd-build-engine: error: TensorRT {_tensorrt_version()} API mismatch "
              f"({type(exc).__name__}: {exc}); supported: TensorRT 10.x and 11.x",
              file=sys.stderr)
        return 1
    elapsed_s = time.perf_counter() - start
    action = "built" if info.built else "reused cached"
    fields = info.sidecar.get("key_fields", {})
    typing = "strongly" if info.sidecar.get("strongly_typed", True) else "weakly"
    print(f"{action} engine {info.engine_path} ({fields.get('precision', '?')}, {typing} "
          f"typed, TensorRT {fields.get('tensorrt_version', '?')}, "
          f"{fields.get('gpu_name', '?')}) in {elapsed_s:.1f} s")
    if info.built:
        timing = info.sidecar.get("timing_cache", {})
        print(f"timing cache {timing.get('path', '?')}: {timing.get('status', '?')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
