"""The per-user folder where depthssd keeps what it derives from model files.

A checkpoint's ONNX exports (``<cache>/onnx/``) and TensorRT engines built from a read-only
ONNX (``<cache>/engines/``) live here, never next to the model: under colcon the shipped model
sits in the installed ``share/`` folder, which may be read-only and is not ours to write.
"""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable that moves the whole cache (takes precedence over XDG_CACHE_HOME).
CACHE_DIR_ENV = "DEPTHSSD_CACHE_DIR"


def user_cache_dir() -> Path:
    """``$DEPTHSSD_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/depthssd``, else
    ``~/.cache/depthssd``."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "depthssd"
