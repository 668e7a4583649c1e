"""``synthetic_camera``: the project's synthetic world published the way carla-ros-bridge would.

With no CARLA server at hand, this node stands in for the bridge's ego camera so that the
perception node, the planner and rviz2 run unchanged (``carla_demo.launch.py source:=synthetic``
and ``make demo``). Topics, with ``R`` = ``role_name``, ``C`` = ``camera``, ``D`` =
``depth_camera`` (all RELIABLE, KEEP_LAST 10, as the bridge):

- ``/carla/R/C/image`` (``sensor_msgs/Image``, ``bgra8``, like CARLA's RGB camera);
- ``/carla/R/C/camera_info`` (``plumb_bob``, zero distortion, K and P from the field of view:
  ``fx = fy = W / (2 tan(fov / 2))``, ``cx = W / 2``, ``cy = H / 2``);
- ``/carla/R/D/image`` (``32FC1`` planar depth in metres, sky at 1000 m as CARLA's far plane)
  and ``/carla/R/D/camera_info``: a depth camera at the RGB camera's pose with the same size and
  intrinsics, so it is pixel-aligned (unlike the bridge's default depth_front);
- ``/carla/R/C/ground_truth`` (``vision_msgs/Detection2DArray``), this node's addition: every
  visible object of our classes with ``results[0].hypothesis.class_id`` = class name, score 1,
  ``results[0].pose.pose.position`` = the 3D point the perception node reports (box centre ray
  at the object's median true depth, so ``z`` is its true distance) and ``id`` = instance id;
- ``/clock`` (``rosgraph_msgs/Clock``) with ``publish_clock``: messages are stamped with the
  world's simulated time, which advances 0.05 s per frame (CARLA synchronous mode at 20 Hz)
  and jumps 2 s when a new synthetic sequence (new road and traffic) begins.

Frame ids are ``R/C`` and ``R/D``, as the bridge names sensor frames. ``rate_hz`` caps the
wall-clock publishing rate; when rendering is slower, simulated time simply runs slower than
wall time, as CARLA's does on a slow machine.

Lockstep (``wait_for_topic``, e.g. ``/depthssd_node/detections``): the next frame is published
only once a ``Detection2DArray`` with the stamp of the last one has arrived on that topic, or
``wait_timeout_s`` after it was published (counted, with a throttled warning). That is CARLA's
synchronous mode with the perception client ticking the world: on a machine too slow for
``rate_hz`` the world waits for perception instead of perception dropping frames. The next
frame is rendered while the answer is awaited, so rendering and inference overlap.
Parameters: ``config/synthetic_camera.yaml``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np
import yaml
from builtin_interfaces.msg import Time as TimeMsg
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose

from depthssd_core.classes import CLASSES
from depthssd_core.geometry import backproject
from depthssd_ros.conversions import depth_to_image, intrinsics_to_camera_info
from depthssd_ros.input_checks import stamp_ns as stamp_to_ns
from depthssd_ros.node_main import run_node
from depthssd_sim import FRAME_DT_S, SyntheticWorld, SynthFrame

#: carla-ros-bridge's sensor QoS: reliable, keep last 10 (volatile).
BRIDGE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE,
                        history=HistoryPolicy.KEEP_LAST)


@dataclass(frozen=True)
class SyntheticCameraSettings:
    """Parameters of the node (ROS parameters of the same names; see the YAML for the units).

    The values here are the defaults; ``config/synthetic_camera.yaml`` holds the same values
    with a comment per key (a test keeps the two equal).
    """

    role_name: str = "ego_vehicle"
    camera: str = "rgb_front"
    depth_camera: str = "depth_front"
    width: int = 640
    height: int = 360
    fov_deg: float = 90.0
    rate_hz: float = 20.0
    seed: int = 7
    camera_height_m: float = 2.0
    camera_pitch_deg: float = 0.0
    sequence_frames: int = 400
    publish_clock: bool = True
    max_frames: int = 0
    publish_ground_truth: bool = True
    wait_for_topic: str = ""
    wait_timeout_s: float = 1.0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid setting."""
        for name in ("role_name", "camera", "depth_camera"):
            value = getattr(self, name)
            if not value or not all(c.isalnum() or c == "_" for c in value):
                raise ValueError(f"{name} must be a non-empty ROS name token, got {value!r}")
        if self.camera == self.depth_camera:
            raise ValueError("camera and depth_camera must differ")
        for name in ("width", "height", "sequence_frames"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not (math.isfinite(self.rate_hz) and self.rate_hz > 0):
            raise ValueError(f"rate_hz must be positive, got {self.rate_hz}")
        if self.max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {self.max_frames}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not (math.isfinite(self.wait_timeout_s) and self.wait_timeout_s > 0):
            raise ValueError(f"wait_timeout_s must be positive, got {self.wait_timeout_s}")
        # The world checks the field of view, height and pitch with its own messages.
        SyntheticWorld(self.seed, self.width, self.height, self.fov_deg, self.camera_height_m,
                       math.radians(self.camera_pitch_deg))

    @classmethod
    def from_yaml(cls, path: str | Path, node_name: str = "synthetic_camera",
                  **overrides) -> SyntheticCameraSettings:
        """Settings from a ROS parameter file (``/**`` and ``node_name`` sections), then
        ``overrides``; keys that are not settings are refused.

        Raises:
            ValueError: an unknown key or an invalid value (the message names it).
        """
        data = yaml.safe_load(Path(path).read_text()) or {}
        values: dict = {}
        for section in ("/**", node_name, f"/{node_name}"):
            values.update((data.get(section) or {}).get("ros__parameters", {}))
        values.update(overrides)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known - {"use_sim_time"})
        if unknown:
            raise ValueError(f"{path}: unknown synthetic camera parameter(s) {unknown}")
        values.pop("use_sim_time", None)
        settings = cls(**values)
        settings.validate()
        return settings

    def topic(self, sensor: str, leaf: str) -> str:
        """The bridge's topic ``/carla/<role_name>/<sensor>/<leaf>``."""
        return f"/carla/{self.role_name}/{sensor}/{leaf}"

    def frame_id(self, sensor: str) -> str:
        """The bridge's frame id of a sensor, ``<role_name>/<sensor>``."""
        return f"{self.role_name}/{sensor}"


