"""Triton's KServe v2 extensions through ``tritonclient.http`` against a real uvicorn server.

Model configuration, repository index/load/unload (token-protected), statistics, real model
metadata, unknown versions and the batch dimension. One server for the module (sim board, tiny
synthetic ONNX models).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

pytest.importorskip("onnx")  # the synthetic test models are written with the onnx helper
httpclient = pytest.importorskip("tritonclient.http")

from tritonclient.utils import InferenceServerException  # noqa: E402

from lotus.runtime.api import create_app  # noqa: E402
from lotus.runtime.config import load_settings  # noqa: E402
from lotus.runtime.pipeline import decode_image  # noqa: E402
from lotus.runtime.testing import ServerThread, bright_square_png, write_quadrant_model  # noqa: E402

TOKEN = "control-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OUTPUTS = {"boxes", "scores", "labels", "class_ids", "num_detections"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    root = tmp_path_factory.mktemp("repo")
    write_quadrant_model(root)
    write_quadrant_model(root, name="spare")
    write_quadrant_model(root, work=12, name="slow")
    settings = load_settings(None, {
        "server": {"max_body_bytes": 1024 * 1024, "max_batch_size": 4},
        "board": {"backend": "sim", "state_file": str(root / "state.json")},
        "models": {"repository": str(root), "load": [{"name": "quadrants"}], "threads": 1, "warmup_frames": 1},
        "governor": {"policy": "drl", "token": TOKEN},
    })  # fmt: skip
    app = create_app(settings)
    with ServerThread(app) as url:
        yield app, url


@pytest.fixture(scope="module")
def url(served: tuple[Any, str]) -> str:
    return served[1]


@pytest.fixture
def client(url: str) -> Iterator[Any]:
    c = httpclient.InferenceServerClient(url=url.removeprefix("http://"))
    yield c
    c.close()


def _image(quadrant: int, size: int = 64) -> np.ndarray:
    return decode_image(bright_square_png(quadrant, size=size))


def _infer(client: Any, model: str, pixels: np.ndarray, **kw: Any) -> Any:
    inp = httpclient.InferInput("image", list(pixels.shape), "UINT8")
    inp.set_data_from_numpy(pixels)
    return client.infer(model, [inp], **kw)


def _status(exc: pytest.ExceptionInfo[InferenceServerException]) -> str:
    return str(exc.value.status())


def _version(client: Any, model: str = "quadrants") -> str:
    return str(client.get_model_metadata(model)["versions"][0])


def test_server_metadata_lists_the_extensions(client: Any) -> None:
    ext = set(client.get_server_metadata()["extensions"])
    assert {"binary_tensor_data", "model_configuration", "model_repository", "statistics"} <= ext


def test_model_config(client: Any) -> None:
    cfg = client.get_model_config("quadrants")
    assert cfg["name"] == "quadrants" and cfg["platform"] == "onnxruntime_onnx" and cfg["backend"] == "onnxruntime"
    assert cfg["max_batch_size"] == 4 and cfg["version_policy"] == {"latest": {"num_versions": 1}}
    assert cfg["input"] == [{"name": "image", "data_type": "TYPE_UINT8", "dims": [-1, -1, 3], "format": "FORMAT_NHWC"}]
    out = {o["name"]: o for o in cfg["output"]}
    assert set(out) == OUTPUTS
    assert out["boxes"] == {"name": "boxes", "data_type": "TYPE_FP32", "dims": [-1, 4]}
    assert out["labels"]["data_type"] == "TYPE_STRING" and out["num_detections"]["reshape"] == {"shape": []}
    assert cfg["instance_group"][0]["kind"] == "KIND_CPU"
    assert cfg["parameters"]["kind"] == {"string_value": "frcnn"}
    stage1 = next(s for s in cfg["stages"] if s["name"] == "stage1")
    assert stage1["input"][0] == {"name": "image", "data_type": "TYPE_FP32", "dims": [1, 3, 64, 64], "role": "image"}
    assert client.get_model_config("quadrants", model_version=_version(client)) == cfg


def test_metadata_describes_the_served_and_graph_tensors(client: Any) -> None:
    meta = client.get_model_metadata("quadrants")
    assert meta["inputs"] == [{"name": "image", "datatype": "UINT8", "shape": [-1, -1, -1, 3]}]
    outs = {o["name"]: o for o in meta["outputs"]}
    assert set(outs) == OUTPUTS and outs["boxes"]["shape"] == [-1, -1, 4]
    res = _infer(client, "quadrants", _image(0))
    assert {o["name"] for o in res.get_response()["outputs"]} == OUTPUTS  # metadata says what infer returns
    stage2 = meta["stages"]["stage2"]
    assert [t["name"] for t in stage2["inputs"]] == ["features", "proposals"]
    assert stage2["inputs"][1]["shape"] == [-1, 4] and stage2["outputs"][2]["role"] == "labels"
    assert meta["parameters"]["kind"] == "frcnn" and meta["parameters"]["max_batch_size"] == 4


def test_unknown_version_is_404_everywhere(client: Any, url: str) -> None:
    version = _version(client)
    assert client.is_model_ready("quadrants", model_version=version)
    assert not client.is_model_ready("quadrants", model_version="999")
    for call in (
        lambda: client.get_model_metadata("quadrants", model_version="999"),
        lambda: client.get_model_config("quadrants", model_version="999"),
        lambda: client.get_inference_statistics("quadrants", model_version="999"),
        lambda: _infer(client, "quadrants", _image(0), model_version="999"),
    ):
        with pytest.raises(InferenceServerException) as exc:
            call()
        assert _status(exc) == "404" and "no version '999'" in exc.value.message()
    r = httpx.get(f"{url}/v2/models/quadrants/versions/999/ready")
    assert r.status_code == 404 and "no version" in r.json()["error"]
    assert _infer(client, "quadrants", _image(1), model_version=version).as_numpy("num_detections").tolist() == [4]


def test_batch_infer(client: Any) -> None:
    batch = np.stack([_image(q) for q in (0, 1, 3)])
    res = _infer(client, "quadrants", batch)
    boxes = res.as_numpy("boxes")
    assert boxes.shape == (3, 4, 4) and res.as_numpy("num_detections").tolist() == [4, 4, 4]
    for i, (x0, y0) in enumerate([(0, 0), (32, 0), (32, 32)]):
        np.testing.assert_allclose(boxes[i, 0], [x0, y0, x0 + 32, y0 + 32])
    assert res.as_numpy("labels").shape == (3, 4) and res.as_numpy("labels")[2, 0] == b"bright"
    assert res.as_numpy("scores").shape == (3, 4) and res.as_numpy("class_ids")[1].tolist() == [1, 1, 1, 1]
    assert res.get_response()["parameters"]["batch_size"] == 3
    one = _infer(client, "quadrants", batch[:1])  # [1, H, W, 3]: the outputs keep the batch dimension
    assert one.as_numpy("boxes").shape == (1, 4, 4) and one.as_numpy("num_detections").tolist() == [4]
    with pytest.raises(InferenceServerException) as exc:
        _infer(client, "quadrants", np.stack([_image(0)] * 5))
    assert _status(exc) == "400" and "max_batch_size=4" in exc.value.message()


def test_statistics_count_requests(client: Any, url: str) -> None:
    def stats() -> dict[str, Any]:
        return client.get_inference_statistics("quadrants")["model_stats"][0]

    before = stats()
    assert before["name"] == "quadrants" and before["version"] == _version(client)
    _infer(client, "quadrants", _image(2))
    _infer(client, "quadrants", np.stack([_image(0), _image(1)]))
    r = httpx.post(
        f"{url}/v1/detect?model=quadrants", content=bright_square_png(3), headers={"Content-Type": "image/png"}
    )
    assert r.status_code == 200
    with pytest.raises(InferenceServerException):  # a bad tensor counts as a failure
        _infer(client, "quadrants", np.zeros((2, 2), dtype=np.uint8))
    after = stats()
    b, a = before["inference_stats"], after["inference_stats"]
    assert a["success"]["count"] == b["success"]["count"] + 3 and a["fail"]["count"] == b["fail"]["count"] + 1
    assert after["inference_count"] == before["inference_count"] + 4
    assert after["execution_count"] == before["execution_count"] + 4
    for phase in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert a[phase]["count"] == b[phase]["count"] + 3 and a[phase]["ns"] >= b[phase]["ns"]
    assert a["compute_infer"]["ns"] > b["compute_infer"]["ns"] and a["success"]["ns"] > b["success"]["ns"]
    assert after["last_inference"] >= int(time.time() * 1e3) - 60_000
    assert 2 in {s["batch_size"] for s in after["batch_stats"]}
    every = client.get_inference_statistics()["model_stats"]
    assert "quadrants" in {s["name"] for s in every}


def test_repository_index(client: Any) -> None:
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["quadrants"]["state"] == "READY" and index["quadrants"]["version"] == _version(client)
    assert index["spare"]["state"] == "UNAVAILABLE" and "version" in index["spare"]
    assert {"spare", "slow"} <= set(index)


def test_load_and_unload_need_the_token(client: Any, served: tuple[Any, str]) -> None:
    for headers in (None, {"Authorization": "Bearer wrong-token-123"}, {"Authorization": TOKEN}):
        for call in (client.load_model, client.unload_model):
            with pytest.raises(InferenceServerException) as exc:
                call("spare", headers=headers)
            assert _status(exc) == "401" and "bearer token" in exc.value.message()
    daemon = served[0].state.daemon
    daemon.token = None  # no token configured: model control is off
    try:
        with pytest.raises(InferenceServerException) as exc:
            client.load_model("spare", headers=AUTH)
        assert _status(exc) == "403" and "disabled" in exc.value.message()
    finally:
        daemon.token = TOKEN
    assert not client.is_model_ready("spare")


def test_load_serve_and_unload(client: Any) -> None:
    client.load_model("spare", headers=AUTH)
    try:
        assert client.is_model_ready("spare") and client.is_model_ready("quadrants")
        np.testing.assert_allclose(_infer(client, "spare", _image(3)).as_numpy("boxes")[0], [32, 32, 64, 64])
        index = {m["name"]: m for m in client.get_model_repository_index()}
        assert index["spare"]["state"] == "READY"
        assert client.get_inference_statistics("spare")["model_stats"][0]["inference_count"] == 1
        client.load_model("spare", headers=AUTH)  # a reload swaps in a fresh copy
        assert client.is_model_ready("spare")
    finally:
        client.unload_model("spare", headers=AUTH)
    assert not client.is_model_ready("spare")
    with pytest.raises(InferenceServerException) as exc:
        _infer(client, "spare", _image(0))
    assert _status(exc) == "404"
    index = {m["name"]: m for m in client.get_model_repository_index()}
    assert index["spare"] == {**index["spare"], "state": "UNAVAILABLE", "reason": "unloaded"}
    for name, status in (("spare", "404"), ("nope", "404")):
        with pytest.raises(InferenceServerException) as exc:
            client.unload_model(name, headers=AUTH)
        assert _status(exc) == status
    with pytest.raises(InferenceServerException) as exc:
        client.load_model("nope", headers=AUTH)
    assert _status(exc) == "404" and "unknown model 'nope'" in exc.value.message()
    with pytest.raises(InferenceServerException) as exc:
        client.load_model("quadrants", headers=AUTH, config='{"max_batch_size": 1}')
    assert _status(exc) == "400" and "not supported" in exc.value.message()
    assert _infer(client, "quadrants", _image(0)).as_numpy("num_detections").tolist() == [4]


def test_unload_never_breaks_requests_in_flight(client: Any, url: str, served: tuple[Any, str]) -> None:
    client.load_model("slow", headers=AUTH)
    pixels = _image(1)
    body = {"inputs": [{"name": "image", "shape": list(pixels.shape), "datatype": "UINT8",
                        "data": pixels.ravel().tolist()}]}  # fmt: skip
    statuses: list[int] = []

    def send() -> None:
        r = httpx.post(f"{url}/v2/models/slow/infer", json=body, timeout=30)
        statuses.append(r.status_code)
        assert "error" in r.json() or r.json()["model_name"] == "slow"

    threads = [threading.Thread(target=send) for _ in range(4)]
    for t in threads:
        t.start()
    daemon, deadline = served[0].state.daemon, time.monotonic() + 10
    while daemon.pending == 0 and time.monotonic() < deadline:  # unload once frames are queued or running
        time.sleep(0.002)
    client.unload_model("slow", headers=AUTH)
    for t in threads:
        t.join(timeout=30)
    assert 200 in statuses  # the frames queued before the unload ran
    assert len(statuses) == 4 and set(statuses) <= {200, 404}, statuses
    assert not client.is_model_ready("slow") and client.is_model_ready("quadrants")
    assert _infer(client, "quadrants", _image(2)).as_numpy("num_detections").tolist() == [4]
