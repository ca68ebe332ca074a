"""``lotus models import``: a user's ONNX file(s) -> a verified, measured model folder in their repository.

:func:`inspect_graph` reads a graph's inputs and outputs with onnxruntime (no ``onnx`` package);
:func:`map_roles` gives each tensor the role its kind needs, from ``--map ROLE=TENSOR`` first, then
by shape/dtype and name heuristics (ambiguity is an error naming the ``--map`` to pass);
:func:`import_model` copies the files into ``<repository>/<name>/<version>/``, opens the model,
measures it (:mod:`lotus.runtime.models.profiling`) and writes the manifest last. It never writes
into the installed lotus package or the shipped models.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import onnxruntime as ort
import yaml

from lotus.core.errors import ConfigError, ModelLoadError
from lotus.runtime.models.base import make_session
from lotus.runtime.models.image import guess_layout
from lotus.runtime.models.manifest import (
    KINDS,
    MANIFEST_NAME,
    MODELS_ROOT,
    Metrics,
    ModelManifest,
    Param,
    StageSpec,
    TensorSpec,
    is_within,
    model_versions,
    write_manifest,
)

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # as models.load[].name accepts
ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(int64)": "int64",
              "tensor(int32)": "int32", "tensor(uint8)": "uint8"}  # fmt: skip
FLOATS = ("float32", "float16")
INTS = ("int64", "int32")
Side = Literal["inputs", "outputs"]

# defaults written for a PP-OCR-shaped import (the values PP-OCRv4 uses)
PPOCR_PRE: dict[str, Param] = {"limit_side_len": 960, "limit_type": "max", "mean": 0.5, "std": 0.5,
                               "channel_order": "BGR", "rec_height": 48, "rec_width": 320, "rec_batch": 6}  # fmt: skip
PPOCR_POST: dict[str, Param] = {"thresh": 0.3, "box_thresh": 0.5, "unclip_ratio": 1.6, "max_candidates": 1000}


def _rank(t: TensorSpec, n: int, last: int | None = None) -> bool:
    """Rank ``n`` (or ``n + 1`` with a leading batch of 1), and the last dim ``last`` when given."""
    shape = t.shape[1:] if len(t.shape) == n + 1 and t.shape[0] == 1 else t.shape
    return len(shape) == n and (last is None or shape[-1] == last)


def _is_image(t: TensorSpec) -> bool:
    return len(t.shape) == 4 and t.dtype in (*FLOATS, "uint8") and (t.shape[1] in (1, 3) or t.shape[-1] in (1, 3))


# role -> (does the tensor's shape/dtype fit, name fragments that point to it)
RULES: dict[str, tuple[Callable[[TensorSpec], bool], tuple[str, ...]]] = {
    "image": (_is_image, ("image", "img", "input", "pixel", "data")),
    "features": (lambda t: len(t.shape) == 4 and t.dtype in FLOATS, ("feat", "fmap", "map")),
    "proposals": (lambda t: _rank(t, 2, 4) and t.dtype in FLOATS, ("proposal", "roi", "anchor", "box")),
    "proposal_scores": (lambda t: _rank(t, 1) and t.dtype in FLOATS, ("score", "objectness", "conf")),
    "boxes": (lambda t: _rank(t, 2, 4) and t.dtype in FLOATS, ("box", "bbox")),
    "scores": (lambda t: _rank(t, 1) and t.dtype in FLOATS, ("score", "conf", "prob")),
    "labels": (lambda t: _rank(t, 1) and t.dtype in INTS, ("label", "class", "cls", "categor")),
    "text_map": (lambda t: len(t.shape) == 4 and t.dtype in FLOATS, ("map", "prob", "sigmoid")),
    "crops": (lambda t: len(t.shape) == 4 and t.dtype in FLOATS, ("crop", "x", "input")),
    "text_probs": (lambda t: len(t.shape) == 3 and t.dtype in FLOATS, ("prob", "softmax", "logit")),
}


@dataclass
class Graph:
    """One ONNX file as onnxruntime sees it."""

    stage: str
    path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


def _spec(node: Any, where: str) -> TensorSpec:
    dtype = ORT_DTYPES.get(node.type)
    if dtype is None:
        raise ModelLoadError(f"{where} {node.name!r} has type {node.type}, which lotus cannot serve")
    shape = [d if isinstance(d, int) else (d or f"d{i}") for i, d in enumerate(node.shape)]
    return TensorSpec(name=node.name, shape=shape, dtype=dtype)  # type: ignore[arg-type]


def inspect_graph(path: Path, stage: str = "stage1") -> Graph:
    """Inputs and outputs (names, shapes with dynamic dims as strings, dtypes) of the ONNX file ``path``.

    :raises ModelLoadError: not a readable ONNX file, or a tensor of a type lotus cannot serve
    """
    sess: ort.InferenceSession = make_session(path)
    inputs = [_spec(n, f"{path.name} input") for n in sess.get_inputs()]
    outputs = [_spec(n, f"{path.name} output") for n in sess.get_outputs()]
    return Graph(stage, path, inputs, outputs)


def _describe(tensors: list[TensorSpec]) -> str:
    return ", ".join(f"{t.name} {t.dtype}{t.shape}" for t in tensors) or "none"


def parse_maps(maps: list[str]) -> dict[str, str]:
    """``["ROLE=TENSOR", "stage2.ROLE=TENSOR"]`` -> ``{key: tensor}``; ConfigError naming a bad one."""
    out: dict[str, str] = {}
    for item in maps:
        key, sep, tensor = item.partition("=")
        role = key.split(".")[-1]
        if not sep or not tensor or role not in RULES or key.count(".") > 1:
            raise ConfigError(
                f"--map {item!r}: expected ROLE=TENSOR or STAGE.ROLE=TENSOR with ROLE one of {', '.join(RULES)}"
            )
        out[key] = tensor
    return out


def map_roles(graph: Graph, kind: str, maps: dict[str, str]) -> None:
    """Give the tensors of ``graph`` their roles for ``kind`` in place.

    :raises ModelLoadError: a role no tensor fits, one that several fit (naming the ``--map`` to
        pass), an input left without a role, or a ``--map`` naming a tensor the graph lacks
    """
    spec = KINDS[kind]
    for side, roles in (("inputs", spec.inputs[graph.stage]), ("outputs", spec.outputs[graph.stage])):
        tensors: list[TensorSpec] = getattr(graph, side)
        by_name = {t.name: t for t in tensors}
        for role in roles:
            tensor = maps.get(f"{graph.stage}.{role}", maps.get(role))
            if tensor is None:
                continue
            if tensor not in by_name:
                if f"{graph.stage}.{role}" in maps or not spec.two_stage:
                    raise ModelLoadError(
                        f"--map {role}={tensor}: {graph.path.name} has no {side[:-1]} {tensor!r} "
                        f"(its {side}: {_describe(tensors)})"
                    )
                continue  # an unprefixed map meant for the other stage
            by_name[tensor].role = role  # type: ignore[assignment]
        for role in roles:
            if any(t.role == role for t in tensors):
                continue
            fits, hints = RULES[role]
            free = [t for t in tensors if t.role is None and fits(t)]
            if len(free) > 1:
                named = [t for t in free if t.name.lower() == role] or [
                    t for t in free if any(h in t.name.lower() for h in hints)
                ]
                free = named if len(named) == 1 else free
            if len(free) == 1:
                free[0].role = role  # type: ignore[assignment]
                continue
            flag = f"--map {graph.stage + '.' if spec.two_stage else ''}{role}=TENSOR"
            if free:
                raise ModelLoadError(
                    f"{graph.path.name}: cannot tell which {side[:-1]} is {role!r}: "
                    f"{', '.join(t.name for t in free)} all fit; pass {flag.replace('TENSOR', free[0].name)} "
                    f"(or another of them)"
                )
            if role not in spec.optional:
                raise ModelLoadError(
                    f"{graph.path.name}: no {side[:-1]} looks like {role!r} (its {side}: {_describe(tensors)}); "
                    f"pass {flag}"
                )
        if side == "inputs":
            unfed = [t.name for t in tensors if t.role is None]
            if unfed:
                raise ModelLoadError(
                    f"{graph.path.name}: inputs {', '.join(unfed)} have no role; a {kind} stage reads {list(roles)}"
                )


def parse_params(items: list[str], flag: str) -> dict[str, Param]:
    """``["KEY=VALUE", ...]`` with YAML values (``0.5``, ``[0.5, 0.5, 0.5]``, ``true``)."""
    out: dict[str, Param] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        try:
            value = yaml.safe_load(raw) if sep else None
        except yaml.YAMLError:
            value = None
        scalar = (float, int, str, bool)
        ok = isinstance(value, scalar) or (isinstance(value, list) and all(isinstance(v, scalar) for v in value))
        if not key or not ok:
            raise ConfigError(f"{flag} {item!r}: expected KEY=VALUE with a number, string, bool or list value")
        out[key] = value  # type: ignore[assignment]
    return out


def read_labels(path: Path) -> list[str]:
    """Class names, one per line (blank lines skipped)."""
    try:
        names = [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise ConfigError(f"--labels {path}: {exc.strerror or exc}") from None
    if not names:
        raise ConfigError(f"--labels {path} holds no names")
    return names


def forbidden_roots() -> list[Path]:
    """Folders import never writes into: the shipped models and every installed lotus package."""
    import importlib.util

    roots = [MODELS_ROOT]
    for pkg in ("lotus.core", "lotus.envs", "lotus.governor", "lotus.runtime", "lotus.detectors"):
        spec = importlib.util.find_spec(pkg)
        if spec is not None and spec.submodule_search_locations:
            roots.extend(Path(p) for p in spec.submodule_search_locations)
    return roots


def check_writable_repository(repository: Path) -> None:
    """ConfigError when ``repository`` lies inside the shipped models or the installed lotus package."""
    for root in forbidden_roots():
        if is_within(repository, root):
            raise ConfigError(
                f"model repository {repository} is inside the installed lotus package ({root}), which is read-only: "
                "import into your own repository (--repository DIR, models.repository or ./models)"
            )


def _image_preprocess(graph: Graph, pre: dict[str, Param]) -> dict[str, Param]:
    """``input_size`` and ``layout`` from the image tensor, then the user's keys on top."""
    image = next(t for t in graph.inputs if t.role == "image")
    layout = str(pre.get("layout", guess_layout(image.shape)))
    dims = image.shape[2:] if layout == "NCHW" else image.shape[1:3]
    out: dict[str, Param] = {"layout": layout}
    if all(isinstance(d, int) for d in dims):
        h, w = int(dims[0]), int(dims[1])
        out["input_size"] = h if h == w else [h, w]
    elif "input_size" not in pre:
        raise ModelLoadError(
            f"{graph.path.name}: input {image.name!r} has a dynamic size {image.shape}: pass --pre input_size=SIDE "
            "(or --pre input_size=[H,W])"
        )
    return {**out, **pre}


