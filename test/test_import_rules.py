"""The layers of docs/ARCHITECTURE.md, checked on the code: who may import whom, and no cycles.

The graph is read from the source (an AST walk over every module of the four packages), so an
import inside a function or under ``TYPE_CHECKING`` counts like one at the top: a lazy import
still ties two modules together. An edge goes to the deepest module named (``from a.b import c``
is an edge to ``a.b.c`` when that is a module, else to ``a.b``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("depthssd_core", "depthssd_sim", "depthssd_train", "depthssd_ros")
#: Top-level names of ROS Python packages (client library, messages, tooling).
ROS_MODULES = frozenset({
    "rclpy", "rosidl_runtime_py", "rosidl_parser", "rcl_interfaces", "builtin_interfaces",
    "std_msgs", "std_srvs", "sensor_msgs", "geometry_msgs", "vision_msgs", "diagnostic_msgs",
    "visualization_msgs", "rosgraph_msgs", "launch", "launch_ros", "ament_index_python",
    "message_filters", "tf2_ros", "cv_bridge", "rosbag2_py",
})


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES
            for p in sorted((REPO_ROOT / pkg).rglob("*.py"))}


MODULES = _modules()


def _resolve(name: str) -> str:
    """The deepest module of ours that ``name`` names, or ``name`` itself (third party)."""
    while name and name.split(".")[0] in PACKAGES and name not in MODULES:
        name = name.rpartition(".")[0]
    return name


def _imports(module: str) -> set[str]:
    """Every module ``module`` imports, anywhere in its file."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(_resolve(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                found.add(_resolve(f"{base}.{alias.name}"))
    found.discard(module)
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def _top(name: str) -> str:
    return name.split(".")[0]


def _offenders(package: str, forbidden) -> list[str]:
    return sorted(f"{m} imports {dep}" for m, deps in GRAPH.items() if _top(m) == package
                  for dep in deps if forbidden(dep))


def test_the_walk_sees_lazy_imports():
    """Guard against a walk that misses function-level imports (then every rule is vacuous)."""
    assert "depthssd_core.checkpoint" in GRAPH["depthssd_core.backends.loading"]
    assert {"depthssd_ros.perception_node", "depthssd_sim.render", "depthssd_train.train",
            "depthssd_core.model.network"} <= set(GRAPH)


def test_core_imports_neither_ros_nor_sim_nor_train():
    bad = _offenders("depthssd_core", lambda d: _top(d) in ROS_MODULES
                     or _top(d) in ("depthssd_sim", "depthssd_train", "depthssd_ros"))
    assert not bad, bad


def test_sim_imports_only_core_of_ours():
    bad = _offenders("depthssd_sim", lambda d: _top(d) in ROS_MODULES
                     or _top(d) in ("depthssd_train", "depthssd_ros"))
    assert not bad, bad


def test_train_does_not_import_ros():
    bad = _offenders("depthssd_train", lambda d: _top(d) in ("rclpy", "depthssd_ros"))
    assert not bad, bad


def test_ros_does_not_import_train():
    bad = _offenders("depthssd_ros", lambda d: _top(d) == "depthssd_train")
    assert not bad, bad


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(GRAPH):
        if root in index:
            continue
        work = [(root, iter(sorted(d for d in GRAPH[root] if d in GRAPH)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = counter
                counter += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(d for d in GRAPH[child] if d in GRAPH))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return components


def test_no_import_cycles():
    cycles = _cycles()
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


@pytest.mark.parametrize("graph, want", [
    ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"d"}}, [["a", "b", "c"]]),
])
def test_cycle_finder_on_known_graphs(monkeypatch, graph, want):
    monkeypatch.setattr(f"{__name__}.GRAPH", graph)
    assert _cycles() == want
