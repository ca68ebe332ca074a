"""The torch-free runtime on the shipped artifacts (real ORT sessions)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest

from lotus.detectors.dataset import CLASS_NAMES, ShapesDataset
from lotus.detectors.evaluate import evaluate
from lotus.runtime.models.two_stage import Detection, FrcnnPipeline, Stage1Result, create_pipeline


def test_pipeline_module_does_not_import_torch() -> None:
    code = (
        "import sys, lotus.runtime.models.two_stage as tws; "
        "p = tws.create_pipeline('frcnn-lite', threads=1); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_stages_on_a_synthetic_image() -> None:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    pipe = create_pipeline("frcnn-lite", providers=["CPUExecutionProvider"], sess_options=opts)
    assert isinstance(pipe, FrcnnPipeline)
    sample = ShapesDataset("test", 1)[0]
    big = np.repeat(np.repeat(sample.image, 2, 0), 3, 1)  # 384x576: boxes must come back in these pixels
    r1 = pipe.run_stage1(pipe.preprocess(big))
    assert isinstance(r1, Stage1Result) and r1.num_proposals == len(r1.proposals) > 0
    dets = pipe.run_stage2(r1)
    assert dets and all(isinstance(d, Detection) and d.label in CLASS_NAMES for d in dets)
    best = [d for d in dets if d.score > 0.5]
    assert best and max(d.box[2] for d in best) > 192  # scaled to the 576-px width
    assert len(pipe.run_stage2(r1, max_proposals=3)) <= 3


def test_shipped_model_accuracy() -> None:
    pytest.importorskip("faster_coco_eval")
    pipe = create_pipeline("frcnn-lite", threads=1)
    res = evaluate(ShapesDataset("val", 40), pipe.predict)
    assert res["map50"] > 0.7


@pytest.mark.parametrize("shape", [(8, 8), (8, 8, 4), (0, 8, 3)])
def test_unusable_arrays_are_bad_input(shape: tuple[int, ...]) -> None:
    from lotus.core.errors import BadInputError

    pipe = create_pipeline("frcnn-lite", threads=1)
    with pytest.raises(BadInputError, match="HxWx3 uint8"):
        pipe.preprocess(np.zeros(shape, np.uint8))
    with pytest.raises(BadInputError):
        pipe.preprocess(np.zeros((8, 8, 3), np.float32))


def test_base_class_is_the_daemons_interface() -> None:
    from lotus.runtime.models.two_stage import TwoStagePipeline

    pipe = create_pipeline("frcnn-lite", threads=1)
    assert isinstance(pipe, TwoStagePipeline) and pipe.provider == "CPUExecutionProvider"
    assert pipe.warmup_image().shape == (192, 192, 3)
    with pytest.raises(TypeError):
        TwoStagePipeline(pipe.manifest)  # type: ignore[abstract]
