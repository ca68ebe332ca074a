"""PP-OCRv4 (from the rapidocr-onnxruntime wheel) as lotus's second two-stage model.

Renders word images with Pillow, measures word accuracy and stage latencies through
``lotus.runtime.models.two_stage.PpocrPipeline``, and writes the ``ppocr-v4`` manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from lotus.core.errors import ModelLoadError
from lotus.detectors.timing import median_ms
from lotus.detectors.workload_fit import placeholder_workload, workload_from_ms
from lotus.runtime.models.manifest import (
    MANIFEST_NAME,
    Metrics,
    ModelManifest,
    StageSpec,
    TensorSpec,
    write_manifest,
)

PACKAGE = "rapidocr_onnxruntime"
DET_FILE = "models/ch_PP-OCRv4_det_infer.onnx"
REC_FILE = "models/ch_PP-OCRv4_rec_infer.onnx"
FONT_PATHS = ("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "/usr/share/fonts/TTF/DejaVuSans.ttf")
WORDS = (
    "lotus",
    "edge",
    "governor",
    "frequency",
    "Jetson",
    "camera",
    "thermal",
    "deadline",
    "proposal",
    "python",
    "onnx",
    "detector",
    "energy",
    "budget",
    "clock",
    "stage",
    "model",
    "runtime",
    "orange",
    "window",
    "Berlin",
    "42",
    "2026",
    "Hello",
    "signal",
    "kernel",
    "latency",
    "memory",
    "vision",
    "robot",
)


def load_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans when present, else Pillow's default scalable font."""
    for p in FONT_PATHS:
        if Path(p).exists():
            return ImageFont.truetype(p, size)
    return ImageFont.load_default(size)


def render_words(
    words: list[str], font_size: int = 28, cols: int = 3, seed: int = 0, cell: tuple[int, int] = (260, 70)
) -> np.ndarray:
    """An RGB uint8 image with ``words`` laid out in a grid (dark text, light varied background)."""
    rng = np.random.default_rng(seed)
    rows = (len(words) + cols - 1) // cols
    w, h = cols * cell[0] + 40, rows * cell[1] + 40
    img = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(img)
    font = load_font(font_size)
    for i, word in enumerate(words):
        x = 20 + (i % cols) * cell[0] + int(rng.integers(0, 30))
        y = 20 + (i // cols) * cell[1] + int(rng.integers(0, 15))
        draw.text((x, y), word, fill=tuple(int(v) for v in rng.integers(0, 70, 3)), font=font)
    return np.asarray(img)


def word_accuracy(pipeline, words: list[str], **render_kw) -> tuple[float, list[str]]:  # noqa: ANN001
    """Fraction of ``words`` read exactly from one rendered image, and the texts read."""
    texts = [d.label for d in pipeline(render_words(words, **render_kw))]
    remaining = list(texts)
    hits = 0
    for w in words:
        if w in remaining:
            remaining.remove(w)
            hits += 1
    return hits / len(words), texts


def package_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(f"{PACKAGE} is not installed (pip install 'lotus-edge[ocr]')")
    return Path(next(iter(spec.submodule_search_locations)))


def _stage_spec(name: Literal["stage1", "stage2"], role: str, path: Path, inp: tuple, out: tuple) -> StageSpec:
    """One float32 stage with a single input and output, each ``(tensor name, shape, description)``."""
    tensor = [TensorSpec(name=n, shape=shape, dtype="float32", description=d) for n, shape, d in (inp, out)]
    return StageSpec.of_file(name, role, path, [tensor[0]], [tensor[1]])


def build_ppocr_manifest(
    out_dir: Path, threads: int = 1, cpu_ghz: float = 2.0, gpu_share: float = 0.8, repeats: int = 3
) -> ModelManifest:
    """Measure PP-OCRv4 on rendered words and write ``out_dir/manifest.yaml``."""
    from lotus.runtime.models.two_stage import PpocrPipeline

    base = package_dir()
    stages = [
        _stage_spec("stage1", "PP-OCRv4 DB text detection", base / DET_FILE,
                    ("x", ["batch", 3, "height", "width"], "BGR, (x/255-0.5)/0.5, sides multiple of 32"),
                    ("sigmoid_0.tmp_0", ["batch", 1, "height", "width"], "text probability map")),
        _stage_spec("stage2", "PP-OCRv4 CRNN recognition per text box", base / REC_FILE,
                    ("x", ["boxes", 3, 48, "width"], "BGR crops, height 48, right-padded"),
                    ("softmax_11.tmp_0", ["boxes", "time", 6625],
                     "CTC probabilities; 0 = blank, charset in model metadata")),
    ]  # fmt: skip
    draft = ModelManifest(
        name="ppocr-v4",
        version="4.0.0",
        kind="ppocr",
        files_from=PACKAGE,
        stages=stages,
        preprocess={
            "limit_side_len": 960,
            "limit_type": "max",
            "mean": 0.5,
            "std": 0.5,
            "channel_order": "BGR",
            "rec_height": 48,
            "rec_width": 320,
            "rec_batch": 6,
        },
        postprocess={
            "thresh": 0.3,
            "box_thresh": 0.5,
            "unclip_ratio": 1.6,
            "max_candidates": 1000,
            "decode": "ctc_greedy",
        },
        metrics=Metrics(stage1_ms=0, stage2_ms={1: 0}, threads=threads, device="cpu"),
        workload=placeholder_workload(),
    )
    draft.base_dir = base
    pipe = PpocrPipeline(draft, threads=threads)
    words = list(WORDS[:24])
    acc, _ = word_accuracy(pipe, words)
    inputs = pipe.preprocess(render_words(words))
    r1 = pipe.run_stage1(inputs)
    stage1_ms = median_ms(lambda: pipe.run_stage1(inputs), repeats, warmup=1)
    counts = [n for n in (1, 6, 12, 24) if n <= r1.num_proposals]
    stage2 = {n: median_ms(lambda n=n: pipe.run_stage2(r1, n), repeats, warmup=1) for n in counts}
    ns = np.array(sorted(stage2))
    slope, fixed = np.polyfit(ns, np.array([stage2[n] for n in ns]), 1)
    desc = (
        f"PP-OCRv4 det+rec measured on this CPU ({threads} ORT thread), converted to cycles at an assumed "
        f"{cpu_ghz} GHz; assumed split on a Jetson-class board: {gpu_share:.0%} of each stage on the GPU "
        f"(gpu_mcycles = ms * share * 1.0 GHz), the rest on the CPU, 5 % memory-bound."
    )
    manifest = draft.model_copy(
        update={
            "description": "PP-OCRv4 from rapidocr-onnxruntime 1.4.4: text detection -> recognition per box.",
            "metrics": Metrics(
                accuracy={"word_accuracy": acc},
                stage1_ms=round(stage1_ms, 2),
                stage2_ms={int(n): round(v, 2) for n, v in stage2.items()},
                threads=threads,
                device="cpu",
            ),
            "workload": workload_from_ms(
                "ppocr-v4",
                desc,
                stage1_ms,
                max(fixed, 0.0),
                max(slope, 0.0),
                cpu_ghz,
                gpu_share,
                max_proposals=50,
                mean_proposals=12.0,
                deadline_ms=500.0,
            ),
        }
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(manifest, out_dir / MANIFEST_NAME)
    return manifest
