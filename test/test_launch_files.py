"""Static checks of the launch files, which cannot be imported here (no ``launch`` package).

The files are parsed with ``ast``: their declared arguments must be exactly the documented ones,
they must only describe (no processes or eval; one environment variable, the Fast DDS profile,
which the user's own value overrides), node parameter values must come from ``config/*.yaml``
(a launch file may only pass launch configurations through), the node's parameter file must
reach it as a ROS argument (so that a missing file is an error, not launch_ros's warning), rviz2
must start only when asked for and installed, and every file, executable and topic they name
must exist or agree with the other files. The pinned pytest must be able to load launch_testing's
plugin.
The behaviour of the launched nodes is covered by the node tests under test/ros/ and, where
``launch_testing`` exists, by test/launch_testing/.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"

#: The arguments each launch file documents (the issue's list).
EXPECTED_ARGUMENTS = {
    "depthssd.launch.py": {"params_file", "role_name", "camera", "use_sim_time"},
    "carla_demo.launch.py": {"source", "role_name", "camera", "params_file", "rviz", "planner",
                             "use_sim_time"},
}
#: Our executables (console scripts) that launch files may start.
OUR_EXECUTABLES = {"depthssd_node", "synthetic_camera", "planner_example"}
#: Parameter file each of our executables reads.
PARAMS_FILE_OF = {"depthssd_node": "depthssd.yaml", "synthetic_camera": "synthetic_camera.yaml",
                  "planner_example": "planner.yaml"}
FORBIDDEN_MODULES = {"os", "sys", "subprocess", "shutil", "multiprocessing", "socket"}
FORBIDDEN_CALLS = {"eval", "exec", "open", "__import__", "compile", "ExecuteProcess",
                   "AppendEnvironmentVariable", "UnsetEnvironmentVariable", "OpaqueFunction"}
FASTDDS_PROFILE = "fastdds_large_images.xml"


def _call_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _call_name(n) == name]


def _kwarg(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _string_constants(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant)
            and isinstance(n.value, str)]


def _parse(name: str) -> ast.Module:
    return ast.parse((LAUNCH / name).read_text(), filename=name)


def _yaml_params(file_name: str) -> dict:
    data = yaml.safe_load((ROOT / "config" / file_name).read_text())
    params: dict = {}
    for section in data.values():
        params.update(section.get("ros__parameters", {}))
    return params


def _declared_args(tree: ast.Module) -> dict[str, ast.Call]:
    out = {}
    for call in _calls(tree, "DeclareLaunchArgument"):
        first = call.args[0]
        assert isinstance(first, ast.Constant), "argument names must be literal strings"
        out[first.value] = call
    return out


@pytest.mark.parametrize("name", sorted(EXPECTED_ARGUMENTS))
def test_declares_exactly_the_documented_arguments(name):
    tree = _parse(name)
    assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description"
               for n in tree.body)
    declared = _declared_args(tree)
    assert set(declared) == EXPECTED_ARGUMENTS[name]
    # The module docstring lists each argument as "- ``name``: ...".
    documented = set(re.findall(r"^- ``(\w+)``:", ast.get_docstring(tree), flags=re.M))
    assert documented == EXPECTED_ARGUMENTS[name]
    for arg, call in declared.items():
        assert _kwarg(call, "description") is not None, f"{arg} has no description"
        choices = _kwarg(call, "choices")
        default = _kwarg(call, "default_value")
        if choices is not None and isinstance(default, ast.Constant):
            assert default.value in ast.literal_eval(choices), arg


@pytest.mark.parametrize("name", sorted(EXPECTED_ARGUMENTS))
def test_launch_file_only_describes(name):
    tree = _parse(name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            names = {(node.module or "").split(".")[0]}
        else:
            names = set()
        assert not names & FORBIDDEN_MODULES, f"{name} imports {names & FORBIDDEN_MODULES}"
        if isinstance(node, ast.Call):
            assert _call_name(node) not in FORBIDDEN_CALLS, f"{name} calls {_call_name(node)}"
        if isinstance(node, ast.Attribute):
            assert node.attr not in {"environ", "getenv", "system", "popen"}, node.attr


@pytest.mark.parametrize("name", sorted(EXPECTED_ARGUMENTS))
def test_parameters_come_from_yaml_files(name):
    """Parameter values in a launch file are only substitutions of launch arguments."""
    tree = _parse(name)
    nodes = _calls(tree, "Node")
    assert nodes
    # Names bound to a dict (e.g. ``sim_time = {...}``) are checked like inline dicts.
    bound = {t.id: n.value for n in ast.walk(tree) if isinstance(n, ast.Assign)
             for t in n.targets if isinstance(t, ast.Name)}
    checked = 0
    for call in nodes:
        executable = _kwarg(call, "executable").value
        params = _kwarg(call, "parameters")
        if params is None:
            continue
        assert isinstance(params, ast.List)
        for item in params.elts:
            if isinstance(item, ast.Name):
                item = bound.get(item.id, item)
            if not isinstance(item, ast.Dict):
                continue
            checked += 1
            for key, value in zip(item.keys, item.values, strict=True):
                key = key.value
                # A literal here would be a second default beside the YAML file.
                assert not isinstance(value, ast.Constant), f"{executable}: literal {key}"
                if key == "use_sim_time":
                    continue
                assert executable in PARAMS_FILE_OF, f"{executable} sets {key}"
                yaml_params = _yaml_params(PARAMS_FILE_OF[executable])
                assert key in yaml_params, f"{key} is not a parameter of {executable}"
    assert checked >= 1


def test_argument_defaults_agree_with_yaml():
    """Where a launch argument feeds a node parameter, its default equals the YAML value."""
    tree = _parse("carla_demo.launch.py")
    declared = _declared_args(tree)
    synth = _yaml_params("synthetic_camera.yaml")
    for arg in ("role_name", "camera"):
        assert ast.literal_eval(_kwarg(declared[arg], "default_value")) == synth[arg]
    for name in EXPECTED_ARGUMENTS:
        role = _declared_args(_parse(name))["role_name"]
        assert ast.literal_eval(_kwarg(role, "default_value")) == synth["role_name"]


def test_synthetic_camera_matches_the_perception_nodes_camera_prior():
    """With source:=synthetic the node's flat-road prior must describe the synthetic camera."""
    synth = _yaml_params("synthetic_camera.yaml")
    perception = _yaml_params("depthssd.yaml")
    for key in ("camera_height_m", "camera_pitch_deg"):
        assert synth[key] == perception[key], key


