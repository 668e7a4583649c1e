"""Every floor of issue 15 for one model: renders the held-out splits, scores them through the
node's runtime (ONNX Runtime, memory on and off), writes ``suite.json`` and ``suite.md``.

Run: ``nice -n 19 .venv/bin/python benchmarks/model_floors.py --model
models/depthssd_conv_small.safetensors [--cache runs/suite_data] [--out runs/suite]``.
The splits, the floors and the rules are described in ``depthssd_train/eval_suite.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a plain checkout too
from depthssd_train.eval_suite import main

if __name__ == "__main__":
    sys.exit(main())
