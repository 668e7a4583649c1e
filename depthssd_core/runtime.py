"""The perception runtime: one camera frame in, detections with distances and a depth map out.

``Perceptor`` wraps an inference backend with everything around the exported graph, as five
named stages that :meth:`Perceptor.process` runs and times in order (its ``latency_ms`` keys in
brackets):

1. :meth:`~Perceptor.preprocess` [preprocess]: frame validation, resizing, normalisation (with
   the input checks and automatic memory resets of :meth:`~Perceptor.process`);
2. :meth:`~Perceptor.infer` [inference]: the backend, fed and updating the recurrent memory;
3. :meth:`~Perceptor.decode` [decode]: box decoding, thresholds and NMS, and metric depth
   (``depth_c * f / f_c``);
4. :meth:`~Perceptor.measure_distances` [distance]: per-object distances;
5. :meth:`~Perceptor.track` [tracking]: identities, smoothed distances, frame-pixel boxes.

It holds no ROS types; ``depthssd_ros`` converts messages and calls :meth:`Perceptor.process`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from depthssd_core.backends.base import InferenceBackend
from depthssd_core.backends.loading import load_backend
from depthssd_core.classes import CLASSES
from depthssd_core.config import SUPERVISED_DEPTH_RANGE_M
from depthssd_core.distance import DistanceSettings, ObjectDistance, estimate_object_distances
from depthssd_core.geometry import CameraIntrinsics, backproject
from depthssd_core.image import validate_frame
from depthssd_core.model.anchors import anchors_for
from depthssd_core.model_info import ModelInfo
from depthssd_core.postprocess import (
    DEFAULT_SCORE_THRESHOLD,
    Detections,
    postprocess_detections,
)
from depthssd_core.tracking import Tracker, TrackerSettings

# Traffic lights and signs hang above the road: the flat-ground distance does not apply.
_OFF_GROUND_CLASSES = frozenset({"traffic_light", "traffic_sign"})
# Frame channel feeding each of the network's R, G, B planes, per encoding.
_RGB_CHANNELS = {"rgb8": (0, 1, 2), "rgba8": (0, 1, 2), "bgr8": (2, 1, 0), "bgra8": (2, 1, 0),
                 "mono8": (0, 0, 0)}


@dataclass
class PerceptorSettings:
    """Run-time settings; may be changed between frames (``perceptor.settings.x = ...``).

    Attributes:
        score_threshold: minimum class probability of a detection (default: the shipped
            model's operating point, ``postprocess.DEFAULT_SCORE_THRESHOLD``).
        nms_iou: IoU above which a lower-scored box of the same class is suppressed.
        max_detections: most detections per frame.
        pre_nms_top_k: most candidates entering NMS.
        classes: class names to report; None reports all of ``CLASSES``.
        camera_height_m: camera height above a flat road; with ``camera_pitch_rad`` enables the
            ground-plane distance fused with the depth estimate. None disables it.
        camera_pitch_rad: downward pitch of the optical axis (radians).
        reset_gap_s: the memory and tracks are reset when the stamp jumps forward by more.
        memory_enabled: False feeds the initial memory state every frame.
        min_depth_m: depth below this is invalid (NaN); None: where training supervision starts
            (``SUPERVISED_DEPTH_RANGE_M``), or the model's minimum if higher.
        max_depth_m: depth above this is invalid (NaN); None: where training supervision ends
            (``SUPERVISED_DEPTH_RANGE_M``), or the model's maximum if lower.
    """

    score_threshold: float = DEFAULT_SCORE_THRESHOLD
    nms_iou: float = 0.5
    max_detections: int = 100
    pre_nms_top_k: int = 1000
    classes: tuple[str, ...] | None = None
    camera_height_m: float | None = None
    camera_pitch_rad: float | None = None
    reset_gap_s: float = 1.0
    memory_enabled: bool = True
    min_depth_m: float | None = None
    max_depth_m: float | None = None

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        if not 0.0 <= self.score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {self.score_threshold}")
        if not 0.0 < self.nms_iou <= 1.0:
            raise ValueError(f"nms_iou must be in (0, 1], got {self.nms_iou}")
        if self.max_detections < 0 or self.pre_nms_top_k < 1:
            raise ValueError("max_detections must be >= 0 and pre_nms_top_k >= 1")
        if not self.reset_gap_s > 0:
            raise ValueError(f"reset_gap_s must be > 0, got {self.reset_gap_s}")
        if self.classes is not None:
            unknown = [c for c in self.classes if c not in CLASSES]
            if unknown:
                raise ValueError(f"unknown classes {unknown}; known: {', '.join(CLASSES)}")
        if self.camera_height_m is not None and not (
                math.isfinite(self.camera_height_m) and self.camera_height_m > 0):
            raise ValueError(f"camera_height_m must be > 0, got {self.camera_height_m}")
        if self.camera_pitch_rad is not None and not (
                math.isfinite(self.camera_pitch_rad) and abs(self.camera_pitch_rad) < math.pi / 2):
            raise ValueError(f"camera_pitch_rad must be in (-pi/2, pi/2), got "
                             f"{self.camera_pitch_rad}")
        for name in ("min_depth_m", "max_depth_m"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be > 0, got {value}")


@dataclass
class Detection:
    """One detected object in the caller's frame.

    Attributes:
        box_xyxy: x1 y1 x2 y2 in pixels of the frame passed to ``process``.
        class_index: index into ``CLASSES`` (0..7).
        class_name: ``CLASSES[class_index]``.
        score: class probability.
        track_id: identity kept across frames (>= 1).
        distance_m: planar (z) distance in the optical frame, Kalman-smoothed over the track;
            NaN when nothing could be measured.
        distance_sigma_m: its one-sigma uncertainty.
        point_optical: (x, y, z) metres of the box centre at ``distance_m``, optical frame.
        closing_speed_mps: rate at which the distance shrinks (positive = approaching).
        time_to_contact_s: distance / closing speed; inf when not closing.
        measured_distance_m: this frame's distance before smoothing.
    """

    box_xyxy: tuple[float, float, float, float]
    class_index: int
    class_name: str
    score: float
    track_id: int
    distance_m: float
    distance_sigma_m: float
    point_optical: tuple[float, float, float]
    closing_speed_mps: float
    time_to_contact_s: float
    measured_distance_m: float = math.nan


@dataclass
class PerceptionResult:
    """What :meth:`Perceptor.process` returns for one frame.

    Attributes:
        detections: the objects, highest score first.
        depth_m: float32 (H, W) planar metres at the frame's resolution, NaN where invalid.
        latency_ms: preprocess, inference, decode, distance, tracking, total.
        memory_reset: why the memory and tracks were reset before this frame, or None.
        backend: name of the backend that ran the network.
        stamp_s: the frame's stamp.
    """

    detections: list[Detection]
    depth_m: np.ndarray
    latency_ms: dict[str, float]
    memory_reset: str | None
    backend: str
    stamp_s: float = 0.0


@dataclass
class DecodedFrame:
    """What :meth:`Perceptor.decode` makes of the network outputs.

    Attributes:
        detections: boxes in network-input pixels, scores and classes, after NMS.
        depth_in: float32 metric depth at the network input resolution (NaN invalid).
        depth_frame: the same at the caller's frame resolution (``depth_in`` itself when the
            two sizes agree).
    """

    detections: Detections
    depth_in: np.ndarray
    depth_frame: np.ndarray


class _StageClock:
    """Times consecutive stages: ``lap(name)`` closes the stage running since the last lap."""

    def __init__(self) -> None:
        self._start = self._last = time.perf_counter()
        self._laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self._laps[name] = now - self._last
        self._last = now

    def latency_ms(self) -> dict[str, float]:
        """Every lap and their ``total``, in milliseconds."""
        return {name: 1000.0 * value
                for name, value in {**self._laps, "total": self._last - self._start}.items()}


def upsample_depth(depth_m: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear upsampling of a depth map in inverse depth (the training loss does the same).

    The road's inverse depth is linear in the image row (``1/Z = (v - cy) / (h * fy)`` for a
    level camera), so interpolating 1/Z is exact on it where interpolating Z overshoots near
    the horizon, and a far (sky) sample does not drag its neighbours to hundreds of metres.
    With the true depth sampled on the stride-4 grid of a 640x360 input this halves the AbsRel
    of the upsampled map (0.065 -> 0.037 on the validation world, ``tools/depth_diagnosis``).
    """
    inverse = cv2.resize(1.0 / depth_m, (width, height), interpolation=cv2.INTER_LINEAR)
    return (1.0 / inverse).astype(np.float32)