def test_referenced_files_executables_and_topics_exist():
    demo = _parse("carla_demo.launch.py")
    perception = _parse("depthssd.launch.py")
    for tree in (demo, perception):
        for call in _calls(tree, "PathJoinSubstitution"):
            parts = [e.value for e in call.args[0].elts if isinstance(e, ast.Constant)]
            if parts and parts[0] in ("config", "launch"):
                assert (ROOT.joinpath(*parts)).is_file(), f"{'/'.join(parts)} missing"
        for call in _calls(tree, "Node"):
            package = _kwarg(call, "package")
            executable = _kwarg(call, "executable").value
            if isinstance(package, ast.Name) or package.value == "depthssd_ros":
                assert executable in OUR_EXECUTABLES
    # The planner listens where the perception node publishes.
    (node,) = [c for c in _calls(perception, "Node")
               if _kwarg(c, "executable").value == "depthssd_node"]
    node_name = _kwarg(node, "name").value
    assigned = {t.id: n.value.value for n in demo.body if isinstance(n, ast.Assign)
                for t in n.targets if isinstance(n.value, ast.Constant)}
    assert assigned["PERCEPTION_NODE"] == node_name
    remaps = ast.unparse(_kwarg(node, "remappings"))
    assert "('image', [*camera_topic, '/image'])" in remaps
    assert "('camera_info', [*camera_topic, '/camera_info'])" in remaps
    assert "camera_topic = ['/carla/', role_name, '/', camera]" in ast.unparse(perception)


def test_rviz_config_shows_the_node_outputs_in_the_camera_frame():
    rviz = yaml.safe_load((ROOT / "config" / "depthssd.rviz").read_text())
    manager = rviz["Visualization Manager"]
    args = _declared_args(_parse("carla_demo.launch.py"))
    camera_frame = "/".join(ast.literal_eval(_kwarg(args[a], "default_value"))
                            for a in ("role_name", "camera"))
    assert manager["Global Options"]["Fixed Frame"] == camera_frame
    topics = {d["Class"]: d.get("Topic", {}).get("Value") for d in manager["Displays"]}
    assert topics["rviz_default_plugins/MarkerArray"] == "/depthssd_node/markers"
    images = [d["Topic"]["Value"] for d in manager["Displays"]
              if d["Class"] == "rviz_default_plugins/Image"]
    assert sorted(images) == ["/depthssd_node/depth", "/depthssd_node/overlay"]
    assert "rviz_default_plugins/TF" in topics


