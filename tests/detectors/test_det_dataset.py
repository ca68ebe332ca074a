"""Synthetic shapes: determinism, variety, COCO export."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lotus.detectors.dataset import CLASS_NAMES, ShapesDataset, coco_dict, export_coco


def test_same_seed_same_images() -> None:
    a, b = ShapesDataset("val", 5, seed=3), ShapesDataset("val", 5, seed=3)
    for i in range(5):
        assert np.array_equal(a[i].image, b[i].image)
        assert np.array_equal(a[i].boxes, b[i].boxes)
        assert np.array_equal(a[i].labels, b[i].labels)


def test_seeds_and_splits_differ() -> None:
    a = ShapesDataset("val", 2, seed=0)[0].image
    assert not np.array_equal(a, ShapesDataset("val", 2, seed=1)[0].image)
    assert not np.array_equal(a, ShapesDataset("train", 2, seed=0)[0].image)


def test_objects_vary_and_stay_inside() -> None:
    ds = ShapesDataset("train", 60)
    counts, labels = [], set()
    for i in range(len(ds)):
        s = ds[i]
        assert s.image.shape == (192, 192, 3) and s.image.dtype == np.uint8
        assert (s.boxes[:, 2:] > s.boxes[:, :2]).all()
        assert s.boxes.min() >= 0 and s.boxes.max() <= 192
        counts.append(len(s.boxes))
        labels |= set(s.labels.tolist())
    assert min(counts) >= 1 and max(counts) - min(counts) >= 4
    assert labels == set(range(1, len(CLASS_NAMES) + 1))


def test_bad_split_and_index() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        ShapesDataset("nope", 3)
    with pytest.raises(IndexError):
        ShapesDataset("val", 3)[3]


def test_coco_export_loads(tmp_path) -> None:
    COCO = pytest.importorskip("faster_coco_eval").COCO  # noqa: N806

    ds = ShapesDataset("test", 4)
    path = export_coco(ds, tmp_path)
    assert len(list((tmp_path / "images").glob("*.png"))) == 4
    data = json.loads(path.read_text())
    assert data == coco_dict(ds)
    coco = COCO(str(path))
    assert len(coco.getImgIds()) == 4
    assert len(coco.getAnnIds()) == sum(len(ds[i].boxes) for i in range(4))
