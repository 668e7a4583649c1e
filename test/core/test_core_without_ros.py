"""depthssd_core must not depend on ROS: it imports in a Python where rclpy cannot be imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# A meta-path finder that refuses every ROS module, as a Python without ROS would.
_BLOCK_ROS = textwrap.dedent(
    """
    import importlib.abc, sys

    BLOCKED = ("rclpy", "rosidl", "rcl_interfaces", "sensor_msgs", "vision_msgs", "std_msgs",
               "builtin_interfaces", "geometry_msgs", "rosgraph_msgs", "ament_index_python")

    class NoRos(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, NoRos())
    """
)


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCK_ROS + textwrap.dedent(code)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def test_blocker_really_blocks_rclpy():
    result = _run("import rclpy\n")
    assert result.returncode != 0
    assert "blocked by the test" in result.stderr


def test_depthssd_core_imports_without_rclpy():
    code = """
    import pkgutil, importlib, sys
    import depthssd_core
    # Import every submodule too: ROS must not hide in a module the runtime loads lazily.
    names = [m.name for m in pkgutil.walk_packages(depthssd_core.__path__, "depthssd_core.")]
    for name in names:
        importlib.import_module(name)
    assert not any(m.split(".")[0] == "rclpy" for m in sys.modules)
    print("imported", len(names) + 1, "modules;", depthssd_core.CLASSES[0])
    """
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert "car" in result.stdout