def focal_for_depth(intrinsics: CameraIntrinsics) -> float:
    """Focal length (px) used for the canonical-depth rescaling: ``sqrt(fx * fy)``.

    Equal to fx = fy for square pixels; for an image resized with different x and y factors
    (800x600 -> 640x360) the geometric mean is the isotropic focal of equal pixel area.
    """
    return math.sqrt(intrinsics.fx * intrinsics.fy)


def preprocess_frame(frame: np.ndarray, encoding: str, input_hw: tuple[int, int],
                     scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """A uint8 frame as the network input: float32 [1, 3, H_in, W_in], ``x * scale + offset``
    per RGB plane (``scale = 1 / (255 std)``, ``offset = -mean / std``).

    Raises:
        ValueError: the frame does not match ``encoding`` (see ``image.validate_frame``).
    """
    enc = validate_frame(frame, encoding)
    height, width = input_hw
    if frame.shape[1] != width or frame.shape[0] != height:
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_LINEAR)
    # One contiguous uint8 plane per channel first: the arithmetic over contiguous planes is
    # twice as fast as over the interleaved frame's strided channels (measured). No
    # colour-converted or HWC float copy is made.
    planes = cv2.split(frame) if frame.ndim == 3 else (frame,)
    image = np.empty((1, 3, height, width), np.float32)
    for plane, channel in enumerate(_RGB_CHANNELS[enc]):
        np.multiply(planes[channel], scale[plane], out=image[0, plane], casting="unsafe")
        image[0, plane] += offset[plane]
    return image


