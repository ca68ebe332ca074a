"""``lotus compress``: prune + fine-tune, quantize, measure every variant, package the model.

Variants (one folder each under ``work_dir``, each with ``stage1.onnx`` + ``stage2.onnx``):
``dense-fp32``, ``pruned-fp32``, ``pruned-int8`` (static QDQ, the model), ``pruned-int8-dynamic``
(measured only: ConvInteger is slow on CPU) and ``pruned-fp16`` (for GPUs; size reported).

``pruned-int8`` is written with its manifest as a servable model folder,
``work_dir/models/<name>/`` (``lotus serve --model-repository work_dir/models``). Nothing is
written outside ``work_dir`` unless ``ship_dir`` is set (``lotus compress --ship``).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lotus.detectors.dataset import ShapesDataset
from lotus.detectors.evaluate import evaluate
from lotus.detectors.export import export_stages, time_stages
from lotus.detectors.model import Detector
from lotus.detectors.ship import frcnn_manifest, frcnn_workload, ship
from lotus.runtime.models.manifest import Metrics, ModelManifest

logger = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (task, done, total)
JSON_KEYS = ("variant", "params", "size_bytes", "stage1_ms", "stage2_ms_n100", "map50", "map50_95")
STAGE2_NS = (10, 50, 100, 300)


@dataclass
class CompressConfig:
    """Settings of ``lotus compress``.

    :param checkpoint: dense model checkpoint (from ``lotus detectors train``)
    :param work_dir: where variants, the pruned checkpoint and the report go
    :param keep: fraction of channels kept by pruning
    :param finetune_steps: fine-tuning steps after pruning (resumable)
    :param finetune_lr: peak fine-tuning learning rate
    :param calib_images: calibration images for static INT8 (``calib`` split)
    :param val_images: validation images for mAP
    :param threads: onnxruntime intra-op threads for every timing
    :param repeats: timing repetitions (median)
    :param models_dir: model repository the packaged model goes into, as ``<models_dir>/<ship_name>/``
        (``None``: ``work_dir/models``)
    :param ship_dir: also copy the packaged model here, e.g. the shipped ``compressed_models/frcnn-lite``
        (``None``: do not ship)
    :param ship_name: the model's name (its folder and manifest name)
    """

    checkpoint: Path
    work_dir: Path
    keep: float = 0.5
    finetune_steps: int = 800
    finetune_lr: float = 1e-3
    calib_images: int = 64
    val_images: int = 300
    threads: int = 1
    repeats: int = 30
    models_dir: Path | None = None
    ship_dir: Path | None = None
    ship_name: str = "frcnn-lite"

    @property
    def model_dir(self) -> Path:
        """Folder of the packaged model: ``<models_dir or work_dir/models>/<ship_name>``."""
        return (self.models_dir if self.models_dir is not None else self.work_dir / "models") / self.ship_name


@dataclass
class VariantResult:
    """One row of the report."""

    variant: str
    params: int
    size_bytes: int
    stage1_ms: float | None
    stage2_ms: dict[int, float] = field(default_factory=dict)
    map50: float | None = None
    map50_95: float | None = None
    mean_proposals: float | None = None
    model_dir: str | None = None  # the variant packaged as the servable model: its folder
    shipped: bool = False  # also copied into the shipped models (--ship)
    note: str = ""

    def json_row(self) -> dict:
        row = asdict(self)
        row["stage2_ms_n100"] = self.stage2_ms.get(100)
        return {k: row[k] for k in JSON_KEYS}


def _measure(
    name: str,
    folder: Path,
    params: int,
    cc: CompressConfig,
    cfg,
    progress: Progress | None,  # noqa: ANN001
    note: str = "",
) -> VariantResult:
    from lotus.runtime.models.two_stage import FrcnnPipeline

    p1, p2 = folder / "stage1.onnx", folder / "stage2.onnx"
    size = p1.stat().st_size + p2.stat().st_size
    try:
        t = time_stages(p1, p2, cfg.image_size, STAGE2_NS, cc.threads, cc.repeats)
        pipe = FrcnnPipeline(frcnn_manifest(name, p1, p2, cfg), threads=cc.threads)
    except Exception as exc:  # noqa: BLE001 - e.g. fp16 kernels missing on this CPU
        logger.warning("%s cannot run here: %s", name, exc)
        return VariantResult(name, params, size, None, note=f"{note} (does not run on ORT CPU)".strip())
    data = ShapesDataset("val", cc.val_images, image_size=cfg.image_size)
    counts: list[int] = []

    def predict(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        r1 = pipe.run_stage1(pipe.preprocess(image))
        counts.append(r1.num_proposals)
        return pipe.raw_stage2(r1)

    cb = (lambda d, n: progress(f"mAP {name}", d, n)) if progress else None
    m = evaluate(data, predict, cb)
    return VariantResult(
        name,
        params,
        size,
        round(t["stage1_ms"], 3),
        {n: round(v, 3) for n, v in t["stage2_ms"].items()},
        round(m["map50"], 4),
        round(m["map50_95"], 4),
        float(np.mean(counts)),
        note=note,
    )


def run_compress(cc: CompressConfig, progress: Progress | None = None) -> list[VariantResult]:
    """Build and measure all variants; package pruned-int8 (``cc.model_dir``, and ``cc.ship_dir`` when set);
    write ``report.md``/``report.json`` into ``cc.work_dir``."""
    from lotus.detectors.prune import prune_detector
    from lotus.detectors.quantize import (
        calibration_feeds,
        convert_fp16,
        quantize_int8_dynamic,
        quantize_int8_static,
    )
    from lotus.detectors.train import TrainConfig, load_detector, train

    if not cc.checkpoint.is_file():
        from lotus.core.errors import ModelLoadError

        raise ModelLoadError(f"checkpoint {cc.checkpoint} does not exist (run `lotus detectors train` first)")
    work = cc.work_dir
    work.mkdir(parents=True, exist_ok=True)
    dense = load_detector(cc.checkpoint)
    rows: list[VariantResult] = []
    export_stages(dense, work / "dense-fp32")
    rows.append(_measure("dense-fp32", work / "dense-fp32", dense.num_params(), cc, dense.cfg, progress))

    pruned_ckpt = work / "pruned.pt"
    pruned: Detector = prune_detector(dense, cc.keep)
    tc = TrainConfig(
        steps=cc.finetune_steps, lr=cc.finetune_lr, warmup=20, seed=1, checkpoint_every=max(1, cc.finetune_steps // 4)
    )
    if cc.finetune_steps > 0:
        cb = (lambda d, n, _l: progress("fine-tune pruned", d, n)) if progress else None
        pruned = train(pruned_ckpt, tc, model=pruned, resume=True, on_step=cb)
    pruned.eval()
    n_params = pruned.num_params()
    cfg = pruned.cfg
    export_stages(pruned, work / "pruned-fp32")
    rows.append(_measure("pruned-fp32", work / "pruned-fp32", n_params, cc, cfg, progress))

    fp32 = work / "pruned-fp32"
    f1, f2 = calibration_feeds(fp32 / "stage1.onnx", cfg.image_size, cc.calib_images)
    for name in ("pruned-int8", "pruned-int8-dynamic", "pruned-fp16"):
        (work / name).mkdir(exist_ok=True)
    variants = (
        ("pruned-int8", quantize_int8_static, "static QDQ, calibrated on synthetic images"),
        ("pruned-int8-dynamic", lambda src, dst, f: quantize_int8_dynamic(src, dst),
         "not shipped: ConvInteger is slow on CPU"),
        ("pruned-fp16", lambda src, dst, f: convert_fp16(src, dst), "for GPUs"),
    )  # fmt: skip
    for name, convert, note in variants:
        for stage, feed in (("stage1", f1), ("stage2", f2)):
            convert(fp32 / f"{stage}.onnx", work / name / f"{stage}.onnx", feed)
        rows.append(_measure(name, work / name, n_params, cc, cfg, progress, note))

    packaged = _package(rows[2], work / "pruned-int8", cc, cfg)
    rows[2].model_dir = str(cc.model_dir)
    if cc.ship_dir is not None:
        ship(packaged, cc.ship_dir, into_shipped=True)
        rows[2].shipped = True
    write_report(rows, work)
    return rows


def _package(row: VariantResult, folder: Path, cc: CompressConfig, cfg) -> ModelManifest:  # noqa: ANN001
    """Write ``row``'s variant (ONNX files in ``folder``) with its measured manifest to ``cc.model_dir``."""
    workload = frcnn_workload(
        cc.ship_name, row.stage1_ms or 0.0, row.stage2_ms, row.mean_proposals or 1.0, cfg.post_nms_top_n, cc.threads
    )
    metrics = Metrics(
        accuracy={"map50": row.map50 or 0.0, "map50_95": row.map50_95 or 0.0},
        stage1_ms=row.stage1_ms or 0.0,
        stage2_ms=row.stage2_ms,
        threads=cc.threads,
        device=f"cpu ({os.cpu_count()} cores), onnxruntime CPUExecutionProvider",
    )
    desc = (
        f"FRCNN-lite pruned (keep {cc.keep:.0%} of channels, fine-tuned) + INT8 static QDQ; "
        f"5 synthetic shape classes, {cfg.image_size}x{cfg.image_size} input."
    )
    manifest = frcnn_manifest(
        cc.ship_name,
        folder / "stage1.onnx",
        folder / "stage2.onnx",
        cfg,
        description=desc,
        metrics=metrics,
        workload=workload,
    )
    return ship(manifest, cc.model_dir)


