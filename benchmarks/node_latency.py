"""End-to-end latency of the perception node as a ROS process, against the runtime's own latency.

The node runs in its own process (``python -m depthssd_ros.perception_node``, ONNX Runtime on
the CPU by default). This script, a second process, publishes synthetic 640x360 bgra8 frames
(with their camera_info) at ``--rate`` Hz with sensor-data QoS, as carla-ros-bridge does, and
times each frame from just before ``publish`` to the arrival of its Detection2DArray (matched
by stamp). The node's own figures come from its /diagnostics: the runtime's latency
(``Perceptor.process``: pre-processing, inference, decoding, distances, tracking) and the
node's latency (image callback to detections published) over its last 200 frames.

Pass criteria (issue 6): no frame dropped at 20 Hz, and the median end-to-end latency at most
the runtime's median + 3 ms (the node and both DDS hops add at most 3 ms).

    python benchmarks/node_latency.py --model models/depthssd_conv_small.safetensors
    python benchmarks/node_latency.py --random-model   # timing only, before a model is trained

Exit code 0 when both criteria hold, 1 otherwise; ``--json`` writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import node_bench as nb  # sibling module: node process and client helpers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    nb.add_node_arguments(parser)
    parser.add_argument("--frames", type=int, default=400, help="frames timed")
    parser.add_argument("--warmup", type=int, default=40, help="frames sent before timing")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    args = parser.parse_args(argv)

    run = nb.NodeRun.start(args, "depthssd_node_latency_")
    if run is None:
        return 2
    try:
        frames = nb.synthetic_frames(40, args.width, args.height)
        bench = run.connect()
        # Warm-up: session start, caches; then let the node's latency window refill.
        sent = nb.stream(bench, frames, args.warmup, args.rate, 10_000_000_000)
        bench.wait_for(lambda: max(sent) in bench.arrivals, 60.0)
        with bench.lock:
            before = dict(bench.diagnostics[-1]) if bench.diagnostics else {}
            bench.arrivals.clear()
            bench.detection_counts.clear()
        start_ns = 20_000_000_000 + args.warmup * round(1e9 / args.rate)
        sent = nb.stream(bench, frames, args.frames, args.rate, start_ns)
        diag = bench.last_report_after(sent, 30.0)
        with bench.lock:
            arrivals = dict(bench.arrivals)
            counts = list(bench.detection_counts)
    finally:
        code = run.stop()

    latencies_ms = np.array([(arrivals[s] - t) * 1000.0 for s, t in sent.items()
                             if s in arrivals])
    dropped = int(diag["frames_dropped"]) - int(before.get("frames_dropped", 0))
    lost = len(sent) - len(latencies_ms)
    runtime_p50 = float(diag["runtime_latency_p50_ms"])
    e2e_p50 = float(np.median(latencies_ms)) if latencies_ms.size else float("nan")
    results = {
        "model": str(run.model), "random_weights": args.random_model, "backend": diag["backend"],
        "threads": args.threads, "rate_hz": args.rate, "frames": args.frames,
        "size": f"{args.width}x{args.height}", "host": platform.node(),
        "cpu_count": os.cpu_count(), "load_avg_1min": os.getloadavg()[0],
        "frames_without_answer": lost, "node_dropped": dropped,
        "node_rejected": int(diag["frames_rejected"]) - int(before.get("frames_rejected", 0)),
        "e2e_latency_ms": {q: float(np.percentile(latencies_ms, int(q[1:])))
                           for q in ("p50", "p90", "p95", "p99")} if latencies_ms.size else {},
        "e2e_latency_max_ms": float(latencies_ms.max()) if latencies_ms.size else None,
        "node_latency_ms": {"p50": float(diag["node_latency_p50_ms"]),
                            "p95": float(diag["node_latency_p95_ms"])},
        "runtime_latency_ms": {"p50": runtime_p50,
                               "p95": float(diag["runtime_latency_p95_ms"])},
        "node_queue_wait_ms": {"p50": float(diag["queue_wait_p50_ms"]),
                               "p95": float(diag["queue_wait_p95_ms"])},
        "node_overhead_ms": {"p50": float(diag["node_overhead_p50_ms"]),
                             "p95": float(diag["node_overhead_p95_ms"])},
        "overhead_p50_ms": e2e_p50 - runtime_p50,
        "mean_detections": float(np.mean(counts)) if counts else 0.0,
        "node_exit_code": code,
    }
    results["pass_no_drop"] = dropped == 0 and lost == 0
    results["pass_overhead"] = results["overhead_p50_ms"] <= 3.0
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if results["pass_no_drop"] and results["pass_overhead"] and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
