"""PP-OCRv4 through our own ORT sessions and pre/post-processing reads rendered words."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("rapidocr_onnxruntime") is None,
    reason="rapidocr-onnxruntime not installed (pip install 'lotus-edge[ocr]')",
)


@pytest.fixture(scope="module")
def ocr():
    from lotus.runtime.models.two_stage import create_pipeline

    return create_pipeline("ppocr-v4", threads=1)


def test_reads_rendered_words(ocr) -> None:
    from lotus.detectors.ocr_bench import WORDS, word_accuracy

    words = list(WORDS[:18])
    acc, texts = word_accuracy(ocr, words, seed=7)
    assert acc >= 0.9, texts


def test_stage_split_and_cap(ocr) -> None:
    from lotus.detectors.ocr_bench import render_words

    image = render_words(["alpha", "beta", "gamma", "delta"], cols=2)
    r1 = ocr.run_stage1(ocr.preprocess(image))
    assert r1.num_proposals == 4 and r1.proposals.shape == (4, 4, 2)
    dets = ocr.run_stage2(r1, max_proposals=2)
    assert [d.label for d in dets] == ["alpha", "beta"]
    x0, y0, x1, y1 = dets[0].box
    assert 0 <= x0 < x1 <= image.shape[1] and 0 <= y0 < y1 <= image.shape[0]
    assert ocr.run_stage2(r1, max_proposals=0) == []


def test_elongated_image_is_bad_input(ocr) -> None:
    from lotus.core.errors import BadInputError
    from lotus.runtime.models.two_stage import create_pipeline

    strip = np.zeros((1, 60_000, 3), np.uint8)
    assert ocr.preprocess(strip)["x"].shape == (1, 3, 32, 960)  # limit_type max: long side down to 960 px
    m = ocr.manifest
    upscaling = create_pipeline(m.model_copy(update={"preprocess": {**m.preprocess, "limit_type": "min"}}), threads=1)
    with pytest.raises(BadInputError, match="too elongated"):
        upscaling.preprocess(strip)  # limit_type min: its short side scaled to 960 px: 5.5e10 pixels
    assert ocr.warmup_image().shape == (320, 320, 3)


def test_ctc_decode() -> None:
    from lotus.runtime.models.ocr import ctc_greedy_decode

    probs = np.zeros((1, 6, 4), np.float32)
    for t, c in enumerate([1, 1, 0, 1, 2, 2]):
        probs[0, t, c] = 1.0
    assert ctc_greedy_decode(probs, ["<b>", "a", "b", " "])[0][0] == "aab"
