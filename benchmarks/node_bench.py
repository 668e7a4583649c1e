"""What the node benchmarks share: the perception node as a process of its own, and a client.

``node_latency.py``, ``node_soak.py`` and ``node_input_stress.py`` each start the node
(``python -m depthssd_ros.perception_node`` with ``config/depthssd.yaml``, remapped to the
bench topics) on an isolated ROS environment, feed it synthetic bgra8 frames from a
:class:`Bench` and read its /diagnostics. The client node spins as the tests' does
(``test/ros_env.py`` ``SpinningNode``).
"""

from __future__ import annotations

import argparse
import os
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
sys.path.insert(0, str(REPO / "test"))

from ros_env import SpinningNode  # noqa: E402  (test/: the tests' background client node)

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


class Bench(SpinningNode):
    """The publishing/receiving side: its own rclpy context spun in a background thread."""

    def __init__(self, node_name: str = NODE_NAME, extra_topics: bool = False) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import CameraInfo, Image
        from vision_msgs.msg import Detection2DArray, Detection3DArray
        from visualization_msgs.msg import MarkerArray

        super().__init__("depthssd_bench_client")
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

    def last_report_after(self, sent: dict[int, float], answer_timeout_s: float,
                          ) -> dict[str, str]:
        """The node's /diagnostics values once the last frame of ``sent`` is answered (or
        ``answer_timeout_s`` passed) and two more reports arrived, so they count every frame."""
        self.wait_for(lambda: max(sent) in self.arrivals, answer_timeout_s)
        n_diag = len(self.diagnostics)
        self.wait_for(lambda: len(self.diagnostics) >= n_diag + 2, 10.0)
        with self.lock:
            return dict(self.diagnostics[-1])

    def wait_for(self, predicate, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return True
            time.sleep(0.01)
        return False


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


def add_node_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of every node benchmark: model, backend, threads, input rate, JSON file."""
    parser.add_argument("--model", type=Path, help="model file (default: the shipped model)")
    parser.add_argument("--random-model", action="store_true",
                        help="use a random-weight conv_small (no trained model needed)")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rate", type=float, default=20.0, help="input rate, Hz")
    parser.add_argument("--json", type=Path, help="write the results here")


def model_file(args: argparse.Namespace, folder: Path) -> Path | None:
    """The model of a run: a random one written to ``folder`` with ``--random-model``, else
    ``--model`` or the shipped model; None, after one line on stderr, when it does not exist."""
    from depthssd_ros.params import shipped_model_path

    model = make_random_model(folder) if args.random_model else (
        args.model or shipped_model_path())
    if not model.is_file():
        print(f"model file not found: {model} (pass --model or --random-model)", file=sys.stderr)
        return None
    return model


class NodeRun:
    """The perception node process of one run (log in ``folder``) and the bench talking to it."""

    def __init__(self, model: Path, args: argparse.Namespace, folder: Path) -> None:
        self.model = model
        env = ros_environment(str(folder / "ros_log"))
        os.environ.update(env)  # this process's client joins the node's isolated domain
        self.log_path = folder / "node.log"
        self.proc = start_node(model, args.backend, args.threads, env, self.log_path)
        self.bench: Bench | None = None

    @classmethod
    def start(cls, args: argparse.Namespace, prefix: str) -> NodeRun | None:
        """The node started on :func:`model_file`'s model, logging to a new temporary folder
        named ``prefix...``; None (after one line on stderr) when the model file is missing."""
        folder = Path(tempfile.mkdtemp(prefix=prefix))
        model = model_file(args, folder)
        return None if model is None else cls(model, args, folder)

    def connect(self, **bench_options: Any) -> Bench:
        """Wait for the node's ``ready:`` line, then a :class:`Bench` matched with it."""
        wait_ready(self.proc, self.log_path)
        self.bench = Bench(**bench_options)
        self.bench.wait_matched()
        return self.bench

    def stop(self) -> int:
        """Close the bench and stop the node like Ctrl-C; the node's exit code."""
        if self.bench is not None:
            self.bench.close()
        return stop_node(self.proc)