def test_console_scripts_declared():
    """setup.py must declare every executable the launch files start."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    scripts = [s for s in _string_constants(tree) if re.match(r"^\w+\s*=\s*[\w.]+:\w+$", s)]
    if not scripts:
        pytest.skip("setup.py declares no console scripts yet")
    declared = {s.split("=")[0].strip() for s in scripts}
    assert declared >= OUR_EXECUTABLES


def _node(tree: ast.Module, executable: str) -> ast.Call:
    (node,) = [c for c in _calls(tree, "Node") if _kwarg(c, "executable").value == executable]
    return node


@pytest.mark.parametrize("name", sorted(EXPECTED_ARGUMENTS))
def test_the_only_environment_change_is_the_fastdds_profile_before_any_node(name):
    tree = _parse(name)
    (call,) = _calls(tree, "SetEnvironmentVariable")
    assigned = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                for t in n.targets if isinstance(n.value, ast.Constant)}
    variable = assigned[call.args[0].id]
    assert variable == "FASTDDS_DEFAULT_PROFILES_FILE"
    # Its value: the variable itself when the user set it, else the package's profile.
    (value,) = [c for c in _calls(call, "EnvironmentVariable")]
    assert value.args[0].id == call.args[0].id
    default = ast.unparse(_kwarg(value, "default_value"))
    assert default == f"PathJoinSubstitution([share, 'config', '{FASTDDS_PROFILE}'])"
    assert (ROOT / "config" / FASTDDS_PROFILE).is_file()
    # Set before the first node starts (actions run in the order listed).
    actions = _calls(tree, "LaunchDescription")[0].args[0].elts
    first_node = min(i for i, a in enumerate(actions) if isinstance(a, ast.Call)
                     and _call_name(a) in ("Node", "IncludeLaunchDescription"))
    assert actions.index(call) < first_node


def test_params_file_reaches_the_node_as_a_ros_argument_and_its_exit_ends_the_launch():
    node = _node(_parse("depthssd.launch.py"), "depthssd_node")
    assert ast.unparse(_kwarg(node, "ros_arguments")) == "['--params-file', params_file]"
    # Not also as a `parameters` entry (launch_ros would skip a missing file with a warning).
    assert "params_file" not in ast.unparse(_kwarg(node, "parameters"))
    assert ast.unparse(_kwarg(node, "on_exit")).startswith("Shutdown(")


def test_rviz_only_when_asked_and_installed():
    tree = _parse("carla_demo.launch.py")
    declared = _declared_args(tree)
    assert ast.literal_eval(_kwarg(declared["rviz"], "default_value")) == "false"
    rviz = _node(tree, "rviz2")
    assert ast.unparse(_kwarg(rviz, "condition")) == "_rviz_asked(installed=True)"
    (missing,) = [c for c in _calls(tree, "LogInfo")
                  if ast.unparse(_kwarg(c, "condition")) == "_rviz_asked(installed=False)"]
    assert "not installed" in " ".join(_string_constants(missing))
    # The check asks the ament index, as launch_ros would when starting the node.
    (predicate,) = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)
                    and n.name == "_installed"]
    assert [_call_name(c) for c in _calls(predicate, "get_package_prefix")]


#: launch_testing's pytest hook implementations and their arguments (the same in its humble,
#: jazzy and rolling branches, launch_testing/pytest/hooks.py).
LAUNCH_TESTING_HOOKIMPLS = {
    "pytest_pycollect_makemodule": {"path", "parent"},
    "pytest_addhooks": {"pluginmanager"},
    "pytest_addoption": {"parser"},
    "pytest_configure": {"config"},
}


def test_the_pinned_pytest_can_load_launch_testings_plugin():
    """pytest refuses a plugin whose hook takes an argument its hookspec lacks: pytest 9
    dropped ``path`` and with it every pytest run where launch_testing is installed."""
    import inspect

    from _pytest import hookspec

    for hook, arguments in LAUNCH_TESTING_HOOKIMPLS.items():
        declared = set(inspect.signature(getattr(hookspec, hook)).parameters)
        assert arguments <= declared, (f"pytest {pytest.__version__} has no {arguments - declared}"
                                       f" in {hook}: launch_testing's plugin would not load")
