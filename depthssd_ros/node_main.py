"""The shared ``main()`` of depthssd's simple nodes: init, build, spin until interrupted."""

from __future__ import annotations

import sys
from collections.abc import Callable

import rclpy
from rclpy.exceptions import ParameterException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node


def run_node(make_node: Callable[[], Node], name: str, argv: list[str] | None = None) -> int:
    """Spin the node built by ``make_node`` until Ctrl-C or SIGTERM.

    A configuration error while building the node is one line on stderr and exit code 2; an
    interrupt is a clean exit with code 0.
    """
    rclpy.init(args=sys.argv if argv is None else argv)
    try:
        node = make_node()
    except (ValueError, ParameterException) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    return 0
