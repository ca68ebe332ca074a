"""`lotus bench serve` on a short budget: a real uvicorn daemon, real ORT sessions, figures that add up."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


@pytest.mark.timeout(240)
def test_bench_serve_reports_overhead_and_where_it_goes() -> None:
    cmd = [sys.executable, "-m", "lotus.runtime.cli", "bench", "serve", "--frames", "4", "--rounds", "1",
           "--concurrency", "2", "--json"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=220)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["torch_imported"] is False
    assert doc["errors_c2"] == 0 and doc["detect_throughput_fps_c2"] > 0
    assert 0 < doc["raw_p50_ms"] and 0 < doc["in_server_p50_ms"] < doc["detect_p50_ms"]
    # the served time is the daemon's own time plus the HTTP round trip, each positive
    assert doc["http_p50_ms"] > 0
    # each figure is rounded to 1 us: the three roundings may part by up to 1.5 us
    assert doc["overhead_p50_ms"] == pytest.approx(doc["detect_p50_ms"] - doc["raw_p50_ms"], abs=2e-3)
    assert 0 < doc["decision_p50_us"] < 5_000  # a governor decision happened and was timed
    assert doc["policy_load_ms"] > 0  # the daemon timed building its policy
    assert doc["daemon_rss_mb"] > 0


@pytest.mark.timeout(240)
def test_bench_serve_runs_the_ocr_model_on_every_image() -> None:
    """PP-OCRv4 (several images, a recogniser per box): every rendered word is found through the
    daemon, and the overhead split is taken on the first image's frames, so it adds up."""
    cmd = [sys.executable, "-m", "lotus.runtime.cli", "bench", "serve", "--model", "ppocr-v4", "--frames", "3",
           "--rounds", "1", "--concurrency", "2", "--json"]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=220)
    assert done.returncode == 0, done.stderr[-2000:]
    doc = json.loads(done.stdout)
    assert doc["model"] == "ppocr-v4" and doc["torch_imported"] is False and doc["errors_c2"] == 0
    assert len(doc["images"]) >= 2
    for name, image in doc["images"].items():
        found, total = (int(x) for x in image["found"].split("/"))
        assert total > 0 and found == total, (name, image["found"])
    first = next(iter(doc["images"].values()))
    assert doc["raw_p50_ms"] == first["raw_p50_ms"] and doc["detect_p50_ms"] == first["detect_p50_ms"]
    assert 0 < doc["in_server_p50_ms"] < doc["detect_p50_ms"] and doc["http_p50_ms"] > 0
