"""Model manifests and the model repository: validated YAML describing each two-stage model and its files.

A model is a folder ``<repository>/<name>/`` holding ``manifest.yaml``. Its stage files are
relative to that folder, or to an installed Python package's folder when ``files_from`` names one
(the PP-OCR files ship inside ``rapidocr_onnxruntime``). Every file is checked against its sha256.

:class:`ModelRepository` resolves a model name: the configured repository directory
(``models.repository``, yours, e.g. the ``models/`` folder ``lotus compress`` writes) is searched
first, then the models shipped with lotus in ``lotus.compressed_models`` (:data:`MODELS_ROOT`),
which are read-only defaults: nothing in the daemon writes there.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lotus.core.errors import ModelLoadError
from lotus.core.files import sha256_file
from lotus.envs.workload import WorkloadProfile

# the models shipped with lotus (the lotus.compressed_models package folder): read-only defaults
MODELS_ROOT = Path(__file__).resolve().parents[2] / "compressed_models"
MANIFEST_NAME = "manifest.yaml"

Scalar = float | int | str | bool
Param = Scalar | list[Scalar]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TensorSpec(_Strict):
    """One graph input or output; string dims are dynamic."""

    name: str
    shape: list[int | str]
    dtype: Literal["float32", "float16", "int64", "int32", "uint8"]
    description: str = ""


class StageSpec(_Strict):
    """One ONNX graph of the pipeline."""

    name: Literal["stage1", "stage2"]
    role: str = Field(description="what the stage does, e.g. 'backbone + RPN'")
    file: str = Field(description="ONNX file, relative to the model folder (or to files_from)")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]

    @classmethod
    def of_file(
        cls,
        name: Literal["stage1", "stage2"],
        role: str,
        path: Path,
        inputs: list[TensorSpec],
        outputs: list[TensorSpec],
    ) -> StageSpec:
        """The stage whose ONNX graph is ``path``: its file name, hash and size are read from it."""
        return cls(name=name, role=role, file=path.name, sha256=sha256_file(path), size_bytes=path.stat().st_size,
                   inputs=inputs, outputs=outputs)  # fmt: skip


class Metrics(_Strict):
    """Measured accuracy and latency (CPU, onnxruntime)."""

    accuracy: dict[str, float] = Field(default_factory=dict, description="e.g. map50, word_accuracy")
    stage1_ms: float = Field(ge=0, description="median stage-1 latency, ms")
    stage2_ms: dict[int, float] = Field(description="median stage-2 latency per proposal count N, ms")
    threads: int = Field(ge=1, description="onnxruntime intra-op threads used for the timings")
    device: str = Field(description="where the timings were taken")


class ModelManifest(_Strict):
    """One two-stage model: what :mod:`lotus.runtime.models.two_stage` needs to run it without torch."""

    name: str
    version: str
    kind: Literal["frcnn", "ppocr"]
    description: str = ""
    files_from: str | None = Field(default=None, description="Python package whose folder holds the files")
    stages: list[StageSpec] = Field(min_length=2, max_length=2)
    preprocess: dict[str, Param] = Field(default_factory=dict)
    postprocess: dict[str, Param] = Field(default_factory=dict)
    class_names: list[str] = Field(default_factory=list)
    metrics: Metrics
    workload: WorkloadProfile
    base_dir: Path | None = Field(default=None, exclude=True, description="resolved at load time")

    def stage(self, name: str) -> StageSpec:
        for st in self.stages:
            if st.name == name:
                return st
        raise ModelLoadError(f"model {self.name!r} has no stage {name!r}")

    def stage_path(self, name: str) -> Path:
        """Absolute path of a stage's ONNX file."""
        if self.base_dir is None:
            raise ModelLoadError(f"model {self.name!r} was not loaded from a file")
        return self.base_dir / self.stage(name).file


