"""``make demo``: the synthetic camera, the perception node and the planner, live, for S seconds.

``python -m depthssd_ros.demo --duration 20 --out out/demo`` runs real ROS 2 nodes talking over
real topics (``ros2 launch`` is the way with a ROS 2 installation:
``ros2 launch depthssd_ros carla_demo.launch.py source:=synthetic``):

- ``synthetic_camera``, in its own process like a simulator, publishes the synthetic world on
  carla-ros-bridge's topics with ``/clock`` and ground truth (``config/synthetic_camera.yaml``),
  in lockstep with the perception node unless ``--free-run``: the next frame is published once
  the node's detections for the last one arrived (CARLA's synchronous mode with perception
  ticking the world; see :mod:`depthssd_ros.synthetic_camera_node`), so on a machine slower
  than the camera's rate the world waits instead of frames being dropped;
- in this process, on a ``MultiThreadedExecutor``: ``depthssd_node`` runs the model on
  ``/carla/ego_vehicle/rgb_front/image`` (``config/depthssd.yaml``; the shipped model unless
  ``--model``), ``planner_example`` turns its detections into a nearest distance, a time to
  contact and an advisory (``config/planner.yaml``), and a recorder node
  (:mod:`depthssd_ros.demo_recorder`) subscribes to the camera and perception topics like any
  other ROS node: it scores detections, distances and depth against the ground truth topic
  (:mod:`depthssd_ros.live_evaluator`) and composes the video frames. It takes the planner's
  decisions from the planner itself (``add_decision_listener``), so its decision log is the
  planner's.

:func:`run_demo` runs named, timed stages (``metrics.json`` ``stages_s``): plan, start the
pipeline, start the camera, record, stop, summarize, write the outputs: ``<out>/demo.mp4``
(GIF if no MP4 encoder), ``<out>/contact_sheet.png`` and ``<out>/metrics.json``, whose
``frames.answered_fraction`` is the share of the camera's frames that got detections.

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
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from depthssd_core.metrics import json_safe
from depthssd_ros.demo_recorder import (
    DemoRecorder,
    write_contact_sheet,
    write_video,
)

PACKAGE = "depthssd_ros"
PERCEPTION_NODE = "depthssd_node"
STATUS_PERIOD_S = 0.5
#: Niceness of the camera process (see ``--camera-nice``).
CAMERA_NICENESS = 10


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
    parser.add_argument("--free-run", action="store_true",
                        help="let the camera publish at its rate without waiting for the "
                             "detections of the last frame (frames the node cannot keep up "
                             "with are dropped; default: lockstep)")
    parser.add_argument("--camera-nice", type=int, default=CAMERA_NICENESS,
                        help="niceness of the camera process (default %(default)s: on a "
                             "busy machine the simulator yields to perception)")
    args = parser.parse_args(argv)
    if not (math.isfinite(args.duration) and args.duration > 0):
        parser.error(f"--duration must be a positive number of seconds, got {args.duration}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    for name in ("width", "height"):
        value = getattr(args, name)
        if value is not None and value < 32:
            parser.error(f"--{name} must be at least 32 pixels, got {value}")
    if not 0 <= args.camera_nice <= 19:
        parser.error(f"--camera-nice must be in 0..19, got {args.camera_nice}")
    if args.rate_hz is not None and not args.rate_hz > 0:
        parser.error(f"--rate-hz must be positive, got {args.rate_hz}")
    return args


def _percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


def _environment_defaults(out: Path) -> None:
    """Localhost discovery, the shared-memory Fast DDS profile and a log folder, unless set."""
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    profile = package_file("config", "fastdds_localhost.xml")
    if profile.is_file():
        os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(profile))
    os.environ.setdefault("ROS_LOG_DIR", str(out / "ros_log"))


def _spin(executor, stop: threading.Event, errors: list[BaseException]) -> None:
    """Spin in short slices until ``stop``; a callback's exception ends the spin and is kept in
    ``errors``."""
    from rclpy.executors import ExternalShutdownException

    try:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)
    except ExternalShutdownException:
        pass
    except Exception as exc:  # reported by run_demo once the nodes are down
        traceback.print_exc()
        errors.append(exc)


def _shutdown_executor(executor) -> None:
    """Let the callbacks already handed to the executor's threads finish, then shut it down.

    rclpy's ``Executor.shutdown`` does not wait for outstanding callbacks (it tests the flag it
    has just set) and destroys the guard condition those callbacks still trigger when they end:
    each then fails with "cannot use Destroyable because destruction was requested", printed
    as "exception was never retrieved". The thread pool of a ``MultiThreadedExecutor`` is
    drained first for that reason (the spinning thread has stopped, so nothing new arrives).
    """
    pool = getattr(executor, "_executor", None)
    if pool is not None:
        pool.shutdown(wait=True)
    executor.shutdown()


def _start_camera(params_file: Path, overrides: dict[str, Any], log_path: Path,
                  niceness: int = 0) -> subprocess.Popen:
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
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    if niceness:
        # Set from here, not with preexec_fn (unsafe while this process runs threads); the
        # child has not started its own threads yet, and those it starts inherit the value.
        os.setpriority(os.PRIO_PROCESS, proc.pid, niceness)
    return proc


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


@dataclass
class DemoPlan:
    """What a demo run will do, resolved from the command line before anything starts."""

    args: argparse.Namespace
    model: Path
    out: Path
    camera_yaml: Path
    camera_overrides: dict[str, Any]
    camera: Any  # SyntheticCameraSettings


@dataclass
class DemoPipeline:
    """The running pipeline: the nodes of this process, their executor thread, the camera."""

    context: Any
    executor: Any
    nodes: list[Any] = field(default_factory=list)
    perception: Any = None
    planner: Any = None
    recorder: Any = None
    spinner: threading.Thread | None = None
    stop_spinning: threading.Event = field(default_factory=threading.Event)
    spin_errors: list[BaseException] = field(default_factory=list)
    camera: subprocess.Popen | None = None
    camera_died: bool = False  # the camera process ended while the demo was recording


class StageTimer:
    """Wall-clock seconds of each named stage, in order (``with timer("name"): ...``)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = round(time.monotonic() - start, 3)


