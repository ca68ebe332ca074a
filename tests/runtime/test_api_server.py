"""The HTTP API on a real uvicorn server (sim board, real ORT sessions of a tiny synthetic model)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

pytest.importorskip("onnx")  # the synthetic test model is written with the onnx helper

from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from lotus.runtime.api import create_app  # noqa: E402
from lotus.runtime.config import load_settings  # noqa: E402
from lotus.runtime.pipeline import decode_image  # noqa: E402
from lotus.runtime.testing import ServerThread, bright_square_png, write_quadrant_model  # noqa: E402

TOKEN = "s3cret-token-for-tests"


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    write_quadrant_model(root)
    write_quadrant_model(root, work=12, name="slow")
    return root


def _settings(repo: Path, tmp: Path, **over: object) -> object:
    base = {
        "server": {"queue_size": 8, "stream_buffer": 1, "max_body_bytes": 256 * 1024},
        "board": {"backend": "sim", "state_file": str(tmp / "state.json")},
        "models": {"repository": str(repo), "load": [{"name": "quadrants", "slo_ms": 50}, {"name": "slow"}],
                   "threads": 1, "warmup_frames": 1},
        "governor": {"policy": "drl", "token": TOKEN},
    }  # fmt: skip
    for key, value in over.items():
        base[key] = {**base.get(key, {}), **value}  # type: ignore[dict-item]
    return load_settings(None, base)


@pytest.fixture(scope="module")
def server(repo: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    app = create_app(_settings(repo, tmp_path_factory.mktemp("state")))
    with ServerThread(app) as url:
        yield url


@pytest.fixture(scope="module")
def client(server: str):  # noqa: ANN201
    with httpx.Client(base_url=server, timeout=30) as c:
        yield c


def _detect(client: httpx.Client, body: bytes, model: str = "quadrants", ctype: str = "image/png") -> httpx.Response:
    return client.post(f"/v1/detect?model={model}", content=body, headers={"Content-Type": ctype})


def test_health_ready_and_docs(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["ready"] and ready["provider"] == "CPUExecutionProvider" and ready["board"] == "sim"
    assert isinstance(ready["debug"]["torch_imported"], bool)  # in-process: other tests may have imported torch
    assert client.get("/docs").status_code == 200
    assert "/v1/detect" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("quadrant", [0, 3])
def test_detect_finds_the_bright_quadrant(client: httpx.Client, quadrant: int) -> None:
    r = _detect(client, bright_square_png(quadrant, size=128))
    assert r.status_code == 200, r.text
    doc = r.json()
    top = doc["detections"][0]
    h = 64
    x0, y0 = (quadrant % 2) * h, (quadrant // 2) * h
    assert top["box"] == [x0, y0, x0 + h, y0 + h] and top["label"] == "bright"
    assert top["score"] > 0.5 > doc["detections"][1]["score"]
    assert doc["num_proposals"] == 4
    for key in ("stage1", "stage2", "decision_stage2", "clock_set_next", "frame", "queue"):
        assert doc["timings_ms"][key] >= 0
    assert doc["energy_j"] > 0 and doc["clocks_after"]["cpu_khz"] and "cpu-thermal" in doc["temps_c"]
    assert doc["governor"]["mode"] == "active" and doc["governor"]["deadline_ms"] == 50


def test_detect_multipart_and_jpeg(client: httpx.Client) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.open(io.BytesIO(bright_square_png(1))).save(buf, format="JPEG")
    r = client.post("/v1/detect", files={"file": ("x.jpg", buf.getvalue(), "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["detections"][0]["box"] == [64, 0, 128, 64]


@pytest.mark.parametrize(
    ("body", "ctype", "status", "words"),
    [
        (b"\x00garbage\xff" * 10, "image/png", 400, "not a readable image"),
        (b"", "image/jpeg", 400, "empty body"),
        (b"hello", "text/plain", 415, "unsupported content type"),
        (b"x" * (300 * 1024), "image/png", 413, "max_body_bytes"),
    ],
)
def test_bad_inputs_get_json_4xx(client: httpx.Client, body: bytes, ctype: str, status: int, words: str) -> None:
    r = _detect(client, body, ctype=ctype)
    assert r.status_code == status and words in r.json()["error"]
    assert _detect(client, bright_square_png(0)).status_code == 200  # still serving


def test_chunked_body_over_limit_is_413(client: httpx.Client) -> None:
    def gen():  # noqa: ANN202 - no Content-Length: the limit is enforced while reading
        for _ in range(40):
            yield b"x" * 8192

    r = client.post("/v1/detect", content=gen(), headers={"Content-Type": "image/png"})
    assert r.status_code == 413


def test_unknown_model_is_404(client: httpx.Client) -> None:
    r = _detect(client, bright_square_png(0), model="nope")
    assert r.status_code == 404 and "unknown model" in r.json()["error"]
    assert client.get("/v2/models/nope").status_code == 404


def test_metrics_parse_with_base_units(client: httpx.Client) -> None:
    _detect(client, bright_square_png(2))
    r = client.get("/metrics")
    families = {f.name: f for f in text_string_to_metric_families(r.text)}
    for name in ("lotus_inference_duration_seconds", "lotus_frame_energy_joules", "lotus_governor_decisions",
                 "lotus_governor_decision_duration_seconds", "lotus_temperature_celsius", "lotus_cpu_frequency_hertz",
                 "lotus_queue_depth", "lotus_thermal_throttle_events", "lotus_build_info", "lotus_policy_info",
                 "lotus_frames_dropped", "lotus_rejected_requests", "lotus_governor_deadline_stretch"):  # fmt: skip
        assert name in families, name
    stages = {s.labels.get("stage") for s in families["lotus_inference_duration_seconds"].samples}
    assert {"stage1", "stage2", "frame"} <= stages
    build = families["lotus_build_info"].samples[0].labels
    assert build["provider"] == "CPUExecutionProvider" and build["board"] == "sim"
    assert families["lotus_policy_info"].samples[0].labels["policy"] == "drl"
    # a cool simulated board: the shield shows drl the real deadline
    assert families["lotus_governor_deadline_stretch"].samples[0].value == 1.0
    # a cool board: no prediction came near the trip, so none was checked and no quantile is published
    assert families["lotus_shield_lookahead_checks"].samples[0].value == 0.0
    assert client.get("/v1/governor").json()["lookahead_error_c"]["max_c"] is None
    status = client.get("/v1/governor").json()
    assert status["deadline_stretch"] == 1.0
    assert 0.0 < status["policy_load_ms"] < 60_000  # timed, not a placeholder (the figure lives in bench serve)


def test_governor_put_needs_token(client: httpx.Client) -> None:
    assert client.get("/v1/governor").json()["mode"] == "active"
    body = {"mode": "shadow", "policy": "performance"}
    assert client.put("/v1/governor", json=body).status_code == 401
    r = client.put("/v1/governor", json=body, headers={"Authorization": "Bearer wrong-token-123"})
    assert r.status_code == 401 and "error" in r.json()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    r = client.put("/v1/governor", json=body, headers=auth)
    assert r.status_code == 200 and r.json()["mode"] == "shadow" and r.json()["policy"] == "performance"
    doc = _detect(client, bright_square_png(0)).json()
    assert doc["governor"]["mode"] == "shadow" and doc["governor"]["policy"] == "performance"
    assert client.put("/v1/governor", json={"policy": "bogus"}, headers=auth).status_code == 400
    assert client.put("/v1/governor", json={"mode": "sideways"}, headers=auth).status_code == 422
    r = client.put("/v1/governor", json={"mode": "active", "policy": "drl"}, headers=auth)
    assert r.json()["mode"] == "active" and r.json()["policy_load_ms"] > 0.0


def test_governor_put_disabled_without_token(repo: Path, tmp_path: Path) -> None:
    settings = _settings(repo, tmp_path, governor={"token": None}, models={"load": [{"name": "quadrants"}]})
    with ServerThread(create_app(settings)) as url:
        r = httpx.put(url + "/v1/governor", json={"mode": "off"}, headers={"Authorization": "Bearer anything12"})
        assert r.status_code == 403 and "disabled" in r.json()["error"]


def test_queue_full_gives_503_with_retry_after(repo: Path, tmp_path: Path) -> None:
    settings = _settings(repo, tmp_path, server={"queue_size": 1}, models={"load": [{"name": "slow"}]})
    with ServerThread(create_app(settings)) as url:
        codes: list[httpx.Response] = []

        def post() -> None:
            codes.append(httpx.post(url + "/v1/detect", content=bright_square_png(0),
                                    headers={"Content-Type": "image/png"}, timeout=30))  # fmt: skip

        threads = [threading.Thread(target=post) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        statuses = sorted(r.status_code for r in codes)
        assert set(statuses) <= {200, 503} and 200 in statuses and 503 in statuses, statuses
        busy = next(r for r in codes if r.status_code == 503)
        assert busy.headers["Retry-After"] == "1" and "queue full" in busy.json()["error"]
        ok = httpx.post(url + "/v1/detect", content=bright_square_png(0), headers={"Content-Type": "image/png"})
        assert ok.status_code == 200


def test_websocket_stream_in_order_with_drops(server: str) -> None:
    from websockets.sync.client import connect

    frames = [bright_square_png(i % 4) for i in range(8)]
    with connect(server.replace("http", "ws") + "/v1/stream?model=slow", max_size=None) as ws:
        for f in frames:
            ws.send(f)
        results = []
        while True:
            msg = json.loads(ws.recv(timeout=30))
            assert "error" not in msg, msg
            results.append(msg)
            if msg["seq"] == len(frames) - 1:
                break
    seqs = [m["seq"] for m in results]
    assert seqs == sorted(set(seqs))
    dropped = results[-1]["dropped"]
    assert dropped >= 1 and len(results) + dropped == len(frames)
    for m in results:
        quadrant = m["seq"] % 4
        assert m["detections"][0]["box"][:2] == [(quadrant % 2) * 64, (quadrant // 2) * 64]


def test_websocket_bad_frame_and_unknown_model(server: str) -> None:
    from websockets.sync.client import connect

    with connect(server.replace("http", "ws") + "/v1/stream") as ws:
        ws.send(b"not an image")
        assert "not a readable image" in json.loads(ws.recv(timeout=30))["error"]
        ws.send(bright_square_png(0))
        assert json.loads(ws.recv(timeout=30))["seq"] == 1
    with connect(server.replace("http", "ws") + "/v1/stream?model=nope") as ws:
        assert "unknown model" in json.loads(ws.recv(timeout=30))["error"]


def test_sse_events_and_telemetry(client: httpx.Client, server: str) -> None:
    stop = threading.Event()

    def feed() -> None:
        with httpx.Client(base_url=server) as c:
            while not stop.is_set():
                _detect(c, bright_square_png(1))
                time.sleep(0.05)

    events = []
    feeder = threading.Thread(target=feed)
    with httpx.stream("GET", server + "/v1/events?max_events=2", timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        feeder.start()
        try:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
        finally:
            stop.set()
            feeder.join()
    assert len(events) == 2 and events[0]["model"] == "quadrants" and events[1]["frame"] > events[0]["frame"]
    assert {"latency_ms", "cpu_khz", "temps_c", "energy_j", "action"} <= set(events[0])
    samples = client.get("/v1/telemetry?limit=5").json()["samples"]
    assert 0 < len(samples) <= 5


def test_kserve_json_protocol(client: httpx.Client) -> None:
    assert client.get("/v2").json()["name"] == "lotus"
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/quadrants/ready").status_code == 200
    meta = client.get("/v2/models/quadrants").json()
    assert meta["inputs"][0]["name"] == "image" and {o["name"] for o in meta["outputs"]} >= {"boxes", "scores"}
    img = decode_image(bright_square_png(3, size=64))
    req = {"inputs": [{"name": "image", "shape": list(img.shape), "datatype": "UINT8", "data": img.ravel().tolist()}]}
    doc = client.post("/v2/models/quadrants/infer", json=req).json()
    outs = {o["name"]: o for o in doc["outputs"]}
    assert outs["boxes"]["shape"] == [4, 4] and outs["boxes"]["data"][:4] == [32, 32, 64, 64]
    assert outs["labels"]["data"][0] == "bright"
    bad = client.post(
        "/v2/models/quadrants/infer",
        json={"inputs": [{"name": "image", "shape": [2, 2], "datatype": "UINT8", "data": [1, 2, 3, 4]}]},
    )
    assert bad.status_code == 400 and "shape" in bad.json()["error"]
    assert client.post("/v2/models/quadrants/infer", content=b"{oops").status_code == 400


def test_tritonclient_http_infer(server: str) -> None:
    httpclient = pytest.importorskip("tritonclient.http")
    client = httpclient.InferenceServerClient(url=server.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("quadrants")
        img = decode_image(bright_square_png(2, size=96))
        inp = httpclient.InferInput("image", list(img.shape), "UINT8")
        inp.set_data_from_numpy(img)  # binary tensor extension (tritonclient's default)
        res = client.infer("quadrants", [inp])
        np.testing.assert_allclose(res.as_numpy("boxes")[0], [0, 48, 48, 96])
        assert res.as_numpy("labels")[0] == b"bright" and res.as_numpy("scores")[0] > 0.5
        # JSON tensors both ways
        inp.set_data_from_numpy(img, binary_data=False)
        outs = [httpclient.InferRequestedOutput("boxes", binary_data=False)]
        res = client.infer("quadrants", [inp], outputs=outs)
        np.testing.assert_allclose(res.as_numpy("boxes")[0], [0, 48, 48, 96])
        # an encoded image as BYTES
        enc = httpclient.InferInput("image", [1], "BYTES")
        enc.set_data_from_numpy(np.array([bright_square_png(1, size=96)], dtype=np.object_))
        np.testing.assert_allclose(client.infer("quadrants", [enc]).as_numpy("boxes")[0], [48, 0, 96, 48])
    finally:
        client.close()


def test_shipped_frcnn_lite_detects_shapes(tmp_path: Path) -> None:
    from lotus.runtime.models.manifest import MODELS_ROOT, list_models

    if "frcnn-lite" not in list_models(MODELS_ROOT):
        pytest.skip("frcnn-lite is not shipped in this checkout yet")
    from PIL import Image

    from lotus.detectors.dataset import ShapesDataset

    sample = ShapesDataset("val", size=4, seed=1, image_size=192)[0]
    buf = io.BytesIO()
    Image.fromarray(sample.image).save(buf, format="PNG")
    settings = load_settings(None, {"board": {"backend": "sim"}, "models": {"threads": 1, "warmup_frames": 1}})
    with ServerThread(create_app(settings)) as url:
        doc = httpx.post(url + "/v1/detect", content=buf.getvalue(), headers={"Content-Type": "image/png"}).json()
    best = [d for d in doc["detections"] if d["score"] > 0.5]
    assert best, doc["detections"][:3]
    gt = sample.boxes
    for det in best[:3]:
        b = np.asarray(det["box"])
        iw = np.clip(np.minimum(b[2], gt[:, 2]) - np.maximum(b[0], gt[:, 0]), 0, None)
        ih = np.clip(np.minimum(b[3], gt[:, 3]) - np.maximum(b[1], gt[:, 1]), 0, None)
        inter = iw * ih
        union = (b[2] - b[0]) * (b[3] - b[1]) + (gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]) - inter
        assert (inter / union).max() > 0.5


def test_daemon_code_path_never_imports_torch() -> None:
    """Building the app, the pipeline, the governor (drl + shield) and a frame: no torch, no SB3."""
    code = (
        "import sys\n"
        "from lotus.runtime.api import create_app\n"
        "from lotus.runtime.config import load_settings\n"
        "from lotus.runtime.daemon import Daemon\n"
        "from lotus.runtime.pipeline import FramePipeline\n"
        "from lotus.governor.registry import build_policy\n"
        "from lotus.envs.core import Resolved\n"
        "from lotus.envs.scenario import Scenario\n"
        "import numpy as np\n"
        "acts = Resolved.from_scenario(Scenario()).actions\n"
        "p = build_policy('drl', acts)\n"
        "p.act(np.zeros((1, 17), dtype=np.float32))\n"
        "create_app(load_settings(None, {'board': {'backend': 'sim'}}))\n"
        "bad = [m for m in ('torch', 'stable_baselines3') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_detect_json_is_the_pydantic_model(client: httpx.Client, server: str) -> None:
    """DetectResponse is the one definition: /v1/detect and each WS result round-trip through it."""
    from websockets.sync.client import connect

    from lotus.runtime.api.models import DetectionOut, DetectResponse

    doc = _detect(client, bright_square_png(1)).json()
    assert DetectResponse.model_validate(doc).model_dump(mode="json") == doc
    assert list(doc) == list(DetectResponse.model_fields)  # every field, in the model's order
    assert all(list(d) == list(DetectionOut.model_fields) for d in doc["detections"]) and doc["detections"]
    assert doc["source"] == "api" and doc["provider"] == "CPUExecutionProvider"
    with connect(server.replace("http", "ws") + "/v1/stream?model=quadrants") as ws:
        ws.send(bright_square_png(2))
        msg = json.loads(ws.recv(timeout=30))
    body = {k: v for k, v in msg.items() if k not in ("seq", "dropped")}
    assert list(msg)[:2] == ["seq", "dropped"] and body["source"] == "ws"
    assert DetectResponse.model_validate(body).model_dump(mode="json") == body


def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds no image data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (_png_header(20_000, 20_000), "not a readable image"),  # Pillow's DecompressionBombError
        (_png_header(8_000, 6_000), "more than"),  # over MAX_PIXELS
        (_png_header(64, 64), "not a readable image"),  # header only: truncated
        (bright_square_png(0)[:60], "not a readable image"),
        (b"GIF89a" + b"\x00" * 20, "not a readable image"),
    ],
)
def test_bad_images_are_400_never_5xx(client: httpx.Client, body: bytes, words: str) -> None:
    r = _detect(client, body)
    assert r.status_code == 400 and words in r.json()["error"], r.text


@pytest.mark.parametrize(
    ("tensor", "words"),
    [
        ({"name": "image", "shape": [2, 2, 3], "datatype": "UINT8", "data": [300] * 12}, "does not match"),
        ({"name": "image", "shape": [2, 2, 3], "datatype": "UINT8", "data": ["a"] * 12}, "does not match"),
        ({"name": "image", "shape": [1], "datatype": "BYTES", "data": ["bm90IGFuIGltYWdl"]}, "not a readable image"),
        ({"name": "image", "shape": [2, 2, 3], "datatype": "UINT8", "parameters": {"binary_data_size": "x"}},
         "binary_data_size"),
    ],
)  # fmt: skip
def test_kserve_bad_tensors_are_400(client: httpx.Client, tensor: dict, words: str) -> None:
    r = client.post("/v2/models/quadrants/infer", json={"inputs": [tensor]})
    assert r.status_code == 400 and words in r.json()["error"], r.text


def test_serves_a_copy_of_the_shipped_model_from_a_repository(tmp_path: Path) -> None:
    """models.repository holds a copy of frcnn-lite under another name; the shipped folder is never written."""
    import hashlib
    import shutil

    import yaml
    from PIL import Image

    from lotus.detectors.dataset import ShapesDataset
    from lotus.runtime.models.manifest import MODELS_ROOT

    def digests(folder: Path) -> dict[str, str]:
        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*")
                if p.is_file()}  # fmt: skip

    shipped_before = digests(MODELS_ROOT)
    repo = tmp_path / "models"
    shutil.copytree(MODELS_ROOT / "frcnn-lite", repo / "shapes-v2")
    manifest = repo / "shapes-v2" / "manifest.yaml"
    doc = yaml.safe_load(manifest.read_text())
    manifest.write_text(yaml.safe_dump({**doc, "name": "shapes-v2", "version": "2.0.0-local"}, sort_keys=False))
    sample = ShapesDataset("val", size=2, seed=3, image_size=192)[0]
    buf = io.BytesIO()
    Image.fromarray(sample.image).save(buf, format="PNG")
    settings = load_settings(None, {
        "board": {"backend": "sim", "state_file": str(tmp_path / "state.json")},
        "models": {"repository": str(repo), "load": [{"name": "shapes-v2"}], "threads": 1, "warmup_frames": 1},
    })  # fmt: skip
    with ServerThread(create_app(settings)) as url:
        assert httpx.get(url + "/readyz").json()["models"] == ["shapes-v2"]
        assert httpx.get(url + "/v2/models/shapes-v2").json()["versions"] == ["2.0.0-local"]
        r = httpx.post(url + "/v1/detect?model=shapes-v2", content=buf.getvalue(),
                       headers={"Content-Type": "image/png"}, timeout=30)  # fmt: skip
    assert r.status_code == 200, r.text
    best = [d for d in r.json()["detections"] if d["score"] > 0.5]
    assert best and {d["label"] for d in best} <= set(doc["class_names"])
    assert digests(MODELS_ROOT) == shipped_before


def test_board_without_a_trained_policy_reports_the_fallback_that_decides(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With only the Orin Nano 15W drl shipped, on a simulated Orin NX the shield's stock fallback
    decides, and /readyz, /v1/governor, the frame results and /metrics all say so."""
    from lotus.governor import artifacts

    only_nano = tmp_path / "policies"
    only_nano.mkdir()
    for name in ("drl.json", "drl.onnx"):
        (only_nano / name).write_bytes((artifacts.SHIPPED_DIR / name).read_bytes())
    monkeypatch.setattr(artifacts, "SHIPPED_DIR", only_nano)
    settings = _settings(repo, tmp_path, board={"sim_board": "orin-nx"}, models={"load": [{"name": "quadrants"}]})
    with ServerThread(create_app(settings)) as url:
        ready = httpx.get(url + "/readyz").json()
        assert ready["policy"] == "drl" and ready["deciding"] == "stock"
        assert "no shipped drl policy" in ready["policy_error"]  # why drl is not deciding
        gov = httpx.get(url + "/v1/governor").json()
        assert gov["deciding"] == "stock" and gov["load_error"]
        r = httpx.post(url + "/v1/detect", content=bright_square_png(0), headers={"Content-Type": "image/png"})
        assert r.status_code == 200 and r.json()["governor"]["policy"] == "stock"
        metrics = httpx.get(url + "/metrics").text
        assert 'deciding="stock"' in metrics
        assert 'lotus_governor_decisions_total{mode="active",policy="stock"' in metrics


