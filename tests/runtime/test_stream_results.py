"""Per-frame results on the streams: full events in order, `lagged` for slow subscribers, bad sources.

A real uvicorn server streams a real file source (an animated GIF: Pillow only, no OpenCV needed)
whose frame i has its bright square in quadrant i % 4, so every event's top box is known.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("onnx")

from lotus.core.errors import ConfigError, LotusError, MissingExtraError  # noqa: E402
from lotus.runtime import source as source_mod  # noqa: E402
from lotus.runtime.api import create_app  # noqa: E402
from lotus.runtime.api.models import FrameEvent, LaggedNotice  # noqa: E402
from lotus.runtime.config import SourceConfig, load_settings  # noqa: E402
from lotus.runtime.testing import ServerThread, bright_square_png, write_quadrant_model  # noqa: E402

FRAMES, SIZE, FRAME_MS = 8, 128, 20  # the GIF: frames, px, ms per frame
H = SIZE // 2
QUADRANT_BOX = [[0, 0, H, H], [H, 0, SIZE, H], [0, H, H, SIZE], [H, H, SIZE, SIZE]]
TIMING_KEYS = {"queue", "decode", "stage1", "decision_stage2", "stage2", "decision_next", "frame", "total"}


def _write_gif(path: Path) -> Path:
    import io

    from PIL import Image

    frames = [Image.open(io.BytesIO(bright_square_png(i % 4, SIZE))).convert("RGB") for i in range(FRAMES)]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=FRAME_MS, loop=0)
    return path


def _settings(repo: Path, tmp: Path, uri: str | None, **source: Any) -> Any:
    return load_settings(None, {
        "board": {"backend": "sim", "state_file": str(tmp / "state.json")},
        "models": {"repository": str(repo), "load": [{"name": "quadrants"}], "threads": 1, "warmup_frames": 1},
        "source": {"uri": uri, **source},
    })  # fmt: skip


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_quadrant_model(tmp_path_factory.mktemp("repo"))


@pytest.fixture(scope="module")
def gif(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _write_gif(tmp_path_factory.mktemp("media") / "clip.gif")


class _TightServer(ServerThread):
    """A ServerThread whose connections have small kernel send buffers (like a slow link), so a client
    that stops reading backs the server up within a second, not megabytes (autotuned buffers) later."""

    def __enter__(self) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8192)  # accepted sockets inherit it
        sock.bind(("127.0.0.1", self.port))
        run = self.server.run
        self.server.run = lambda: run(sockets=[sock])  # type: ignore[method-assign]
        return super().__enter__()


@pytest.fixture(scope="module")
def served(repo: Path, gif: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    app = create_app(_settings(repo, tmp_path_factory.mktemp("state"), str(gif), fps=100))
    with _TightServer(app) as url:
        yield url, app


def _check_frame_event(ev: dict[str, Any], frame_ms: float = FRAME_MS) -> None:
    """Schema (the pydantic model) and content: the top box is the quadrant the file's frame shows."""
    FrameEvent.model_validate(ev)
    assert ev["source"] == "source" and ev["model"] == "quadrants" and ev["model_version"] == "0.0.1-test"
    in_file = ev["source_frame"] % FRAMES
    assert ev["boxes"][0] == QUADRANT_BOX[in_file % 4] and ev["labels"][0] == "bright" and ev["class_ids"][0] == 1
    assert len(ev["boxes"]) == len(ev["scores"]) == len(ev["labels"]) == ev["detections"] == 4
    assert ev["source_clock"] == "media" and ev["source_ts"] == pytest.approx(in_file * frame_ms / 1e3, abs=1e-3)
    assert abs(ev["received_t"] - time.time()) < 30 and ev["image_size"] == [SIZE, SIZE]
    assert TIMING_KEYS <= set(ev["timings_ms"]) and ev["timings_ms"]["total"] > 0
    assert ev["clocks_after"]["cpu_khz"] == ev["cpu_khz"] and ev["clocks_stage2"]["cpu_khz"] is not None


def _assert_in_order(events: list[dict[str, Any]]) -> None:
    """Daemon frame counters, and the source indices of source frames, strictly increase."""
    frames = [e["frame"] for e in events]
    indices = [e["source_frame"] for e in events if e["source_frame"] is not None]
    assert frames == sorted(set(frames)) and indices == sorted(set(indices)), (frames, indices)


def _ws_url(url: str, query: str) -> str:
    return url.replace("http", "ws") + "/v1/stream?" + query


