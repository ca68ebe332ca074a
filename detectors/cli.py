"""``lotus detectors train|export|eval|dataset|ocr-manifest`` and ``lotus compress``.

torch and ``detectors`` are imported inside the commands: the runtime never imports torch.
Every command writes under the working directory (``runs/...``) by default; only ``--ship``
writes into the shipped models (``compressed_models/`` of the source tree lotus runs from).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lotus.core.cli import needs_extra
from lotus.core.errors import ConfigError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def register(root: typer.Typer) -> None:
    """Mount ``lotus detectors ...`` and ``lotus compress`` on the root ``lotus`` app."""
    root.add_typer(app, name="detectors", help="Two-stage detector: train, export, eval, dataset, ocr-manifest.")
    root.command("compress", help="Prune, quantize and measure the detector; write the report.")(
        needs_extra("train", "lotus compress")(compress)
    )


DEFAULT_CKPT = Path("runs/detectors/frcnn-lite.pt")
# the trained dense weights shipped with lotus (3000 steps, mAP@0.5 0.94): what compress starts from
# when no checkpoint of your own exists yet
SHIPPED_CKPT = Path(__file__).resolve().parent / "weights" / "frcnn-lite-dense.pt"
DEFAULT_WORK = Path("runs/compress")
DEFAULT_OCR_DIR = Path("runs/models/ppocr-v4")  # a model folder of the repository runs/models


def ship_dir(name: str) -> Path:
    """``compressed_models/<name>`` of the source checkout lotus runs from (``--ship``'s target).

    :raises ConfigError: lotus runs from an installed package, not a source checkout (a package
        install is never written to)
    """
    from lotus.runtime.models.manifest import MODELS_ROOT

    if not (MODELS_ROOT.parent / "pyproject.toml").is_file():
        raise ConfigError(
            f"--ship writes into the source tree's compressed_models/, but lotus runs from an installed "
            f"package ({MODELS_ROOT}); leave out --ship and serve the output with --model-repository"
        )
    return MODELS_ROOT / name


class _Bar:
    """tqdm bars keyed by task name, for ``(task, done, total)`` progress callbacks."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self._bars: dict = {}

    def __call__(self, task: str, done: int, total: int, postfix: dict | None = None) -> None:
        bar = self._bars.get(task)
        if bar is None:
            bar = self._bars[task] = self._tqdm(total=total, desc=task, leave=True, initial=done - 1)
        bar.update(done - bar.n)
        if postfix:
            bar.set_postfix({k: f"{v:.3f}" for k, v in postfix.items()}, refresh=False)
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()


def _threads(n: int) -> None:
    if n < 1:
        raise ConfigError(f"--threads must be >= 1, got {n}")
    from lotus.detectors.train import set_threads  # torch lives in detectors, never in runtime

    set_threads(n)


@app.command()
@needs_extra("train", "lotus detectors train")
def train(
    checkpoint: Path = typer.Option(DEFAULT_CKPT, help="checkpoint to write (and resume from)"),
    steps: int = typer.Option(3000, min=1, help="optimiser steps"),
    batch_size: int = typer.Option(8, min=1, help="images per step"),
    lr: float = typer.Option(2e-3, min=0.0, help="peak learning rate"),
    seed: int = typer.Option(0, help="data/initialisation seed"),
    resume: bool = typer.Option(True, help="continue from the checkpoint if it exists"),
    threads: int = typer.Option(1, help="torch CPU threads"),
) -> None:
    """Train FRCNN-lite on synthetic shapes (resumable from the checkpoint)."""
    _threads(threads)
    from lotus.detectors.train import TrainConfig
    from lotus.detectors.train import train as run_train

    bar = _Bar()
    tc = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, seed=seed)
    run_train(checkpoint, tc, resume=resume, on_step=lambda d, n, loss: bar("train", d, n, loss))
    bar.close()
    typer.echo(f"checkpoint: {checkpoint}")


@app.command()
@needs_extra("train", "lotus detectors export")
def export(
    checkpoint: Path = typer.Option(DEFAULT_CKPT, help="trained checkpoint"),
    out_dir: Path = typer.Option(Path("runs/export"), help="where stage1.onnx / stage2.onnx go"),
    threads: int = typer.Option(1, help="ORT/torch threads for parity and timing"),
) -> None:
    """Export stage1.onnx + stage2.onnx, check parity with PyTorch and time stage 2 vs N."""
    _threads(threads)
    from lotus.detectors.export import export_stages, parity, time_stages
    from lotus.detectors.train import load_detector

    model = load_detector(_existing(checkpoint))
    p1, p2 = export_stages(model, out_dir)
    typer.echo(f"wrote {p1} ({p1.stat().st_size:,} B), {p2} ({p2.stat().st_size:,} B)")
    typer.echo(f"parity (max abs diff): {json.dumps(parity(model, p1, p2, threads=threads))}")
    t = time_stages(p1, p2, model.cfg.image_size, threads=threads)
    typer.echo(
        f"stage1 {t['stage1_ms']:.2f} ms; stage2 ms by N: "
        + ", ".join(f"{n}: {v:.2f}" for n, v in t["stage2_ms"].items())
    )


