"""NMS and RoIAlign: eager torch vs ONNX Runtime's native ops."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")

from lotus.detectors.ops import nms, nms_numpy, register_onnx_symbolics, roi_align  # noqa: E402


class _Ops(torch.nn.Module):
    def forward(self, feat, rois, scores):  # noqa: ANN001, ANN201
        return roi_align(feat, rois, 0.25, 7, 2), nms(rois, scores, 0.5, 0.1, 20)


@pytest.fixture(scope="module")
def ops_session(tmp_path_factory) -> ort.InferenceSession:
    register_onnx_symbolics()
    path = tmp_path_factory.mktemp("ops") / "ops.onnx"
    feat, rois, scores = torch.rand(1, 4, 10, 12), torch.tensor([[0.0, 0, 8, 8]]), torch.rand(1)
    torch.onnx.export(
        _Ops(),
        (feat, rois, scores),
        str(path),
        input_names=["feat", "rois", "scores"],
        output_names=["pooled", "keep"],
        dynamic_axes={"rois": {0: "N"}, "scores": {0: "N"}},
        opset_version=17,
        dynamo=False,
    )
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_native_ops_in_graph(ops_session) -> None:
    import onnx

    types = {n.op_type for n in onnx.load(ops_session._model_path).graph.node}
    assert {"RoiAlign", "NonMaxSuppression"} <= types


def test_roi_align_and_nms_match_ort(ops_session) -> None:
    rng = np.random.default_rng(0)
    feat = rng.normal(size=(1, 4, 10, 12)).astype(np.float32)
    xy = rng.uniform(-8, 44, (40, 2))
    rois = np.concatenate([xy, xy + rng.uniform(0.5, 30, (40, 2))], 1).astype(np.float32)  # incl. outside
    scores = rng.uniform(0, 1, 40).astype(np.float32)
    pooled, keep = ops_session.run(None, {"feat": feat, "rois": rois, "scores": scores})
    with torch.no_grad():
        ref = roi_align(torch.from_numpy(feat), torch.from_numpy(rois), 0.25, 7, 2).numpy()
    assert np.abs(pooled - ref).max() < 1e-4
    assert sorted(keep.tolist()) == sorted(nms_numpy(rois, scores, 0.5, 0.1, 20).tolist())


def test_nms_basic() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert nms_numpy(boxes, scores, 0.5, 0.0, 10).tolist() == [0, 2]
    assert nms_numpy(boxes, scores, 0.5, 0.75, 10).tolist() == [0]
    assert nms_numpy(boxes, scores, 0.5, 0.0, 1).tolist() == [0]
