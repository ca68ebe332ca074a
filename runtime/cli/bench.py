"""``lotus bench``: speed measurements that print figures (never part of the test verdicts)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import typer

from lotus.core.console import print_json

if TYPE_CHECKING:
    import numpy as np

OCR_IMAGES: dict[str, tuple[tuple[int, int], int, tuple[str, ...]]] = {
    # name: ((width, height) px, font px, lines of text)
    "wide-960x360": ((960, 360), 48, ("lotus edge governor", "thermal deadline 2026")),
    "page-640x480": ((640, 480), 32, ("camera frequency", "kernel latency", "memory budget 42", "robot vision")),
}


def _png(image: Any, fmt: str = "PNG") -> bytes:
    """``image`` (RGB uint8 array or PIL image) encoded as PNG (or ``fmt``)."""
    import io

    from PIL import Image

    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    buf = io.BytesIO()
    img.save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def _bench_image(size: int = 192) -> bytes:
    """A JPEG with a few filled shapes (the frcnn-lite training domain)."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (40, 60, 80))
    draw = ImageDraw.Draw(img)
    draw.ellipse([20, 20, 80, 80], fill=(230, 200, 40))
    draw.rectangle([110, 30, 170, 90], fill=(40, 200, 90))
    draw.polygon([(40, 170), (90, 110), (140, 170)], fill=(200, 60, 60))
    return _png(img, "JPEG")


def render_text(
    lines: tuple[str, ...] | list[str], size: tuple[int, int] = (960, 360), font_px: int = 48
) -> np.ndarray:
    """RGB uint8 [H, W, 3] of ``size`` (W, H) px: ``lines`` in dark text on a light background, one row each.

    Uses Pillow's default font at ``font_px`` px (scalable with FreeType, Pillow >= 10.1); without it,
    the bitmap default font drawn small and scaled up.
    """
    import numpy as np
    from PIL import Image, ImageDraw, ImageFont

    w, h = size
    try:
        font: Any = ImageFont.load_default(font_px)
        scale = 1.0
    except (TypeError, OSError, ImportError):  # Pillow < 10.1 or no FreeType
        font, scale = ImageFont.load_default(), font_px / 11
    cw, ch = max(1, int(w / scale)), max(1, int(h / scale))
    img = Image.new("RGB", (cw, ch), (236, 232, 220))
    draw = ImageDraw.Draw(img)
    row = ch / max(1, len(lines))
    for i, line in enumerate(lines):
        draw.text((int(0.05 * cw), int(i * row + (row - font_px / scale) / 2)), line, fill=(24, 24, 32), font=font)
    if scale != 1.0:
        img = img.resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(img)


def _bench_images(kind: str) -> dict[str, tuple[bytes, tuple[str, ...]]]:
    """Name -> (encoded image, words it shows): rendered text for ``ppocr``, shapes otherwise (no words)."""
    if kind == "ppocr":
        return {name: (_png(render_text(lines, wh, px)), tuple(" ".join(lines).split()))
                for name, (wh, px, lines) in OCR_IMAGES.items()}  # fmt: skip
    return {"shapes-192": (_bench_image(), ())}


def _p50(values: list[float]) -> float:
    import statistics

    return float(statistics.median(values)) if values else float("nan")


def _p99(values: list[float]) -> float:
    """99th percentile (nearest rank) of ``values``; NaN when empty."""
    if not values:
        return float("nan")
    s = sorted(values)
    return float(s[min(len(s) - 1, int(len(s) * 0.99))])


def _words_read(labels: list[str], words: tuple[str, ...]) -> int:
    """How many of ``words`` occur (case-insensitive) among the whitespace-separated tokens of ``labels``."""
    tokens = [t.lower() for label in labels for t in label.split()]
    hits = 0
    for w in words:
        if w.lower() in tokens:
            tokens.remove(w.lower())
            hits += 1
    return hits


def _stats(raw: list[list[float]], served: list[list[float]]) -> dict[str, float]:
    """p50/p99 of raw and served ms (all rounds pooled), the overhead, and the spread of per-round p50s."""
    r_all, s_all = [v for rd in raw for v in rd], [v for rd in served for v in rd]
    r_rounds, s_rounds = [_p50(rd) for rd in raw], [_p50(rd) for rd in served]
    return {
        "raw_p50_ms": round(_p50(r_all), 3),
        "raw_p99_ms": round(_p99(r_all), 3),
        "detect_p50_ms": round(_p50(s_all), 3),
        "detect_p99_ms": round(_p99(s_all), 3),
        "overhead_p50_ms": round(_p50(s_all) - _p50(r_all), 3),
        "raw_p50_spread_ms": round(max(r_rounds) - min(r_rounds), 3),
        "detect_p50_spread_ms": round(max(s_rounds) - min(s_rounds), 3),
    }


