"""Build FRCNN-lite manifests and write model folders (``<repository>/<name>/``: manifest + ONNX files).

``lotus compress`` writes its model into a repository under its work directory
(``runs/compress/models/frcnn-lite``, servable with ``lotus serve --model-repository``); only
``lotus compress --ship`` writes into the shipped models (``compressed_models/``).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from lotus.core.errors import ConfigError
from lotus.detectors.dataset import CLASS_NAMES
from lotus.detectors.model import DetectorConfig
from lotus.detectors.workload_fit import placeholder_workload, workload_from_ms
from lotus.envs.workload import WorkloadProfile
from lotus.runtime.models.manifest import (
    MANIFEST_NAME,
    MODELS_ROOT,
    Metrics,
    ModelManifest,
    StageSpec,
    TensorSpec,
    is_within,
    write_manifest,
)


def frcnn_manifest(
    name: str,
    stage1: Path,
    stage2: Path,
    cfg: DetectorConfig,
    version: str = "1.0.0",
    description: str = "",
    metrics: Metrics | None = None,
    workload: WorkloadProfile | None = None,
) -> ModelManifest:
    """Manifest of an exported FRCNN-lite pair; files are referenced relative to their folder."""
    s, f, c = cfg.image_size, cfg.feat_size, cfg.widths[-1]
    feat = TensorSpec(name="features", shape=[1, c, f, f], dtype="float32", description=f"stride {cfg.stride}")
    stages = [
        StageSpec.of_file(
            "stage1",
            "backbone + RPN + top-k + NMS",
            stage1,
            inputs=[
                TensorSpec(
                    name="image",
                    shape=[1, 3, s, s],
                    dtype="float32",
                    description="RGB in [0, 1], resized to the input size",
                )
            ],
            outputs=[
                feat,
                TensorSpec(
                    name="proposals", shape=["P", 4], dtype="float32", description="xyxy, input pixels, best first"
                ),
                TensorSpec(name="proposal_scores", shape=["P"], dtype="float32"),
            ],
        ),
        StageSpec.of_file(
            "stage2",
            "RoIAlign + box head + class-aware NMS",
            stage2,
            inputs=[feat, TensorSpec(name="proposals", shape=["N", 4], dtype="float32")],
            outputs=[
                TensorSpec(name="boxes", shape=["M", 4], dtype="float32", description="xyxy, input px"),
                TensorSpec(name="scores", shape=["M"], dtype="float32"),
                TensorSpec(name="labels", shape=["M"], dtype="int64", description="1..K"),
            ],
        ),
    ]
    m = ModelManifest(
        name=name,
        version=version,
        kind="frcnn",
        description=description,
        stages=stages,
        preprocess={"input_size": s, "resize": "bilinear, no letterbox", "scale": 1 / 255, "channel_order": "RGB"},
        postprocess={
            "rpn_score_thresh": cfg.rpn_score_thresh,
            "rpn_nms_iou": cfg.rpn_nms_iou,
            "pre_nms_top_n": cfg.pre_nms_top_n,
            "post_nms_top_n": cfg.post_nms_top_n,
            "box_score_thresh": cfg.box_score_thresh,
            "box_nms_iou": cfg.box_nms_iou,
            "max_detections": cfg.max_detections,
            "roi_size": cfg.roi_size,
            "sampling_ratio": cfg.sampling_ratio,
        },
        class_names=list(CLASS_NAMES),
        metrics=metrics or Metrics(stage1_ms=0, stage2_ms={1: 0}, threads=1, device="cpu"),
        workload=workload or placeholder_workload(),
    )
    m.base_dir = stage1.parent.resolve()
    return m


def frcnn_workload(
    name: str,
    stage1_ms: float,
    stage2_ms: dict[int, float],
    mean_proposals: float,
    max_proposals: int,
    threads: int,
    cpu_ghz: float = 2.0,
    gpu_share: float = 0.8,
    deadline_ms: float = 33.3,
) -> WorkloadProfile:
    """Workload profile from measured CPU latencies: stage 2 fitted as fixed + per-proposal (least squares)."""
    ns = np.array(sorted(stage2_ms), dtype=float)
    slope, fixed = np.polyfit(ns, np.array([stage2_ms[int(n)] for n in ns]), 1)
    desc = (
        f"FRCNN-lite measured with onnxruntime on this CPU ({threads} thread(s)); stage-2 fit "
        f"{max(fixed, 0):.3f} ms + {slope:.4f} ms/proposal over N={list(map(int, ns))}. Times are "
        f"converted at an assumed {cpu_ghz} GHz CPU clock. Assumed split on a Jetson-class board: "
        f"5 % memory-bound, {gpu_share:.0%} of the rest on the GPU (mcycles at 1 GHz GPU clock), "
        f"the remainder on the CPU."
    )
    return workload_from_ms(
        name,
        desc,
        stage1_ms,
        max(fixed, 0.0),
        max(slope, 1e-4),
        cpu_ghz,
        gpu_share,
        max_proposals=max_proposals,
        mean_proposals=max(mean_proposals, 1.0),
        deadline_ms=deadline_ms,
    )


def ship(manifest: ModelManifest, dest: Path, into_shipped: bool = False) -> ModelManifest:
    """Copy the manifest's stage files into the model folder ``dest`` and write ``dest/manifest.yaml``.

    :param into_shipped: allow ``dest`` inside the shipped models (:data:`MODELS_ROOT`); only
        ``lotus compress --ship`` sets it
    :returns: the manifest as written, ``base_dir`` = ``dest``
    :raises ConfigError: ``dest`` is inside the shipped models and ``into_shipped`` is not set
    """
    if not into_shipped and is_within(dest, MODELS_ROOT):
        raise ConfigError(f"{dest} is inside the shipped models {MODELS_ROOT}: write there only with --ship")
    dest.mkdir(parents=True, exist_ok=True)
    for st in manifest.stages:
        src = manifest.stage_path(st.name)
        if src.resolve() != (dest / st.file).resolve():
            shutil.copyfile(src, dest / st.file)
    write_manifest(manifest, dest / MANIFEST_NAME)
    shipped = manifest.model_copy()
    shipped.base_dir = dest.resolve()
    return shipped
