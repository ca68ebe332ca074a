"""Shared fixtures: a tiny FRCNN-lite trained for a few real steps, and its ONNX export."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(autouse=True, scope="session")
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_cfg():
    from lotus.detectors.model import DetectorConfig

    return DetectorConfig(
        image_size=64,
        widths=[8, 8, 8, 16, 16],
        rpn_dim=16,
        fc_dim=32,
        anchor_sizes=[12.0, 24.0],
        pre_nms_top_n=200,
        post_nms_top_n=50,
    )


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory, tiny_cfg) -> Path:
    from lotus.detectors.train import TrainConfig, train

    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    train(path, TrainConfig(steps=4, batch_size=2, warmup=2, checkpoint_every=2), cfg=tiny_cfg, resume=False)
    return path


@pytest.fixture(scope="session")
def tiny_model(tiny_ckpt):
    from lotus.detectors.train import load_detector

    return load_detector(tiny_ckpt)


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory, tiny_model) -> tuple[Path, Path]:
    from lotus.detectors.export import export_stages

    return export_stages(tiny_model, tmp_path_factory.mktemp("onnx"))