def plan_demo(args: argparse.Namespace) -> DemoPlan:
    """Stage 1: the model file, the output folder, the environment and the camera settings.

    Raises:
        FileNotFoundError: the model file does not exist.
        ValueError: a camera setting is invalid.
    """
    from depthssd_ros.params import DEFAULT_MODEL_FILE
    from depthssd_ros.synthetic_camera_node import SyntheticCameraSettings

    model = (args.model or package_file("models", DEFAULT_MODEL_FILE)).expanduser().resolve()
    if not model.is_file():
        raise FileNotFoundError(f"model file not found: {model} (train one with `make train` "
                                "or pass --model)")
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    _environment_defaults(out)
    camera_yaml = package_file("config", "synthetic_camera.yaml")
    overrides = {name: value for name, value in (
        ("width", args.width), ("height", args.height), ("rate_hz", args.rate_hz),
        ("seed", args.seed)) if value is not None}
    if not args.free_run:
        overrides["wait_for_topic"] = f"/{PERCEPTION_NODE}/detections"
    camera = SyntheticCameraSettings.from_yaml(camera_yaml, **overrides)
    return DemoPlan(args, model, out, camera_yaml, overrides, camera)


def start_pipeline(plan: DemoPlan) -> DemoPipeline:
    """Stage 2: the perception node (model loaded), the planner and the recorder, spinning.

    The caller stops the returned pipeline with :func:`stop_pipeline`, also when this raises
    after a part of it started (the partial pipeline is in the exception's ``pipeline``).
    """
    import rclpy
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.parameter import Parameter

    from depthssd_ros.perception_node import PerceptionNode
    from depthssd_ros.planner_node import PlannerNode

    args, s = plan.args, plan.camera
    context = Context()
    rclpy.init(context=context, args=[])
    pipeline = DemoPipeline(context, MultiThreadedExecutor(num_threads=4, context=context))
    try:
        pipeline.perception = PerceptionNode(
            context=context,
            cli_args=["--ros-args", "--params-file",
                      str(package_file("config", "depthssd.yaml")),
                      "-r", f"image:={s.topic(s.camera, 'image')}",
                      "-r", f"camera_info:={s.topic(s.camera, 'camera_info')}"],
            parameter_overrides=[
                Parameter("use_sim_time", value=s.publish_clock),
                Parameter("model_path", value=str(plan.model)),
                Parameter("backend", value=args.backend),
                Parameter("num_threads", value=args.threads),
                # The perception node's flat-road prior must describe the synthetic camera.
                Parameter("camera_height_m", value=float(s.camera_height_m)),
                Parameter("camera_pitch_deg", value=float(s.camera_pitch_deg)),
            ])
        pipeline.nodes.append(pipeline.perception)
        pipeline.planner = PlannerNode(
            context=context,
            cli_args=["--ros-args", "--params-file", str(package_file("config", "planner.yaml")),
                      "-r", f"detections:=/{PERCEPTION_NODE}/detections"],
            parameter_overrides=[Parameter("use_sim_time", value=s.publish_clock)])
        pipeline.nodes.append(pipeline.planner)
        topics = {
            "camera_info": s.topic(s.camera, "camera_info"),
            "truth": s.topic(s.camera, "ground_truth"),
            "true_depth": s.topic(s.depth_camera, "image"),
            "detections": f"/{PERCEPTION_NODE}/detections",
            "depth": f"/{PERCEPTION_NODE}/depth",
            "overlay": f"/{PERCEPTION_NODE}/overlay",
        }
        pipeline.recorder = DemoRecorder(context, topics, not args.no_video, PERCEPTION_NODE)
        pipeline.nodes.append(pipeline.recorder)
        # The recorder logs the planner's own decisions: its log and the planner's agree.
        pipeline.planner.add_decision_listener(pipeline.recorder.record_decision)
        for node in (pipeline.recorder, pipeline.planner, pipeline.perception):
            pipeline.executor.add_node(node)
        pipeline.spinner = threading.Thread(
            target=_spin, args=(pipeline.executor, pipeline.stop_spinning, pipeline.spin_errors),
            name="demo_executor",
            daemon=True)
        pipeline.spinner.start()
    except BaseException as exc:
        exc.pipeline = pipeline  # type: ignore[attr-defined]
        raise
    return pipeline


