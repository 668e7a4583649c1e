"""``benchmarks/tensorrt_smoke.py``, the check meant for the first machine with a GPU.

It cannot run for real here (no GPU, TensorRT not installable): these tests check its one-line
exit on this machine, and run its whole TensorRT path on the stand-in ``tensorrt`` module
(``tensorrt_standin.py``, following TensorRT 10.3 to 11.4; see ``test_tensorrt_standin.py``)
with host memory in place of CUDA memory, so that the script itself is known to work before a
GPU's limited time is spent on it. The stand-in computes with ONNX Runtime, so this says nothing
about TensorRT's accuracy or speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import tensorrt_standin

from depthssd_core.backends import tensorrt_backend

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import tensorrt_smoke


def test_without_tensorrt_it_exits_2_with_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    monkeypatch.setattr(tensorrt_smoke.importlib.util, "find_spec", lambda name: None)
    assert tensorrt_smoke.main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "cannot run here" in captured.err


@pytest.mark.slow
def test_its_tensorrt_path_runs_on_the_standin(monkeypatch, tmp_path, capsys):
    trt = tensorrt_standin.install(monkeypatch, "10.3.0")
    monkeypatch.setattr(tensorrt_smoke, "_cannot_run", lambda: None)
    monkeypatch.setattr(tensorrt_backend, "CudaMemory", tensorrt_standin.HostMemory)
    json_path = tmp_path / "smoke.json"
    code = tensorrt_smoke.main(["--frames", "3", "--latency-runs", "4", "--threads", "1",
                                "--work-dir", str(tmp_path), "--json", str(json_path)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "tensorrt-fp16 vs onnxruntime-fp32 over 3 recurrent frames" in out
    assert "all within bounds" in out and "latency_ms" in out
    assert "strongly_typed: True" in out
    # 3 compared frames, 10 warm-up calls, 4 timed calls: one execution each.
    assert len(trt._standin.executions) == 3 + 10 + 4
    assert json_path.is_file()
