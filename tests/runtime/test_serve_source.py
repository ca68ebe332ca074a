"""Streaming from a source (a DIR of images): frames run at the source rate and are published."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("onnx")

from lotus.runtime.api import create_app  # noqa: E402
from lotus.runtime.config import load_settings  # noqa: E402
from lotus.runtime.testing import ServerThread, write_frame_folder, write_quadrant_model  # noqa: E402


def test_directory_source_streams_to_events_and_ws(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    repo = write_quadrant_model(tmp_path / "repo")
    frames = write_frame_folder(tmp_path / "frames")
    settings = load_settings(None, {
        "board": {"backend": "sim"},
        "models": {"repository": str(repo), "load": [{"name": "quadrants"}], "threads": 1, "warmup_frames": 1},
        "source": {"uri": str(frames), "fps": 40},
    })  # fmt: skip
    with ServerThread(create_app(settings)) as url:
        with connect(url.replace("http", "ws") + "/v1/stream?subscribe=source") as ws:
            sample = json.loads(ws.recv(timeout=10))
        assert sample["source"] == "source" and sample["model"] == "quadrants"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            stats = httpx.get(url + "/v1/telemetry?limit=50").json()["source"]
            if stats and stats["processed"] >= 8:
                break
            time.sleep(0.1)
        assert stats["processed"] >= 8 and stats["fps"] == 40 and stats["processed_fps"] > 5
        assert "skipped_fps" in stats
        samples = httpx.get(url + "/v1/telemetry?limit=50").json()["samples"]
        assert {s["source"] for s in samples} == {"source"}
