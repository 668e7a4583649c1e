"""Extract the TensorRT Python API surface depthssd relies on from the real bindings wheels.

TensorRT cannot be installed on this project's machines (its libraries come from NVIDIA's own
index and need a GPU), but the ``tensorrt-cu12-bindings`` wheels on PyPI hold the real Python
module. This tool unpacks those wheels into a temporary folder (never installing them), links the
module against inert stand-in ``libnvinfer``/``libnvonnxparser``/``libnvinfer_plugin`` libraries
compiled on the spot (they only satisfy the dynamic linker; nothing in them is ever called by the
introspection), imports it in a child process and records, per version:

- the members (with their real integer values) of the enums depthssd and its tests use;
- the members of the classes depthssd and the test stand-in touch, each with its kind (method,
  property, constant) and, for methods, the signatures pybind11 writes into the docstrings.

The result is ``test/core/data/tensorrt_api_surface.json``: facts about NVIDIA's API that
``test/core/test_tensorrt_standin.py`` checks depthssd's TensorRT stand-in (and depthssd's own
list of required names) against. Get the wheels with pip, e.g.::

    pip download --no-deps --only-binary=:all: --python-version 3.11 \\
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \\
        -d /tmp/trt_wheels tensorrt-cu12-bindings==10.3.0
    python tools/tensorrt_api_surface.py /tmp/trt_wheels/*.whl \\
        --out test/core/data/tensorrt_api_surface.json

Needs a C compiler (``cc``) and a Linux x86_64 wheel matching this Python.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: Enums recorded with every member's integer value ("Class.Nested" for nested enums).
ENUMS = ("BuilderFlag", "NetworkDefinitionCreationFlag", "DataType", "TensorIOMode",
         "MemoryPoolType", "ILogger.Severity", "ExecutionContextAllocationStrategy",
         "OnnxParserFlag", "ErrorCode")
#: Classes whose members are recorded.
CLASSES = ("ILogger", "Logger", "Builder", "IBuilderConfig", "INetworkDefinition", "OnnxParser",
           "ParserError", "ITimingCache", "IOptimizationProfile", "ITensor", "ILayer",
           "IHostMemory", "Runtime", "ICudaEngine", "IExecutionContext", "Dims")
#: Members recorded by name and kind only (the network's dozens of ``add_*`` layer factories:
#: depthssd never adds layers, the ONNX parser does).
NAMES_ONLY_PREFIXES = {"INetworkDefinition": "add_"}

# The symbols the bindings import from NVIDIA's libraries (nm -D --undefined-only on the 10.x
# and 11.x wheels); the stand-ins define each as a function returning 0.
_STUB_SOURCE = """
void *createInferBuilder_INTERNAL(void) { return 0; }
void *createInferRefitter_INTERNAL(void) { return 0; }
void *createInferRuntime_INTERNAL(void) { return 0; }
void *createNvOnnxParser_INTERNAL(void) { return 0; }
void *createNvOnnxParserRefitter_INTERNAL(void) { return 0; }
void *getBuilderPluginRegistry(void) { return 0; }
void *getPluginRegistry(void) { return 0; }
int getNvOnnxParserVersion(void) { return 0; }
int initLibNvInferPlugins(void) { return 0; }
"""
_STUB_LIBRARIES = ("libnvinfer", "libnvonnxparser", "libnvinfer_plugin")

# Runs in the child process with the unpacked bindings on sys.path; prints the surface as JSON.
_INTROSPECT = r"""
import json, re, sys
import tensorrt_bindings as trt

ENUMS, CLASSES, NAMES_ONLY = json.loads(sys.argv[1])
PREFIX = re.compile(r"tensorrt_bindings\.tensorrt\.")

def resolve(dotted):
    obj = trt
    for part in dotted.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj

def signatures(name, doc):
    found = []
    for line in (doc or "").splitlines():
        line = re.sub(r"^\d+\.\s+", "", line.strip())
        if line.startswith(name + "(") and "->" in line:
            found.append(PREFIX.sub("tensorrt.", line))
    return found

