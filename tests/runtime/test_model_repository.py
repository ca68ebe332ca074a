"""The daemon's model repository: ``models.repository`` first, the shipped models as read-only fallback.

Set by config key, ``LOTUS_MODELS__REPOSITORY`` or ``lotus serve --model-repository``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("onnx")  # the synthetic test model is written with the onnx helper

from lotus.core.errors import ConfigError, ModelLoadError  # noqa: E402
from lotus.runtime.config import load_settings  # noqa: E402
from lotus.runtime.models.manifest import MODELS_ROOT, ModelRepository  # noqa: E402
from lotus.runtime.pipeline import load_models  # noqa: E402
from lotus.runtime.testing import bright_square_png, write_quadrant_model  # noqa: E402

HAS_OCR = importlib.util.find_spec("rapidocr_onnxruntime") is not None


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``quadrants``, plus a synthetic model named ``frcnn-lite`` that shadows the shipped one."""
    root = tmp_path_factory.mktemp("models")
    write_quadrant_model(root)
    write_quadrant_model(root, name="frcnn-lite")
    return root


def test_repository_first_then_shipped(repo: Path) -> None:
    r = ModelRepository(repo)
    assert r.roots == [repo, MODELS_ROOT]
    assert r.find("quadrants") == repo / "quadrants" / "manifest.yaml"
    assert r.find("frcnn-lite") == repo / "frcnn-lite" / "manifest.yaml"  # yours shadows the shipped one
    assert r.load("frcnn-lite").version == "0.0.1-test"
    assert r.is_shipped(r.find("ppocr-v4")) and not r.is_shipped(r.find("quadrants"))
    assert {"quadrants", "frcnn-lite", "ppocr-v4"} <= set(r.models())
    assert ModelRepository().find("frcnn-lite") == MODELS_ROOT / "frcnn-lite" / "manifest.yaml"
    assert ModelRepository(MODELS_ROOT).roots == [MODELS_ROOT]


def test_unknown_name_says_where_it_looked(repo: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"unknown model 'nope': not in models.repository .* nor the shipped"):
        ModelRepository(repo).find("nope")
    with pytest.raises(ModelLoadError, match=r"ppocr-v4.*\(known: frcnn-lite, quadrants\)"):
        ModelRepository(repo, shipped=None).find("ppocr-v4")


def test_load_models_precedence_and_fallback(repo: Path, tmp_path: Path) -> None:
    load = [{"name": "quadrants"}, {"name": "frcnn-lite"}]
    cfg = load_settings(None, {"models": {"repository": str(repo), "load": load, "threads": 1}}).models
    models = load_models(cfg)
    assert models["frcnn-lite"].version == "0.0.1-test" and not models["frcnn-lite"].shipped
    assert models["frcnn-lite"].path == repo / "frcnn-lite" / "manifest.yaml"
    # a repository without frcnn-lite: the shipped model is the fallback
    only = write_quadrant_model(tmp_path / "only")
    models = load_models(load_settings(None, {"models": {"repository": str(only), "load": load, "threads": 1}}).models)
    assert models["quadrants"].path == only / "quadrants" / "manifest.yaml" and not models["quadrants"].shipped
    assert models["frcnn-lite"].shipped and models["frcnn-lite"].version == "1.0.0"
    assert models["frcnn-lite"].path == MODELS_ROOT / "frcnn-lite" / "manifest.yaml"
    # no fallback: frcnn-lite is unknown
    off = {"repository": str(only), "shipped_models": False, "load": load, "threads": 1}
    with pytest.raises(ModelLoadError, match="unknown model 'frcnn-lite'"):
        load_models(load_settings(None, {"models": off}).models)


def test_repository_must_be_a_directory(tmp_path: Path) -> None:
    cfg = load_settings(None, {"models": {"repository": str(tmp_path / "missing")}}).models
    with pytest.raises(ConfigError, match="models.repository .*missing is not a directory"):
        load_models(cfg)


@pytest.mark.parametrize(
    ("models", "words"),
    [
        ({"shipped_models": False}, "nothing to load"),
        ({"trt_cache_dir": str(MODELS_ROOT / "trt")}, "inside the read-only shipped models"),
        ({"load": [{"name": "../etc"}]}, "models.load.0.name"),
    ],
)
def test_bad_repository_settings(models: dict[str, Any], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        load_settings(None, {"models": models})


def test_default_is_shipped_only() -> None:
    models = load_settings().models
    assert models.repository is None and models.shipped_models
    assert models.model_repository().roots == [MODELS_ROOT]


def test_env_var_sets_repository(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"models": {"load": [{"name": "quadrants"}], "threads": 1}}))
    monkeypatch.setenv("LOTUS_MODELS__REPOSITORY", str(repo))
    settings = load_settings(path)
    assert settings.models.repository == repo and [m.name for m in settings.models.load] == ["quadrants"]
    monkeypatch.setenv("LOTUS_MODELS__SHIPPED_MODELS", "false")
    assert load_settings(path).models.model_repository().roots == [repo]


def test_serve_flags_set_repository(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import lotus.runtime.config as config
    from lotus.core.cli import build_app

    seen: list[dict[str, Any]] = []

    def capture(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Any:
        seen.append(overrides or {})
        raise ConfigError("stop here")

    monkeypatch.setattr(config, "load_settings", capture)
    runner = CliRunner()
    res = runner.invoke(build_app(), ["serve", "--model-repository", str(repo), "--no-shipped-models", "-m", "x"])
    assert isinstance(res.exception, ConfigError), res.output
    assert seen[-1]["models"] == {"repository": repo, "shipped_models": False, "load": [{"name": "x"}]}
    runner.invoke(build_app(), ["serve", "--repository", str(repo)])  # the older spelling still works
    assert seen[-1]["models"] == {"repository": repo}


def test_lotus_serve_with_model_repository(repo: Path, tmp_path: Path) -> None:
    """The real command: ``lotus serve --model-repository DIR`` serves DIR's frcnn-lite, not the shipped one."""
    from lotus.runtime.cli.serve import _free_port

    shipped_before, repo_before = _digests(MODELS_ROOT), _digests(repo)
    port = _free_port("127.0.0.1")
    url = f"http://127.0.0.1:{port}"
    fallback = ["-m", "ppocr-v4"] if HAS_OCR else []  # a shipped model next to the repository's
    cmd = [sys.executable, "-m", "lotus.runtime.cli", "serve", "--model-repository", str(repo), "-m", "frcnn-lite",
           *fallback, "--backend", "sim", "--port", str(port), "--threads", "1",
           "--state-file", str(tmp_path / "state.json")]  # fmt: skip
    env = {**os.environ, "LOTUS_MODELS__WARMUP_FRAMES": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else "server exited"
            assert time.monotonic() < deadline, "server not ready in 90 s"
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert httpx.get(url + "/v2/models/frcnn-lite").json()["versions"] == ["0.0.1-test"]
        if HAS_OCR:
            assert httpx.get(url + "/v2/models/ppocr-v4").json()["versions"] == ["4.0.0"]  # shipped fallback
        r = httpx.post(url + "/v1/detect?model=frcnn-lite", content=bright_square_png(3),
                       headers={"Content-Type": "image/png"}, timeout=30)  # fmt: skip
        assert r.status_code == 200 and r.json()["detections"][0]["label"] == "bright"
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == 0, out[-2000:]
    assert _digests(MODELS_ROOT) == shipped_before and _digests(repo) == repo_before  # model folders only read