def report_markdown(rows: list[VariantResult]) -> str:
    """The report table (markdown)."""
    head = (
        "| variant | params | size KB | stage1 ms | stage2 ms N=10/50/100/300 | mAP@0.5 | mAP@.5:.95 | "
        "mean proposals | note |\n|---|---|---|---|---|---|---|---|---|"
    )

    def f(v: float | None, nd: int = 2) -> str:
        return "n/a" if v is None else f"{v:.{nd}f}"

    lines = [head]
    for r in rows:
        s2 = "/".join(f(r.stage2_ms.get(n)) for n in STAGE2_NS)
        note = r.note + (f" (model: {r.model_dir})" if r.model_dir else "") + (" (shipped)" if r.shipped else "")
        lines.append(
            f"| {r.variant} | {r.params:,} | {r.size_bytes / 1024:.0f} | {f(r.stage1_ms)} | {s2} | "
            f"{f(r.map50, 3)} | {f(r.map50_95, 3)} | {f(r.mean_proposals, 1)} | {note} |"
        )
    return "\n".join(lines) + "\n"


def write_report(rows: list[VariantResult], out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.json`` (all fields) into ``out_dir``."""
    md, js = out_dir / "report.md", out_dir / "report.json"
    md.write_text(report_markdown(rows))
    js.write_text(json.dumps([asdict(r) for r in rows], indent=2))
    return md, js
