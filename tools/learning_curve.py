"""Score a run's snapshots on a held-out validation split and plot metrics against images seen.

Run::

    depthssd-data synth --out runs/data/val640 --split val --sequences 4 --frames 30 \\
        --seed 7000 --width 640 --height 360 --fov 90
    .venv/bin/python tools/learning_curve.py --run runs/default --data runs/data/val640

Every ``snapshots/images_<N>.safetensors`` of the run (written every ``snapshot_every_images``
by ``depthssd-train``) and the run's ``last.safetensors`` are evaluated with ``depthssd-eval``'s
code (the runtime the node uses, memory on, no memory ablation) into
``RUN/learning_curve/<name>/metrics.json``; snapshots already scored are not scored again, so
the tool can run after every training part. It writes ``RUN/learning_curve.json`` and
``RUN/learning_curve.png`` (near AP@.5 overall, cars and pedestrians; depth AbsRel and delta1;
per-object distance error, each against training images).

A run that continues earlier ones (``model.init_from`` their last weights) is drawn after them
with ``--after EARLIER_RUN`` (repeatable, oldest first, each already scored by this tool): their
rows come first, and this run's images are counted on from the last of theirs, so the curve is
one line over all the training the model has had. The first ``--after`` may instead be a
JSON file of rows already chained (``{"rows": [...]}``, as committed beside the shipped model in
``models/learning_curve.json``), so a curve outlives the run folders it was scored from; this
run's ``learning_curve.json`` holds the whole chain under ``chained``, to commit in its place
as that file's ``rows``.

The test world (seed 9001) is refused: choosing models or thresholds on it would leak the test
into training decisions. Use a validation world such as seed 7000.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too
from depthssd_core.checkpoint import read_metadata
from depthssd_train.dataset.format import list_splits, load_index
from depthssd_train.evaluate import EvalOptions, evaluate
from depthssd_train.train_checkpoint import CHECKPOINT_NAME, list_snapshots

TEST_WORLD_SEED = 9001
# Sequence ids written by ``depthssd-data synth``: ``{split}{seed:04d}_{k:04d}``.
_SYNTH_SEQUENCE = re.compile(r"^[A-Za-z_]*?(\d{4,})_\d{4}$")


def world_seeds(data_dir: Path, split: str | None) -> set[int]:
    """World seeds named by the synthetic sequence ids of a dataset split (empty if none)."""
    splits = [split] if split else list_splits(data_dir)
    seeds = set()
    for name in splits:
        for rec in load_index(data_dir, name):
            match = _SYNTH_SEQUENCE.match(rec.sequence)
            if match:
                seeds.add(int(match.group(1)))
    return seeds


def _row(name: str, images: int, step: int, metrics: dict[str, Any]) -> dict[str, Any]:
    near = metrics["near_detection"]
    per_class = near.get("per_class", {})

    def ap(cls: str) -> float:
        value = per_class.get(cls, {})
        value = value.get("ap50", value.get("map50")) if isinstance(value, dict) else value
        return float("nan") if value is None else float(value)

    depth = metrics["depth"]
    dist = metrics["distance"]
    return {"name": name, "images_seen": images, "step": step,
            "near_map50": near["map50"], "near_car_ap50": ap("car"),
            "near_pedestrian_ap50": ap("pedestrian"),
            "depth_abs_rel": depth["abs_rel"], "depth_delta1": depth["delta1"],
            "distance_error_under_40m": dist.get("median_abs_rel_under_40m")}


def score_run(run_dir: Path, data_dir: Path, split: str | None, backend: str,
              max_frames: int | None, progress: bool) -> list[dict[str, Any]]:
    """Evaluate every not yet scored snapshot (and ``last``); return rows by images seen."""
    models = [(f"images_{n:010d}", n, path) for n, path in list_snapshots(run_dir)]
    last = run_dir / CHECKPOINT_NAME
    if last.is_file():
        meta = read_metadata(last)
        models.append(("last", int(meta.get("images_seen", -1)), last))
    rows = []
    for name, images, path in models:
        out = run_dir / "learning_curve" / name
        metrics_path = out / "metrics.json"
        stale = name == "last" and metrics_path.is_file() and \
            metrics_path.stat().st_mtime < path.stat().st_mtime
        if not metrics_path.is_file() or stale:
            evaluate(path, data_dir, out, backend=backend, split=split,
                     options=EvalOptions(memory_ablation=False, max_frames=max_frames),
                     progress=progress)
        metrics = json.loads(metrics_path.read_text())
        step = int(read_metadata(path).get("step", -1))
        rows.append(_row(name, images, step, metrics))
    rows.sort(key=lambda r: (r["images_seen"], r["name"] == "last"))
    return rows


def chain_runs(earlier: list[Path], run_name: str,
               rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` of ``run_name`` after the scored rows of the ``earlier`` runs, images cumulative.

    Every row gets a ``run`` key; row names are prefixed with it (``warm/last``).

    Raises:
        ValueError: an earlier run has no ``learning_curve.json`` (or no rows in it).
    """
    chained: list[dict[str, Any]] = []
    offset = 0
    if earlier and earlier[0].is_file():  # a committed curve: rows already chained
        chained = [dict(r) for r in _scored_rows(earlier[0])]
        offset = max(r["images_seen"] for r in chained)
        earlier = earlier[1:]
    for name, run_rows in [*((d.name, _scored_rows(d)) for d in earlier), (run_name, rows)]:
        for r in run_rows:
            chained.append({**r, "run": name, "name": f"{name}/{r['name'].split('/')[-1]}",
                            "images_seen": r["images_seen"] + offset})
        offset += max(r["images_seen"] for r in run_rows) if run_rows else 0
    return chained


