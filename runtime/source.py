"""Frame sources for ``lotus serve --source``: an image directory (Pillow), or OpenCV capture.

``DIR`` of images needs only Pillow; ``video.mp4``, ``camera:N`` and ``rtsp://...`` use OpenCV
(imported lazily; ``pip install opencv-python-headless``). :func:`run_source` paces frames at the
source's rate and always runs the newest one: frames that arrive while inference is busy are
skipped (counted), and the time the next frame is due is passed to the governor so clocks can
rise ahead of it. Stats (processed/skipped fps) go to ``daemon.source_stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lotus.core.errors import ConfigError
from lotus.runtime.config import SourceConfig

if TYPE_CHECKING:
    from lotus.runtime.daemon import Daemon

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
DEFAULT_FPS = 30.0


class DirSource:
    """Images of a directory in name order (RGB arrays)."""

    def __init__(self, path: Path, loop: bool) -> None:
        self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise ConfigError(f"source directory {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.loop, self.i = loop, 0
        self.fps: float | None = None  # a directory has no rate of its own

    def read(self) -> np.ndarray | None:
        from PIL import Image

        if self.i >= len(self.files):
            if not self.loop:
                return None
            self.i = 0
        path = self.files[self.i]
        self.i += 1
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))

    def close(self) -> None:
        return None


class CvSource:
    """OpenCV VideoCapture: a file, ``camera:N`` or a network URL (RGB arrays)."""

    def __init__(self, uri: str, loop: bool) -> None:
        try:
            import cv2
        except ImportError:
            raise ConfigError(
                f"source {uri!r} needs OpenCV: pip install opencv-python-headless (a DIR of images needs only Pillow)"
            ) from None
        self.cv2, self.uri, self.loop = cv2, uri, loop
        target: Any = int(uri.split(":", 1)[1]) if uri.startswith("camera:") else uri
        self.cap = cv2.VideoCapture(target)
        if not self.cap.isOpened():
            raise ConfigError(f"cannot open source {uri!r}")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and fps > 0 else None
        self.is_file = Path(uri).exists()

    def read(self) -> np.ndarray | None:
        ok, frame = self.cap.read()
        if not ok and self.loop and self.is_file:
            self.cap.set(self.cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.cap.read()
        if not ok:
            return None
        return self.cv2.cvtColor(frame, self.cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self.cap.release()


def open_source(cfg: SourceConfig) -> DirSource | CvSource:
    """The source ``cfg.uri`` names; ConfigError when it cannot be opened."""
    assert cfg.uri is not None
    path = Path(cfg.uri)
    if path.is_dir():
        return DirSource(path, cfg.loop)
    if not (cfg.uri.startswith(("camera:", "rtsp://", "rtsps://", "http://", "https://")) or path.is_file()):
        raise ConfigError(f"source {cfg.uri!r} is not a file, directory, camera:N or stream URL")
    return CvSource(cfg.uri, cfg.loop)


async def run_source(daemon: Daemon, cfg: SourceConfig) -> None:
    """Read frames at the source's rate and run the newest one whenever the worker is free."""
    src = await asyncio.to_thread(open_source, cfg)
    fps = cfg.fps or src.fps or DEFAULT_FPS
    period = 1.0 / fps
    model = cfg.model or daemon.default_model
    slot: dict[str, Any] = {"frame": None, "due": None}
    stats: dict[str, Any] = {"uri": cfg.uri, "fps": fps, "read": 0, "processed": 0, "skipped": 0, "processed_fps": 0.0,
             "skipped_fps": 0.0, "ended": False}  # fmt: skip
    daemon.source_stats = stats
    wake = asyncio.Event()
    t_start = time.perf_counter()

    async def reader() -> None:
        due = time.perf_counter()
        while not daemon.stopping:
            frame = await asyncio.to_thread(src.read)
            if frame is None:
                break
            due += period
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                due = now  # running late: re-anchor instead of bursting
            stats["read"] += 1
            if slot["frame"] is not None:
                stats["skipped"] += 1
                daemon.metrics.dropped.labels("source").inc()
            slot["frame"], slot["due"] = frame, due + period
            wake.set()
        stats["ended"] = True
        wake.set()

    async def processor() -> None:
        while True:
            await wake.wait()
            wake.clear()
            frame, next_due = slot["frame"], slot["due"]
            slot["frame"] = None
            if frame is None:
                if stats["ended"]:
                    return
                continue
            try:
                await daemon.infer(frame, model, source="source", next_frame_at=next_due, admit=False)
            except Exception as exc:  # noqa: BLE001 - a bad frame must not stop the stream
                log.warning("source frame failed: %s", exc)
                continue
            stats["processed"] += 1
            elapsed = max(time.perf_counter() - t_start, 1e-9)
            stats["processed_fps"] = round(stats["processed"] / elapsed, 2)
            stats["skipped_fps"] = round(stats["skipped"] / elapsed, 2)

    tasks = [asyncio.create_task(reader()), asyncio.create_task(processor())]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        src.close()