PARAMETER_DESCRIPTIONS: dict[str, str] = {
    "role_name": "ego vehicle role name (topic prefix /carla/<role_name>)",
    "camera": "RGB camera sensor id; frame_id <role_name>/<camera>",
    "depth_camera": "sensor id of the pixel-aligned depth camera",
    "width": "image width, pixels",
    "height": "image height, pixels",
    "fov_deg": "horizontal field of view, degrees",
    "rate_hz": "maximum wall-clock frame rate, Hz (simulated time advances 0.05 s per frame)",
    "seed": "synthetic world seed (same seed, same frames)",
    "camera_height_m": "camera height above the road, metres",
    "camera_pitch_deg": "downward camera pitch, degrees",
    "sequence_frames": "frames per synthetic sequence before a new road and traffic start",
    "publish_clock": "publish /clock and stamp with simulated time (else the node's clock)",
    "max_frames": "stop publishing after this many frames (0 = never)",
    "publish_ground_truth": "publish the ground-truth Detection2DArray",
    "wait_for_topic": "lockstep: publish the next frame once a Detection2DArray with the last "
                      "frame's stamp arrives on this topic ('' = free-running)",
    "wait_timeout_s": "lockstep: publish the next frame anyway this long after the last, s",
}


#: Simulated time skipped between two synthetic sequences. A new sequence is a new road and new
#: traffic; the gap makes that cut visible as time, as a simulator reload would be, so the
#: perception node resets its memory and tracks (it does on gaps over memory_reset_gap_s).
SCENE_CUT_GAP_S = 2.0
_DT_NS = round(FRAME_DT_S * 1e9)


def frame_stream(settings: SyntheticCameraSettings) -> Iterator[tuple[int, SynthFrame]]:
    """Endless (stamp in ns, frame) stream: sequence 0, then 1, ... of ``sequence_frames``.

    Stamps are simulated time: 0.05 s per frame from 0.05 s (never zero, which ROS tools read
    as "no time"), plus :data:`SCENE_CUT_GAP_S` at every change of sequence.
    """
    world = SyntheticWorld(settings.seed, settings.width, settings.height, settings.fov_deg,
                           settings.camera_height_m, math.radians(settings.camera_pitch_deg))
    seq_id = 0
    stamp_ns = 0
    while True:
        for frame in world.sequence(seq_id, settings.sequence_frames):
            stamp_ns += _DT_NS
            yield stamp_ns, frame
        seq_id += 1
        stamp_ns += round(SCENE_CUT_GAP_S * 1e9)