surface = {"version": trt.__version__, "enums": {}, "classes": {}}
for dotted in ENUMS:
    enum = resolve(dotted)
    if enum is not None:
        surface["enums"][dotted] = {k: int(v) for k, v in enum.__members__.items()}
for cname in CLASSES:
    cls = getattr(trt, cname, None)
    if cls is None:
        continue
    members = {}
    for mname in sorted(dir(cls)):
        if mname.startswith("_") and mname != "__init__":
            continue
        raw = None
        for klass in cls.__mro__:
            if mname in vars(klass):
                raw = vars(klass)[mname]
                break
        if isinstance(raw, property):
            members[mname] = {"kind": "property", "settable": raw.fset is not None}
        elif type(raw).__name__ in ("instancemethod", "builtin_function_or_method",
                                     "wrapper_descriptor", "staticmethod", "function"):
            members[mname] = {"kind": "method"}
            if not (cname in NAMES_ONLY and mname.startswith(NAMES_ONLY[cname])):
                members[mname]["signatures"] = signatures(mname, getattr(cls, mname).__doc__)
        elif isinstance(raw, type):
            members[mname] = {"kind": "class"}
        else:
            value = getattr(cls, mname)
            members[mname] = {"kind": "constant", "value": repr(value)}
    surface["classes"][cname] = members
print(json.dumps(surface))
"""


def _build_stubs(folder: Path, major: str) -> Path:
    """Compile the inert libraries for a TensorRT major version; returns their folder."""
    source = folder / "stub.c"
    source.write_text(_STUB_SOURCE)
    libdir = folder / f"lib{major}"
    libdir.mkdir()
    for lib in _STUB_LIBRARIES:
        soname = f"{lib}.so.{major}"
        subprocess.run(["cc", "-shared", "-fPIC", "-o", str(libdir / soname),
                        f"-Wl,-soname,{soname}", str(source)], check=True)
    return libdir


def extract(wheel: Path, workdir: Path) -> dict:
    """The API surface of one ``tensorrt-cu12-bindings`` wheel."""
    match = re.match(r"tensorrt_cu\d+_bindings-(\d+)\.", wheel.name)
    if not match:
        raise ValueError(f"{wheel.name}: not a tensorrt-cuXX-bindings wheel")
    major = match.group(1)
    unpacked = workdir / wheel.stem
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(unpacked)
    stubs = workdir / (wheel.stem + "-stubs")
    stubs.mkdir()
    libdir = _build_stubs(stubs, major)
    env = dict(os.environ, PYTHONPATH=str(unpacked), LD_LIBRARY_PATH=str(libdir))
    selection = json.dumps([ENUMS, CLASSES, NAMES_ONLY_PREFIXES])
    result = subprocess.run([sys.executable, "-c", _INTROSPECT, selection],
                            env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{wheel.name}: import failed: {result.stderr.strip()[-500:]}")
    return json.loads(result.stdout)


def main(argv: list[str] | None = None) -> int:
    """Entry point: write the surface of every given wheel to ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("wheels", nargs="+", type=Path, help="tensorrt-cu12-bindings wheels")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    surfaces = {}
    with tempfile.TemporaryDirectory() as tmp:
        for wheel in sorted(args.wheels):
            surface = extract(wheel, Path(tmp))
            surfaces[surface["version"]] = {**surface, "wheel": wheel.name}
            print(f"{wheel.name}: {len(surface['enums'])} enums, "
                  f"{len(surface['classes'])} classes", file=sys.stderr)
    versions = sorted(surfaces, key=lambda v: [int(p) for p in re.findall(r"\d+", v)])
    document = {
        "about": ("TensorRT Python API surface read from NVIDIA's tensorrt-cu12-bindings "
                  "wheels by tools/tensorrt_api_surface.py (enum values, class members, "
                  "pybind11 signatures); facts for checking depthssd's test stand-in."),
        "versions": {v: surfaces[v] for v in versions},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
