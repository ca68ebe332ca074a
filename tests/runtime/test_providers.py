"""GPU providers without a GPU: ``--providers``, provider options, the missing-provider warning,
per-provider stage variants and the per-stage providers of ``/readyz`` (CPU-only onnxruntime)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner

pytest.importorskip("onnx")  # the synthetic test model is written with the onnx helper

import lotus.runtime.config as config_module  # noqa: E402
import lotus.runtime.pipeline as pipeline_module  # noqa: E402
from lotus.core.cli import build_app  # noqa: E402
from lotus.core.errors import ConfigError, ModelLoadError  # noqa: E402
from lotus.core.files import sha256_file  # noqa: E402
from lotus.runtime.api import create_app  # noqa: E402
from lotus.runtime.config import Settings, load_settings  # noqa: E402
from lotus.runtime.models.base import select_variant  # noqa: E402
from lotus.runtime.models.manifest import StageSpec, read_manifest  # noqa: E402
from lotus.runtime.models.two_stage import create_pipeline  # noqa: E402
from lotus.runtime.pipeline import load_models  # noqa: E402
from lotus.runtime.testing import ServerThread, write_quadrant_model  # noqa: E402

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


class _Stop(Exception):
    """Raised by the patched load_settings so ``lotus serve`` never starts a server."""


def _serve(monkeypatch: pytest.MonkeyPatch, *args: str) -> tuple[Any, list[Settings]]:
    seen: list[Settings] = []

    def capture(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
        seen.append(load_settings(path, overrides))
        raise _Stop

    monkeypatch.setattr(config_module, "load_settings", capture)
    return CliRunner().invoke(build_app(), ["serve", *args]), seen


def _with_variants(folder: Path, precisions: tuple[str, ...] = ("fp16", "fp32")) -> Path:
    """Give both stages of the quadrant model ``variants`` (copies of the graph), returns the manifest path."""
    path = folder / "manifest.yaml"
    doc = yaml.safe_load(path.read_text())
    for st in doc["stages"]:
        st["variants"] = {}
        for prec in precisions:
            dst = folder / f"{st['name']}_{prec}.onnx"
            shutil.copy(folder / st["file"], dst)
            st["variants"][prec] = {"file": dst.name, "sha256": sha256_file(dst), "size_bytes": dst.stat().st_size}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = write_quadrant_model(tmp_path / "repo")
    _with_variants(root / "quadrants")
    return root


def _models_cfg(repo: Path, **models: Any) -> Any:
    return load_settings(None, {"models": {"repository": str(repo), "load": [{"name": "quadrants"}],
                                           "threads": 1, **models}}).models  # fmt: skip


# --- --providers --------------------------------------------------------------------------------
def test_providers_option_takes_short_and_full_names(monkeypatch: pytest.MonkeyPatch) -> None:
    res, seen = _serve(monkeypatch, "--providers", "tensorrt, CUDAExecutionProvider,cpu", "--backend", "sim")
    assert isinstance(res.exception, _Stop), res.output
    assert seen[0].models.providers == [TRT, CUDA, CPU]
    res, seen = _serve(monkeypatch, "--providers", "trt,cudaexecutionprovider")
    assert seen[0].models.providers == [TRT, CUDA]


@pytest.mark.parametrize("value", ["tensorrt,gpu", ",", "cuda,nosuch"])
def test_unknown_provider_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    res, seen = _serve(monkeypatch, "--providers", value)
    assert res.exit_code == 2 and not seen
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --providers: "), res.stderr


def test_provider_names_in_config_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(None, {"models": {"providers": ["CUDA", "cpu", "cuda"]}}).models.providers == [CUDA, CPU]
    monkeypatch.setenv("LOTUS_MODELS__PROVIDERS", '["trt", "cpu"]')
    assert load_settings().models.providers == [TRT, CPU]
    monkeypatch.setenv("LOTUS_MODELS__PROVIDERS", '["tpu"]')
    with pytest.raises(ConfigError, match="models.providers.*unknown ONNX Runtime provider 'tpu'"):
        load_settings()


# --- provider options ---------------------------------------------------------------------------
def test_provider_options_from_config(tmp_path: Path) -> None:
    models = load_settings(None, {"models": {
        "tensorrt": {"fp16": True, "int8": True, "engine_cache_dir": str(tmp_path / "trt"), "dla_core": 1,
                     "workspace_mb": 256},
        "cuda": {"device_id": 1},
    }}).models  # fmt: skip
    assert models.provider_options([TRT, CUDA, CPU]) == [
        (TRT, {"device_id": "1", "trt_fp16_enable": "True", "trt_int8_enable": "True",
               "trt_engine_cache_enable": "True", "trt_engine_cache_path": str(tmp_path / "trt"),
               "trt_dla_enable": "True", "trt_dla_core": "1", "trt_max_workspace_size": str(256 * 1024 * 1024)}),
        (CUDA, {"device_id": "1"}),
        (CPU, {}),
    ]  # fmt: skip
    defaults = load_settings().models.provider_options([TRT, CPU])
    assert defaults == [(TRT, {"device_id": "0", "trt_fp16_enable": "True", "trt_int8_enable": "False"}), (CPU, {})]


def test_tensorrt_env_overrides_and_checks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LOTUS_MODELS__TENSORRT__FP16", "false")
    monkeypatch.setenv("LOTUS_MODELS__CUDA__DEVICE_ID", "2")
    models = load_settings(None, {"models": {"trt_cache_dir": str(tmp_path / "old")}}).models  # older key
    assert models.tensorrt.engine_cache_dir == tmp_path / "old"
    assert models.provider_options([TRT])[0][1]["trt_fp16_enable"] == "False"
    assert models.provider_options([CUDA]) == [(CUDA, {"device_id": "2"})]
    with pytest.raises(ConfigError, match="dla_core needs fp16 or int8"):
        load_settings(None, {"models": {"tensorrt": {"dla_core": 0}}})


# --- missing providers --------------------------------------------------------------------------
def test_requested_gpu_provider_missing_is_a_warning(repo: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="lotus.runtime"):
        model = load_models(_models_cfg(repo, providers=["cuda", "cpu"]))["quadrants"]
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and CUDA in r.getMessage()]
    assert len(warned) == 1, caplog.text
    assert "using CPUExecutionProvider instead" in warned[0].getMessage()
    assert "docs/gpu.md" in warned[0].getMessage()
    assert model.provider == CPU


@pytest.mark.parametrize("gpu_visible", [False, True])
def test_default_providers_warn_only_where_a_gpu_is_visible(
    repo: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, gpu_visible: bool
) -> None:
    monkeypatch.setattr(pipeline_module, "_gpu_visible", lambda: gpu_visible)
    with caplog.at_level(logging.INFO, logger="lotus.runtime"):
        load_models(_models_cfg(repo))
    found = [r for r in caplog.records if TRT in r.getMessage() and "not available" in r.getMessage()]
    assert [r.levelno for r in found] == [logging.WARNING if gpu_visible else logging.INFO]


# --- variants -----------------------------------------------------------------------------------
def test_select_variant_by_first_provider(repo: Path) -> None:
    stage = read_manifest(repo / "quadrants" / "manifest.yaml").stage("stage1")
    assert select_variant(stage, CUDA) == "fp16" and select_variant(stage, TRT) == "fp16"
    assert select_variant(stage, CPU) is None and select_variant(stage, "OpenVINOExecutionProvider") is None
    fp32_only = StageSpec.model_validate({**stage.model_dump(), "variants": {"fp32": stage.variants["fp32"]}})
    assert select_variant(fp32_only, TRT) == "fp32"
    assert select_variant(StageSpec.model_validate({**stage.model_dump(), "variants": None}), CUDA) is None


@pytest.mark.filterwarnings("ignore:Specified provider 'CUDAExecutionProvider' is not in available provider names")
def test_cpu_opens_the_stage_file_and_a_gpu_variant_on_cpu_is_reopened(
    repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manifest = read_manifest(repo / "quadrants" / "manifest.yaml")
    pipe = create_pipeline(manifest, [CPU])
    assert pipe.variants == {"stage1": None, "stage2": None}
    assert pipe.stage_info()["stage1"] == {"provider": CPU, "variant": None, "file": "stage1.onnx"}
    with caplog.at_level(logging.WARNING, logger="lotus.runtime"):  # onnxruntime has no CUDA here
        pipe = create_pipeline(manifest, [(CUDA, {"device_id": "0"}), CPU])
    assert pipe.variants == {"stage1": None, "stage2": None} and pipe.provider == CPU
    assert "quadrants stage1 runs on CPUExecutionProvider, not CUDAExecutionProvider" in caplog.text


def test_variant_files_are_verified(repo: Path) -> None:
    folder = repo / "quadrants"
    (folder / "stage2_fp16.onnx").write_bytes(b"not the graph")
    with pytest.raises(ModelLoadError, match="stage2_fp16.onnx is corrupt"):
        read_manifest(folder / "manifest.yaml")
    (folder / "stage2_fp16.onnx").unlink()
    with pytest.raises(ModelLoadError, match="stage2_fp16.onnx is missing"):
        read_manifest(folder / "manifest.yaml")


def test_unknown_variant_precision_is_refused(repo: Path) -> None:
    path = repo / "quadrants" / "manifest.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["stages"][0]["variants"]["bf16"] = doc["stages"][0]["variants"]["fp16"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(ModelLoadError, match="variants.bf16"):
        read_manifest(path, verify=False)


# --- /readyz ------------------------------------------------------------------------------------
def test_readyz_lists_each_stage_provider(repo: Path, tmp_path: Path) -> None:
    settings = load_settings(None, {
        "board": {"backend": "sim", "state_file": str(tmp_path / "state.json")},
        "models": {"repository": str(repo), "load": [{"name": "quadrants"}], "threads": 1, "warmup_frames": 1,
                   "providers": ["tensorrt", "cuda", "cpu"]},
        "governor": {"policy": "performance"},
    })  # fmt: skip
    with ServerThread(create_app(settings)) as url:
        ready = httpx.get(url + "/readyz", timeout=10).json()
    assert ready["provider"] == CPU
    assert ready["stages"] == {
        "quadrants": {
            "stage1": {"provider": CPU, "variant": None, "file": "stage1.onnx"},
            "stage2": {"provider": CPU, "variant": None, "file": "stage2.onnx"},
        }
    }
