"""Soak test of the perception node: memory and threads stay flat over thousands of frames.

The node runs as its own process (``node_bench.py``'s helpers, as in ``node_latency.py``) and
is fed ``--frames`` synthetic 640x360 bgra8 frames at ``--rate`` Hz, with every output subscribed
(detections, 3D detections, depth, depth camera_info, overlay, markers) so every code path
runs. Every ``--sample-every`` frames the node's resident memory (``VmRSS``) and thread count
are read from ``/proc/<pid>/status``. After the warm-up (``--warmup-frac`` of the frames) the
resident memory must grow by less than 5 % and the thread count must not change.

    python benchmarks/node_soak.py --random-model --frames 10000 --rate 20
    python benchmarks/node_soak.py --model models/depthssd_conv_small.safetensors

The rate must be one the node sustains (drops are counted and reported, not an error: the
latest-frame policy drops on purpose). Exit code 0 when both criteria hold.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import node_bench as nb  # sibling module: node process and client helpers


def proc_status(pid: int) -> tuple[int, int]:
    """(VmRSS in KiB, thread count) of a process, from /proc/<pid>/status."""
    rss_kib = threads = -1
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kib = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss_kib, threads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    nb.add_node_arguments(parser)
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--warmup-frac", type=float, default=0.1,
                        help="fraction of the frames before the memory baseline")
    parser.add_argument("--sample-every", type=int, default=100)
    args = parser.parse_args(argv)

    run = nb.NodeRun.start(args, "depthssd_node_soak_")
    if run is None:
        return 2
    samples: list[dict[str, float]] = []
    started = time.monotonic()

    def sample(i: int) -> None:
        if i % args.sample_every == 0 or i == args.frames - 1:
            rss_kib, threads = proc_status(run.proc.pid)
            samples.append({"frame": i, "t_s": time.monotonic() - started,
                            "rss_mib": rss_kib / 1024.0, "threads": threads})

    try:
        frames = nb.synthetic_frames(40, args.width, args.height)
        bench = run.connect(extra_topics=True)
        started = time.monotonic()
        sent = nb.stream(bench, frames, args.frames, args.rate, 10_000_000_000, on_frame=sample)
        diag = bench.last_report_after(sent, 60.0)
        with bench.lock:
            answered = len(bench.arrivals)
    finally:
        code = run.stop()

    warm = [s for s in samples if s["frame"] >= args.warmup_frac * args.frames]
    base, last = warm[0], warm[-1]
    growth = (last["rss_mib"] - base["rss_mib"]) / base["rss_mib"]
    thread_counts = sorted({s["threads"] for s in warm})
    results = {
        "model": str(run.model), "random_weights": args.random_model, "backend": diag["backend"],
        "frames": args.frames, "rate_hz": args.rate, "size": f"{args.width}x{args.height}",
        "duration_s": samples[-1]["t_s"], "cpu_count": os.cpu_count(),
        "load_avg_1min": os.getloadavg()[0],
        "frames_received": int(diag["frames_received"]),
        "frames_processed": int(diag["frames_processed"]),
        "frames_dropped": int(diag["frames_dropped"]),
        "frames_rejected": int(diag["frames_rejected"]),
        "errors": int(diag["errors"]), "detection_arrays_received": answered,
        "rss_mib_first_sample": samples[0]["rss_mib"],
        "rss_mib_after_warmup": base["rss_mib"], "rss_mib_end": last["rss_mib"],
        "rss_mib_max_after_warmup": max(s["rss_mib"] for s in warm),
        "rss_growth_after_warmup": growth,
        "threads_after_warmup": thread_counts,
        "runtime_latency_p50_ms": float(diag["runtime_latency_p50_ms"]),
        "node_latency_p50_ms": float(diag["node_latency_p50_ms"]),
        "node_exit_code": code,
        "samples": samples,
    }
    results["pass_memory"] = growth < 0.05
    results["pass_threads"] = len(thread_counts) == 1
    text = json.dumps(results, indent=2)
    print(json.dumps({k: v for k, v in results.items() if k != "samples"}, indent=2))
    if args.json:
        args.json.write_text(text + "\n")
    ok = results["pass_memory"] and results["pass_threads"] and code == 0
    return 0 if ok and results["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
