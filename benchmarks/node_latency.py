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
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NODE_NAME = "depthssd_bench"


def ros_environment(log_dir: str) -> dict[str, str]:
    """Variables isolating the benchmark (localhost discovery, own domain, project profile)."""
    env = {
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOG_DIR": log_dir,
        "FASTDDS_DEFAULT_PROFILES_FILE": str(REPO / "config" / "fastdds_localhost.xml"),
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
        "PYTHONUNBUFFERED": "1",
    }
    env["ROS_DOMAIN_ID"] = os.environ.get("ROS_DOMAIN_ID") or str(random.randint(102, 200))
    env.setdefault("AMENT_PREFIX_PATH", os.environ.get("AMENT_PREFIX_PATH") or sys.prefix)
    return env


def make_random_model(folder: Path) -> Path:
    """A random-weight conv_small checkpoint at the default 360x640 input (timing only)."""
    import torch

    from depthssd_core.checkpoint import save_checkpoint
    from depthssd_core.model import build_model

    torch.manual_seed(0)
    path = folder / "random_conv_small.safetensors"
    save_checkpoint(path, build_model("conv_small").eval())
    return path


def synthetic_frames(count: int, width: int, height: int, seed: int = 11) -> list[Any]:
    """``count`` frames of one synthetic driving sequence (camera 2 m high, 90 degrees)."""
    from depthssd_sim import SyntheticWorld

    world = SyntheticWorld(seed=seed, width=width, height=height, fov_deg=90.0,
                           camera_height_m=2.0, camera_pitch_rad=0.0)
    return list(world.sequence(0, count))


class Bench:
    """The publishing/receiving side: its own rclpy context spun in a background thread."""

    def __init__(self, node_name: str = NODE_NAME, extra_topics: bool = False) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image
        from vision_msgs.msg import Detection2DArray, Detection3DArray
        from visualization_msgs.msg import MarkerArray

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("depthssd_bench_client", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.lock = threading.Lock()
        self.arrivals: dict[int, float] = {}
        self.detection_counts: list[int] = []
        self.diagnostics: list[dict[str, str]] = []
        self.image_pub = self.node.create_publisher(Image, "/bench/image",
                                                    qos_profile_sensor_data)
        self.info_pub = self.node.create_publisher(CameraInfo, "/bench/camera_info",
                                                   qos_profile_sensor_data)
        prefix = f"/{node_name}"
        self.subs = [
            self.node.create_subscription(Detection2DArray, f"{prefix}/detections",
                                          self._on_detections, 10),
            self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 10),
        ]
        if extra_topics:
            # Every output, so that the soak exercises overlay/markers drawing too.
            for msg_type, topic in ((Detection3DArray, "detections_3d"), (Image, "depth"),
                                    (CameraInfo, "depth/camera_info"), (Image, "overlay"),
                                    (MarkerArray, "markers")):
                self.subs.append(self.node.create_subscription(
                    msg_type, f"{prefix}/{topic}", lambda _msg: None, 10))
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # the context went down while spinning: closing
                if self.context.ok():
                    raise
                return

    def _on_detections(self, msg: Any) -> None:
        now = time.monotonic()
        stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        with self.lock:
            self.arrivals[stamp_ns] = now
            self.detection_counts.append(len(msg.detections))

    def _on_diag(self, msg: Any) -> None:
        for status in msg.status:
            if status.name.startswith(NODE_NAME) or status.name.startswith("depthssd"):
                with self.lock:
                    self.diagnostics.append({kv.key: kv.value for kv in status.values})

    def wait_matched(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (self.image_pub.get_subscription_count() and self.info_pub.get_subscription_count()
                    and self.subs[0].get_publisher_count()):
                return
            time.sleep(0.02)
        raise RuntimeError("the perception node's topics did not match within "
                           f"{timeout_s} s")

    def messages(self, frame: Any, stamp_ns: int) -> tuple[Any, Any]:
        """(Image bgra8, CameraInfo) of a synthetic frame with the given stamp."""
        from sensor_msgs.msg import Image
        from std_msgs.msg import Header

        from depthssd_ros.conversions import intrinsics_to_camera_info

        header = Header(frame_id="ego_vehicle/rgb_front")
        header.stamp.sec, header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        h, w = frame.rgb.shape[:2]
        bgra = np.empty((h, w, 4), np.uint8)
        bgra[..., :3] = frame.rgb[..., ::-1]
        bgra[..., 3] = 255
        image = Image(header=header, height=h, width=w, encoding="bgra8", step=w * 4)
        image.data = bgra.tobytes()
        return image, intrinsics_to_camera_info(header, frame.intrinsics)

    def wait_for(self, predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        self.context.try_shutdown()
        self._thread.join(timeout=5.0)
        self.executor.shutdown()
        self.node.destroy_node()


def start_node(model: Path, backend: str, threads: int, env: dict[str, str],
               log_path: Path, node_name: str = NODE_NAME) -> subprocess.Popen:
    """The perception node process with the package's YAML and the bench topics."""
    child_env = {**os.environ, **env}
    child_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), child_env.get("PYTHONPATH", "")) if p)
    args = [sys.executable, "-m", "depthssd_ros.perception_node", "--ros-args",
            "-r", f"__node:={node_name}", "-r", "image:=/bench/image",
            "-r", "camera_info:=/bench/camera_info",
            "--params-file", str(REPO / "config" / "depthssd.yaml"),
            "-p", f"model_path:={model}", "-p", f"backend:={backend}",
            "-p", f"num_threads:={threads}"]
    log = open(log_path, "w")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=child_env,
                            cwd=str(REPO))


