"""Choose the network input: pedestrian AP against latency for one model at several inputs.

Run::

    .venv/bin/python benchmarks/input_size.py --model runs/compare/new/last.safetensors \\
        --data runs/data/val640 --sizes 640x360 576x324 512x288

The checkpoint is exported to ONNX at every size (the network is fully convolutional; a model
trained on native-scale crops with scale jitter sees objects at 0.8-1.4 of their 640x360 size,
so a 512x288 input is inside what it learned), each export is evaluated on the split through
the runtime (``depthssd-eval``'s code, memory on, no ablation) and timed on ONNX Runtime,
the sizes interleaved frame by frame so the load of a shared machine hits all alike. Prints a
table and the JSON; the rule is the issue's: the full 640x360 unless a smaller input keeps the
pedestrian AP (within ``--tolerance``), decided only once the full input's pedestrian AP
reaches ``--min-ap`` (a model that finds no pedestrian at any input decides nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too
from depthssd_core.checkpoint import load_model
from depthssd_core.export import export_onnx
from depthssd_train.evaluate import EvalOptions, evaluate


def _size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def time_sizes(paths: dict[str, Path], runs: int, threads: int) -> dict[str, float]:
    """Median network time (ms) per size, the sessions run in turn frame by frame."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    sessions = {k: ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
                for k, p in paths.items()}
    feeds = {}
    for key, sess in sessions.items():
        feeds[key] = {i.name: np.random.rand(*i.shape).astype(np.float32)
                      for i in sess.get_inputs()}
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for i in range(runs + 3):
        for key, sess in sessions.items():
            t0 = time.perf_counter()
            sess.run(None, feeds[key])
            if i >= 3:
                times[key].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv: list[str] | None = None) -> int:
    """Export, evaluate and time each size; print the table and the choice."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="validation split")
    parser.add_argument("--sizes", nargs="+", default=["640x360", "576x324", "512x288"])
    parser.add_argument("--runs", type=int, default=30, help="timed frames per size")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=0.01,
                        help="pedestrian AP a smaller input may lose and still be chosen")
    parser.add_argument("--min-ap", type=float, default=0.05,
                        help="pedestrian AP the full input must reach for a decision")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for text in args.sizes:
            width, height = _size(text)
            paths[text] = export_onnx(model, Path(tmp) / f"m_{text}.onnx", height, width)
        latency = time_sizes(paths, args.runs, args.threads)
        for text, path in paths.items():
            metrics = evaluate(path, args.data, Path(tmp) / f"eval_{text}",
                               backend="onnxruntime",
                               options=EvalOptions(memory_ablation=False,
                                                   num_threads=args.threads),
                               progress=False)
            near = metrics["near_detection"]["per_class"]
            rows[text] = {"network_ms": latency[text],
                          "near_map50": metrics["near_detection"]["map50"],
                          "car_ap50": near.get("car", {}).get("ap50"),
                          "pedestrian_ap50": near.get("pedestrian", {}).get("ap50"),
                          "depth_abs_rel": metrics["depth"]["abs_rel"]}
    full = args.sizes[0]
    best = full
    ped_full = rows[full]["pedestrian_ap50"]
    decidable = ped_full is not None and ped_full >= args.min_ap
    for text in args.sizes[1:] if decidable else []:
        ped = rows[text]["pedestrian_ap50"]
        if ped is not None and ped >= ped_full - args.tolerance:
            best = text
    print(f"| input | network ms (ORT, {args.threads} threads, median) | near AP@.5 | car | "
          "pedestrian | depth AbsRel |")
    print("|---|---|---|---|---|---|")
    for text, r in rows.items():
        print(f"| {text} | {r['network_ms']:.2f} | {r['near_map50']:.3f} | "
              f"{r['car_ap50'] or 0:.3f} | {r['pedestrian_ap50'] or 0:.3f} | "
              f"{r['depth_abs_rel']:.3f} |")
    if decidable:
        print(f"input_size: chosen {best} (smallest that keeps the pedestrian AP within "
              f"{args.tolerance} of {full})")
    else:
        print(f"input_size: undecided, the pedestrian AP at {full} is below --min-ap "
              f"{args.min_ap} (too little to compare); keeping {full}")
    result = {"model": str(args.model), "data": str(args.data), "rows": rows, "chosen": best,
              "decided": decidable}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
