"""The house's structure: one ``lotus`` namespace, the layering contract, a lean daemon, the CLI root."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("gymnasium", "torch", "stable_baselines3", "matplotlib")


def _run(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT.parent)  # fmt: skip


def test_wheel_installs_only_the_lotus_package(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(ROOT),
         "-w", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("lotus_edge-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert top == {"lotus", next(t for t in top if t.endswith(".dist-info"))}, top
    # the card's folders arrive under lotus/, artifacts included, and the artifact folder holds no code
    for path in ("lotus/core/errors.py", "lotus/envs/core.py", "lotus/governor/shield.py", "lotus/runtime/daemon.py",
                 "lotus/runtime/models/two_stage.py", "lotus/compressed_models/frcnn-lite/manifest.yaml",
                 "lotus/compressed_models/frcnn-lite/stage1.onnx", "lotus/governor/policies/drl.onnx",
                 "lotus/envs/profiles/boards/orin-nano.yaml"):  # fmt: skip
        assert path in names, path
    assert not [n for n in names if n.startswith("lotus/compressed_models/") and n.endswith(".py")]
    assert "lotus/__init__.py" not in names  # lotus is a namespace package


def test_import_contract_holds() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("lint-imports (import-linter, a dev dependency) is not installed")
    proc = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "0 broken" in proc.stdout


def test_core_and_daemon_imports_stay_light() -> None:
    code = (
        "import sys; import lotus.core.errors, lotus.core.schema, lotus.core.files, lotus.core.cli; "
        "core = [m for m in sys.modules if m.split('.')[0] in ('gymnasium', 'torch', 'onnxruntime', 'lotus') "
        "and m != 'lotus' and not m.startswith('lotus.core')]; "
        "import lotus.runtime.daemon, lotus.runtime.api, lotus.runtime.cli, lotus.runtime.hw.sim, "
        "lotus.runtime.models.two_stage, lotus.governor.registry; "
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]; print(core, heavy)"
    )
    proc = _run(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[] []", proc.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _shapes_jpeg() -> bytes:
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", (192, 192), (40, 60, 80))
    ImageDraw.Draw(img).ellipse([20, 20, 80, 80], fill=(230, 200, 40))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.mark.slow
def test_serving_daemon_never_imports_heavy_modules(tmp_path: Path) -> None:
    """``lotus serve`` on the embedded defaults answers a detection; at exit no heavy module was imported."""
    port = _free_port()
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr))\n"
        "from lotus.core.cli import main\n"
        "main(['serve', '--backend', 'sim', '--port', sys.argv[1], '--state-file', sys.argv[2]])\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOTUS_")}
    proc = subprocess.Popen([sys.executable, "-c", code, str(port), str(tmp_path / "state.json")], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if urllib.request.urlopen(url + "/readyz", timeout=1).status == 200:
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "daemon never became ready"
                time.sleep(0.2)
        req = urllib.request.Request(url + "/v1/detect?model=frcnn-lite", data=_shapes_jpeg(),
                                     headers={"Content-Type": "image/jpeg"})  # fmt: skip
        with urllib.request.urlopen(req, timeout=30) as resp:
            assert resp.status == 200
            assert b'"detections"' in resp.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert "HEAVY []" in err, err[-3000:]


def test_missing_extra_is_one_line_with_the_install_hint() -> None:
    code = (
        "import sys\n"
        "for name in ('torch', 'stable_baselines3', 'gymnasium', 'matplotlib'):\n"
        "    sys.modules[name] = None  # as if the train extra were not installed\n"
        "from lotus.core.cli import main\n"
        "main(['train', '--steps', '1000', '--out', sys.argv[1]])\n"
    )
    proc = _run(code, "/nonexistent/never-written")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: lotus train needs the train extra: pip install 'lotus-edge[train]'")
    assert "Traceback" not in proc.stderr


def test_version_and_every_contributed_command() -> None:
    proc = _run("from lotus.core.cli import main; main(['--version'])")
    assert proc.returncode == 0 and proc.stdout.startswith("lotus "), proc.stderr
    from lotus.core.cli import build_app

    app = build_app()
    commands = {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}
    assert {"serve", "check-config", "restore-clocks", "boards", "bench", "sim", "train", "eval", "compress",
            "detectors"} <= commands  # fmt: skip
    bench = next(g.typer_instance for g in app.registered_groups if g.name == "bench")
    assert bench is not None
    assert {c.name for c in bench.registered_commands} == {"env", "serve", "fixed-clocks"}


def test_runtime_package_holds_no_training_or_compression_commands() -> None:
    import lotus.runtime.cli as runtime_cli
    from lotus.core.cli import build_app

    app = build_app([runtime_cli.register])
    names = {c.name for c in app.registered_commands}
    assert not names & {"train", "eval", "sim", "compress"}
