"""Export-friendly NMS and RoIAlign.

Eager mode uses plain torch (differentiable RoIAlign, numpy greedy NMS). While exporting to
ONNX, the same calls go through ``lotus::nms`` / ``lotus::roi_align`` custom ops that the
legacy TorchScript exporter maps onto ONNX's native ``NonMaxSuppression`` and ``RoiAlign``.
Semantics follow ONNX Runtime: NMS suppresses on IoU strictly above the threshold and keeps
scores strictly above ``score_threshold``; RoIAlign is ``avg`` mode with ``half_pixel``
(aligned) coordinates and a fixed sampling ratio.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

ONNX_OPSET = 17

# ---------------------------------------------------------------- eager implementations


def nms_numpy(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, score_threshold: float, max_output: int
) -> np.ndarray:
    """Greedy NMS. ``boxes`` [N, 4] xyxy, ``scores`` [N] -> kept indices [M] (int64), best first."""
    valid = np.nonzero(scores > score_threshold)[0]
    order = valid[np.argsort(-scores[valid], kind="stable")]
    if order.size == 0:
        return np.zeros(0, dtype=np.int64)
    b = boxes[order].astype(np.float64)
    x1, y1 = np.minimum(b[:, 0], b[:, 2]), np.minimum(b[:, 1], b[:, 3])
    x2, y2 = np.maximum(b[:, 0], b[:, 2]), np.maximum(b[:, 1], b[:, 3])
    area = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(order.size, dtype=bool)
    keep: list[int] = []
    for i in range(order.size):
        if suppressed[i]:
            continue
        keep.append(i)
        if len(keep) >= max_output:
            break
        iw = np.clip(np.minimum(x2[i], x2[i + 1 :]) - np.maximum(x1[i], x1[i + 1 :]), 0, None)
        ih = np.clip(np.minimum(y2[i], y2[i + 1 :]) - np.maximum(y1[i], y1[i + 1 :]), 0, None)
        inter = iw * ih
        union = area[i] + area[i + 1 :] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        suppressed[i + 1 :] |= iou > iou_threshold
    return order[np.asarray(keep, dtype=np.int64)].astype(np.int64)


def _interp_matrix(start: Tensor, bin_size: Tensor, out_size: int, sampling: int, length: int) -> Tensor:
    """Bilinear averaging weights along one axis: [N, out_size, length] (torchvision/ORT rules)."""
    dtype = start.dtype
    steps = (
        torch.arange(out_size, dtype=dtype)[:, None] + (torch.arange(sampling, dtype=dtype)[None, :] + 0.5) / sampling
    )  # [out, s]
    pos = start[:, None, None] + steps[None] * bin_size[:, None, None]  # [N, out, s]
    outside = (pos < -1.0) | (pos > length)
    pos = pos.clamp(min=0.0)
    low = pos.floor()
    at_end = low >= length - 1
    low = torch.where(at_end, torch.full_like(low, length - 1), low)
    pos = torch.where(at_end, low, pos)
    high = torch.where(at_end, low, low + 1)
    frac = pos - low
    grid = torch.arange(length, dtype=dtype)
    w = (grid == low[..., None]).to(dtype) * (1 - frac)[..., None] + (grid == high[..., None]).to(dtype) * frac[
        ..., None
    ]
    w = w * (~outside)[..., None].to(dtype)
    return w.sum(2) / sampling  # [N, out, length]


def roi_align_torch(feat: Tensor, rois: Tensor, spatial_scale: float, out_size: int, sampling: int) -> Tensor:
    """Separable (matmul) RoIAlign. ``feat`` [1, C, H, W], ``rois`` [N, 4] xyxy image px -> [N, C, o, o]."""
    _, _, h, w = feat.shape
    r = rois * spatial_scale - 0.5
    bw = (r[:, 2] - r[:, 0]) / out_size
    bh = (r[:, 3] - r[:, 1]) / out_size
    wy = _interp_matrix(r[:, 1], bh, out_size, sampling, h).to(feat.dtype)
    wx = _interp_matrix(r[:, 0], bw, out_size, sampling, w).to(feat.dtype)
    tmp = torch.einsum("nih,chw->nciw", wy, feat[0])
    return torch.einsum("nciw,njw->ncij", tmp, wx)


# ---------------------------------------------------------------- custom ops for export


@torch.library.custom_op("lotus::nms", mutates_args=())
def _nms_op(boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float, max_output: int) -> Tensor:
    keep = nms_numpy(
        boxes.detach().cpu().numpy(), scores.detach().cpu().numpy(), iou_threshold, score_threshold, max_output
    )
    return torch.from_numpy(keep)


@_nms_op.register_fake
def _(boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float, max_output: int) -> Tensor:
    n = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((n,), dtype=torch.int64)


@torch.library.custom_op("lotus::roi_align", mutates_args=())
def _roi_align_op(feat: Tensor, rois: Tensor, spatial_scale: float, out_size: int, sampling: int) -> Tensor:
    return roi_align_torch(feat, rois, spatial_scale, out_size, sampling).contiguous()


@_roi_align_op.register_fake
def _(feat: Tensor, rois: Tensor, spatial_scale: float, out_size: int, sampling: int) -> Tensor:
    return feat.new_empty((rois.shape[0], feat.shape[1], out_size, out_size))


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float, score_threshold: float, max_output: int) -> Tensor:
    """Indices [M] of boxes kept by greedy NMS, best score first. ``boxes`` [N, 4] xyxy, ``scores`` [N]."""
    if torch.onnx.is_in_onnx_export():
        return _nms_op(boxes, scores, float(iou_threshold), float(score_threshold), int(max_output))
    keep = nms_numpy(
        boxes.detach().cpu().numpy(), scores.detach().cpu().numpy(), iou_threshold, score_threshold, max_output
    )
    return torch.from_numpy(keep).to(boxes.device)


def roi_align(feat: Tensor, rois: Tensor, spatial_scale: float, out_size: int, sampling: int) -> Tensor:
    """RoIAlign of ``rois`` [N, 4] (xyxy, image px) on ``feat`` [1, C, H, W] -> [N, C, out, out]."""
    if torch.onnx.is_in_onnx_export():
        return _roi_align_op(feat, rois, float(spatial_scale), int(out_size), int(sampling))
    return roi_align_torch(feat, rois, spatial_scale, out_size, sampling)


# ---------------------------------------------------------------- ONNX symbolics (legacy exporter)

_registered = False


def register_onnx_symbolics() -> None:
    """Map the custom ops to native ONNX ops for ``torch.onnx.export(..., dynamo=False)``."""
    global _registered
    if _registered:
        return
    from torch.onnx import register_custom_op_symbolic
    from torch.onnx._internal.torchscript_exporter import symbolic_helper as sh

    @sh.parse_args("v", "v", "f", "f", "i")
    def nms_symbolic(g, boxes, scores, iou_threshold, score_threshold, max_output):  # noqa: ANN001, ANN202
        b = g.op("Unsqueeze", boxes, g.op("Constant", value_t=torch.tensor([0], dtype=torch.int64)))
        s = g.op("Unsqueeze", scores, g.op("Constant", value_t=torch.tensor([0, 1], dtype=torch.int64)))
        sel = g.op(
            "NonMaxSuppression",
            b,
            s,
            g.op("Constant", value_t=torch.tensor([max_output], dtype=torch.int64)),
            g.op("Constant", value_t=torch.tensor([iou_threshold], dtype=torch.float32)),
            g.op("Constant", value_t=torch.tensor([score_threshold], dtype=torch.float32)),
        )
        col = g.op("Gather", sel, g.op("Constant", value_t=torch.tensor(2, dtype=torch.int64)), axis_i=1)
        return col

    @sh.parse_args("v", "v", "f", "i", "i")
    def roi_align_symbolic(g, feat, rois, spatial_scale, out_size, sampling):  # noqa: ANN001, ANN202
        n = g.op(
            "Gather", g.op("Shape", rois), g.op("Constant", value_t=torch.tensor([0], dtype=torch.int64)), axis_i=0
        )
        batch_idx = g.op("ConstantOfShape", n, value_t=torch.tensor([0], dtype=torch.int64))
        return g.op(
            "RoiAlign",
            feat,
            rois,
            batch_idx,
            mode_s="avg",
            output_height_i=out_size,
            output_width_i=out_size,
            sampling_ratio_i=sampling,
            spatial_scale_f=spatial_scale,
            coordinate_transformation_mode_s="half_pixel",
        )

    register_custom_op_symbolic("lotus::nms", nms_symbolic, ONNX_OPSET)
    register_custom_op_symbolic("lotus::roi_align", roi_align_symbolic, ONNX_OPSET)
    _registered = True