def test_ws_and_sse_events_carry_detections_in_order(served: tuple[str, Any]) -> None:
    from websockets.sync.client import connect

    url, _ = served
    with connect(_ws_url(url, "subscribe=source")) as ws:
        ws_events = [json.loads(ws.recv(timeout=10)) for _ in range(12)]
    assert {e["type"] for e in ws_events} == {"frame"}
    for ev in ws_events:
        _check_frame_event(ev)
    _assert_in_order(ws_events)

    sse_events, kinds = [], []
    with httpx.stream("GET", url + "/v1/events?max_events=6", timeout=30) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("event: "):
                kinds.append(line[7:])
            elif line.startswith("data: "):
                sse_events.append(json.loads(line[6:]))
    assert kinds == ["frame"] * 6 and len(sse_events) == 6
    for ev in sse_events:
        _check_frame_event(ev)
    _assert_in_order(sse_events)
    assert sse_events[0]["frame"] > ws_events[-1]["frame"]  # live: only frames after it subscribed
    stats = httpx.get(url + "/v1/telemetry?limit=3").json()
    assert stats["source"]["state"] == "streaming" and "boxes" not in stats["samples"][-1]  # the ring stays compact


def test_video_file_source_with_opencv(repo: Path, tmp_path: Path) -> None:
    cv2 = pytest.importorskip("cv2")
    import numpy as np
    from websockets.sync.client import connect

    from lotus.runtime.pipeline import decode_image

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (SIZE, SIZE))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write MJPG/AVI")
    for i in range(FRAMES):
        writer.write(np.ascontiguousarray(decode_image(bright_square_png(i % 4, SIZE))[:, :, ::-1]))
    writer.release()
    with ServerThread(create_app(_settings(repo, tmp_path, str(path), fps=100))) as url:
        with connect(_ws_url(url, "subscribe=source")) as ws:
            events = [json.loads(ws.recv(timeout=10)) for _ in range(FRAMES + 2)]  # past the loop point
    for ev in events:
        _check_frame_event(ev, frame_ms=40.0)  # 25 frames/s in the file, whatever rate it is served at
    _assert_in_order(events)


def test_bad_subscribe_requests_are_clear_errors(served: tuple[str, Any]) -> None:
    from websockets.sync.client import connect

    url, _ = served
    with connect(_ws_url(url, "subscribe=everything")) as ws:
        assert "unknown subscribe" in json.loads(ws.recv(timeout=10))["error"]
    with connect(_ws_url(url, "subscribe=source&buffer=0")) as ws:
        assert "buffer=0" in json.loads(ws.recv(timeout=10))["error"]
    assert httpx.get(url + "/v1/events?buffer=0", timeout=10).status_code == 422


def _slow_socket(port: int) -> socket.socket:
    """A connected socket with a tiny receive buffer: a client that barely reads backs up quickly."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    return sock


def _sse_messages(sock: socket.socket, stop: threading.Event) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) of the SSE response read from ``sock`` (HTTP/1.1, chunked transfer encoding)."""
    raw, text, body = b"", b"", False
    sock.settimeout(1.0)
    while not stop.is_set():
        while b"\n\n" in text:
            block, text = text.split(b"\n\n", 1)
            lines = [ln for ln in block.decode().splitlines() if ": " in ln and not ln.startswith(":")]
            fields = dict(ln.split(": ", 1) for ln in lines)
            if "data" in fields:
                yield fields.get("event", "message"), json.loads(fields["data"])
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        if not chunk:
            return
        raw += chunk
        if not body and b"\r\n\r\n" in raw:
            raw, body = raw.split(b"\r\n\r\n", 1)[1], True
        while body and b"\r\n" in raw:  # move every complete chunk from raw to text
            head, rest = raw.split(b"\r\n", 1)
            size = int(head, 16)
            if len(rest) < size + 2:
                break
            text, raw = text + rest[:size], rest[size + 2 :]


def _until_lagged(messages: Iterator[tuple[str, dict[str, Any]]], after: int) -> tuple[int, list[dict[str, Any]]]:
    """Read up to the lagged notice and ``after`` frame events past it: (missed, frame events in order)."""
    frames: list[dict[str, Any]] = []
    missed, seen_after = 0, 0
    for kind, data in messages:
        if kind == "lagged":
            LaggedNotice.model_validate(data)
            assert data == {"type": "lagged", "missed": data["missed"]} and data["missed"] > 0
            if not missed:
                frames.append({"lagged": data["missed"]})
            missed += data["missed"]
            continue
        frames.append(data)
        if missed:
            seen_after += 1
            if seen_after >= after:
                break
    return missed, frames


