"""Synthetic shapes detection dataset, generated on the fly and deterministic under a seed.

Each image has a textured background, clutter (lines, specks, blobs), and 1..``max_objects``
objects of five classes at scales from ``min_size`` to ``max_size`` px. Objects may overlap
(later ones occlude earlier ones, up to ``max_overlap`` IoU), so the number of proposals
varies from image to image like a real scene.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

CLASS_NAMES = ("circle", "square", "triangle", "cross", "ring")
SPLIT_IDS = {"train": 0, "val": 1, "calib": 2, "test": 3}


@dataclass(frozen=True)
class Sample:
    """One image: ``image`` [S, S, 3] uint8 RGB, ``boxes`` [M, 4] xyxy px float32, ``labels`` [M] 1..K."""

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    if boxes.size == 0:
        return np.zeros(0)
    iw = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    ih = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = iw * ih
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / (area + areas - inter)


def _color(rng: np.random.Generator, away_from: np.ndarray) -> tuple[int, int, int]:
    """A random colour at least 90 (L1/3) away from ``away_from``."""
    for _ in range(20):
        c = rng.integers(0, 256, 3)
        if np.abs(c - away_from).mean() > 90:
            break
    return tuple(int(v) for v in c)


def _draw_shape(
    draw: ImageDraw.ImageDraw, label: int, box: np.ndarray, fill: tuple[int, int, int], rng: np.random.Generator
) -> None:
    x1, y1, x2, y2 = (float(v) for v in box)
    w, h = x2 - x1, y2 - y1
    name = CLASS_NAMES[label - 1]
    if name == "circle":
        draw.ellipse([x1, y1, x2, y2], fill=fill)
    elif name == "square":
        draw.rectangle([x1, y1, x2, y2], fill=fill)
    elif name == "triangle":
        draw.polygon([(x1 + w * rng.uniform(0.3, 0.7), y1), (x2, y2), (x1, y2)], fill=fill)
    elif name == "cross":
        t = rng.uniform(0.22, 0.36)
        draw.rectangle([x1, y1 + h * (0.5 - t / 2), x2, y1 + h * (0.5 + t / 2)], fill=fill)
        draw.rectangle([x1 + w * (0.5 - t / 2), y1, x1 + w * (0.5 + t / 2), y2], fill=fill)
    else:  # ring
        t = max(2.0, min(w, h) * rng.uniform(0.15, 0.25))
        draw.ellipse([x1, y1, x2, y2], outline=fill, width=int(round(t)))


class ShapesDataset:
    """Indexable synthetic dataset; ``ds[i]`` is a ``Sample`` that depends only on (seed, split, i).

    :param split: ``train``, ``val``, ``calib`` or ``test`` (disjoint random streams)
    :param size: number of images
    :param seed: base seed
    :param image_size: side of the square images, px
    :param max_objects: most objects per image
    :param min_size: smallest object side, px
    :param max_size: largest object side, px
    :param max_overlap: largest IoU allowed between two objects (occlusion)
    """

    def __init__(
        self,
        split: str = "train",
        size: int = 1000,
        seed: int = 0,
        image_size: int = 192,
        max_objects: int = 10,
        min_size: float = 14.0,
        max_size: float = 72.0,
        max_overlap: float = 0.3,
    ) -> None:
        if split not in SPLIT_IDS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLIT_IDS)}")
        if size < 1:
            raise ValueError("size must be >= 1")
        self.split, self.size, self.seed, self.image_size = split, size, seed, image_size
        self.max_objects = max_objects
        self.max_size = min(max_size, image_size * 0.45)
        self.min_size = min(min_size, self.max_size / 2)
        self.max_overlap = max_overlap

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Sample:
        if not 0 <= index < self.size:
            raise IndexError(index)
        return self.generate(index)

    def generate(self, index: int) -> Sample:
        """Render image ``index`` (any non-negative int; training streams past ``size``)."""
        rng = np.random.default_rng([self.seed, SPLIT_IDS[self.split], index])
        s = self.image_size
        bg = rng.integers(0, 256, 3)
        grad = np.linspace(-1, 1, s)[:, None, None] * rng.uniform(-40, 40, 3)
        noise = rng.normal(0, rng.uniform(2, 12), (s, s, 3))
        img = Image.fromarray(np.clip(bg + grad + noise, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(0, 12))):  # clutter: lines and specks
            c = _color(rng, bg)
            if rng.random() < 0.6:
                pts = rng.uniform(0, s, 4)
                draw.line(list(pts), fill=c, width=int(rng.integers(1, 3)))
            else:
                x, y, r = *rng.uniform(0, s, 2), rng.uniform(1, 4)
                draw.ellipse([x - r, y - r, x + r, y + r], fill=c)
        n = int(min(self.max_objects, max(1, rng.geometric(0.22))))
        boxes: list[np.ndarray] = []
        labels: list[int] = []
        for _ in range(n * 4):
            if len(boxes) == n:
                break
            side = np.exp(rng.uniform(np.log(self.min_size), np.log(self.max_size)))
            aspect = np.exp(rng.uniform(-0.35, 0.35))
            w, h = side * aspect, side / aspect
            x1, y1 = rng.uniform(0, s - w), rng.uniform(0, s - h)
            box = np.array([x1, y1, x1 + w, y1 + h])
            if boxes and _iou(box, np.array(boxes)).max(initial=0) > self.max_overlap:
                continue
            label = int(rng.integers(1, len(CLASS_NAMES) + 1))
            _draw_shape(draw, label, box, _color(rng, bg), rng)
            boxes.append(box)
            labels.append(label)
        return Sample(
            np.asarray(img), np.array(boxes, dtype=np.float32).reshape(-1, 4), np.array(labels, dtype=np.int64)
        )


def coco_dict(dataset: ShapesDataset) -> dict:
    """COCO-format ground truth of ``dataset`` (bbox ``[x, y, w, h]``, category ids 1..K)."""
    images, annotations = [], []
    for i in range(len(dataset)):
        sample = dataset[i]
        images.append({"id": i, "file_name": f"{i:06d}.png", "width": dataset.image_size, "height": dataset.image_size})
        for box, label in zip(sample.boxes, sample.labels, strict=True):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": int(label),
                    "bbox": [float(box[0]), float(box[1]), w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASS_NAMES)]
    return {"images": images, "annotations": annotations, "categories": categories}


def export_coco(dataset: ShapesDataset, out_dir: Path) -> Path:
    """Write ``images/*.png`` and ``annotations.json`` (COCO) under ``out_dir``; returns the json path."""
    img_dir = Path(out_dir) / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    for i in range(len(dataset)):
        Image.fromarray(dataset[i].image).save(img_dir / f"{i:06d}.png")
    path = Path(out_dir) / "annotations.json"
    path.write_text(json.dumps(coco_dict(dataset)))
    return path
