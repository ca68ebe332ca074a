"""Torch-free two-stage runtime: onnxruntime sessions driven from a manifest.

The daemon calls ``preprocess`` -> ``run_stage1`` -> (governor acts, may cap proposals) ->
``run_stage2``; :class:`TwoStagePipeline` is that whole interface (the kind-independent part is
:class:`~lotus.runtime.models.base.ModelPipeline`). Tensor names come from the manifest's roles.
Only numpy, onnxruntime and Pillow are used here (cv2 for OCR, in :mod:`lotus.runtime.models.ocr`).
:func:`create_pipeline` builds the pipeline of any kind, the single-stage ``onnx-detector`` too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from lotus.core.errors import BadInputError, ModelLoadError
from lotus.runtime.models.base import (
    WARMUP_SIZE,
    Detection,
    ModelPipeline,
    Stage1Result,
    check_image,
    make_session,
    number,
    param,
)
from lotus.runtime.models.detector import OnnxDetectorPipeline
from lotus.runtime.models.image import ImageInput
from lotus.runtime.models.manifest import ModelManifest, load_manifest

__all__ = ["WARMUP_SIZE", "Detection", "Stage1Result", "make_session", "create_pipeline", "TwoStagePipeline"]
MAX_INPUT_PIXELS = 40_000_000  # model inputs larger than this after resizing are refused (BadInputError)


class TwoStagePipeline(ModelPipeline):
    """Two ORT sessions (``stage1``, ``stage2``) with a governor decision between them."""

    @property
    def stage1(self) -> ort.InferenceSession:
        return self.sessions["stage1"]

    @property
    def stage2(self) -> ort.InferenceSession:
        return self.sessions["stage2"]


class FrcnnPipeline(TwoStagePipeline):
    """Kind ``frcnn``: stage 1 = backbone + proposals (+ NMS), stage 2 = box head over the proposals (+ NMS).

    FRCNN-lite is the shipped one; any graph pair with the roles of :data:`~.manifest.KINDS` runs.
    Labels are 1-based into ``class_names`` (``postprocess.label_offset``, default 1).
    """

    def _configure(self) -> None:
        m = self.manifest
        image = m.stage("stage1").tensor("image", "inputs")
        assert image is not None  # the manifest validator guarantees it
        self.image = ImageInput.from_manifest(m, image)
        self.input_size = self.image.height  # model input side, px (square for FRCNN-lite)
        self.s1_out = self.names("stage1", "outputs", "features", "proposals")
        scores = m.tensor_name("stage1", "proposal_scores", "outputs")
        if scores is not None:
            self.s1_out.append(scores)
        self.s2_in = self.names("stage2", "inputs", "features", "proposals")
        self.s2_out = self.names("stage2", "outputs", "boxes", "scores", "labels")
        self.label_offset = int(number(m, "label_offset", post=True, default=1))

    @property
    def warmup_size(self) -> int:
        return max(self.image.height, self.image.width)

    def preprocess(self, image: np.ndarray) -> dict[str, Any]:
        """Resize to the model input; ``image`` [H, W, 3] uint8 RGB."""
        x, scale = self.image(image)
        return {"image": x, "scale": scale}

    def run_stage1(self, inputs: dict[str, Any]) -> Stage1Result:
        outs = self.stage1.run(self.s1_out, {self.image.name: inputs["image"]})
        feat, props = outs[0], outs[1]
        scores = outs[2] if len(outs) > 2 else np.zeros(props.shape[0], np.float32)
        return Stage1Result(int(props.shape[0]), props, scores, {"features": feat, "scale": inputs["scale"]})

    def run_stage2(self, result: Stage1Result, max_proposals: int | None = None) -> list[Detection]:
        """Final detections; ``max_proposals`` keeps only the best proposals (governor's knob)."""
        boxes, scores, labels = self.raw_stage2(result, max_proposals)
        sx, sy = result.state["scale"]
        names = self.manifest.class_names
        return [
            Detection(
                (float(b[0] * sx), float(b[1] * sy), float(b[2] * sx), float(b[3] * sy)),
                float(s),
                names[k] if 0 <= (k := int(lab) - self.label_offset) < len(names) else str(int(lab)),
                int(lab),
            )
            for b, s, lab in zip(boxes, scores, labels, strict=True)
        ]

    def raw_stage2(
        self, result: Stage1Result, max_proposals: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes [M, 4] (model-input px), scores [M], labels [M] straight from the stage-2 graph."""
        props = result.proposals if max_proposals is None else result.proposals[:max_proposals]
        if props.shape[0] == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        feats, proposals = self.s2_in
        boxes, scores, labels = self.stage2.run(
            self.s2_out, {feats: result.state["features"], proposals: np.ascontiguousarray(props)}
        )
        return boxes, scores, labels

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes/scores/labels in model-input pixels (for evaluation on model-sized images)."""
        return self.raw_stage2(self.run_stage1(self.preprocess(image)))


class PpocrPipeline(TwoStagePipeline):
    """Kind ``ppocr``: stage 1 = DB text detection (quads), stage 2 = a recogniser run over the crops (CTC).

    The character dictionary is the recogniser's ``character`` metadata, else ``class_names``.
    """

    def _configure(self) -> None:
        from lotus.runtime.models import ocr

        manifest = self.manifest
        self._ocr = ocr
        meta = self.stage2.get_modelmeta().custom_metadata_map
        chars = meta["character"].splitlines() if "character" in meta else manifest.class_names
        if not chars:
            raise ModelLoadError(
                f"{manifest.stage_path('stage2')}: no 'character' dictionary in metadata and no class_names"
            )
        self.charset = ["<blank>", *chars, " "]
        (self.det_input,) = self.names("stage1", "inputs", "image")
        (self.det_output,) = self.names("stage1", "outputs", "text_map")
        (self.rec_input,) = self.names("stage2", "inputs", "crops")
        (self.rec_output,) = self.names("stage2", "outputs", "text_probs")
        m = manifest
        self.limit_side_len = int(number(m, "limit_side_len"))  # detection input side limit, px (multiple of 32)
        self.limit_type = str(param(m, "limit_type", default="min"))  # max: long side <= limit; min: short >= limit
        if self.limit_type not in self._ocr.LIMIT_TYPES or self.limit_side_len <= 0 or self.limit_side_len % 32:
            raise ModelLoadError(
                f"model {m.name!r}: preprocess.limit_type must be one of {', '.join(self._ocr.LIMIT_TYPES)} "
                f"(got {self.limit_type!r}) and limit_side_len a positive multiple of 32 (got {self.limit_side_len})"
            )
        self.mean, self.std = number(m, "mean"), number(m, "std")
        self.rec_height, self.rec_width = int(number(m, "rec_height")), int(number(m, "rec_width"))
        self.rec_batch = int(number(m, "rec_batch"))  # crops per recognition run
        self.thresh, self.box_thresh = number(m, "thresh", post=True), number(m, "box_thresh", post=True)
        self.unclip_ratio = number(m, "unclip_ratio", post=True)
        self.max_candidates = int(number(m, "max_candidates", post=True))

    def preprocess(self, image: np.ndarray) -> dict[str, Any]:
        """Detection input from ``image`` [H, W, 3] uint8 RGB, sized by ``limit_side_len`` / ``limit_type``."""
        check_image(image)
        h, w = image.shape[:2]
        size = self._ocr.det_input_size(h, w, self.limit_side_len, self.limit_type)
        if size[0] * size[1] > MAX_INPUT_PIXELS:
            raise BadInputError(
                f"image {w}x{h} is too elongated for {self.manifest.name}: its detection input "
                f"({self.limit_type} side {self.limit_side_len} px) would be {size[1]}x{size[0]}, "
                f"over {MAX_INPUT_PIXELS} pixels"
            )
        x, ratio = self._ocr.det_preprocess(image, size, self.mean, self.std)
        return {"x": x, "ratio": ratio, "image": image}

    def run_stage1(self, inputs: dict[str, Any]) -> Stage1Result:
        prob = self.stage1.run([self.det_output], {self.det_input: inputs["x"]})[0][0, 0]
        quads, scores = self._ocr.db_postprocess(
            prob,
            inputs["ratio"],
            inputs["image"].shape[:2],
            self.thresh,
            self.box_thresh,
            self.unclip_ratio,
            self.max_candidates,
        )
        return Stage1Result(len(quads), quads, scores, {"image": inputs["image"]})

    def run_stage2(self, result: Stage1Result, max_proposals: int | None = None) -> list[Detection]:
        """Recognised text per detected box (best ``max_proposals`` boxes when given)."""
        n = result.num_proposals if max_proposals is None else min(max_proposals, result.num_proposals)
        if n == 0:
            return []
        crops = [self._ocr.crop_quad(result.state["image"], q) for q in result.proposals[:n]]
        height, width, batch = self.rec_height, self.rec_width, self.rec_batch
        order = np.argsort([c.shape[1] / c.shape[0] for c in crops])
        texts: list[tuple[str, float]] = [("", 0.0)] * n
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            x = self._ocr.rec_preprocess([crops[j] for j in idx], height, width)
            probs = self.stage2.run([self.rec_output], {self.rec_input: x})[0]
            for j, decoded in zip(idx, self._ocr.ctc_greedy_decode(probs, self.charset), strict=True):
                texts[j] = decoded
        out = []
        for q, (text, score) in zip(result.proposals[:n], texts, strict=True):
            x0, y0 = q.min(0)
            x1, y1 = q.max(0)
            out.append(Detection((float(x0), float(y0), float(x1), float(y1)), score, text))
        return out


PIPELINES: dict[str, type[ModelPipeline]] = {
    "frcnn": FrcnnPipeline,
    "ppocr": PpocrPipeline,
    "onnx-detector": OnnxDetectorPipeline,
}


def create_pipeline(
    model: str | Path | ModelManifest,
    providers: list[Any] | None = None,
    sess_options: ort.SessionOptions | None = None,
    threads: int | None = None,
) -> ModelPipeline:
    """The pipeline of a manifest, or of a shipped model name / model folder / manifest path (loaded and verified)."""
    manifest = model if isinstance(model, ModelManifest) else load_manifest(model)
    return PIPELINES[manifest.kind](manifest, providers, sess_options, threads)
