"""``lotus bench``: speed measurements that print figures (never part of the test verdicts)."""

from __future__ import annotations

import time

import typer

from lotus.core.console import print_json


def _bench_image(size: int = 192) -> bytes:
    """A JPEG with a few filled shapes (the frcnn-lite training domain)."""
    import io

    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (40, 60, 80))
    draw = ImageDraw.Draw(img)
    draw.ellipse([20, 20, 80, 80], fill=(230, 200, 40))
    draw.rectangle([110, 30, 170, 90], fill=(40, 200, 90))
    draw.polygon([(40, 170), (90, 110), (140, 170)], fill=(200, 60, 60))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _p50(values: list[float]) -> float:
    import statistics

    return float(statistics.median(values)) if values else float("nan")


def bench_serve(
    model: str = typer.Option("frcnn-lite", help="model to serve"),
    repository: str = typer.Option("", help="model repository (default: the shipped one)"),
    frames: int = typer.Option(200, min=10, help="frames per serial measurement"),
    concurrency: int = typer.Option(4, min=1, help="client threads for the throughput run"),
    threads: int = typer.Option(1, min=1, help="ORT intra-op threads (raw loop and server)"),
    policy: str = typer.Option("drl", help="governor policy of the server"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON document"),
) -> None:
    """Daemon overhead: raw ORT loop vs /v1/detect on a real uvicorn server (sim board, governor active)."""
    import http.client
    import os
    import subprocess
    import sys
    import tempfile
    import threading
    from pathlib import Path

    import httpx
    import psutil

    from lotus.runtime.cli.serve import _free_port
    from lotus.runtime.models.manifest import load_manifest
    from lotus.runtime.models.two_stage import create_pipeline
    from lotus.runtime.pipeline import decode_image, session_options

    jpeg = _bench_image()
    repo = Path(repository) if repository else None
    manifest = load_manifest(model, repo)
    pipe = create_pipeline(manifest, ["CPUExecutionProvider"], session_options(threads, False))

    def raw_frame() -> None:
        pipe.run_stage2(pipe.run_stage1(pipe.preprocess(decode_image(jpeg))))

    for _ in range(10):
        raw_frame()
    raw_ms = []
    t_all = time.perf_counter()
    for _ in range(frames):
        t0 = time.perf_counter()
        raw_frame()
        raw_ms.append((time.perf_counter() - t0) * 1e3)
    raw_fps = frames / (time.perf_counter() - t_all)

    port = _free_port("127.0.0.1")
    tmp = Path(tempfile.mkdtemp(prefix="lotus-bench-"))
    cmd = [sys.executable, "-m", "lotus.runtime.cli", "serve", "--backend", "sim", "--port", str(port),
           "--model", model, "--threads", str(threads), "--policy", policy, "--mode", "active",
           "--state-file", str(tmp / "state.json"), "--log-level", "warning"]  # fmt: skip
    if repo is not None:
        cmd += ["--repository", str(repo)]
    env = {**os.environ, "LOTUS_SERVER__QUEUE_SIZE": str(max(8, concurrency * 2))}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        ready = None
        with httpx.Client(base_url=url, timeout=30) as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
                try:
                    r = client.get("/readyz")
                    if r.status_code == 200:
                        ready = r.json()
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            if ready is None:
                raise RuntimeError("server did not become ready in 120 s")
            headers = {"Content-Type": "image/jpeg"}
            for _ in range(10):
                client.post(f"/v1/detect?model={model}", content=jpeg, headers=headers).raise_for_status()
            detect_ms, decision_us = [], []
            for _ in range(frames):
                t0 = time.perf_counter()
                r = client.post(f"/v1/detect?model={model}", content=jpeg, headers=headers)
                detect_ms.append((time.perf_counter() - t0) * 1e3)
                r.raise_for_status()
                t = r.json()["timings_ms"]
                decision_us += [t["decision_stage2"] * 1e3, t["decision_next"] * 1e3]
        per_thread = max(frames // concurrency, 5)
        errors: list[str] = []

        def worker() -> None:
            # a lean keep-alive client, so the load generator takes little of the 2 cores from the daemon
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                for _ in range(per_thread):
                    conn.request("POST", f"/v1/detect?model={model}", body=jpeg, headers=headers)
                    r = conn.getresponse()
                    r.read()
                    if r.status != 200:
                        errors.append(f"{r.status}")
            finally:
                conn.close()

        pool = [threading.Thread(target=worker) for _ in range(concurrency)]
        t0 = time.perf_counter()
        for th in pool:
            th.start()
        for th in pool:
            th.join()
        c_fps = (per_thread * concurrency - len(errors)) / (time.perf_counter() - t0)
        rss_mb = psutil.Process(proc.pid).memory_info().rss / 2**20
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    doc = {
        "raw_p50_ms": round(_p50(raw_ms), 3),
        "detect_p50_ms": round(_p50(detect_ms), 3),
        "overhead_p50_ms": round(_p50(detect_ms) - _p50(raw_ms), 3),
        "raw_throughput_fps": round(raw_fps, 1),
        f"detect_throughput_fps_c{concurrency}": round(c_fps, 1),
        f"throughput_ratio_c{concurrency}": round(c_fps / raw_fps, 3),
        "decision_p50_us": round(_p50(decision_us), 1),
        "daemon_rss_mb": round(rss_mb, 1),
        "torch_imported": bool(ready["debug"]["torch_imported"]),
        "provider": ready["provider"],
        "policy": policy,
        "model": model,
        "frames": frames,
        "errors_c4": len(errors),
    }
    if json_out:
        print_json(doc)
        return
    for key, value in doc.items():
        print(f"{key:<28}{value}")
