"""The shield's temperature look-ahead, and a monitor of how far it errs on the board it runs on.

The shield (:mod:`lotus.governor.shield`) caps clocks when the *predicted* headroom of the hotter
die, :func:`predicted_headroom_c`, falls under its margin (2 C by default). The margin has to cover
how optimistic that prediction can be on the board: sensor noise, lag and sampling, and the error
of a straight-line extrapolation. In the simulator that error is at most 0.3-0.4 C in the hot
rooms (``docs/results/shield-margin/lookahead_error.txt``); on a real board it is unmeasured until
someone measures it. :class:`LookaheadMonitor` does, while the daemon runs: every decision's
prediction is checked against the headroom the sensors show ``horizon_s`` later, and the daemon
reports the error's quantiles (``GET /v1/governor``, ``/metrics``). A user who sees the worst
error well under the margin, over hours near the trip, has the evidence to narrow
``governor.shield_margin_c``.
"""

from __future__ import annotations

import collections
import math
from typing import Any

import numpy as np

from lotus.core.schema import HEADROOM_SCALE_C, IDX

HORIZON_S = 1.5  # the shield's look-ahead, s
NEAR_TRIP_C = 4.0  # only predictions this close to the trip count: where the margin acts, C
BIN_C = 0.05  # histogram bin, C
SPAN_C = 10.0  # errors are binned in [-SPAN_C, SPAN_C]; the extreme bins take anything beyond
MAX_PENDING = 4096  # predictions waiting for their check (60 decisions/s x 1.5 s is about 90)
MAX_LATE_S = 0.2  # a check more than this long after its due time is dropped (no decisions while frames are skipped)
_I_CPU, _I_GPU, _I_SLOPE = IDX["cpu_headroom"], IDX["gpu_headroom"], IDX["temp_slope"]


def predicted_headroom_c(cpu_headroom: float, gpu_headroom: float, slope: float, horizon_s: float) -> float:
    """How far below the trip the hotter die will be after ``horizon_s`` s, C (NaN propagates).

    :param cpu_headroom: the observation's CPU headroom feature (C / ``HEADROOM_SCALE_C``).
    :param gpu_headroom: the GPU headroom feature.
    :param slope: the observation's smoothed slope of the hotter die, C/s (only a rise counts).
    """
    headroom = cpu_headroom if cpu_headroom < gpu_headroom or cpu_headroom != cpu_headroom else gpu_headroom
    return float(headroom * HEADROOM_SCALE_C - (slope if slope > 0.0 or slope != slope else 0.0) * horizon_s)


class LookaheadMonitor:
    """Checks each prediction ``horizon_s`` later against the sensed headroom; keeps a histogram.

    The error of a prediction is ``predicted - sensed`` headroom (C): positive when the shield
    thought it had more room than it had. Only predictions within ``near_c`` of the trip count, and
    only checks that come within :data:`MAX_LATE_S` of their due time (while frames are skipped no
    decisions are made, and a reading seconds later measures the room, not the look-ahead).
    Memory is bounded: a fixed histogram and at most :data:`MAX_PENDING` pending predictions.
    """

    def __init__(self, horizon_s: float = HORIZON_S, near_c: float = NEAR_TRIP_C) -> None:
        self.horizon_s, self.near_c = horizon_s, near_c
        self._pending: collections.deque[tuple[float, float]] = collections.deque(maxlen=MAX_PENDING)
        self._bins = np.zeros(int(round(2 * SPAN_C / BIN_C)), dtype=np.int64)
        self.checked = 0  # predictions near the trip that were checked
        self.stale = 0  # predictions dropped: no observation came within MAX_LATE_S of their due time
        self.max_c = -math.inf  # the most optimistic error seen, C

    def observe(self, t_s: float, obs_row: np.ndarray) -> None:
        """One decision at time ``t_s`` (s, monotonic) with observation ``obs_row`` ``[F]``."""
        row = obs_row.tolist()  # python floats: a few us per decision less than numpy scalars
        cpu, gpu, slope = row[_I_CPU], row[_I_GPU], row[_I_SLOPE]
        if not (math.isfinite(cpu) and math.isfinite(gpu)):  # a sensor read failed: nothing to check against
            return
        now = min(cpu, gpu) * HEADROOM_SCALE_C  # the hotter die's sensed distance to the trip, C
        pending = self._pending
        while pending and pending[0][0] <= t_s:
            due, predicted = pending.popleft()
            if t_s - due > MAX_LATE_S:  # the die moved on for longer than the horizon: not this prediction's error
                self.stale += 1
                continue
            err = predicted - now
            self.checked += 1
            self.max_c = max(self.max_c, err)
            k = int((err + SPAN_C) // BIN_C)
            self._bins[min(max(k, 0), self._bins.size - 1)] += 1
        predicted = predicted_headroom_c(cpu, gpu, slope, self.horizon_s)
        if predicted < self.near_c:  # NaN compares false: not kept
            pending.append((t_s + self.horizon_s, predicted))

    def quantile_c(self, q: float) -> float | None:
        """The ``q`` quantile of the errors (upper edge of its bin, C), or None before any check."""
        if self.checked == 0:
            return None
        k = int(np.searchsorted(np.cumsum(self._bins), q * self.checked))
        return round(-SPAN_C + (k + 1) * BIN_C, 3)

    def summary(self) -> dict[str, Any]:
        """The JSON of ``lookahead_error_c`` in ``GET /v1/governor``."""
        return {
            "horizon_s": self.horizon_s,
            "near_trip_c": self.near_c,
            "checked": self.checked,
            "stale": self.stale,
            "p50_c": self.quantile_c(0.5),
            "p99_c": self.quantile_c(0.99),
            "p999_c": self.quantile_c(0.999),
            "max_c": round(self.max_c, 3) if self.checked else None,
        }
