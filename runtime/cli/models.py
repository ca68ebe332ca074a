"""``lotus models``: import your own ONNX models into a model repository, list, show and verify them.

The repository is ``--repository DIR``, else ``models.repository`` of ``--config`` / the
``LOTUS_MODELS__REPOSITORY`` environment, else ``./models``. ``list``, ``show`` and ``verify`` also
see the read-only models shipped with lotus (``--no-shipped`` hides them); ``import`` never writes
there. The repository layout and the manifest are described in ``docs/models.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from lotus.core.errors import ModelLoadError

if TYPE_CHECKING:
    from lotus.runtime.models.manifest import ModelManifest, ModelRepository

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)

RepoOpt = typer.Option(None, "--repository", "-r", help="Model repository (default: models.repository, else ./models).")
ConfigOpt = typer.Option(None, "--config", "-c", help="Daemon config file whose models.repository to use.")
ShippedOpt = typer.Option(True, "--shipped/--no-shipped", help="Include the read-only models shipped with lotus.")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document.")


def repository_dir(repository: Path | None, config: Path | None) -> Path:
    """``--repository``, else the configured ``models.repository``, else ``./models``."""
    if repository is not None:
        return repository.expanduser()
    from lotus.runtime.config import load_settings

    return load_settings(config).models.repository or Path("models")


def _repo(repository: Path | None, config: Path | None, shipped: bool) -> ModelRepository:
    from lotus.runtime.models.manifest import MODELS_ROOT, ModelRepository

    directory = repository_dir(repository, config)
    return ModelRepository(directory if directory.is_dir() else None, MODELS_ROOT if shipped else None)


def import_(
    files: list[Path] = typer.Argument(..., help="The ONNX file (two for two-stage kinds: stage 1, then stage 2)."),
    name: str = typer.Option(..., "--name", "-n", help="Model name: the folder in the repository, served under it."),
    kind: str = typer.Option(..., "--kind", "-k", help="onnx-detector (one graph), frcnn or ppocr (two graphs)."),
    repository: Path | None = RepoOpt,
    config: Path | None = ConfigOpt,
    labels: Path | None = typer.Option(None, "--labels", help="Class names, one per line (ppocr: the characters)."),
    maps: list[str] = typer.Option([], "--map", help="ROLE=TENSOR (or STAGE.ROLE=TENSOR) when the guess is ambiguous."),
    pre: list[str] = typer.Option([], "--pre", help="Pre-processing KEY=VALUE, e.g. mean=[0.485,0.456,0.406]."),
    post: list[str] = typer.Option([], "--post", help="Post-processing KEY=VALUE, e.g. nms_iou=0.5."),
    version: int | None = typer.Option(None, "--version", min=1, help="Version folder (default: highest + 1)."),
    max_proposals: int | None = typer.Option(None, "--max-proposals", min=1, help="Stage-1 proposal cap (two-stage)."),
    deadline_ms: float | None = typer.Option(None, "--deadline-ms", min=0.1, help="Per-frame latency target, ms."),
    threads: int = typer.Option(1, "--threads", min=1, help="onnxruntime threads for the timings."),
    runs: int = typer.Option(5, "--runs", min=1, max=100, help="Timed runs per measurement."),
    description: str = typer.Option("", "--description", help="One line about the model."),
) -> None:
    """Inspect, copy, measure and register an ONNX model in your repository (never in the lotus package)."""
    from lotus.runtime.models.importing import import_model

    manifest, path = import_model(
        files, name, kind, repository_dir(repository, config), maps=maps, labels=labels, pre=pre, post=post,
        version=version, max_proposals=max_proposals, deadline_ms=deadline_ms, threads=threads, runs=runs,
        description=description,
    )  # fmt: skip
    typer.echo(f"imported {manifest.name} version {manifest.version} ({manifest.kind}) -> {path}")
    for st in manifest.stages:
        for side in ("inputs", "outputs"):
            roles = ", ".join(f"{t.name}={t.role}" for t in getattr(st, side) if t.role)
            typer.echo(f"  {st.name} {side}: {roles}")
    m = manifest.metrics
    stage2 = ", ".join(f"N={n}: {v:.3f}" for n, v in m.stage2_ms.items())
    typer.echo(f"  measured: stage 1 {m.stage1_ms:.3f} ms, stage 2 {stage2} ms; "
               f"deadline {manifest.workload.default_deadline_ms} ms")  # fmt: skip


def _row(repo: ModelRepository, name: str) -> dict[str, Any]:
    from lotus.runtime.models.manifest import read_manifest

    versions = repo.versions(name)
    served = max(versions)
    row: dict[str, Any] = {"name": name, "versions": [str(v) for v in versions], "served": str(served),
                           "where": "shipped" if repo.is_shipped(versions[served]) else "repository",
                           "path": str(versions[served])}  # fmt: skip
    try:
        m = read_manifest(versions[served], verify=False)
        row.update(kind=m.kind, version=m.version, error=None)
    except ModelLoadError as exc:
        row.update(kind=None, version=None, error=str(exc))
    return row


def list_(
    repository: Path | None = RepoOpt,
    config: Path | None = ConfigOpt,
    shipped: bool = ShippedOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Every model name the daemon would resolve, its versions and the one served."""
    from lotus.core.console import print_json

    repo = _repo(repository, config, shipped)
    rows = [_row(repo, name) for name in sorted(repo.models())]
    if as_json:
        print_json({"roots": [str(r) for r in repo.roots], "models": rows})
        return
    if not rows:
        typer.echo(f"no models in {', '.join(map(str, repo.roots)) or 'any repository'}")
        return
    typer.echo(f"{'NAME':<20} {'KIND':<14} {'SERVED':<8} {'VERSIONS':<10} {'WHERE':<10} PATH")
    for r in rows:
        kind = r["kind"] or "invalid"
        typer.echo(f"{r['name']:<20} {kind:<14} {r['served']:<8} {','.join(r['versions']):<10} {r['where']:<10} "
                   f"{r['path']}")  # fmt: skip


