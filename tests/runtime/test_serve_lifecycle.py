"""`lotus serve` as a subprocess on a fake JetPack 6 tree: clocks set, restored on SIGTERM and after kill -9."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

pytest.importorskip("onnx")

from lotus.runtime.cli.serve import _free_port  # noqa: E402
from lotus.runtime.hw.fake_sysfs import GPU_DEVFREQ, write_fake_sysfs  # noqa: E402
from lotus.runtime.testing import bright_square_png, write_quadrant_model  # noqa: E402

CPU = "sys/devices/system/cpu/cpufreq/policy0"
GPU = GPU_DEVFREQ["jetpack6"]
POLICY = "fixed:1190400,510000000"


def _files(root: Path) -> dict[str, str]:
    names = [f"{CPU}/scaling_governor", f"{CPU}/scaling_min_freq", f"{CPU}/scaling_max_freq",
             f"{GPU}/governor", f"{GPU}/min_freq", f"{GPU}/max_freq"]  # fmt: skip
    return {n: (root / n).read_text().strip() for n in names}


@pytest.fixture
def setup(tmp_path: Path) -> dict:
    root = write_fake_sysfs(tmp_path / "jp6", "jetpack6")
    repo = write_quadrant_model(tmp_path / "repo")
    port = _free_port("127.0.0.1")
    cfg = {
        "server": {"port": port, "log_level": "info"},
        "board": {"backend": "jetson", "sysfs_root": str(root), "state_file": str(tmp_path / "state" / "clocks.json")},
        "models": {"repository": str(repo), "load": [{"name": "quadrants"}], "threads": 1, "warmup_frames": 1},
        "governor": {"policy": POLICY, "mode": "active"},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    state = tmp_path / "state" / "clocks.json"
    return {"root": root, "config": path, "url": f"http://127.0.0.1:{port}", "state": state, "tmp": tmp_path}


def _start(setup: dict, env: dict | None = None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "lotus.runtime.cli", "serve", "--config", str(setup["config"])]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(proc.stdout.read().decode() if proc.stdout else "server exited")
        try:
            if httpx.get(setup["url"] + "/readyz", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("server not ready in 60 s")


def _check_governed(setup: dict) -> None:
    root = setup["root"]
    r = httpx.post(setup["url"] + "/v1/detect", content=bright_square_png(0), headers={"Content-Type": "image/png"})
    assert r.status_code == 200, r.text
    gov = httpx.get(setup["url"] + "/v1/governor").json()
    assert gov["last"]["cpu_khz"] == 1190400 and gov["last"]["gpu_hz"] == 510000000
    assert (root / CPU / "scaling_governor").read_text().strip() == "userspace"
    assert (root / CPU / "scaling_setspeed").read_text().strip() == "1190400"
    assert (root / GPU / "governor").read_text().strip() == "userspace"
    assert (root / GPU / "userspace/set_freq").read_text().strip() == "510000000"
    assert setup["state"].exists()


def test_sigterm_restores_original_clocks_and_notifies(setup: dict) -> None:
    original = _files(setup["root"])
    sock_path = setup["tmp"] / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(0.2)
    try:
        proc = _start(setup, {"NOTIFY_SOCKET": str(sock_path)})
        try:
            _check_governed(setup)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out.decode()
        assert "http://127.0.0.1" in out.decode() and "curl" in out.decode()
        assert _files(setup["root"]) == original
        assert not setup["state"].exists()
        messages = []
        while True:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                break
    finally:
        sock.close()
    text = "\n".join(messages)
    assert "READY=1" in text and "STATUS=ready" in text and "STOPPING=1" in text


def test_kill9_then_restore_clocks_cli(setup: dict) -> None:
    original = _files(setup["root"])
    proc = _start(setup)
    try:
        _check_governed(setup)
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    assert _files(setup["root"]) != original  # pinned clocks survive the crash
    cmd = [sys.executable, "-c", "from lotus.core.cli import main; main()", "restore-clocks", str(setup["state"]),
           "--sysfs-root", str(setup["root"])]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert _files(setup["root"]) == original


def test_bad_config_is_one_error_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("server:\n  port: 99999\n  colour: blue\n")
    done = subprocess.run([sys.executable, "-m", "lotus.runtime.cli", "serve", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "server.port" in lines[0] and "server.colour: unknown key" in lines[0]


def test_missing_model_fails_start_with_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "lotus.runtime.cli", "serve", "--backend", "sim", "--port", "0", "-m", "no-such-model",
         "--state-file", str(tmp_path / "s.json")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "error: unknown model 'no-such-model'" in done.stderr