def stamp_msg(stamp_ns: int) -> TimeMsg:
    """``builtin_interfaces/Time`` of a stamp in nanoseconds."""
    return TimeMsg(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


def bgra_image_msg(header: Header, rgb: np.ndarray) -> Image:
    """``bgra8`` image (CARLA's camera format, alpha 255) of an RGB uint8 frame."""
    bgra = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGRA)
    msg = Image(header=header, height=bgra.shape[0], width=bgra.shape[1], encoding="bgra8",
                is_bigendian=0, step=bgra.shape[1] * 4)
    # bytes, not the array: rclpy copies a numpy array element by element (100x slower).
    msg.data = bgra.tobytes()
    return msg


def ground_truth_msg(header: Header, frame: SynthFrame) -> Detection2DArray:
    """The frame's visible objects as a ``Detection2DArray`` (see the module docstring)."""
    out = Detection2DArray(header=header)
    for obj in frame.objects:
        x1, y1, x2, y2 = (float(v) for v in obj.box_xyxy)
        det = Detection2D(header=header, id=str(int(obj.instance_id)))
        det.bbox.center.position.x = 0.5 * (x1 + x2)
        det.bbox.center.position.y = 0.5 * (y1 + y2)
        det.bbox.size_x = x2 - x1
        det.bbox.size_y = y2 - y1
        hyp = ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = CLASSES[obj.category_id - 1]
        hyp.hypothesis.score = 1.0
        point = backproject(0.5 * (x1 + x2), 0.5 * (y1 + y2), obj.distance_m, frame.intrinsics)
        p = hyp.pose.pose.position
        p.x, p.y, p.z = (float(v) for v in point)
        hyp.pose.pose.orientation.w = 1.0
        det.results.append(hyp)
        out.detections.append(det)
    return out


