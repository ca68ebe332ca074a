"""Torch-free two-stage runtime: onnxruntime sessions driven from a manifest.

The daemon calls ``preprocess`` -> ``run_stage1`` -> (governor acts, may cap proposals) ->
``run_stage2``. Only numpy, onnxruntime and Pillow are used here (cv2 for OCR, in ``ocr.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from lotus.core.errors import ModelLoadError
from lotus.runtime.models.manifest import ModelManifest, load_manifest


@dataclass
class Detection:
    """One result: ``box`` xyxy in original-image pixels, ``score``, ``label`` (class name or text)."""

    box: tuple[float, float, float, float]
    score: float
    label: str
    class_id: int | None = None


@dataclass
class Stage1Result:
    """What stage 1 found: ``num_proposals`` and the state stage 2 needs."""

    num_proposals: int
    proposals: np.ndarray  # [N, 4] xyxy, model-input pixels (frcnn) or [N, 4, 2] quads (ppocr)
    scores: np.ndarray  # [N]
    state: dict[str, Any] = field(default_factory=dict)


def make_session(
    path: Path,
    providers: list[str] | None = None,
    sess_options: ort.SessionOptions | None = None,
    threads: int | None = None,
) -> ort.InferenceSession:
    """An ORT session for ``path``; ``threads`` sets intra-op threads when no options are given."""
    if sess_options is None:
        sess_options = ort.SessionOptions()
        if threads:
            sess_options.intra_op_num_threads = threads
            sess_options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(
            str(path), sess_options=sess_options, providers=providers or ["CPUExecutionProvider"]
        )
    except Exception as exc:  # onnxruntime raises several unrelated types
        raise ModelLoadError(f"cannot load ONNX file {path}: {exc}") from None


class TwoStagePipeline:
    """Base: two ORT sessions built from a manifest."""

    def __init__(
        self,
        manifest: ModelManifest,
        providers: list[str] | None = None,
        sess_options: ort.SessionOptions | None = None,
        threads: int | None = None,
    ) -> None:
        self.manifest = manifest
        self.stage1 = make_session(manifest.stage_path("stage1"), providers, sess_options, threads)
        self.stage2 = make_session(manifest.stage_path("stage2"), providers, sess_options, threads)

    def preprocess(self, image: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def run_stage1(self, inputs: dict[str, Any]) -> Stage1Result:
        raise NotImplementedError

    def run_stage2(self, result: Stage1Result, max_proposals: int | None = None) -> list[Detection]:
        raise NotImplementedError

    def __call__(self, image: np.ndarray, max_proposals: int | None = None) -> list[Detection]:
        """Both stages on ``image`` [H, W, 3] uint8 RGB."""
        return self.run_stage2(self.run_stage1(self.preprocess(image)), max_proposals)


def _check_image(image: np.ndarray) -> None:
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")


class FrcnnPipeline(TwoStagePipeline):
    """FRCNN-lite: stage 1 = backbone + RPN + NMS, stage 2 = RoIAlign + box head + NMS."""

    def preprocess(self, image: np.ndarray) -> dict[str, Any]:
        """Resize to the square model input; ``image`` [H, W, 3] uint8 RGB."""
        _check_image(image)
        size = int(self.manifest.preprocess["input_size"])
        h, w = image.shape[:2]
        if (h, w) != (size, size):
            image = np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))
        x = (image.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        return {"image": np.ascontiguousarray(x), "scale": (w / size, h / size)}

    def run_stage1(self, inputs: dict[str, Any]) -> Stage1Result:
        feat, props, scores = self.stage1.run(None, {"image": inputs["image"]})
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
                names[int(lab) - 1] if 0 < lab <= len(names) else str(int(lab)),
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
        boxes, scores, labels = self.stage2.run(
            None, {"features": result.state["features"], "proposals": np.ascontiguousarray(props)}
        )
        return boxes, scores, labels

    def predict(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Boxes/scores/labels in model-input pixels (for evaluation on model-sized images)."""
        return self.raw_stage2(self.run_stage1(self.preprocess(image)))


class PpocrPipeline(TwoStagePipeline):
    """PP-OCRv4: stage 1 = DB text detection (quads), stage 2 = CRNN recognition per box (CTC)."""

    def __init__(
        self,
        manifest: ModelManifest,
        providers: list[str] | None = None,
        sess_options: ort.SessionOptions | None = None,
        threads: int | None = None,
    ) -> None:
        from lotus.runtime.models import ocr

        super().__init__(manifest, providers, sess_options, threads)
        self._ocr = ocr
        meta = self.stage2.get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise ModelLoadError(f"{manifest.stage_path('stage2')}: no 'character' dictionary in metadata")
        self.charset = ["<blank>", *meta["character"].splitlines(), " "]
        self.det_input = self.stage1.get_inputs()[0].name
        self.rec_input = self.stage2.get_inputs()[0].name

    def preprocess(self, image: np.ndarray) -> dict[str, Any]:
        _check_image(image)
        p = self.manifest.preprocess
        x, ratio = self._ocr.det_preprocess(image, int(p["limit_side_len"]), float(p["mean"]), float(p["std"]))
        return {"x": x, "ratio": ratio, "image": image}

    def run_stage1(self, inputs: dict[str, Any]) -> Stage1Result:
        q = self.manifest.postprocess
        prob = self.stage1.run(None, {self.det_input: inputs["x"]})[0][0, 0]
        quads, scores = self._ocr.db_postprocess(
            prob,
            inputs["ratio"],
            inputs["image"].shape[:2],
            float(q["thresh"]),
            float(q["box_thresh"]),
            float(q["unclip_ratio"]),
            int(q["max_candidates"]),
        )
        return Stage1Result(len(quads), quads, scores, {"image": inputs["image"]})

    def run_stage2(self, result: Stage1Result, max_proposals: int | None = None) -> list[Detection]:
        """Recognised text per detected box (best ``max_proposals`` boxes when given)."""
        n = result.num_proposals if max_proposals is None else min(max_proposals, result.num_proposals)
        if n == 0:
            return []
        p = self.manifest.preprocess
        crops = [self._ocr.crop_quad(result.state["image"], q) for q in result.proposals[:n]]
        height, width, batch = int(p["rec_height"]), int(p["rec_width"]), int(p["rec_batch"])
        order = np.argsort([c.shape[1] / c.shape[0] for c in crops])
        texts: list[tuple[str, float]] = [("", 0.0)] * n
        for i in range(0, n, batch):
            idx = order[i : i + batch]
            x = self._ocr.rec_preprocess([crops[j] for j in idx], height, width)
            probs = self.stage2.run(None, {self.rec_input: x})[0]
            for j, decoded in zip(idx, self._ocr.ctc_greedy_decode(probs, self.charset), strict=True):
                texts[j] = decoded
        out = []
        for q, (text, score) in zip(result.proposals[:n], texts, strict=True):
            x0, y0 = q.min(0)
            x1, y1 = q.max(0)
            out.append(Detection((float(x0), float(y0), float(x1), float(y1)), score, text))
        return out


PIPELINES: dict[str, type[TwoStagePipeline]] = {"frcnn": FrcnnPipeline, "ppocr": PpocrPipeline}


def create_pipeline(
    model: str | Path | ModelManifest,
    providers: list[str] | None = None,
    sess_options: ort.SessionOptions | None = None,
    threads: int | None = None,
) -> TwoStagePipeline:
    """The pipeline of a manifest (or model name/path, loaded and verified first)."""
    manifest = model if isinstance(model, ModelManifest) else load_manifest(model)
    return PIPELINES[manifest.kind](manifest, providers, sess_options, threads)
