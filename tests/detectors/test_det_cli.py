"""``lotus detectors`` commands through typer's runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lotus.core.errors import ModelLoadError
from lotus.detectors import cli as detectors

runner = CliRunner()


def test_dataset_command(tmp_path) -> None:
    res = runner.invoke(detectors.app, ["dataset", str(tmp_path), "--images", "2"])
    assert res.exit_code == 0, res.output
    assert len(json.loads((tmp_path / "annotations.json").read_text())["images"]) == 2


def test_eval_shipped_model() -> None:
    pytest.importorskip("faster_coco_eval")
    res = runner.invoke(detectors.app, ["eval", "--model", "frcnn-lite", "--images", "5"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.strip().splitlines()[-1])["map50"] > 0.5


def test_train_and_export_small(tmp_path) -> None:
    ckpt = tmp_path / "c.pt"
    res = runner.invoke(detectors.app, ["train", "--checkpoint", str(ckpt), "--steps", "1", "--batch-size", "1"])
    assert res.exit_code == 0, res.output
    res = runner.invoke(detectors.app, ["export", "--checkpoint", str(ckpt), "--out-dir", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    assert "parity" in res.output and (tmp_path / "o" / "stage2.onnx").exists()


def test_missing_checkpoint_is_a_lotus_error(tmp_path) -> None:
    res = runner.invoke(detectors.app, ["eval", "--checkpoint", str(tmp_path / "none.pt")])
    assert isinstance(res.exception, ModelLoadError)
    assert "none.pt" in str(res.exception)
    with pytest.raises(ModelLoadError):
        detectors.compress(checkpoint=tmp_path / "none.pt")


def test_ship_only_into_a_source_checkout(tmp_path, monkeypatch) -> None:
    import lotus.runtime.models.manifest as manifest
    from lotus.core.errors import ConfigError
    from lotus.runtime.models.manifest import MODELS_ROOT

    assert detectors.ship_dir("frcnn-lite") == MODELS_ROOT / "frcnn-lite"  # this checkout
    installed = tmp_path / "site-packages" / "lotus" / "compressed_models"
    installed.mkdir(parents=True)
    monkeypatch.setattr(manifest, "MODELS_ROOT", installed)
    with pytest.raises(ConfigError, match="installed package"):
        detectors.ship_dir("frcnn-lite")


def test_writers_refuse_the_shipped_folder(tmp_path, tiny_onnx, tiny_cfg) -> None:
    from lotus.core.errors import ConfigError
    from lotus.detectors.ship import frcnn_manifest, ship
    from lotus.runtime.models.manifest import MODELS_ROOT

    m = frcnn_manifest("x", *tiny_onnx, tiny_cfg)
    with pytest.raises(ConfigError, match="only with --ship"):
        ship(m, MODELS_ROOT / "x")
    assert not (MODELS_ROOT / "x").exists()
    assert (ship(m, tmp_path / "repo" / "x").base_dir / "manifest.yaml").is_file()
    res = runner.invoke(detectors.app, ["ocr-manifest", "--out-dir", str(MODELS_ROOT / "ppocr-v4")])
    assert isinstance(res.exception, ConfigError) and "--ship" in str(res.exception)


def test_default_outputs_are_under_runs() -> None:
    assert detectors.DEFAULT_WORK == Path("runs/compress") and detectors.DEFAULT_OCR_DIR == Path("runs/models/ppocr-v4")