def start_camera(plan: DemoPlan, pipeline: DemoPipeline) -> None:
    """Stage 3: the synthetic camera in its own process, until its first frame arrives.

    It renders in its own process, as the simulator would: rendering then does not compete with
    inference for this process's interpreter lock. It starts once the model is loaded, so no
    frame is published into a pipeline that is not ready.
    """
    log_path = plan.out / "synthetic_camera.log"
    pipeline.camera = _start_camera(plan.camera_yaml, plan.camera_overrides, log_path,
                                    plan.args.camera_nice)
    _wait_for_first_frame(pipeline.recorder, pipeline.camera, log_path)


def record(plan: DemoPlan, pipeline: DemoPipeline) -> float:
    """Stage 4: run for ``--duration`` seconds printing the status line; the seconds run."""
    started = time.monotonic()
    pipeline.recorder.started = started
    _print_status(pipeline.recorder, started, plan.args.duration, pipeline.context,
                  pipeline.spinner, pipeline.camera)
    elapsed_s = time.monotonic() - started
    pipeline.camera_died = pipeline.camera.poll() is not None
    return elapsed_s


def stop_pipeline(pipeline: DemoPipeline) -> None:
    """Stage 5: stop the camera, the perception worker, the executor, then the nodes."""
    import rclpy

    if pipeline.camera is not None:
        _stop_process(pipeline.camera)
    if pipeline.perception is not None:
        pipeline.perception.stop()
    pipeline.stop_spinning.set()
    if pipeline.spinner is not None:
        pipeline.spinner.join(timeout=10.0)
    _shutdown_executor(pipeline.executor)
    for node in pipeline.nodes:
        pipeline.executor.remove_node(node)
        node.destroy_node()
    rclpy.try_shutdown(context=pipeline.context)


