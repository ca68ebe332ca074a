"""PP-OCRv4 end to end through the daemon: rendered words sent to ``/v1/detect`` come back as text."""

from __future__ import annotations

import importlib.util

import httpx
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("rapidocr_onnxruntime") is None,
    reason="rapidocr-onnxruntime not installed (pip install 'lotus-edge[ocr]')",
)


def _close(a: str, b: str) -> bool:
    """Whether ``a`` and ``b`` are at most one edit (insert, delete, substitute) apart."""
    if abs(len(a) - len(b)) > 1:
        return False
    if len(a) > len(b):
        a, b = b, a
    i = next((k for k in range(len(a)) if a[k] != b[k]), len(a))
    return a[i + (len(a) == len(b)) :] == b[i + 1 :]


def _missing(words: tuple[str, ...], labels: list[str]) -> list[str]:
    """The ``words`` that no read token matches (case-insensitive, edit distance <= 1)."""
    tokens = [t.lower() for label in labels for t in label.split()]
    return [w for w in words if not any(_close(w.lower(), t) for t in tokens)]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    from lotus.runtime.api import create_app
    from lotus.runtime.config import load_settings
    from lotus.runtime.testing import ServerThread

    tmp = tmp_path_factory.mktemp("ocr")
    settings = load_settings(None, {
        "board": {"backend": "sim", "state_file": str(tmp / "state.json")},
        "models": {"repository": str(tmp), "load": [{"name": "ppocr-v4"}], "threads": 1, "warmup_frames": 1},
        "governor": {"policy": "drl"},
    })  # fmt: skip
    with ServerThread(create_app(settings), ready_timeout_s=120) as url, httpx.Client(base_url=url, timeout=60) as c:
        yield c


def _detect(client: httpx.Client, lines: tuple[str, ...], size: tuple[int, int], font_px: int) -> list[dict]:
    from lotus.runtime.cli.bench import _png, render_text

    r = client.post("/v1/detect?model=ppocr-v4", content=_png(render_text(lines, size, font_px)),
                    headers={"Content-Type": "image/png"})  # fmt: skip
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["model"] == "ppocr-v4" and doc["num_proposals"] >= len(doc["detections"])
    for d in doc["detections"]:
        x0, y0, x1, y1 = d["box"]
        assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1], d
    return doc["detections"]


def test_reads_rendered_words(client: httpx.Client) -> None:
    lines = ("Jetson camera", "kernel 42")
    dets = _detect(client, lines, (480, 200), 40)
    labels = [d["label"] for d in dets]
    assert not _missing(tuple(" ".join(lines).split()), labels), labels
    assert len(dets) == 2 and dets[0]["box"][1] < dets[1]["box"][1]  # one box per line, in reading order


def test_wide_image_is_read(client: httpx.Client) -> None:
    lines = ("lotus edge governor", "thermal deadline 2026")
    dets = _detect(client, lines, (960, 360), 48)
    labels = [d["label"] for d in dets]
    assert not _missing(tuple(" ".join(lines).split()), labels), labels
    assert max(d["box"][2] for d in dets) > 400  # boxes in original pixels, not the shrunk model input


def test_detector_input_sizing() -> None:
    from lotus.runtime.models.manifest import load_manifest
    from lotus.runtime.models.ocr import det_input_size

    assert det_input_size(360, 960, 960, "max") == (352, 960)  # no upscaling, sides to multiples of 32
    assert det_input_size(1080, 1920, 960, "max") == (544, 960)  # long side down to the limit
    assert det_input_size(360, 960, 736, "min") == (736, 1952)  # rapidocr's default: short side up to 736
    assert det_input_size(1, 60_000, 960, "max") == (32, 960)
    pre = load_manifest("ppocr-v4", verify=False).preprocess
    assert (pre["limit_type"], pre["limit_side_len"]) == ("max", 960)


def test_bad_sizing_is_a_load_error() -> None:
    from lotus.core.errors import ModelLoadError
    from lotus.runtime.models.manifest import load_manifest
    from lotus.runtime.models.two_stage import create_pipeline

    m = load_manifest("ppocr-v4")
    bad = m.model_copy(update={"preprocess": {**m.preprocess, "limit_type": "long"}})
    with pytest.raises(ModelLoadError, match="limit_type must be one of max, min"):
        create_pipeline(bad, threads=1)
