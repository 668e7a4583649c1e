"""Test helper process: publishes numbered 640x360 bgra8 images at a fixed rate.

Run as ``python -m procs.ros_image_publisher`` (the test folder is on ``PYTHONPATH``).
Frame i has stamp ``i * period`` and its first pixel set to (i, 255 - i, 7, 255); at the end
it prints ``SENT {json}`` with the count and the time it took. Sensor-data QoS (best effort)
unless ``--reliable`` (carla-ros-bridge publishes reliable, keep last 10).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import Image


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--topic", default="image")
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--wait-subscribers", type=int, default=1)
    parser.add_argument("--reliable", action="store_true")
    args = parser.parse_args()

    rclpy.init()
    node = rclpy.create_node("image_publisher")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE) if args.reliable \
        else qos_profile_sensor_data
    pub = node.create_publisher(Image, args.topic, qos)
    deadline = time.monotonic() + 30.0
    while pub.get_subscription_count() < args.wait_subscribers and time.monotonic() < deadline:
        time.sleep(0.02)
    pixels = np.zeros((args.height, args.width, 4), np.uint8)
    pixels[..., 3] = 255
    period = 1.0 / args.rate
    start = time.monotonic()
    for i in range(args.frames):
        pixels[0, 0] = (i % 256, 255 - i % 256, 7, 255)
        msg = Image()
        stamp_ns = round(i * period * 1e9)
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        msg.header.frame_id = "ego_vehicle/rgb_front"
        msg.height, msg.width, msg.encoding = args.height, args.width, "bgra8"
        msg.step = args.width * 4
        msg.data = pixels.tobytes()  # bytes, not a numpy array: 100x cheaper to assign
        pub.publish(msg)
        next_time = start + (i + 1) * period
        time.sleep(max(0.0, next_time - time.monotonic()))
    duration = time.monotonic() - start
    print("SENT " + json.dumps({"sent": args.frames, "duration_s": duration}), flush=True)
    # Give best-effort samples in flight a moment before the participant goes away.
    time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
