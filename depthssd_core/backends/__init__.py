"""Inference backends: one small interface, one file per engine (torch, ONNX Runtime, TensorRT).

Optional engines are imported lazily inside their backend so that ``depthssd_core`` imports on a
machine without onnxruntime, tensorrt or a GPU.
"""

from depthssd_core.backends.base import InferenceBackend

__all__ = ["InferenceBackend"]
