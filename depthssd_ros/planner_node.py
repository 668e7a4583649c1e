"""``planner_example``: a minimal consumer of depthssd's detections, as a planner would use them.

It reads ``vision_msgs/Detection2DArray`` (relative topic ``detections``, remapped to the
perception node's ``~/detections``), whose ``results[0].pose.pose.position`` is the object's 3D
point in the camera optical frame (x right, y down, z forward; metres) and whose ``id`` is the
track id. It keeps the nearest object inside the ego lane corridor (``|x| <= half width``,
with ``x`` the median over the track's last ``lateral_window_s``), estimates its closing speed
from the distance rate of its track and publishes:

- ``~/nearest_distance_m`` (``std_msgs/Float32``): forward distance z of the nearest object in
  the corridor; ``+inf`` when there is none (the ``sensor_msgs/Range`` convention).
- ``~/time_to_contact_s`` (``std_msgs/Float32``): distance / closing speed; ``+inf`` when not
  closing or unknown.
- ``~/advisory`` (``std_msgs/String``): ``none``, ``caution`` or ``brake``; each change is logged.

The decision logic (:class:`CorridorPlanner`) is plain Python without rclpy so it can be tested
and reused on its own; the node only converts messages and publishes. It is an example of how to
consume the detections, not a safety function.
"""

from __future__ import annotations

import math
import sys
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields

import numpy as np
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.time import Time
from std_msgs.msg import Float32, String
from vision_msgs.msg import Detection2DArray

from depthssd_ros.node_main import run_node

#: Advisory levels, mildest first.
ADVISORIES: tuple[str, ...] = ("none", "caution", "brake")