def _defaults(kind: str, graphs: list[Graph], pre: dict[str, Param], post: dict[str, Param]) -> tuple[dict, dict]:
    if kind == "ppocr":
        return {**PPOCR_PRE, **pre}, {**PPOCR_POST, **post}
    return _image_preprocess(graphs[0], pre), dict(post)


def _max_proposals(graphs: list[Graph], kind: str, given: int | None) -> int:
    """The given cap, else stage 1's fixed proposal count, else 100 (detectors) or 50 (OCR); 1 for one stage."""
    if not KINDS[kind].two_stage:
        return 1
    if given is not None:
        return given
    props = next((t for t in graphs[0].outputs if t.role == "proposals"), None)
    if props is not None and isinstance(props.shape[-2], int):
        return int(props.shape[-2])
    return 50 if kind == "ppocr" else 100


def proposal_counts(max_proposals: int) -> list[int]:
    """Stage-2 proposal counts to time: 1 up to ``max_proposals`` (four distinct points at most)."""
    return sorted({1, max(1, max_proposals // 8), max(1, max_proposals // 2), max_proposals})


def next_version(folder: Path) -> int:
    """One more than the highest version of the model folder (1 when it has none)."""
    versions = model_versions(folder) if folder.is_dir() else {}
    return max(versions, default=0) + 1


def import_model(
    sources: list[Path],
    name: str,
    kind: str,
    repository: Path,
    maps: list[str] | None = None,
    labels: Path | None = None,
    pre: list[str] | None = None,
    post: list[str] | None = None,
    version: int | None = None,
    max_proposals: int | None = None,
    deadline_ms: float | None = None,
    threads: int = 1,
    runs: int = 5,
    description: str = "",
) -> tuple[ModelManifest, Path]:
    """Import ``sources`` (one ONNX file per stage of ``kind``) as ``<repository>/<name>/<version>/``.

    :param maps: ``ROLE=TENSOR`` (or ``STAGE.ROLE=TENSOR``) overrides of the role heuristics
    :param labels: class names file, one per line (the character list for ``ppocr``)
    :param pre: ``KEY=VALUE`` pre-processing keys (see ``docs/models.md``); ``post`` likewise
    :param version: the version folder (default: one more than the highest there)
    :param max_proposals: the most proposals stage 1 passes to stage 2 (two-stage kinds)
    :param deadline_ms: per-frame latency target written to the workload, ms (default: from the timings)
    :param threads: onnxruntime intra-op threads for the timings
    :param runs: timed runs per measurement (after two warm-up runs)
    :returns: the manifest as written and its path
    :raises ConfigError: bad arguments, or a repository inside the installed package
    :raises ModelLoadError: a file that is not ONNX, or tensors that cannot be mapped to roles
    """
    from lotus.runtime.models.profiling import fit_workload, measure
    from lotus.runtime.models.two_stage import create_pipeline

    if not NAME_PATTERN.match(name):
        raise ConfigError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (starting with a letter or digit)")
    if kind not in KINDS:
        raise ConfigError(f"--kind {kind!r}: one of {', '.join(KINDS)}")
    spec = KINDS[kind]
    if len(sources) != len(spec.stages):
        want = "one ONNX file" if len(spec.stages) == 1 else "two ONNX files (stage 1, then stage 2)"
        raise ConfigError(f"kind {kind} takes {want}, got {len(sources)}")
    for src in sources:
        if not Path(src).is_file():
            raise ConfigError(f"ONNX file {src} does not exist")
    repository = Path(repository).expanduser()
    check_writable_repository(repository)
    role_maps = parse_maps(maps or [])
    graphs = [inspect_graph(Path(src), stage) for src, stage in zip(sources, spec.stages, strict=True)]
    for graph in graphs:
        map_roles(graph, kind, role_maps)
    for key, tensor in role_maps.items():
        role = key.split(".")[-1]
        if not any(t.name == tensor and t.role == role for g in graphs for t in (*g.inputs, *g.outputs)):
            raise ModelLoadError(
                f"--map {key}={tensor}: no {role!r} tensor of that name in {', '.join(map(str, sources))}"
            )
    folder = repository / name
    version = version if version is not None else next_version(folder)
    if version < 1:
        raise ConfigError(f"--version {version}: versions are numbers from 1")
    dest = folder / str(version)
    if version in (model_versions(folder) if folder.is_dir() else {}) or dest.exists():
        raise ConfigError(f"{name} version {version} already exists in {repository}: pass another --version")
    preprocess, postprocess = _defaults(
        kind, graphs, parse_params(pre or [], "--pre"), parse_params(post or [], "--post")
    )
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{version}-import-", dir=folder))
    try:
        files = ["model.onnx"] if len(graphs) == 1 else [f"{g.stage}.onnx" for g in graphs]
        stages = []
        for graph, fname in zip(graphs, files, strict=True):
            shutil.copyfile(graph.path, staging / fname)
            stages.append(StageSpec.of_file(graph.stage, f"imported from {graph.path.name}",  # type: ignore[arg-type]
                                            staging / fname, graph.inputs, graph.outputs))  # fmt: skip
        cap = _max_proposals(graphs, kind, max_proposals)
        draft = ModelManifest(
            name=name,
            version=str(version),
            kind=kind,  # type: ignore[arg-type]
            description=description or f"imported from {', '.join(g.path.name for g in graphs)}",
            stages=stages,
            preprocess=preprocess,
            postprocess=postprocess,
            class_names=read_labels(labels) if labels is not None else [],
            metrics=Metrics(stage1_ms=0, stage2_ms={}, threads=threads, device="cpu"),
            workload=fit_workload(name, _zero(), spec.two_stage, cap),
            base_dir=staging,
        )
        pipe = create_pipeline(draft, ["CPUExecutionProvider"], threads=threads)
        timings = measure(pipe, proposal_counts(cap), runs)
        manifest = draft.model_copy(
            update={
                "metrics": Metrics(stage1_ms=round(timings.stage1_ms, 4),
                                   stage2_ms={n: round(v, 4) for n, v in timings.stage2_ms.items()},
                                   threads=threads, device=f"cpu, onnxruntime {ort.__version__} CPUExecutionProvider"),
                "workload": fit_workload(name, timings, spec.two_stage, cap, deadline_ms, threads),
            }
        )  # fmt: skip
        write_manifest(manifest, staging / MANIFEST_NAME)
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if not any(folder.iterdir()):
            folder.rmdir()
        raise
    manifest.base_dir = dest.resolve()
    return manifest, dest / MANIFEST_NAME


def _zero() -> Any:
    from lotus.runtime.models.profiling import Timings

    return Timings(0.0, {1: 0.0}, 1)
