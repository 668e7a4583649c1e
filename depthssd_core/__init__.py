"""depthssd core: the joint detection + metric depth network, its export and runtime.

This package never imports rclpy: the ROS nodes in ``depthssd_ros`` are thin wrappers around it,
and ``depthssd_train`` uses only its public API.
"""

from depthssd_core.classes import CLASSES, NUM_CLASSES, category_id, class_index
from depthssd_core.geometry import CameraIntrinsics

__version__ = "0.1.0"

__all__ = [
    "CLASSES",
    "NUM_CLASSES",
    "CameraIntrinsics",
    "__version__",
    "category_id",
    "class_index",
]
