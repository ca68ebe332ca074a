"""Manifest roles and the single-stage detector's pre/post-processing (numpy only, no server)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from lotus.core.errors import ModelLoadError
from lotus.runtime.models.image import ImageInput
from lotus.runtime.models.manifest import MODELS_ROOT, ModelManifest, TensorSpec, load_manifest, read_manifest
from lotus.runtime.models.nms import nms, to_xyxy
from lotus.runtime.models.two_stage import create_pipeline


def test_shipped_manifests_get_default_roles() -> None:
    m = load_manifest("frcnn-lite")
    assert [t.role for t in m.stage("stage1").outputs] == ["features", "proposals", "proposal_scores"]
    assert m.tensor_name("stage2", "labels", "outputs") == "labels" and m.spec.two_stage


def _frcnn_copy(tmp_path: Path) -> tuple[Path, dict]:
    folder = tmp_path / "m"
    shutil.copytree(MODELS_ROOT / "frcnn-lite", folder)
    return folder / "manifest.yaml", yaml.safe_load((folder / "manifest.yaml").read_text())


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda d: [t.update(role="scores") for t in d["stages"][1]["outputs"]], "'scores' is given to more than one"),
        (lambda d: d["stages"][1]["outputs"].pop(0), "stage2.outputs: no tensor has role 'boxes'"),
        (lambda d: d["stages"][0]["inputs"][0].update(role="boxes"), "role 'boxes' of 'image' is not one of"),
        (lambda d: d.update(kind="onnx-detector"), "has stages ['stage1'], the manifest lists"),
    ],
)
def test_bad_roles_are_load_errors(tmp_path: Path, edit, words: str) -> None:  # noqa: ANN001
    path, data = _frcnn_copy(tmp_path)
    edit(data)
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelLoadError, match=words.replace("[", r"\[").replace("]", r"\]")):
        read_manifest(path)


def test_manifest_names_must_exist_in_the_graph(tmp_path: Path) -> None:
    path, data = _frcnn_copy(tmp_path)
    data["stages"][1]["inputs"][1]["name"] = "rois"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ModelLoadError, match=r"input 'rois' \(role proposals\) is not in stage2.onnx, whose inputs"):
        create_pipeline(read_manifest(path), threads=1)


def test_nms_is_class_aware_and_formats_convert() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    assert nms(boxes, scores, 0.5).tolist() == [0, 3]
    assert nms(boxes, scores, 0.5, np.array([0, 0, 1, 1])).tolist() == [0, 2, 3]
    assert nms(boxes[:0], scores[:0], 0.5).tolist() == []
    np.testing.assert_array_equal(to_xyxy(np.array([[5, 5, 10, 4]]), "cxcywh"), [[0, 3, 10, 7]])
    np.testing.assert_array_equal(to_xyxy(np.array([[1, 2, 3, 4]]), "xywh"), [[1, 2, 4, 6]])


def _manifest(pre: dict, shape: list, dtype: str = "float32") -> tuple[ModelManifest, TensorSpec]:
    data = yaml.safe_load((MODELS_ROOT / "frcnn-lite" / "manifest.yaml").read_text())
    data["preprocess"] = pre
    data["stages"][0]["inputs"][0].update(shape=shape, dtype=dtype)
    m = ModelManifest.model_validate(data)
    return m, m.stages[0].inputs[0]


def test_image_input_layouts_and_normalisation() -> None:
    image = np.full((20, 10, 3), 255, np.uint8)
    image[..., 2] = 0
    m, t = _manifest({"mean": [0.5, 0.5, 0.5], "std": 0.5, "channel_order": "BGR"}, [1, 8, 4, 3])
    x, scale = ImageInput.from_manifest(m, t)(image)
    assert x.shape == (1, 8, 4, 3) and x.dtype == np.float32 and scale == (2.5, 2.5)
    np.testing.assert_allclose(x[0, 0, 0], [-1, 1, 1])  # BGR: the empty blue channel first
    m, t = _manifest({}, [1, 3, "h", "w"], "uint8")
    with pytest.raises(ModelLoadError, match="dynamic size .* set preprocess.input_size"):
        ImageInput.from_manifest(m, t)
    m, t = _manifest({"input_size": [6, 4]}, [1, 3, "h", "w"], "uint8")
    x, _ = ImageInput.from_manifest(m, t)(image)
    assert x.shape == (1, 3, 6, 4) and x.dtype == np.uint8 and x.max() == 255
    m, t = _manifest({"mean": 0.5}, [1, 3, 4, 4], "uint8")
    with pytest.raises(ModelLoadError, match="raw pixels"):
        ImageInput.from_manifest(m, t)
