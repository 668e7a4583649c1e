"""package.xml declares what the code imports, with rosdep keys that resolve.

``rosdep install --from-paths src --ignore-src`` is how a ROS user installs the package's
dependencies, so every third-party import of the installed code must be a key of package.xml,
and every key must exist: a ROS package (same name as its Python module), a key of the public
rosdep database, or one of the keys ``tools/rosdep.yaml`` adds. The public keys used here were
looked up in ros/rosdistro's ``rosdep/base.yaml`` and ``rosdep/python.yaml`` (commit 8468e88,
2026-08-22) and resolved with ``rosdep install --simulate`` for Humble (ubuntu:jammy), Jazzy
and Kilted (ubuntu:noble). With ``ROSDISTRO_DIR`` set to a rosdistro checkout the test checks
them against its files again.
"""

from __future__ import annotations

import ast
import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {"depthssd_core", "depthssd_sim", "depthssd_train", "depthssd_ros"}
#: Python modules that are not ROS packages -> the rosdep key that installs them.
PYTHON_KEYS = {
    "numpy": "python3-numpy",
    "cv2": "python3-opencv",
    "yaml": "python3-yaml",
    "PIL": "python3-pil",
    "torch": "python3-pytorch-pip",        # pip: torch and torchvision
    "torchvision": "python3-pytorch-pip",
    "timm": "python3-timm-pip",
    "onnxruntime": "python3-onnxruntime-pip",
    "safetensors": "python3-safetensors-pip",
    "onnx": "python3-onnx-pip",
    "tqdm": "python3-tqdm",
    "matplotlib": "python3-matplotlib",
    "tensorboard": "python3-tensorboard-pip",
    "rosbags": "python3-rosbags-pip",
    "pycocotools": "python3-pycocotools-pip",
    "omegaconf": "python3-omegaconf-pip",
    "psutil": "python3-psutil",
    "carla": "carla-pip",
    "pytest": "python3-pytest",
}
#: Keys of the public rosdep database (looked up at the commit in the module docstring).
PUBLIC_KEYS = {"python3-numpy", "python3-opencv", "python3-yaml", "python3-pil",
               "python3-pytorch-pip", "python3-timm-pip", "python3-onnxruntime-pip",
               "python3-tqdm", "python3-matplotlib", "python3-tensorboard-pip",
               "python3-rosbags-pip", "carla-pip", "python3-pytest", "python3-psutil"}
#: What the tensorboard writer of the training code imports (through torch.utils.tensorboard).
INDIRECT = {"depthssd_train": {"tensorboard"}}
#: Declared without an import: started by a launch file.
LAUNCHED = {"rviz2"}


def _imports(folder: Path) -> set[str]:
    found = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - FIRST_PARTY


def _keys(tag: str) -> list[str]:
    root = ET.parse(ROOT / "package.xml").getroot()
    return [element.text.strip() for element in root.iter(tag)]


def _key_of(module: str) -> str:
    return PYTHON_KEYS.get(module, module)  # a ROS package: the key is its name


def _project_keys() -> dict:
    return yaml.safe_load((ROOT / "tools" / "rosdep.yaml").read_text())


def test_every_import_of_the_installed_code_is_declared_and_nothing_else():
    needed = set()
    for folder in (*sorted(FIRST_PARTY), "launch"):
        modules = _imports(ROOT / folder) | INDIRECT.get(folder, set())
        needed |= {_key_of(m) for m in modules}
    declared = _keys("exec_depend")
    assert len(declared) == len(set(declared)), "a key is declared twice"
    assert needed - set(declared) == set(), "imported but not in package.xml"
    assert set(declared) - needed - LAUNCHED == set(), "declared but never imported"


def test_every_import_of_the_launch_tests_is_declared():
    needed = {_key_of(m) for m in _imports(ROOT / "test" / "launch_testing")}
    assert needed - set(_keys("exec_depend")) - set(_keys("test_depend")) == set()


def test_every_key_resolves():
    project = _project_keys()
    for key in _keys("exec_depend") + _keys("test_depend"):
        if key in PYTHON_KEYS.values():
            assert key in PUBLIC_KEYS or key in project, f"{key}: no rosdep definition"
    # The project's file only adds what the public database lacks, as pip installs.
    assert set(project).isdisjoint(PUBLIC_KEYS)
    for key, rule in project.items():
        assert key.endswith("-pip") and rule["*"]["pip"]["packages"], key


@pytest.mark.skipif("ROSDISTRO_DIR" not in os.environ,
                    reason="set ROSDISTRO_DIR to a ros/rosdistro checkout to re-check the keys")
def test_public_keys_exist_in_rosdistro():
    folder = Path(os.environ["ROSDISTRO_DIR"]) / "rosdep"
    public = set()
    for name in ("base.yaml", "python.yaml"):
        public |= set(yaml.safe_load((folder / name).read_text()))
    assert not PUBLIC_KEYS - public, PUBLIC_KEYS - public
    assert set(_project_keys()).isdisjoint(public), "tools/rosdep.yaml shadows a public key"
