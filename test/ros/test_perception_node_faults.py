"""/diagnostics turns ERROR when the backend fails, says why, and recovers.

A real backend failure (a CUDA error, an engine that stops working) cannot be provoked from
outside the process on this CPU-only machine, so here the node runs in the test process and
its runtime's ``infer`` stage is replaced by one that raises. Only that stage is faked: topics,
threading, the failure accounting and /diagnostics are the node's own, over real DDS.
"""

from __future__ import annotations

import threading
import time

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vision_msgs")

from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image  # noqa: E402
from vision_msgs.msg import Detection2DArray  # noqa: E402

from depthssd_core.geometry import CameraIntrinsics  # noqa: E402
from depthssd_ros import conversions as conv  # noqa: E402
from depthssd_ros.perception_node import PerceptionNode  # noqa: E402

NAME = "depthssd_fault"
WIDTH, HEIGHT = 160, 96
WINDOW = 5
INJECTED = "injected: CUDA error: an illegal memory access was encountered"


def _frame(stamp_s: int) -> tuple[Image, CameraInfo]:
    msg = Image(height=HEIGHT, width=WIDTH, encoding="bgr8", step=WIDTH * 3)
    msg.header.stamp.sec = stamp_s
    msg.header.frame_id = "camera"
    msg.data = bytes(range(256)) * (WIDTH * HEIGHT * 3 // 256)
    info = conv.intrinsics_to_camera_info(msg.header,
                                          CameraIntrinsics.from_fov(WIDTH, HEIGHT, 90.0))
    return msg, info


def _status(msg: DiagnosticArray):
    found = [s for s in msg.status if s.name.startswith(NAME)]
    return found[0] if found else None


@pytest.fixture
def fault_node(random_model):
    context = Context()
    rclpy.init(context=context)
    node = PerceptionNode(
        context=context,
        cli_args=["--ros-args", "-r", f"__node:={NAME}", "-r", "image:=/fault/image",
                  "-r", "camera_info:=/fault/camera_info"],
        parameter_overrides=[Parameter("model_path", value=str(random_model)),
                             Parameter("health_window_frames", value=WINDOW),
                             Parameter("diagnostics_period_s", value=0.2)])
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    yield node
    node.stop()
    executor.shutdown()
    node.destroy_node()
    context.try_shutdown()
    thread.join(timeout=10.0)


def test_a_failing_backend_is_an_error_with_its_reason_until_frames_succeed(fault_node,
                                                                            ros_client):
    image_pub = ros_client.publisher(Image, "/fault/image", qos_profile_sensor_data)
    info_pub = ros_client.publisher(CameraInfo, "/fault/camera_info", qos_profile_sensor_data)
    dets = ros_client.subscribe(Detection2DArray, f"/{NAME}/detections")
    diag = ros_client.subscribe(DiagnosticArray, "/diagnostics")
    ros_client.wait_for_subscribers(image_pub)
    ros_client.wait_for_subscribers(info_pub)
    ros_client.wait_for_publishers(dets)
    stamp = [100]

    def send() -> None:
        stamp[0] += 1
        msg, info = _frame(stamp[0])
        info_pub.publish(info)
        image_pub.publish(msg)

    def wait_level(level: int, text: str, timeout_s: float = 30.0):
        """Send frames at about 10 Hz until a status of ``level`` mentioning ``text`` comes."""
        seen = len(diag)
        deadline = time.monotonic() + timeout_s

        def found():
            return next((s for s in map(_status, list(diag.messages[seen:]))
                         if s is not None and ord(s.level) == level and text in s.message),
                        None)

        while (status := found()) is None:
            last = _status(diag.messages[-1]) if diag.messages else None
            assert time.monotonic() < deadline, (
                f"no level {level} with {text!r}; last: {last.level if last else None} "
                f"{last.message if last else ''}")
            send()
            diag.wait_count(len(diag) + 1, 0.1)
        return status

    wait_level(0, "fps")  # working frames first
    real_infer = fault_node._perceptor.infer

    def failing_infer(image):
        raise RuntimeError(INJECTED)

    fault_node._perceptor.infer = failing_infer
    try:
        status = wait_level(2, "inference failed")
        assert INJECTED in status.message
        values = {kv.key: kv.value for kv in status.values}
        assert int(values["errors"]) >= 1 and INJECTED in values["last_error"]
        assert int(values["recent_failed"]) >= 1
    finally:
        fault_node._perceptor.infer = real_infer
    # Frames succeed again: once the failures leave the recent window, the level is OK.
    answered = len(dets)
    status = wait_level(0, "fps")
    assert dets.wait_count(answered + WINDOW, 10.0)
    values = {kv.key: kv.value for kv in status.values}
    assert values["recent_failed"] == "0" and int(values["errors"]) >= 1
