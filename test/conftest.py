"""Shared pytest fixtures: the isolated ROS environment and node processes (see ros_env.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ros_env import NodeProcess, configure_ros_environment, release_ros_environment

#: The depthssd cache of test sessions (ONNX exports of checkpoints): inside the checkout
#: (git-ignored), so tests never write to the user's ~/.cache, and kept between sessions
#: because entries are keyed by the checkpoint's content.
TEST_CACHE_DIR = Path(__file__).resolve().parents[1] / ".cache" / "depthssd-test"


def pytest_configure(config: pytest.Config) -> None:
    # Before any test module imports rclpy, so that every node of the session is isolated;
    # node processes started by tests inherit both settings.
    configure_ros_environment()
    os.environ["DEPTHSSD_CACHE_DIR"] = str(TEST_CACHE_DIR)


def pytest_unconfigure(config: pytest.Config) -> None:
    release_ros_environment()


@pytest.fixture(scope="session")
def ros_environment() -> dict[str, str]:
    """The ROS variables of this session (domain id, log dir, Fast DDS profile)."""
    return {key: os.environ[key] for key in configure_ros_environment()}


@pytest.fixture
def node_process(tmp_path) -> Iterator[Callable[..., NodeProcess]]:
    """Factory ``node_process(module, args, name=None)`` starting a child process.

    Every process started through it is stopped (SIGINT, then kill) when the test ends; if the
    test failed, the processes' output is printed.
    """
    started: list[NodeProcess] = []

    def start(module: str, args: list[str] | None = None, name: str | None = None,
              env: dict[str, str] | None = None) -> NodeProcess:
        proc = NodeProcess(module, args, name=name, log_dir=tmp_path, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        code = proc.stop()
        print(f"--- {proc.name} (exit {code}) ---\n{proc.output()[-4000:]}")


@pytest.fixture
def rclpy_context() -> Iterator[object]:
    """An initialised rclpy context for the test, shut down afterwards."""
    import rclpy
    from rclpy.context import Context

    context = Context()
    rclpy.init(context=context)
    yield context
    rclpy.shutdown(context=context)
