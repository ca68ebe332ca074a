"""Torch-free two-stage runtime: onnxruntime sessions driven from a manifest.

The daemon calls ``preprocess`` -> ``run_stage1`` -> (governor acts, may cap proposals) ->
``run_stage2``; :class:`TwoStagePipeline` is that whole interface. Only numpy, onnxruntime and
Pillow are used here (cv2 for OCR, in :mod:`lotus.runtime.models.ocr`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from lotus.core.errors import BadInputError, ModelLoadError
from lotus.runtime.models.manifest import ModelManifest, Param, load_manifest

MAX_INPUT_PIXELS = 40_000_000  # model inputs larger than this after resizing are refused (BadInputError)
WARMUP_SIZE = 320  # side of the warm-up image when the model has no fixed input size, px


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
    providers: list[Any] | None = None,
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


def _number(manifest: ModelManifest, key: str, post: bool = False) -> float:
    """``manifest.preprocess[key]`` (``postprocess`` with ``post``) as a number; ModelLoadError otherwise."""
    params: dict[str, Param] = manifest.postprocess if post else manifest.preprocess
    value = params.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        section = "postprocess" if post else "preprocess"
        raise ModelLoadError(f"model {manifest.name!r}: {section}.{key} must be a number, got {value!r}")
    return float(value)


class TwoStagePipeline(ABC):
    """Two ORT sessions built from a manifest: everything the daemon calls on a model.

    :param manifest: the model's manifest (``base_dir`` set: loaded from a file)
    :param providers: ORT execution providers in preference order (names or ``(name, options)``)
    :param sess_options: ORT session options (``threads`` is ignored when given)
    :param threads: ORT intra-op threads when no ``sess_options`` are given
    """

    def __init__(
        self,
        manifest: ModelManifest,
        providers: list[Any] | None = None,
        sess_options: ort.SessionOptions | None = None,
        threads: int | None = None,
    ) -> None:
        self.manifest = manifest
        self.stage1 = make_session(manifest.stage_path("stage1"), providers, sess_options, threads)
        self.stage2 = make_session(manifest.stage_path("stage2"), providers, sess_options, threads)
        self._configure()

    @abstractmethod
    def _configure(self) -> None:
        """Read the model kind's parameters from the manifest (after the sessions exist)."""

    @property
    def provider(self) -> str:
        """The execution provider the sessions run on (first of stage 1's), e.g. ``CPUExecutionProvider``."""
        return str(self.stage1.get_providers()[0])

    @property
    def warmup_size(self) -> int:
        """Side of the square warm-up image, px: the fixed model input size, else :data:`WARMUP_SIZE`."""
        return WARMUP_SIZE

    def warmup_image(self, seed: int = 0) -> np.ndarray:
        """A random ``[S, S, 3]`` uint8 RGB image, S = :attr:`warmup_size` (dummy frames before ready)."""
        rng = np.random.default_rng(seed)
        return rng.integers(0, 255, size=(self.warmup_size, self.warmup_size, 3), dtype=np.uint8)

    @abstractmethod
    def preprocess(self, image: np.ndarray) -> dict[str, Any]:
        """Model inputs from ``image`` [H, W, 3] uint8 RGB; BadInputError when it cannot be used."""

    @abstractmethod
    def run_stage1(self, inputs: dict[str, Any]) -> Stage1Result:
        """Stage 1 on the preprocessed inputs: the proposals and the state stage 2 needs."""

    @abstractmethod
    def run_stage2(self, result: Stage1Result, max_proposals: int | None = None) -> list[Detection]:
        """Stage 2 on the best ``max_proposals`` proposals (all when None): detections in image pixels."""

    def __call__(self, image: np.ndarray, max_proposals: int | None = None) -> list[Detection]:
        """Both stages on ``image`` [H, W, 3] uint8 RGB."""
        return self.run_stage2(self.run_stage1(self.preprocess(image)), max_proposals)


def _check_image(image: np.ndarray) -> None:
    """BadInputError (400) unless ``image`` is a non-empty [H, W, 3] uint8 array."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape) == 0:
        raise BadInputError(f"expected an HxWx3 uint8 RGB image, got shape {list(image.shape)} {image.dtype}")


class FrcnnPipeline(TwoStagePipeline):
    """FRCNN-lite: stage 1 = backbone + RPN + NMS, stage 2 = RoIAlign + box head + NMS."""

    def _configure(self) -> None:
        self.input_size = int(_number(self.manifest, "input_size"))  # square model input side, px

    @property
    def warmup_size(self) -> int:
        return self.input_size

    def preprocess(self, image: np.ndarray) -> dict[str, Any]:
        """Resize to the square model input; ``image`` [H, W, 3] uint8 RGB."""
        _check_image(image)
        size = self.input_size
        h, w = image.shape[:2]
        if (h, w) != (size, size):
            image = np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.BILINEAR))
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

    def _configure(self) -> None:
        from lotus.runtime.models import ocr

        manifest = self.manifest
        self._ocr = ocr
        meta = self.stage2.get_modelmeta().custom_metadata_map
        if "character" not in meta:
            raise ModelLoadError(f"{manifest.stage_path('stage2')}: no 'character' dictionary in metadata")
        self.charset = ["<blank>", *meta["character"].splitlines(), " "]
        self.det_input = self.stage1.get_inputs()[0].name
        self.rec_input = self.stage2.get_inputs()[0].name
        m = manifest
        self.limit_side_len = int(_number(m, "limit_side_len"))  # detection input: short side at least this, px
        self.mean, self.std = _number(m, "mean"), _number(m, "std")
        self.rec_height, self.rec_width = int(_number(m, "rec_height")), int(_number(m, "rec_width"))
        self.rec_batch = int(_number(m, "rec_batch"))  # crops per recognition run
        self.thresh, self.box_thresh = _number(m, "thresh", post=True), _number(m, "box_thresh", post=True)
        self.unclip_ratio = _number(m, "unclip_ratio", post=True)
        self.max_candidates = int(_number(m, "max_candidates", post=True))

    def preprocess(self, image: np.ndarray) -> dict[str, Any]:
        """Detection input: ``image`` [H, W, 3] uint8 RGB with its short side scaled to ``limit_side_len``."""
        _check_image(image)
        h, w = image.shape[:2]
        scale = max(self.limit_side_len / min(h, w), 1.0)
        if h * w * scale * scale > MAX_INPUT_PIXELS:
            raise BadInputError(
                f"image {w}x{h} is too elongated for {self.manifest.name}: scaled to a short side of "
                f"{self.limit_side_len} px it would exceed {MAX_INPUT_PIXELS} pixels"
            )
        x, ratio = self._ocr.det_preprocess(image, self.limit_side_len, self.mean, self.std)
        return {"x": x, "ratio": ratio, "image": image}

    def run_stage1(self, inputs: dict[str, Any]) -> Stage1Result:
        prob = self.stage1.run(None, {self.det_input: inputs["x"]})[0][0, 0]
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
    providers: list[Any] | None = None,
    sess_options: ort.SessionOptions | None = None,
    threads: int | None = None,
) -> TwoStagePipeline:
    """The pipeline of a manifest, or of a shipped model name / model folder / manifest path (loaded and verified)."""
    manifest = model if isinstance(model, ModelManifest) else load_manifest(model)
    return PIPELINES[manifest.kind](manifest, providers, sess_options, threads)
