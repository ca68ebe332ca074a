"""Model manifests and the model repository: validated YAML describing each model, its graphs and their tensors.

A repository is a folder of model folders. A model folder holds either one ``manifest.yaml``
(flat: version ``1``) or Triton-style numeric version folders ``<name>/<version>/manifest.yaml``;
the highest version is served unless one is pinned. Stage files are relative to the manifest's
folder, or to an installed Python package's folder when ``files_from`` names one (the PP-OCR files
ship inside ``rapidocr_onnxruntime``). Every file is checked against its sha256. The contract is
written up in ``docs/models.md``.

Each model has a ``kind`` (:data:`KINDS`): how many ONNX graphs it has and which tensor *roles*
(``image``, ``proposals``, ``boxes``, ...) each graph reads and writes. Tensors carry their role in
the manifest, so the pipelines never depend on a graph's own tensor names.

:class:`ModelRepository` resolves a model name: the configured repository directory
(``models.repository``, yours, e.g. the ``models/`` folder ``lotus models import`` writes) is
searched first, then the models shipped with lotus in ``lotus.compressed_models``
(:data:`MODELS_ROOT`), which are read-only defaults: nothing in lotus writes there at run time.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lotus.core.errors import ModelLoadError
from lotus.core.files import sha256_file
from lotus.envs.workload import WorkloadProfile

# the models shipped with lotus (the lotus.compressed_models package folder): read-only defaults
MODELS_ROOT = Path(__file__).resolve().parents[2] / "compressed_models"
MANIFEST_NAME = "manifest.yaml"
FLAT_VERSION = 1  # the version of a flat <name>/manifest.yaml model folder

Scalar = float | int | str | bool
Param = Scalar | list[Scalar]
StageName = Literal["stage1", "stage2"]
Role = Literal[
    "image",  # the model input built from the RGB frame
    "features",  # stage-1 feature map that stage 2 reads (frcnn)
    "proposals",  # [N, 4] xyxy candidate boxes, model-input px (frcnn)
    "proposal_scores",  # [N] objectness of the proposals (frcnn)
    "boxes",  # [M, 4] final boxes
    "scores",  # [M] final confidences
    "labels",  # [M] integer class ids
    "text_map",  # [1, 1, H, W] text probability map (ppocr stage 1)
    "crops",  # [B, 3, h, w] batch of text crops (ppocr stage 2)
    "text_probs",  # [B, T, C] per-step character probabilities, CTC (ppocr stage 2)
]
ROLES: tuple[str, ...] = get_args(Role)
Dtype = Literal["float32", "float16", "int64", "int32", "uint8"]
Precision = Literal["fp32", "fp16", "int8"]  # the keys of a stage's ``variants``


@dataclass(frozen=True)
class KindSpec:
    """A model kind: its stages and the tensor roles each stage reads and writes (in default order).

    :param inputs: stage -> input roles, all required
    :param outputs: stage -> output roles; those in ``optional`` may be absent
    """

    description: str
    inputs: dict[str, tuple[str, ...]]
    outputs: dict[str, tuple[str, ...]]
    optional: frozenset[str] = field(default_factory=frozenset)

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(self.inputs)

    @property
    def two_stage(self) -> bool:
        """Two graphs with a governor decision between them (one decision per frame otherwise)."""
        return len(self.inputs) == 2


KINDS: dict[str, KindSpec] = {
    "frcnn": KindSpec(
        "two-stage detector: stage 1 = backbone + proposals, stage 2 = box head over the proposals",
        inputs={"stage1": ("image",), "stage2": ("features", "proposals")},
        outputs={"stage1": ("features", "proposals", "proposal_scores"), "stage2": ("boxes", "scores", "labels")},
        optional=frozenset({"proposal_scores"}),
    ),
    "ppocr": KindSpec(
        "two-stage OCR: stage 1 = text detection map, stage 2 = recogniser run over crops of the found boxes",
        inputs={"stage1": ("image",), "stage2": ("crops",)},
        outputs={"stage1": ("text_map",), "stage2": ("text_probs",)},
    ),
    "onnx-detector": KindSpec(
        "single-stage detector: one graph from image to boxes, scores and (optional) labels",
        inputs={"stage1": ("image",)},
        outputs={"stage1": ("boxes", "scores", "labels")},
        optional=frozenset({"labels"}),
    ),
}
Kind = Literal["frcnn", "ppocr", "onnx-detector"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TensorSpec(_Strict):
    """One graph input or output; string dims are dynamic. ``role``: what the pipeline uses it for."""

    name: str
    shape: list[int | str]
    dtype: Dtype
    role: Role | None = Field(default=None, description="filled in from the kind's defaults when absent")
    description: str = ""


class StageVariant(_Strict):
    """Another build of a stage's graph (e.g. FP16 for GPU providers), with the stage's tensors unchanged."""

    file: str = Field(description="ONNX file, relative to the model folder (or to files_from)")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)


class StageSpec(_Strict):
    """One ONNX graph of the pipeline; ``variants`` are optional other precisions of it (``docs/models.md``)."""

    name: StageName
    role: str = Field(description="what the stage does, e.g. 'backbone + RPN'")
    file: str = Field(description="ONNX file, relative to the model folder (or to files_from)")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    variants: dict[Precision, StageVariant] | None = Field(
        default=None, description="precision -> another file of this graph; GPU providers take fp16, else fp32"
    )

    @classmethod
    def of_file(
        cls, name: StageName, role: str, path: Path, inputs: list[TensorSpec], outputs: list[TensorSpec]
    ) -> StageSpec:
        """The stage whose ONNX graph is ``path``: its file name, hash and size are read from it."""
        return cls(name=name, role=role, file=path.name, sha256=sha256_file(path), size_bytes=path.stat().st_size,
                   inputs=inputs, outputs=outputs)  # fmt: skip

    def file_of(self, variant: str | None = None) -> str:
        """The file of ``variant`` (None: the stage's own ``file``)."""
        if variant is None:
            return self.file
        if not self.variants or variant not in self.variants:
            raise ModelLoadError(f"stage {self.name} has no {variant!r} variant")
        return self.variants[variant].file

    def tensor(self, role: str, side: Literal["inputs", "outputs"]) -> TensorSpec | None:
        """The input or output tensor that has ``role`` (None: none)."""
        return next((t for t in getattr(self, side) if t.role == role), None)


class Metrics(_Strict):
    """Measured accuracy and latency (CPU, onnxruntime)."""

    accuracy: dict[str, float] = Field(default_factory=dict, description="e.g. map50, word_accuracy")
    stage1_ms: float = Field(ge=0, description="median stage-1 latency, ms")
    stage2_ms: dict[int, float] = Field(description="median stage-2 latency per proposal count N, ms")
    threads: int = Field(ge=1, description="onnxruntime intra-op threads used for the timings")
    device: str = Field(description="where the timings were taken")


def _assign_roles(tensors: list[TensorSpec], roles: tuple[str, ...], where: str) -> None:
    """Fill missing roles: a tensor named like a free role takes it, the rest take the free roles in order."""
    taken: set[str] = {t.role for t in tensors if t.role is not None}
    for t in tensors:
        if t.role is None and t.name in roles and t.name not in taken:
            t.role = cast(Role, t.name)
            taken.add(t.name)
    free = iter([r for r in roles if r not in taken])
    for t in tensors:
        if t.role is None:
            t.role = cast("Role | None", next(free, None))
    seen: set[str] = set()
    for t in tensors:
        if t.role is not None and t.role in seen:
            raise ValueError(f"{where}: role {t.role!r} is given to more than one tensor")
        if t.role is not None:
            seen.add(t.role)


class ModelManifest(_Strict):
    """One model: what :mod:`lotus.runtime.models` needs to run it without torch (see ``docs/models.md``)."""

    name: str
    version: str | None = Field(default=None, description="None: the version folder's number")
    kind: Kind
    description: str = ""
    files_from: str | None = Field(default=None, description="Python package whose folder holds the files")
    stages: list[StageSpec] = Field(min_length=1, max_length=2)
    preprocess: dict[str, Param] = Field(default_factory=dict)
    postprocess: dict[str, Param] = Field(default_factory=dict)
    class_names: list[str] = Field(default_factory=list)
    metrics: Metrics
    workload: WorkloadProfile
    base_dir: Path | None = Field(default=None, exclude=True, description="resolved at load time")

    @model_validator(mode="after")
    def _roles(self) -> ModelManifest:
        spec = KINDS[self.kind]
        names = [st.name for st in self.stages]
        if names != list(spec.stages):
            raise ValueError(f"kind {self.kind!r} has stages {list(spec.stages)}, the manifest lists {names}")
        for st in self.stages:
            for side, roles in (("inputs", spec.inputs[st.name]), ("outputs", spec.outputs[st.name])):
                tensors: list[TensorSpec] = getattr(st, side)
                _assign_roles(tensors, roles, f"{st.name}.{side}")
                for t in tensors:
                    if t.role is not None and t.role not in roles:
                        raise ValueError(f"{st.name}.{side}: role {t.role!r} of {t.name!r} is not one of {list(roles)}")
                    if t.role is None and side == "inputs":
                        raise ValueError(f"{st.name}.inputs: {t.name!r} has no role (the stage reads {list(roles)})")
                have = {t.role for t in tensors}
                missing = [r for r in roles if r not in have and r not in spec.optional]
                if missing:
                    raise ValueError(f"{st.name}.{side}: no tensor has role {', '.join(map(repr, missing))}")
        return self

    @property
    def spec(self) -> KindSpec:
        """The kind's stages and roles (:data:`KINDS`)."""
        return KINDS[self.kind]

    def stage(self, name: str) -> StageSpec:
        for st in self.stages:
            if st.name == name:
                return st
        raise ModelLoadError(f"model {self.name!r} has no stage {name!r}")

    def stage_path(self, name: str, variant: str | None = None) -> Path:
        """Absolute path of a stage's ONNX file, or of one of its ``variants``."""
        if self.base_dir is None:
            raise ModelLoadError(f"model {self.name!r} was not loaded from a file")
        return self.base_dir / self.stage(name).file_of(variant)

    def tensor_name(self, stage: str, role: str, side: Literal["inputs", "outputs"]) -> str | None:
        """The graph's name for the tensor of ``role`` (None: the stage has none, an optional role)."""
        t = self.stage(stage).tensor(role, side)
        return None if t is None else t.name


def _package_dir(package: str, manifest_path: Path) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"{manifest_path}: files come from package {package!r}, which is not installed "
            f"(pip install 'lotus-edge[ocr]')"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def model_versions(folder: Path) -> dict[int, Path]:
    """Version -> ``manifest.yaml`` of one model folder, lowest first: numeric sub-folders, a flat manifest as 1.

    :raises ModelLoadError: the folder has both a flat manifest and a ``1/`` version folder
    """
    folder = Path(folder)
    found = {int(p.parent.name): p for p in folder.glob(f"*/{MANIFEST_NAME}") if p.parent.name.isdigit()}
    flat = folder / MANIFEST_NAME
    if flat.is_file():
        if FLAT_VERSION in found:
            raise ModelLoadError(f"model folder {folder} has both {MANIFEST_NAME} and {FLAT_VERSION}/{MANIFEST_NAME}")
        found[FLAT_VERSION] = flat
    return dict(sorted(found.items()))


def version_of(path: Path) -> str:
    """The repository version of a ``manifest.yaml`` path: its numeric folder, else 1 (flat)."""
    parent = Path(path).parent
    if parent.name.isdigit() and not (parent.parent / MANIFEST_NAME).is_file():
        return str(int(parent.name))
    return str(FLAT_VERSION)


def _pick(versions: dict[int, Path], name: str, version: str | int | None, where: Path) -> Path:
    """The pinned version's manifest, else the highest one."""
    if version is None:
        return versions[max(versions)]
    if not str(version).isdigit():
        raise ModelLoadError(f"model {name!r}: version must be a folder number like 2, got {version!r}")
    if int(version) not in versions:
        have = ", ".join(map(str, versions))
        raise ModelLoadError(f"model {name!r} has no version {version} in {where} (versions: {have})")
    return versions[int(version)]


def resolve_manifest_path(name_or_path: str | Path, root: Path | None = None, version: str | int | None = None) -> Path:
    """``manifest.yaml`` of a model name under ``root`` (default: shipped models), a model folder or a YAML path.

    A model folder with version folders resolves to ``version`` (default: the highest).
    """
    root = Path(root) if root is not None else MODELS_ROOT
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return p
    if p.is_dir():
        versions = model_versions(p)
        return _pick(versions, p.name, version, p) if versions else p / MANIFEST_NAME
    versions = model_versions(root / str(name_or_path))
    if not versions:
        known = ", ".join(list_models(root)) or "none"
        raise ModelLoadError(f"unknown model {str(name_or_path)!r} in {root} (known: {known})")
    return _pick(versions, str(name_or_path), version, root)


def load_manifest(
    name_or_path: str | Path, root: Path | None = None, verify: bool = True, version: str | int | None = None
) -> ModelManifest:
    """Load and validate a manifest; with ``verify`` check that every stage file exists and matches its hash.

    :param name_or_path: a model name under ``root``, a model folder, or a manifest YAML path
    :param root: the repository a name is looked up in (default: the shipped models, :data:`MODELS_ROOT`)
    :param version: the version folder to load (default: the highest)
    :raises ModelLoadError: naming the manifest or file that is missing, invalid or corrupt
    """
    return read_manifest(resolve_manifest_path(name_or_path, root, version), verify)


def verify_files(manifest: ModelManifest) -> None:
    """Check that every stage file (``variants`` included) exists and matches its sha256.

    :raises ModelLoadError: naming the missing or corrupt file
    """
    assert manifest.base_dir is not None
    for st in manifest.stages:
        entries: list[StageSpec | StageVariant] = [st, *(st.variants or {}).values()]
        for entry in entries:
            f = manifest.base_dir / entry.file
            if not f.is_file():
                raise ModelLoadError(f"model {manifest.name!r}: file {f} is missing")
            digest = sha256_file(f)
            if digest != entry.sha256:
                raise ModelLoadError(
                    f"model {manifest.name!r}: file {f} is corrupt (sha256 {digest[:12]}..., "
                    f"manifest says {entry.sha256[:12]}...)"
                )


def _error_text(err: Any) -> str:
    """One validation error as ``loc: message`` (a whole-manifest check has no loc)."""
    msg = str(err["msg"]).removeprefix("Value error, ")
    loc = ".".join(str(x) for x in err["loc"])
    return f"{loc}: {msg}" if loc else msg


def read_manifest(path: Path, verify: bool = True) -> ModelManifest:
    """Load and validate the manifest YAML at ``path`` (see :func:`load_manifest`)."""
    if not path.is_file():
        raise ModelLoadError(f"manifest {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ModelLoadError(f"manifest {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"manifest {path} must be a YAML mapping")
    try:
        manifest = ModelManifest.model_validate(data)
    except ValidationError as exc:
        errors = "; ".join(_error_text(e) for e in exc.errors()[:5])
        raise ModelLoadError(f"manifest {path} is invalid: {errors}") from None
    if manifest.version is None:
        manifest.version = version_of(path)
    base = _package_dir(manifest.files_from, path) if manifest.files_from else path.parent
    manifest.base_dir = base.resolve()
    if verify:
        verify_files(manifest)
    return manifest


def list_models(root: Path | None = None) -> list[str]:
    """Names of the models under ``root`` (default: the shipped models): folders with a manifest or version folders."""
    root = Path(root) if root is not None else MODELS_ROOT
    names = {p.parent.name for p in root.glob(f"*/{MANIFEST_NAME}")}
    names |= {p.parent.parent.name for p in root.glob(f"*/*/{MANIFEST_NAME}") if p.parent.name.isdigit()}
    return sorted(names)


def is_within(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (both resolved, symlinks followed)."""
    p, f = Path(path).expanduser().resolve(), Path(folder).resolve()
    return p == f or f in p.parents


@dataclass(frozen=True)
class ModelRepository:
    """Where model names are looked up: ``directory`` first, then the shipped models.

    :param directory: your repository (``models.repository``): ``<name>/manifest.yaml`` or
        ``<name>/<version>/manifest.yaml`` folders, e.g. ``./models``; None: the shipped models
        only. A name found here shadows the shipped model of the same name (all its versions).
    :param shipped: the read-only defaults shipped with lotus (:data:`MODELS_ROOT`); None: no fallback
    """

    directory: Path | None = None
    shipped: Path | None = MODELS_ROOT

    @property
    def roots(self) -> list[Path]:
        """The folders searched, in order (the same folder once)."""
        out: list[Path] = []
        for root in (self.directory, self.shipped):
            if root is not None and all(Path(root).resolve() != r.resolve() for r in out):
                out.append(Path(root))
        return out

    def is_shipped(self, path: Path) -> bool:
        """Whether ``path`` lies inside the shipped (read-only) models folder."""
        return self.shipped is not None and is_within(path, self.shipped)

    def models(self) -> dict[str, Path]:
        """Every model name the repository resolves, mapped to the manifest it serves (first root wins)."""
        found: dict[str, Path] = {}
        for root in self.roots:
            for name in list_models(root):
                if name not in found:
                    versions = model_versions(root / name)
                    found[name] = versions[max(versions)]
        return found

    def versions(self, name: str) -> dict[int, Path]:
        """Version -> manifest of ``name`` in the first root that has it (empty: unknown)."""
        for root in self.roots:
            versions = model_versions(root / name)
            if versions:
                return versions
        return {}

    def find(self, name: str, version: str | int | None = None) -> Path:
        """The ``manifest.yaml`` that ``name`` resolves to: the pinned ``version``, else the highest.

        :raises ModelLoadError: the name is in none of the roots (the message lists what is there),
            or it has no such version
        """
        for root in self.roots:
            versions = model_versions(root / name)
            if versions:
                return _pick(versions, name, version, root / name)
        where = " nor ".join(
            f"the shipped models ({root})" if self.is_shipped(root) else f"models.repository {root}"
            for root in self.roots
        )
        known = ", ".join(f"{n} (shipped)" if self.is_shipped(p) else n for n, p in sorted(self.models().items()))
        raise ModelLoadError(f"unknown model {name!r}: not in {where or 'any repository'} (known: {known or 'none'})")

    def load(self, name: str, verify: bool = True, version: str | int | None = None) -> ModelManifest:
        """Load and verify the manifest ``name`` resolves to (see :func:`load_manifest`)."""
        return read_manifest(self.find(name, version), verify)


def write_manifest(manifest: ModelManifest, path: Path) -> None:
    """Write ``manifest`` as YAML (stable key order)."""
    data = manifest.model_dump(mode="json", exclude_none=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
