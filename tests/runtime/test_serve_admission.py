"""Graceful degradation in the daemon: a board near shutdown skips --source frames, never API requests."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("onnx")

from lotus.runtime.api import create_app  # noqa: E402
from lotus.runtime.config import load_settings  # noqa: E402
from lotus.runtime.testing import ServerThread, bright_square_png, write_frame_folder, write_quadrant_model  # noqa: E402

SKIPPED = re.compile(r'^lotus_frames_skipped_total\{model="quadrants",reason="thermal"\} ([0-9.e+]+)$', re.M)
FRAMES = re.compile(r'^lotus_frames_total\{model="quadrants",source="api"\} ([0-9.e+]+)$', re.M)


def test_hot_board_skips_stream_frames_and_counts_them(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    repo = write_quadrant_model(tmp_path / "repo")
    frames = write_frame_folder(tmp_path / "frames")
    settings = load_settings(None, {
        "board": {"backend": "sim", "sim_ambient_c": 80.0},
        "governor": {"policy": "stock+shield", "mode": "active"},
        "models": {"repository": str(repo), "load": [{"name": "quadrants"}], "threads": 1, "warmup_frames": 1},
        "source": {"uri": str(frames), "fps": 40, "loop": True},
    })  # fmt: skip
    app = create_app(settings)
    with ServerThread(app) as url:
        board = app.state.daemon.board
        with board._lock:  # the board is 103 C hot, its heatsink too: 1.5 C from the 104.5 C shutdown
            board.th_c = board.th_g = board.th_s = 103.0 - board.amb
        skipped, deadline = 0.0, time.monotonic() + 15
        with connect(url.replace("http", "ws") + "/v1/stream?subscribe=source") as ws:
            while time.monotonic() < deadline:
                event = json.loads(ws.recv(timeout=10))
                if event.get("type") == "skipped":
                    break
        assert event["type"] == "skipped" and event["reason"] == "thermal" and event["source"] == "source"
        assert event["source_frame"] is not None and max(event["temps_c"].values()) > 101.0
        while time.monotonic() < deadline:
            m = SKIPPED.search(httpx.get(url + "/metrics").text)
            skipped = float(m.group(1)) if m else 0.0
            if skipped >= 3:
                break
            time.sleep(0.1)
        assert skipped >= 3
        status = httpx.get(url + "/v1/governor").json()
        assert status["skipped_frames"] >= 3 and status["served_fps_cap"] is not None
        # a client's request is never skipped, however hot the board: it runs and is answered
        for _ in range(3):
            r = httpx.post(url + "/v1/detect", content=bright_square_png(1), headers={"content-type": "image/png"})
            assert r.status_code == 200, r.text
        m = FRAMES.search(httpx.get(url + "/metrics").text)
        assert m and float(m.group(1)) == 3
        telemetry = httpx.get(url + "/v1/telemetry?limit=200").json()
        assert all(s["latency_ms"] > 0 for s in telemetry["samples"])  # skipped frames are not telemetry samples
        assert telemetry["source"]["thermal_skipped"] >= 3  # and the source counts them apart from processed
        assert telemetry["source"]["policy_skipped"] == 0


def test_a_policy_that_serves_half_the_frames_skips_them_with_reason_policy(tmp_path: Path) -> None:
    """A ``drl`` trained with served shares skips stream frames itself, in a cool room: counted as "policy"."""
    pytest.importorskip("stable_baselines3")
    from lotus.governor.train import TrainConfig, train

    cfg = TrainConfig(policy="drl", steps=256, n_envs=4, episode_frames=60, clocks="ladder", served_shares=(1.0, 0.5))
    train(cfg, tmp_path / "policy", progress=False)
    meta_path = tmp_path / "policy" / "drl.json"
    meta = json.loads(meta_path.read_text())
    meta["served_share"] = [0.5] * len(meta["action_map"])  # whatever the tiny network picks, it serves half
    meta_path.write_text(json.dumps(meta))
    repo = write_quadrant_model(tmp_path / "repo")
    frames = write_frame_folder(tmp_path / "frames")
    settings = load_settings(None, {
        "board": {"backend": "sim", "sim_ambient_c": 25.0},
        "governor": {"policy": str(meta_path), "mode": "active"},
        "models": {"repository": str(repo), "load": [{"name": "quadrants"}], "threads": 1, "warmup_frames": 1},
        "source": {"uri": str(frames), "fps": 40, "loop": True},
    })  # fmt: skip
    policy_skips = re.compile(r'^lotus_frames_skipped_total\{model="quadrants",reason="policy"\} ([0-9.e+]+)$', re.M)
    app = create_app(settings)
    with ServerThread(app) as url:
        skipped, deadline = 0.0, time.monotonic() + 20
        while time.monotonic() < deadline:
            m = policy_skips.search(httpx.get(url + "/metrics").text)
            skipped = float(m.group(1)) if m else 0.0
            if skipped >= 3:
                break
            time.sleep(0.1)
        assert skipped >= 3
        assert 'reason="thermal"' not in httpx.get(url + "/metrics").text  # a cool board: the shield's rule is idle
        assert httpx.get(url + "/v1/governor").json()["skipped_frames"] >= 3
        source = httpx.get(url + "/v1/telemetry?limit=1").json()["source"]
        assert source["policy_skipped"] >= 3 and source["thermal_skipped"] == 0  # the source counts them by reason