def _scored_rows(source: Path) -> list[dict[str, Any]]:
    """Rows of an earlier run folder (its own) or of a committed curve file (already chained)."""
    if source.is_file():
        try:
            rows = json.loads(source.read_text()).get("rows")
        except (json.JSONDecodeError, AttributeError) as err:
            raise ValueError(f"--after {source}: not a learning-curve JSON object ({err})") \
                from err
        if not isinstance(rows, list) or not rows or \
                not all(isinstance(r, dict) and "run" in r and "images_seen" in r for r in rows):
            raise ValueError(f"--after {source}: needs a non-empty 'rows' list of chained rows "
                             "(each with 'run' and 'images_seen')")
        return rows
    path = source / "learning_curve.json"
    if not path.is_file():
        raise ValueError(f"--after {source}: no learning_curve.json (score that run first)")
    rows = json.loads(path.read_text())["rows"]
    if not rows:
        raise ValueError(f"--after {source}: learning_curve.json has no rows")
    return rows


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Three panels against images seen: near AP, depth, distance error."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [r["images_seen"] for r in rows]

    def series(key: str) -> list[float]:
        return [math.nan if r[key] is None else r[key] for r in rows]

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for key, label in (("near_map50", "near AP@.5 (car/truck/bus/ped)"),
                       ("near_car_ap50", "car"), ("near_pedestrian_ap50", "pedestrian")):
        axes[0].plot(xs, series(key), marker="o", label=label)
    axes[0].set_ylabel("AP@.5 within 60 m")
    for key, label in (("depth_abs_rel", "AbsRel"), ("depth_delta1", "delta < 1.25")):
        axes[1].plot(xs, series(key), marker="o", label=label)
    axes[1].set_ylabel("depth")
    axes[2].plot(xs, series("distance_error_under_40m"), marker="o",
                 label="median rel. error < 40 m")
    axes[2].set_ylabel("per-object distance")
    for ax in axes:
        ax.set_xlabel("training images seen")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    """Score, write ``learning_curve.json`` and the plot; exit 1 with one line on bad input."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="training run directory")
    parser.add_argument("--data", type=Path, required=True, help="validation dataset root")
    parser.add_argument("--split", help="dataset split (default: the only one)")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--max-frames", type=int, help="frames per sequence to score")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--after", type=Path, action="append", default=[],
                        help="an earlier run this one continues (repeatable, oldest first); "
                             "the first may be a committed curve JSON")
    args = parser.parse_args(argv)
    try:
        if not args.run.is_dir():
            raise ValueError(f"--run {args.run}: not a folder")
        if not args.data.is_dir():
            raise ValueError(f"--data {args.data}: not a folder")
        if TEST_WORLD_SEED in world_seeds(args.data, args.split):
            raise ValueError(f"--data {args.data} holds the test world (seed "
                             f"{TEST_WORLD_SEED}); score learning curves on a validation "
                             "split, e.g. seed 7000")
        for i, earlier in enumerate(args.after):  # before minutes of scoring, not after
            if i and earlier.is_file():
                raise ValueError(f"--after {earlier}: a curve file can only come first "
                                 "(it holds the oldest rows)")
            _scored_rows(earlier)
        rows = score_run(args.run, args.data, args.split, args.backend, args.max_frames,
                         not args.no_progress)
        if not rows:
            raise ValueError(f"--run {args.run}: no snapshots and no {CHECKPOINT_NAME}")
        own_rows = rows
        rows = chain_runs(args.after, args.run.name, rows)
    except (ValueError, OSError) as err:
        print(f"learning_curve: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    # This run's own rows (images counted in this run), so a later run can chain after it.
    (args.run / "learning_curve.json").write_text(json.dumps(
        {"data": str(args.data), "rows": own_rows, "chained": rows}, indent=2, allow_nan=True))
    runs = " + ".join(dict.fromkeys(r["run"] for r in rows))  # chain_runs names every row
    plot(rows, args.run / "learning_curve.png", f"{runs} on {args.data.name}")
    def num(value: float | None) -> str:
        # The fixed-class headline is null when a class has no ground truth in the split.
        return "n/a" if value is None or math.isnan(value) else f"{value:.3f}"

    for r in rows:
        print(f"{r['name']}: {r['images_seen']} images, near AP@.5 {num(r['near_map50'])} "
              f"(car {num(r['near_car_ap50'])}, ped {num(r['near_pedestrian_ap50'])}), "
              f"AbsRel {num(r['depth_abs_rel'])}, delta1 {num(r['depth_delta1'])}")
    print(f"learning_curve: wrote {args.run / 'learning_curve.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
