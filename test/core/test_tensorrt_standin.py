"""The TensorRT stand-in (``tensorrt_standin.py``) and depthssd's TensorRT names, checked
against the real API surface of TensorRT 10.3.0, 10.16.1.11, 11.0.0.114 and 11.4.0.106.

TensorRT cannot be installed or run here. The surface in ``data/tensorrt_api_surface.json`` was
read from NVIDIA's real ``tensorrt-cu12-bindings`` wheels by ``tools/tensorrt_api_surface.py``
(enum values, class members, pybind11 signatures); these tests check that the stand-in the
engine and backend tests run against has nothing the real module lacks (same kinds, parameter
names and enum values, per version), and that every name depthssd's engine code uses exists in
every recorded release.
"""

from __future__ import annotations

import inspect
import re

import pytest
import tensorrt_standin
from tensorrt_standin import SURFACE, VERSIONS, make_tensorrt

from depthssd_core import engine


def _real_has(version: str, dotted: str) -> bool:
    surface = SURFACE[version]
    head, _, member = dotted.partition(".")
    if not member:
        return head in surface["classes"] or head in surface["enums"]
    if head in surface["enums"]:
        return member in surface["enums"][head]
    return member in surface["classes"].get(head, {})


def test_the_recorded_surface_holds_the_facts_the_code_relies_on():
    """Spot checks of the JSON against what NVIDIA documents, so a regenerated file that lost
    something would fail here."""
    assert set(VERSIONS) == {"10.3.0", "10.16.1.11", "11.0.0.114", "11.4.0.106"}
    for version in VERSIONS:
        enums = SURFACE[version]["enums"]
        assert enums["BuilderFlag"]["REFIT"] == 4  # the old stand-in's "4" was REFIT
        assert enums["BuilderFlag"]["TF32"] == 6
        assert enums["DataType"]["FLOAT"] == 0 and enums["DataType"]["HALF"] == 1
        assert enums["TensorIOMode"] == {"NONE": 0, "INPUT": 1, "OUTPUT": 2}
        ilayer = SURFACE[version]["classes"]["ILayer"]
        if version.startswith("10."):
            assert enums["BuilderFlag"]["FP16"] == 0
            assert enums["BuilderFlag"]["OBEY_PRECISION_CONSTRAINTS"] == 9
            assert enums["NetworkDefinitionCreationFlag"]["STRONGLY_TYPED"] == 1
            assert {"precision", "precision_is_set", "set_output_type"} <= set(ilayer)
        else:
            # TensorRT 11 removed weak typing: no FP16 flag, no precision constraints.
            assert "FP16" not in enums["BuilderFlag"]
            assert "OBEY_PRECISION_CONSTRAINTS" not in enums["BuilderFlag"]
            assert enums["NetworkDefinitionCreationFlag"]["STRONGLY_TYPED"] == 0
            assert not {"precision", "precision_is_set", "set_output_type"} & set(ilayer)
        set_timing = SURFACE[version]["classes"]["IBuilderConfig"]["set_timing_cache"]
        assert all(s.endswith("-> bool") for s in set_timing["signatures"])


@pytest.mark.parametrize("version", VERSIONS)
def test_depthssd_uses_only_names_the_real_bindings_have(version):
    missing = [n for n in engine.REQUIRED_API if not _real_has(version, n)]
    assert missing == []
    weak_missing = [n for n in engine.WEAK_TYPING_API if not _real_has(version, n)]
    if version.startswith("10."):
        assert weak_missing == []
    else:
        assert {"BuilderFlag.FP16", "ILayer.precision", "ILayer.set_output_type"} <= set(
            weak_missing)


def _parameters(signature: str) -> list[tuple[str, bool]]:
    """(name, has default) of the parameters after ``self`` in a pybind11 signature line."""
    inner = signature[signature.index("(") + 1:signature.rindex(") ->")]
    params, depth, current = [], 0, ""
    for char in inner:
        depth += char in "[(<"
        depth -= char in "])>"
        if char == "," and depth == 0:
            params.append(current)
            current = ""
        else:
            current += char
    params.append(current)
    names = [(p.split(":")[0].strip(), "=" in p) for p in params if p.strip()]
    return [n for n in names if n[0] != "self"]


