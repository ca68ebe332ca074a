"""What every model pipeline shares: the interface the daemon calls, results, ORT sessions, parameters.

The daemon calls ``preprocess`` -> ``run_stage1`` -> (governor acts between the stages when
:attr:`ModelPipeline.two_stage`) -> ``run_stage2``. A single-stage kind runs its one graph in
``run_stage1`` and only post-processes (numpy) in ``run_stage2``. Tensor names come from the
manifest's roles (:mod:`lotus.runtime.models.manifest`), never from the graphs' own names.
"""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import onnxruntime as ort

from lotus.core.errors import BadInputError, ModelLoadError
from lotus.runtime.models.manifest import ModelManifest, Param, StageSpec

log = logging.getLogger(__name__)
WARMUP_SIZE = 320  # side of the warm-up image when the model has no fixed input size, px
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
GPU_PRECISIONS = ("fp16", "fp32")  # the stage variants a GPU provider takes, best first
ORT_TYPES = {"float32": "tensor(float)", "float16": "tensor(float16)", "int64": "tensor(int64)",
             "int32": "tensor(int32)", "uint8": "tensor(uint8)"}  # fmt: skip


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
    proposals: np.ndarray  # [N, 4] xyxy, model-input pixels (frcnn, onnx-detector) or [N, 4, 2] quads (ppocr)
    scores: np.ndarray  # [N]
    state: dict[str, Any] = field(default_factory=dict)


def provider_name(entry: Any) -> str:
    """The provider name of a ``providers`` entry: a name or a ``(name, options)`` pair."""
    return str(entry[0] if isinstance(entry, tuple | list) else entry)


def is_gpu_provider(name: str) -> bool:
    """Whether ``name`` is a GPU provider (CUDA or TensorRT), which takes a stage's FP16/FP32 variant."""
    return name in GPU_PROVIDERS


def select_variant(stage: StageSpec, provider: str) -> str | None:
    """The variant of ``stage`` a session whose first provider is ``provider`` opens (None: the stage's ``file``).

    A GPU provider takes the ``fp16`` variant, else the ``fp32`` one; any other provider (CPU)
    keeps the stage's own file (INT8 or FP32, as exported).
    """
    if not stage.variants or not is_gpu_provider(provider):
        return None
    return next((p for p in GPU_PRECISIONS if p in stage.variants), None)


def make_session(
    path: Path,
    providers: list[Any] | None = None,
    sess_options: ort.SessionOptions | None = None,
    threads: int | None = None,
) -> ort.InferenceSession:
    """An ORT session for ``path``; ``providers`` are names or ``(name, options)`` pairs (default: CPU).

    ``threads`` sets intra-op threads when no ``sess_options`` are given.
    """
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


def param(manifest: ModelManifest, key: str, post: bool = False, default: Param | None = None) -> Param | None:
    """``manifest.preprocess[key]`` (``postprocess`` with ``post``), else ``default``."""
    params = manifest.postprocess if post else manifest.preprocess
    return params.get(key, default)


