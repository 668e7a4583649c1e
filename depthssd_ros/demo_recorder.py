"""The demo's recorder node: scores, composes video frames and reports status while it runs.

It subscribes to the pipeline like any other ROS node: the synthetic camera's camera_info (the
arrival of a frame's camera_info marks when the frame left the camera), ground truth and depth,
and the perception node's detections, depth, overlay and /diagnostics. Ground truth and outputs
are paired by header stamp in :class:`LiveEvaluator`. The planner's decisions come from the
planner node itself (:meth:`DemoRecorder.record_decision` as its decision listener): its three
topics carry no header, and pairing a distance from one topic with an advisory from another
logged ``brake`` next to the distance of an earlier frame. Video frames are
the node's overlay (with the expected true boxes drawn thin) beside its depth, over a status
bar; :func:`write_video` and :func:`write_contact_sheet` turn them into files.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, Image
from vision_msgs.msg import Detection2DArray

from depthssd_ros.conversions import image_to_depth, image_to_frame
from depthssd_ros.live_evaluator import LabelledBox, LiveEvaluator
from depthssd_ros.planner_node import PlannerDecision, describe_decision

VIDEO_FRAMES_MAX = 1500  # about 1.5 MB each: a bound on memory for long runs
BAR_PX = 30
ADVISORY_BGR = {"none": (90, 170, 90), "caution": (0, 190, 255), "brake": (40, 40, 230)}


def finite_or_none(value: float | None) -> float | None:
    """``value`` as a float, or None when it is missing, NaN or infinite (JSON has neither)."""
    return None if value is None or not math.isfinite(value) else float(value)


def colorize_depth(depth_m: np.ndarray, near_m: float = 1.0, far_m: float = 100.0) -> np.ndarray:
    """BGR picture of a depth map on a log scale (near = warm); NaN black."""
    d = np.nan_to_num(depth_m.astype(np.float32), nan=far_m * 10.0, posinf=far_m * 10.0)
    scaled = np.log(np.clip(d, near_m, far_m) / near_m) / math.log(far_m / near_m)
    img = cv2.applyColorMap((255 * (1.0 - scaled)).astype(np.uint8), cv2.COLORMAP_TURBO)
    img[~np.isfinite(depth_m)] = 0
    return img


def draw_text(img: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.5,
              colour: tuple[int, int, int] = (255, 255, 255)) -> None:
    """Write ``text`` with its baseline starting at ``org``, on a dark box."""
    # A dark box behind the text keeps it readable on any background (an outline drawn with a
    # thicker stroke does not line up: OpenCV 5's font gets wider as it gets bolder).
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x, y = org
    cv2.rectangle(img, (x - 2, y - h - 2), (x + w + 2, y + base), (20, 20, 20), -1)
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, 1, cv2.LINE_AA)


def labelled_boxes(msg: Detection2DArray) -> list[LabelledBox]:
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


def stamp_ns(header) -> int:
    """A header's stamp in nanoseconds (the key that pairs truth and outputs)."""
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec



class DemoRecorder(Node):
    """Subscribes to the pipeline's topics, scores, composes video frames, prints status."""

    def __init__(self, context, topics: dict[str, str], record_video: bool,
                 perception_node: str = "depthssd_node") -> None:
        """Create the recorder.

        Args:
            context: the rclpy context of the demo.
            topics: topic names by role: camera_info, truth, true_depth, detections, depth,
                overlay.
            record_video: whether to subscribe to the overlay and compose video frames.
            perception_node: the perception node's name (its /diagnostics status prefix).
        """
        super().__init__("depthssd_demo_recorder", context=context)
        self.perception_node = perception_node
        self.evaluator = LiveEvaluator()
        self.status_eval: tuple[float | None, float | None] = (None, None)
        self.publish_time: OrderedDict[int, float] = OrderedDict()
        self.latency_ms: list[float] = []
        self.output_times: list[float] = []
        self.camera_times: list[float] = []
        # Stamps of the frames the camera published and of those that got detections.
        self.camera_stamps: set[int] = set()
        self.answered_stamps: set[int] = set()
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
        # The overlay callback runs in its own group: parts and video are shared with the main
        # group's callbacks.
        self.video_lock = threading.Lock()
        group = MutuallyExclusiveCallbackGroup()
        reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)

        def sub(msg_type, topic, callback, callback_group=group):
            self.create_subscription(msg_type, topic, callback, reliable,
                                     callback_group=callback_group)

        # Arrival times are taken in their own callback group, so a frame being composed in
        # the main group does not add its time to the measured latency.
        timing = MutuallyExclusiveCallbackGroup()
        sub(CameraInfo, topics["camera_info"], self._on_camera_info, timing)
        sub(Detection2DArray, topics["detections"], self._on_detections_arrival, timing)
        sub(Detection2DArray, topics["truth"], self._on_truth)
        sub(Image, topics["true_depth"], self._on_true_depth)
        sub(Detection2DArray, topics["detections"], self._on_detections)
        sub(Image, topics["depth"], self._on_depth)
        if record_video:
            # Its own group: in the busy main group the executor always found an earlier
            # subscription ready first, so overlays waited until the run ended (a video of a
            # few frames).
            sub(Image, topics["overlay"], self._on_overlay, MutuallyExclusiveCallbackGroup())
        sub(DiagnosticArray, "/diagnostics", self._on_diagnostics)
        self.node_diagnostics: dict[str, str] = {}

    # -------------------------------------------------------------- inputs
    def _on_camera_info(self, msg) -> None:
        # The camera publishes camera_info just before the image of the same stamp: its
        # arrival marks when the frame left the camera (within a millisecond here).
        now = time.monotonic()
        with self.lock:
            self.publish_time[stamp_ns(msg.header)] = now
            self.camera_times.append(now)
            self.camera_stamps.add(stamp_ns(msg.header))
            while len(self.publish_time) > 500:
                self.publish_time.popitem(last=False)

    def _on_truth(self, msg) -> None:
        stamp = stamp_ns(msg.header)
        boxes = labelled_boxes(msg)
        self.truth[stamp] = boxes
        while len(self.truth) > 200:
            self.truth.popitem(last=False)
        self._scored(self.evaluator.add_truth(stamp, boxes))
        self._try_compose(stamp)

    def _scored(self, score) -> None:
        # The status line runs in another thread and must not iterate the evaluator while a
        # callback changes it: it reads these two values, replaced whole after each frame.
        if score is not None:
            self.status_eval = (self.evaluator.recent_distance_error(),
                                self.evaluator.summary()["recall"])

    def _on_true_depth(self, msg) -> None:
        self.evaluator.add_true_depth(stamp_ns(msg.header), image_to_depth(msg))

    def _on_detections_arrival(self, msg) -> None:
        now = time.monotonic()
        with self.lock:
            sent = self.publish_time.get(stamp_ns(msg.header))
            if sent is not None:
                self.latency_ms.append(1000.0 * (now - sent))
            self.output_times.append(now)
            self.answered_stamps.add(stamp_ns(msg.header))

    def _on_detections(self, msg) -> None:
        stamp = stamp_ns(msg.header)
        boxes = labelled_boxes(msg)
        self.objects_last = len(boxes)
        self._scored(self.evaluator.add_detections(stamp, boxes))
        self._set_part(stamp, "detections", boxes)

    def _on_depth(self, msg) -> None:
        stamp = stamp_ns(msg.header)
        depth = image_to_depth(msg)
        self.evaluator.add_predicted_depth(stamp, depth)
        if self.record_video:
            self._set_part(stamp, "depth", depth)

    def _on_overlay(self, msg) -> None:
        stamp = stamp_ns(msg.header)
        self._set_part(stamp, "overlay", image_to_frame(msg).copy())

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name.startswith(f"{self.perception_node}:"):
                self.node_diagnostics = {kv.key: kv.value for kv in status.values}

    def record_decision(self, decision: PlannerDecision) -> None:
        """Take one of the planner's decisions (its decision listener; any thread)."""
        with self.lock:
            self.advisory_counts[decision.advisory] += 1
            if decision.changed or not self.decisions:
                # The first entry (from null) is the initial advisory; then every change, with
                # the values the planner logged for it.
                nearest = decision.nearest
                self.decisions.append({
                    "t_s": round(time.monotonic() - self.started, 3),
                    "stamp_s": round(decision.stamp_s, 3),
                    "from": decision.previous_advisory if self.decisions else None,
                    "to": decision.advisory,
                    "nearest_m": finite_or_none(decision.nearest_distance_m),
                    "time_to_contact_s": finite_or_none(decision.time_to_contact_s),
                    "closing_speed_mps": finite_or_none(decision.closing_speed_mps),
                    "track_id": nearest.track_id if nearest else None,
                    "class": nearest.class_name if nearest else None,
                    "log": describe_decision(decision) if decision.changed else None})
            self.advisory = decision.advisory
            self.nearest_m = decision.nearest_distance_m
            self.ttc_s = decision.time_to_contact_s

    def answered_frames(self) -> int:
        """Camera frames whose detections arrived."""
        with self.lock:
            return len(self.camera_stamps & self.answered_stamps)

    def answered_fraction(self) -> float | None:
        """The share of the camera's frames whose detections arrived (None before a frame)."""
        with self.lock:
            published = len(self.camera_stamps)
            answered = len(self.camera_stamps & self.answered_stamps)
        return answered / published if published else None

    # -------------------------------------------------------------- video
    def _set_part(self, stamp: int, key: str, value: Any) -> None:
        with self.video_lock:
            self.parts.setdefault(stamp, {})[key] = value
            while len(self.parts) > 30:
                self.parts.popitem(last=False)
        self._try_compose(stamp)

    def _try_compose(self, stamp: int) -> None:
        if not self.record_video:
            return
        with self.video_lock:
            part = self.parts.get(stamp)
            if part is None or not {"overlay", "depth", "detections"} <= part.keys():
                return
            if stamp not in self.truth or len(self.video) >= VIDEO_FRAMES_MAX:
                return
            del self.parts[stamp]
        # Composing (colour maps, text) runs outside the lock.
        frame = self.compose(stamp, part)
        with self.video_lock:
            # Two callback groups compose: keep the video in stamp order.
            at = bisect.bisect(self.video_stamps, stamp)
            self.video.insert(at, frame)
            self.video_stamps.insert(at, stamp)

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
        draw_text(left, "detections (thin white: ground truth)", (6, 16), 0.45)
        draw_text(right, "depth, log scale 1-100 m (near = red)", (6, 16), 0.45)
        bar = np.full((BAR_PX, 2 * w, 3), 30, np.uint8)
        colour = ADVISORY_BGR.get(self.advisory, (200, 200, 200))
        cv2.rectangle(bar, (2 * w - 150, 3), (2 * w - 4, BAR_PX - 4), colour, -1)
        cv2.putText(bar, self.advisory.upper(), (2 * w - 140, BAR_PX - 9),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        nearest = f"{self.nearest_m:.1f} m" if math.isfinite(self.nearest_m) else "clear"
        ttc = f"{self.ttc_s:.1f} s" if math.isfinite(self.ttc_s) else "-"
        draw_text(bar, f"sim t {stamp * 1e-9:6.2f} s | {len(part['detections'])} objects | "
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
        err, recall = self.status_eval
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
        draw_text(thumbs[0], empty_text, (20, 100), 0.7)
    tw = thumbs[0].shape[1]
    while len(thumbs) % columns:
        thumbs.append(np.zeros_like(thumbs[0]))
    rows = [np.hstack(thumbs[i:i + columns]) for i in range(0, len(thumbs), columns)]
    header = np.full((36, tw * columns, 3), 20, np.uint8)
    draw_text(header, title, (10, 24), 0.5 if tw * columns >= 1000 else 0.35)
    cv2.imwrite(str(path), np.vstack([header, *rows]))
    return path