class SyntheticCameraNode(Node):
    """Publishes synthetic frames on carla-ros-bridge's topics (see the module docstring)."""

    def __init__(self, node_name: str = "synthetic_camera", **node_kwargs) -> None:
        """Create the node (``rclpy.init`` must have been called).

        Args:
            node_name: the node's name.
            **node_kwargs: passed to ``rclpy.node.Node``.

        Raises:
            ValueError: a parameter value is invalid (the message names it).
        """
        super().__init__(node_name, **node_kwargs)
        self.settings = self._declare_settings()
        s = self.settings
        self.frames_published = 0
        self._stream = frame_stream(s)
        self._pub_image = self.create_publisher(Image, s.topic(s.camera, "image"), BRIDGE_QOS)
        self._pub_info = self.create_publisher(CameraInfo, s.topic(s.camera, "camera_info"),
                                               BRIDGE_QOS)
        self._pub_depth = self.create_publisher(Image, s.topic(s.depth_camera, "image"),
                                                BRIDGE_QOS)
        self._pub_depth_info = self.create_publisher(
            CameraInfo, s.topic(s.depth_camera, "camera_info"), BRIDGE_QOS)
        self._pub_truth = None
        if s.publish_ground_truth:
            self._pub_truth = self.create_publisher(
                Detection2DArray, s.topic(s.camera, "ground_truth"), BRIDGE_QOS)
        self._pub_clock = self.create_publisher(Clock, "/clock", 10) if s.publish_clock else None
        self._period_s = 1.0 / s.rate_hz
        # Lockstep state: the frame rendered ahead, the stamp whose answer is awaited.
        self.answer_timeouts = 0
        self._ahead: tuple[int, SynthFrame] | None = None
        self._awaiting_ns: int | None = None
        self._published_at = -math.inf
        if s.wait_for_topic:
            self.create_subscription(Detection2DArray, s.wait_for_topic, self._on_answer,
                                     BRIDGE_QOS)
        # A timer at the target rate; a callback that renders for longer than the period simply
        # delays the next one (the rate drops, simulated time stays 0.05 s per frame).
        self._timer = self.create_timer(self._period_s, self._tick)
        self.get_logger().info(
            f"publishing a {s.width}x{s.height} fov {s.fov_deg:g} synthetic camera on "
            f"{s.topic(s.camera, 'image')} at up to {s.rate_hz:g} Hz"
            + (" with /clock" if s.publish_clock else "")
            + (f", in lockstep with {s.wait_for_topic}" if s.wait_for_topic else ""))

    def _declare_settings(self) -> SyntheticCameraSettings:
        defaults = SyntheticCameraSettings()
        values = {}
        for f in fields(SyntheticCameraSettings):
            descriptor = ParameterDescriptor(description=PARAMETER_DESCRIPTIONS[f.name],
                                             read_only=True)
            values[f.name] = self.declare_parameter(f.name, getattr(defaults, f.name),
                                                    descriptor).value
        settings = SyntheticCameraSettings(**values)
        settings.validate()
        return settings

    @property
    def done(self) -> bool:
        """Whether ``max_frames`` frames have been published."""
        return 0 < self.settings.max_frames <= self.frames_published

    def _tick(self) -> None:
        if self.done:
            self._timer.cancel()
            self.get_logger().info(f"published {self.frames_published} frames (max_frames)")
            return
        if self._ahead is None:
            self._ahead = next(self._stream)
        if self._awaiting_ns is not None:
            if time.monotonic() - self._published_at < self.settings.wait_timeout_s:
                return
            self.answer_timeouts += 1
            self.get_logger().warning(
                f"no answer on {self.settings.wait_for_topic} within "
                f"{self.settings.wait_timeout_s:g} s: publishing the next frame "
                f"({self.answer_timeouts} timeouts so far)", throttle_duration_sec=5.0)
            self._awaiting_ns = None
        self._publish_ahead()

    def _publish_ahead(self) -> None:
        # A context shut down meanwhile (by whoever owns it) cannot publish: drop the frame.
        if self._ahead is None or not self.context.ok():
            return
        stamp_ns, frame = self._ahead
        self._ahead = None
        sent_ns = self.publish_frame(stamp_ns, frame)
        self._published_at = time.monotonic()
        if self.settings.wait_for_topic:
            self._awaiting_ns = sent_ns

    def _on_answer(self, msg: Detection2DArray) -> None:
        stamp = msg.header.stamp
        if self._awaiting_ns is None or stamp_to_ns(stamp.sec, stamp.nanosec) != self._awaiting_ns:
            return  # an answer to an earlier frame (after a timeout), or to another camera
        self._awaiting_ns = None
        # At once when the frame is rendered and rate_hz allows; otherwise the next tick.
        if not self.done and time.monotonic() - self._published_at >= self._period_s:
            self._publish_ahead()

    def publish_frame(self, stamp_ns: int, frame: SynthFrame) -> int:
        """Publish one frame on every topic with one header stamp; return that stamp in ns."""
        s = self.settings
        stamp = stamp_msg(stamp_ns) if s.publish_clock else self.get_clock().now().to_msg()
        if self._pub_clock is not None:
            # The clock first, so subscribers' sim time has reached the frame's stamp.
            self._pub_clock.publish(Clock(clock=stamp))
        rgb_header = Header(stamp=stamp, frame_id=s.frame_id(s.camera))
        depth_header = Header(stamp=stamp, frame_id=s.frame_id(s.depth_camera))
        self._pub_info.publish(intrinsics_to_camera_info(rgb_header, frame.intrinsics))
        self._pub_image.publish(bgra_image_msg(rgb_header, frame.rgb))
        self._pub_depth_info.publish(intrinsics_to_camera_info(depth_header, frame.intrinsics))
        self._pub_depth.publish(depth_to_image(depth_header, frame.depth_m))
        if self._pub_truth is not None:
            self._pub_truth.publish(ground_truth_msg(rgb_header, frame))
        self.frames_published += 1
        return stamp_to_ns(stamp.sec, stamp.nanosec)


def main(argv: list[str] | None = None) -> int:
    """Run the ``synthetic_camera`` node until interrupted (console script entry point)."""
    return run_node(SyntheticCameraNode, "synthetic_camera", argv)


if __name__ == "__main__":
    sys.exit(main())
