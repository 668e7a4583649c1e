"""``make demo``: the synthetic camera, the perception node and the planner, live, for S seconds.

``python -m depthssd_ros.demo --duration 20 --out out/demo`` runs real ROS 2 nodes talking over
real topics (``ros2 launch`` is the way with a ROS 2 installation:
``ros2 launch depthssd_ros carla_demo.launch.py source:=synthetic``):

- ``synthetic_camera``, in its own process like a simulator, publishes the synthetic world on
  carla-ros-bridge's topics with ``/clock`` and ground truth (``config/synthetic_camera.yaml``);
- in this process, on a ``MultiThreadedExecutor``: ``depthssd_node`` runs the model on
  ``/carla/ego_vehicle/rgb_front/image`` (``config/depthssd.yaml``; the shipped model unless
  ``--model``), ``planner_example`` turns its detections into a nearest distance, a time to
  contact and an advisory (``config/planner.yaml``), and a recorder node subscribes to all of
  it like any other ROS node: it scores detections, distances and depth against the ground
  truth topic (:mod:`depthssd_ros.live_evaluator`), prints a one-line status and writes
  ``<out>/demo.mp4`` (GIF if no MP4 encoder), ``<out>/contact_sheet.png`` and
  ``<out>/metrics.json``.

Unless already set, the processes use localhost-only discovery, the package's Fast DDS profile
(large images over shared memory) and a ROS log folder inside ``--out``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthssd_ros.live_evaluator import LabelledBox, LiveEvaluator

PACKAGE = "depthssd_ros"
PERCEPTION_NODE = "depthssd_node"
VIDEO_FRAMES_MAX = 1500  # about 1.5 MB each: a bound on memory for long runs
STATUS_PERIOD_S = 0.5
BAR_PX = 30
ADVISORY_BGR = {"none": (90, 170, 90), "caution": (0, 190, 255), "brake": (40, 40, 230)}


def package_file(*parts: str) -> Path:
    """A file of the package: the installed share folder if any, else the source checkout."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            candidate = Path(get_package_share_directory(PACKAGE)).joinpath(*parts)
            if candidate.exists():
                return candidate
        except (PackageNotFoundError, OSError):  # OSError: AMENT_PREFIX_PATH is not set
            pass
    except ImportError:
        pass
    return Path(__file__).resolve().parents[1].joinpath(*parts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line of the demo."""
    from depthssd_ros.params import BACKENDS

    parser = argparse.ArgumentParser(
        prog="depthssd_demo",
        description="Run the synthetic camera, depthssd_node and planner_example as ROS 2 "
                    "nodes for a fixed time; write an annotated video, a contact sheet and "
                    "metrics.json.")
    parser.add_argument("--duration", type=float, default=20.0,
                        help="seconds to run after the model is loaded (default 20)")
    parser.add_argument("--out", type=Path, default=Path("out/demo"),
                        help="output folder (default out/demo)")
    parser.add_argument("--model", type=Path, default=None,
                        help="model file (.safetensors or .onnx); default: the shipped model")
    parser.add_argument("--backend", default="auto", choices=BACKENDS,
                        help="inference backend (default auto)")
    parser.add_argument("--threads", type=int, default=2, help="inference CPU threads")
    parser.add_argument("--seed", type=int, default=None,
                        help="synthetic world seed (default: config/synthetic_camera.yaml)")
    parser.add_argument("--width", type=int, default=None, help="camera width override")
    parser.add_argument("--height", type=int, default=None, help="camera height override")
    parser.add_argument("--rate-hz", type=float, default=None, help="camera rate override")
    parser.add_argument("--no-video", action="store_true", help="skip the video file")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.duration) and args.duration > 0):
        parser.error(f"--duration must be a positive number of seconds, got {args.duration}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    for name in ("width", "height"):
        value = getattr(args, name)
        if value is not None and value < 32:
            parser.error(f"--{name} must be at least 32 pixels, got {value}")
    if args.rate_hz is not None and not args.rate_hz > 0:
        parser.error(f"--rate-hz must be positive, got {args.rate_hz}")
    return args


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _json_clean(value: Any) -> Any:
    """JSON has no NaN or infinity: those become null."""
    if isinstance(value, dict):
        return {k: _json_clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_clean(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return _finite_or_none(float(value))
    if isinstance(value, np.integer):
        return int(value)
    return value


def colorize_depth(depth_m: np.ndarray, near_m: float = 1.0, far_m: float = 100.0) -> np.ndarray:
    """BGR picture of a depth map on a log scale (near = warm); NaN black."""
    d = np.nan_to_num(depth_m.astype(np.float32), nan=far_m * 10.0, posinf=far_m * 10.0)
    scaled = np.log(np.clip(d, near_m, far_m) / near_m) / math.log(far_m / near_m)
    img = cv2.applyColorMap((255 * (1.0 - scaled)).astype(np.uint8), cv2.COLORMAP_TURBO)
    img[~np.isfinite(depth_m)] = 0
    return img


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5,
          colour: tuple[int, int, int] = (255, 255, 255)) -> None:
    # A dark box behind the text keeps it readable on any background (an outline drawn with a
    # thicker stroke does not line up: OpenCV 5's font gets wider as it gets bolder).
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = org
    cv2.rectangle(img, (x - 2, y - h - 2), (x + w + 2, y + base), (20, 20, 20), -1)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def _labelled_boxes(msg) -> list[LabelledBox]:
    """Detection2DArray -> LabelledBox list (class name, box, z distance, score, id)."""
    out = []
    for det in msg.detections:
        if not det.results:
            continue
        res = det.results[0]
        cx, cy = det.bbox.center.position.x, det.bbox.center.position.y
        hw, hh = det.bbox.size_x / 2.0, det.bbox.size_y / 2.0
        out.append(LabelledBox(res.hypothesis.class_id, (cx - hw, cy - hh, cx + hw, cy + hh),
                               float(res.pose.pose.position.z), float(res.hypothesis.score),
                               det.id))
    return out


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def _make_recorder(context, topics: dict[str, str], record_video: bool):
    """The recorder node (built here so rclpy is imported only when the demo runs)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
    from rclpy.node import Node
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import CameraInfo, Image
    from std_msgs.msg import Float32, String
    from vision_msgs.msg import Detection2DArray

    from depthssd_ros.conversions import image_to_depth, image_to_frame

    class DemoRecorder(Node):
        """Subscribes to the pipeline's topics, scores, composes video frames, prints status."""

        def __init__(self) -> None:
            super().__init__("depthssd_demo_recorder", context=context)
            self.evaluator = LiveEvaluator()
            self.publish_time: OrderedDict[int, float] = OrderedDict()
            self.latency_ms: list[float] = []
            self.output_times: list[float] = []
            self.camera_times: list[float] = []
            self.objects_last = 0
            self.truth: OrderedDict[int, list[LabelledBox]] = OrderedDict()
            self.parts: OrderedDict[int, dict[str, Any]] = OrderedDict()
            self.video: list[np.ndarray] = []
            self.video_stamps: list[int] = []
            self.record_video = record_video
            self.advisory = "none"
            self.nearest_m = math.inf
            self.ttc_s = math.inf
            self.decisions: list[dict[str, Any]] = []
            self.advisory_counts: Counter[str] = Counter()
            self.started = time.monotonic()
            self.lock = threading.Lock()
            group = MutuallyExclusiveCallbackGroup()
            reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

            def sub(msg_type, topic, callback):
                self.create_subscription(msg_type, topic, callback, reliable,
                                         callback_group=group)

            sub(CameraInfo, topics["camera_info"], self._on_camera_info)
            sub(Detection2DArray, topics["truth"], self._on_truth)
            sub(Image, topics["true_depth"], self._on_true_depth)
            sub(Detection2DArray, topics["detections"], self._on_detections)
            sub(Image, topics["depth"], self._on_depth)
            if record_video:
                sub(Image, topics["overlay"], self._on_overlay)
            sub(DiagnosticArray, "/diagnostics", self._on_diagnostics)
            self.node_diagnostics: dict[str, str] = {}
            sub(String, topics["advisory"], self._on_advisory)
            sub(Float32, topics["nearest"], self._on_nearest)
            sub(Float32, topics["ttc"], self._on_ttc)

        # -------------------------------------------------------------- inputs
        def _on_camera_info(self, msg) -> None:
            # The camera publishes camera_info just before the image of the same stamp: its
            # arrival marks when the frame left the camera (within a millisecond here).
            now = time.monotonic()
            with self.lock:
                self.publish_time[_stamp_ns(msg.header)] = now
                self.camera_times.append(now)
                while len(self.publish_time) > 500:
                    self.publish_time.popitem(last=False)

        def _on_truth(self, msg) -> None:
            stamp = _stamp_ns(msg.header)
            boxes = _labelled_boxes(msg)
            self.truth[stamp] = boxes
            while len(self.truth) > 200:
                self.truth.popitem(last=False)
            self.evaluator.add_truth(stamp, boxes)
            self._try_compose(stamp)

        def _on_true_depth(self, msg) -> None:
            self.evaluator.add_true_depth(_stamp_ns(msg.header), image_to_depth(msg))

        def _on_detections(self, msg) -> None:
            now = time.monotonic()
            stamp = _stamp_ns(msg.header)
            with self.lock:
                sent = self.publish_time.get(stamp)
                if sent is not None:
                    self.latency_ms.append(1000.0 * (now - sent))
                self.output_times.append(now)
            boxes = _labelled_boxes(msg)
            self.objects_last = len(boxes)
            self.evaluator.add_detections(stamp, boxes)
            self._part(stamp)["detections"] = boxes
            self._try_compose(stamp)

        def _on_depth(self, msg) -> None:
            stamp = _stamp_ns(msg.header)
            depth = image_to_depth(msg)
            self.evaluator.add_predicted_depth(stamp, depth)
            if self.record_video:
                self._part(stamp)["depth"] = depth
                self._try_compose(stamp)

        def _on_overlay(self, msg) -> None:
            stamp = _stamp_ns(msg.header)
            self._part(stamp)["overlay"] = image_to_frame(msg).copy()
            self._try_compose(stamp)

        def _on_diagnostics(self, msg) -> None:
            for status in msg.status:
                if status.name.startswith(f"{PERCEPTION_NODE}:"):
                    self.node_diagnostics = {kv.key: kv.value for kv in status.values}

        def _on_advisory(self, msg) -> None:
            self.advisory_counts[msg.data] += 1
            if msg.data != self.advisory or not self.decisions:
                # The first entry (from null) is the initial advisory; then every change.
                self.decisions.append({
                    "t_s": round(time.monotonic() - self.started, 3),
                    "from": self.advisory if self.decisions else None,
                    "to": msg.data, "nearest_m": _finite_or_none(self.nearest_m),
                    "time_to_contact_s": _finite_or_none(self.ttc_s)})
            self.advisory = msg.data

        def _on_nearest(self, msg) -> None:
            self.nearest_m = float(msg.data)

        def _on_ttc(self, msg) -> None:
            self.ttc_s = float(msg.data)

        # -------------------------------------------------------------- video
        def _part(self, stamp: int) -> dict[str, Any]:
            part = self.parts.setdefault(stamp, {})
            while len(self.parts) > 30:
                self.parts.popitem(last=False)
            return part

        def _try_compose(self, stamp: int) -> None:
            if not self.record_video:
                return
            part = self.parts.get(stamp)
            if part is None or not {"overlay", "depth", "detections"} <= part.keys():
                return
            if stamp not in self.truth or len(self.video) >= VIDEO_FRAMES_MAX:
                return
            del self.parts[stamp]
            self.video.append(self.compose(stamp, part))
            self.video_stamps.append(stamp)

        def compose(self, stamp: int, part: dict[str, Any]) -> np.ndarray:
            """Overlay (with thin true boxes) | depth, and a status bar below."""
            left = part["overlay"]
            if left.ndim == 2 or left.shape[2] == 1:
                left = cv2.cvtColor(left, cv2.COLOR_GRAY2BGR)
            left = np.ascontiguousarray(left[:, :, :3])
            for truth in self.truth.get(stamp, []):
                if self.evaluator.expected(truth):
                    x1, y1, x2, y2 = (round(v) for v in truth.box_xyxy)
                    cv2.rectangle(left, (x1, y1), (x2 - 1, y2 - 1), (235, 235, 235), 1)
            h, w = left.shape[:2]
            right = colorize_depth(part["depth"])
            if right.shape[:2] != (h, w):
                right = cv2.resize(right, (w, h), interpolation=cv2.INTER_NEAREST)
            _text(left, "detections (thin white: ground truth)", (6, 16), 0.45)
            _text(right, "depth, log scale 1-100 m (near = red)", (6, 16), 0.45)
            bar = np.full((BAR_PX, 2 * w, 3), 30, np.uint8)
            colour = ADVISORY_BGR.get(self.advisory, (200, 200, 200))
            cv2.rectangle(bar, (2 * w - 150, 3), (2 * w - 4, BAR_PX - 4), colour, -1)
            cv2.putText(bar, self.advisory.upper(), (2 * w - 140, BAR_PX - 9),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
            nearest = f"{self.nearest_m:.1f} m" if math.isfinite(self.nearest_m) else "clear"
            ttc = f"{self.ttc_s:.1f} s" if math.isfinite(self.ttc_s) else "-"
            _text(bar, f"sim t {stamp * 1e-9:6.2f} s | {len(part['detections'])} objects | "
                       f"in-lane nearest {nearest} | TTC {ttc}", (8, BAR_PX - 9), 0.5)
            return np.vstack([np.hstack([left, right]), bar])

        # -------------------------------------------------------------- status
        def rates(self) -> tuple[float, float]:
            """Camera and perception output rates over the last 3 s (frames per second)."""
            now = time.monotonic()
            with self.lock:
                since = max(now - 3.0, self.started)
                cam = sum(1 for t in self.camera_times if t >= since)
                out = sum(1 for t in self.output_times if t >= since)
            span = min(3.0, max(now - self.started, 1e-3))
            return cam / span, out / span

        def status_line(self) -> str:
            """The live one-line status."""
            cam_fps, out_fps = self.rates()
            with self.lock:
                recent = self.latency_ms[-20:]
            err = self.evaluator.recent_distance_error()
            recall = self.evaluator.summary()["recall"]
            parts = [
                f"[{time.monotonic() - self.started:5.1f} s] camera {cam_fps:4.1f} fps",
                f"perception {out_fps:4.1f} fps, latency "
                + (f"{np.median(recent):.0f} ms" if recent else "-"),
                f"{self.objects_last} objects",
                "nearest " + (f"{self.nearest_m:.1f} m" if math.isfinite(self.nearest_m)
                              else "clear"),
                "dist err " + (f"{100 * err:.1f}%" if err is not None else "-"),
                "recall " + (f"{recall:.2f}" if recall is not None else "-"),
                f"advisory {self.advisory}",
            ]
            return " | ".join(parts)

    return DemoRecorder()


def write_video(frames: list[np.ndarray], path_stem: Path, fps: float) -> Path | None:
    """Write BGR frames as MP4 ('mp4v'); fall back to an animated GIF (Pillow).

    Returns:
        The written file, or None when there are no frames.
    """
    if not frames:
        return None
    h, w = frames[0].shape[:2]
    fps = float(min(max(fps, 1.0), 30.0))
    mp4 = path_stem.with_suffix(".mp4")
    writer = cv2.VideoWriter(str(mp4), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    if writer.isOpened():
        for frame in frames:
            writer.write(frame)
        writer.release()
        check = cv2.VideoCapture(str(mp4))
        ok, _ = check.read()
        check.release()
        if ok:
            return mp4
    mp4.unlink(missing_ok=True)
    from PIL import Image as PILImage

    gif = path_stem.with_suffix(".gif")
    images = [PILImage.fromarray(cv2.cvtColor(cv2.resize(f, (w // 2, h // 2)),
                                              cv2.COLOR_BGR2RGB)) for f in frames]
    images[0].save(gif, save_all=True, append_images=images[1:],
                   duration=round(1000 / fps), loop=0)
    return gif


def write_contact_sheet(frames: list[np.ndarray], path: Path, title: str,
                        tiles: int = 6, columns: int = 2,
                        empty_text: str = "no perception output was recorded") -> Path:
    """A PNG grid of ``tiles`` evenly spaced frames (half size) under a title line."""
    if frames:
        picks = np.unique(np.linspace(0, len(frames) - 1, min(tiles, len(frames))).round())
        thumbs = [cv2.resize(frames[int(i)], (frames[0].shape[1] // 2, frames[0].shape[0] // 2),
                             interpolation=cv2.INTER_AREA) for i in picks]
    else:
        thumbs = [np.zeros((200, 640, 3), np.uint8)]
        _text(thumbs[0], empty_text, (20, 100), 0.7)
    tw = thumbs[0].shape[1]
    while len(thumbs) % columns:
        thumbs.append(np.zeros_like(thumbs[0]))
    rows = [np.hstack(thumbs[i:i + columns]) for i in range(0, len(thumbs), columns)]
    header = np.full((36, tw * columns, 3), 20, np.uint8)
    _text(header, title, (10, 24), 0.5 if tw * columns >= 1000 else 0.35)
    cv2.imwrite(str(path), np.vstack([header, *rows]))
    return path


def _environment_defaults(out: Path) -> None:
    """Localhost discovery, the shared-memory Fast DDS profile and a log folder, unless set."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    profile = package_file("config", "fastdds_localhost.xml")
    if profile.is_file():
        os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
    os.environ.setdefault("ROS_LOG_DIR", str(out / "ros_log"))


def _spin(executor) -> None:
    from rclpy.executors import ExternalShutdownException

    with contextlib.suppress(ExternalShutdownException):
        executor.spin()


def _start_camera(params_file: Path, overrides: dict[str, Any],
                  log_path: Path) -> subprocess.Popen:
    """Start ``synthetic_camera`` as a child process logging to ``log_path``."""
    cmd = [sys.executable, "-m", "depthssd_ros.synthetic_camera_node", "--ros-args",
           "--params-file", str(params_file)]
    for name, value in overrides.items():
        cmd += ["-p", f"{name}:={value}"]
    env = dict(os.environ)
    # The child imports this package from wherever this process found it.
    source_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (source_root, env.get("PYTHONPATH")) if p)
    with open(log_path, "w") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)


def _wait_for_first_frame(recorder, camera: subprocess.Popen, log_path: Path,
                          timeout_s: float = 60.0) -> None:
    """Block until the camera's first frame arrives (its process takes a few s to start)."""
    deadline = time.monotonic() + timeout_s
    while not recorder.camera_times:
        if camera.poll() is not None:
            raise RuntimeError(f"the synthetic camera exited ({camera.returncode}): "
                               f"{_tail(log_path)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no frame from the synthetic camera within {timeout_s:.0f} s: "
                               f"{_tail(log_path)}")
        time.sleep(0.05)


def _stop_process(proc: subprocess.Popen) -> None:
    """Ctrl-C the child like a user would; kill it if it does not end."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " / ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _print_status(recorder, started: float, duration_s: float, context, spinner,
                  camera: subprocess.Popen) -> None:
    """Print the status line until ``duration_s`` has passed (``\\r``-updated on a TTY)."""
    tty = sys.stdout.isatty()
    last_len = 0
    try:
        while context.ok() and spinner.is_alive() and camera.poll() is None:
            remaining = duration_s - (time.monotonic() - started)
            if remaining <= 0:
                break
            time.sleep(min(remaining, STATUS_PERIOD_S if tty else 1.0))
            line = recorder.status_line()
            if tty:
                sys.stdout.write("\r" + line.ljust(last_len))
                last_len = len(line)
            else:
                sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted; writing what was recorded\n")
    if tty:
        sys.stdout.write("\n")


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    """Run the pipeline for ``args.duration`` seconds and write the outputs.

    Returns:
        The metrics (also written to ``<out>/metrics.json``).

    Raises:
        FileNotFoundError: the model file does not exist.
        ValueError: a camera setting is invalid.
        RuntimeError: the perception node or the camera could not start.
    """
    from depthssd_ros.params import DEFAULT_MODEL_FILE

    model = (args.model or package_file("models", DEFAULT_MODEL_FILE)).expanduser().resolve()
    if not model.is_file():
        raise FileNotFoundError(f"model file not found: {model} (train one with `make train` "
                                "or pass --model)")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    _environment_defaults(out)

    from depthssd_ros.synthetic_camera_node import SyntheticCameraSettings

    camera_yaml = package_file("config", "synthetic_camera.yaml")
    overrides = {name: value for name, value in (
        ("width", args.width), ("height", args.height), ("rate_hz", args.rate_hz),
        ("seed", args.seed)) if value is not None}
    s = SyntheticCameraSettings.from_yaml(camera_yaml, **overrides)

    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from depthssd_ros.perception_node import PerceptionNode
    from depthssd_ros.planner_node import PlannerNode

    context = Context()
    rclpy.init(context=context, args=[])
    nodes: list[Any] = []
    perception = camera = spinner = None
    executor = MultiThreadedExecutor(num_threads=4, context=context)
    try:
        perception = PerceptionNode(
            context=context,
            cli_args=["--ros-args", "--params-file",
                      str(package_file("config", "depthssd.yaml")),
                      "-r", f"image:={s.topic(s.camera, 'image')}",
                      "-r", f"camera_info:={s.topic(s.camera, 'camera_info')}"],
            parameter_overrides=[
                Parameter("use_sim_time", value=s.publish_clock),
                Parameter("model_path", value=str(model)),
                Parameter("backend", value=args.backend),
                Parameter("num_threads", value=args.threads),
                # The perception node's flat-road prior must describe the synthetic camera.
                Parameter("camera_height_m", value=float(s.camera_height_m)),
                Parameter("camera_pitch_deg", value=float(s.camera_pitch_deg)),
            ])
        nodes.append(perception)
        planner = PlannerNode(
            context=context,
            cli_args=["--ros-args", "--params-file", str(package_file("config", "planner.yaml")),
                      "-r", f"detections:=/{PERCEPTION_NODE}/detections"],
            parameter_overrides=[Parameter("use_sim_time", value=s.publish_clock)])
        nodes.append(planner)
        topics = {
            "camera_info": s.topic(s.camera, "camera_info"),
            "truth": s.topic(s.camera, "ground_truth"),
            "true_depth": s.topic(s.depth_camera, "image"),
            "detections": f"/{PERCEPTION_NODE}/detections",
            "depth": f"/{PERCEPTION_NODE}/depth",
            "overlay": f"/{PERCEPTION_NODE}/overlay",
            "advisory": "/planner_example/advisory",
            "nearest": "/planner_example/nearest_distance_m",
            "ttc": "/planner_example/time_to_contact_s",
        }
        recorder = _make_recorder(context, topics, not args.no_video)
        nodes.append(recorder)
        for node in (recorder, planner, perception):
            executor.add_node(node)
        spinner = threading.Thread(target=_spin, args=(executor,), name="demo_executor",
                                   daemon=True)
        spinner.start()
        # The camera renders in its own process, as the simulator would: rendering then does
        # not compete with inference for this process's interpreter lock. Started once the
        # model is loaded, so no frame is published into a pipeline that is not ready.
        camera = _start_camera(camera_yaml, overrides, out / "synthetic_camera.log")
        _wait_for_first_frame(recorder, camera, out / "synthetic_camera.log")
        started = time.monotonic()
        recorder.started = started
        _print_status(recorder, started, args.duration, context, spinner, camera)
        elapsed = time.monotonic() - started
    finally:
        if camera is not None:
            _stop_process(camera)
        if perception is not None:
            perception.stop()
        executor.shutdown()
        if spinner is not None:
            spinner.join(timeout=10.0)
        for node in nodes:
            executor.remove_node(node)
            node.destroy_node()
        rclpy.try_shutdown(context=context)
    if camera.returncode not in (0, -signal.SIGINT) and not recorder.camera_times:
        raise RuntimeError(f"the synthetic camera failed (exit {camera.returncode}): "
                           f"{_tail(out / 'synthetic_camera.log')}")
    camera_frames = len(recorder.camera_times)

    outputs = recorder.output_times
    perception_fps = ((len(outputs) - 1) / (outputs[-1] - outputs[0])
                      if len(outputs) >= 2 and outputs[-1] > outputs[0] else None)
    video_path = None
    if not args.no_video:
        video_path = write_video(recorder.video, out / "demo", perception_fps or 5.0)
    evaluation = recorder.evaluator.summary()
    metrics = {
        "duration_s": round(elapsed, 3),
        "model": str(model),
        "backend": args.backend,
        "image_size": [s.width, s.height],
        "frames": {"camera_published": camera_frames, "perception_outputs": len(outputs),
                   "scored": evaluation["frames_scored"], "video": len(recorder.video)},
        "fps": {"camera": camera_frames / elapsed if elapsed > 0 else None,
                "perception": perception_fps},
        "perception_node": _node_report(recorder.node_diagnostics),
        "latency_ms": {"p50": _percentile(recorder.latency_ms, 50),
                       "p95": _percentile(recorder.latency_ms, 95),
                       "samples": len(recorder.latency_ms),
                       "definition": "camera publish to detections received (wall clock)"},
        "detection": {k: evaluation[k] for k in (
            "iou_threshold", "min_box_height_px", "max_distance_m", "true_positives",
            "false_positives", "false_negatives", "recall", "precision", "per_class")},
        "distance": {"abs_rel_median": evaluation["distance_abs_rel_median"],
                     "abs_rel_p90": evaluation["distance_abs_rel_p90"],
                     "pairs": evaluation["distance_pairs"]},
        "depth": {"abs_rel_mean": evaluation["depth_abs_rel_mean"],
                  "frames": evaluation["depth_frames_scored"]},
        "planner": {"decisions": recorder.decisions,
                    "advisory_counts": dict(recorder.advisory_counts)},
        "outputs": {"video": video_path.name if video_path else None,
                    "contact_sheet": "contact_sheet.png", "metrics": "metrics.json"},
    }
    metrics = _json_clean(metrics)
    title = _title(metrics)
    write_contact_sheet(recorder.video, out / "contact_sheet.png", title,
                        empty_text="video recording was off (--no-video)" if args.no_video
                        else "no perception output was recorded")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _node_report(diagnostics: dict[str, str]) -> dict[str, Any]:
    """The perception node's own last /diagnostics values that matter for the demo."""
    out: dict[str, Any] = {k: diagnostics.get(k) for k in ("backend", "device")}
    for key in ("runtime_latency_p50_ms", "runtime_latency_p95_ms", "node_latency_p50_ms",
                "node_latency_p95_ms", "frames_received", "frames_processed", "frames_dropped",
                "memory_resets"):
        try:
            out[key] = float(diagnostics[key])
        except (KeyError, ValueError):
            out[key] = None
    return out


def _fmt(value: float | None, spec: str, scale: float = 1.0, unit: str = "") -> str:
    return "-" if value is None else f"{value * scale:{spec}}{unit}"


def _title(m: dict[str, Any]) -> str:
    return (f"depthssd demo | {_fmt(m['fps']['perception'], '.1f')} fps, latency p50 "
            f"{_fmt(m['latency_ms']['p50'], '.0f')} ms | recall "
            f"{_fmt(m['detection']['recall'], '.2f')} precision "
            f"{_fmt(m['detection']['precision'], '.2f')} @IoU0.5 | distance AbsRel "
            f"{_fmt(m['distance']['abs_rel_median'], '.1f', 100, '%')} | depth AbsRel "
            f"{_fmt(m['depth']['abs_rel_mean'], '.2f')}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``depthssd_demo`` / ``python -m depthssd_ros.demo``."""
    args = parse_args(argv)
    try:
        metrics = run_demo(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        print(f"depthssd_demo: {exc}", file=sys.stderr)
        return 2
    written = [f for f in (metrics["outputs"]["video"], "contact_sheet.png", "metrics.json") if f]
    print(f"{_title(metrics)}\nwrote {args.out}/: {', '.join(written)}")
    if metrics["frames"]["perception_outputs"] == 0:
        print("depthssd_demo: the perception node produced no output", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