def bench_serve(
    model: str = typer.Option("frcnn-lite", help="model to serve"),
    repository: str = typer.Option("", help="model repository (default: the shipped one)"),
    frames: int = typer.Option(0, min=0, help="frames per image, path and round (0: 200, or 10 for ppocr)"),
    rounds: int = typer.Option(3, min=1, help="rounds; the spread is the range of the per-round p50s"),
    concurrency: int = typer.Option(4, min=1, help="client threads for the throughput run"),
    threads: int = typer.Option(1, min=1, help="ORT intra-op threads (raw loop and server)"),
    policy: str = typer.Option("drl", help="governor policy of the server"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON document"),
) -> None:
    """Daemon overhead: raw ORT loop vs /v1/detect on a real uvicorn server (sim board, governor active).

    Raw and served frames alternate (so drift hits both alike), over every bench image (shapes, or
    rendered text for an OCR model such as ``ppocr-v4``), repeated for ``rounds`` rounds.
    """
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

    repo = Path(repository) if repository else None
    manifest = load_manifest(model, repo)
    images = _bench_images(manifest.kind)
    frames = frames or (10 if manifest.kind == "ppocr" else 200)
    pipe = create_pipeline(manifest, ["CPUExecutionProvider"], session_options(threads, False))
    ctype = {name: "image/jpeg" if body[:2] == b"\xff\xd8" else "image/png" for name, (body, _) in images.items()}

    def raw_frame(body: bytes) -> None:
        pipe.run_stage2(pipe.run_stage1(pipe.preprocess(decode_image(body))))

    warm = 10 if frames >= 50 else 2
    for body, _ in images.values():
        for _ in range(warm):
            raw_frame(body)

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
    raw_ms: dict[str, list[list[float]]] = {name: [] for name in images}
    detect_ms: dict[str, list[list[float]]] = {name: [] for name in images}
    found: dict[str, str] = {}  # words read / words shown (OCR), else detections
    try:
        ready = None
        with httpx.Client(base_url=url, timeout=60) as client:
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
            policy_load_ms = client.get("/v1/governor").json().get("policy_load_ms")

            def served(name: str) -> dict:
                r = client.post(f"/v1/detect?model={model}", content=images[name][0],
                                headers={"Content-Type": ctype[name]})  # fmt: skip
                r.raise_for_status()
                return r.json()

            for name, (_, words) in images.items():
                for _ in range(warm):
                    resp = served(name)
                labels = [d["label"] for d in resp["detections"]]
                found[name] = f"{_words_read(labels, words)}/{len(words)}" if words else str(len(labels))
            decision_us: list[float] = []
            in_server_ms: dict[str, list[float]] = {name: [] for name in images}  # queue to reply, ms
            for _ in range(rounds):
                for name in images:
                    raw_ms[name].append([])
                    detect_ms[name].append([])
                for _ in range(frames):
                    for name, (body, _) in images.items():
                        t0 = time.perf_counter()
                        raw_frame(body)
                        raw_ms[name][-1].append((time.perf_counter() - t0) * 1e3)
                        t0 = time.perf_counter()
                        t = served(name)["timings_ms"]
                        detect_ms[name][-1].append((time.perf_counter() - t0) * 1e3)
                        decision_us += [t["decision_stage2"] * 1e3, t["decision_next"] * 1e3]
                        in_server_ms[name].append(t["total"])
        per_thread = max(frames // concurrency, 5)
        errors: list[str] = []
        names = list(images)

        def worker(k: int) -> None:
            # a lean keep-alive client, so the load generator takes little of the 2 cores from the daemon
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            try:
                for i in range(per_thread):
                    name = names[(k + i) % len(names)]
                    conn.request("POST", f"/v1/detect?model={model}", body=images[name][0],
                                 headers={"Content-Type": ctype[name]})  # fmt: skip
                    r = conn.getresponse()
                    r.read()
                    if r.status != 200:
                        errors.append(f"{r.status}")
            finally:
                conn.close()

        pool = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
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
    per_image = {name: {**_stats(raw_ms[name], detect_ms[name]), "found": found[name]} for name in images}
    all_raw = [v for name in images for rd in raw_ms[name] for v in rd]
    raw_fps = 1e3 / (sum(all_raw) / len(all_raw))  # the same image mix, one frame at a time
    first = per_image[names[0]]
    doc: dict[str, Any] = {
        **{k: v for k, v in first.items() if k != "found"},
        "raw_throughput_fps": round(raw_fps, 2),
        f"detect_throughput_fps_c{concurrency}": round(c_fps, 2),
        f"throughput_ratio_c{concurrency}": round(c_fps / raw_fps, 3),
        "decision_p50_us": round(_p50(decision_us), 1),
        "policy_load_ms": policy_load_ms,  # the daemon's own timing of building its policy at start
        # where the first image's overhead goes: the daemon's own time per request, and the rest
        # (HTTP, JSON, client), on the same frames as its detect_p50_ms
        "in_server_p50_ms": round(_p50(in_server_ms[names[0]]), 3),
        "http_p50_ms": round(_p50([v for rd in detect_ms[names[0]] for v in rd]) - _p50(in_server_ms[names[0]]), 3),
        "daemon_rss_mb": round(rss_mb, 1),
        "torch_imported": bool(ready["debug"]["torch_imported"]),
        "provider": ready["provider"],
        "policy": policy,
        "model": model,
        "frames": frames,
        "rounds": rounds,
        f"errors_c{concurrency}": len(errors),
        "images": per_image,
    }
    if json_out:
        print_json(doc)
        return
    for key, value in doc.items():
        if key != "images":
            print(f"{key:<28}{value}")
    cols = {"raw_p50_ms": "raw p50", "raw_p99_ms": "raw p99", "detect_p50_ms": "detect p50",
            "detect_p99_ms": "detect p99", "overhead_p50_ms": "overhead p50", "raw_p50_spread_ms": "raw spread",
            "detect_p50_spread_ms": "detect spread", "found": "found"}  # fmt: skip
    print(f"\n{'image (ms; above: the first)':<30}" + "".join(f"{h:>14}" for h in cols.values()))
    for name, row in per_image.items():
        print(f"{name:<30}" + "".join(f"{row[c]:>14}" for c in cols))
