"""``precision: auto``: time the training step under bf16 autocast and in FP32, keep the faster.

CPUs differ too much for a rule: bf16 was only ~20 % faster than FP32 on an AMD EPYC without
AMX and several times faster on an Intel CPU with AMX tiles. The probe runs a few forward and
backward passes of the real model at the stage's input size on a copy of the trainer (so
BatchNorm statistics of the run are untouched) and returns the choice with its timings.
"""

from __future__ import annotations

import contextlib
import copy
import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

# bf16 must beat FP32 by this much to be chosen: it costs accuracy, so a tie keeps FP32.
BF16_MIN_SPEEDUP = 1.1


@dataclass
class PrecisionChoice:
    """The autocast dtype to train with and how it was chosen."""

    name: str  # "bf16" or "fp32"
    dtype: torch.dtype | None  # autocast dtype, None = FP32
    how: str  # "forced" (config), "cuda", or "probe"
    fp32_s: float = float("nan")  # median seconds of a probe step in FP32
    bf16_s: float = float("nan")  # the same under bf16 autocast

    def describe(self) -> str:
        """One log line."""
        if self.how != "probe":
            return f"precision {self.name} ({self.how})"
        return (f"precision {self.name} (probe: fp32 {self.fp32_s * 1e3:.0f} ms, "
                f"bf16 {self.bf16_s * 1e3:.0f} ms per step)")


def _time_steps(trainer: nn.Module, device: torch.device, dtype: torch.dtype | None,
                batch: int, height: int, width: int, repeats: int) -> float:
    frame = {
        "image": torch.rand(batch, 3, height, width),
        "depth_m": torch.rand(batch, 1, height, width) * 40 + 2,
        "depth_valid": torch.ones(batch, 1, height, width, dtype=torch.bool),
        "intrinsics": torch.tensor([[width / 2, width / 2, width / 2, height / 2]] * batch),
        "boxes_xyxy": [torch.tensor([[10.0, 10.0, 40.0, 60.0]])] * batch,
        "labels": [torch.tensor([1])] * batch,
        "has_boxes": torch.ones(batch, dtype=torch.bool),
        "has_depth": torch.ones(batch, dtype=torch.bool),
    }
    resets = torch.zeros(1, batch, dtype=torch.bool)
    times = []
    for i in range(repeats + 1):  # the first pass warms up oneDNN's kernels
        t0 = time.perf_counter()
        autocast = (torch.autocast(device.type, dtype=dtype) if dtype is not None
                    else contextlib.nullcontext())
        with autocast:
            loss, _ = trainer([frame], resets)
        loss.backward()
        trainer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def choose_precision(precision: str, trainer: nn.Module, device: torch.device, batch: int,
                     height: int, width: int, repeats: int = 3) -> PrecisionChoice:
    """Resolve ``precision`` (auto, fp32, bf16) for this machine.

    Args:
        precision: the config value.
        trainer: the model + loss module (a ``ClipTrainer``); it is copied, not changed.
        device: where training runs.
        batch: images per probe step.
        height: probe input height (the first stage's).
        width: probe input width.
        repeats: timed steps per precision.
    """
    if precision == "fp32":
        return PrecisionChoice("fp32", None, "forced")
    if precision == "bf16":
        return PrecisionChoice("bf16", torch.bfloat16, "forced")
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return PrecisionChoice("bf16" if ok else "fp32", torch.bfloat16 if ok else None, "cuda")
    probe = copy.deepcopy(trainer).to(device).train()
    fp32 = _time_steps(probe, device, None, batch, height, width, repeats)
    # Training runs bf16 in channels-last (oneDNN's fast layout); time it the same way.
    probe.to(memory_format=torch.channels_last)
    probe.channels_last = True
    bf16 = _time_steps(probe, device, torch.bfloat16, batch, height, width, repeats)
    use_bf16 = bf16 * BF16_MIN_SPEEDUP < fp32
    return PrecisionChoice("bf16" if use_bf16 else "fp32", torch.bfloat16 if use_bf16 else None,
                           "probe", fp32, bf16)
