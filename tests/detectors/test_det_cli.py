"""``lotus detectors`` commands through typer's runner."""

from __future__ import annotations

import json

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
