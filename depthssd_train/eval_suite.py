"""Every floor of the default model (issue 15) for one model, on the held-out splits.

The suite renders the held-out splits with ``depthssd-data synth`` (world seed 9001, never used
for training; cached and reused when already there with the same settings), scores each with
:func:`depthssd_train.evaluate.evaluate` through the runtime the node uses (ONNX Runtime by
default, memory on and off) and writes ``suite.json`` plus ``suite.md``: one row per floor with
its target, value, met or missed, and the margin (how far inside the floor the value is;
negative: missed by that much).

Splits (:data:`SPLITS`; 8 sequences x 30 frames each, split name ``test``):

- ``own_fov90``: the model card's test split (640x360, 90 deg): every floor of
  :data:`~depthssd_train.evaluate.FLOORS` and the memory floors;
- ``own_fov60``, ``own_fov110``, ``own_800x600`` (4:3 at 90 deg): the same world through other
  cameras, for "median distance ratio within 3 % of 1" (with ``own_fov90``);
- ``heldout_look``: the same world drawn with the look training never saw
  (``depthssd-data synth --look heldout``; skipped, saying so, when the installed CLI lacks the
  flag): every metric of ``FLOORS`` within 25 % of its ``own_fov90`` value.

"Within 25 %" means no more than 25 % worse: a higher-is-better metric must keep at least 75 %
of its own-look value, a lower-is-better one at most 125 %, and the distance ratio (ideally 1)
may deviate from 1 by at most 125 % of the own-look deviation. Being better than the own look
never misses. A floor whose value cannot be measured (NaN: e.g. no matched object) is missed.

Run: ``python benchmarks/model_floors.py --model models/depthssd_conv_small.safetensors``.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from depthssd_core.metrics import json_safe
from depthssd_train.evaluate import (
    FLOORS,
    EvalOptions,
    check_floors,
    evaluate,
    floor_entry,
    headline,
    make_perceptors,
    node_score_threshold,
)
from depthssd_train.metrics import NEAR_CLASSES

PROG = "model_floors"
SEED = 9001
SEQUENCES = 8
FRAMES = 30
SPLIT = "test"
REFERENCE = "own_fov90"
HELD_OUT_LOOK = "heldout_look"
HELD_OUT_TOLERANCE = 0.25


@dataclass(frozen=True)
class SuiteSplit:
    """One generated split: camera and look of ``depthssd-data synth``.

    Attributes:
        name: folder and report name.
        width / height: image size, pixels.
        fov_deg: horizontal field of view, degrees.
        look: ``--look`` of ``depthssd-data synth``; None keeps the training look.
        what: one line for the report.
    """

    name: str
    width: int
    height: int
    fov_deg: float
    look: str | None
    what: str


SPLITS = (
    SuiteSplit("own_fov90", 640, 360, 90.0, None, "own look, the card's test split"),
    SuiteSplit("own_fov60", 640, 360, 60.0, None, "own look, 60 deg"),
    SuiteSplit("own_fov110", 640, 360, 110.0, None, "own look, 110 deg"),
    SuiteSplit("own_800x600", 800, 600, 90.0, None, "own look, 800x600 (4:3), 90 deg"),
    SuiteSplit(HELD_OUT_LOOK, 640, 360, 90.0, "heldout", "held-out look, 640x360, 90 deg"),
)
RATIO_SPLITS = ("own_fov60", "own_fov90", "own_fov110", "own_800x600")
_RATIO = "distance_median_ratio_under_40m"


def synth_command(spec: SuiteSplit, out: Path, sequences: int, frames: int) -> list[str]:
    """The ``depthssd-data synth`` command line of one split (run with this Python)."""
    cmd = [sys.executable, "-m", "depthssd_train.cli.data", "synth", "--out", str(out),
           "--split", SPLIT, "--sequences", str(sequences), "--frames", str(frames),
           "--seed", str(SEED), "--width", str(spec.width), "--height", str(spec.height),
           "--fov", f"{spec.fov_deg:g}", "--overwrite", "--no-progress"]
    if spec.look is not None:
        cmd += ["--look", spec.look]
    return cmd


def synth_supports_look() -> bool:
    """Whether the installed ``depthssd-data synth`` has the ``--look`` option."""
    done = subprocess.run([sys.executable, "-m", "depthssd_train.cli.data", "synth", "--help"],
                          capture_output=True, text=True, check=False)
    return done.returncode == 0 and "--look" in done.stdout


def ensure_split(spec: SuiteSplit, cache: Path, sequences: int, frames: int
                 ) -> dict[str, Any]:
    """Render one split unless the cache already holds it with the same settings.

    Returns:
        ``data`` (dataset root), ``cached`` (bool) and ``seconds`` spent rendering.

    Raises:
        RuntimeError: ``depthssd-data synth`` failed (its last error line is quoted).
    """
    root = cache / spec.name
    marker = root / "suite_split.json"
    settings = {**asdict(spec), "seed": SEED, "sequences": sequences, "frames": frames,
                "split": SPLIT}
    index = root / "meta" / f"index_{SPLIT}.csv"
    if marker.is_file() and index.is_file() and json.loads(marker.read_text()) == settings:
        return {"data": str(root), "cached": True, "seconds": 0.0}
    t0 = time.perf_counter()
    done = subprocess.run(synth_command(spec, root, sequences, frames), capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
        raise RuntimeError(f"depthssd-data synth for split {spec.name} failed: {lines[-1]}")
    marker.write_text(json.dumps(settings, indent=2))
    return {"data": str(root), "cached": False, "seconds": time.perf_counter() - t0}


def held_out_entry(key: str, held: float, own: float) -> dict[str, Any]:
    """"Within 25 % of the own look" for one metric (the rule is in the module docstring)."""
    op, target = FLOORS[key]
    tol = HELD_OUT_TOLERANCE
    if op == ">=":
        entry = floor_entry(">=", (1 - tol) * own, held)
    elif op == "<=":
        entry = floor_entry("<=", (1 + tol) * own, held)
    else:
        centre = target[0]
        entry = floor_entry("<=", (1 + tol) * abs(own - centre), abs(held - centre))
        entry["value_is"] = f"|ratio - {centre:g}|"
    entry["target"] = f"within {tol:.0%} of own look ({own:.4g})" if math.isfinite(own) \
        else "within 25 % of own look (own look not measured)"
    return entry


def _row(floor: str, split: str, entry: dict[str, Any]) -> dict[str, Any]:
    return {"floor": floor, "split": split, **entry}


def _missing_note(result: dict[str, Any], key: str) -> str | None:
    """Why a fixed-set AP is NaN: the classes of the set without ground truth in the split."""
    missing = result.get("missing_classes", {}).get(key)
    return f"no ground truth for {', '.join(missing)} in the split" if missing else None


def collect_floors(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every floor row of the suite from the per-split results (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    ref = results.get(REFERENCE, {})
    ref_on = ref.get("headline")
    if ref_on is not None:
        for key, entry in check_floors(ref_on, ref.get("headline_memory_off")).items():
            note = _missing_note(ref, key)
            rows.append(_row(key, REFERENCE, {**entry, **({"note": note} if note else {})}))
    for name in RATIO_SPLITS:
        if name == REFERENCE:
            continue
        values = results.get(name, {}).get("headline")
        if values is not None:
            op, target = FLOORS[_RATIO]
            rows.append(_row(_RATIO, name, floor_entry(op, target, values[_RATIO])))
    held = results.get(HELD_OUT_LOOK, {})
    if held.get("headline") is not None and ref_on is not None:
        for key in FLOORS:
            entry = held_out_entry(key, held["headline"][key], ref_on[key])
            note = _missing_note(held, key) or _missing_note(ref, key)
            rows.append(_row(key, HELD_OUT_LOOK, {**entry, **({"note": note} if note else {})}))
    elif held.get("status") == "skipped":
        rows.append({"floor": "every metric of own_fov90 within 25 %", "split": HELD_OUT_LOOK,
                     "target": "within 25 % of own look", "value": math.nan, "met": None,
                     "margin": math.nan, "note": held["reason"]})
    return rows


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown(report: dict[str, Any]) -> str:
    """The suite as markdown: floors table, then headline metrics and near AP per split."""
    lines = [f"# Floors of `{report['model']}`", "",
             f"Backend {report['backend']}, operating point score "
             f"{report['operating_point']:g}, world seed {SEED}, {report['sequences']} x "
             f"{report['frames']} frames per split, memory on unless stated. "
             f"{report['summary']['met']} met, {report['summary']['missed']} missed, "
             f"{report['summary']['not_measured']} not measured; "
             f"{report['seconds']['total']:.0f} s in all.", "",
             "| Floor | Split | Target | Value | Met | Margin | Note |",
             "|---|---|---|---|---|---|---|"]
    for row in report["floors"]:
        met = {True: "yes", False: "**no**", None: "skipped"}[row["met"]]
        lines.append(f"| {row['floor']} | {row['split']} | {row['target']} | "
                     f"{_fmt(row['value'])} | {met} | {_fmt(row['margin'])} | "
                     f"{row.get('note', '')} |")
    keys = [*FLOORS, "jitter_rel_rms_diff"]
    lines += ["", "Per split (memory on):", "",
              "| Split | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, res in report["splits"].items():
        if res.get("headline") is None:
            lines.append(f"| {name} | " + " | ".join(["skipped"] * len(keys)) + " |")
            continue
        lines.append(f"| {name} | " + " | ".join(_fmt(res["headline"][k]) for k in keys) + " |")
    lines += ["", "Near AP@.5 per class (ground-truth boxes within 60 m):", "",
              "| Split | " + " | ".join(NEAR_CLASSES) + " |", "|---" * (len(NEAR_CLASSES) + 1)
              + "|"]
    for name, res in report["splits"].items():
        per_class = res.get("near_per_class")
        if per_class:
            lines.append(f"| {name} | " + " | ".join(
                f"{_fmt(per_class[c]['ap50'])} ({per_class[c]['num_gt']})" for c in NEAR_CLASSES)
                + " |")
    return "\n".join(lines) + "\n"


def run_suite(model: str | Path, cache: str | Path, out: str | Path,
              backend: str = "onnxruntime", splits: Sequence[SuiteSplit] = SPLITS,
              sequences: int = SEQUENCES, frames: int = FRAMES,
              score_threshold: float | None = None, num_threads: int = 2, jobs: int = 2,
              progress: bool = False, plots: bool = True) -> dict[str, Any]:
    """Generate (or reuse) the splits, evaluate each, write ``suite.json`` and ``suite.md``.

    Args:
        model: ``.safetensors`` checkpoint or ``.onnx`` export.
        cache: folder of the generated splits (one subfolder per split, reused).
        out: output folder (per-split ``metrics.json`` and plots in subfolders).
        backend: runtime backend.
        splits: which splits (default :data:`SPLITS`).
        sequences / frames: size of every split.
        score_threshold: operating point; None reads the node's default.
        num_threads: CPU threads of the backend.
        jobs: splits rendered at the same time.
        progress: progress bars of the evaluation.
        plots: write each split's PNG plots.

    Returns:
        The report written to ``suite.json``.
    """
    t0 = time.perf_counter()
    cache, out = Path(cache), Path(out)
    cache.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    threshold = node_score_threshold() if score_threshold is None else float(score_threshold)
    results: dict[str, dict[str, Any]] = {s.name: {"what": s.what, **asdict(s)} for s in splits}
    wanted = list(splits)
    if any(s.look is not None for s in wanted) and not synth_supports_look():
        for s in wanted:
            if s.look is not None:
                reason = (f"skipped: the installed depthssd-data synth has no --look option, "
                          f"so the {s.look!r} look cannot be rendered")
                results[s.name].update(status="skipped", reason=reason)
                print(f"{PROG}: {s.name} {reason}", file=sys.stderr)
        wanted = [s for s in wanted if s.look is None]
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        made = dict(zip([s.name for s in wanted], pool.map(
            lambda s: ensure_split(s, cache, sequences, frames), wanted), strict=True))
    t_data = time.perf_counter()
    opts = EvalOptions(score_threshold=threshold, num_threads=num_threads)
    perceptors = make_perceptors(model, backend, threshold, opts.ap_score_threshold,
                                 num_threads) if wanted else None
    for spec in wanted:
        res = results[spec.name]
        res.update(status="evaluated", **made[spec.name])
        metrics = evaluate(model, made[spec.name]["data"], out / spec.name, backend=backend,
                           split=SPLIT, options=opts, progress=progress,
                           perceptors=perceptors, plots=plots)
        res["headline"] = headline(metrics)
        res["headline_memory_off"] = metrics["memory_ablation"]["memory_off"]
        res["near_per_class"] = metrics["near_detection"]["per_class"]
        res["missing_classes"] = {
            "near_map50": metrics["near_detection"]["missing_classes"],
            "near_visible_map50": metrics["near_visible_detection"]["missing_classes"]}
        res["eval_seconds"] = metrics["eval_seconds"]
        res["metrics_json"] = str(out / spec.name / "metrics.json")
        res["backend"] = metrics["backend"]
    rows = collect_floors(results)
    t_end = time.perf_counter()
    report = {
        "model": str(model), "backend": backend, "operating_point": threshold,
        "sequences": sequences, "frames": frames, "seed": SEED,
        "held_out_tolerance": HELD_OUT_TOLERANCE,
        "floors": rows,
        "summary": {"met": sum(r["met"] is True for r in rows),
                    "missed": sum(r["met"] is False for r in rows),
                    "not_measured": sum(r["met"] is None for r in rows)},
        "splits": results,
        "seconds": {"data": t_data - t0, "evaluation": t_end - t_data, "total": t_end - t0},
    }
    (out / "suite.json").write_text(json.dumps(json_safe(report), indent=2))
    (out / "suite.md").write_text(markdown(report))
    return report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, type=Path,
                        help=".safetensors checkpoint or .onnx export")
    parser.add_argument("--cache", type=Path, default=Path("runs/suite_data"),
                        help="where the generated splits are kept and reused")
    parser.add_argument("--out", type=Path, default=Path("runs/suite"), help="output folder")
    parser.add_argument("--backend", default="onnxruntime",
                        choices=("onnxruntime", "torch", "auto"), help="runtime backend")
    parser.add_argument("--splits", nargs="+", choices=[s.name for s in SPLITS],
                        help="only these splits (default: all)")
    parser.add_argument("--sequences", type=int, default=SEQUENCES)
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--score-threshold", type=float, default=None,
                        help="operating point (default: the node's, config/depthssd.yaml)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the backend")
    parser.add_argument("--jobs", type=int, default=2, help="splits rendered at once")
    parser.add_argument("--progress", action="store_true", help="show progress bars")
    parser.add_argument("--no-plots", action="store_true", help="skip the per-split plots")
    return parser


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.sequences < 1 or args.frames < 1:
        raise ValueError("--sequences and --frames must be at least 1")
    if not args.model.is_file():
        raise ValueError(f"--model {args.model}: file not found")
    splits = [s for s in SPLITS if args.splits is None or s.name in args.splits]
    report = run_suite(args.model, args.cache, args.out, backend=args.backend, splits=splits,
                       sequences=args.sequences, frames=args.frames,
                       score_threshold=args.score_threshold, num_threads=args.threads,
                       jobs=args.jobs, progress=args.progress, plots=not args.no_plots)
    print(markdown(report), end="")
    print(f"{PROG}: wrote {args.out / 'suite.json'} and {args.out / 'suite.md'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (1 with one readable line on bad input)."""
    from depthssd_train.cli import run_cli

    return run_cli(PROG, _main, argv)


if __name__ == "__main__":
    sys.exit(main())
