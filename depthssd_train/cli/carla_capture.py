"""``depthssd-carla-capture``: record a labelled dataset split from a running CARLA server.

Example::

    depthssd-carla-capture --host localhost --port 2000 --out data/carla --split train \\
        --frames 2000 --width 640 --height 360 --fov 90
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from depthssd_train.cli import run_cli

PROG = "depthssd-carla-capture"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="localhost", help="CARLA server host")
    parser.add_argument("--port", type=int, default=2000, help="CARLA server RPC port")
    parser.add_argument("--out", type=Path, required=True, help="dataset root")
    parser.add_argument("--split", default="train")
    parser.add_argument("--frames", type=int, required=True, help="frames to record")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the server and for each sensor image")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fov", type=float, default=90.0, help="horizontal field of view, deg")
    parser.add_argument("--vehicles", type=int, default=30, help="traffic vehicles to spawn")
    parser.add_argument("--warmup", type=int, default=20, help="ticks before recording")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tm-port", type=int, default=8000, help="Traffic Manager port")
    parser.add_argument("--sequence", help="sequence name (default carla_<map>_<seed>)")
    parser.add_argument("--keep-partial", action="store_true",
                        help="on Ctrl-C keep the frames captured so far")
    parser.add_argument("--append", action="store_true",
                        help="add the capture as a new sequence of an existing split")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def _main(argv: Sequence[str] | None) -> int:
    from tqdm import tqdm

    from depthssd_train.carla.capture import CaptureSettings, capture

    args = _parser().parse_args(argv)
    if args.frames < 1:
        raise ValueError("--frames must be at least 1")
    settings = CaptureSettings(
        host=args.host, port=args.port, out=args.out, split=args.split, frames=args.frames,
        timeout_s=args.timeout, width=args.width, height=args.height, fov_deg=args.fov,
        num_vehicles=args.vehicles, warmup_ticks=args.warmup, seed=args.seed,
        tm_port=args.tm_port, sequence=args.sequence, keep_partial=args.keep_partial,
        append=args.append)
    with tqdm(total=args.frames, desc="capture", unit="frame", disable=args.no_progress,
              file=sys.stderr) as bar:
        count = capture(settings, progress=bar.update)
    print(f"wrote {count} frames to {args.out} (split {args.split})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``depthssd-carla-capture``; returns the exit code."""
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
