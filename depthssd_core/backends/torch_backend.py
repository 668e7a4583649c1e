"""PyTorch backend: runs a ``DepthSSD`` module eagerly (CPU or CUDA)."""

from __future__ import annotations

import numpy as np
import torch

from depthssd_core.backends.base import InferenceBackend, check_outputs
from depthssd_core.graph_contract import OUTPUT_NAMES


class TorchBackend(InferenceBackend):
    """Runs a ``torch.nn.Module`` with the DepthSSD forward signature.

    Args:
        model: a ``DepthSSD`` (or any module with the same forward contract).
        device: torch device string; ``None`` picks CUDA when available, else CPU.
        num_threads: intra-op CPU threads to use (``None`` leaves torch's setting alone).
    """

    name = "torch"

    def __init__(self, model: torch.nn.Module, device: str | None = None,
                 num_threads: int | None = None) -> None:
        self.model = model
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.num_threads = num_threads
        self._loaded = False

    def load(self) -> None:
        """Move the model to the device in eval mode."""
        if self._loaded:
            return
        if self.num_threads is not None and self.device == "cpu":
            torch.set_num_threads(int(self.num_threads))
        self.model = self.model.to(self.device).eval()
        self._loaded = True

    @torch.inference_mode()
    def infer(self, image: np.ndarray, mem_m: np.ndarray, mem_s: np.ndarray,
              ) -> dict[str, np.ndarray]:
        """Run the module; see :meth:`InferenceBackend.infer`."""
        self.load()
        tensors = [torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32)).to(self.device)
                   for a in (image, mem_m, mem_s)]
        outputs = self.model(*tensors)
        return check_outputs(
            {n: t.detach().float().cpu().numpy() for n, t in zip(OUTPUT_NAMES, outputs,
                                                                  strict=True)},
            self.name,
        )
