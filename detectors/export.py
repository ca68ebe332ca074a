"""Stage-split ONNX export of FRCNN-lite, torch-vs-ORT parity, and stage latency timings.

Uses the legacy TorchScript exporter (``dynamo=False``, opset 17) with the custom ops of
``detectors.ops`` mapped to native ``NonMaxSuppression`` / ``RoiAlign``; files are single-file.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from lotus.detectors.dataset import ShapesDataset
from lotus.detectors.model import Detector
from lotus.detectors.ops import ONNX_OPSET, register_onnx_symbolics
from lotus.detectors.timing import median_ms

STAGE1_INPUTS = ["image"]
STAGE1_OUTPUTS = ["features", "proposals", "proposal_scores"]
STAGE2_INPUTS = ["features", "proposals"]
STAGE2_OUTPUTS = ["boxes", "scores", "labels"]


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """[H, W, 3] uint8 RGB -> [1, 3, H, W] float in [0, 1]."""
    return torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0


def export_stages(model: Detector, out_dir: Path) -> tuple[Path, Path]:
    """Write ``stage1.onnx`` and ``stage2.onnx`` (dynamic proposal count N) into ``out_dir``."""
    register_onnx_symbolics()
    model = model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = model.cfg
    image = to_tensor(ShapesDataset("val", 1, image_size=cfg.image_size)[0].image)
    with torch.no_grad():
        feat, props, _ = model.stage1(image)
    p1, p2 = out_dir / "stage1.onnx", out_dir / "stage2.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model.stage1,
            (image,),
            str(p1),
            input_names=STAGE1_INPUTS,
            output_names=STAGE1_OUTPUTS,
            dynamic_axes={"proposals": {0: "P"}, "proposal_scores": {0: "P"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
        torch.onnx.export(
            model.stage2,
            (feat, props[:10]),
            str(p2),
            input_names=STAGE2_INPUTS,
            output_names=STAGE2_OUTPUTS,
            dynamic_axes={"proposals": {0: "N"}, "boxes": {0: "M"}, "scores": {0: "M"}, "labels": {0: "M"}},
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return p1, p2


def _session(path: Path, threads: int):  # noqa: ANN202
    from lotus.runtime.models.two_stage import make_session

    return make_session(path, threads=threads)


def parity(model: Detector, stage1: Path, stage2: Path, n_images: int = 3, threads: int = 1) -> dict[str, float]:
    """Max differences torch vs ORT: features, proposals (as sets), and stage-2 outputs on equal proposals."""
    s1, s2 = _session(stage1, threads), _session(stage2, threads)
    data = ShapesDataset("val", n_images, image_size=model.cfg.image_size)
    res = {"features": 0.0, "proposals": 0.0, "proposal_count": 0.0, "boxes": 0.0, "scores": 0.0, "labels": 0.0}
    for i in range(n_images):
        x = to_tensor(data[i].image)
        with torch.no_grad():
            feat, props, _ = model.stage1(x)
        of, op, _ = s1.run(None, {"image": x.numpy()})
        res["features"] = max(res["features"], float(np.abs(of - feat.numpy()).max()))
        res["proposal_count"] = max(res["proposal_count"], float(abs(len(op) - len(props))))
        if len(op) == len(props) and len(op):
            a, b = np.sort(op.round(2), axis=0), np.sort(props.numpy().round(2), axis=0)
            res["proposals"] = max(res["proposals"], float(np.abs(a - b).max()))
        if len(props) == 0:
            continue
        with torch.no_grad():
            boxes, scores, labels = model.stage2(feat, props)
        ob, os_, ol = s2.run(None, {"features": feat.numpy(), "proposals": props.numpy()})
        if len(ob) != len(boxes):
            res["boxes"] = float("inf")
            continue
        order_t, order_o = np.argsort(-scores.numpy(), kind="stable"), np.argsort(-os_, kind="stable")
        res["boxes"] = max(res["boxes"], float(np.abs(ob[order_o] - boxes.numpy()[order_t]).max(initial=0)))
        res["scores"] = max(res["scores"], float(np.abs(os_[order_o] - scores.numpy()[order_t]).max(initial=0)))
        res["labels"] = max(res["labels"], float((ol[order_o] != labels.numpy()[order_t]).sum()))
    return res


def random_proposals(n: int, image_size: int, seed: int = 0) -> np.ndarray:
    """``n`` plausible proposal boxes [n, 4] (xyxy) inside the image."""
    rng = np.random.default_rng(seed)
    wh = rng.uniform(12, image_size / 2, (n, 2))
    xy = rng.uniform(0, 1, (n, 2)) * (image_size - wh)
    return np.concatenate([xy, xy + wh], 1).astype(np.float32)


def time_stages(
    stage1: Path,
    stage2: Path,
    image_size: int,
    ns: tuple[int, ...] = (10, 50, 100, 300),
    threads: int = 1,
    repeats: int = 20,
) -> dict[str, object]:
    """Median ORT latency of stage 1 on a val image, and of stage 2 per proposal count N."""
    s1, s2 = _session(stage1, threads), _session(stage2, threads)
    x = to_tensor(ShapesDataset("val", 1, image_size=image_size)[0].image).numpy()
    feat = s1.run(None, {"image": x})[0]
    stage1_ms = median_ms(lambda: s1.run(None, {"image": x}), repeats)
    stage2_ms = {}
    for n in ns:
        props = random_proposals(n, image_size)
        stage2_ms[n] = median_ms(lambda p=props: s2.run(None, {"features": feat, "proposals": p}), repeats)
    return {"stage1_ms": stage1_ms, "stage2_ms": stage2_ms}
