"""How every depthssd node starts and stops: the one ``main()`` path of the console scripts.

Start. A ``--params-file`` that does not exist is an error (rcl would only fail later with a
parser message, and launch_ros merely warns about a missing parameter file and starts the node
with its defaults); malformed ROS arguments (an invalid name in a remapping such as
``image:=/carla/bad-name/rgb_front/image``), invalid parameter values and invalid names are one
line on stderr and exit code 2; any other failure to build the node (a model that does not
load) is one line and exit code 1.

Stop. SIGINT (Ctrl-C), SIGTERM, and a second SIGINT while the node is tearing down (a terminal
sends one to the whole process group and ``ros2 launch`` forwards another) all end with exit
code 0 and no traceback. The node handles the two signals itself (rclpy is initialised without
its signal handlers): Python's C-level handler writes each signal's number to a wakeup pipe, a
watcher thread reads it and completes the future the executor spins on, which wakes the
executor; the main thread then leaves ``spin_until_future_complete`` and tears down. No signal
raises in Python and nothing shuts the context down behind the node's back. Both did with
rclpy's default handlers: Python's default SIGINT handler raises ``KeyboardInterrupt`` at
whatever line runs when the signal lands (here once in the first line of the teardown: a
traceback and exit code -2), and rclpy's handlers shut the context down from their own thread
while the executor may be building its next wait set, which then waits forever (no timer of a
shut-down context fires): the synthetic camera hung so in CI, and here in about one stop in
50 with rclpy's handlers kept. A signal that lands while the node is being built takes effect
once it is built (model loading is not interruptible anyway). SIGKILL remains for a node that
would hang.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import rclpy
from rclpy.exceptions import NameValidationException, ParameterException
from rclpy.executors import SingleThreadedExecutor
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions
from rclpy.task import Future

#: Exit code of a configuration error (arguments, parameter values, names, files).
EXIT_CONFIG = 2
#: Exit code of any other failure to start (e.g. a model file that does not load).
EXIT_START_FAILED = 1
#: Exceptions of a node constructor that mean "the configuration is wrong".
CONFIG_ERRORS = (ValueError, TypeError, ParameterException, NameValidationException)
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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


class _StopSignals:
    """SIGINT and SIGTERM, from any thread, turned into a completed future (see module doc).

    Install from the main thread (Python's rule for signal handlers) and ``close()`` after.
    """

    def __init__(self) -> None:
        self.future: Future[int] = Future()
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)  # the C-level handler must never block
        self._handlers = {sig: signal.signal(sig, _ignore_in_python) for sig in _STOP_SIGNALS}
        self._wakeup_fd = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, name="stop-signals", daemon=True)
        self._thread.start()

    @property
    def received(self) -> bool:
        """Whether a stop signal has arrived."""
        return self.future.done()

    def _watch(self) -> None:
        while data := os.read(self._read_fd, 64):  # b"" once close() closed the write end
            if not self.future.done():
                # Its done callback (added by spin_until_future_complete) wakes the executor.
                self.future.set_result(data[0])

    def close(self) -> None:
        """Restore the previous wakeup fd and handlers, and stop the watcher."""
        signal.set_wakeup_fd(self._wakeup_fd)
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        os.close(self._write_fd)
        self._thread.join(timeout=5.0)
        os.close(self._read_fd)


def _ignore_in_python(signum: int, frame: Any) -> None:
    """The Python-level part of a stop signal: nothing (the watcher thread acts on it)."""


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
    stop = _StopSignals()
    try:
        rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    except _rclpy.RCLError as exc:
        stop.close()
        print(f"{name}: cannot start: invalid ROS arguments: {ros_arguments_error(exc)}",
              file=sys.stderr)
        return EXIT_CONFIG
    node: Node | None = None
    executor: SingleThreadedExecutor | None = None
    code = 0
    try:
        executor = SingleThreadedExecutor()
        node = make_node()
        if not stop.received:
            executor.add_node(node)
            executor.spin_until_future_complete(stop.future)
    except Exception as exc:
        if node is not None:
            raise  # a callback failed while the node was running: a real error
        code = EXIT_CONFIG if isinstance(exc, CONFIG_ERRORS) else EXIT_START_FAILED
        print(f"{name}: cannot start: {exc}", file=sys.stderr)
    finally:
        # A signal from here on only completes the future again: teardown runs to its end.
        if node is not None and on_stop is not None:
            on_stop(node)
        if executor is not None:
            executor.shutdown()
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(uninstall_handlers=False)
        stop.close()
    if process_main:
        # ROS is shut down (its log files flushed by rclpy.try_shutdown); what is left is the
        # interpreter's own finalisation of torch and ONNX Runtime, measured at 1.5-4.7 s on a
        # busy 2-core machine: longer than ros2 launch waits after SIGINT before it escalates
        # to SIGTERM (5 s). Nothing else needs it, so the process ends here.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