@pytest.mark.parametrize(
    ("board", "label"), [({"sim_board": "orin-nx"}, "orin-nx-15W"), ({"sim_power_mode": "7W"}, "orin-nano-7W")]
)
def test_other_boards_run_their_own_learned_policy(repo: Path, tmp_path: Path, board: dict, label: str) -> None:
    """Orin NX and the Orin Nano 7 W mode run the drl trained for their clock table, and say which."""
    settings = _settings(repo, tmp_path, board=board, models={"load": [{"name": "quadrants"}]})
    with ServerThread(create_app(settings)) as url:
        ready = httpx.get(url + "/readyz").json()
        assert ready["policy"] == ready["deciding"] == "drl" and ready["policy_error"] is None
        gov = httpx.get(url + "/v1/governor").json()
        assert gov["version"].startswith(f"drl.{label}@") and gov["fallbacks"] == 0
        r = httpx.post(url + "/v1/detect", content=bright_square_png(0), headers={"Content-Type": "image/png"})
        assert r.status_code == 200 and r.json()["governor"]["policy"] == "drl"
        assert 'deciding="drl"' in httpx.get(url + "/metrics").text


def test_on_the_board_drl_was_trained_for_drl_decides(client: httpx.Client) -> None:
    ready = client.get("/readyz").json()
    assert ready["policy"] == ready["deciding"] == "drl" and ready["policy_error"] is None
