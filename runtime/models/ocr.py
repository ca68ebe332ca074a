"""PP-OCR pre/post-processing written for lotus: detector input sizing, DB box extraction, CTC greedy decoding.

Images come in as RGB; the PP-OCR graphs were trained on BGR, so channels are flipped here. The
detector input is sized as PaddleOCR's ``DetResizeForTest`` does (``limit_side_len``, ``limit_type``).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

LIMIT_TYPES = ("max", "min")  # preprocess.limit_type values (PaddleOCR's DetResizeForTest)


def det_input_size(h: int, w: int, limit_side_len: int, limit_type: str = "min") -> tuple[int, int]:
    """Detection input (H', W') px for an ``h`` x ``w`` image, as PaddleOCR's ``DetResizeForTest``.

    ``max``: scaled down so the long side is at most ``limit_side_len`` (never up); ``min``: scaled up
    so the short side is at least ``limit_side_len`` (never down). The aspect ratio is kept, then each
    side is rounded to the nearest multiple of 32 (at least 32).
    """
    if limit_type == "max":
        ratio = min(1.0, limit_side_len / max(h, w))
    elif limit_type == "min":
        ratio = max(1.0, limit_side_len / min(h, w))
    else:
        raise ValueError(f"limit_type must be one of {LIMIT_TYPES}, got {limit_type!r}")
    return max(32, int(round(h * ratio / 32)) * 32), max(32, int(round(w * ratio / 32)) * 32)


def det_preprocess(
    image: np.ndarray, size: tuple[int, int], mean: float, std: float
) -> tuple[np.ndarray, tuple[float, float]]:
    """Resize ``image`` [H, W, 3] uint8 RGB to ``size`` (H', W') px (:func:`det_input_size`), BGR, normalise.

    Returns ``x`` [1, 3, H', W'] float32 ``(x / 255 - mean) / std`` and the (x, y) ratios resized/original.
    """
    h, w = image.shape[:2]
    rh, rw = size
    resized = cv2.resize(image[:, :, ::-1], (rw, rh))  # bilinear, as PaddleOCR
    x = (resized.astype(np.float32) / 255.0 - mean) / std
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]), (rw / w, rh / h)


def _order_quad(pts: np.ndarray) -> np.ndarray:
    """Corners ordered top-left, top-right, bottom-right, bottom-left."""
    s = pts.sum(1)
    d = np.diff(pts, axis=1).ravel()
    return np.array([pts[np.argmin(s)], pts[np.argmin(d)], pts[np.argmax(s)], pts[np.argmax(d)]], np.float32)


def db_postprocess(
    prob: np.ndarray,
    ratio: tuple[float, float],
    shape: tuple[int, int],
    thresh: float,
    box_thresh: float,
    unclip_ratio: float,
    max_candidates: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Text quads [N, 4, 2] (original-image px, reading order) and scores [N] from a DB probability map.

    Each region of ``prob > thresh`` (dilated 2x2) becomes its minimum-area rectangle, scored by
    the mean probability inside, then grown by ``area * unclip_ratio / perimeter`` on every side.
    """
    bitmap = cv2.dilate((prob > thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    quads, scores = [], []
    for contour in contours[:max_candidates]:
        (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
        if min(rw, rh) < 3:
            continue
        mask = np.zeros_like(bitmap)
        cv2.fillPoly(mask, [cv2.boxPoints(((cx, cy), (rw, rh), angle)).astype(np.int32)], 1)
        score = float(prob[mask.astype(bool)].mean()) if mask.any() else 0.0
        if score < box_thresh:
            continue
        dist = rw * rh * unclip_ratio / (2 * (rw + rh))
        grown = cv2.boxPoints(((cx, cy), (rw + 2 * dist, rh + 2 * dist), angle))
        if min(rw, rh) + 2 * dist < 5:
            continue
        grown[:, 0] = np.clip(grown[:, 0] / ratio[0], 0, shape[1] - 1)
        grown[:, 1] = np.clip(grown[:, 1] / ratio[1], 0, shape[0] - 1)
        quads.append(_order_quad(grown))
        scores.append(score)
    if not quads:
        return np.zeros((0, 4, 2), np.float32), np.zeros(0, np.float32)
    q = np.stack(quads)
    order = reading_order(q)
    return q[order], np.asarray(scores, np.float32)[order]


def reading_order(quads: np.ndarray) -> list[int]:
    """Indices of ``quads`` [N, 4, 2] line by line from the top, left to right within a line.

    Boxes are taken by vertical centre; one joins the current line while its centre lies above the
    bottom of the line's first box (so words jittered by less than half a line height stay together).
    """
    top, bottom = quads[:, :, 1].min(1), quads[:, :, 1].max(1)
    centre = (top + bottom) / 2
    lines: list[list[int]] = []
    line_bottom = -math.inf
    for i in np.argsort(centre, kind="stable").tolist():
        if lines and centre[i] <= line_bottom:
            lines[-1].append(i)
        else:
            lines.append([i])
            line_bottom = float(bottom[i])
    left = quads[:, :, 0].min(1)
    return [i for line in lines for i in sorted(line, key=lambda j: left[j])]


def crop_quad(image: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Upright crop [h, w, 3] of a (possibly rotated) quad; tall crops are rotated to horizontal."""
    w = int(max(np.linalg.norm(quad[0] - quad[1]), np.linalg.norm(quad[2] - quad[3])))
    h = int(max(np.linalg.norm(quad[0] - quad[3]), np.linalg.norm(quad[1] - quad[2])))
    w, h = max(w, 1), max(h, 1)
    dst = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    m = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    crop = cv2.warpPerspective(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE, flags=cv2.INTER_CUBIC)
    if h / w >= 1.5:
        crop = np.rot90(crop)
    return crop


def rec_preprocess(crops: list[np.ndarray], height: int, min_width: int) -> np.ndarray:
    """Batch [B, 3, height, W] float32: each crop resized to ``height`` keeping aspect, right-padded with 0."""
    ratios = [c.shape[1] / c.shape[0] for c in crops]
    width = max(min_width, int(math.ceil(height * max(ratios))))
    batch = np.zeros((len(crops), 3, height, width), np.float32)
    for i, (crop, r) in enumerate(zip(crops, ratios, strict=True)):
        w = min(width, max(1, int(math.ceil(height * r))))
        resized = cv2.resize(np.ascontiguousarray(crop[:, :, ::-1]), (w, height)).astype(np.float32)
        batch[i, :, :, :w] = ((resized / 255.0 - 0.5) / 0.5).transpose(2, 0, 1)
    return batch


def ctc_greedy_decode(probs: np.ndarray, charset: list[str]) -> list[tuple[str, float]]:
    """(text, mean confidence) per row of ``probs`` [B, T, C]; index 0 is the CTC blank."""
    idx = probs.argmax(2)
    conf = probs.max(2)
    out = []
    for row, c in zip(idx, conf, strict=True):
        keep = np.ones(len(row), bool)
        keep[1:] = row[1:] != row[:-1]
        keep &= row != 0
        chars = [charset[i] if i < len(charset) else "" for i in row[keep]]
        out.append(("".join(chars), float(c[keep].mean()) if keep.any() else 0.0))
    return out
