"""Box post-processing in numpy: format conversion and greedy (class-aware) non-maximum suppression."""

from __future__ import annotations

from typing import Literal

import numpy as np

BoxFormat = Literal["xyxy", "xywh", "cxcywh"]


def to_xyxy(boxes: np.ndarray, fmt: BoxFormat) -> np.ndarray:
    """``[N, 4]`` boxes in ``fmt`` -> float32 ``[N, 4]`` x0, y0, x1, y1."""
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    if fmt == "xyxy":
        return b
    if fmt == "xywh":
        return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)
    half = b[:, 2:] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, labels: np.ndarray | None = None) -> np.ndarray:
    """Indices of the boxes kept, best score first; a box is dropped when its IoU with a kept one exceeds ``iou``.

    :param boxes: ``[N, 4]`` xyxy
    :param scores: ``[N]``
    :param labels: ``[N]`` class ids: boxes of different classes never suppress each other (None: all one class)
    """
    n = len(scores)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    b = np.asarray(boxes, dtype=np.float64)
    if labels is not None:  # move each class far away from the others: class-aware in one pass
        b = b + (np.asarray(labels, dtype=np.float64) * (np.abs(b).max() * 2 + 1))[:, None]
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]), 0, None)
        h = np.clip(np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]), 0, None)
        inter = w * h
        union = area[i] + area[rest] - inter
        overlap = np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)
        order = rest[overlap <= iou]
    return np.asarray(keep, dtype=np.int64)