def _own_members(cls: type) -> dict[str, object]:
    """Members a stand-in class defines itself (not those of ``object`` or ``tuple``)."""
    members: dict[str, object] = {}
    for klass in reversed(cls.__mro__):
        if klass.__module__ == tensorrt_standin.__name__:
            members.update(vars(klass))
    return {k: v for k, v in members.items() if not k.startswith("_") or k == "__init__"}


@pytest.mark.parametrize("version", VERSIONS)
def test_the_standin_has_nothing_the_real_module_lacks(version):
    trt = make_tensorrt(version)
    surface = SURFACE[version]
    public = {k for k in vars(trt) if not k.startswith("_")}
    assert public <= set(surface["classes"]) | set(surface["enums"])
    for name, members in surface["enums"].items():
        head, _, nested = name.partition(".")
        standin_enum = getattr(getattr(trt, head), nested) if nested else getattr(trt, head)
        assert {k: int(v) for k, v in standin_enum.__members__.items()} == members, name
    problems = []
    for cname in sorted(public & set(surface["classes"])):
        real = surface["classes"][cname]
        for mname, value in _own_members(getattr(trt, cname)).items():
            where = f"{cname}.{mname}"
            if mname not in real:
                problems.append(f"{where} does not exist in TensorRT {version}")
                continue
            kind = real[mname]["kind"]
            if isinstance(value, property):
                if kind != "property" or (value.fset and not real[mname]["settable"]):
                    problems.append(f"{where}: property vs real {real[mname]}")
            elif inspect.isfunction(value):
                signatures = real[mname].get("signatures", [])
                if kind != "method":
                    problems.append(f"{where}: method vs real {kind}")
                elif signatures:
                    params = [(p.name, p.default is not p.empty)
                              for p in list(inspect.signature(value).parameters.values())[1:]]
                    if params not in [_parameters(s) for s in signatures]:
                        problems.append(f"{where}{params} vs real {signatures}")
            elif isinstance(value, type):
                if kind != "class":
                    problems.append(f"{where}: class vs real {kind}")
            elif kind != "constant" or repr(value) != real[mname]["value"]:
                problems.append(f"{where} = {value!r} vs real {real[mname]}")
    assert problems == []
    # And the stand-in implements everything depthssd calls.
    assert engine.missing_api(trt, engine.REQUIRED_API) == []


def test_signature_parser_reads_pybind_lines():
    line = ("create_execution_context(self: tensorrt.ICudaEngine, strategy: "
            "tensorrt.ExecutionContextAllocationStrategy = "
            "<ExecutionContextAllocationStrategy.STATIC: 0>) -> tensorrt.IExecutionContext")
    assert _parameters(line) == [("strategy", True)]
    assert _parameters("set_shape(self: tensorrt.IOptimizationProfile, input: str, min: "
                       "tensorrt.Dims, opt: tensorrt.Dims, max: tensorrt.Dims) -> None") == [
        ("input", False), ("min", False), ("opt", False), ("max", False)]
    assert _parameters("f(self: X, shape: collections.abc.Sequence[typing.SupportsInt]) -> "
                       "None") == [("shape", False)]


@pytest.mark.parametrize("version", VERSIONS)
def test_standin_behaviour_follows_the_documented_one(version, tmp_path):
    """The readings the old stand-in got wrong: -1 dims, unset precision, failing parse and
    build, the default TF32 flag."""
    trt = make_tensorrt(version)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a graph")
    assert parser.parse_from_file(str(bad)) is False and parser.num_errors == 1
    assert "MODEL_DESERIALIZE_FAILED" in str(parser.get_error(0))
    config = builder.create_builder_config()
    assert config.get_flag(trt.BuilderFlag.TF32)
    assert builder.build_serialized_network(network, config) is None  # nothing parsed
    assert trt._standin.errors()
    if re.match(r"10\.", version):
        layer_cls = trt.ILayer
        layer = layer_cls("l", [], [trt.ITensor("x", [1, -1], trt.DataType.HALF)], network)
        assert layer.precision == trt.DataType.FLOAT and not layer.precision_is_set
        assert layer.get_output(0).shape == (1, -1)
    else:
        assert not hasattr(trt.ILayer, "precision")
