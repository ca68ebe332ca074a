"""The safety shield: wraps any policy so the board never reaches its throttling trip point.

Two guarantees, whatever the wrapped policy does:

1. **Thermal.** From the observation it predicts the hotter die's temperature ``horizon_s``
   ahead (current temperature + smoothed slope * horizon). The shield keeps its own clock caps,
   like the firmware's but with a margin: above ``trip - margin_c`` both caps step one table
   entry down every ``down_every`` decisions; once the prediction is ``band_c`` below that limit
   they step back up every ``up_every`` decisions. The policy's request is clipped to the caps.
2. **Validity.** A policy that raises, returns NaN/out-of-range actions, or could not be loaded
   is replaced by the fallback policy (``stock``), with a logged warning and a counter.

Clipping alone keeps the board safe but spoils a policy's work in a hot room: the same caps
apply to a calm frame and to a burst of proposals, so latency follows the proposal count.
A policy trained on a range of deadlines (``deadline_scale`` in its training randomisation)
gets a third, gentler loop instead, the **deadline stretch**: while the prediction sits within
``stretch_at_c`` of the caps' limit, the shield slowly raises the deadline the policy is shown
(the deadline-relative features are rescaled), up to the largest factor it was trained on, and
lowers it again once cool. The policy then levels latency at a pace the heatsink can hold, and
the caps rarely need to act.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from lotus.core.schema import HEADROOM_SCALE_C, IDX, ActionTable
from lotus.governor.policies import Policy

logger = logging.getLogger(__name__)
_I_CPU_HEADROOM, _I_GPU_HEADROOM, _I_SLOPE = IDX["cpu_headroom"], IDX["gpu_headroom"], IDX["temp_slope"]
_I_BUDGET = IDX["budget_left"]
# features measured in deadlines: a stretched deadline divides them
_DEADLINE_RELATIVE = [IDX[k] for k in ("last_latency", "latency_ema", "last_stage1", "next_frame_in")]


class Shield:
    """A policy wrapper enforcing a thermal margin and falling back on invalid output.

    :param inner: the wrapped policy, or a zero-argument loader returning it (load errors
        are caught and counted, and the fallback runs instead).
    :param fallback: the policy used when ``inner`` fails (the board's stock behaviour).
    :param margin_c: keep the predicted die temperature this far below the trip point, C.
    :param horizon_s: how far ahead the prediction looks, s.
    :param band_c: width of the hold band under the limit, C.
    :param down_every: decisions between two cap steps down while too hot.
    :param up_every: decisions between two cap steps up once cool.
    :param stretch_max: largest deadline factor shown to the policy; None reads it from the
        policy's metadata (1.0, no stretch, for policies trained on the real deadline only).
    :param stretch_at_c: the stretch grows while the prediction is within this many C above
        the caps' limit (``trip - margin_c``) and shrinks once ``band_c`` further below it.
    :param stretch_rate: relative change of the stretch per decision.
    """

    def __init__(
        self,
        inner: Policy | Callable[[], Policy] | None,
        actions: ActionTable,
        fallback: Policy,
        margin_c: float = 2.0,
        horizon_s: float = 1.5,
        band_c: float = 1.0,
        down_every: int = 8,
        up_every: int = 20,
        stretch_max: float | None = None,
        stretch_at_c: float = 0.5,
        stretch_rate: float = 5e-4,
    ) -> None:
        self.actions, self.fallback = actions, fallback
        self.margin_c, self.horizon_s, self.band_c = margin_c, horizon_s, band_c
        self.down_every, self.up_every = down_every, up_every
        self.stretch_at_c, self.stretch_rate = stretch_at_c, stretch_rate
        self._cap_c: np.ndarray | None = None
        self._cap_g: np.ndarray | None = None
        self._stretch: np.ndarray | None = None
        self._tick = 0
        self.fallbacks = 0  # decisions answered by the fallback policy
        self.interventions = 0  # decisions whose clocks the thermal guard lowered or held
        self.load_error: str | None = None
        self.inner: Policy | None
        if callable(inner) and not hasattr(inner, "act"):
            try:
                self.inner = inner()
            except Exception as exc:  # noqa: BLE001 - any load failure falls back
                self.inner, self.load_error = None, str(exc)
                logger.warning("policy could not be loaded (%s); using %s instead", exc, fallback.name)
        else:
            self.inner = inner  # type: ignore[assignment]
        if stretch_max is None:
            stretch_max = float(getattr(self.inner, "deadline_scale_max", 1.0))
        self.stretch_max = max(float(stretch_max), 1.0)
        self.name = f"shield({self.inner.name if self.inner else fallback.name})"
        self._cpu = np.asarray(actions.cpu_khz, dtype=float)
        self._gpu = np.asarray(actions.gpu_hz, dtype=float)

    def reset(self, n: int = 1) -> None:
        self._new_caps(n)
        if self.inner is not None:
            self.inner.reset(n)
        self.fallback.reset(n)

    def _proposed(self, obs: np.ndarray) -> np.ndarray:
        n = obs.shape[0]
        if self.inner is None:
            self.fallbacks += n
            return self.fallback.act(obs)
        try:
            a = np.asarray(self.inner.act(obs))
            if a.shape != (n,) or not np.issubdtype(a.dtype, np.number):
                raise ValueError(f"bad action array {a!r}")
            if a.dtype.kind in "iu":  # the usual case: one cheap range check
                if n == 1:
                    if not 0 <= int(a[0]) < self.actions.n:
                        raise ValueError(f"action outside 0..{self.actions.n - 1}: {a}")
                elif n and (a.min() < 0 or a.max() >= self.actions.n):
                    raise ValueError(f"action outside 0..{self.actions.n - 1}: {a}")
                return a.astype(np.int64, copy=False)
            if not np.isfinite(a).all() or (a < 0).any() or (a >= self.actions.n).any() or (a != np.floor(a)).any():
                raise ValueError(f"action outside 0..{self.actions.n - 1}: {a}")
            return a.astype(np.int64)
        except Exception as exc:  # noqa: BLE001 - any policy failure falls back
            self.fallbacks += n
            logger.warning("policy %s failed (%s); %s decides instead", self.inner.name, exc, self.fallback.name)
            return self.fallback.act(obs)

    def act(self, obs: np.ndarray) -> np.ndarray:
        if not (isinstance(obs, np.ndarray) and obs.ndim == 2 and obs.dtype == np.float32):
            obs = np.atleast_2d(np.asarray(obs, dtype=np.float32))
        shown = self._stretched(obs) if self.stretch_max > 1.0 and self.inner is not None else obs
        return self.clip(obs, self._proposed(shown))

    @property
    def stretch(self) -> np.ndarray:
        """The deadline factor each board's policy is shown now (1.0: the real deadline)."""
        return np.ones(1) if self._stretch is None else self._stretch.copy()

    def _predicted_below_trip(self, obs: np.ndarray) -> np.ndarray:
        headroom = np.minimum(obs[:, _I_CPU_HEADROOM], obs[:, _I_GPU_HEADROOM]) * HEADROOM_SCALE_C
        return headroom - np.maximum(obs[:, _I_SLOPE], 0.0) * self.horizon_s

    def _stretched(self, obs: np.ndarray) -> np.ndarray:
        """Move the stretch one decision on and return the observations the policy is shown."""
        n = obs.shape[0]
        if self._stretch is None or self._cap_c is None or len(self._cap_c) != n:
            self._new_caps(n)
        assert self._stretch is not None
        limit = self.margin_c + self.stretch_at_c
        rate = self.stretch_rate
        if n == 1:  # the daemon's per-stage path, in plain Python (a few us)
            row = obs[0].tolist()
            headroom = min(row[_I_CPU_HEADROOM], row[_I_GPU_HEADROOM]) * HEADROOM_SCALE_C
            predicted_one = headroom - max(row[_I_SLOPE], 0.0) * self.horizon_s
            old = float(self._stretch[0])
            if predicted_one < limit:
                new = min(old * (1.0 + rate), self.stretch_max)
            elif predicted_one > limit + self.band_c:
                new = max(old * (1.0 - rate), 1.0)
            else:
                new = old
            self._stretch[0] = new
            if new == 1.0:
                return obs
        else:
            predicted = self._predicted_below_trip(obs)
            factor = np.where(predicted < limit, 1.0 + rate, np.where(predicted > limit + self.band_c, 1.0 - rate, 1.0))
            self._stretch = np.clip(self._stretch * factor, 1.0, self.stretch_max)
            if (self._stretch == 1.0).all():
                return obs
        inv = (1.0 / self._stretch).astype(np.float32)
        shown = obs.copy()
        shown[:, _DEADLINE_RELATIVE] *= inv[:, None]
        shown[:, _I_BUDGET] = 1.0 - (1.0 - shown[:, _I_BUDGET]) * inv
        return shown

    def clip(self, obs: np.ndarray, a: np.ndarray) -> np.ndarray:
        """The thermal guard alone: joint actions ``a`` [N] clipped to the caps, which the
        observations ``obs`` [N, F] move."""
        n = obs.shape[0]
        if self._cap_c is None or len(self._cap_c) != n:
            self._new_caps(n)
        if n == 1:
            return self._clip_one(obs[0], a)
        predicted = self._predicted_below_trip(obs)  # distance below the trip point after the horizon
        hot = predicted < self.margin_c
        cool = predicted > self.margin_c + self.band_c
        self._tick += 1
        step_down = hot & (self._tick % self.down_every == 0)
        step_up = cool & (self._tick % self.up_every == 0)
        self._cap_c = np.clip(self._cap_c - step_down + step_up, 0, self.actions.n_cpu - 1)
        self._cap_g = np.clip(self._cap_g - step_down + step_up, 0, self.actions.n_gpu - 1)
        req_c, req_g = self.actions.split(a)
        out = self.actions.index(np.minimum(req_c, self._cap_c), np.minimum(req_g, self._cap_g)).astype(np.int64)
        self.interventions += int((out != a).sum())
        return out

    def _clip_one(self, row: np.ndarray, a: np.ndarray) -> np.ndarray:
        """:meth:`clip` for one board in plain Python: the daemon's per-stage path (a few us)."""
        assert self._cap_c is not None and self._cap_g is not None
        values = row.tolist()
        headroom = min(values[_I_CPU_HEADROOM], values[_I_GPU_HEADROOM]) * HEADROOM_SCALE_C
        predicted = headroom - max(values[_I_SLOPE], 0.0) * self.horizon_s
        self._tick += 1
        cap_c, cap_g = int(self._cap_c[0]), int(self._cap_g[0])
        if predicted < self.margin_c and self._tick % self.down_every == 0:
            cap_c, cap_g = max(cap_c - 1, 0), max(cap_g - 1, 0)
        elif predicted > self.margin_c + self.band_c and self._tick % self.up_every == 0:
            cap_c, cap_g = min(cap_c + 1, self.actions.n_cpu - 1), min(cap_g + 1, self.actions.n_gpu - 1)
        self._cap_c[0], self._cap_g[0] = cap_c, cap_g
        req = int(a[0])
        n_cpu = self.actions.n_cpu
        out = min(req // n_cpu, cap_g) * n_cpu + min(req % n_cpu, cap_c)
        if out != req:
            self.interventions += 1
        return np.array([out], dtype=np.int64)

    def reset_boards(self, mask: np.ndarray) -> None:
        """Lift the caps of the boards in ``mask`` (their episodes restarted)."""
        if self._cap_c is not None and self._cap_g is not None:
            self._cap_c[mask] = self.actions.n_cpu - 1
            self._cap_g[mask] = self.actions.n_gpu - 1
        if self._stretch is not None:
            self._stretch[mask] = 1.0

    def _new_caps(self, n: int) -> None:
        self._cap_c = np.full(n, self.actions.n_cpu - 1, dtype=np.int64)
        self._cap_g = np.full(n, self.actions.n_gpu - 1, dtype=np.int64)
        self._stretch = np.ones(n)
        self._tick = 0