def number(manifest: ModelManifest, key: str, post: bool = False, default: float | None = None) -> float:
    """``manifest.preprocess[key]`` (``postprocess`` with ``post``) as a finite number; ModelLoadError otherwise."""
    value = param(manifest, key, post, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        section = "postprocess" if post else "preprocess"
        raise ModelLoadError(f"model {manifest.name!r}: {section}.{key} must be a number, got {value!r}")
    return float(value)


def check_image(image: np.ndarray) -> None:
    """BadInputError (400) unless ``image`` is a non-empty [H, W, 3] uint8 array."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(image.shape) == 0:
        raise BadInputError(f"expected an HxWx3 uint8 RGB image, got shape {list(image.shape)} {image.dtype}")


def _check_names(
    manifest: ModelManifest, stage: str, session: ort.InferenceSession, variant: str | None = None
) -> None:
    """ModelLoadError unless every tensor the manifest gives a role exists in the graph.

    A ``variant`` must also keep the manifest's input dtypes (an FP16 export with float32 inputs).
    """
    st = manifest.stage(stage)
    sides: dict[str, tuple[Literal["inputs", "outputs"], Any]] = {
        "input": ("inputs", session.get_inputs()),
        "output": ("outputs", session.get_outputs()),
    }
    for what, (side, nodes) in sides.items():
        names = [n.name for n in nodes]
        for t in getattr(st, side):
            if t.role is not None and t.name not in names:
                raise ModelLoadError(
                    f"model {manifest.name!r} {stage}: the manifest's {what} {t.name!r} (role {t.role}) is not in "
                    f"{manifest.stage_path(stage, variant).name}, whose {what}s are: {', '.join(names)}"
                )
    if variant is not None:
        types = {n.name: str(n.type) for n in session.get_inputs()}
        for t in st.inputs:
            ort_type = ORT_TYPES[t.dtype]
            if t.name in types and types[t.name] != ort_type:
                raise ModelLoadError(
                    f"model {manifest.name!r} {stage}: input {t.name!r} of the {variant} variant "
                    f"{manifest.stage_path(stage, variant).name} is {types[t.name]}, the manifest says {ort_type} "
                    f"(a variant keeps the stage's input types)"
                )


class ModelPipeline(ABC):
    """ORT sessions built from a manifest, one per stage: everything the daemon calls on a model.

    :param manifest: the model's manifest (``base_dir`` set: loaded from a file)
    :param providers: ORT execution providers in preference order (names or ``(name, options)``);
        the first one picks each stage's variant (:func:`select_variant`)
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
        self.sessions: dict[str, ort.InferenceSession] = {}
        self.variants: dict[str, str | None] = {}  # stage -> the variant its session opened (None: its file)
        wanted = provider_name((providers or ["CPUExecutionProvider"])[0])
        for stage in manifest.spec.stages:
            variant = select_variant(manifest.stage(stage), wanted)
            session = make_session(manifest.stage_path(stage, variant), providers, sess_options, threads)
            used = str(session.get_providers()[0])
            if used != wanted:
                log.warning(
                    "model %s %s runs on %s, not %s (onnxruntime fell back)", manifest.name, stage, used, wanted
                )
            if variant is not None and not is_gpu_provider(used):  # a GPU variant that ended up on the CPU
                variant = None
                rest = [p for p in providers or [] if not is_gpu_provider(provider_name(p))]
                session = make_session(manifest.stage_path(stage), rest, sess_options, threads)
            self.sessions[stage], self.variants[stage] = session, variant
            _check_names(manifest, stage, session, variant)
        self._configure()

    @abstractmethod
    def _configure(self) -> None:
        """Read the model kind's parameters from the manifest (after the sessions exist)."""

    @property
    def two_stage(self) -> bool:
        """Whether the governor decides between the stages (else once per frame, before the run)."""
        return self.manifest.spec.two_stage

    @property
    def provider(self) -> str:
        """The execution provider the sessions run on (first of stage 1's), e.g. ``CPUExecutionProvider``."""
        return str(self.sessions["stage1"].get_providers()[0])

    def stage_info(self) -> dict[str, dict[str, str | None]]:
        """Per stage: the ``provider`` its session runs on, the ``variant`` (None: the stage's own file), ``file``."""
        return {
            stage: {
                "provider": str(session.get_providers()[0]),
                "variant": self.variants.get(stage),
                "file": self.manifest.stage(stage).file_of(self.variants.get(stage)),
            }
            for stage, session in self.sessions.items()
        }

    def names(self, stage: str, side: Literal["inputs", "outputs"], *roles: str) -> list[str]:
        """The graph's tensor names of ``roles`` (each must exist) in ``stage``."""
        out = []
        for role in roles:
            name = self.manifest.tensor_name(stage, role, side)
            if name is None:
                raise ModelLoadError(f"model {self.manifest.name!r} {stage}: no {side[:-1]} has role {role!r}")
            out.append(name)
        return out

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
