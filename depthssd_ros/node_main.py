"""How every depthssd node starts and stops: the one ``main()`` path of the console scripts.

Start. A ``--params-file`` that does not exist is an error (rcl would only fail later with a
parser message, and launch_ros merely warns about a missing parameter file and starts the node
with its defaults); malformed ROS arguments (an invalid name in a remapping such as
``image:=/carla/bad-name/rgb_front/image``), invalid parameter values and invalid names are one
line on stderr and exit code 2; any other failure to build the node (a model that does not
load) is one line and exit code 1.

Stop. SIGINT (Ctrl-C), SIGTERM, and a second SIGINT while the node is tearing down (a terminal
sends one to the whole process group and ``ros2 launch`` forwards another) all end with exit
code 0 and no traceback. rclpy's handlers turn the first signal into a context shutdown, seen
as ``KeyboardInterrupt`` or ``ExternalShutdownException`` out of ``spin``, or as an
``RCLError`` from a callback that was publishing at that moment (the context is already
invalid): all three are a shutdown, not a failure. During teardown SIGINT and SIGTERM are
ignored, so a repeated signal cannot interrupt ``destroy_node``; teardown takes well under a
second, and SIGKILL remains for a node that would hang.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rclpy
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.signals import uninstall_signal_handlers

#: Exit code of a configuration error (arguments, parameter values, names, files).
EXIT_CONFIG = 2
#: Exit code of any other failure to start (e.g. a model file that does not load).
EXIT_START_FAILED = 1
#: Exceptions of a node constructor that mean "the configuration is wrong".
CONFIG_ERRORS = (ValueError, TypeError, ParameterException, NameValidationException)
_TEARDOWN_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def missing_params_files(argv: list[str]) -> list[str]:
    """The ``--params-file`` arguments of ``argv`` that name no existing file."""
    missing = []
    for flag, value in itertools.pairwise(argv):
        if flag == "--params-file" and not Path(value).is_file():
            missing.append(value)
    return missing


def ros_arguments_error(exc: Exception) -> str:
    """The readable part of rcl's message for arguments it could not parse.

    rcl says e.g. ``failed to initialize rcl: Couldn't parse remap rule: '-r a:=b-c'. Error:
    Expected lexeme type (19) not found, ... at .../arguments.c:380``; the rule is what the
    user needs, the lexer position is not.
    """
    text = str(exc)
    match = re.search(r"Couldn't parse ([^:]+): '([^']*)'", text)
    if match:
        return (f"cannot parse {match.group(1)} '{match.group(2)}' (ROS names hold only "
                "letters, digits, '_' and '/', and do not start with a digit)")
    return text.split(", at ")[0]


def _ignore_teardown_signals() -> dict[int, Any]:
    """Replace rclpy's handlers by SIG_IGN for SIGINT and SIGTERM; return the Python ones."""
    previous = {sig: signal.getsignal(sig) for sig in _TEARDOWN_SIGNALS}
    while True:
        try:
            # rclpy's handlers go first (they restore Python's own), then the signals are
            # ignored. A signal landing between the two calls raises KeyboardInterrupt here:
            # it is the repeated signal this function exists for, so do it again.
            uninstall_signal_handlers()
            for sig in _TEARDOWN_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)
            return previous
        except KeyboardInterrupt:
            continue


def run_node(make_node: Callable[[], Node], name: str, argv: list[str] | None = None, *,
             on_stop: Callable[[Node], None] | None = None) -> int:
    """Build the node with ``make_node``, spin it until shut down, and tear it down cleanly.

    Args:
        make_node: builds the node once ``rclpy.init`` has run (a node class will do).
        name: the executable's name, the prefix of every error line.
        argv: the command line; None for the process's own (``sys.argv``), which also means
            the process ends here, with ``os._exit`` once ROS is shut down (see the comment
            there). With an explicit ``argv`` (a test calling ``main``) the previous signal
            handlers are restored and the exit code is returned.
        on_stop: called with the node after spinning ends, before it is destroyed (to stop
            worker threads).

    Returns:
        The process exit code: 0 after a shutdown by signal (also one that arrives while the
        node is being built), :data:`EXIT_CONFIG` for a configuration error,
        :data:`EXIT_START_FAILED` for any other failure to start.
    """
    process_main = argv is None
    args = list(sys.argv if argv is None else argv)
    missing = missing_params_files(args)
    if missing:
        print(f"{name}: cannot start: parameter file not found: {missing[0]}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        rclpy.init(args=args)
    except _rclpy.RCLError as exc:
        print(f"{name}: cannot start: invalid ROS arguments: {ros_arguments_error(exc)}",
              file=sys.stderr)
        return EXIT_CONFIG
    node: Node | None = None
    executor: SingleThreadedExecutor | None = None
    code = 0
    try:
        # Created first: an executor created once a signal has shut the context down fails,
        # and complains again when it is garbage-collected.
        executor = SingleThreadedExecutor()
        node = make_node()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:
        # Once a signal has shut the context down, whatever was using it (a constructor
        # creating a publisher, a timer callback publishing) fails: that is the shutdown.
        if rclpy.ok():
            if node is not None:
                raise  # a callback failed while the node was running: a real error
            code = EXIT_CONFIG if isinstance(exc, CONFIG_ERRORS) else EXIT_START_FAILED
            print(f"{name}: cannot start: {exc}", file=sys.stderr)
    finally:
        previous = _ignore_teardown_signals()
        if node is not None and on_stop is not None:
            on_stop(node)
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(uninstall_handlers=False)
        if not process_main:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if process_main:
        # ROS is shut down (its log files flushed by rclpy.try_shutdown); what is left is the
        # interpreter's own finalisation of torch and ONNX Runtime, measured at 1.5-4.7 s on a
        # busy 2-core machine: longer than ros2 launch waits after SIGINT before it escalates
        # to SIGTERM (5 s). Nothing else needs it, so the process ends here.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


