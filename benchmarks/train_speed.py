"""Training throughput of a recipe: images/s, data-wait share, chosen precision, CPU s/image.

Run: ``.venv/bin/python benchmarks/train_speed.py [--config config/train/default.yaml]
[--steps 40] [--warmup 5]``. Each stage of the config is trained for ``--warmup`` + ``--steps``
optimizer steps from the config's initialisation, in a temporary run directory, with the
config's data workers and threads; the warm-up steps (first renders, oneDNN kernel selection)
are left out of the figures. Prints one line per stage and a JSON summary. On a shared machine
the absolute numbers move with the load: compare stages or recipes measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too
from depthssd_train.train import train
from depthssd_train.train_config import load_config


def measure_stage(config: str, stage: int, steps: int, warmup: int,
                  overrides: list[str]) -> dict:
    """Train one stage for ``warmup`` then ``steps`` steps; figures of the timed steps."""
    with tempfile.TemporaryDirectory() as tmp:
        base = load_config(config, overrides)
        s = base.schedule[stage]
        stage_yaml = (f"{{steps: {warmup + steps}, width: {s.width}, height: {s.height}, "
                      f"batch_size: {s.batch_size}, clip_length: {s.clip_length}, "
                      f"scale_range: {list(s.scale_range)}, crops_per_clip: {s.crops_per_clip}}}")
        common = [*overrides, f"schedule=[{stage_yaml}]", "checkpoint_every=1000000",
                  "snapshot_every_images=0", "log_every=1000000"]
        cfg = load_config(config, [*common, f"run_dir={tmp}/run"])
        # The warm-up part probes the precision; the timed part resumes with its choice.
        first = train(cfg, progress=False, stop_after_steps=warmup)
        timed = train(cfg, resume=True, progress=False)
    n = timed["images_this_run"]
    return {"stage": stage, "input": f"{s.width}x{s.height}", "batch": s.batch_size,
            "clip_length": s.clip_length, "crops_per_clip": s.crops_per_clip,
            "steps": timed["steps"] - timed["start_step"], "images": n,
            "images_per_s": timed["images_per_s"], "data_wait_share": timed["data_wait_share"],
            "cpu_s_per_image": timed["cpu_s"] / max(n, 1), "precision": timed["precision"],
            "precision_probe": first["precision_probe"],
            "workers": cfg.data.num_workers, "threads": cfg.threads}


def main(argv: list[str] | None = None) -> int:
    """Measure every stage (or ``--stage``) of ``--config``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/train/default.yaml")
    parser.add_argument("--stage", type=int, action="append",
                        help="stage index to measure (repeatable; default: all)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (>= 1)")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    args = parser.parse_args(argv)
    if args.warmup < 1 or args.steps < 1:
        parser.error("--warmup and --steps must be >= 1")
    cfg = load_config(args.config, args.overrides)
    stages = args.stage or list(range(len(cfg.schedule)))
    results = []
    for index in stages:
        r = measure_stage(args.config, index, args.steps, args.warmup, args.overrides)
        results.append(r)
        print(f"train_speed: stage {index} {r['input']} B={r['batch']} T={r['clip_length']} "
              f"crops={r['crops_per_clip']}: {r['images_per_s']:.2f} images/s, data wait "
              f"{r['data_wait_share']:.1%}, {r['cpu_s_per_image']:.3f} CPU s/image, "
              f"precision {r['precision']} ({r['precision_probe']['how']}: fp32 "
              f"{r['precision_probe']['fp32_s']:.3f} s, bf16 {r['precision_probe']['bf16_s']:.3f}"
              f" s per probe step), {r['workers']} worker(s), {r['threads']} threads",
              flush=True)
    print(json.dumps({"config": args.config, "stages": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
