"""The perception node's ROS parameters: names, defaults, ranges and descriptions in one table.

``config/depthssd.yaml`` is the deployers' single source of truth for the values; this table
must hold exactly the same defaults (``test/ros/test_perception_node_params.py`` parses the YAML
and compares it both with this table and with what a running node declares), so that a node
started without the YAML behaves like one started with it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rcl_interfaces.msg import (
    FloatingPointRange,
    IntegerRange,
    ParameterDescriptor,
    ParameterType,
)

from depthssd_core.backends.loading import BACKENDS
from depthssd_core.classes import CLASSES
from depthssd_core.postprocess import DEFAULT_SCORE_THRESHOLD

#: File name of the model shipped with the package (share/depthssd_ros/models/).
DEFAULT_MODEL_FILE = "depthssd_conv_small.safetensors"
PACKAGE = "depthssd_ros"


@dataclass(frozen=True)
class ParamSpec:
    """One ROS parameter of the node.

    Attributes:
        name: parameter name.
        default: default value; its Python type fixes the ROS type (bool, int, float, str,
            list of str).
        description: what it does, with its unit.
        low / high: inclusive range for numbers (None: unbounded).
        dynamic: whether it may change while the node runs (otherwise read-only).
        choices: allowed values of a string parameter.
    """

    name: str
    default: Any
    description: str
    low: float | None = None
    high: float | None = None
    dynamic: bool = False
    choices: tuple[str, ...] | None = None

    @property
    def ros_type(self) -> int:
        """The ``rcl_interfaces/ParameterType`` of the parameter."""
        if isinstance(self.default, bool):
            return ParameterType.PARAMETER_BOOL
        if isinstance(self.default, int):
            return ParameterType.PARAMETER_INTEGER
        if isinstance(self.default, float):
            return ParameterType.PARAMETER_DOUBLE
        if isinstance(self.default, str):
            return ParameterType.PARAMETER_STRING
        return ParameterType.PARAMETER_STRING_ARRAY

    def descriptor(self) -> ParameterDescriptor:
        """A ``ParameterDescriptor`` with description, range and read-only flag."""
        text = self.description
        if self.choices:
            text += f" One of: {', '.join(self.choices)}."
        desc = ParameterDescriptor(name=self.name, type=self.ros_type, description=text,
                                   read_only=not self.dynamic)
        if self.ros_type == ParameterType.PARAMETER_DOUBLE and self.low is not None:
            desc.floating_point_range = [FloatingPointRange(
                from_value=float(self.low), to_value=float(self.high), step=0.0)]
        elif self.ros_type == ParameterType.PARAMETER_INTEGER and self.low is not None:
            desc.integer_range = [IntegerRange(
                from_value=int(self.low), to_value=int(self.high), step=1)]
        return desc

    def check(self, value: Any) -> str | None:
        """The reason ``value`` is not acceptable, or None if it is.

        rclpy already enforces the type and the numeric range from the descriptor; this adds
        NaN, string choices and class names, and repeats the range so that the message names
        the parameter.
        """
        if isinstance(value, float) and not math.isfinite(value):
            return f"{self.name} must be finite, got {value}"
        if self.low is not None and isinstance(value, (int, float)) and not isinstance(
                value, bool) and not self.low <= value <= self.high:
            return f"{self.name} must be in [{self.low}, {self.high}], got {value}"
        if self.choices and value not in self.choices:
            return f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}"
        if self.name == "classes":
            unknown = [c for c in value if c not in CLASSES]
            if unknown:
                return (f"classes has unknown class names {unknown}; known: "
                        f"{', '.join(CLASSES)}")
            if len(set(value)) != len(value):
                return f"classes lists a class twice: {list(value)}"
        return None


PARAMETERS: tuple[ParamSpec, ...] = (
    # --- model and backend (fixed at start) ---
    ParamSpec("model_path", "",
              "Checkpoint (.safetensors) or exported .onnx model. Empty: the model shipped with "
              "the package (share/depthssd_ros/models/, or models/ of a source checkout)."),
    ParamSpec("backend", "auto",
              "Inference backend; auto picks TensorRT, then ONNX Runtime, then PyTorch.",
              choices=BACKENDS),
    ParamSpec("device", "auto",
              "Device: auto (the backend's choice: TensorRT and CUDA use GPU 0) or cpu; other "
              "values are refused until the runtime can place a backend on a chosen device.",
              choices=("auto", "cpu")),
    ParamSpec("num_threads", 2, "CPU threads of the backend (ONNX Runtime intra-op, torch).",
              1, 64),
    # --- detection (may change at run time) ---
    ParamSpec("score_threshold", DEFAULT_SCORE_THRESHOLD,
              "Minimum class probability of a published detection.",
              0.0, 1.0, dynamic=True),
    ParamSpec("nms_iou", 0.5,
              "IoU above which a lower-scored box of the same class is suppressed.",
              0.01, 1.0, dynamic=True),
    ParamSpec("max_detections", 100, "Most detections published per frame.", 1, 1000,
              dynamic=True),
    ParamSpec("classes", list(CLASSES),
              "Class names to publish (subset of the model's classes).", dynamic=True),
    # --- distance ---
    ParamSpec("use_ground_plane", True,
              "Fuse the flat-road distance from the box bottom row with the depth-map distance.",
              dynamic=True),
    ParamSpec("camera_height_m", 2.0,
              "Height of the camera's optical centre above the road, metres.", 0.1, 10.0,
              dynamic=True),
    ParamSpec("camera_pitch_deg", 0.0,
              "Downward pitch of the camera's optical axis, degrees.", -45.0, 45.0,
              dynamic=True),
    ParamSpec("fov_override_deg", 0.0,
              "If > 0, ignore camera_info K and use CARLA intrinsics from this horizontal field "
              "of view (CARLA's native ROS 2 camera_info has a wrong fx), degrees.",
              0.0, 179.0, dynamic=True),
    # --- input pairing and stamps ---
    ParamSpec("camera_info_slop_s", 0.0,
              "Largest stamp difference between an image and its camera_info, seconds (0: the "
              "same stamp, as CARLA sends them).", 0.0, 1.0, dynamic=True),
    ParamSpec("camera_info_wait_s", 0.05,
              "How long an image without its camera_info waits for it before the latest valid "
              "camera_info of its size is used (counted), seconds.", 0.0, 1.0, dynamic=True),
    ParamSpec("replace_zero_stamp", False,
              "Give an image stamped zero the node's receive time (false: keep the input "
              "stamp; zero stamps are counted either way).", dynamic=True),
    # --- temporal memory ---
    ParamSpec("memory_enabled", True,
              "Carry the network's memory across frames (false: every frame starts fresh).",
              dynamic=True),
    ParamSpec("memory_reset_gap_s", 1.0,
              "Reset the memory when consecutive frame stamps are further apart, seconds.",
              0.01, 3600.0, dynamic=True),
    # --- outputs ---
    ParamSpec("publish_depth", True, "Publish ~/depth (32FC1 metres) and ~/depth/camera_info.",
              dynamic=True),
    ParamSpec("depth_output_scale", 1.0,
              "Size of ~/depth relative to the input image (1.0: input resolution).",
              0.05, 1.0, dynamic=True),
    ParamSpec("publish_overlay", True,
              "Publish ~/overlay (bgr8 with boxes and distances) when someone subscribes.",
              dynamic=True),
    ParamSpec("publish_markers", True,
              "Publish ~/markers (rviz2 boxes and labels) when someone subscribes.",
              dynamic=True),
    ParamSpec("diagnostics_period_s", 1.0, "Period of the /diagnostics status, seconds.",
              0.1, 60.0),
    ParamSpec("stale_after_s", 2.0,
              "/diagnostics turns WARN when no image arrived (or none was processed) for this "
              "long, seconds.", 0.1, 3600.0, dynamic=True),
    ParamSpec("health_window_frames", 20,
              "Recent frames whose verdicts set the /diagnostics level (WARN when more than "
              "half were rejected, ERROR when one failed in the backend).", 1, 10000),
    ParamSpec("log_throttle_s", 5.0,
              "Shortest time between two log lines of one kind of per-frame problem (rejected "
              "frame, memory reset, odd stamp, failed inference), seconds; the lines held "
              "back are counted.", 0.0, 3600.0, dynamic=True),
    ParamSpec("debug_inference_delay_ms", 0.0,
              "Testing only: extra delay added to every inference, milliseconds.", 0.0, 10000.0,
              dynamic=True),
)

SPECS: dict[str, ParamSpec] = {spec.name: spec for spec in PARAMETERS}


def default_values() -> dict[str, Any]:
    """Every parameter's default value (a copy; lists are new lists)."""
    return {s.name: list(s.default) if isinstance(s.default, list) else s.default
            for s in PARAMETERS}


def shipped_model_path() -> Path:
    """The model shipped with the package.

    An installed package has it in ``share/depthssd_ros/models/`` (found through the ament
    index); a source checkout in ``models/`` beside the packages. The installed one wins.
    """
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )

        try:
            candidate = Path(get_package_share_directory(PACKAGE)) / "models" / DEFAULT_MODEL_FILE
            if candidate.is_file():
                return candidate
        # OSError: AMENT_PREFIX_PATH is not set, as in a pip-installed venv run without any
        # ROS environment (the console scripts must work there too).
        except (PackageNotFoundError, OSError):
            pass
    except ImportError:  # ament_index_python missing: only the source layout can be used
        pass
    return Path(__file__).resolve().parents[1] / "models" / DEFAULT_MODEL_FILE


def resolve_model_path(value: str) -> Path:
    """The model file named by the ``model_path`` parameter (empty: the shipped model)."""
    return Path(value).expanduser() if value else shipped_model_path()
