"""Frames per second of the synthetic world on one CPU core (numpy/OpenCV threads pinned to 1).

Run: ``.venv/bin/python benchmarks/synth_speed.py`` (the world's defaults: every randomization
on; optionally under ``taskset -c N`` to pin a core; the thread variables below are set before
numpy loads). Prints one line ``synth_speed: N frames/s ...`` with the wall-clock and the
CPU-time rate. ``benchmarks/synth_speed_compare.py`` runs it against another checkout.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too
from depthssd_sim import SyntheticWorld  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Time ``--runs`` sequences of ``--frames`` frames and print the median frames/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    cv2.setNumThreads(1)  # numpy and OpenCV stay on one thread; pin a core with taskset
    world = SyntheticWorld(args.seed, args.width, args.height)
    rates, cpu_rates = [], []
    for run in range(args.runs):
        frames = world.sequence(f"bench{run}", args.frames + 1)
        next(frames)  # exclude building the sequence from the per-frame time
        start, cpu_start = time.perf_counter(), time.process_time()
        count = sum(1 for _ in frames)
        rates.append(count / (time.perf_counter() - start))
        cpu_rates.append(count / (time.process_time() - cpu_start))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print("command:", " ".join([os.path.basename(sys.executable), *sys.argv]))
    print("runs, wall-clock frames/s:", ", ".join(f"{r:.1f}" for r in rates))
    print("runs, CPU-time frames/s:  ", ", ".join(f"{r:.1f}" for r in cpu_rates))
    # On a shared machine the wall clock also counts time the core spent on other processes;
    # CPU time counts only this process, so it is the figure to compare with a quiet core.
    print(f"synth_speed: {statistics.median(rates):.1f} frames/s wall-clock, "
          f"{statistics.median(cpu_rates):.1f} frames/s by CPU time, at "
          f"{args.width}x{args.height} on one core (median of {args.runs} runs of "
          f"{args.frames} frames; load average {load:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
