"""Fixtures for tests that talk to node processes over real topics.

``RosClient`` is a test-side rclpy node spun in a background thread: it subscribes, publishes,
calls services and sets parameters of other nodes, and waits on conditions (matched endpoints,
message counts) with timeouts, never with fixed sleeps. Fixtures: ``ros_client`` (one per
module), ``perception`` (helpers: ``start`` runs ``python -m depthssd_ros.perception_node`` as a
child process on the session's ROS domain, see test/ros_env.py; ``wait_ready``),
``random_model`` (a random-weight checkpoint with its ONNX export cached) and
``perception_node`` (one node process for the session).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

rclpy = pytest.importorskip("rclpy")

from rcl_interfaces.msg import Parameter as ParameterMsg  # noqa: E402
from rcl_interfaces.srv import GetParameters, ListParameters, SetParameters  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_env import NodeProcess, SpinningNode  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[2]
NODE_MODULE = "depthssd_ros.perception_node"


class Inbox:
    """Messages received on one topic, with their arrival times (``time.monotonic()``)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.arrivals: list[float] = []
        self.subscription: Any = None
        self._cond = threading.Condition()

    def __call__(self, msg: Any) -> None:
        with self._cond:
            self.messages.append(msg)
            self.arrivals.append(time.monotonic())
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return len(self.messages)

    def clear(self) -> None:
        with self._cond:
            self.messages.clear()
            self.arrivals.clear()

    def wait_for(self, predicate: Callable[[list[Any]], bool], timeout_s: float) -> bool:
        """Wait until ``predicate(messages)`` holds; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self.messages):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def wait_count(self, count: int, timeout_s: float) -> bool:
        return self.wait_for(lambda msgs: len(msgs) >= count, timeout_s)


class RosClient(SpinningNode):
    """A test-side node with its own context, spun in a background thread."""

    def __init__(self, name: str = "test_client") -> None:
        super().__init__(name)

    def subscribe(self, msg_type: Any, topic: str, qos: Any = 10) -> Inbox:
        inbox = Inbox()
        inbox.subscription = self.node.create_subscription(msg_type, topic, inbox, qos)
        return inbox

    def publisher(self, msg_type: Any, topic: str, qos: Any = 10) -> Any:
        return self.node.create_publisher(msg_type, topic, qos)

    @staticmethod
    def wait_until(predicate: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.01)
        return predicate()

    def wait_for_subscribers(self, publisher: Any, count: int = 1,
                             timeout_s: float = 20.0) -> None:
        ok = self.wait_until(lambda: publisher.get_subscription_count() >= count, timeout_s)
        assert ok, f"no subscriber matched {publisher.topic_name} within {timeout_s} s"

    def wait_for_publishers(self, inbox: Inbox, count: int = 1, timeout_s: float = 20.0) -> None:
        sub = inbox.subscription
        ok = self.wait_until(lambda: sub.get_publisher_count() >= count, timeout_s)
        assert ok, f"no publisher matched {sub.topic_name} within {timeout_s} s"

    def call(self, srv_type: Any, name: str, request: Any, timeout_s: float = 20.0) -> Any:
        client = self.node.create_client(srv_type, name)
        try:
            assert client.wait_for_service(timeout_sec=timeout_s), f"service {name} not up"
            future = client.call_async(request)
            assert self.wait_until(future.done, timeout_s), f"service {name} did not answer"
            return future.result()
        finally:
            self.node.destroy_client(client)

    def set_parameters(self, node_name: str, values: dict[str, Any]) -> list[Any]:
        """Set parameters of another node (one request per parameter); returns the results."""
        results = []
        for name, value in values.items():
            request = SetParameters.Request()
            request.parameters = [Parameter(name, value=value).to_parameter_msg()]
            results.extend(self.call(SetParameters, f"{node_name}/set_parameters",
                                     request).results)
        return results

    def get_parameters(self, node_name: str) -> dict[str, Any]:
        """All parameters of another node as Python values."""
        listing = self.call(ListParameters, f"{node_name}/list_parameters",
                            ListParameters.Request()).result.names
        request = GetParameters.Request(names=list(listing))
        values = self.call(GetParameters, f"{node_name}/get_parameters", request).values
        return {name: Parameter.from_parameter_msg(ParameterMsg(name=name, value=value)).value
                for name, value in zip(listing, values, strict=True)}


@pytest.fixture(scope="module")
def ros_client() -> Iterator[RosClient]:
    """A test-side node shared by the tests of one module."""
    client = RosClient(f"test_client_{int(time.monotonic_ns() % 1_000_000)}")
    yield client
    client.close()


def _start_perception_node(model_path: Path | str, *, name: str = "depthssd_node",
                          namespace: str = "/", image_topic: str = "/cam/image",
                          info_topic: str = "/cam/camera_info", params_file: bool = True,
                          extra: list[str] | None = None, log_dir: Path | None = None,
                          ) -> NodeProcess:
    """Start the perception node as a child process (``python -m``) with the usual remaps."""
    args = ["--ros-args", "-r", f"__node:={name}", "-r", f"__ns:={namespace}",
            "-r", f"image:={image_topic}", "-r", f"camera_info:={info_topic}"]
    if params_file:
        args += ["--params-file", str(REPO_ROOT / "config" / "depthssd.yaml")]
    args += ["-p", f"model_path:={model_path}", *(extra or [])]
    return NodeProcess(NODE_MODULE, args, name=name, log_dir=log_dir)


def _wait_ready(proc: NodeProcess, timeout_s: float = 120.0) -> None:
    """Wait for the node's ``ready:`` log line (the model is loaded, topics exist)."""
    assert proc.wait_for_output("ready:", timeout_s), (
        f"node did not become ready (exit {proc.proc.poll()}):\n{proc.output()[-3000:]}")


