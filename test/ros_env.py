"""An isolated ROS 2 environment for one pytest session.

Every test session gets its own ``ROS_DOMAIN_ID`` (held with a lock file so that two sessions on
one machine never share one), discovery limited to localhost, a temporary ``ROS_LOG_DIR`` and
the project's Fast DDS profile (``config/fastdds_localhost.xml``: large shared-memory segment,
UDP on 127.0.0.1 only). The variables are set in ``os.environ`` before any test imports rclpy,
so node processes started by tests inherit them.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
FASTDDS_PROFILE = REPO_ROOT / "config" / "fastdds_localhost.xml"
# Fast DDS maps a domain to UDP ports 7400 + 250 * id: ids above 101 overflow on some hosts.
_DOMAIN_RANGE = range(1, 101)
_LOCK_DIR = Path(tempfile.gettempdir()) / "depthssd_ros_domains"

_state: dict[str, object] = {}


def _claim_domain_id() -> tuple[int, object]:
    """Pick a free ROS domain id and hold an exclusive lock on it for this process's life."""
    _LOCK_DIR.mkdir(parents=True, exist_ok=True)
    candidates = list(_DOMAIN_RANGE)
    random.Random(os.getpid() ^ time.monotonic_ns()).shuffle(candidates)
    for domain_id in candidates:
        handle = open(_LOCK_DIR / f"{domain_id}.lock", "w")  # noqa: SIM115 (held open on purpose)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return domain_id, handle
    raise RuntimeError(f"no free ROS domain id in {_DOMAIN_RANGE} (locks in {_LOCK_DIR})")


def configure_ros_environment() -> dict[str, str]:
    """Set the isolated ROS environment in ``os.environ`` and return what was set."""
    if "env" in _state:
        return _state["env"]  # type: ignore[return-value]
    domain_id, lock = _claim_domain_id()
    log_dir = tempfile.mkdtemp(prefix="depthssd_roslog_")
    env = {
        "ROS_DOMAIN_ID": str(domain_id),
        "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
        "ROS_LOG_DIR": log_dir,
        "FASTDDS_DEFAULT_PROFILES_FILE": str(FASTDDS_PROFILE),
        "RMW_IMPLEMENTATION": "rmw_fastrtps_cpp",
        # Unbuffered output lets tests read node logs as they happen.
        "PYTHONUNBUFFERED": "1",
    }
    if "VIRTUAL_ENV" not in os.environ and (Path(sys.prefix) / "pyvenv.cfg").exists():
        env["VIRTUAL_ENV"] = sys.prefix
    env.setdefault("AMENT_PREFIX_PATH", os.environ.get("AMENT_PREFIX_PATH") or sys.prefix)
    os.environ.update(env)
    _state.update(env=env, lock=lock, log_dir=log_dir)
    return env


def release_ros_environment() -> None:
    """Remove the session's log folder and free its domain id."""
    log_dir = _state.pop("log_dir", None)
    if log_dir:
        shutil.rmtree(str(log_dir), ignore_errors=True)
    lock = _state.pop("lock", None)
    if lock is not None:
        lock.close()  # type: ignore[attr-defined]
    _state.pop("env", None)


class SpinningNode:
    """An rclpy node with a context of its own, spun on a background thread until ``close()``.

    The base of the tests' client node (test/ros/conftest.py ``RosClient``) and of the node
    benchmarks' client (benchmarks/node_bench.py ``Bench``). rclpy is imported here, not at the
    top, so the module loads where ROS is missing.
    """

    def __init__(self, name: str) -> None:
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down while spinning: the node is closing
                if self.context.ok():
                    raise
                return

    def close(self) -> None:
        self.context.try_shutdown()
        self._thread.join(timeout=5.0)
        self.executor.shutdown()
        self.node.destroy_node()


class NodeProcess:
    """A ROS node (or any Python module) run as a child process of the test.

    Output goes to a log file so a failing test can show it; ``stop()`` sends SIGINT and waits,
    which is how a user stops a node, and returns the exit code.
    """

    def __init__(self, module: str, args: list[str] | None = None, name: str | None = None,
                 log_dir: Path | None = None, env: dict[str, str] | None = None) -> None:
        self.module = module
        self.name = name or module.rsplit(".", 1)[-1]
        folder = Path(log_dir or _state.get("log_dir") or tempfile.mkdtemp())
        self.log_path = folder / f"{self.name}-{os.getpid()}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop())
        child_env = dict(os.environ)
        # The test folder holds helper processes (procs/); the repository holds the packages.
        paths = [str(REPO_ROOT / "test"), str(REPO_ROOT), child_env.get("PYTHONPATH", "")]
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        child_env.update(env or {})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *(args or [])],
            stdout=self._log, stderr=subprocess.STDOUT, env=child_env, cwd=str(REPO_ROOT),
        )

    def output(self) -> str:
        """Everything the process has printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def is_running(self) -> bool:
        return self.proc.poll() is None

    def wait_for_output(self, text: str, timeout_s: float = 30.0) -> bool:
        """Wait until ``text`` appears in the output or the process ends."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.output():
                return True
            if not self.is_running():
                return text in self.output()
            time.sleep(0.05)
        return False

    def stop(self, timeout_s: float = 15.0) -> int:
        """Interrupt the process like Ctrl-C and return its exit code (kill if it hangs)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


@contextlib.contextmanager
def spinning(executor: object) -> Iterator[None]:
    """Spin ``executor`` on a background thread for the ``with`` block, then shut it down.

    The thread spins in short slices and is joined before ``executor.shutdown()``: shutting an
    executor down under a running ``spin()`` raises ``InvalidHandle`` in the spinning thread.
    """
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            executor.spin_once(timeout_sec=0.05)  # type: ignore[attr-defined]

    thread = threading.Thread(target=spin, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
        executor.shutdown()  # type: ignore[attr-defined]
