"""The compression pipeline end to end on a tiny model: prune, fine-tune, quantize, report, ship."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from lotus.detectors.compress import JSON_KEYS, CompressConfig, run_compress  # noqa: E402
from lotus.detectors.prune import prune_detector  # noqa: E402
from lotus.detectors.ship import frcnn_manifest  # noqa: E402
from lotus.runtime.models.manifest import load_manifest  # noqa: E402
from lotus.runtime.models.two_stage import create_pipeline  # noqa: E402


def test_prune_removes_channels_and_keeps_function(tiny_model) -> None:
    small = prune_detector(tiny_model, 0.5)
    assert small.num_params() < 0.5 * tiny_model.num_params()
    assert small.cfg.widths == [4, 4, 4, 8, 8]
    full = prune_detector(tiny_model, 1.0)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(full.stage1.features(x), tiny_model.stage1.features(x), atol=1e-5)
    with pytest.raises(ValueError):
        prune_detector(tiny_model, 0.0)


def test_compress_tiny(tmp_path, tiny_ckpt) -> None:
    cc = CompressConfig(
        checkpoint=tiny_ckpt,
        work_dir=tmp_path / "work",
        keep=0.5,
        finetune_steps=2,
        calib_images=4,
        val_images=3,
        repeats=2,
        ship_dir=tmp_path / "ship" / "tiny",
        ship_name="tiny",
    )
    seen: set[str] = set()
    rows = run_compress(cc, progress=lambda task, d, n: seen.add(task))
    names = [r.variant for r in rows]
    assert names == ["dense-fp32", "pruned-fp32", "pruned-int8", "pruned-int8-dynamic", "pruned-fp16"]
    by = {r.variant: r for r in rows}
    assert by["pruned-fp32"].params < by["dense-fp32"].params
    assert all(r.size_bytes > 0 and r.map50 is not None for r in rows)  # tiny graphs: QDQ overhead > savings
    assert all(set(r.json_row()) == set(JSON_KEYS) for r in rows)
    assert "fine-tune pruned" in seen
    report = json.loads((cc.work_dir / "report.json").read_text())
    assert len(report) == 5 and (cc.work_dir / "report.md").read_text().count("| pruned") == 4
    m = load_manifest(tmp_path / "ship" / "tiny")
    assert m.workload.max_proposals == 50
    # the servable model folder in the work dir's repository, identical to the shipped copy
    assert cc.model_dir == cc.work_dir / "models" / "tiny"
    packaged = load_manifest(cc.model_dir)
    assert packaged.stages == m.stages and packaged.metrics == m.metrics
    assert by["pruned-int8"].model_dir == str(cc.model_dir) and by["pruned-int8"].shipped
    assert not any(r.model_dir or r.shipped for r in rows if r.variant != "pruned-int8")
    pipe = create_pipeline(m, threads=1)
    import numpy as np

    r1 = pipe.run_stage1(pipe.preprocess(np.zeros((64, 64, 3), np.uint8)))
    pipe.run_stage2(r1)


def test_manifest_of_fresh_export(tiny_onnx, tiny_cfg) -> None:
    m = frcnn_manifest("x", *tiny_onnx, tiny_cfg)
    assert m.stage("stage2").inputs[1].shape == ["N", 4]
