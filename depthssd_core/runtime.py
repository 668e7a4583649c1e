"""The perception runtime: one camera frame in, detections with distances and a depth map out.

``Perceptor`` wraps an inference backend with everything around the exported graph: frame
validation and resizing, intrinsics scaling, normalisation, box decoding and NMS, metric depth
(``depth_c * f / f_c``), per-object distances, tracking, and the recurrent memory state with its
automatic resets. It holds no ROS types; ``depthssd_ros`` converts messages and calls
:meth:`Perceptor.process`.
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
from depthssd_core.classes import CLASSES
from depthssd_core.distance import DistanceSettings, estimate_object_distance
from depthssd_core.geometry import CameraIntrinsics, backproject
from depthssd_core.image import validate_frame
from depthssd_core.postprocess import postprocess_detections
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
        score_threshold: minimum class probability of a detection.
        nms_iou: IoU above which a lower-scored box of the same class is suppressed.
        max_detections: most detections per frame.
        pre_nms_top_k: most candidates entering NMS.
        classes: class names to report; None reports all of ``CLASSES``.
        camera_height_m: camera height above a flat road; with ``camera_pitch_rad`` enables the
            ground-plane distance fused with the depth estimate. None disables it.
        camera_pitch_rad: downward pitch of the optical axis (radians).
        reset_gap_s: the memory and tracks are reset when the stamp jumps forward by more.
        memory_enabled: False feeds the initial memory state every frame.
        min_depth_m: depth below this is invalid (NaN); None uses the model's minimum.
        max_depth_m: depth above this is invalid (NaN); None uses the model's maximum.
    """

    score_threshold: float = 0.35
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


@dataclass(frozen=True)
class ModelInfo:
    """What the runtime needs to know about a model, from its config or ONNX sidecar."""

    cfg: Any  # depthssd_core.config.ModelConfig
    input_height: int
    input_width: int
    initial_mem_m: np.ndarray  # [1, heads, d_k, d_v]
    initial_mem_s: np.ndarray