def wait_ready(proc: subprocess.Popen, log_path: Path, timeout_s: float = 300.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if "ready:" in text:
            return
        if proc.poll() is not None:
            raise RuntimeError(f"the node exited with {proc.returncode}:\n{text[-3000:]}")
        time.sleep(0.1)
    raise RuntimeError(f"the node was not ready within {timeout_s} s")


def stop_node(proc: subprocess.Popen) -> int:
    if proc.poll() is None:
        proc.send_signal(2)  # SIGINT, like Ctrl-C
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def stream(bench: Bench, frames: list[Any], count: int, rate_hz: float, start_ns: int,
           on_frame=None) -> dict[int, float]:
    """Publish ``count`` frames (cycling through ``frames``) at ``rate_hz``; sent times."""
    period_ns = round(1e9 / rate_hz)
    sent: dict[int, float] = {}
    messages = [bench.messages(f, 0) for f in frames]
    t0 = time.monotonic()
    for i in range(count):
        image, info = messages[i % len(messages)]
        stamp_ns = start_ns + i * period_ns
        image.header.stamp.sec, image.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        info.header.stamp = image.header.stamp
        bench.info_pub.publish(info)
        sent[stamp_ns] = time.monotonic()
        bench.image_pub.publish(image)
        if on_frame is not None:
            on_frame(i)
        time.sleep(max(0.0, t0 + (i + 1) / rate_hz - time.monotonic()))
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model file (default: the shipped model)")
    parser.add_argument("--random-model", action="store_true",
                        help="time a random-weight conv_small (no trained model needed)")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rate", type=float, default=20.0, help="input rate, Hz")
    parser.add_argument("--frames", type=int, default=400, help="frames timed")
    parser.add_argument("--warmup", type=int, default=40, help="frames sent before timing")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args(argv)

    from depthssd_ros.params import shipped_model_path

    tmp = Path(tempfile.mkdtemp(prefix="depthssd_node_latency_"))
    model = make_random_model(tmp) if args.random_model else (args.model or shipped_model_path())
    if not model.is_file():
        print(f"model file not found: {model} (pass --model or --random-model)", file=sys.stderr)
        return 2
    env = ros_environment(str(tmp / "ros_log"))
    os.environ.update(env)
    frames = synthetic_frames(40, args.width, args.height)
    log_path = tmp / "node.log"
    proc = start_node(model, args.backend, args.threads, env, log_path)
    bench = None
    try:
        wait_ready(proc, log_path)
        bench = Bench()
        bench.wait_matched()
        # Warm-up: session start, caches; then let the node's latency window refill.
        sent = stream(bench, frames, args.warmup, args.rate, 10_000_000_000)
        bench.wait_for(lambda: max(sent) in bench.arrivals, 60.0)
        with bench.lock:
            before = dict(bench.diagnostics[-1]) if bench.diagnostics else {}
            bench.arrivals.clear()
            bench.detection_counts.clear()
        start_ns = 20_000_000_000 + args.warmup * round(1e9 / args.rate)
        sent = stream(bench, frames, args.frames, args.rate, start_ns)
        bench.wait_for(lambda: max(sent) in bench.arrivals, 30.0)
        n_diag = len(bench.diagnostics)
        bench.wait_for(lambda: len(bench.diagnostics) >= n_diag + 2, 10.0)
        with bench.lock:
            diag = dict(bench.diagnostics[-1])
            arrivals = dict(bench.arrivals)
            counts = list(bench.detection_counts)
    finally:
        if bench is not None:
            bench.close()
        code = stop_node(proc)

    latencies_ms = np.array([(arrivals[s] - t) * 1000.0 for s, t in sent.items()
                             if s in arrivals])
    dropped = int(diag["frames_dropped"]) - int(before.get("frames_dropped", 0))
    lost = len(sent) - len(latencies_ms)
    runtime_p50 = float(diag["runtime_latency_p50_ms"])
    e2e_p50 = float(np.median(latencies_ms)) if latencies_ms.size else float("nan")
    results = {
        "model": str(model), "random_weights": args.random_model, "backend": diag["backend"],
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