def _check_gap(frames: list[dict[str, Any]]) -> None:
    """In order throughout; across the notice the source index skips at least the missed events."""
    at = next(i for i, f in enumerate(frames) if "lagged" in f)
    before, after = [f for f in frames[:at] if "lagged" not in f], [f for f in frames[at + 1 :] if "lagged" not in f]
    _assert_in_order(before + after)
    before, after = [f for f in before if f["source"] == "source"], [f for f in after if f["source"] == "source"]
    if before:
        # the missed events held source frames in between (and, for /v1/events, maybe the one API frame)
        assert after[0]["source_frame"] - before[-1]["source_frame"] >= frames[at]["lagged"]
    for ev in after:
        _check_frame_event(ev)


def test_slow_subscribers_get_lagged_notices_and_others_keep_up(served: tuple[str, Any]) -> None:
    from websockets.sync.client import connect

    url, app = served
    port = int(url.rsplit(":", 1)[1])
    bus = app.state.daemon.telemetry
    fast: list[dict[str, Any]] = []
    stop = threading.Event()

    def follow() -> None:
        with connect(_ws_url(url, "subscribe=all&buffer=1024")) as ws:
            while not stop.is_set():
                try:
                    fast.append(json.loads(ws.recv(timeout=1)))
                except TimeoutError:
                    continue

    follower = threading.Thread(target=follow)
    follower.start()
    before = bus.subscribers
    sse = _slow_socket(port)
    sse.sendall(b"GET /v1/events?buffer=4 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n")
    slow_ws = connect(_ws_url(url, "subscribe=source&buffer=4"), sock=_slow_socket(port), compression=None,
                      max_queue=1, ping_interval=None, close_timeout=0.5)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # wait until the server dropped events for both slow clients
            subs = list(bus._subs)
            if len(subs) >= before + 2 and sum(1 for s in subs if s.missed_total > 0) >= 2:
                break
            time.sleep(0.2)
        else:
            pytest.fail("the slow subscribers never fell behind")
        # meanwhile everyone else is served: a request answers, the fast follower has every event in order
        assert httpx.post(url + "/v1/detect", content=bright_square_png(3), timeout=30).status_code == 200
        assert httpx.get(url + "/readyz", timeout=10).status_code == 200

        def ws_messages() -> Iterator[tuple[str, dict[str, Any]]]:
            while True:
                data = json.loads(slow_ws.recv(timeout=15))
                yield data["type"], data

        missed, frames = _until_lagged(ws_messages(), after=3)
        assert missed > 0
        _check_gap(frames)
        missed, frames = _until_lagged(_sse_messages(sse, stop), after=3)
        assert missed > 0
        _check_gap(frames)
    finally:
        stop.set()
        slow_ws.close()
        sse.close()
        follower.join(timeout=10)
    assert len(fast) > 20 and "lagged" not in {e["type"] for e in fast}
    frames = [e["frame"] for e in fast]
    assert frames == sorted(set(frames))
    assert any(e["source"] == "api" for e in fast)  # subscribe=all: the POST's frame too


# --- bad sources ------------------------------------------------------------------------------------------
def test_bad_local_sources_fail_at_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def check(uri: str) -> str:
        with pytest.raises(LotusError) as info:
            source_mod.check_source(SourceConfig(uri=uri))
        return str(info.value)

    assert "does not exist" in check(str(tmp_path / "missing.mp4"))
    (tmp_path / "empty").mkdir()
    assert "holds no images" in check(str(tmp_path / "empty"))
    (tmp_path / "broken.gif").write_bytes(b"GIF89a not really")
    assert "cannot read source" in check(str(tmp_path / "broken.gif"))
    (tmp_path / "broken.mp4").write_bytes(b"\0" * 64)
    assert "cannot open source" in check(str(tmp_path / "broken.mp4")) or "video extra" in check(
        str(tmp_path / "broken.mp4")
    )
    assert "camera:N takes a device index" in check("camera:front")
    assert "no host" in check("rtsp:///stream")
    monkeypatch.setitem(sys.modules, "cv2", None)  # as if OpenCV were not installed
    for uri in ("camera:0", "rtsp://cam.local/live", str(tmp_path / "broken.mp4")):
        with pytest.raises(MissingExtraError, match=r"needs the video extra: pip install 'lotus-edge\[video\]'"):
            source_mod.check_source(SourceConfig(uri=uri))


