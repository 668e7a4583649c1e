"""Multi-object tracking across frames: stable ids, smoothed distance, closing speed, TTC.

Association is per class on the IoU between each track's predicted box (constant pixel
velocity) and the new detections, solved greedily by descending IoU: with the few tens of
objects of a driving scene greedy matches Hungarian except in rare ties, and needs no solver.
All classes are matched in one pass over one IoU matrix whose cross-class pairs are excluded:
pairs of different classes never share a row or a column, so this is the per-class greedy
matching, at the cost of one matrix instead of one per class.
A track is born from every unmatched detection and dies after ``max_misses`` frames without a
match. Each track runs a 1-D constant-velocity Kalman filter on its distance; the closing speed
is minus the distance rate (positive = approaching) and the time to contact is distance /
closing speed (inf when not closing).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from depthssd_core.boxes import box_iou


@dataclass(frozen=True)
class TrackerSettings:
    """Tracker parameters.

    Attributes:
        iou_threshold: minimum IoU between a predicted track box and a detection to match.
        max_misses: a track missing for more than this many consecutive frames is deleted.
        accel_sigma_mps2: process noise, the standard deviation of the object's relative
            acceleration along the line of sight (m/s^2).
        init_rate_sigma_mps: initial uncertainty of the distance rate (m/s).
        min_meas_sigma_m: floor on the measurement sigma (m).
        gate_sigmas: a measurement further than this many innovation sigmas from the
            prediction restarts the filter (the track jumped to another surface).
        min_updates_for_speed: closing speed is reported as 0 until a track has this many
            distance measurements (one measurement says nothing about speed).
        box_velocity_gain: blend factor of a new box velocity into the track's (0..1).
    """

    iou_threshold: float = 0.3
    max_misses: int = 5
    accel_sigma_mps2: float = 3.0
    init_rate_sigma_mps: float = 15.0
    min_meas_sigma_m: float = 0.05
    gate_sigmas: float = 6.0
    min_updates_for_speed: int = 3
    box_velocity_gain: float = 0.5


@dataclass
class TrackState:
    """What the tracker reports for one detection of the current frame."""

    track_id: int
    distance_m: float
    distance_sigma_m: float
    closing_speed_mps: float
    time_to_contact_s: float


@dataclass
class _Track:
    track_id: int
    class_index: int
    box_xyxy: np.ndarray
    box_velocity_pps: np.ndarray  # pixels per second of (x1, y1, x2, y2)
    stamp_s: float
    # Kalman state [distance, rate] and covariance [[p_dd, p_dv], [p_dv, p_vv]] as plain floats:
    # 2x2 numpy algebra per object costs more in call overhead than the arithmetic itself.
    d: float = math.nan
    v: float = 0.0
    p_dd: float = 1.0
    p_dv: float = 0.0
    p_vv: float = 1.0
    hits: int = 1
    misses: int = 0
    distance_updates: int = 0



def greedy_match(iou: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """Pairs (row, col) taken in descending IoU order, each row and column once, IoU >= cut."""
    pairs: list[tuple[int, int]] = []
    if iou.size == 0:
        return pairs
    order = np.argsort(-iou, axis=None, kind="stable")
    used_r: set[int] = set()
    used_c: set[int] = set()
    for flat in order:
        r, c = divmod(int(flat), iou.shape[1])
        if iou[r, c] < threshold:
            break
        if r in used_r or c in used_c:
            continue
        used_r.add(r)
        used_c.add(c)
        pairs.append((r, c))
    return pairs


class Tracker:
    """Keeps object identities and distance dynamics across frames."""

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self._tracks: list[_Track] = []
        self._next_id = 1

    def reset(self) -> None:
        """Forget every track (ids restart at 1)."""
        self._tracks = []
        self._next_id = 1

    @property
    def num_tracks(self) -> int:
        """Number of live tracks."""
        return len(self._tracks)

    def update(self, boxes_xyxy: np.ndarray, class_index: np.ndarray, distance_m: np.ndarray,
               distance_sigma_m: np.ndarray, stamp_s: float) -> list[TrackState]:
        """Associate this frame's detections with the tracks and update them.

        Args:
            boxes_xyxy: (N, 4) detection boxes, pixels.
            class_index: (N,) class indices; only boxes of the same class are associated.
            distance_m: (N,) measured distances (NaN = no measurement).
            distance_sigma_m: (N,) their sigmas.
            stamp_s: frame time, seconds; must not go backwards (reset first).

        Returns:
            One :class:`TrackState` per detection, in input order.
        """
        boxes = np.asarray(boxes_xyxy, dtype=np.float64).reshape(-1, 4)
        classes = np.asarray(class_index, dtype=np.int64).reshape(-1)
        dist = np.asarray(distance_m, dtype=np.float64).reshape(-1)
        sig = np.asarray(distance_sigma_m, dtype=np.float64).reshape(-1)
        n = boxes.shape[0]
        if not (classes.shape[0] == dist.shape[0] == sig.shape[0] == n):
            raise ValueError("boxes, classes, distances and sigmas must have the same length")
        for track in self._tracks:
            if stamp_s < track.stamp_s:
                raise ValueError(
                    f"stamp {stamp_s} is before the last update {track.stamp_s}; reset first"
                )
        assigned: dict[int, _Track] = {}
        matched_tracks: set[int] = set()
        if self._tracks and n:
            tracks = self._tracks
            # Constant pixel velocity from each track's last box to this stamp.
            predicted = (np.array([t.box_xyxy for t in tracks])
                         + np.array([t.box_velocity_pps for t in tracks])
                         * (stamp_s - np.array([t.stamp_s for t in tracks]))[:, None])
            same_class = np.array([t.class_index for t in tracks])[:, None] == classes[None, :]
            iou = np.where(same_class, box_iou(predicted, boxes), -np.inf)
            for r, c in greedy_match(iou, self.settings.iou_threshold):
                assigned[c] = tracks[r]
                matched_tracks.add(r)
        # Unmatched tracks coast; old ones die.
        survivors = []
        for i, track in enumerate(self._tracks):
            if i not in matched_tracks:
                track.misses += 1
                if track.misses > self.settings.max_misses:
                    continue
            survivors.append(track)
        self._tracks = survivors
        states: list[TrackState] = []
        for k in range(n):
            track = assigned.get(k)
            if track is None:
                track = _Track(self._next_id, int(classes[k]), boxes[k].copy(), np.zeros(4),
                               stamp_s)
                self._next_id += 1
                self._tracks.append(track)
            else:
                self._update_box(track, boxes[k], stamp_s)
            self._kalman_step(track, dist[k], sig[k], stamp_s)
            track.stamp_s = stamp_s
            states.append(self._state(track))
        return states

    def _update_box(self, track: _Track, box: np.ndarray, stamp_s: float) -> None:
        dt = stamp_s - track.stamp_s
        if dt > 0:
            velocity = (box - track.box_xyxy) / dt
            gain = self.settings.box_velocity_gain if track.hits > 1 else 1.0
            track.box_velocity_pps = (1 - gain) * track.box_velocity_pps + gain * velocity
        track.box_xyxy = box.copy()
        track.hits += 1
        track.misses = 0

    def _kalman_step(self, track: _Track, z_m: float, sigma_m: float, stamp_s: float) -> None:
        s = self.settings
        if not math.isfinite(z_m):
            # No measurement: predict only, so the state stays current with the stamp.
            if math.isfinite(track.d):
                self._predict(track, stamp_s - track.stamp_s)
            return
        r = max(sigma_m if math.isfinite(sigma_m) else 0.0, s.min_meas_sigma_m) ** 2
        if not math.isfinite(track.d):
            self._init_filter(track, z_m, r)
            return
        self._predict(track, stamp_s - track.stamp_s)
        innovation = z_m - track.d
        s_var = track.p_dd + r
        if innovation * innovation > (s.gate_sigmas ** 2) * s_var:
            self._init_filter(track, z_m, r)
            return
        k_d, k_v = track.p_dd / s_var, track.p_dv / s_var
        track.d += k_d * innovation
        track.v += k_v * innovation
        # P <- (I - K H) P with H = [1, 0].
        track.p_vv -= k_v * track.p_dv
        track.p_dd -= k_d * track.p_dd
        track.p_dv -= k_d * track.p_dv
        track.distance_updates += 1

    def _init_filter(self, track: _Track, z_m: float, r: float) -> None:
        track.d, track.v = z_m, 0.0
        track.p_dd, track.p_dv, track.p_vv = r, 0.0, self.settings.init_rate_sigma_mps ** 2
        track.distance_updates = 1

    def _predict(self, track: _Track, dt: float) -> None:
        if dt <= 0:
            return
        q = self.settings.accel_sigma_mps2 ** 2
        # F P F^T + Q for F = [[1, dt], [0, 1]] and the piecewise-constant white acceleration
        # noise Q = q [[dt^4/4, dt^3/2], [dt^3/2, dt^2]] of a constant-velocity model.
        track.d += track.v * dt
        track.p_dd += 2 * track.p_dv * dt + track.p_vv * dt * dt + q * dt ** 4 / 4
        track.p_dv += track.p_vv * dt + q * dt ** 3 / 2
        track.p_vv += q * dt * dt

    def _state(self, track: _Track) -> TrackState:
        distance = float(track.d)
        sigma = math.sqrt(max(track.p_dd, 0.0)) if math.isfinite(distance) else math.nan
        closing = 0.0
        if track.distance_updates >= self.settings.min_updates_for_speed:
            closing = -float(track.v)
        ttc = distance / closing if closing > 1e-6 and math.isfinite(distance) else math.inf
        return TrackState(track.track_id, distance, sigma, closing, ttc)
