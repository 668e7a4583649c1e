"""``depthssd-carla-capture`` errors, with the real ``carla`` client against no server.

Every error is one line on stderr without a traceback, and nothing is written. A port that
accepts connections but never answers stands in for a hung CARLA server (no real one can run
here) to show that Ctrl-C while connecting ends the process at once.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from depthssd_train.cli.carla_capture import main


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(capsys, *args):
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line(err: str) -> str:
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_no_server_fails_within_the_timeout_with_one_line_and_no_bar(tmp_path, capsys):
    pytest.importorskip("carla")
    port = _closed_port()
    start = time.monotonic()
    code, out, err = _run(capsys, "--host", "127.0.0.1", "--port", str(port), "--timeout", "2",
                          "--out", str(tmp_path / "ds"), "--frames", "3")
    elapsed = time.monotonic() - start
    assert code == 1 and elapsed < 6.0 and out == ""
    # No progress bar is drawn before the error (the bar starts once recording starts).
    assert _one_line(err).startswith(
        f"depthssd-carla-capture: error: no CARLA server answered at 127.0.0.1:{port} within "
        "2 s")
    assert not (tmp_path / "ds").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--host", "no-such-host.invalid"], "cannot resolve the CARLA host 'no-such-host.invalid'"),
    (["--port", "70000"], "port must be a TCP port in 1..65535, got 70000"),
    (["--port", "0"], "port must be a TCP port in 1..65535, got 0"),
    (["--tm-port", "-1"], "tm_port must be a TCP port in 1..65535, got -1"),
    (["--timeout", "0"], "timeout must be a positive number of seconds, got 0.0"),
    (["--timeout", "nan"], "timeout must be a positive number of seconds, got nan"),
    (["--frames", "0"], "frames must be at least 1, got 0"),
    (["--walkers", "-3"], "num_walkers must not be negative, got -3"),
    (["--fov", "180"], "fov must be in (0, 180) degrees, got 180.0"),
    (["--ego-base-types", " , "], "ego_base_types must name at least one base_type"),
])
def test_bad_settings_are_one_line(tmp_path, capsys, args, message):
    pytest.importorskip("carla")
    base = {"--host": "127.0.0.1", "--port": str(_closed_port()), "--timeout": "1",
            "--out": str(tmp_path / "ds"), "--frames": "2"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    code, out, err = _run(capsys, *[x for kv in base.items() for x in kv])
    assert code == 1 and out == ""
    assert message in _one_line(err)
    assert not (tmp_path / "ds").exists()


def test_output_under_a_file_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = _run(capsys, "--port", str(_closed_port()), "--out", str(blocker / "ds"),
                        "--frames", "2")
    assert code == 1 and f"{blocker} is not a folder" in _one_line(err)


def test_output_without_write_permission_is_one_line(tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.access(locked, os.W_OK):  # root: try a folder even root may not write
        locked = Path("/proc/1")
        if not locked.is_dir() or os.access(locked, os.W_OK):
            pytest.skip("no folder here that this user cannot write")
    code, _, err = _run(capsys, "--port", str(_closed_port()), "--out", str(locked / "ds"),
                        "--frames", "2")
    assert code == 1
    assert f"{locked} is not writable (permission denied)" in _one_line(err)


def test_usage_errors_are_one_line_too(tmp_path, capsys):
    code, _, err = _run(capsys, "--port", "abc", "--out", str(tmp_path), "--frames", "1")
    assert code == 2
    assert "argument --port: invalid int value: 'abc'" in _one_line(err)
    code, _, err = _run(capsys, "--frames", "1")
    assert code == 2 and "--out" in _one_line(err)


def test_ctrl_c_while_connecting_ends_the_process_at_once(tmp_path):
    """A port that accepts but never answers stands in for a hung server (the client would wait
    its full 60 s timeout holding the GIL); Ctrl-C ends the process within seconds."""
    pytest.importorskip("carla")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        port = server.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "depthssd_train.cli.carla_capture", "--host", "127.0.0.1",
             "--port", str(port), "--timeout", "60", "--out", str(tmp_path / "ds"),
             "--frames", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            server.settimeout(60)
            conn, _ = server.accept()  # the client is now waiting for an answer
            time.sleep(0.5)
            start = time.monotonic()
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate(timeout=20)
            elapsed = time.monotonic() - start
            conn.close()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == -signal.SIGINT and elapsed < 3.0
    assert b"Traceback" not in err
    assert not (tmp_path / "ds").exists()
