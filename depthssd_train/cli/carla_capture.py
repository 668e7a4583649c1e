"""``depthssd-carla-capture``: record a labelled dataset split from a running CARLA server.

Example::

    depthssd-carla-capture --host localhost --port 2000 --out data/carla --split train \\
        --frames 2000 --vehicles 30 --walkers 50 --seed 0

Every error is one line on stderr (exit 1; argparse usage errors exit 2). Ctrl-C while
connecting ends the process at once; later, the server is cleaned up first (a second Ctrl-C
is deferred until that is done), then the command exits with 130.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from depthssd_train.cli import run_cli

PROG = "depthssd-carla-capture"


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, like every other error here."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _OneLineParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="localhost", help="CARLA server host")
    parser.add_argument("--port", type=int, default=2000, help="CARLA server RPC port")
    parser.add_argument("--out", type=Path, required=True, help="dataset root")
    parser.add_argument("--split", default="train")
    parser.add_argument("--frames", type=int, required=True, help="frames to record")
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds to wait for the server, each tick and each frame's images")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--fov", type=float, default=90.0, help="horizontal field of view, deg")
    parser.add_argument("--vehicles", type=int, default=30, help="NPC vehicles to spawn")
    parser.add_argument("--walkers", type=int, default=50,
                        help="pedestrians to spawn (each with a controller.ai.walker)")
    parser.add_argument("--walker-cross", type=float, default=0.1,
                        help="share of pedestrians that cross roads (0..1)")
    parser.add_argument("--ego-filter", default="vehicle.*",
                        help="blueprint wildcard the ego is drawn from")
    parser.add_argument("--ego-base-types", default="car",
                        help="comma-separated base_type values the ego may have")
    parser.add_argument("--ego-role", default="hero",
                        help="the ego's role_name (large maps stream tiles around 'hero')")
    parser.add_argument("--camera-xyz", type=float, nargs=3, default=(2.0, 0.0, 2.0),
                        metavar=("X", "Y", "Z"), help="camera position on the ego, metres")
    parser.add_argument("--warmup", type=int, default=20, help="ticks before recording")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tm-port", type=int, default=8000, help="Traffic Manager port")
    parser.add_argument("--sequence", help="sequence name (default carla_<map>_<seed>)")
    parser.add_argument("--join", action="store_true",
                        help="the world is synchronous and ticked by another client (e.g. "
                             "carla-ros-bridge): follow its ticks, change no world or Traffic "
                             "Manager setting (own actors are still spawned)")
    parser.add_argument("--keep-partial", action="store_true",
                        help="on Ctrl-C keep the frames captured so far")
    parser.add_argument("--append", action="store_true",
                        help="add the capture as a new sequence of an existing split")
    parser.add_argument("--no-progress", action="store_true")
    return parser


class _Reporter:
    """Status lines and a progress bar that appears only once recording starts."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.bar: Any = None

    def notify(self, line: str) -> None:
        text = f"{PROG}: {line}"
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def progress(self, step: int) -> None:
        if self.bar is None and self.enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc="capture", unit="frame", file=sys.stderr)
        if self.bar is not None and step:
            self.bar.update(step)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _main(argv: Sequence[str] | None) -> int:
    from depthssd_train.carla.capture import CaptureSettings, capture

    args = _parser().parse_args(argv)
    settings = CaptureSettings(
        host=args.host, port=args.port, out=args.out, split=args.split, frames=args.frames,
        timeout_s=args.timeout, width=args.width, height=args.height, fov_deg=args.fov,
        num_vehicles=args.vehicles, num_walkers=args.walkers,
        walker_cross_fraction=args.walker_cross, warmup_ticks=args.warmup, seed=args.seed,
        tm_port=args.tm_port, ego_filter=args.ego_filter,
        ego_base_types=tuple(t.strip() for t in args.ego_base_types.split(",") if t.strip()),
        ego_role=args.ego_role, camera_xyz_m=tuple(args.camera_xyz), sequence=args.sequence,
        keep_partial=args.keep_partial, append=args.append, join=args.join)
    reporter = _Reporter(args.frames, not args.no_progress)
    try:
        result = capture(settings, progress=reporter.progress, notify=reporter.notify,
                         interrupt_ends_connect=True)
    finally:
        reporter.close()
    print(f"wrote {result.frames} frames to {args.out} (split {args.split}, sequence "
          f"{result.sequence}); skipped {result.skipped_frames} ticks without all three images; "
          f"traffic: {result.vehicles} vehicles, {result.walkers} walkers")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``depthssd-carla-capture``; returns the exit code."""
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