def _describe(manifest: ModelManifest, path: Path) -> list[str]:
    lines = [f"{manifest.name} version {manifest.version}: {manifest.kind} ({manifest.spec.description})",
             f"  manifest: {path}", f"  files in: {manifest.base_dir}"]  # fmt: skip
    if manifest.description:
        lines.append(f"  about: {manifest.description}")
    for st in manifest.stages:
        lines.append(f"  {st.name}: {st.file} ({st.size_bytes} bytes, sha256 {st.sha256[:12]}...) - {st.role}")
        for side in ("inputs", "outputs"):
            for t in getattr(st, side):
                lines.append(f"    {side[:-1]:<6} {t.name:<24} {t.dtype:<8} {str(t.shape):<22} role {t.role or '-'}")
    for section in ("preprocess", "postprocess"):
        params = getattr(manifest, section)
        if params:
            lines.append(f"  {section}: " + ", ".join(f"{k}={v}" for k, v in params.items()))
    if manifest.class_names:
        more = " ..." if len(manifest.class_names) > 10 else ""
        lines.append(f"  classes ({len(manifest.class_names)}): {', '.join(manifest.class_names[:10])}{more}")
    wl, m = manifest.workload, manifest.metrics
    lines.append(f"  measured: stage 1 {m.stage1_ms} ms, stage 2 {m.stage2_ms} ms ({m.threads} thread(s), {m.device})")
    lines.append(f"  workload: deadline {wl.default_deadline_ms} ms, max proposals {wl.max_proposals}, "
                 f"stage1 {wl.stage1.model_dump()}")  # fmt: skip
    return lines


def show(
    name: str = typer.Argument(..., help="Model name."),
    version: str | None = typer.Option(None, "--version", help="Version folder (default: the one served)."),
    repository: Path | None = RepoOpt,
    config: Path | None = ConfigOpt,
    shipped: bool = ShippedOpt,
    as_json: bool = JsonOpt,
) -> None:
    """One model's manifest: stages, tensors and their roles, parameters, timings and workload."""
    from lotus.core.console import print_json
    from lotus.runtime.models.manifest import read_manifest

    repo = _repo(repository, config, shipped)
    path = repo.find(name, version)
    manifest = read_manifest(path, verify=False)
    if as_json:
        print_json({"path": str(path), **manifest.model_dump(mode="json", exclude_none=True)})
        return
    typer.echo("\n".join(_describe(manifest, path)))


def verify(
    name: str | None = typer.Argument(None, help="Model name (default: every model)."),
    repository: Path | None = RepoOpt,
    config: Path | None = ConfigOpt,
    shipped: bool = ShippedOpt,
) -> None:
    """Re-check every version's manifest and the sha256 of its ONNX files; exit 2 when one fails."""
    from lotus.runtime.models.manifest import read_manifest

    repo = _repo(repository, config, shipped)
    names = [name] if name is not None else sorted(repo.models())
    if name is not None:
        repo.find(name)  # unknown name: one error line listing what is there
    failed, total = [], 0
    for n in names:
        for v, path in repo.versions(n).items():
            total += 1
            try:
                read_manifest(path, verify=True)
                typer.echo(f"ok      {n} version {v} ({path.parent})")
            except ModelLoadError as exc:
                failed.append(f"{n} version {v}")
                typer.echo(f"FAILED  {n} version {v}: {exc}")
    if failed:
        raise ModelLoadError(f"{len(failed)} of {total} model versions failed verification: {', '.join(failed)}")


app.command("import")(import_)
app.command("list")(list_)
app.command("show")(show)
app.command("verify")(verify)
