"""Single-stage ONNX detectors (kind ``onnx-detector``): one graph from image to boxes, scores, labels.

The graph runs in ``run_stage1`` (one governor decision per frame, taken before it); ``run_stage2``
only post-processes in numpy. ``postprocess`` keys (all optional, see ``docs/models.md``):
``box_format`` (``xyxy``, ``xywh``, ``cxcywh``), ``normalized`` (boxes in 0..1 of the input),
``score_threshold`` (default 0), ``nms_iou`` (greedy NMS at this IoU; absent: none),
``class_agnostic`` (NMS across classes), ``max_detections`` (default 100), ``label_offset`` (the id
of ``class_names[0]``, default 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lotus.core.errors import ModelLoadError
from lotus.runtime.models.base import Detection, ModelPipeline, Stage1Result, number, param
from lotus.runtime.models.image import ImageInput
from lotus.runtime.models.nms import nms, to_xyxy


def _flat(x: np.ndarray, width: int | None, what: str) -> np.ndarray:
    """Drop a leading batch dim of 1: ``[1, N, k]`` -> ``[N, k]``, ``[1, N]`` -> ``[N]``."""
    x = np.asarray(x)
    want = 1 if width is None else 2
    if x.ndim == want + 1 and x.shape[0] == 1:
        x = x[0]
    if x.ndim != want or (width is not None and x.shape[1] != width):
        raise ModelLoadError(
            f"the model's {what} output has shape {list(x.shape)}, expected {'[N, 4]' if width else '[N]'}"
        )
    return x


class OnnxDetectorPipeline(ModelPipeline):
    """A user's single-stage detector, driven by its manifest's roles and parameters."""

    def _configure(self) -> None:
        m = self.manifest
        image = m.stage("stage1").tensor("image", "inputs")
        assert image is not None  # the manifest validator guarantees it
        self.image = ImageInput.from_manifest(m, image)
        self.input_size = self.image.height
        self.outputs = self.names("stage1", "outputs", "boxes", "scores")
        self.labels_name = m.tensor_name("stage1", "labels", "outputs")
        if self.labels_name is not None:
            self.outputs.append(self.labels_name)
        fmt = param(m, "box_format", post=True, default="xyxy")
        if fmt not in ("xyxy", "xywh", "cxcywh"):
            raise ModelLoadError(f"model {m.name!r}: postprocess.box_format must be xyxy, xywh or cxcywh, got {fmt!r}")
        self.box_format: Any = fmt
        self.normalized = bool(param(m, "normalized", post=True, default=False))
        self.score_threshold = number(m, "score_threshold", post=True, default=0.0)
        self.nms_iou = None if param(m, "nms_iou", post=True) is None else number(m, "nms_iou", post=True)
        self.class_agnostic = bool(param(m, "class_agnostic", post=True, default=False))
        self.max_detections = int(number(m, "max_detections", post=True, default=100))
        self.label_offset = int(number(m, "label_offset", post=True, default=0))

    @property
    def warmup_size(self) -> int:
        return max(self.image.height, self.image.width)

    def preprocess(self, image: np.ndarray) -> dict[str, Any]:
        """The graph input from ``image`` [H, W, 3] uint8 RGB and the scale back to image pixels."""
        x, scale = self.image(image)
        return {"x": x, "scale": scale}

    def run_stage1(self, inputs: dict[str, Any]) -> Stage1Result:
        """The whole graph: raw boxes (xyxy, model-input px), scores and labels before thresholds and NMS."""
        outs = self.sessions["stage1"].run(self.outputs, {self.image.name: inputs["x"]})
        boxes = to_xyxy(_flat(outs[0], 4, "boxes"), self.box_format)
        if self.normalized:
            boxes = boxes * np.array([self.image.width, self.image.height] * 2, dtype=np.float32)
        scores = _flat(outs[1], None, "scores").astype(np.float32)
        labels = _flat(outs[2], None, "labels").astype(np.int64) if len(outs) > 2 else np.zeros(len(scores), np.int64)
        if not len(boxes) == len(scores) == len(labels):
            raise ModelLoadError(f"the model returned {len(boxes)} boxes, {len(scores)} scores, {len(labels)} labels")
        return Stage1Result(len(scores), boxes, scores, {"labels": labels, "scale": inputs["scale"]})

    def run_stage2(self, result: Stage1Result, max_proposals: int | None = None) -> list[Detection]:
        """Score threshold, the best ``max_proposals`` candidates, NMS, ``max_detections``: image-pixel detections."""
        boxes, scores, labels = result.proposals, result.scores, result.state["labels"]
        idx = np.flatnonzero(scores >= self.score_threshold)
        idx = idx[np.argsort(-scores[idx], kind="stable")]
        if max_proposals is not None:
            idx = idx[:max_proposals]
        if self.nms_iou is not None:
            idx = idx[nms(boxes[idx], scores[idx], self.nms_iou, None if self.class_agnostic else labels[idx])]
        idx = idx[: self.max_detections]
        sx, sy = result.state["scale"]
        names = self.manifest.class_names
        out = []
        for i in idx:
            b, lab = boxes[i], int(labels[i])
            k = lab - self.label_offset
            name = names[k] if 0 <= k < len(names) else str(lab)
            box = (float(b[0] * sx), float(b[1] * sy), float(b[2] * sx), float(b[3] * sy))
            out.append(Detection(box, float(scores[i]), name, lab if self.labels_name is not None else None))
        return out