def test_bad_source_stops_the_server_before_the_board(repo: Path, tmp_path: Path) -> None:
    app = create_app(_settings(repo, tmp_path, str(tmp_path / "nope.mp4")))
    with pytest.raises(RuntimeError, match="does not exist"):
        with ServerThread(app, ready_timeout_s=30):
            pass
    assert isinstance(app.state.startup_error, ConfigError) and app.state.daemon.board is None


def test_lotus_serve_with_a_missing_source_exits_2(repo: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "lotus.runtime.cli", "serve", "--backend", "sim", "--port", "0",
           "--model-repository", str(repo), "-m", "quadrants", "--state-file", str(tmp_path / "s.json"),
           "--source", str(tmp_path / "x.mp4")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "x.mp4" in errors[0] and "does not exist" in errors[0]


class _FlakyCamera:
    """A live source that delivers ``frames`` frames, then stops (as a dropped RTSP stream does)."""

    live, fps, position_s, decode_ms = True, 50.0, None, 0.5

    def __init__(self, frames: int) -> None:
        self.left = frames

    def read(self) -> Any:
        import numpy as np

        from lotus.runtime.pipeline import decode_image

        if self.left <= 0:
            return None
        self.left -= 1
        time.sleep(0.02)
        return np.asarray(decode_image(bright_square_png(1)))

    def close(self) -> None:
        return None


def test_unreachable_live_source_is_not_ready_with_reason_and_retries(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from websockets.sync.client import connect

    uri = "rtsp://cam.invalid/live"
    attempts: list[float] = []
    up = threading.Event()

    def fake_open(cfg: SourceConfig) -> Any:
        attempts.append(time.monotonic())
        if not up.is_set():
            raise ConfigError(f"cannot open source {cfg.uri!r} (OpenCV could not open the stream)")
        return _FlakyCamera(frames=10)

    monkeypatch.setattr(source_mod, "_import_cv2", lambda uri: None)  # the start check passes without OpenCV
    monkeypatch.setattr(source_mod, "open_source", fake_open)
    monkeypatch.setattr(source_mod, "RETRY_MIN_S", 0.1)
    monkeypatch.setattr(source_mod, "RETRY_MAX_S", 0.4)
    with ServerThread(create_app(_settings(repo, tmp_path, uri))) as url:
        deadline = time.monotonic() + 10
        while len(attempts) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = httpx.get(url + "/readyz", timeout=10)
        body = ready.json()
        assert ready.status_code == 200 and "source not ready: cannot open source" in body["status"]
        assert body["debug"]["source"]["state"] == "retrying" and body["debug"]["source"]["retries"] >= 3
        gaps = [b - a for a, b in zip(attempts, attempts[1:], strict=False)]
        assert gaps[-1] > gaps[0] * 1.5  # backoff grows
        assert httpx.post(url + "/v1/detect", content=bright_square_png(0), timeout=30).status_code == 200
        with connect(_ws_url(url, "subscribe=source")) as ws:
            up.set()
            events = [json.loads(ws.recv(timeout=15)) for _ in range(3)]
        assert all(e["source_clock"] == "wall" and abs(e["source_ts"] - e["received_t"]) < 1e-6 for e in events)
        assert events[0]["boxes"][0] == QUADRANT_BOX[1]
        _assert_in_order(events)
        deadline = time.monotonic() + 10  # 10 frames, then the stream stops: retrying with the reason
        while time.monotonic() < deadline:
            src = httpx.get(url + "/v1/telemetry?limit=1").json()["source"]
            if src["state"] == "retrying" and src["read"] >= 10:
                break
            time.sleep(0.05)
        assert "stopped delivering frames" in src["reason"] and src["processed"] > 0


def test_unreachable_rtsp_with_opencv(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cv2")
    from lotus.runtime.cli.serve import _free_port

    monkeypatch.setattr(source_mod, "RETRY_MIN_S", 0.1)
    uri = f"rtsp://127.0.0.1:{_free_port('127.0.0.1')}/live"  # nothing listens there
    with ServerThread(create_app(_settings(repo, tmp_path, uri))) as url:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            body = httpx.get(url + "/readyz", timeout=10).json()
            if body["debug"]["source"] and body["debug"]["source"]["state"] == "retrying":
                break
            time.sleep(0.1)
        assert "cannot open source" in body["status"]