def _package_dir(package: str, manifest_path: Path) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            f"{manifest_path}: files come from package {package!r}, which is not installed "
            f"(pip install 'lotus-edge[ocr]')"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def resolve_manifest_path(name_or_path: str | Path, root: Path | None = None) -> Path:
    """``manifest.yaml`` of a model name under ``root`` (default: shipped models), a model folder or a YAML path."""
    root = Path(root) if root is not None else MODELS_ROOT
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml"):
        return p
    if p.is_dir():
        return p / MANIFEST_NAME
    candidate = root / str(name_or_path) / MANIFEST_NAME
    if not candidate.exists():
        known = ", ".join(list_models(root)) or "none"
        raise ModelLoadError(f"unknown model {str(name_or_path)!r} in {root} (known: {known})")
    return candidate


def load_manifest(name_or_path: str | Path, root: Path | None = None, verify: bool = True) -> ModelManifest:
    """Load and validate a manifest; with ``verify`` check that every stage file exists and matches its hash.

    :param name_or_path: a model name under ``root``, a model folder, or a manifest YAML path
    :param root: the repository a name is looked up in (default: the shipped models, :data:`MODELS_ROOT`)
    :raises ModelLoadError: naming the manifest or file that is missing, invalid or corrupt
    """
    return read_manifest(resolve_manifest_path(name_or_path, root), verify)


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
        errors = "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:5])
        raise ModelLoadError(f"manifest {path} is invalid: {errors}") from None
    base = _package_dir(manifest.files_from, path) if manifest.files_from else path.parent
    manifest.base_dir = base.resolve()
    if verify:
        for st in manifest.stages:
            f = manifest.base_dir / st.file
            if not f.is_file():
                raise ModelLoadError(f"model {manifest.name!r}: file {f} is missing")
            digest = sha256_file(f)
            if digest != st.sha256:
                raise ModelLoadError(
                    f"model {manifest.name!r}: file {f} is corrupt (sha256 {digest[:12]}..., "
                    f"manifest says {st.sha256[:12]}...)"
                )
    return manifest


def list_models(root: Path | None = None) -> list[str]:
    """Names of the models (folders with a ``manifest.yaml``) under ``root`` (default: the shipped models)."""
    root = Path(root) if root is not None else MODELS_ROOT
    return sorted(p.parent.name for p in root.glob(f"*/{MANIFEST_NAME}"))


def is_within(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (both resolved, symlinks followed)."""
    p, f = Path(path).expanduser().resolve(), Path(folder).resolve()
    return p == f or f in p.parents


@dataclass(frozen=True)
class ModelRepository:
    """Where model names are looked up: ``directory`` first, then the shipped models.

    :param directory: your repository (``models.repository``): ``<name>/manifest.yaml`` folders,
        e.g. ``runs/compress/models``; None: the shipped models only. A name found here shadows
        the shipped model of the same name.
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
        """Every model name the repository resolves, mapped to its manifest path (first root wins)."""
        found: dict[str, Path] = {}
        for root in self.roots:
            for name in list_models(root):
                found.setdefault(name, root / name / MANIFEST_NAME)
        return found

    def find(self, name: str) -> Path:
        """The ``manifest.yaml`` that ``name`` resolves to.

        :raises ModelLoadError: the name is in none of the roots (the message lists what is there)
        """
        for root in self.roots:
            candidate = root / name / MANIFEST_NAME
            if candidate.is_file():
                return candidate
        where = " nor ".join(
            f"the shipped models ({root})" if self.is_shipped(root) else f"models.repository {root}"
            for root in self.roots
        )
        known = ", ".join(f"{n} (shipped)" if self.is_shipped(p) else n for n, p in sorted(self.models().items()))
        raise ModelLoadError(f"unknown model {name!r}: not in {where or 'any repository'} (known: {known or 'none'})")

    def load(self, name: str, verify: bool = True) -> ModelManifest:
        """Load and verify the manifest ``name`` resolves to (see :func:`load_manifest`)."""
        return read_manifest(self.find(name), verify)


def write_manifest(manifest: ModelManifest, path: Path) -> None:
    """Write ``manifest`` as YAML (stable key order)."""
    data = manifest.model_dump(mode="json", exclude_none=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