@dataclass(frozen=True)
class PlannerSettings:
    """Parameters of :class:`CorridorPlanner` (ROS parameters of the same names).

    The values here are the defaults; ``config/planner.yaml`` lists the same values with a
    comment per key (a test keeps the two equal).

    Attributes:
        corridor_half_width_m: objects with ``|x| <=`` this lateral offset are in the ego lane.
        lateral_window_s: a tracked object's lateral offset is the median of its offsets over
            this trailing window. The offset is the distance times the bearing of the box
            centre, so per-frame distance noise moves it too; a car parked beside the lane,
            seen close and from the side, sits only 0.2-0.5 m outside the corridor (its box
            takes in its side), where one noisy frame would otherwise put it inside.
        max_range_m: objects further than this forward distance are ignored.
        ignored_classes: classes that are never obstacles (they stand beside or above the road).
        rate_window_s: the closing speed is the least-squares slope of a track's distance over
            this trailing time window (a filter against per-frame distance noise); it needs
            samples spanning at least half the window (a new track has no speed before).
        min_rate_samples: fewer samples in the window give no closing speed (TTC = inf).
        min_closing_speed_mps: slower closing counts as "not closing" (TTC = inf).
        closing_speed_sigmas: the closing speed counts only when it exceeds
            ``min_closing_speed_mps`` by this many standard errors of its fit; otherwise it is
            unknown (TTC = inf). A few noisy distances of a car driving at the ego's speed
            would otherwise fit a closing speed of several m/s.
        track_timeout_s: a track not seen for this long is forgotten.
        caution_ttc_s: time to contact at or below which the advisory is at least ``caution``.
        brake_ttc_s: time to contact at or below which the advisory is ``brake``.
        caution_distance_m: distance at or below which the advisory is at least ``caution``.
        brake_distance_m: distance at or below which the advisory is ``brake``.
        release_hold_s: a milder advisory must persist this long before it replaces a stronger
            one (escalation is immediate), so the advisory does not chatter.
    """

    corridor_half_width_m: float = 1.8
    lateral_window_s: float = 1.5
    max_range_m: float = 80.0
    ignored_classes: tuple[str, ...] = ("traffic_light", "traffic_sign")
    rate_window_s: float = 1.0
    min_rate_samples: int = 4
    min_closing_speed_mps: float = 0.5
    closing_speed_sigmas: float = 2.0
    track_timeout_s: float = 1.0
    caution_ttc_s: float = 4.0
    brake_ttc_s: float = 2.0
    caution_distance_m: float = 12.0
    brake_distance_m: float = 5.0
    release_hold_s: float = 0.5

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first inconsistent setting."""
        positive = ("corridor_half_width_m", "max_range_m", "rate_window_s", "track_timeout_s",
                    "caution_ttc_s", "brake_ttc_s", "caution_distance_m", "brake_distance_m")
        for name in positive:
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"planner setting {name} must be a positive number, got {value}")
        for name in ("min_closing_speed_mps", "closing_speed_sigmas", "release_hold_s",
                     "lateral_window_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"planner setting {name} must be >= 0, got {value}")
        if self.min_rate_samples < 2:
            raise ValueError(
                f"planner setting min_rate_samples must be >= 2, got {self.min_rate_samples}")
        if self.brake_ttc_s > self.caution_ttc_s:
            raise ValueError(f"brake_ttc_s ({self.brake_ttc_s}) must not exceed caution_ttc_s "
                             f"({self.caution_ttc_s})")
        if self.brake_distance_m > self.caution_distance_m:
            raise ValueError(f"brake_distance_m ({self.brake_distance_m}) must not exceed "
                             f"caution_distance_m ({self.caution_distance_m})")


@dataclass(frozen=True)
class Obstacle:
    """One detection as the planner sees it.

    Attributes:
        track_id: the tracker's id ("" when untracked: no closing speed can be estimated).
        class_name: class of the object.
        point_optical: (x, y, z) in the camera optical frame, metres.
    """

    track_id: str
    class_name: str
    point_optical: tuple[float, float, float]


@dataclass(frozen=True)
class PlannerDecision:
    """The planner's output for one detection frame.

    Attributes:
        stamp_s: stamp of the detections (seconds).
        nearest_distance_m: forward distance of the nearest in-corridor object (inf if none).
        time_to_contact_s: its time to contact (inf when not closing or unknown).
        closing_speed_mps: its filtered closing speed (positive = approaching; NaN if unknown).
        advisory: one of :data:`ADVISORIES`.
        nearest: the nearest in-corridor obstacle, if any.
        changed: whether ``advisory`` differs from the previous frame's.
        previous_advisory: the advisory before this frame.
    """

    stamp_s: float
    nearest_distance_m: float
    time_to_contact_s: float
    closing_speed_mps: float
    advisory: str
    nearest: Obstacle | None
    changed: bool
    previous_advisory: str


@dataclass
class _TrackHistory:
    samples: deque = field(default_factory=deque)  # (stamp_s, distance_m, lateral_m)
    last_seen_s: float = -math.inf


def closing_speed_fit(samples: Sequence[tuple[float, ...]]) -> tuple[float, float]:
    """Closing speed and its standard error from (stamp_s, distance_m, ...) samples.

    The closing speed is minus the least-squares slope of distance over time; its standard
    error is the slope's (residual variance over n - 2 degrees of freedom). NaN for fewer than
    two samples or samples all at one time; the error is NaN below three samples.
    """
    if len(samples) < 2:
        return math.nan, math.nan
    t = np.array([s[0] for s in samples], dtype=np.float64)
    d = np.array([s[1] for s in samples], dtype=np.float64)
    t = t - t.mean()
    denom = float(np.dot(t, t))
    if denom <= 0.0:
        return math.nan, math.nan
    slope = float(np.dot(t, d - d.mean()) / denom)
    if len(samples) < 3:
        return -slope, math.nan
    residual = d - d.mean() - slope * t
    return -slope, math.sqrt(float(np.dot(residual, residual)) / (len(samples) - 2) / denom)


def closing_speed_mps(samples: Sequence[tuple[float, ...]]) -> float:
    """Closing speed from (stamp_s, distance_m, ...) samples: minus the least-squares slope.

    Returns NaN for fewer than two samples or samples all at one time.
    """
    return closing_speed_fit(samples)[0]


class CorridorPlanner:
    """Nearest in-lane object, its time to contact and a brake advisory, frame by frame."""

    def __init__(self, settings: PlannerSettings | None = None) -> None:
        """Create a planner.

        Args:
            settings: parameters; the defaults when omitted.

        Raises:
            ValueError: inconsistent settings.
        """
        self.settings = settings or PlannerSettings()
        self.settings.validate()
        self._tracks: dict[str, _TrackHistory] = {}
        self._advisory = "none"
        self._milder_since_s: float | None = None

    @property
    def advisory(self) -> str:
        """The current advisory."""
        return self._advisory

    def ahead(self, obstacle: Obstacle) -> bool:
        """Whether ``obstacle`` may be an obstacle at all: ahead, in range, of a road class."""
        x, _, z = obstacle.point_optical
        s = self.settings
        return (math.isfinite(x) and math.isfinite(z) and 0.0 < z <= s.max_range_m
                and obstacle.class_name not in s.ignored_classes)

    def lateral_m(self, obstacle: Obstacle) -> float:
        """The lateral offset that decides corridor membership (see ``lateral_window_s``)."""
        hist = self._tracks.get(obstacle.track_id) if obstacle.track_id else None
        if hist is None or not hist.samples:
            return float(obstacle.point_optical[0])
        # The track keeps the longer of the two windows; the median spans only its own.
        newest_s = hist.samples[-1][0]
        return float(np.median([x for t, _, x in hist.samples
                                if newest_s - t <= self.settings.lateral_window_s]))

    def in_corridor(self, obstacle: Obstacle) -> bool:
        """Whether ``obstacle`` is ahead, within range and inside the ego lane corridor."""
        return (self.ahead(obstacle)
                and abs(self.lateral_m(obstacle)) <= self.settings.corridor_half_width_m)

    def update(self, stamp_s: float, obstacles: Iterable[Obstacle]) -> PlannerDecision:
        """Take one frame of detections and decide.

        Args:
            stamp_s: stamp of the frame (seconds; the detections' header stamp, so simulated
                time and bag playback give the right rates).
            obstacles: all detections of the frame.

        Returns:
            The :class:`PlannerDecision` for this frame.
        """
        s = self.settings
        ahead = [o for o in obstacles if self.ahead(o)]
        for obstacle in ahead:
            if obstacle.track_id:
                hist = self._tracks.setdefault(obstacle.track_id, _TrackHistory())
                if hist.samples and stamp_s <= hist.samples[-1][0]:
                    continue  # a repeated or out-of-order stamp carries no rate information
                x, _, z = obstacle.point_optical
                hist.samples.append((stamp_s, float(z), float(x)))
                hist.last_seen_s = stamp_s
        window_s = max(s.rate_window_s, s.lateral_window_s)
        for track_id in list(self._tracks):
            hist = self._tracks[track_id]
            if stamp_s - hist.last_seen_s > s.track_timeout_s:
                del self._tracks[track_id]
                continue
            while hist.samples and stamp_s - hist.samples[0][0] > window_s:
                hist.samples.popleft()

        candidates = [o for o in ahead if self.in_corridor(o)]
        nearest = min(candidates, key=lambda o: o.point_optical[2], default=None)
        distance_m = math.inf if nearest is None else float(nearest.point_optical[2])
        speed_mps = stderr_mps = math.nan
        if nearest is not None and nearest.track_id in self._tracks:
            samples = [sample for sample in self._tracks[nearest.track_id].samples
                       if stamp_s - sample[0] <= s.rate_window_s]
            if (len(samples) >= s.min_rate_samples
                    and samples[-1][0] - samples[0][0] >= 0.5 * s.rate_window_s):
                speed_mps, stderr_mps = closing_speed_fit(samples)
        ttc_s = math.inf
        # Closing, and known to be: noise alone must not make a time to contact.
        if speed_mps - s.closing_speed_sigmas * stderr_mps > s.min_closing_speed_mps:
            ttc_s = distance_m / speed_mps

        previous = self._advisory
        self._advisory = self._debounce(stamp_s, self._level(distance_m, ttc_s))
        return PlannerDecision(stamp_s, distance_m, ttc_s, speed_mps, self._advisory, nearest,
                               self._advisory != previous, previous)

    def _level(self, distance_m: float, ttc_s: float) -> str:
        s = self.settings
        if ttc_s <= s.brake_ttc_s or distance_m <= s.brake_distance_m:
            return "brake"
        if ttc_s <= s.caution_ttc_s or distance_m <= s.caution_distance_m:
            return "caution"
        return "none"

    def _debounce(self, stamp_s: float, level: str) -> str:
        rank = ADVISORIES.index
        if rank(level) >= rank(self._advisory):
            self._milder_since_s = None
            return level
        # Relax only once the milder level has held for release_hold_s.
        if self._milder_since_s is None:
            self._milder_since_s = stamp_s
        if stamp_s - self._milder_since_s >= self.settings.release_hold_s:
            self._milder_since_s = None
            return level
        return self._advisory

    def reset(self) -> None:
        """Forget all tracks and return to ``none`` (e.g. after a time jump)."""
        self._tracks.clear()
        self._advisory = "none"
        self._milder_since_s = None


#: ROS parameter descriptions (the same keys as :class:`PlannerSettings`).
PARAMETER_DESCRIPTIONS: dict[str, str] = {
    "corridor_half_width_m": "ego lane corridor half width: objects with |x| <= this are in lane",
    "lateral_window_s": "a track's lateral offset is its median over this trailing window (s)",
    "max_range_m": "objects further ahead than this forward distance z are ignored",
    "ignored_classes": "classes that are never obstacles",
    "rate_window_s": "trailing window of the least-squares closing-speed fit, seconds",
    "min_rate_samples": "fewer distance samples in the window give no closing speed",
    "min_closing_speed_mps": "closing slower than this counts as not closing (TTC = inf)",
    "closing_speed_sigmas": "standard errors by which the fitted closing speed must exceed "
                            "min_closing_speed_mps to count",
    "track_timeout_s": "a track unseen for this long is forgotten",
    "caution_ttc_s": "time to contact at or below which the advisory is at least caution",
    "brake_ttc_s": "time to contact at or below which the advisory is brake",
    "caution_distance_m": "distance at or below which the advisory is at least caution",
    "brake_distance_m": "distance at or below which the advisory is brake",
    "release_hold_s": "a milder advisory must persist this long before it replaces a stronger one",
}


class PlannerNode(Node):
    """Subscribes ``detections``, publishes nearest distance, TTC and the advisory."""

    def __init__(self, node_name: str = "planner_example", **node_kwargs) -> None:
        """Create the node (``rclpy.init`` must have been called).

        Args:
            node_name: the node's name.
            **node_kwargs: passed to ``rclpy.node.Node`` (``namespace``, ``cli_args``,
                ``parameter_overrides``, ...).

        Raises:
            ValueError: a parameter value is invalid (the message names it).
        """
        super().__init__(node_name, **node_kwargs)
        self.planner = CorridorPlanner(self._declare_settings())
        self.last_decision: PlannerDecision | None = None
        self._listeners: list[Callable[[PlannerDecision], None]] = []
        self._pub_distance = self.create_publisher(Float32, "~/nearest_distance_m", 10)
        self._pub_ttc = self.create_publisher(Float32, "~/time_to_contact_s", 10)
        self._pub_advisory = self.create_publisher(String, "~/advisory", 10)
        self._last_stamp_s = -math.inf
        self.create_subscription(Detection2DArray, "detections", self._on_detections, 10)
        self.get_logger().info(
            f"listening for detections on {self.resolve_topic_name('detections')}")

    def add_decision_listener(self, listener: Callable[[PlannerDecision], None]) -> None:
        """Call ``listener`` with every decision, in the subscription's callback, right after
        the decision is published (an in-process consumer such as the demo's recorder gets the
        very values the topics and the log carry, not a mix of frames from three topics)."""
        self._listeners.append(listener)

    def _declare_settings(self) -> PlannerSettings:
        defaults = PlannerSettings()
        values = {}
        for f in fields(PlannerSettings):
            default = getattr(defaults, f.name)
            as_tuple = isinstance(default, tuple)
            descriptor = ParameterDescriptor(description=PARAMETER_DESCRIPTIONS[f.name],
                                             read_only=True)
            value = self.declare_parameter(f.name, list(default) if as_tuple else default,
                                           descriptor).value
            values[f.name] = tuple(value) if as_tuple else value
        return PlannerSettings(**values)

    def _on_detections(self, msg: Detection2DArray) -> None:
        stamp_s = Time.from_msg(msg.header.stamp).nanoseconds * 1e-9
        if stamp_s < self._last_stamp_s:
            # Time went backwards (simulation restarted or bag looped): old rates are void.
            self.get_logger().warn("detection stamps went backwards; planner reset")
            self.planner.reset()
        self._last_stamp_s = stamp_s
        obstacles = []
        for det in msg.detections:
            if not det.results:
                continue
            res = det.results[0]
            p = res.pose.pose.position
            obstacles.append(Obstacle(det.id, res.hypothesis.class_id, (p.x, p.y, p.z)))
        decision = self.planner.update(stamp_s, obstacles)
        self.last_decision = decision
        self._pub_distance.publish(Float32(data=float(decision.nearest_distance_m)))
        self._pub_ttc.publish(Float32(data=float(decision.time_to_contact_s)))
        self._pub_advisory.publish(String(data=decision.advisory))
        if decision.changed:
            self.get_logger().info(describe_decision(decision))
        for listener in self._listeners:
            listener(decision)


def describe_decision(decision: PlannerDecision) -> str:
    """One log line for an advisory change."""
    head = f"advisory {decision.previous_advisory} -> {decision.advisory}"
    if decision.nearest is None:
        return f"{head}: corridor clear"
    o = decision.nearest
    speed = decision.closing_speed_mps
    ttc = decision.time_to_contact_s
    return (f"{head}: track {o.track_id or '?'} {o.class_name} at "
            f"{decision.nearest_distance_m:.1f} m, "
            + (f"closing {speed:.1f} m/s" if math.isfinite(speed) else "closing speed unknown")
            + (f", TTC {ttc:.1f} s" if math.isfinite(ttc) else ""))


def main(argv: list[str] | None = None) -> int:
    """Run the ``planner_example`` node until interrupted (console script entry point)."""
    return run_node(PlannerNode, "planner_example", argv)


if __name__ == "__main__":
    sys.exit(main())