def metric_depth(depth_c: np.ndarray, focal_ratio: float, input_hw: tuple[int, int],
                 frame_hw: tuple[int, int], min_depth_m: float, max_depth_m: float,
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Canonical depth -> metric depth at the input and at the frame resolution.

    Args:
        depth_c: (h, w) canonical depth of the network (stride 4).
        focal_ratio: focal length of the network input over the canonical focal length.
        input_hw: network input (height, width).
        frame_hw: caller's frame (height, width).
        min_depth_m: depth below this is NaN.
        max_depth_m: depth above this is NaN.

    Returns:
        (depth at the input resolution, depth at the frame resolution), float32 metres; the
        same array twice when the sizes agree. Both are bilinear upsamplings of the
        low-resolution map in inverse depth (:func:`upsample_depth`; the frame's is not a
        resampling of the input's).
    """
    depth_low = depth_c * np.float32(focal_ratio)
    sizes = [input_hw] if tuple(frame_hw) == tuple(input_hw) else [input_hw, frame_hw]
    out = []
    for height, width in sizes:
        depth = upsample_depth(depth_low, width, height)
        np.copyto(depth, np.float32(np.nan), where=(depth < min_depth_m) | (depth > max_depth_m))
        out.append(depth)
    return out[0], out[-1]


class Perceptor:
    """Runs the network on a stream of frames and keeps the memory and tracks between them.

    Args:
        backend: a loaded or loadable :class:`InferenceBackend`.
        model: the model's :class:`ModelInfo`.
        settings: run-time settings (validated on every frame, so they may change).
        tracker_settings: tracker parameters.
        distance_settings: per-object distance parameters.
    """

    def __init__(self, backend: InferenceBackend, model: ModelInfo,
                 settings: PerceptorSettings | None = None,
                 tracker_settings: TrackerSettings | None = None,
                 distance_settings: DistanceSettings | None = None) -> None:
        self.backend = backend
        self.model = model
        self.settings = settings or PerceptorSettings()
        self.settings.validate()
        self.distance_settings = distance_settings or DistanceSettings()
        self.tracker = Tracker(tracker_settings)
        cfg = model.cfg
        mean = np.asarray(cfg.mean, np.float32)
        std = np.asarray(cfg.std, np.float32)
        self._scale = (1.0 / (255.0 * std)).astype(np.float32)
        self._offset = (-mean / std).astype(np.float32)
        self._anchors = anchors_for(model.cfg, model.input_height, model.input_width)
        self.backend.load()
        self._pending_reset: str | None = None
        self.reset()
        self._pending_reset = None

    # ----------------------------------------------------------------- construction helpers

    @classmethod
    def from_model(cls, path: str | Path, backend: str = "auto",
                   settings: PerceptorSettings | None = None, num_threads: int = 2,
                   cache_dir: str | Path | None = None, device: str | None = None,
                   tracker_settings: TrackerSettings | None = None,
                   distance_settings: DistanceSettings | None = None) -> Perceptor:
        """Load a model file (``.safetensors`` checkpoint or ``.onnx`` + sidecar).

        Args:
            path: the model file.
            backend: ``auto`` (TensorRT if importable with a GPU, else ONNX Runtime, else
                torch), ``tensorrt``, ``onnxruntime`` or ``torch``.
            settings: run-time settings.
            num_threads: CPU threads (ONNX Runtime intra-op, torch).
            cache_dir: where a checkpoint's ONNX export is cached (default: the per-user
                cache, ``depthssd_core.backends.loading.onnx_cache_dir``).
            device: torch device of the torch backend (``cpu``, ``cuda``, ...); None, ``""``
                and ``auto`` pick CUDA when available.
            tracker_settings: tracker parameters.
            distance_settings: per-object distance parameters.

        Raises:
            FileNotFoundError / ValueError: the file is missing, corrupt or inconsistent
                (the message names it); ImportError: the requested backend is not installed.
        """
        backend_obj, info = load_backend(Path(path), backend, num_threads, cache_dir,
                                         None if device in (None, "", "auto") else device)
        return cls(backend_obj, info, settings=settings, tracker_settings=tracker_settings,
                   distance_settings=distance_settings)

    # ----------------------------------------------------------------- state

    def reset(self) -> None:
        """Restore the initial memory state and forget tracks, stamps and intrinsics."""
        self._mem_m = self.model.initial_mem_m.copy()
        self._mem_s = self.model.initial_mem_s.copy()
        self.tracker.reset()
        self._last_stamp_s: float | None = None
        self._last_intrinsics: CameraIntrinsics | None = None
        self._pending_reset = "reset() called"

    @property
    def memory_state(self) -> tuple[np.ndarray, np.ndarray]:
        """Copies of the current (mem_m, mem_s)."""
        return self._mem_m.copy(), self._mem_s.copy()

    def _reset_reason(self, intrinsics: CameraIntrinsics, stamp_s: float) -> str | None:
        last = self._last_stamp_s
        if last is not None:
            if stamp_s < last:
                return f"stamp went backwards ({last:.3f} s -> {stamp_s:.3f} s)"
            if stamp_s - last > self.settings.reset_gap_s:
                return (f"stamp jumped {stamp_s - last:.3f} s > reset_gap_s "
                        f"{self.settings.reset_gap_s:.3f} s")
        prev = self._last_intrinsics
        if prev is not None and not np.allclose(
                [prev.fx, prev.fy, prev.cx, prev.cy, prev.width, prev.height],
                [intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy, intrinsics.width,
                 intrinsics.height], rtol=1e-6, atol=1e-9):
            return "camera intrinsics changed"
        return None

    # ----------------------------------------------------------------- per frame

    def process(self, frame: np.ndarray, encoding: str, intrinsics: CameraIntrinsics,
                stamp_s: float) -> PerceptionResult:
        """Perceive one frame: the stages preprocess, infer, decode, distance and track.

        Args:
            frame: uint8 (H, W, C) image in ``encoding`` (bgra8, bgr8, rgb8, rgba8, mono8).
            encoding: the frame's encoding.
            intrinsics: the camera of ``frame`` (its width/height must match the frame).
            stamp_s: capture time, seconds (sim time in CARLA).

        Returns:
            :class:`PerceptionResult`; its ``latency_ms`` times each stage.

        Raises:
            ValueError: bad frame, encoding, intrinsics, stamp or settings (naming the problem).
        """
        clock = _StageClock()
        image, stamp_s, memory_reset = self._begin_frame(frame, encoding, intrinsics, stamp_s)
        clock.lap("preprocess")
        outputs = self.infer(image)
        clock.lap("inference")
        intr_in = intrinsics.resized(self.model.input_width, self.model.input_height)
        decoded = self.decode(outputs, intr_in, frame.shape[:2])
        clock.lap("decode")
        distances = self.measure_distances(decoded.detections, decoded.depth_in, intr_in)
        clock.lap("distance")
        detections = self.track(decoded.detections, distances, intr_in, frame.shape[:2],
                                stamp_s)
        self._last_stamp_s, self._last_intrinsics = stamp_s, intrinsics
        clock.lap("tracking")
        return PerceptionResult(detections=detections, depth_m=decoded.depth_frame,
                                latency_ms=clock.latency_ms(), memory_reset=memory_reset,
                                backend=self.backend.name, stamp_s=stamp_s)

    def _begin_frame(self, frame: np.ndarray, encoding: str, intrinsics: CameraIntrinsics,
                     stamp_s: float) -> tuple[np.ndarray, float, str | None]:
        """Validate the inputs, preprocess, and reset the state if this frame asks for it.

        Returns:
            (network input, stamp as float, why the state was reset or None).
        """
        self.settings.validate()
        if not isinstance(intrinsics, CameraIntrinsics):
            raise ValueError(f"intrinsics must be CameraIntrinsics, got {type(intrinsics)}")
        intrinsics.validate()
        if not isinstance(stamp_s, numbers.Real) or not math.isfinite(stamp_s):
            raise ValueError(f"stamp_s must be a finite number, got {stamp_s!r}")
        stamp_s = float(stamp_s)
        image = self.preprocess(frame, encoding)
        frame_h, frame_w = frame.shape[:2]
        if (intrinsics.width, intrinsics.height) != (frame_w, frame_h):
            raise ValueError(
                f"intrinsics are for {intrinsics.width}x{intrinsics.height} but the frame is "
                f"{frame_w}x{frame_h}"
            )
        reason = self._reset_reason(intrinsics, stamp_s)
        if reason is not None:
            self.reset()
            self._pending_reset = reason
        memory_reset, self._pending_reset = self._pending_reset, None
        return image, stamp_s, memory_reset

    def preprocess(self, frame: np.ndarray, encoding: str) -> np.ndarray:
        """Stage 1: frame -> float32 [1, 3, H_in, W_in] normalised RGB (validates the frame)."""
        return preprocess_frame(frame, encoding, (self.model.input_height,
                                                  self.model.input_width),
                                self._scale, self._offset)

    def infer(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Stage 2: run the network on the current memory state and keep its new state.

        With ``memory_enabled`` off the initial state is fed instead.

        Returns:
            The graph's outputs by name (``graph_contract.OUTPUT_NAMES``).
        """
        if not self.settings.memory_enabled:
            self._mem_m = self.model.initial_mem_m.copy()
            self._mem_s = self.model.initial_mem_s.copy()
        outputs = self.backend.infer(image, self._mem_m, self._mem_s)
        self._mem_m, self._mem_s = outputs["mem_m_out"], outputs["mem_s_out"]
        return outputs

    def decode(self, outputs: dict[str, np.ndarray], intrinsics_in: CameraIntrinsics,
               frame_hw: tuple[int, int]) -> DecodedFrame:
        """Stage 3: boxes (thresholds, decoding, NMS) and metric depth from the outputs.

        Args:
            outputs: the network outputs of :meth:`infer`.
            intrinsics_in: the camera resized to the network input.
            frame_hw: (height, width) of the caller's frame.
        """
        s, cfg = self.settings, self.model.cfg
        in_hw = (self.model.input_height, self.model.input_width)
        class_filter = None if s.classes is None else frozenset(CLASSES.index(c)
                                                                for c in s.classes)
        detections = postprocess_detections(
            outputs["cls_logits"], outputs["box_regression"], self._anchors, in_hw,
            s.score_threshold, s.nms_iou, s.max_detections, s.pre_nms_top_k, class_filter)
        depth_in, depth_frame = metric_depth(
            outputs["depth_c"][0, 0], focal_for_depth(intrinsics_in) / cfg.canonical_focal_px,
            in_hw, tuple(frame_hw), *self.depth_range_m)
        return DecodedFrame(detections, depth_in, depth_frame)

    def measure_distances(self, detections: Detections, depth_in: np.ndarray,
                          intrinsics_in: CameraIntrinsics) -> list[ObjectDistance]:
        """Stage 4: each detection's distance from the depth map (and the road, if enabled).

        Args:
            detections: input-pixel detections of :meth:`decode`.
            depth_in: metric depth at the network input resolution.
            intrinsics_in: the camera resized to the network input.
        """
        s = self.settings
        ground_ok = s.camera_height_m is not None and s.camera_pitch_rad is not None
        on_ground = np.array([CLASSES[int(c)] not in _OFF_GROUND_CLASSES
                              for c in detections.class_index], bool)
        return estimate_object_distances(
            depth_in, detections.boxes_xyxy, intrinsics_in,
            camera_height_m=s.camera_height_m if ground_ok else None,
            camera_pitch_rad=s.camera_pitch_rad if ground_ok else None,
            on_ground=on_ground, settings=self.distance_settings)

    def track(self, detections: Detections, distances: list[ObjectDistance],
              intrinsics_in: CameraIntrinsics, frame_hw: tuple[int, int],
              stamp_s: float) -> list[Detection]:
        """Stage 5: keep identities and smooth distances; the detections in frame pixels.

        Args:
            detections: input-pixel detections of :meth:`decode`.
            distances: their distances from :meth:`measure_distances`.
            intrinsics_in: the camera resized to the network input.
            frame_hw: (height, width) of the caller's frame.
            stamp_s: the frame's stamp.
        """
        states = self.tracker.update(
            detections.boxes_xyxy, detections.class_index,
            np.array([d.distance_m for d in distances]),
            np.array([d.sigma_m for d in distances]), stamp_s)
        in_h, in_w = self.model.input_height, self.model.input_width
        boxes = detections.boxes_xyxy
        # The point follows the smoothed distance (the track may also coast through a frame
        # whose measurement failed).
        points = backproject(0.5 * (boxes[:, 0] + boxes[:, 2]), 0.5 * (boxes[:, 1] + boxes[:, 3]),
                             np.array([state.distance_m for state in states]), intrinsics_in)
        frame_boxes = boxes * np.array([frame_hw[1] / in_w, frame_hw[0] / in_h] * 2, np.float32)
        return [
            Detection(box_xyxy=tuple(box), class_index=cls, class_name=CLASSES[cls],
                      score=score, track_id=state.track_id, distance_m=state.distance_m,
                      distance_sigma_m=state.distance_sigma_m, point_optical=tuple(point),
                      closing_speed_mps=state.closing_speed_mps,
                      time_to_contact_s=state.time_to_contact_s,
                      measured_distance_m=dist.distance_m)
            for box, cls, score, point, state, dist in zip(
                frame_boxes.tolist(), detections.class_index.tolist(),
                detections.scores.tolist(), points.tolist(), states, distances, strict=True)
        ]

    @property
    def depth_range_m(self) -> tuple[float, float]:
        """(min, max) metres of the published depth: the settings', else where training
        supervised depth (``SUPERVISED_DEPTH_RANGE_M``) within the model's output range."""
        s, cfg = self.settings, self.model.cfg
        return (s.min_depth_m if s.min_depth_m is not None
                else max(cfg.min_depth_m, SUPERVISED_DEPTH_RANGE_M[0]),
                s.max_depth_m if s.max_depth_m is not None
                else min(cfg.max_depth_m, SUPERVISED_DEPTH_RANGE_M[1]))

    def update_settings(self, **changes: Any) -> PerceptorSettings:
        """Replace some settings (validated); returns the new settings."""
        new = dataclasses.replace(self.settings, **changes)
        new.validate()
        self.settings = new
        return new
