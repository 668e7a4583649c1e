"""Does the perception node tell the truth about its input? Five stress scenarios, measured.

The node runs as its own process (``node_bench.py``'s helpers) on synthetic 640x360 bgra8
frames at ``--rate`` Hz, and this script counts what the README's claims rest on:

* ``alternating_k``: intrinsics alternate between 90 and 60 degrees every frame, camera_info
  sent after its image for half the frames; answered frames whose ``~/depth/camera_info``
  carries another frame's K (``wrong_k``), and how many the node counted as fallbacks;
* ``bad_camera_info``: 100 frames, every 10th with a NaN K; valid frames lost (``good_lost``)
  and NaN frames processed anyway (``nan_processed``);
* ``stamps_back_and_forth``: 100 frames whose stamps jump 0.5 s back and 0.6 s forth; memory
  resets and the ``memory reset`` log lines they produced;
* ``stall`` and ``reject_storm``: 5 s without images, 5 s of unknown-encoding frames; the
  /diagnostics levels and messages seen meanwhile.

    .venv/bin/python benchmarks/node_input_stress.py --random-model
    .venv/bin/python benchmarks/node_input_stress.py --model models/depthssd_conv_small.safetensors

Exit code 0 when no answered frame carried another frame's K without being counted, no valid
frame was lost to another frame's camera_info, and both the stall and the storm were WARN.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import node_bench as nb  # sibling module: node process and client helpers


class Probe:
    """Extra subscriptions on the bench's node: output K per stamp, diagnostics levels."""

    def __init__(self, bench: nb.Bench) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CameraInfo

        self.bench = bench
        self.k_by_stamp: dict[int, tuple[float, ...]] = {}
        self.levels: list[tuple[float, int, str, dict[str, str]]] = []
        node = bench.node
        self._subs = [
            node.create_subscription(CameraInfo, f"/{nb.NODE_NAME}/depth/camera_info",
                                     self._on_info, 10),
            node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10)]

    def _on_info(self, msg) -> None:
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.bench.lock:
            self.k_by_stamp[stamp] = tuple(msg.k)

    def _on_diag(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith(nb.NODE_NAME):
                values = {kv.key: kv.value for kv in status.values}
                with self.bench.lock:
                    self.levels.append((time.monotonic(), ord(status.level), status.message,
                                        values))

    def diag_after(self, t: float, timeout_s: float = 15.0) -> dict[str, str]:
        """The first diagnostics values published after ``t`` (monotonic)."""
        self.bench.wait_for(lambda: any(x[0] > t for x in self.levels), timeout_s)
        with self.bench.lock:
            return next(x[3] for x in self.levels if x[0] > t)

    def levels_between(self, t0: float, t1: float) -> list[tuple[int, str]]:
        with self.bench.lock:
            return [(level, message) for t, level, message, _ in self.levels if t0 <= t <= t1]


def _pace(start: float, i: int, rate_hz: float) -> None:
    time.sleep(max(0.0, start + (i + 1) / rate_hz - time.monotonic()))


def _settled(probe: Probe) -> dict[str, str]:
    """Diagnostics once nothing is in flight: the second report after a short quiet time."""
    time.sleep(0.5)
    probe.diag_after(time.monotonic())
    return probe.diag_after(time.monotonic())


def alternating_k(bench: nb.Bench, probe: Probe, frames: list, rate_hz: float,
                  stamp0_ns: int) -> dict:
    from depthssd_core.geometry import CameraIntrinsics
    from depthssd_ros.conversions import intrinsics_to_camera_info

    before = probe.diag_after(time.monotonic())
    sent: dict[int, tuple[float, ...]] = {}
    start = time.monotonic()
    count = 60
    for i in range(count):
        frame = frames[i % len(frames)]
        h, w = frame.rgb.shape[:2]
        fov = 90.0 if i % 2 == 0 else 60.0
        stamp = stamp0_ns + i * round(1e9 / rate_hz)
        image, _ = bench.messages(frame, stamp)
        info = intrinsics_to_camera_info(image.header, CameraIntrinsics.from_fov(w, h, fov))
        sent[stamp] = tuple(info.k)
        if i % 2 == 0:
            bench.info_pub.publish(info)
        bench.image_pub.publish(image)
        if i % 2 == 1:
            bench.info_pub.publish(info)
        _pace(start, i, rate_hz)
    after = _settled(probe)
    with bench.lock:
        answered = {s: k for s, k in probe.k_by_stamp.items() if s in sent}
    wrong = sum(1 for s, k in answered.items() if not all(
        math.isclose(a, b, rel_tol=1e-9) for a, b in zip(k, sent[s], strict=True)))
    return {"sent": count, "answered": len(answered), "wrong_k": wrong,
            "fallback_counted": int(after["frames_camera_info_fallback"])
            - int(before["frames_camera_info_fallback"])}


def bad_camera_info(bench: nb.Bench, probe: Probe, frames: list, rate_hz: float,
                    stamp0_ns: int) -> dict:
    before = probe.diag_after(time.monotonic())
    start = time.monotonic()
    count = 100
    nan_stamps, good_stamps = set(), set()
    for i in range(count):
        stamp = stamp0_ns + i * round(1e9 / rate_hz)
        image, info = bench.messages(frames[i % len(frames)], stamp)
        if i % 10 == 5:
            info.k = [math.nan, *list(info.k[1:])]
            nan_stamps.add(stamp)
        else:
            good_stamps.add(stamp)
        bench.info_pub.publish(info)
        bench.image_pub.publish(image)
        _pace(start, i, rate_hz)
    after = _settled(probe)
    with bench.lock:
        answered = set(bench.arrivals)
    d = {k: int(after[k]) - int(before[k]) for k in (
        "frames_received", "frames_processed", "frames_dropped", "frames_rejected",
        "rejected_camera_info_invalid")}
    # A valid frame the node received is lost to a camera_info only if it was rejected for
    # one: the rejections beyond the NaN frames' own.
    good_lost = d["frames_rejected"] - d["rejected_camera_info_invalid"]
    return {"sent": count, "nan_frames": len(nan_stamps),
            "nan_processed": len(nan_stamps & answered),
            "good_answered": len(good_stamps & answered), "good_lost": good_lost, **d}


def stamps_back_and_forth(bench: nb.Bench, probe: Probe, frames: list, rate_hz: float,
                          stamp0_ns: int, log_path: Path) -> dict:
    before = probe.diag_after(time.monotonic())
    lines_before = log_path.read_text(errors="replace").count("memory reset:")
    start = time.monotonic()
    count = 100
    stamp = stamp0_ns
    for i in range(count):
        stamp += -500_000_000 if i % 2 else 600_000_000
        image, info = bench.messages(frames[i % len(frames)], stamp)
        bench.info_pub.publish(info)
        bench.image_pub.publish(image)
        _pace(start, i, rate_hz)
    after = _settled(probe)
    lines = log_path.read_text(errors="replace").count("memory reset:") - lines_before
    return {"sent": count,
            "frames_processed": int(after["frames_processed"]) - int(before["frames_processed"]),
            "memory_resets": int(after["memory_resets"]) - int(before["memory_resets"]),
            "memory_reset_log_lines": lines,
            "log_lines_suppressed": int(after["log_lines_suppressed"])
            - int(before["log_lines_suppressed"])}


def stall_and_storm(bench: nb.Bench, probe: Probe, frames: list, rate_hz: float,
                    stamp0_ns: int) -> dict:
    t0 = time.monotonic()
    time.sleep(5.0)
    t1 = time.monotonic()
    stall = probe.levels_between(t0, t1)
    start = time.monotonic()
    i = 0
    while time.monotonic() < start + 5.0:
        image, info = bench.messages(frames[i % len(frames)], stamp0_ns + i * 50_000_000)
        image.encoding = "yuv422"
        bench.info_pub.publish(info)
        bench.image_pub.publish(image)
        _pace(start, i, rate_hz)
        i += 1
    storm = probe.levels_between(start, time.monotonic() + 0.1)
    return {"stall_levels": sorted({lvl for lvl, _ in stall}),
            "stall_last_message": stall[-1][1] if stall else "",
            "storm_frames": i, "storm_levels": sorted({lvl for lvl, _ in storm}),
            "storm_last_message": storm[-1][1] if storm else ""}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    nb.add_node_arguments(parser)
    args = parser.parse_args(argv)

    run = nb.NodeRun.start(args, "depthssd_input_stress_")
    if run is None:
        return 2
    results: dict = {"model": str(run.model), "random_weights": args.random_model,
                     "rate_hz": args.rate, "cpu_count": os.cpu_count()}
    try:
        frames = nb.synthetic_frames(20, 640, 360)
        bench = run.connect()
        probe = Probe(bench)
        # Warm-up: the first inference builds the ONNX Runtime session's caches.
        warm = nb.stream(bench, frames, 10, 5.0, 1_000_000_000)
        bench.wait_for(lambda: max(warm) in bench.arrivals, 120.0)
        results["alternating_k"] = alternating_k(bench, probe, frames, args.rate,
                                                 100_000_000_000)
        results["bad_camera_info"] = bad_camera_info(bench, probe, frames, args.rate,
                                                     200_000_000_000)
        results["stamps_back_and_forth"] = stamps_back_and_forth(
            bench, probe, frames, args.rate, 300_000_000_000, run.log_path)
        results.update(stall_and_storm(bench, probe, frames, args.rate, 400_000_000_000))
        results["load_avg_1min"] = os.getloadavg()[0]
    finally:
        results["node_exit_code"] = run.stop()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    alt, bad = results["alternating_k"], results["bad_camera_info"]
    ok = (alt["wrong_k"] <= alt["fallback_counted"] and bad["good_lost"] == 0
          and bad["nan_processed"] == 0 and 1 in results["stall_levels"]
          and 1 in results["storm_levels"] and results["node_exit_code"] == 0)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
