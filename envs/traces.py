"""Proposal-count traces: how many regions stage 1 hands to stage 2, frame after frame.

Generators (``steady``, ``bursty``, ``video``, ``regimes``; ``crowd`` is held out of training)
draw from a numpy ``Generator``; a trace file is a CSV with one non-negative integer per line
(an optional header line is skipped).
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np

from lotus.core.errors import TraceError

TraceGenerator = Callable[[np.random.Generator, int, float, int], np.ndarray]


def steady(rng: np.random.Generator, n_frames: int, mean: float, max_count: int) -> np.ndarray:
    """Counts scattered +-15 % around ``mean``: a static scene."""
    counts = rng.normal(mean, 0.15 * mean, size=n_frames)
    return np.clip(np.rint(counts), 1, max_count).astype(np.int32)


def bursty(rng: np.random.Generator, n_frames: int, mean: float, max_count: int) -> np.ndarray:
    """Calm stretches at 0.5x ``mean`` broken by bursts at 2.5x lasting about a second."""
    state = 0
    levels = np.empty(n_frames)
    for i in range(n_frames):
        if state == 0 and rng.random() < 1 / 90:
            state = 1
        elif state == 1 and rng.random() < 1 / 30:
            state = 0
        levels[i] = 2.5 * mean if state else 0.5 * mean
    counts = levels * rng.lognormal(0.0, 0.2, size=n_frames)
    return np.clip(np.rint(counts), 1, max_count).astype(np.int32)


def video(rng: np.random.Generator, n_frames: int, mean: float, max_count: int) -> np.ndarray:
    """Scenes of ~10 s (at 30 fps) with their own clutter level, drifting within a scene."""
    counts = np.empty(n_frames)
    i = 0
    while i < n_frames:
        length = max(30, int(rng.exponential(300)))
        level = mean * np.exp(rng.uniform(np.log(0.25), np.log(3.0)))
        drift = np.cumsum(rng.normal(0.0, 0.02, size=length))
        seg = level * np.exp(drift - drift.mean()) * rng.lognormal(0.0, 0.12, size=length)
        counts[i : i + length] = seg[: n_frames - i]
        i += length
    return np.clip(np.rint(counts), 1, max_count).astype(np.int32)


REGIME_LEVELS = (0.5, 1.0, 2.0, 3.0)  # proposal regimes of :func:`regimes`, x the workload's mean


def regimes(rng: np.random.Generator, n_frames: int, mean: float, max_count: int) -> np.ndarray:
    """Regime switching: stretches of 3-30 s (at 30 fps) at 0.5, 1, 2 or 3x ``mean``, with scene drift.

    The widest training trace: its heaviest regime is 3x the mean of :func:`video`.
    """
    counts = np.empty(n_frames)
    i = 0
    while i < n_frames:
        length = int(rng.integers(90, 900))
        level = mean * REGIME_LEVELS[int(rng.integers(len(REGIME_LEVELS)))]
        drift = np.cumsum(rng.normal(0.0, 0.015, size=length))
        seg = level * np.exp(drift - drift.mean()) * rng.lognormal(0.0, 0.15, size=length)
        counts[i : i + length] = seg[: n_frames - i]
        i += length
    return np.clip(np.rint(counts), 1, max_count).astype(np.int32)


CROWD_FACTOR = 2.5  # a crowded scene: this many times the workload's mean proposal count


def crowd(rng: np.random.Generator, n_frames: int, mean: float, max_count: int) -> np.ndarray:
    """Heavy proposals: :func:`video` scenes around ``CROWD_FACTOR`` x the mean (held out of training)."""
    return video(rng, n_frames, min(CROWD_FACTOR * mean, 0.5 * max_count), max_count)


GENERATORS: dict[str, TraceGenerator] = {
    "steady": steady, "bursty": bursty, "video": video, "regimes": regimes, "crowd": crowd,
}  # fmt: skip


def load_trace_csv(path: str | Path) -> np.ndarray:
    """Read a trace file: one non-negative integer per line. Raises :class:`TraceError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise TraceError(f"cannot read trace file {path}: {exc.strerror or exc}") from exc
    counts: list[int] = []
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or not row[0].strip():
            continue
        cell = row[0].strip()
        try:
            value = int(cell)
        except ValueError:
            if lineno == 1 and not counts:  # a header such as "proposals"
                continue
            raise TraceError(f"trace file {path} line {lineno}: {cell!r} is not an integer count") from None
        if value < 0:
            raise TraceError(f"trace file {path} line {lineno}: negative proposal count {value}")
        counts.append(value)
    if not counts:
        raise TraceError(f"trace file {path} holds no proposal counts")
    return np.asarray(counts, dtype=np.int32)


def make_trace(spec: str | Path, rng: np.random.Generator, n_frames: int, mean: float, max_count: int) -> np.ndarray:
    """A trace of ``n_frames`` counts from a generator name or a CSV path (cycled if short)."""
    name = str(spec)
    if name in GENERATORS:
        return GENERATORS[name](rng, n_frames, mean, max_count)
    if not Path(name).exists() and not name.endswith(".csv"):
        raise TraceError(f"unknown trace {name!r}: use one of {', '.join(GENERATORS)} or a CSV file path")
    counts = np.minimum(load_trace_csv(name), max_count)
    reps = -(-n_frames // len(counts))
    return np.tile(counts, reps)[:n_frames].astype(np.int32)