def summarize(plan: DemoPlan, pipeline: DemoPipeline, elapsed_s: float) -> dict[str, Any]:
    """Stage 6: the metrics of the run (JSON-clean: no NaN or infinity)."""
    recorder, s = pipeline.recorder, plan.camera
    camera_frames = len(recorder.camera_times)
    outputs = recorder.output_times
    perception_fps = ((len(outputs) - 1) / (outputs[-1] - outputs[0])
                      if len(outputs) >= 2 and outputs[-1] > outputs[0] else None)
    evaluation = recorder.evaluator.summary()
    return json_safe({
        "duration_s": round(elapsed_s, 3),
        "model": str(plan.model),
        "backend": plan.args.backend,
        "image_size": [s.width, s.height],
        "camera_mode": "lockstep" if s.wait_for_topic else "free-run",
        "frames": {"camera_published": camera_frames, "perception_outputs": len(outputs),
                   "answered": recorder.answered_frames(),
                   "answered_fraction": recorder.answered_fraction(),
                   "scored": evaluation["frames_scored"], "video": len(recorder.video)},
        "fps": {"camera": camera_frames / elapsed_s if elapsed_s > 0 else None,
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
        "outputs": {"video": None, "contact_sheet": "contact_sheet.png",
                    "metrics": "metrics.json"},
    })


def write_outputs(plan: DemoPlan, pipeline: DemoPipeline, metrics: dict[str, Any]) -> None:
    """Stage 7: the video and the contact sheet (``metrics`` gets the video's name)."""
    recorder, out = pipeline.recorder, plan.out
    if not plan.args.no_video:
        video = write_video(recorder.video, out / "demo", metrics["fps"]["perception"] or 5.0)
        metrics["outputs"]["video"] = video.name if video else None
    write_contact_sheet(recorder.video, out / "contact_sheet.png", _title(metrics),
                        empty_text="video recording was off (--no-video)" if plan.args.no_video
                        else "no perception output was recorded")


def run_demo(args: argparse.Namespace) -> dict[str, Any]:
    """Run the pipeline for ``args.duration`` seconds and write the outputs.

    The stages (:func:`plan_demo`, :func:`start_pipeline`, :func:`start_camera`,
    :func:`record`, :func:`stop_pipeline`, :func:`summarize`, :func:`write_outputs`) are timed;
    ``metrics["stages_s"]`` holds their seconds.

    Returns:
        The metrics (also written to ``<out>/metrics.json``).

    Raises:
        FileNotFoundError: the model file does not exist.
        ValueError: a camera setting is invalid.
        RuntimeError: the perception node or the camera could not start, or the run was cut
            short (a node callback failed, the camera exited).
    """
    timer = StageTimer()
    with timer("plan"):
        plan = plan_demo(args)
    pipeline = None
    elapsed_s = 0.0
    try:
        with timer("start_pipeline"):
            try:
                pipeline = start_pipeline(plan)
            except BaseException as exc:
                pipeline = getattr(exc, "pipeline", None)
                raise
        with timer("start_camera"):
            start_camera(plan, pipeline)
        with timer("record"):
            elapsed_s = record(plan, pipeline)
    finally:
        if pipeline is not None:
            with timer("stop_pipeline"):
                stop_pipeline(pipeline)
    # A run cut short is an error, not a short result.
    if pipeline.spin_errors:
        raise RuntimeError(f"a node callback failed after {elapsed_s:.1f} s: "
                           f"{pipeline.spin_errors[0]!r}")
    if pipeline.camera_died:
        raise RuntimeError(f"the synthetic camera exited after {elapsed_s:.1f} s (exit "
                           f"{pipeline.camera.returncode}): "
                           f"{_tail(plan.out / 'synthetic_camera.log')}")
    with timer("summarize"):
        metrics = summarize(plan, pipeline, elapsed_s)
    with timer("write_outputs"):
        write_outputs(plan, pipeline, metrics)
    metrics["stages_s"] = timer.seconds
    (plan.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def _node_report(diagnostics: dict[str, str]) -> dict[str, Any]:
    """The perception node's own last /diagnostics values that matter for the demo."""
    out: dict[str, Any] = {k: diagnostics.get(k) for k in ("backend", "device")}
    for key in ("runtime_latency_p50_ms", "runtime_latency_p95_ms", "node_latency_p50_ms",
                "node_latency_p95_ms", "frames_received", "frames_processed", "frames_dropped",
                "frames_missing_upstream", "camera_rate_hz", "memory_resets"):
        try:
            out[key] = float(diagnostics[key])
        except (KeyError, ValueError):
            out[key] = None
    return out


def _fmt(value: float | None, spec: str, scale: float = 1.0, unit: str = "") -> str:
    return "-" if value is None else f"{value * scale:{spec}}{unit}"


def _title(m: dict[str, Any]) -> str:
    return (f"depthssd demo | {_fmt(m['fps']['perception'], '.1f')} fps, "
            f"{_fmt(m['frames']['answered_fraction'], '.0f', 100, '%')} of camera frames "
            f"answered, latency p50 "
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