@app.command("eval")
@needs_extra("train", "lotus detectors eval")
def eval_(
    checkpoint: Path = typer.Option(DEFAULT_CKPT, help="checkpoint to evaluate (torch eager)"),
    model: str = typer.Option("", help="evaluate a shipped model (name or manifest) with ORT instead"),
    images: int = typer.Option(300, min=1, help="validation images"),
    threads: int = typer.Option(1, help="threads"),
) -> None:
    """mAP@0.5 and mAP@[.5:.95] on the synthetic validation split."""
    _threads(threads)
    from lotus.detectors.dataset import ShapesDataset
    from lotus.detectors.evaluate import evaluate, torch_predictor

    bar = _Bar()
    if model:
        from lotus.runtime.models.two_stage import FrcnnPipeline, create_pipeline

        pipe = create_pipeline(model, threads=threads)
        if not isinstance(pipe, FrcnnPipeline):
            raise ConfigError(f"model {model!r} is not a detector (kind {pipe.manifest.kind})")
        size, predict = pipe.input_size, pipe.predict
    else:
        from lotus.detectors.train import load_detector

        det = load_detector(_existing(checkpoint))
        size, predict = det.cfg.image_size, torch_predictor(det)
    res = evaluate(ShapesDataset("val", images, image_size=size), predict, lambda d, n: bar("eval", d, n))
    typer.echo(json.dumps(res))


@app.command()
@needs_extra("train", "lotus detectors dataset")
def dataset(
    out_dir: Path = typer.Argument(..., help="output folder (images/ + annotations.json)"),
    split: str = typer.Option("val", help="train, val, calib or test"),
    images: int = typer.Option(100, min=1, help="number of images"),
    seed: int = typer.Option(0, help="seed"),
) -> None:
    """Write a split of the synthetic dataset in COCO format."""
    from lotus.detectors.dataset import ShapesDataset, export_coco

    try:
        ds = ShapesDataset(split, images, seed=seed)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    typer.echo(f"wrote {export_coco(ds, out_dir)}")


@app.command("ocr-manifest")
@needs_extra("ocr", "lotus detectors ocr-manifest")
def ocr_manifest(
    out_dir: Path = typer.Option(
        DEFAULT_OCR_DIR, help="model folder to write (serve: lotus serve --model-repository <its parent>)"
    ),
    threads: int = typer.Option(1, help="ORT threads for the timings"),
    ship: bool = typer.Option(False, help="write compressed_models/ppocr-v4 of the source tree instead of --out-dir"),
) -> None:
    """Measure PP-OCRv4 (rapidocr-onnxruntime wheel) and write its manifest."""
    from lotus.detectors.ocr_bench import build_ppocr_manifest
    from lotus.runtime.models.manifest import MANIFEST_NAME, MODELS_ROOT, is_within

    if ship:
        out_dir = ship_dir("ppocr-v4")
    elif is_within(out_dir, MODELS_ROOT):
        raise ConfigError(f"--out-dir {out_dir} is inside the shipped models {MODELS_ROOT}: use --ship to write there")
    m = build_ppocr_manifest(out_dir, threads=threads)
    typer.echo(f"wrote {out_dir / MANIFEST_NAME}: word accuracy {m.metrics.accuracy['word_accuracy']:.2f}")
    if not ship:
        typer.echo(f"serve it: lotus serve --model-repository {out_dir.parent} -m {out_dir.name}")


def compress(
    checkpoint: Path = typer.Option(
        None, help="dense checkpoint (default: yours from `lotus detectors train`, else the shipped one)"
    ),
    work_dir: Path = typer.Option(
        DEFAULT_WORK, help="variants, pruned checkpoint, report and the model (WORK_DIR/models/frcnn-lite)"
    ),
    keep: float = typer.Option(0.5, min=0.05, max=1.0, help="fraction of channels kept by pruning"),
    finetune_steps: int = typer.Option(800, min=0, help="fine-tuning steps after pruning"),
    val_images: int = typer.Option(300, min=1, help="validation images for mAP"),
    calib_images: int = typer.Option(64, min=1, help="calibration images for static INT8"),
    threads: int = typer.Option(1, help="torch and onnxruntime threads (same for every variant)"),
    repeats: int = typer.Option(30, min=1, help="timing repetitions (median)"),
    ship: bool = typer.Option(
        False, help="also replace the shipped model: copy it into compressed_models/frcnn-lite of the source tree"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the rows as a JSON list"),
) -> None:
    """Prune + fine-tune, quantize (INT8 static QDQ, FP16), measure, and package FRCNN-lite.

    Everything goes under ``--work-dir``, the model as ``WORK_DIR/models/frcnn-lite``; ``--ship``
    also copies it over the shipped model.
    """
    if checkpoint is None:
        checkpoint = DEFAULT_CKPT if DEFAULT_CKPT.is_file() else SHIPPED_CKPT
    checkpoint = _existing(checkpoint)
    target = ship_dir("frcnn-lite") if ship else None  # refuse before the long run, not after
    _threads(threads)
    from lotus.detectors.compress import CompressConfig, report_markdown, run_compress

    cc = CompressConfig(
        checkpoint=checkpoint,
        work_dir=work_dir,
        keep=keep,
        finetune_steps=finetune_steps,
        val_images=val_images,
        calib_images=calib_images,
        threads=threads,
        repeats=repeats,
        ship_dir=target,
    )
    bar = _Bar()
    rows = run_compress(cc, progress=None if as_json else bar)
    bar.close()
    if as_json:
        typer.echo(json.dumps([r.json_row() for r in rows]))
    else:
        typer.echo(report_markdown(rows))
        typer.echo(f"report: {work_dir / 'report.md'}, {work_dir / 'report.json'}")
        typer.echo(f"model: {cc.model_dir} (serve it: lotus serve --model-repository {cc.model_dir.parent})")
        if target is not None:
            typer.echo(f"shipped: {target}")


def _existing(path: Path) -> Path:
    if not path.is_file():
        from lotus.core.errors import ModelLoadError

        raise ModelLoadError(f"checkpoint {path} does not exist (run `lotus detectors train` first)")
    return path
