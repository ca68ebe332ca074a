"""Wall-clock timing used by export, compression and OCR measurements (no torch)."""

from __future__ import annotations

import statistics
import time


def median_ms(fn, repeats: int = 20, warmup: int = 3) -> float:  # noqa: ANN001
    """Median wall time of ``fn()`` in ms."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)
