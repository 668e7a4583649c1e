"""How many camera frames reach a best-effort subscriber in another process, per DDS profile.

The README's figures for the Fast DDS profile come from this script: one process publishes
numbered bgra8 images at 20 Hz (best effort, or reliable with ``--reliable`` as carla-ros-bridge
publishes), this one subscribes with sensor-data QoS, as the perception node does, and counts
what arrives. Both processes get the same profile: ``none`` (Fast DDS's defaults), ``localhost``
(``config/fastdds_localhost.xml``, tests and ``make demo``) or ``large_images``
(``config/fastdds_large_images.xml``, what the launch files apply).

    .venv/bin/python benchmarks/image_transport.py --profile none --width 640 --height 360
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROFILES = {"none": None, "localhost": ROOT / "config" / "fastdds_localhost.xml",
            "large_images": ROOT / "config" / "fastdds_large_images.xml"}


def publish(args: argparse.Namespace) -> None:
    """The publishing process: ``--frames`` images at ``--rate`` Hz once a subscriber matched."""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("image_transport_publisher")
    qos = (QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE) if args.reliable
           else qos_profile_sensor_data)
    pub = node.create_publisher(Image, "image_transport", qos)
    deadline = time.monotonic() + 30.0
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    payload = bytes(args.width * args.height * 4)
    start = time.monotonic()
    for i in range(args.frames):
        msg = Image(height=args.height, width=args.width, encoding="bgra8", step=args.width * 4)
        msg.header.stamp.sec = i
        msg.data = payload  # bytes: assigning a numpy array costs 100x more
        pub.publish(msg)
        time.sleep(max(0.0, start + (i + 1) / args.rate - time.monotonic()))
    time.sleep(0.5)  # let samples in flight arrive before the participant goes
    node.destroy_node()
    rclpy.shutdown()


def measure(args: argparse.Namespace) -> dict:
    """Start the publisher, count the frames that arrive here; the result as a dict."""
    import rclpy
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("image_transport_subscriber")
    stamps: set[int] = set()
    node.create_subscription(Image, "image_transport", lambda m: stamps.add(m.header.stamp.sec),
                             qos_profile_sensor_data)
    cmd = [sys.executable, __file__, "--publish", "--frames", str(args.frames), "--rate",
           str(args.rate), "--width", str(args.width), "--height", str(args.height)]
    child = subprocess.Popen(cmd + (["--reliable"] if args.reliable else []), env=os.environ)
    while child.poll() is None:
        rclpy.spin_once(node, timeout_sec=0.05)
    node.destroy_node()
    rclpy.shutdown()
    return {"profile": args.profile, "size": [args.width, args.height], "rate_hz": args.rate,
            "reliable_publisher": args.reliable, "sent": args.frames, "received": len(stamps)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", choices=sorted(PROFILES), default="large_images")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--reliable", action="store_true", help="reliable publisher (the bridge)")
    parser.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.publish:
        publish(args)
        return 0
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", "87")
    os.environ.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    if PROFILES[args.profile] is not None:
        os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILES[args.profile])
    print(json.dumps(measure(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
