"""Fixtures shared by the core tests."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from types import ModuleType

import pytest
import torch

from depthssd_core.model import DepthSSD


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread() -> Iterator[None]:
    """Run torch on one thread, restoring the setting afterwards.

    The test models are tiny and gain nothing from threads, while on a shared, loaded CPU
    torch's thread pool made each forward pass about 50x slower (measured).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def model() -> DepthSSD:
    """The default configuration with seeded random weights, in eval mode."""
    torch.manual_seed(0)
    return DepthSSD().eval()


@pytest.fixture
def standin(monkeypatch) -> Callable[..., ModuleType]:
    """Factory ``standin(version, gpu=None)``: for the rest of the test, ``import tensorrt``
    gives the TensorRT stand-in of that version and depthssd sees its GPU
    (``tensorrt_standin.install``); returns the stand-in module."""
    import tensorrt_standin

    return functools.partial(tensorrt_standin.install, monkeypatch)
