"""The two smoothed observation features, one implementation for the simulator and the daemon.

:class:`ObservationFilters` holds the state and update rules of

- the **temperature slope**: smoothed dT/dt of the hotter die, C/s. A sample after ``dt`` seconds
  weighs ``1 - exp(-dt / TEMP_SLOPE_TAU_S)``, so the filter has the same time constant whatever
  the sampling rate;
- the **latency EMA**: exponential moving average of frame latency, ms, with weight
  ``LATENCY_EMA_ALPHA`` per frame; the first frame initialises it.

The state is Python floats (one board) or numpy arrays ``[n]`` (``n`` boards): the rules use
plain arithmetic plus injected ``exp``, ``maximum`` and ``where`` (``math.exp``/``max``/a
conditional by default; ``np.exp``/``np.maximum``/``np.where`` for arrays, which is what
``lotus.envs.ops.ARRAY`` provides). ``lotus.envs.core.SimCore`` and
``lotus.runtime.observation.ObservationBuilder`` both use this class.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from lotus.core.schema import LATENCY_EMA_ALPHA, TEMP_SLOPE_TAU_S

Value = Any  # float for one board, ndarray [n] for a batch

MIN_SLOPE_DT_S = 1e-6  # shorter sample intervals are treated as this long (no division by zero)


def _where(cond: Any, a: Any, b: Any) -> Any:
    return a if cond else b


class ObservationFilters:
    """Temperature-slope and latency-EMA filter state, for one board (floats) or ``n`` (arrays).

    :param slope: initial smoothed slope, C/s.
    :param tmax_prev: hotter-die temperature at the last slope sample, C.
    :param lat_ema: initial latency EMA, ms.
    :param exp: ``math.exp`` (floats) or ``np.exp`` (arrays).
    :param maximum: ``max`` (floats) or ``np.maximum`` (arrays).
    :param where: ``cond ? a : b`` on floats, or ``np.where`` on arrays.
    """

    __slots__ = ("slope", "tmax_prev", "lat_ema", "_exp", "_maximum", "_where")

    def __init__(
        self,
        slope: Value = 0.0,
        tmax_prev: Value = 0.0,
        lat_ema: Value = 0.0,
        *,
        exp: Callable[[Any], Any] = math.exp,
        maximum: Callable[[Any, Any], Any] = max,
        where: Callable[[Any, Any, Any], Any] = _where,
    ) -> None:
        self.slope = slope
        self.tmax_prev = tmax_prev
        self.lat_ema = lat_ema
        self._exp, self._maximum, self._where = exp, maximum, where

    def update_slope(self, tmax_c: Value, dt_s: Value) -> Value:
        """Feed the hotter die's temperature ``tmax_c`` (C), ``dt_s`` seconds after the last sample.

        :return: the new smoothed slope, C/s (also kept in :attr:`slope`).
        """
        alpha = 1.0 - self._exp(-dt_s / TEMP_SLOPE_TAU_S)  # weight of the new sample
        rate = (tmax_c - self.tmax_prev) / self._maximum(dt_s, MIN_SLOPE_DT_S)
        self.slope = self.slope + alpha * (rate - self.slope)
        self.tmax_prev = tmax_c
        return self.slope

    def update_latency(self, latency_ms: Value, first: Value, done: Value = True) -> Value:
        """Feed a finished frame's latency (ms); ``first`` marks the first frame (it sets the EMA).

        :param done: boards whose frame finished (others keep their EMA); a bool or a mask ``[n]``.
        :return: the new latency EMA, ms (also kept in :attr:`lat_ema`).
        """
        w, ema = self._where, self.lat_ema
        self.lat_ema = w(done, w(first, latency_ms, ema + LATENCY_EMA_ALPHA * (latency_ms - ema)), ema)
        return self.lat_ema