def model_info_from_module(model: Any, input_height: int | None = None,
                           input_width: int | None = None) -> ModelInfo:
    """:class:`ModelInfo` of a ``DepthSSD`` module (input size defaults to its config's)."""
    import torch

    cfg = model.cfg
    with torch.no_grad():
        mem_m, mem_s = model.initial_state(1)
    return ModelInfo(cfg, int(input_height or cfg.input_height),
                     int(input_width or cfg.input_width),
                     mem_m.detach().float().cpu().numpy(), mem_s.detach().float().cpu().numpy())


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
        self._anchors = self._compute_anchors()
        self.backend.load()
        self._pending_reset: str | None = None
        self.reset()
        self._pending_reset = None

    # ----------------------------------------------------------------- construction helpers

    @classmethod
    def from_model(cls, path: str | Path, backend: str = "auto",
                   settings: PerceptorSettings | None = None, num_threads: int = 2,
                   cache_dir: str | Path | None = None, device: str | None = None,
                   **kwargs: Any) -> Perceptor:
        """Load a model file (``.safetensors`` checkpoint or ``.onnx`` + sidecar).

        Args:
            path: the model file.
            backend: ``auto`` (TensorRT if importable with a GPU, else ONNX Runtime, else
                torch), ``tensorrt``, ``onnxruntime`` or ``torch``.
            settings: run-time settings.
            num_threads: CPU threads (ONNX Runtime intra-op, torch).
            cache_dir: where a checkpoint's ONNX export is cached (default: next to the
                checkpoint if writable, else ``$XDG_CACHE_HOME/depthssd``).
            device: torch device of the torch backend (``cpu``, ``cuda``, ...); None picks
                CUDA when available. ``auto`` strings are treated as None.
            kwargs: passed to :class:`Perceptor` (tracker_settings, distance_settings).

        Raises:
            FileNotFoundError / ValueError: the file is missing, corrupt or inconsistent
                (the message names it); ImportError: the requested backend is not installed.
        """
        from depthssd_core.backends.loading import load_backend

        backend_obj, info = load_backend(Path(path), backend, num_threads, cache_dir,
                                         None if device in (None, "", "auto") else device)
        return cls(backend_obj, info, settings=settings, **kwargs)

    def _compute_anchors(self) -> np.ndarray:
        from depthssd_core.model.anchors import anchors_for

        return anchors_for(self.model.cfg, self.model.input_height, self.model.input_width)

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

    def preprocess(self, frame: np.ndarray, encoding: str) -> np.ndarray:
        """Frame -> float32 [1, 3, H_in, W_in] normalised RGB."""
        enc = validate_frame(frame, encoding)
        size = (self.model.input_width, self.model.input_height)
        if frame.shape[1] != size[0] or frame.shape[0] != size[1]:
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        if frame.ndim == 2:
            frame = frame[:, :, None]
        # (x / 255 - mean) / std, one plane at a time straight from the uint8 channel: no
        # colour-converted or HWC float copy (measured 20x faster than converting first).
        image = np.empty((1, 3, size[1], size[0]), np.float32)
        for plane, channel in enumerate(_RGB_CHANNELS[enc]):
            np.multiply(frame[:, :, channel], self._scale[plane], out=image[0, plane],
                        casting="unsafe")
            image[0, plane] += self._offset[plane]
        return image

    def process(self, frame: np.ndarray, encoding: str, intrinsics: CameraIntrinsics,
                stamp_s: float) -> PerceptionResult:
        """Perceive one frame.

        Args:
            frame: uint8 (H, W, C) image in ``encoding`` (bgra8, bgr8, rgb8, rgba8, mono8).
            encoding: the frame's encoding.
            intrinsics: the camera of ``frame`` (its width/height must match the frame).
            stamp_s: capture time, seconds (sim time in CARLA).

        Returns:
            :class:`PerceptionResult`.

        Raises:
            ValueError: bad frame, encoding, intrinsics, stamp or settings (naming the problem).
        """
        t0 = time.perf_counter()
        s = self.settings
        s.validate()
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
        reason = self._reset_reason(intrinsics, float(stamp_s))
        if reason is not None:
            self.reset()
            self._pending_reset = reason
        memory_reset, self._pending_reset = self._pending_reset, None
        if not s.memory_enabled:
            self._mem_m = self.model.initial_mem_m.copy()
            self._mem_s = self.model.initial_mem_s.copy()
        t1 = time.perf_counter()

        out = self.backend.infer(image, self._mem_m, self._mem_s)
        self._mem_m, self._mem_s = out["mem_m_out"], out["mem_s_out"]
        t2 = time.perf_counter()

        in_h, in_w = self.model.input_height, self.model.input_width
        intr_in = intrinsics.resized(in_w, in_h)
        class_filter = None if s.classes is None else frozenset(CLASSES.index(c)
                                                                for c in s.classes)
        dets = postprocess_detections(out["cls_logits"], out["box_regression"], self._anchors,
                                      (in_h, in_w), s.score_threshold, s.nms_iou,
                                      s.max_detections, s.pre_nms_top_k, class_filter)
        cfg = self.model.cfg
        min_d = s.min_depth_m if s.min_depth_m is not None else cfg.min_depth_m
        max_d = s.max_depth_m if s.max_depth_m is not None else cfg.max_depth_m
        depth_low = out["depth_c"][0, 0] * np.float32(focal_for_depth(intr_in)
                                                       / cfg.canonical_focal_px)
        depth_in = upsample_depth(depth_low, in_w, in_h)
        depth_in[(depth_in < min_d) | (depth_in > max_d)] = np.nan
        if (frame_w, frame_h) == (in_w, in_h):
            depth_frame = depth_in
        else:
            depth_frame = upsample_depth(depth_low, frame_w, frame_h)
            depth_frame[(depth_frame < min_d) | (depth_frame > max_d)] = np.nan
        t3 = time.perf_counter()

        distances = []
        ground_ok = s.camera_height_m is not None and s.camera_pitch_rad is not None
        for box, cls in zip(dets.boxes_xyxy, dets.class_index, strict=True):
            distances.append(estimate_object_distance(
                depth_in, box, intr_in,
                camera_height_m=s.camera_height_m if ground_ok else None,
                camera_pitch_rad=s.camera_pitch_rad if ground_ok else None,
                on_ground=CLASSES[int(cls)] not in _OFF_GROUND_CLASSES,
                settings=self.distance_settings))
        t4 = time.perf_counter()

        states = self.tracker.update(
            dets.boxes_xyxy, dets.class_index,
            np.array([d.distance_m for d in distances]),
            np.array([d.sigma_m for d in distances]), float(stamp_s))
        sx, sy = frame_w / in_w, frame_h / in_h
        detections = []
        for box, cls, score, dist, state in zip(dets.boxes_xyxy, dets.class_index, dets.scores,
                                                distances, states, strict=True):
            # The point follows the smoothed distance (the track may also coast through a
            # frame whose measurement failed).
            point = tuple(float(c) for c in backproject(
                0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3]), state.distance_m, intr_in))
            detections.append(Detection(
                box_xyxy=(float(box[0] * sx), float(box[1] * sy), float(box[2] * sx),
                          float(box[3] * sy)),
                class_index=int(cls), class_name=CLASSES[int(cls)], score=float(score),
                track_id=state.track_id, distance_m=state.distance_m,
                distance_sigma_m=state.distance_sigma_m, point_optical=point,
                closing_speed_mps=state.closing_speed_mps,
                time_to_contact_s=state.time_to_contact_s,
                measured_distance_m=dist.distance_m))
        self._last_stamp_s = float(stamp_s)
        self._last_intrinsics = intrinsics
        t5 = time.perf_counter()
        latency = {"preprocess": t1 - t0, "inference": t2 - t1, "decode": t3 - t2,
                   "distance": t4 - t3, "tracking": t5 - t4, "total": t5 - t0}
        return PerceptionResult(
            detections=detections, depth_m=depth_frame,
            latency_ms={k: v * 1000.0 for k, v in latency.items()},
            memory_reset=memory_reset, backend=self.backend.name, stamp_s=float(stamp_s))

    def update_settings(self, **changes: Any) -> PerceptorSettings:
        """Replace some settings (validated); returns the new settings."""
        new = dataclasses.replace(self.settings, **changes)
        new.validate()
        self.settings = new
        return new
