"""Manifest loader: shipped manifests validate; missing/corrupt files and bad YAML raise ModelLoadError."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import yaml

from lotus.core.errors import ModelLoadError
from lotus.envs.workload import WorkloadProfile, load_workload
from lotus.runtime.models.manifest import MODELS_ROOT, ModelManifest, list_models, load_manifest

HAS_OCR = importlib.util.find_spec("rapidocr_onnxruntime") is not None


def test_shipped_models_listed() -> None:
    assert {"frcnn-lite", "ppocr-v4"} <= set(list_models())


def test_frcnn_manifest_loads_and_workload_validates() -> None:
    m = load_manifest("frcnn-lite")
    assert isinstance(m, ModelManifest) and m.kind == "frcnn"
    assert [s.name for s in m.stages] == ["stage1", "stage2"]
    assert all(m.stage_path(s.name).is_file() for s in m.stages)
    w = WorkloadProfile.model_validate(m.workload.model_dump())
    assert w.stage2_per_proposal.cpu_mcycles > 0
    assert load_workload(MODELS_ROOT / "frcnn-lite" / "manifest.yaml") == w
    assert m.metrics.stage2_ms[300] > m.metrics.stage2_ms[10]


@pytest.mark.skipif(not HAS_OCR, reason="rapidocr-onnxruntime not installed (extra 'ocr')")
def test_ppocr_manifest_points_into_package() -> None:
    m = load_manifest("ppocr-v4")
    assert "rapidocr_onnxruntime" in str(m.stage_path("stage1"))


@pytest.fixture()
def model_copy(tmp_path) -> Path:
    dst = tmp_path / "frcnn-lite"
    shutil.copytree(MODELS_ROOT / "frcnn-lite", dst)
    return dst


def test_missing_file_named(model_copy) -> None:
    (model_copy / "stage2.onnx").unlink()
    with pytest.raises(ModelLoadError, match="stage2.onnx is missing"):
        load_manifest(model_copy)


def test_corrupt_file_hash_mismatch(model_copy) -> None:
    p = model_copy / "stage1.onnx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"stage1.onnx is corrupt"):
        load_manifest(model_copy)


def test_bad_yaml_named(model_copy) -> None:
    (model_copy / "manifest.yaml").write_text("name: [unclosed\n  : :")
    with pytest.raises(ModelLoadError, match=r"manifest\.yaml is not valid YAML"):
        load_manifest(model_copy / "manifest.yaml")


def test_unknown_field_and_bad_workload_rejected(model_copy) -> None:
    path = model_copy / "manifest.yaml"
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "surprise": 1}))
    with pytest.raises(ModelLoadError, match="surprise"):
        load_manifest(path)
    data["workload"]["jitter_sigma"] = 5
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelLoadError, match="jitter_sigma"):
        load_manifest(path)


def test_unknown_model_and_root(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="unknown model 'nope'"):
        load_manifest("nope")
    assert list_models(tmp_path) == []
