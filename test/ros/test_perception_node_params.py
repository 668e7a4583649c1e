"""The perception node's parameters: config/depthssd.yaml is the one source of the defaults.

The YAML is parsed here and compared with the node's parameter table and with what a real node
process declares when started *without* the YAML (conftest ``perception_node``); every key must
carry a comment; invalid values are refused with a reason; a model file that is missing or
corrupt makes ``main`` (what ``python -m depthssd_ros.perception_node`` runs) return exit code 1
after one log line naming the path.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml

pytest.importorskip("rclpy")

from depthssd_ros.params import PARAMETERS, SPECS, default_values

YAML_PATH = Path(__file__).resolve().parents[2] / "config" / "depthssd.yaml"


def _yaml_parameters() -> dict:
    data = yaml.safe_load(YAML_PATH.read_text())
    assert list(data) == ["/**"], "the node's YAML must apply to any node name"
    return data["/**"]["ros__parameters"]


def test_yaml_defaults_equal_the_parameter_table():
    from_yaml = _yaml_parameters()
    assert set(from_yaml) == set(SPECS)
    for name, value in from_yaml.items():
        default = SPECS[name].default
        # Same type too: ROS refuses 1 for a double parameter.
        assert type(value) is type(default), f"{name}: YAML {value!r} vs table {default!r}"
        assert value == default, f"{name}: YAML {value!r} vs table {default!r}"


def test_every_yaml_key_has_a_comment_and_every_default_is_valid():
    lines = YAML_PATH.read_text().splitlines()
    for name in SPECS:
        index = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{name}:"))
        assert lines[index - 1].strip().startswith("#"), f"{name} has no comment above it"
    for spec in PARAMETERS:
        assert spec.check(spec.default) is None, spec.name
        assert spec.description.endswith("."), spec.name
        if spec.low is not None:
            desc = spec.descriptor()
            ranges = list(desc.floating_point_range) + list(desc.integer_range)
            assert ranges and ranges[0].from_value <= spec.default <= ranges[0].to_value


def test_parameter_checks_name_the_problem():
    assert "score_threshold" in SPECS["score_threshold"].check(1.5)
    assert "finite" in SPECS["nms_iou"].check(math.nan)
    assert "unicorn" in SPECS["classes"].check(["car", "unicorn"])
    assert "twice" in SPECS["classes"].check(["car", "car"])
    assert "one of" in SPECS["backend"].check("openvino")
    assert SPECS["backend"].check("onnxruntime") is None


def test_running_node_declares_the_yaml_defaults(perception_node, ros_client):
    declared = ros_client.get_parameters("/depthssd_node")
    expected = _yaml_parameters()
    for name, value in expected.items():
        if name == "model_path":
            continue  # the one value the test overrides
        assert declared[name] == value, name
    assert set(expected) <= set(declared)


def test_invalid_parameters_are_rejected_with_a_reason(perception_node, ros_client):
    cases = {
        "score_threshold": (1.5, "score_threshold"),
        "nms_iou": (math.nan, "nms_iou"),
        "classes": (["car", "unicorn"], "unicorn"),
        "max_detections": (0, "max_detections"),
        "backend": ("torch", "read-only"),
        "camera_height_m": ("high", "type"),
    }
    for name, (value, needle) in cases.items():
        [result] = ros_client.set_parameters("/depthssd_node", {name: value})
        assert not result.successful, name
        assert needle in result.reason.lower() or needle in result.reason, (name, result.reason)
    # Nothing changed, and a valid change goes through.
    declared = ros_client.get_parameters("/depthssd_node")
    assert declared["score_threshold"] == SPECS["score_threshold"].default
    assert declared["classes"] == default_values()["classes"]
    [ok] = ros_client.set_parameters("/depthssd_node", {"score_threshold": 0.55})
    assert ok.successful, ok.reason
    assert ros_client.get_parameters("/depthssd_node")["score_threshold"] == 0.55
    assert perception_node.is_running()


@pytest.mark.parametrize("kind", ["missing", "corrupt"])
def test_bad_model_file_exits_1_with_one_line_naming_it(kind, tmp_path: Path, capfd):
    from depthssd_ros.perception_node import main

    path = tmp_path / "broken.safetensors"
    if kind == "corrupt":
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a safetensors header at all")
    # With the YAML, as the launch file runs it: the file's values must be accepted first.
    yaml_path = Path(__file__).resolve().parents[2] / "config" / "depthssd.yaml"
    code = main(["depthssd_node", "--ros-args", "-r", f"__node:=depthssd_{kind}",
                 "--params-file", str(yaml_path), "-p", f"model_path:={path}"])
    out = capfd.readouterr()
    text = out.out + out.err
    assert code == 1, text
    lines = [line for line in text.splitlines() if "depthssd_" in line]
    assert len(lines) == 1, text
    assert "cannot start" in lines[0] and str(path) in lines[0]
    assert "Traceback" not in text
    assert ("not found" in lines[0]) == (kind == "missing")


def test_empty_model_path_means_the_shipped_model(tmp_path: Path):
    from depthssd_ros.params import DEFAULT_MODEL_FILE, resolve_model_path, shipped_model_path

    shipped = shipped_model_path()
    assert shipped.name == DEFAULT_MODEL_FILE and shipped.parent.name == "models"
    assert resolve_model_path("") == shipped
    assert resolve_model_path(str(tmp_path / "m.onnx")) == tmp_path / "m.onnx"
