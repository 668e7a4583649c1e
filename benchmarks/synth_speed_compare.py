"""Before/after render speed of the synthetic world: two checkouts, interleaved, one core.

Run: ``.venv/bin/python benchmarks/synth_speed_compare.py --old /tmp/synth_old`` where
``/tmp/synth_old`` is a checkout of the baseline (e.g. ``git worktree add /tmp/synth_old
e5e392e``). Each round starts ``benchmarks/synth_speed.py`` of the baseline and of this
checkout at the same time in fresh processes (OMP_NUM_THREADS=1, same interpreter, same
arguments), so both run under the same load; the ratio new / old of each round's CPU-time rate
is the figure to trust on a shared machine (run one after the other, the two sides met
different loads and the ratio swung by a third). ``--sequential`` runs them one after the
other instead (on a quiet machine). Prints one line per round and a summary
``synth_speed_compare: new/old = R (median of N rounds) ...``.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
_RESULT = re.compile(r"synth_speed: ([0-9.]+) frames/s wall-clock, ([0-9.]+) frames/s by CPU")


def _start(root: Path, args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONPATH=str(root))
    return subprocess.Popen([sys.executable, str(root / "benchmarks" / "synth_speed.py"),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env, cwd=root)


def _result(root: Path, proc: subprocess.Popen) -> tuple[float, float]:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{root}: synth_speed.py failed: {err[-500:]}")
    match = _RESULT.search(out)
    if match is None:
        raise RuntimeError(f"no result line from {root}: {out[-500:]}")
    return float(match.group(1)), float(match.group(2))


def main(argv: list[str] | None = None) -> int:
    """Interleave ``--rounds`` runs of the old and the new benchmark and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="baseline checkout")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--sequential", action="store_true",
                        help="run old and new one after the other, not at the same time")
    args = parser.parse_args(argv)
    bench = ["--frames", str(args.frames), "--runs", str(args.runs)]
    old_cpu, new_cpu, ratios = [], [], []
    for k in range(args.rounds):
        first_old = k % 2 == 0  # alternate the order so neither side always runs first
        order = [("old", args.old), ("new", HERE)] if first_old else \
            [("new", HERE), ("old", args.old)]
        if args.sequential:
            got = {name: _result(root, _start(root, bench)) for name, root in order}
        else:
            procs = [(name, root, _start(root, bench)) for name, root in order]
            got = {name: _result(root, proc) for name, root, proc in procs}
        old_cpu.append(got["old"][1])
        new_cpu.append(got["new"][1])
        ratios.append(got["new"][1] / got["old"][1])
        print(f"round {k}: old {got['old'][1]:.1f} / new {got['new'][1]:.1f} frames/s by CPU "
              f"time (wall-clock {got['old'][0]:.1f} / {got['new'][0]:.1f}); "
              f"new/old {ratios[-1]:.3f}", flush=True)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"synth_speed_compare: new/old = {statistics.median(ratios):.3f} (median of "
          f"{args.rounds} rounds); old {statistics.median(old_cpu):.1f}, new "
          f"{statistics.median(new_cpu):.1f} frames/s by CPU time at 640x360 on one core "
          f"(load average {load:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
