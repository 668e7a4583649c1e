"""The interface every inference backend implements.

A backend runs the exported graph only: tensors in (``image``, ``mem_m``, ``mem_s``), the five
named tensors out as numpy arrays (names and order: ``depthssd_core.graph_contract``).
Pre-processing, decoding, NMS, distances and tracking live in the runtime and are shared by all
backends.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from depthssd_core.graph_contract import OUTPUT_NAMES


class InferenceBackend(ABC):
    """Runs the DepthSSD graph on one engine.

    Attributes:
        name: short backend name (``torch``, ``onnxruntime``, ``tensorrt``).
        device: where it runs, in words (e.g. ``cpu``, ``CUDAExecutionProvider``).
    """

    name: str = "base"
    device: str = "cpu"

    @abstractmethod
    def load(self) -> None:
        """Load the model/engine; idempotent. Errors name the file involved."""

    @abstractmethod
    def infer(self, image: np.ndarray, mem_m: np.ndarray, mem_s: np.ndarray,
              ) -> dict[str, np.ndarray]:
        """Run one forward pass.

        Args:
            image: float32 [1, 3, H, W], normalised RGB.
            mem_m: float32 [1, heads, d_k, d_v] memory matrix.
            mem_s: float32 [1, heads, d_k, d_v] memory momentum.

        Returns:
            The :data:`OUTPUT_NAMES` tensors as numpy arrays (float32).
        """

    def close(self) -> None:  # noqa: B027 - optional hook, most backends hold nothing to free
        """Release resources held by the backend."""


def check_outputs(outputs: dict[str, np.ndarray], backend: str) -> dict[str, np.ndarray]:
    """Raise ``ValueError`` if an output is missing; return the outputs as float32 numpy."""
    missing = [n for n in OUTPUT_NAMES if n not in outputs]
    if missing:
        raise ValueError(f"{backend} backend did not return outputs {missing}")
    return {n: np.asarray(outputs[n], dtype=np.float32) for n in OUTPUT_NAMES}
