"""``depthssd-train``: train DepthSSD from a YAML config with ``key=value`` overrides.

Usage::

    depthssd-train --config config/train/default.yaml [dotted.key=value ...]
    depthssd-train --resume runs/default [dotted.key=value ...]
    depthssd-train --resume runs/default --config longer.yaml   # continue with more stages
    depthssd-train --config ... --stop-after-minutes 300        # a part; --resume continues
    torchrun --nproc-per-node 2 -m depthssd_train.cli.train --config ...   # DDP

Exit codes: 0 done (or stopped at --stop-after-minutes with a checkpoint), 1 error (one line
naming it, e.g. an unknown config key), 2 usage, 3 training diverged (the line names the loss
term and step; the last good checkpoint stays), 130 stopped by Ctrl-C or SIGTERM after a
checkpoint of the step reached (``--resume`` continues exactly).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from depthssd_train.cli import run_cli

PROG = "depthssd-train"
EXIT_DIVERGED = 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="training config YAML (config/train/*.yaml)")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue the run in RUN_DIR from its last checkpoint")
    parser.add_argument("--stop-after-minutes", type=float, metavar="MIN",
                        help="stop cleanly (with a checkpoint) after this much wall time")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="dotted config overrides, e.g. optim.lr=1e-3 schedule.0.steps=10")
    return parser


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if not args.config and not args.resume:
        raise ValueError("give --config FILE (or --resume RUN_DIR)")
    from depthssd_train.train import TrainingDivergedError, train_from_args

    try:
        summary = train_from_args(args.config, list(args.overrides), args.resume,
                                  progress=not args.no_progress,
                                  stop_after_minutes=args.stop_after_minutes)
    except TrainingDivergedError as err:
        print(f"{PROG}: training diverged: {err}; the last good checkpoint is kept",
              file=sys.stderr)
        return EXIT_DIVERGED
    terms = summary.get("last_terms", {})
    what = "done" if not summary.get("stopped") else f"stopped ({summary['stopped']})"
    print(f"{PROG}: {what}, {summary['steps']} steps, {summary['images_seen']} images, "
          f"loss {terms.get('total', float('nan')):.4f}, {summary['images_per_s']:.2f} img/s, "
          f"data wait {summary['data_wait_share']:.1%}, precision {summary['precision']}, "
          f"checkpoint {summary['checkpoint']}")
    return 130 if str(summary.get("stopped", "")).startswith("signal") else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``depthssd-train``; returns the exit code."""
    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
