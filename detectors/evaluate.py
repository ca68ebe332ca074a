"""COCO mAP (faster-coco-eval) of any predictor on the synthetic validation split."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator

import numpy as np

from lotus.detectors.dataset import ShapesDataset, coco_dict

# predictor: image [S, S, 3] uint8 RGB -> (boxes [M, 4] xyxy px, scores [M], labels [M] 1..K)
Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


def iter_predictions(dataset: ShapesDataset, predict: Predictor) -> Iterator[list[dict]]:
    """COCO result dicts of each image of ``dataset``, one list per image."""
    for i in range(len(dataset)):
        boxes, scores, labels = predict(dataset[i].image)
        yield [
            {
                "image_id": i,
                "category_id": int(lab),
                "score": float(sc),
                "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
            }
            for b, sc, lab in zip(boxes, scores, labels, strict=True)
        ]


def coco_map(dataset: ShapesDataset, results: list[dict]) -> dict[str, float]:
    """``{"map50": AP@0.5, "map50_95": AP@[.5:.95]}`` of COCO ``results`` on ``dataset``."""
    from faster_coco_eval import COCO, COCOeval_faster

    if not results:
        return {"map50": 0.0, "map50_95": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(coco_dict(dataset))
        dt = gt.loadRes(results)
        ev = COCOeval_faster(gt, dt, iouType="bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"map50": float(ev.stats[1]), "map50_95": float(ev.stats[0])}


def evaluate(
    dataset: ShapesDataset, predict: Predictor, on_image: Callable[[int, int], None] | None = None
) -> dict[str, float]:
    """mAP of ``predict`` over ``dataset``; ``on_image(done, total)`` reports progress."""
    results: list[dict] = []
    for i, dets in enumerate(iter_predictions(dataset, predict)):
        results.extend(dets)
        if on_image is not None:
            on_image(i + 1, len(dataset))
    return coco_map(dataset, results)


def torch_predictor(model) -> Predictor:  # noqa: ANN001 - a detectors.model.Detector
    """Eager PyTorch predictor of a ``Detector`` (imports torch lazily)."""
    import torch

    model.eval()

    def predict(image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255.0
        with torch.no_grad():
            feat, props, _ = model.stage1(x)
            if props.shape[0] == 0:
                return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
            boxes, scores, labels = model.stage2(feat, props)
        return boxes.numpy(), scores.numpy(), labels.numpy()

    return predict
