"""A real (tiny) training run, resume from checkpoint, stage-split export and torch/ORT parity."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

torch = pytest.importorskip("torch")

from lotus.detectors.export import parity, random_proposals, time_stages  # noqa: E402
from lotus.detectors.train import TrainConfig, train  # noqa: E402


def test_losses_decrease_and_resume(tmp_path, tiny_cfg) -> None:
    ckpt = tmp_path / "m.pt"
    seen: list[tuple[int, float]] = []
    tc = TrainConfig(steps=3, batch_size=2, warmup=1, checkpoint_every=3)
    train(ckpt, tc, cfg=tiny_cfg, resume=False, on_step=lambda s, n, loss: seen.append((s, sum(loss.values()))))
    assert [s for s, _ in seen] == [1, 2, 3]
    assert torch.load(ckpt, weights_only=False)["step"] == 3
    more: list[int] = []
    tc5 = TrainConfig(steps=5, batch_size=2, warmup=1, checkpoint_every=3)
    train(ckpt, tc5, resume=True, on_step=lambda s, n, loss: more.append(s))
    assert more == [4, 5]  # resumed, did not restart
    assert torch.load(ckpt, weights_only=False)["step"] == 5


def test_export_is_single_file_with_native_ops(tiny_onnx) -> None:
    p1, p2 = tiny_onnx
    assert not list(p1.parent.glob("*.data"))
    ops1 = {n.op_type for n in onnx.load(str(p1)).graph.node}
    ops2 = {n.op_type for n in onnx.load(str(p2)).graph.node}
    assert "NonMaxSuppression" in ops1 and "TopK" in ops1
    assert {"RoiAlign", "NonMaxSuppression"} <= ops2


def test_parity_torch_vs_onnx(tiny_model, tiny_onnx) -> None:
    res = parity(tiny_model, *tiny_onnx, n_images=2)
    assert res["features"] < 1e-4
    assert res["proposal_count"] == 0
    assert res["boxes"] < 1e-2 and res["scores"] < 1e-4 and res["labels"] == 0


def test_stage2_dynamic_n(tiny_onnx, tiny_cfg) -> None:
    from lotus.runtime.models.two_stage import make_session

    p1, p2 = tiny_onnx
    s1, s2 = make_session(p1, threads=1), make_session(p2, threads=1)
    x = np.random.default_rng(0).uniform(0, 1, (1, 3, 64, 64)).astype(np.float32)
    feat = s1.run(None, {"image": x})[0]
    for n in (1, 7, 60):
        boxes, scores, labels = s2.run(None, {"features": feat, "proposals": random_proposals(n, 64)})
        assert boxes.shape[1] == 4 and len(boxes) == len(scores) == len(labels) <= n
    t = time_stages(p1, p2, 64, ns=(10, 100), repeats=2)
    assert t["stage1_ms"] > 0 and set(t["stage2_ms"]) == {10, 100}