class PerceptionHelpers:
    """What tests need to run perception nodes (a fixture: test/ros is not importable)."""

    repo_root = REPO_ROOT
    RosClient = RosClient
    start = staticmethod(_start_perception_node)
    wait_ready = staticmethod(_wait_ready)


@pytest.fixture(scope="session")
def perception() -> type[PerceptionHelpers]:
    """Helpers to start the perception node and talk to it (see :class:`PerceptionHelpers`)."""
    return PerceptionHelpers


#: A small network input keeps a CPU inference of the random-weight model at tens of ms.
RANDOM_MODEL_INPUT_HW = (96, 160)


@pytest.fixture(scope="session")
def random_model(tmp_path_factory) -> Path:
    """A conv_small checkpoint with random weights (seeded) and a 96x160 input.

    Stands in for the trained model where only the plumbing is tested: its detections are
    arbitrary, its depth is metric by construction (the depth head's output range). Its ONNX
    export is made here, once, into the session's depthssd cache (test/conftest.py), so node
    processes start without exporting.
    """
    import dataclasses

    import torch

    from depthssd_core.backends.loading import export_cached_onnx
    from depthssd_core.checkpoint import save_checkpoint
    from depthssd_core.config import ModelConfig
    from depthssd_core.model import build_model

    height, width = RANDOM_MODEL_INPUT_HW
    cfg = dataclasses.replace(ModelConfig.named("conv_small"), input_height=height,
                              input_width=width)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    path = tmp_path_factory.mktemp("random_model") / "random_conv_small.safetensors"
    save_checkpoint(path, model)
    export_cached_onnx(path, model, None)
    return path


@pytest.fixture(scope="session")
def perception_node(random_model, tmp_path_factory) -> Iterator[NodeProcess]:
    """One perception node process for the session: random model, no YAML, sim time.

    Started without ``config/depthssd.yaml`` so tests can check the declared defaults against
    the YAML; with ``use_sim_time`` and no ``/clock`` so every output stamp must come from the
    input header. Tests that change a parameter restore it. Stopped with SIGTERM, which must
    end it with exit code 0 like Ctrl-C.
    """
    proc = _start_perception_node(random_model, params_file=False,
                                  extra=["-p", "use_sim_time:=true"],
                                  log_dir=tmp_path_factory.mktemp("perception_node"))
    _wait_ready(proc)
    yield proc
    proc.proc.terminate()
    try:
        code = proc.proc.wait(timeout=30)
    finally:
        proc.stop()
    assert code == 0, f"exit code {code} after SIGTERM:\n{proc.output()[-3000:]}"
    assert "Traceback" not in proc.output(), proc.output()[-3000:]
