"""Frame sources for ``lotus serve --source``: image DIR, image/animation file, video file, camera, stream.

A ``DIR`` of images, a still image and an animated GIF/APNG/WebP/TIFF need only Pillow;
``video.mp4`` (any other file), ``camera:N`` and ``rtsp://``/``http(s)://`` URLs use OpenCV
(imported lazily; the ``video`` extra). :func:`run_source` paces frames at the source's rate and
always runs the newest one: frames that arrive while inference is busy are skipped (counted), and
the time the next frame is due is passed to the governor so clocks can rise ahead of it. Each frame
carries a :class:`~lotus.runtime.pipeline.FrameOrigin` (index in the source, media position or
capture time, receive time) into the per-frame events. Stats and the source's state go to
``daemon.source_stats`` (``/v1/telemetry``, ``/readyz`` ``debug.source`` and its ``status`` line).

What a bad ``--source`` does:

=====================================================  =============================================
case                                                   outcome
=====================================================  =============================================
missing path; not a file, DIR, ``camera:N`` or URL     error at start (``lotus serve``: ``error: ...``,
DIR without images; file Pillow/OpenCV cannot decode   exit 2): :func:`check_source` opens local
video, camera or URL without OpenCV; malformed URL     sources and reads one frame before the board
or camera index                                        and models are touched
camera or stream cannot be opened, or stops            not an error: state ``retrying`` with the
delivering frames (unreachable RTSP, camera            reason (``/readyz`` status, ``debug.source``,
unplugged, network drop)                               ``/v1/telemetry`` ``source``), reopened with
                                                       backoff :data:`RETRY_MIN_S` doubling to
                                                       :data:`RETRY_MAX_S`; the API keeps serving
a file stops decoding mid-way, or ends with            state ``ended`` (with the reason when it
``source.loop: false``                                 failed); the API keeps serving
=====================================================  =============================================
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlparse

import numpy as np

from lotus.core.errors import ConfigError, LotusError
from lotus.runtime.config import SourceConfig
from lotus.runtime.pipeline import FrameOrigin

if TYPE_CHECKING:
    from lotus.runtime.daemon import Daemon

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
PIL_FILE_SUFFIXES = IMAGE_SUFFIXES | {".gif", ".apng", ".tif", ".tiff"}  # stills and animations Pillow reads
URL_SCHEMES = ("rtsp", "rtsps", "http", "https")
DEFAULT_FPS = 30.0
RETRY_MIN_S = 1.0  # first reconnect delay of a live source, s (doubles per failed attempt)
RETRY_MAX_S = 30.0  # longest reconnect delay, s
NETWORK_TIMEOUT_MS = 5000  # OpenCV open/read timeout for network streams, ms


class FrameSource(Protocol):
    """What :func:`run_source` reads: RGB ``[H, W, 3]`` uint8 frames."""

    fps: float | None  # the source's own rate, frames/s (None: it has none)
    live: bool  # camera or network stream: wall-clock timestamps, reopened when it fails
    position_s: float | None  # media position of the frame last read, s (None: live)
    decode_ms: float  # time reading and decoding the frame last read took, ms

    def read(self) -> np.ndarray | None:
        """The next frame; None at the end (or when a live stream stopped delivering)."""
        ...

    def close(self) -> None: ...


class DirSource:
    """Images of a directory in name order; the media position is the index at ``fps``."""

    live = False

    def __init__(self, path: Path, loop: bool, fps: float = DEFAULT_FPS) -> None:
        self.files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise ConfigError(f"source directory {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        self.loop, self.i, self.period = loop, 0, 1.0 / fps
        self.fps: float | None = None  # a directory has no rate of its own
        self.position_s: float | None = None
        self.decode_ms = 0.0

    def read(self) -> np.ndarray | None:
        from PIL import Image

        if self.i >= len(self.files):
            if not self.loop:
                return None
            self.i = 0
        path = self.files[self.i]
        t0 = time.perf_counter()
        try:
            with Image.open(path) as img:
                frame = np.asarray(img.convert("RGB"))
        except Exception as exc:  # noqa: BLE001 - Pillow raises many types for a bad file
            raise ConfigError(f"cannot read source image {path}: {type(exc).__name__}: {exc}") from None
        self.decode_ms = (time.perf_counter() - t0) * 1e3
        self.position_s = self.i * self.period
        self.i += 1
        return frame

    def close(self) -> None:
        return None


class PilSource:
    """A still image or an animated GIF/APNG/WebP/TIFF file, frame by frame, through Pillow."""

    live = False

    def __init__(self, path: Path, loop: bool) -> None:
        from PIL import Image

        try:
            self.img = Image.open(path)
            self.img.load()
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"cannot read source {str(path)!r}: {type(exc).__name__}: {exc}") from None
        self.path, self.loop, self.i = path, loop, 0
        self.frames = int(getattr(self.img, "n_frames", 1))
        self.durations_ms = self._durations()
        total = sum(self.durations_ms)
        self.fps: float | None = self.frames / (total / 1e3) if total > 0 and self.frames > 1 else None
        self.position_s: float | None = None
        self.decode_ms = 0.0
        self._pos_ms = 0.0

    def _durations(self) -> list[float]:
        out = []
        for i in range(self.frames):
            self.img.seek(i)
            out.append(float(self.img.info.get("duration") or 0.0))
        self.img.seek(0)
        return out

    def read(self) -> np.ndarray | None:
        if self.i >= self.frames:
            if not self.loop:
                return None
            self.i, self._pos_ms = 0, 0.0
        t0 = time.perf_counter()
        try:
            self.img.seek(self.i)
            frame = np.asarray(self.img.convert("RGB"))
        except Exception as exc:  # noqa: BLE001
            raise ConfigError(f"cannot decode frame {self.i} of {str(self.path)!r}: {exc}") from None
        self.decode_ms = (time.perf_counter() - t0) * 1e3
        self.position_s = self._pos_ms / 1e3
        self._pos_ms += self.durations_ms[self.i]
        self.i += 1
        return frame

    def close(self) -> None:
        self.img.close()


def _import_cv2(uri: str) -> Any:
    from lotus.core.cli import requires_extra

    with requires_extra("video", f"source {uri!r}"):
        import cv2
    return cv2


class CvSource:
    """OpenCV VideoCapture: a video file, ``camera:N`` or a network URL (RGB arrays)."""

    def __init__(self, uri: str, loop: bool) -> None:
        cv2 = _import_cv2(uri)
        self.cv2, self.uri, self.loop = cv2, uri, loop
        self.live = _is_live(uri)
        if uri.startswith("camera:"):
            self.cap = cv2.VideoCapture(_camera_index(uri))
        elif self.live:  # do not hang on an unreachable host
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, NETWORK_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                      NETWORK_TIMEOUT_MS]  # fmt: skip
            self.cap = cv2.VideoCapture(uri, cv2.CAP_ANY, params)
        else:
            self.cap = cv2.VideoCapture(uri)
        if not self.cap.isOpened():
            self.cap.release()
            what = "camera" if uri.startswith("camera:") else "stream" if self.live else "video file"
            raise ConfigError(f"cannot open source {uri!r} (OpenCV could not open the {what})")
        fps = self.cap.get(cv2.CAP_PROP_FPS)
        self.fps: float | None = float(fps) if fps and 0 < fps < 1000 else None
        self.position_s: float | None = None
        self.decode_ms = 0.0
        self._index = 0  # frames read in the current pass (files)

    def read(self) -> np.ndarray | None:
        cv2 = self.cv2
        t0 = time.perf_counter()
        ok = self.cap.grab()
        if not ok and self.loop and not self.live:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self._index = 0
            ok = self.cap.grab()
        if self.live:
            t0 = time.perf_counter()  # grab waited for the frame: only decoding counts
        if not ok:
            return None
        ok, frame = self.cap.retrieve()
        if not ok or frame is None:
            return None
        rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        self.decode_ms = (time.perf_counter() - t0) * 1e3
        if not self.live:
            pos_ms = self.cap.get(cv2.CAP_PROP_POS_MSEC)
            self.position_s = pos_ms / 1e3 if pos_ms and pos_ms > 0 else self._index / (self.fps or DEFAULT_FPS)
            self._index += 1
        return rgb

    def close(self) -> None:
        self.cap.release()


def _is_live(uri: str) -> bool:
    return uri.startswith("camera:") or urlparse(uri).scheme in URL_SCHEMES


def _camera_index(uri: str) -> int:
    index = uri.split(":", 1)[1]
    if not index.isdigit():
        raise ConfigError(f"source {uri!r}: camera:N takes a device index, e.g. camera:0")
    return int(index)


def _check_live(uri: str) -> None:
    """The checks a live source gets at start: its syntax, and OpenCV being installed."""
    if uri.startswith("camera:"):
        _camera_index(uri)
    else:
        url = urlparse(uri)
        if not url.hostname:
            raise ConfigError(f"source {uri!r} is not a valid {url.scheme}:// URL (no host)")
    _import_cv2(uri)


def open_source(cfg: SourceConfig) -> FrameSource:
    """The source ``cfg.uri`` names, opened.

    :raises ConfigError: the path is missing or unreadable, the file cannot be decoded, or a live
        source cannot be opened (now)
    :raises MissingExtraError: the source needs OpenCV and it is not installed
    """
    uri = cfg.uri
    if not uri:
        raise ConfigError("no source configured (source.uri)")
    if _is_live(uri):
        _check_live(uri)
        return CvSource(uri, cfg.loop)
    path = Path(uri)
    if path.is_dir():
        return DirSource(path, cfg.loop, cfg.fps or DEFAULT_FPS)
    if not path.exists():
        raise ConfigError(f"source {uri!r} does not exist (give a video or image file, a DIR, camera:N or a URL)")
    if not path.is_file():
        raise ConfigError(f"source {uri!r} is not a file, directory, camera:N or stream URL")
    if not os.access(path, os.R_OK):
        raise ConfigError(f"source {uri!r} is not readable (permission denied)")
    if path.suffix.lower() in PIL_FILE_SUFFIXES:
        return PilSource(path, cfg.loop)
    return CvSource(uri, cfg.loop)


def check_source(cfg: SourceConfig) -> None:
    """Fail at start for a source that can never work (see the module doc's table).

    A local source is opened and one frame decoded; a live one only has its syntax and OpenCV
    checked (it may come up later: :func:`run_source` retries it).

    :raises ConfigError: see :func:`open_source`; also a file that yields no frame
    :raises MissingExtraError: OpenCV is needed and not installed
    """
    if not cfg.uri:
        return
    if _is_live(cfg.uri):
        _check_live(cfg.uri)
        return
    src = open_source(cfg)
    try:
        if src.read() is None:
            raise ConfigError(f"source {cfg.uri!r} holds no decodable frame")
    finally:
        src.close()


async def run_source(daemon: Daemon, cfg: SourceConfig) -> None:
    """Stream ``cfg``'s frames through the daemon; reopen a live source with backoff when it fails."""
    stats: dict[str, Any] = {"uri": cfg.uri, "fps": cfg.fps or DEFAULT_FPS, "live": bool(cfg.uri and _is_live(cfg.uri)),
             "read": 0, "processed": 0, "skipped": 0, "thermal_skipped": 0, "policy_skipped": 0, "processed_fps": 0.0,
             "skipped_fps": 0.0,
             "ended": False, "state": "opening", "reason": None, "retries": 0, "retry_in_s": None}  # fmt: skip
    daemon.source_stats = stats
    t_start = time.perf_counter()
    # one thread opens, reads and closes the source, so a close never races a read in progress
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lotus-source")
    try:
        await _run(daemon, cfg, stats, t_start, worker)
    except Exception as exc:  # noqa: BLE001 - never end silently: the state says why
        log.exception("source %s stopped", cfg.uri)
        stats["ended"] = True
        daemon.set_source_state("failed", f"{type(exc).__name__}: {exc}")
    finally:
        worker.shutdown(wait=False)  # a queued close still runs


async def _run(
    daemon: Daemon, cfg: SourceConfig, stats: dict[str, Any], t_start: float, worker: ThreadPoolExecutor
) -> None:
    loop = asyncio.get_running_loop()
    delay = RETRY_MIN_S
    while not daemon.stopping:
        try:
            src = await loop.run_in_executor(worker, open_source, cfg)
        except Exception as exc:  # noqa: BLE001 - OpenCV raises its own types too
            why = str(exc) if isinstance(exc, LotusError) else f"{type(exc).__name__}: {exc}"
            if not stats["live"]:  # it passed check_source at start: the file went away since
                stats["ended"] = True
                daemon.set_source_state("failed", why)
                return
            stats["retries"] += 1
            daemon.set_source_state("retrying", why, retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX_S)
            continue
        daemon.set_source_state("streaming", None)
        read_before = stats["read"]
        try:
            reason = await _stream(daemon, cfg, src, stats, t_start, worker)
        finally:
            worker.submit(src.close)  # after a read still running; never waited for
        if daemon.stopping:
            return
        if not src.live:
            stats["ended"] = True
            daemon.set_source_state("ended" if reason is None else "failed", reason)
            return
        if stats["read"] > read_before:
            delay = RETRY_MIN_S  # it worked for a while: start the backoff over
        stats["retries"] += 1
        daemon.set_source_state("retrying", reason or "stream stopped delivering frames", retry_in_s=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_S)


async def _stream(
    daemon: Daemon,
    cfg: SourceConfig,
    src: FrameSource,
    stats: dict[str, Any],
    t_start: float,
    worker: ThreadPoolExecutor,
) -> str | None:
    """Read ``src`` (on ``worker``) until it ends; returns why it stopped (None: it simply ended)."""
    loop = asyncio.get_running_loop()
    fps = cfg.fps or src.fps or DEFAULT_FPS
    stats["fps"] = fps
    period = 1.0 / fps
    model = cfg.model or daemon.default_model
    slot: dict[str, Any] = {"frame": None, "due": None, "origin": None}
    outcome: dict[str, str | None] = {"reason": None}
    done = asyncio.Event()
    wake = asyncio.Event()

    async def reader() -> None:
        due = time.perf_counter()
        try:
            while not daemon.stopping:
                try:
                    frame = await loop.run_in_executor(worker, src.read)
                except Exception as exc:  # noqa: BLE001 - a broken frame or stream ends this pass, with the reason
                    outcome["reason"] = str(exc) if isinstance(exc, LotusError) else f"{type(exc).__name__}: {exc}"
                    break
                if frame is None:
                    break
                received = time.time()
                due += period
                now = time.perf_counter()
                if due > now:
                    await asyncio.sleep(due - now)
                else:
                    due = now  # running late: re-anchor instead of bursting
                index = stats["read"]
                stats["read"] += 1
                if slot["frame"] is not None:
                    stats["skipped"] += 1
                    daemon.metrics.dropped.labels("source").inc()
                pos = src.position_s
                slot["origin"] = FrameOrigin(
                    index=index, ts_s=received if src.live or pos is None else pos,
                    clock="wall" if src.live or pos is None else "media", received_s=received,
                    decode_ms=src.decode_ms,
                )  # fmt: skip
                slot["frame"], slot["due"] = frame, due + period
                wake.set()
        finally:
            done.set()
            wake.set()

    async def processor() -> None:
        while True:
            await wake.wait()
            wake.clear()
            frame, next_due, origin = slot["frame"], slot["due"], slot["origin"]
            slot["frame"] = None
            if frame is None:
                if done.is_set():
                    return
                continue
            try:
                result = await daemon.infer(
                    frame, model, source="source", next_frame_at=next_due, admit=False, origin=origin
                )
            except Exception as exc:  # noqa: BLE001 - a bad frame must not stop the stream
                log.warning("source frame failed: %s", exc)
                continue
            if result.skipped:  # held back by the admission rule or the policy's pace (a drop, counted apart)
                stats["policy_skipped" if result.skipped == "policy" else "thermal_skipped"] += 1
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
    return outcome["reason"]
