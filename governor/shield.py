"""The safety shield: wraps any policy so the board never reaches its throttling trip point.

Two guarantees, whatever the wrapped policy does:

1. **Thermal.** From the observation it predicts the hotter die's temperature ``horizon_s``
   ahead (current temperature + smoothed slope * horizon). The shield keeps its own clock caps,
   like the firmware's but with a margin: above ``trip - margin_c`` both caps step one table
   entry down every ``down_every_s`` seconds; once the prediction is ``band_c`` below that limit
   they step back up every ``up_every_s`` seconds. The policy's request is clipped to the caps.
2. **Validity.** A policy that raises, returns NaN/out-of-range actions, or could not be loaded
   is replaced by the fallback policy (``stock``), with a logged warning and a counter.

Clipping alone keeps the board safe but spoils a policy's work in a hot room: the same caps
apply to a calm frame and to a burst of proposals, so latency follows the proposal count.
A policy trained on a range of deadlines (``deadline_scale`` in its training randomisation)
gets a third, gentler loop instead, the **deadline stretch**: while the prediction sits within
``stretch_at_c`` of the caps' limit, the shield slowly raises the deadline the policy is shown
(the deadline-relative features are rescaled) by ``stretch_rate_per_s`` per second, up to the
largest factor it was trained on, and lowers it again once cool. The policy then levels latency
at a pace the heatsink can hold, and the caps rarely need to act.

A fourth rule works the duty instead of the clocks: **admission** (:mod:`lotus.governor.admission`).
Asked once per camera frame through :meth:`Shield.admit`, it skips frames (lowers the served rate,
on time, with hysteresis) while the predicted hotter die is within ``margin_c`` +
:data:`ADMISSION_LEAD_C` of the trip, that is, half a degree *before* the caps would act. A hot room
then sheds frames and the frames it runs keep the policy's clocks, instead of every frame slowing
with caps that swing; a room no clock can hold degrades to a lower frame rate instead of a
shutdown. ``admission_anchor="shutdown"`` restores the former rule (engage 3 C below shutdown,
never below the trip), which left the caps and the firmware to act first. Its state is per board
and apart from :meth:`act`, whose fast path it leaves alone.

**The margin** is :data:`MARGIN_C` (2 C) unless set. ``margin_c="auto"`` (one board only) measures
it instead: a :class:`~lotus.governor.lookahead.LookaheadMonitor` checks the shield's own
predictions against the readings ``horizon_s`` later, and once enough near-trip checks are in,
the caps' and the admission rule's limits follow :func:`measured_margin_c` (wider on a board whose
look-ahead errs more, never under :data:`AUTO_FLOOR_C`).

**Time.** Both loops run on time, not on decisions, so they react as fast at 10 fps as at 60:
every :meth:`Shield.act` (and :meth:`Shield.clip`) gets ``dt_s``, the seconds since that board's
previous decision; the daemon measures it, the simulator passes its own clock. Each board keeps
a clock (integer nanoseconds since its reset): the caps step once per ``down_every_s``
(``up_every_s``) boundary that clock crosses, like the firmware's poll, and the stretch changes
by ``stretch_rate_per_s * dt_s`` (relative). A gap longer than ``max_dt_s`` (the daemon idle, the
mode off) counts as ``max_dt_s``. ``dt_s=None`` means :data:`NOMINAL_DECISION_S`. The defaults
equal the former per-decision constants at the nominal 60 decisions/s (30 fps, two stage
decisions per frame): 8 and 20 decisions between cap steps, 0.05 % stretch per decision.

One board (the daemon, ``lotus sim``/``eval``) takes a plain-Python path, a few us per decision;
``n`` boards take the numpy path. Both compute the same thing to the bit (a property test
checks caps, stretch, shown observations and actions); ``scalar_path = False`` sends one board
through the numpy path too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from lotus.core.schema import HEADROOM_SCALE_C, IDX, ActionTable
from lotus.governor.admission import ANCHORS, NOMINAL_SHUTDOWN_GAP_C, Admission
from lotus.governor.lookahead import HORIZON_S, LookaheadMonitor, predicted_headroom_c
from lotus.governor.protocol import (
    NOMINAL_DECISION_S,
    BarePolicy,
    Policy,
    PolicyBase,
    PolicyDiagnostics,
    TimeStep,
    as_policy,
)

logger = logging.getLogger(__name__)
_I_CPU_HEADROOM, _I_GPU_HEADROOM, _I_SLOPE = IDX["cpu_headroom"], IDX["gpu_headroom"], IDX["temp_slope"]
_I_BUDGET = IDX["budget_left"]
# features measured in deadlines: a stretched deadline divides them
_DEADLINE_RELATIVE = tuple(IDX[k] for k in ("last_latency", "latency_ema", "last_stage1", "next_frame_in"))
_REL = list(_DEADLINE_RELATIVE)
_ONE32 = np.float32(1.0)

DOWN_EVERY_S = 8 * NOMINAL_DECISION_S  # 0.133 s between cap steps down while hot (was 8 decisions)
UP_EVERY_S = 20 * NOMINAL_DECISION_S  # 0.333 s between cap steps up once cool (was 20 decisions)
STRETCH_RATE_PER_S = 5e-4 / NOMINAL_DECISION_S  # 3 % per second (was 0.05 % per decision)
MAX_DT_S = 1.0  # longest gap between two decisions the shield credits, s
MARGIN_C = 2.0  # default thermal margin under the passive trip, C (docs/governor.md, shield-margin ablation)
ADMISSION_LEAD_C = 0.5  # admission engages this far below the caps' limit (trip - margin_c), C
AUTO = "auto"  # margin_c: measured on the board (:func:`measured_margin_c`)
AUTO_MIN_CHECKS = 600  # near-trip predictions checked before a measured margin replaces MARGIN_C (~10 s)
AUTO_EVERY = 60  # checks between two updates of the measured margin
AUTO_SLACK_C = 0.25  # added to the 99.9 % quantile of the look-ahead's optimism, C
AUTO_FLOOR_C = 0.5  # the measured margin never goes below this (the daemon config's own floor), C
AUTO_CEILING_C = 10.0  # nor above this, however badly the look-ahead errs, C


def measured_margin_c(monitor: LookaheadMonitor) -> float:
    """The margin a board's own look-ahead errors call for, C: :data:`MARGIN_C` until
    :data:`AUTO_MIN_CHECKS` near-trip predictions were checked, then the 99.9 % quantile of their
    optimism plus :data:`AUTO_SLACK_C`, within [:data:`AUTO_FLOOR_C`, :data:`AUTO_CEILING_C`]
    (wider than the default on a board whose look-ahead errs more)."""
    q = monitor.quantile_c(0.999)
    if monitor.checked < AUTO_MIN_CHECKS or q is None:
        return MARGIN_C
    return min(max(q + AUTO_SLACK_C, AUTO_FLOOR_C), AUTO_CEILING_C)


class Shield(PolicyBase):
    """A policy wrapper enforcing a thermal margin and falling back on invalid output.

    :param inner: the wrapped policy, or a zero-argument loader returning it (load errors
        are caught and counted, and the fallback runs instead); duck-typed policies are adapted
        with :func:`~lotus.governor.protocol.as_policy`.
    :param fallback: the policy used when ``inner`` fails (the board's stock behaviour).
    :param margin_c: keep the predicted die temperature this far below the trip point, C.
    :param horizon_s: how far ahead the prediction looks, s.
    :param band_c: width of the hold band under the limit, C.
    :param down_every_s: seconds between two cap steps down while too hot.
    :param up_every_s: seconds between two cap steps up once cool.
    :param stretch_max: largest deadline factor shown to the policy; None reads the inner
        policy's ``deadline_scale_max`` (1.0, no stretch, for policies trained on one deadline).
    :param stretch_at_c: the stretch grows while the prediction is within this many C above
        the caps' limit (``trip - margin_c``) and shrinks once ``band_c`` further below it.
    :param stretch_rate_per_s: relative change of the stretch per second.
    :param max_dt_s: a longer time between two decisions counts as this long, s.
    :param admission: skip frames in a hot room (:meth:`admit`); False: :meth:`admit` always admits.
    :param admission_anchor: ``"trip"`` (engage ``ADMISSION_LEAD_C`` before the caps) or ``"shutdown"``
        (the former rule: 3 C below shutdown).
    :param shutdown_gap_c: shutdown minus passive trip, C, when :meth:`admit` is not told.
    """

    # per-board state, arrays [n]: clock-index caps, deadline factor, clock since reset (ns)
    _cap_c: np.ndarray
    _cap_g: np.ndarray
    _stretch: np.ndarray
    _clock_ns: np.ndarray

    def __init__(
        self,
        inner: Policy | BarePolicy | Callable[[], object] | None,
        actions: ActionTable,
        fallback: Policy | BarePolicy,
        margin_c: float | str = MARGIN_C,
        horizon_s: float = HORIZON_S,
        band_c: float = 1.0,
        down_every_s: float = DOWN_EVERY_S,
        up_every_s: float = UP_EVERY_S,
        stretch_max: float | None = None,
        stretch_at_c: float = 0.5,
        stretch_rate_per_s: float = STRETCH_RATE_PER_S,
        max_dt_s: float = MAX_DT_S,
        admission: bool = True,
        admission_anchor: str = "trip",
        shutdown_gap_c: float = NOMINAL_SHUTDOWN_GAP_C,
    ) -> None:
        if not (down_every_s > 0 and up_every_s > 0 and max_dt_s > 0):
            raise ValueError("down_every_s, up_every_s and max_dt_s must be positive")
        # "auto": the margin follows the look-ahead errors measured on this board (one board only)
        self.auto_margin: LookaheadMonitor | None = LookaheadMonitor(horizon_s) if margin_c == AUTO else None
        if self.auto_margin is not None:
            margin_c = MARGIN_C
        elif isinstance(margin_c, str) or not margin_c >= 0:
            raise ValueError(f"margin_c must be >= 0 C or {AUTO!r}, got {margin_c!r}")
        self.actions, self.fallback = actions, as_policy(fallback)
        self.margin_c, self.horizon_s, self.band_c = float(margin_c), horizon_s, band_c
        self._auto_t, self._auto_seen = 0.0, 0  # the measured margin's clock (s) and checks at its last update
        self.down_every_s, self.up_every_s, self.max_dt_s = down_every_s, up_every_s, max_dt_s
        self._down_ns, self._up_ns = max(round(down_every_s * 1e9), 1), max(round(up_every_s * 1e9), 1)
        self.stretch_at_c, self.stretch_rate_per_s = stretch_at_c, stretch_rate_per_s
        self.admission, self.shutdown_gap_c = admission, shutdown_gap_c
        if admission_anchor not in ANCHORS:
            raise ValueError(f"admission_anchor must be one of {', '.join(ANCHORS)}, not {admission_anchor!r}")
        self.admission_anchor = admission_anchor
        self._admissions: list[Admission] = []
        self.scalar_path = True  # False: one board takes the numpy path too (the tests compare both)
        self.fallbacks = 0  # decisions answered by the fallback policy
        self.interventions = 0  # decisions whose clocks the thermal guard lowered or held
        self.load_error: str | None = None
        self.load_exception: Exception | None = None  # what load_error says, for callers that branch on its type
        self.inner: Policy | None = None
        if inner is None or isinstance(inner, BarePolicy):
            self.inner = None if inner is None else as_policy(inner)
        else:
            try:
                self.inner = as_policy(inner())
            except Exception as exc:  # noqa: BLE001 - any load failure falls back
                self.load_error, self.load_exception = str(exc), exc
                logger.warning("policy could not be loaded (%s); using %s instead", exc, self.fallback.name)
        if stretch_max is None:
            stretch_max = self.inner.deadline_scale_max if self.inner is not None else 1.0
        self.stretch_max = max(float(stretch_max), 1.0)
        decider = self.inner if self.inner is not None else self.fallback
        self.name = f"shield({decider.name})"
        self.decision = decider.decision
        self._new_state(1)

    # --- the Policy protocol --------------------------------------------------------------------
    def reset(self, n: int = 1) -> None:
        if self.auto_margin is not None:  # a new run may be a new board: measure again from the default
            self.auto_margin = LookaheadMonitor(self.horizon_s)
            self.margin_c, self._auto_t, self._auto_seen = MARGIN_C, 0.0, 0
        self._new_state(n)
        if self.inner is not None:
            self.inner.reset(n)
        self.fallback.reset(n)

    def act(self, obs: np.ndarray, dt_s: TimeStep = None) -> np.ndarray:
        """Clipped joint actions ``int64 [n]`` for ``obs`` ``float32 [n, F]``, ``dt_s`` after the
        previous decision (s; a float, ``[n]``, or None for :data:`NOMINAL_DECISION_S`)."""
        if not (isinstance(obs, np.ndarray) and obs.ndim == 2 and obs.dtype == np.float32):
            obs = np.atleast_2d(np.asarray(obs, dtype=np.float32))
        n = obs.shape[0]
        if len(self._cap_c) != n:
            self._new_state(n)
        stretch = self.stretch_max > 1.0 and self.inner is not None
        if n == 1 and self.scalar_path:  # the daemon's per-stage path, in plain Python
            dt = self._dt_one(dt_s)
            if self.auto_margin is not None:
                self._measure_margin(obs, dt)
            predicted = self._predict_one(obs)
            shown = self._stretch_one(obs, predicted, dt) if stretch else obs
            return self._clip_one(predicted, self._proposed(obs, shown, dt_s), dt)
        if self.auto_margin is not None:
            if n != 1:
                raise ValueError(f"a shield with margin_c={AUTO!r} guards one board, got {n}")
            self._measure_margin(obs, self._dt_one(dt_s))
        dts = self._dt_many(dt_s, n)
        predicted_n = self._predict_many(obs)
        shown = self._stretch_many(obs, predicted_n, dts) if stretch else obs
        return self._clip_many(predicted_n, self._proposed(obs, shown, dt_s), dts)

    def diagnostics(self) -> PolicyDiagnostics:
        trained: tuple[float, float] | None = None
        if self.inner is not None:
            inner = self.inner.diagnostics()
            version, trained = inner.version, inner.trained_deadline_ms
        else:
            version = "fallback" if self.load_error else "builtin"
        return PolicyDiagnostics(
            policy_name=self.name, version=version, load_error=self.load_error, shielded=True,
            fallbacks=self.fallbacks, interventions=self.interventions, deadline_stretch=float(self._stretch[0]),
            skipped_frames=sum(a.skipped for a in self._admissions) + self._policy_skips,
            served_fps_cap=self._admissions[0].served_fps_cap, trained_deadline_ms=trained,
        )  # fmt: skip

    def _measure_margin(self, obs: np.ndarray, dt: float) -> None:
        """Feed this decision to the look-ahead monitor; every :data:`AUTO_EVERY` checks, move the
        caps' and the admission rule's limits to :func:`measured_margin_c`."""
        monitor = self.auto_margin
        assert monitor is not None
        self._auto_t += dt
        monitor.observe(self._auto_t, obs[0])
        if monitor.checked - self._auto_seen < AUTO_EVERY:
            return
        self._auto_seen = monitor.checked
        self.margin_c = measured_margin_c(monitor)
        if self.admission_anchor == "trip":
            for rule in self._admissions:
                rule.margin_c = self.margin_c + ADMISSION_LEAD_C

    # --- admission ------------------------------------------------------------------------------
    def admit(self, obs: np.ndarray, dt_s: float | None = None, shutdown_gap_c: float | None = None) -> bool:
        """Whether board 0 runs the frame about to start (see :mod:`lotus.governor.admission`).

        :param obs: its observation before stage 1, ``float32 [1, F]`` or ``[F]``.
        :param dt_s: seconds since the previous ``admit`` call (None: one nominal frame, 1/30 s).
        :param shutdown_gap_c: shutdown minus passive trip, C (None: ``self.shutdown_gap_c``).
        """
        row = obs.reshape(-1, obs.shape[-1])[0]
        # a policy that serves a share of the frames (a learned admission action) is asked too;
        # both are asked every frame, so each keeps its own pace
        inner = self.inner_admit(obs, dt_s, shutdown_gap_c) if self.inner_serves_share else True
        own = self._admit_row(0, row, dt_s, shutdown_gap_c)
        if not own:
            self.skip_reason = "thermal"
        elif not inner:
            self.skip_reason = "policy"
            self._policy_skips += 1
        return own and inner

    @property
    def inner_serves_share(self) -> bool:
        """Whether the wrapped policy skips frames itself (``serves_share``, e.g. a ``drl`` with shares)."""
        return bool(getattr(self.inner, "serves_share", False))

    def inner_admit(self, obs: np.ndarray, dt_s: float | None, shutdown_gap_c: float | None) -> bool:
        """The wrapped policy's own answer for the frame about to start (True when it has none or fails)."""
        try:
            return bool(self.inner.admit(obs, dt_s, shutdown_gap_c))  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - a failing policy never stops a frame
            logger.warning("policy %s failed to admit (%s); the frame is served", getattr(self.inner, "name", "?"), exc)
            return True

    def admit_many(self, obs: np.ndarray, dt_s: TimeStep = None, shutdown_gap_c: float | None = None) -> np.ndarray:
        """The shield's own rule of :meth:`admit` for every board: ``bool [n]`` for observations ``[n, F]``,
        ``dt_s`` a float or ``[n]``. A wrapped policy's served share is not asked here (it keeps one board)."""
        n = obs.shape[0]
        if len(self._admissions) != n:
            self._new_state(n)
        dts = np.broadcast_to(np.asarray(2.0 * NOMINAL_DECISION_S if dt_s is None else dt_s, dtype=np.float64), (n,))
        return np.array([self._admit_row(i, obs[i], float(dts[i]), shutdown_gap_c) for i in range(n)], dtype=bool)

    def admit_row(self, i: int, row: np.ndarray, dt_s: float | None, shutdown_gap_c: float | None = None) -> bool:
        """The shield's own rule of :meth:`admit` for board ``i`` alone (its observation ``row`` ``[F]``).

        For callers whose boards reach their camera frames at different times (training); the other
        boards' admission clocks do not move. :meth:`reset` first, for at least ``i + 1`` boards.
        """
        if not 0 <= i < len(self._admissions):
            raise IndexError(f"board {i} of a shield reset for {len(self._admissions)} boards")
        return self._admit_row(i, row, dt_s, shutdown_gap_c)

    def _admit_row(self, i: int, row: np.ndarray, dt_s: float | None, shutdown_gap_c: float | None) -> bool:
        if not self.admission:
            return True
        cpu, gpu, slope = float(row[_I_CPU_HEADROOM]), float(row[_I_GPU_HEADROOM]), float(row[_I_SLOPE])
        headroom = (cpu if cpu < gpu or cpu != cpu else gpu) * HEADROOM_SCALE_C
        gap = self.shutdown_gap_c if shutdown_gap_c is None else shutdown_gap_c
        dt = 2.0 * NOMINAL_DECISION_S if dt_s is None else float(dt_s)
        # temperatures relative to the trip point: the observation holds the headroom, not the trip
        return self._admissions[i].update(-headroom, slope, 0.0, gap, dt)

    # --- the thermal guard and the stretch -------------------------------------------------------
    def clip(self, obs: np.ndarray, a: np.ndarray, dt_s: TimeStep = None) -> np.ndarray:
        """The thermal guard alone: joint actions ``a`` ``[n]`` clipped to the caps, which the
        observations ``obs`` ``[n, F]`` move, ``dt_s`` after the previous decision."""
        n = obs.shape[0]
        if len(self._cap_c) != n:
            self._new_state(n)
        if n == 1 and self.scalar_path:
            return self._clip_one(self._predict_one(obs), a, self._dt_one(dt_s))
        return self._clip_many(self._predict_many(obs), np.asarray(a), self._dt_many(dt_s, n))

    @property
    def stretch(self) -> np.ndarray:
        """The deadline factor each board's policy is shown now ``[n]`` (1.0: the real deadline)."""
        return self._stretch.copy()

    @property
    def caps(self) -> tuple[np.ndarray, np.ndarray]:
        """The CPU and GPU clock-index caps of each board ``([n], [n])``."""
        return self._cap_c.copy(), self._cap_g.copy()

    def reset_boards(self, mask: np.ndarray) -> None:
        """Lift the caps, the stretch and the clock of the boards in ``mask`` (their episodes restarted)."""
        self._cap_c[mask] = self.actions.n_cpu - 1
        self._cap_g[mask] = self.actions.n_gpu - 1
        self._stretch[mask] = 1.0
        self._clock_ns[mask] = 0
        for i in np.arange(len(self._admissions))[mask]:
            self._admissions[int(i)].reset()

    # --- one board, plain Python -----------------------------------------------------------------
    def _dt_one(self, dt_s: TimeStep) -> float:
        """``dt_s`` as seconds within ``[0, max_dt_s]`` (NaN counts as 0)."""
        if dt_s is None:
            dt = NOMINAL_DECISION_S
        else:
            dt = float(dt_s.item()) if isinstance(dt_s, np.ndarray) else float(dt_s)
        dt = dt if dt > 0.0 else 0.0
        return dt if dt < self.max_dt_s else self.max_dt_s

    def _predict_one(self, obs: np.ndarray) -> float:
        """How far below the trip point the hotter die will be after the horizon, C (NaN propagates)."""
        row = obs[0].tolist()
        return predicted_headroom_c(row[_I_CPU_HEADROOM], row[_I_GPU_HEADROOM], row[_I_SLOPE], self.horizon_s)

    def _stretch_one(self, obs: np.ndarray, predicted: float, dt: float) -> np.ndarray:
        """Move board 0's stretch ``dt`` seconds on; the observations its policy is shown."""
        limit = self.margin_c + self.stretch_at_c
        old = float(self._stretch[0])
        if predicted < limit:
            factor = 1.0 + self.stretch_rate_per_s * dt
        elif predicted > limit + self.band_c:
            factor = 1.0 - self.stretch_rate_per_s * dt
        else:
            factor = 1.0
        new = min(max(old * factor, 1.0), self.stretch_max)
        self._stretch[0] = new
        if new == 1.0:
            return obs
        inv = np.float32(1.0 / new)
        shown = obs.copy()
        row = shown[0]
        for i in _DEADLINE_RELATIVE:
            row[i] = row[i] * inv
        row[_I_BUDGET] = _ONE32 - (_ONE32 - row[_I_BUDGET]) * inv
        return shown

    def _clip_one(self, predicted: float, a: np.ndarray, dt: float) -> np.ndarray:
        """Move board 0's clock and caps ``dt`` seconds on and clip its action ``a`` ``[1]``."""
        t0 = int(self._clock_ns[0])
        t1 = t0 + round(dt * 1e9)
        self._clock_ns[0] = t1
        cap_c, cap_g = int(self._cap_c[0]), int(self._cap_g[0])
        if predicted < self.margin_c:
            steps = t1 // self._down_ns - t0 // self._down_ns  # step boundaries crossed
            if steps:
                cap_c, cap_g = max(cap_c - steps, 0), max(cap_g - steps, 0)
                self._cap_c[0], self._cap_g[0] = cap_c, cap_g
        elif predicted > self.margin_c + self.band_c:
            steps = t1 // self._up_ns - t0 // self._up_ns
            if steps:
                cap_c, cap_g = min(cap_c + steps, self.actions.n_cpu - 1), min(cap_g + steps, self.actions.n_gpu - 1)
                self._cap_c[0], self._cap_g[0] = cap_c, cap_g
        req = int(a[0])
        n_cpu = self.actions.n_cpu
        out = min(req // n_cpu, cap_g) * n_cpu + min(req % n_cpu, cap_c)
        if out != req:
            self.interventions += 1
        return np.array([out], dtype=np.int64)

    # --- n boards, numpy (the same arithmetic) ---------------------------------------------------
    def _dt_many(self, dt_s: TimeStep, n: int) -> np.ndarray:
        dt = np.broadcast_to(np.asarray(NOMINAL_DECISION_S if dt_s is None else dt_s, dtype=np.float64), (n,))
        dt = np.where(dt > 0.0, dt, 0.0)
        return np.where(dt < self.max_dt_s, dt, self.max_dt_s)

    def _predict_many(self, obs: np.ndarray) -> np.ndarray:
        headroom = np.minimum(obs[:, _I_CPU_HEADROOM].astype(np.float64), obs[:, _I_GPU_HEADROOM]) * HEADROOM_SCALE_C
        return headroom - np.maximum(obs[:, _I_SLOPE].astype(np.float64), 0.0) * self.horizon_s

    def _stretch_many(self, obs: np.ndarray, predicted: np.ndarray, dt: np.ndarray) -> np.ndarray:
        limit = self.margin_c + self.stretch_at_c
        step = self.stretch_rate_per_s * dt
        factor = np.where(predicted < limit, 1.0 + step, np.where(predicted > limit + self.band_c, 1.0 - step, 1.0))
        self._stretch = stretch = np.clip(self._stretch * factor, 1.0, self.stretch_max)
        if (stretch == 1.0).all():
            return obs
        inv = (1.0 / stretch).astype(np.float32)
        shown = obs.copy()
        shown[:, _REL] = obs[:, _REL] * inv[:, None]
        budget = obs[:, _I_BUDGET]
        shown[:, _I_BUDGET] = np.where(stretch == 1.0, budget, 1.0 - (1.0 - budget) * inv)
        return shown

    def _clip_many(self, predicted: np.ndarray, a: np.ndarray, dt: np.ndarray) -> np.ndarray:
        t0 = self._clock_ns
        self._clock_ns = t1 = t0 + np.rint(dt * 1e9).astype(np.int64)
        down = t1 // self._down_ns - t0 // self._down_ns
        up = t1 // self._up_ns - t0 // self._up_ns
        step = np.where(predicted < self.margin_c, -down, np.where(predicted > self.margin_c + self.band_c, up, 0))
        self._cap_c = np.clip(self._cap_c + step, 0, self.actions.n_cpu - 1)
        self._cap_g = np.clip(self._cap_g + step, 0, self.actions.n_gpu - 1)
        req_c, req_g = self.actions.split(a)
        out = self.actions.index(np.minimum(req_c, self._cap_c), np.minimum(req_g, self._cap_g)).astype(np.int64)
        self.interventions += int((out != a).sum())
        return out

    # --- validity ----------------------------------------------------------------------------
    def _proposed(self, obs: np.ndarray, shown: np.ndarray, dt_s: TimeStep) -> np.ndarray:
        """The inner policy's actions for ``shown`` ``[n]``, or the fallback's for ``obs``."""
        n = obs.shape[0]
        if self.inner is None:
            self.fallbacks += n
            return self.fallback.act(obs, dt_s)
        try:
            a = self.inner.act(shown, dt_s)
            if type(a) is not np.ndarray:
                a = np.asarray(a)
            if a.shape != (n,) or a.dtype.kind not in "iufc":
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
            return self.fallback.act(obs, dt_s)

    def _new_state(self, n: int) -> None:
        self._cap_c = np.full(n, self.actions.n_cpu - 1, dtype=np.int64)
        self._cap_g = np.full(n, self.actions.n_gpu - 1, dtype=np.int64)
        self._stretch = np.ones(n)
        self._clock_ns = np.zeros(n, dtype=np.int64)
        margin = self.margin_c + ADMISSION_LEAD_C if self.admission_anchor == "trip" else None
        self._admissions = [Admission(self.admission_anchor, margin) for _ in range(n)]
        self._policy_skips = 0  # frames the wrapped policy's served share skipped (board 0, :meth:`admit`)
        self.skip_reason = "thermal"  # why :meth:`admit` last refused a frame: "thermal" or "policy"
