"""Two real processes exchange camera-sized images over rclpy without losing a frame.

This is the transport the perception node depends on: carla-ros-bridge publishes 640x360 (its
default) or 800x600 bgra8 images at 20 Hz, reliable, and the node subscribes with sensor-data
(best-effort) QoS. Fast DDS's default shared-memory segment (512 KB) holds neither image and
loses most such frames; both of the project's profiles must lose none: the one the tests and
``make demo`` use (``config/fastdds_localhost.xml``) and the one the launch files apply
(``config/fastdds_large_images.xml``). The publisher's profile is what matters (its segment
carries the samples), so the publishing process gets the profile under test.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

rclpy = pytest.importorskip("rclpy")

FRAMES = 60
RATE_HZ = 20.0
CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.mark.parametrize("profile, width, height, reliable", [
    ("fastdds_localhost.xml", 640, 360, False),
    ("fastdds_localhost.xml", 800, 600, False),
    ("fastdds_large_images.xml", 640, 360, False),
    ("fastdds_large_images.xml", 800, 600, True),
])
def test_bgra8_images_at_20hz_lose_no_frame(profile, width, height, reliable, node_process,
                                            rclpy_context):
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    node = rclpy.create_node("image_receiver", context=rclpy_context)
    received: list[tuple[int, int, int, bytes]] = []

    def on_image(msg: Image) -> None:
        # Keep the frame number (stamp) and a few payload bytes to check the content too.
        received.append((msg.header.stamp.sec * 1000 + msg.header.stamp.nanosec // 1_000_000,
                         msg.width, msg.height, bytes(msg.data[:4])))

    node.create_subscription(Image, "camera/image", on_image, qos_profile_sensor_data)
    executor = SingleThreadedExecutor(context=rclpy_context)
    executor.add_node(node)

    publisher = node_process(
        "procs.ros_image_publisher",
        ["--topic", "camera/image", "--frames", str(FRAMES), "--rate", str(RATE_HZ),
         "--wait-subscribers", "1", "--width", str(width), "--height", str(height),
         *(["--reliable"] if reliable else [])],
        env={"FASTDDS_DEFAULT_PROFILES_FILE": str(CONFIG / profile)},
    )
    deadline = time.monotonic() + 60.0
    while time.monotonic() < deadline and len(received) < FRAMES:
        executor.spin_once(timeout_sec=0.1)
        if not publisher.is_running() and publisher.proc.returncode not in (None, 0):
            break
    # Drain anything still in flight once the publisher is done.
    end = time.monotonic() + 1.0
    while time.monotonic() < end and len(received) < FRAMES:
        executor.spin_once(timeout_sec=0.05)

    assert publisher.wait_for_output("SENT", timeout_s=10.0), publisher.output()
    report = json.loads(publisher.output().split("SENT", 1)[1].strip().splitlines()[0])
    assert report["sent"] == FRAMES
    # Rate check: the publisher really ran at about 20 Hz, not in a burst.
    assert report["duration_s"] >= (FRAMES - 1) / RATE_HZ * 0.9

    assert len(received) == FRAMES, f"lost {FRAMES - len(received)} of {FRAMES} frames"
    assert [r[0] for r in received] == [i * 50 for i in range(FRAMES)]
    assert all(r[1:3] == (width, height) for r in received)
    # Pixel (0, 0) of frame i is (i, 255 - i, 7, 255) in BGRA, as the publisher wrote it.
    assert [r[3] for r in received] == [bytes([i % 256, 255 - i % 256, 7, 255])
                                        for i in range(FRAMES)]
    executor.shutdown()
    node.destroy_node()
