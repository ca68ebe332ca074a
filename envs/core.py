"""The simulator core: one implementation of board physics and detector timing.

:class:`SimCore` steps ``n`` boards at once. With ``ops=SCALAR`` (``n == 1``) its state is
Python floats, with ``ops=ARRAY`` numpy arrays ``[n]``; every formula is written once against
:mod:`envs.ops`, so a single env and a batch of envs give the same numbers for the same seeds
(to the last bit or so: numpy's vectorised ``exp`` may round differently from libm's).

One ``step`` is one governor decision. In ``stage`` mode a decision made *before* stage 1
covers the wait for the camera frame and stage 1; a decision made *after* stage 1 (proposal
count known) covers stage 2. In ``frame`` mode one decision covers the whole frame.

The rules themselves (power, firmware throttle, fan curve) are :mod:`lotus.envs.physics`, the
heat flow :mod:`lotus.envs.thermal`, the smoothed observation features
:class:`lotus.core.filters.ObservationFilters`; the daemon's simulated board uses the same ones.

Simplifications (documented so the trends can be judged): power is constant over a segment
(idle wait, stage) and taken at its start temperatures; the firmware throttle is evaluated at
segment ends, once per 1 s poll boundary crossed, and caps both CPU and GPU one step per poll
while the hotter die is above the trip; a late camera frame is dropped in favour of the newest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lotus.core.filters import ObservationFilters
from lotus.core.schema import ActionTable
from lotus.core.units import HZ_PER_GHZ, KHZ_PER_GHZ, hz_to_ghz, khz_to_hz, s_to_ms
from lotus.envs.board import BoardProfile, load_board
from lotus.envs.ops import ARRAY, SCALAR, normal
from lotus.envs.physics import (
    CPU_THREADS_SHARE,
    dynamic_power_table,
    fan_auto_level,
    is_capped,
    polls_crossed,
    segment_power,
    sensor_noise,
    sensor_reading,
    stage_activity,
    switch_stall_s,
    throttle_poll,
)
from lotus.envs.scenario import Scenario
from lotus.envs.thermal import FAN_LEVELS, N_COEF, advance, advance_batched, coefficient_table
from lotus.envs.traces import make_trace
from lotus.envs.workload import WorkloadProfile, load_workload

Value = Any  # float (or int/bool) for one board, ndarray [n] for a batch: SimCore's state is either

__all__ = ["CPU_THREADS_SHARE", "FAN_AUTO", "FAN_OFF", "FAN_ON", "Resolved", "SimCore", "draw_board", "trace_length"]

FAN_OFF, FAN_ON, FAN_AUTO = 0, 1, 2
INIT_HEAT_BELOW_TRIP_C = 8.0  # init_heat 1 starts every node this far below the trip point
TRACE_CAP = 200_000  # frames of trace kept per board (1 h 50 min at 30 fps); longer episodes cycle
S_PER_MS = 1e-3  # ms -> s by multiplying (not ms_to_s's division): keeps the simulator's numbers to the bit

STATE_FIELDS = (
    "t", "th_c", "th_g", "th_s", "phase", "frame", "req_c", "req_g", "cap_c", "cap_g", "fan_level",
    "arrival", "frame_start", "stage1_ms", "proposals", "last_proposals", "last_latency",
    "energy", "frame_energy", "counter", "key", "dropped", "lat_hist0",
    "lat_hist1", "lat_hist2", "s1_hist0", "s1_hist1", "s1_hist2", "done",
    "sen_c", "sen_g", "poll_tmax", "app_c", "app_g", "lat_mean", "lat_n",
    # per-board randomised parameters
    "amb", "trip", "wl_scale", "fan_mode", "r_scale", "d_scale",
)  # fmt: skip
FILTER_FIELDS = ("slope", "tmax_prev", "lat_ema")  # state kept in SimCore.filters
# the batch state SimCore.snapshot keeps: the fields less the rows of _theta and _sen, and the last step's readings
_SNAPSHOT_FIELDS = tuple(f for f in STATE_FIELDS if f not in ("th_c", "th_g", "th_s", "sen_c", "sen_g")) + (
    "_last_power", "_last_cpu_util", "_last_gpu_util", "_fan_pwm",
)  # fmt: skip
_MAX_CONSTANTS = 64  # distinct constants a batch keeps as arrays (SimCore._full)
DRAW_BLOCK = 64  # counter-based draws a batch computes ahead per board (see AheadDraws)
BOARD_DRAW_BLOCK = 512  # ... and one board (BoardDraws): a pass costs about as much for 512 as for 64
_DRAW_BLOCK_U64 = np.uint64(DRAW_BLOCK)
_STALE = np.uint64(1 << 63)  # AheadDraws.base of a board with no block: every counter falls outside it


class AheadDraws:
    """Counter-based draws ``f(key, counter)`` of ``n`` boards, computed ``DRAW_BLOCK`` counters ahead.

    Counters mostly advance by one per stage, so one numpy pass over a block ``[boards, DRAW_BLOCK]``
    replaces ``DRAW_BLOCK`` passes over ``[boards]``: the same elementwise numbers, far fewer calls.

    :param draw: ``(keys [m, 1], counters [m, DRAW_BLOCK])`` -> draws ``[width, m, DRAW_BLOCK]``.
    """

    def __init__(self, n: int, width: int, draw: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        self.draw = draw
        self.table = np.zeros((width, n, DRAW_BLOCK))
        self.base = np.full(n, _STALE)  # first counter of each board's block
        self._steps = np.arange(DRAW_BLOCK, dtype=np.uint64)

    def forget(self, i: int) -> None:
        """Drop board ``i``'s block (its key changed)."""
        self.base[i] = _STALE

    def get(self, rows: np.ndarray, keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
        """Draws ``[width, m]`` of boards ``rows`` (``int [m]``) with ``keys`` and ``counters`` (``uint64 [m]``)."""
        j = counters - self.base[rows]  # wraps to a huge number below the block
        if np.count_nonzero(j >= _DRAW_BLOCK_U64):  # uint64 against uint64: no cast to float
            # refill too every board past half its block: boards whose counters run out at different
            # times (sensor samples) then share a refill instead of paying one draw call each
            refill = np.flatnonzero(j >= DRAW_BLOCK // 2)
            fresh = rows[refill]
            self.base[fresh] = counters[refill]
            self.table[:, fresh] = self.draw(keys[refill, None], counters[refill, None] + self._steps)
            j = counters - self.base[rows]
        return self.table[:, rows, j.view(np.int64)]  # every j < DRAW_BLOCK now: the same bits as int64


class BoardDraws:
    """:class:`AheadDraws` for one board (scalar state): Python floats, ``BOARD_DRAW_BLOCK`` counters per numpy pass.

    The same numbers as a batch's draws (the same vectorised ``draw``), at a fraction of the cost
    of a pure-Python counter-based hash per draw. The block is keyed on the board's key, so a
    reset (a new key) needs no call.
    """

    def __init__(self, draw: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> None:
        self.draw = draw
        self._key: int | None = None
        self._base = 0
        self._block: list[list[float]] = []
        self._steps = np.arange(BOARD_DRAW_BLOCK, dtype=np.uint64)

    def _row(self, key: int, counter: int) -> int:
        """The block's column of ``(key, counter)``, drawing a fresh block when it is not in this one."""
        j = counter - self._base
        if key != self._key or not 0 <= j < BOARD_DRAW_BLOCK:
            keys = np.array([[key]], dtype=np.uint64)
            self._block = self.draw(keys, np.uint64(counter) + self._steps[None])[:, 0].tolist()
            self._key, self._base, j = key, counter, 0
        return j

    def get(self, key: int, counter: int) -> float:
        """The first draw of ``(key, counter)`` (a float)."""
        j = self._row(key, counter)  # first: it may draw a fresh block
        return self._block[0][j]

    def pair(self, key: int, counter: int) -> tuple[float, float]:
        """The first two draws of ``(key, counter)`` (for a ``draw`` of width 2)."""
        j = self._row(key, counter)
        return self._block[0][j], self._block[1][j]


@dataclass(frozen=True)
class Resolved:
    """A scenario with its profiles loaded and its tables precomputed (shared by all boards)."""

    scenario: Scenario
    board: BoardProfile
    workload: WorkloadProfile
    actions: ActionTable
    period_s: float  # 0: back-to-back
    deadline_ms: float
    cpu_ghz: tuple[float, ...]
    gpu_ghz: tuple[float, ...]
    gpu_speed_ghz: tuple[float, ...]  # GPU throughput per clock, Gcycles/s of the whole GPU (TPC gating)
    dyn_cpu_w: tuple[float, ...]  # dynamic power per unit activity at each CPU clock
    dyn_gpu_w: tuple[float, ...]
    budget_w: float

    @classmethod
    def from_scenario(cls, scenario: Scenario) -> Resolved:
        mode = load_board(scenario.board).mode(scenario.power_mode)
        board = load_board(scenario.board).in_mode(scenario.power_mode)
        workload = load_workload(scenario.workload)
        fps = workload.default_fps if scenario.fps is None else scenario.fps
        deadline = scenario.deadline_ms or workload.default_deadline_ms
        cpu_hz = khz_to_hz(np.asarray(mode.cpu_freqs_khz, dtype=float))
        gpu_hz = np.asarray(mode.gpu_freqs_hz, dtype=float)
        dyn_cpu_w, dyn_gpu_w = dynamic_power_table(board, mode)
        return cls(
            scenario=scenario,
            board=board,
            workload=workload,
            actions=ActionTable.from_mode(mode),
            period_s=1.0 / fps if fps > 0 else 0.0,
            deadline_ms=float(deadline),
            cpu_ghz=_floats(hz_to_ghz(cpu_hz)),
            gpu_ghz=_floats(hz_to_ghz(gpu_hz)),
            gpu_speed_ghz=_floats(hz_to_ghz(gpu_hz) * mode.gpu_tpc_fraction),
            dyn_cpu_w=dyn_cpu_w,
            dyn_gpu_w=dyn_gpu_w,
            budget_w=mode.budget_w,
        )


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(x) for x in values)


def trace_length(scenario: Scenario) -> int:
    """Frames of proposal trace drawn per episode; longer episodes cycle through it."""
    return min(scenario.episode_frames + 1, TRACE_CAP)


def draw_board(res: Resolved, rng: np.random.Generator) -> dict[str, Any]:
    """Initial state and randomised parameters of one board, drawn from ``rng`` only."""
    sc, rz = res.scenario, res.scenario.randomize
    amb, trip, r_scale, wl_scale, d_scale = sc.ambient_c, sc.trip_c or res.board.throttling.trip_c, sc.r_scale, 1.0, 1.0
    fan_mode = {"off": FAN_OFF, "on": FAN_ON, "auto": FAN_AUTO}[sc.fan]
    c_scale = sc.c_scale
    heat, trace_name = 0.0, sc.trace
    hot_start: float | None = None
    if rz is not None:
        amb = float(rng.uniform(*rz.ambient_c)) if rz.ambient_c else amb
        trip = float(rng.uniform(*rz.trip_c)) if rz.trip_c else trip
        r_scale = float(rng.uniform(*rz.r_scale)) if rz.r_scale else r_scale
        c_scale = float(rng.uniform(*rz.c_scale)) if rz.c_scale else c_scale
        wl_scale = float(rng.uniform(*rz.workload_scale)) if rz.workload_scale else wl_scale
        if rz.fan_auto_prob > 0 and rng.random() < rz.fan_auto_prob:
            fan_mode = FAN_AUTO
        d_scale = float(rng.uniform(*rz.deadline_scale)) if rz.deadline_scale else d_scale
        heat = float(rng.uniform(*rz.init_heat))
        if rz.traces:
            trace_name = rz.traces[int(rng.integers(len(rz.traces)))]
        # drawn only when asked for, so every other scenario keeps its random stream
        if rz.hot_start_prob > 0 and rng.random() < rz.hot_start_prob:
            hot_start = trip - float(rng.uniform(*rz.hot_start_below_trip_c))
    start = amb + heat * (trip - INIT_HEAT_BELOW_TRIP_C - amb) if hot_start is None else max(hot_start, amb)
    if sc.init_temp_c is not None:
        start = sc.init_temp_c
    wl = res.workload
    trace = make_trace(trace_name, rng, trace_length(sc), wl.mean_proposals, wl.max_proposals)
    n_c, n_g = res.actions.n_cpu, res.actions.n_gpu
    t0 = 0.0
    return {
        "t": t0, "th_c": start - amb, "th_g": start - amb, "th_s": start - amb, "phase": 0, "frame": 0,
        "req_c": n_c - 1, "req_g": n_g - 1, "cap_c": n_c - 1, "cap_g": n_g - 1,
        "fan_level": FAN_LEVELS - 1 if fan_mode == FAN_ON else 0,
        "arrival": t0, "frame_start": t0, "stage1_ms": 0.0, "proposals": int(trace[0]),
        "last_proposals": int(trace[0]), "last_latency": 0.0, "lat_ema": 0.0, "slope": 0.0,
        "tmax_prev": start, "energy": 0.0, "frame_energy": 0.0, "counter": 0,
        "key": int(rng.integers(0, 2**63, dtype=np.int64)), "dropped": 0,
        "sen_c": start, "sen_g": start, "poll_tmax": start, "app_c": n_c - 1, "app_g": n_g - 1,
        "lat_hist0": 0.0, "lat_hist1": 0.0, "lat_hist2": 0.0,
        "s1_hist0": 0.0, "s1_hist1": 0.0, "s1_hist2": 0.0, "done": False, "lat_mean": 0.0, "lat_n": 0.0,
        "amb": amb, "trip": trip, "wl_scale": wl_scale, "fan_mode": fan_mode, "r_scale": r_scale, "d_scale": d_scale,
        "_trace": trace, "_coef_table": coefficient_table(res.board, r_scale, c_scale),
    }  # fmt: skip


class SimCore:
    """State and dynamics of ``n`` simulated boards running one scenario.

    :param res: the resolved scenario (profiles and tables shared by every board).
    :param n: number of boards.
    :param batched: keep the state as arrays ``[n]`` even for ``n == 1`` (``ops=ARRAY``).

    Every state field below is a :data:`Value`: a Python float/int/bool for one board
    (``ops=SCALAR``), a numpy array ``[n]`` for a batch. Temperatures are kept as rises above
    ambient (K); add ``amb`` for degrees C.
    """

    t: Value  # board time, s
    th_c: Value  # CPU die, GPU die and heatsink rise above ambient, K
    th_g: Value
    th_s: Value
    phase: Value  # 0: the next decision is before stage 1, 1: before stage 2
    frame: Value  # frames finished
    req_c: Value  # requested clock indices
    req_g: Value
    cap_c: Value  # firmware clock caps (indices; n - 1: uncapped)
    cap_g: Value
    fan_level: Value  # quantised fan PWM level, 0..FAN_LEVELS - 1
    arrival: Value  # camera arrival time of the current/next frame, s
    frame_start: Value  # time the current frame's stage 1 started, s
    stage1_ms: Value  # last stage-1 time, ms
    proposals: Value  # proposals of the current frame
    last_proposals: Value  # proposals of the last finished frame
    last_latency: Value  # last frame latency, ms
    energy: Value  # energy since reset, J
    frame_energy: Value  # energy of the current frame so far, J
    counter: Value  # jitter draws made (counter of the counter-based RNG)
    key: Value  # per-board key of the counter-based RNG
    dropped: Value  # camera frames dropped
    lat_hist0: Value  # last three frame latencies (oldest first), ms
    lat_hist1: Value
    lat_hist2: Value
    s1_hist0: Value  # last three stage-1 times (oldest first), ms
    s1_hist1: Value
    s1_hist2: Value
    done: Value
    sen_c: Value  # CPU and GPU thermal-zone readings, C (physics.sensor_readings)
    sen_g: Value
    poll_tmax: Value  # hotter die at the last firmware poll, C (the step-wise trend)
    app_c: Value  # clock indices applied during the last stage (a change stalls, physics.switch_stall_s)
    app_g: Value
    lat_mean: Value  # mean latency of the episode's finished frames, ms (the objective-run reward)
    lat_n: Value  # frames in that mean
    amb: Value  # per-board randomised parameters: ambient, C
    trip: Value  # passive trip point, C
    wl_scale: Value  # factor on stage costs
    fan_mode: Value  # FAN_OFF, FAN_ON or FAN_AUTO
    r_scale: Value  # factor on heatsink-to-ambient resistance
    d_scale: Value  # factor on the deadline
    cpu_ghz: Value  # clock tables, GHz: a tuple (one board) or an array (batch)
    gpu_ghz: Value
    gpu_speed: Value  # GPU throughput at each clock, GHz-equivalent of the whole GPU (Resolved.gpu_speed_ghz)
    dyn_c: Value  # dynamic power per unit activity at each clock, W (physics.dynamic_power_table)
    dyn_g: Value
    trace: np.ndarray  # proposal trace of the one board (``[frames]``); ``traces [n, frames]`` for a batch
    coef: Value  # thermal coefficients of the current fan level (``[N_COEF]``, or ``[N_COEF, n]``)
    coef_table: tuple[tuple[float, ...], ...]

    def __init__(self, res: Resolved, n: int = 1, batched: bool = False) -> None:
        self.res = res
        self.n = n
        self.batched = batched or n > 1
        self._constants: dict[tuple[type, Any], np.ndarray] = {}
        self.ops: Any = ARRAY if self.batched else SCALAR  # lotus.envs.ops: SCALAR or ARRAY
        b = res.board
        self.poll_s = b.throttling.poll_s
        self.fan_poll_s = b.fan.poll_s
        self.sensors = b.sensors
        self.sensor_s = b.sensors.update_s or 1e-6  # 0: a fresh reading at every segment end
        self.shutdown = b.throttling.shutdown_c
        self.n_cpu, self.n_gpu = res.actions.n_cpu, res.actions.n_gpu  # clock table sizes
        o = self.ops
        self.filters = ObservationFilters(exp=o.exp, maximum=o.maximum, where=o.where)
        # _alike(mask): a bool when every board agrees; _pick(cond, a, b): where() that takes such a bool whole
        self._alike: Callable[[Value], Value] = self._alike_batch if self.batched else bool
        self._pick: Callable[[Value, Value, Value], Value] = self._pick_batch if self.batched else SCALAR.where
        if self.batched:
            self.cpu_ghz = np.asarray(res.cpu_ghz)
            self.gpu_ghz = np.asarray(res.gpu_ghz)
            self.gpu_speed = np.asarray(res.gpu_speed_ghz)
            self.dyn_c = np.asarray(res.dyn_cpu_w)
            self.dyn_g = np.asarray(res.dyn_gpu_w)
            self.traces = np.zeros((n, trace_length(res.scenario)), dtype=np.int64)
            self.coef_tables = np.zeros((n, FAN_LEVELS, N_COEF))
            self.coef = np.zeros((N_COEF, n))
            self._rows = np.arange(n)
            for name in STATE_FIELDS:
                dtype: Any = np.uint64 if name in ("key", "counter") else bool if name == "done" else float
                if name in ("phase", "frame", "req_c", "req_g", "cap_c", "cap_g", "fan_level", "proposals",
                            "last_proposals", "dropped", "fan_mode", "app_c", "app_g"):  # fmt: skip
                    dtype = np.int64
                setattr(self, name, np.zeros(n, dtype=dtype))
            for name in FILTER_FIELDS:
                setattr(self.filters, name, np.zeros(n))
            # the three temperature rises are rows of one array, updated in place
            self._theta = np.zeros((3, n))
            self._power = np.zeros((3, n))
            self.th_c, self.th_g, self.th_s = self._theta
            self._sen = np.zeros((2, n))  # the readings sen_c, sen_g as rows
            self.sen_c, self.sen_g = self._sen
            self._jitter = AheadDraws(n, 1, self._jitter_draws)
            self._noise = AheadDraws(n, 2, lambda k, c: np.stack(sensor_noise(k, c, ARRAY)))
        else:
            self._board_jitter = BoardDraws(self._jitter_draws)
            self._board_noise = BoardDraws(lambda k, c: np.stack(sensor_noise(k, c, ARRAY)))
            self.cpu_ghz, self.gpu_ghz, self.gpu_speed = res.cpu_ghz, res.gpu_ghz, res.gpu_speed_ghz
            self.dyn_c, self.dyn_g = res.dyn_cpu_w, res.dyn_gpu_w
        # the clock tables in the readings' units (raw_readings)
        cpu_khz, gpu_hz = tuple(f * KHZ_PER_GHZ for f in res.cpu_ghz), tuple(f * HZ_PER_GHZ for f in res.gpu_ghz)
        self._cpu_khz: Value = np.asarray(cpu_khz) if self.batched else cpu_khz
        self._gpu_hz: Value = np.asarray(gpu_hz) if self.batched else gpu_hz

    def _jitter_draws(self, keys: np.ndarray, counters: np.ndarray) -> np.ndarray:
        """Stage-time jitter factors ``[1, m, k]`` (log-normal, before ``wl_scale``) of ``(keys, counters)``."""
        return np.exp(self.res.workload.jitter_sigma * normal(keys, counters, ARRAY))[None]

    def jitter(self, counter: int) -> float:
        """The stage-time jitter factor at RNG counter ``counter`` (before ``wl_scale``) of a one-board core.

        What :meth:`step` draws for the stage it runs at that counter (``self.counter``); the
        foresight reference reads the future with it.
        """
        return self._board_jitter.get(self.key, counter)

    # -- filtered features (state of self.filters) ----------------------------------------------
    @property
    def slope(self) -> Value:
        """Smoothed dT/dt of the hotter die, C/s."""
        return self.filters.slope

    @slope.setter
    def slope(self, value: Value) -> None:
        self.filters.slope = value

    @property
    def tmax_prev(self) -> Value:
        """Hotter-die temperature at the last slope update, C."""
        return self.filters.tmax_prev

    @tmax_prev.setter
    def tmax_prev(self, value: Value) -> None:
        self.filters.tmax_prev = value

    @property
    def lat_ema(self) -> Value:
        """Latency EMA, ms."""
        return self.filters.lat_ema

    @lat_ema.setter
    def lat_ema(self, value: Value) -> None:
        self.filters.lat_ema = value

    # -- masks that every board may share ----------------------------------------------------
    def _alike_batch(self, mask: np.ndarray) -> Value:
        """``mask`` as a Python bool when every board agrees, else the mask itself (``_alike`` of a batch).

        Boards usually share their phase, so ``_pick`` can then take one branch whole.
        """
        k = int(np.count_nonzero(mask))
        return mask if 0 < k < self.n else k > 0

    def _full(self, value: Value) -> Value:
        """``value`` as an array ``[n]`` for a batch (as it is for one board).

        A batch's constants are cached, read-only (nothing writes a shared array in place; see
        :meth:`_pick_batch`): a fresh ``np.full`` per use was a tenth of a batched step.
        """
        if not self.batched or isinstance(value, np.ndarray):
            return value
        key = (type(value), value)
        full = self._constants.get(key)
        if full is None:
            full = np.full(self.n, value)
            full.flags.writeable = False
            if len(self._constants) < _MAX_CONSTANTS:
                self._constants[key] = full
        return full

    def _pick_batch(self, cond: Value, a: Value, b: Value) -> Value:
        """``where(cond, a, b)`` for a condition from ``_alike``: a bool picks a branch whole (no copy)."""
        if isinstance(cond, np.ndarray):
            return np.where(cond, a, b)
        return self._full(a if cond else b)

    # -- reset -------------------------------------------------------------------------------
    def reset_board(self, i: int, rng: np.random.Generator) -> None:
        """Draw board ``i`` afresh from ``rng``."""
        init = draw_board(self.res, rng)
        trace, table = init.pop("_trace"), init.pop("_coef_table")
        if not self.batched:
            for name, value in init.items():
                setattr(self, name, value)
            self.trace = trace
            self.coef_table = table
            self.coef = table[self.fan_level]
            self._update_fan_pwm()
            return
        rows = {"th_c": (self._theta, 0), "th_g": (self._theta, 1), "th_s": (self._theta, 2)}
        rows |= {"sen_c": (self._sen, 0), "sen_g": (self._sen, 1)}
        for name, value in init.items():
            if name in rows:  # rows of self._theta or self._sen, updated in place
                stacked, row = rows[name]
                stacked[row, i] = value
                continue
            # a fresh array: a uniform batch shares arrays between fields (see _pick_batch), so none is written in place
            column = getattr(self, name).copy()
            column[i] = value
            setattr(self, name, column)
        self.traces[i] = trace
        self._jitter.forget(i)
        self._noise.forget(i)
        self.coef_tables[i] = np.asarray(table)
        self.coef[:, i] = self.coef_tables[i, init["fan_level"]]
        self._update_fan_pwm()

    # -- masked steps (a batch) -----------------------------------------------------------------
    def snapshot(self) -> dict[str, np.ndarray]:
        """A copy of a batch's state for :meth:`restore` (not the traces and tables, fixed per episode)."""
        if not self.batched:
            raise ValueError("snapshots are for a batch (batched=True)")
        snap = {name: np.array(getattr(self, name), copy=True) for name in _SNAPSHOT_FIELDS}
        snap |= {"filters." + name: np.array(getattr(self.filters, name), copy=True) for name in FILTER_FIELDS}
        snap |= {"_theta": self._theta.copy(), "_sen": self._sen.copy(), "coef": self.coef.copy()}
        return snap

    def restore(self, snap: dict[str, np.ndarray], boards: np.ndarray) -> None:
        """Put the boards in ``boards`` (``bool [n]``) back to :meth:`snapshot` ``snap``; the others stay."""
        for name in _SNAPSHOT_FIELDS:
            setattr(self, name, np.where(boards, snap[name], getattr(self, name)))  # fresh arrays, dtypes kept
        for name in FILTER_FIELDS:
            setattr(self.filters, name, np.where(boards, snap["filters." + name], getattr(self.filters, name)))
        self._theta[:, boards] = snap["_theta"][:, boards]  # in place: th_c, th_g and th_s are its rows
        self._sen = np.where(boards, snap["_sen"], self._sen)
        self.sen_c, self.sen_g = self._sen
        self.coef[:, boards] = snap["coef"][:, boards]

    # -- one segment of constant power --------------------------------------------------------
    def segment(self, dur_s: Value, fc_idx: Value, fg_idx: Value, act_c: Value, act_g: Value, mem_frac: Value) -> Value:
        """Run every board at constant clocks and activity for ``dur_s`` s: heat, energy, firmware polls.

        The building block of :meth:`step` (camera wait, then the stage); the daemon's
        :class:`lotus.runtime.hw.sim.SimBoard` integrates the same way (parity-tested).

        :param dur_s: segment length, s.
        :param fc_idx: applied CPU clock index (already capped by the firmware).
        :param fg_idx: applied GPU clock index.
        :param act_c: CPU activity factor (:func:`lotus.envs.physics.stage_activity`).
        :param act_g: GPU activity factor.
        :param mem_frac: memory-bound share of the segment, 0..1.
        :return: the energy drawn, J.
        """
        o = self.ops
        p_c, p_g, p_s = segment_power(
            self.res.board, o.take(self.dyn_c, fc_idx), o.take(self.dyn_g, fg_idx), act_c, act_g, mem_frac,
            self.th_c + self.amb, self.th_g + self.amb, o.exp,
        )  # fmt: skip
        if self.batched:
            self._power[0], self._power[1], self._power[2] = p_c, p_g, p_s
            advance_batched(self.coef, self._theta, self._power, dur_s)
        else:
            self.th_c, self.th_g, self.th_s = advance(
                self.coef, self.th_c, self.th_g, self.th_s, p_c, p_g, p_s, dur_s, o.exp
            )
        t0 = self.t
        self.t = t0 + dur_s
        energy = (p_c + p_g + p_s) * dur_s
        self.energy = self.energy + energy
        self.frame_energy = self.frame_energy + energy
        self._poll(polls_crossed(t0, self.t, self.poll_s, o))
        self._fan(t0)
        return energy

    def _sample_sensors(self, t0: Value) -> None:
        """The thermal-zone readings (:func:`physics.sensor_readings`), refreshed if a sensor period ended since ``t0``.

        Sampled once per simulated stage, at its end: a reading lags the die by up to a stage.
        """
        o = self.ops
        sample = o.floor(self.t / self.sensor_s)
        new = sample > o.floor(t0 / self.sensor_s)
        if not self.batched:
            if new:  # the noise of a batch's draws, BOARD_DRAW_BLOCK samples per numpy pass
                n_c, n_g = self._board_noise.pair(self.key, int(sample)) if self.sensors.noise_c > 0 else (0.0, 0.0)
                self.sen_c = sensor_reading(self.sensors, self.th_c + self.amb, n_c, o)
                self.sen_g = sensor_reading(self.sensors, self.th_g + self.amb, n_g, o)
            return
        if not np.count_nonzero(new):
            return
        # every board's reading, both dies as rows [2, n], kept where a sample boundary was crossed: a fifth
        # of the boards each stage, and cheaper whole than picked out (elementwise: the same numbers)
        noise = self._noise.get(self._rows, self.key, sample.astype(np.uint64)) if self.sensors.noise_c > 0 else 0.0
        reading = sensor_reading(self.sensors, self._theta[:2] + self.amb, noise, o)
        self._sen = np.where(new, reading, self._sen)  # a fresh array: readings handed out before keep their values
        self.sen_c, self.sen_g = self._sen

    def _poll(self, polls: Value) -> None:
        """Firmware throttle for ``polls`` polls crossed (:func:`physics.throttle_poll`)."""
        if not (np.count_nonzero(polls) if self.batched else polls):
            return  # no poll boundary crossed: nothing changes
        o, res = self.ops, self.res
        hottest = o.maximum(self.th_c, self.th_g) + self.amb
        # uncapped boards at or below the trip keep their caps: skip the rule when every board is one
        capped_or_hot = is_capped(self.cap_c, self.cap_g, self.n_cpu, self.n_gpu) | (hottest > self.trip)
        if np.count_nonzero(capped_or_hot) if self.batched else capped_or_hot:
            self.cap_c, self.cap_g = throttle_poll(
                res.board.throttling, self.cap_c, self.cap_g, hottest, self.poll_tmax, self.trip, polls,
                self.n_cpu, self.n_gpu, o,
            )  # fmt: skip
        self.poll_tmax = o.where(polls > 0, hottest, self.poll_tmax)

    def _fan(self, t0: Value) -> None:
        """The fan curve (:func:`physics.fan_auto_level`) per fan poll since ``t0``, for boards in auto mode."""
        o, fan = self.ops, self.res.board.fan
        if not self.batched:
            if self.fan_mode == FAN_AUTO and polls_crossed(t0, self.t, self.fan_poll_s, o):
                level = fan_auto_level(fan, o.maximum(self.th_c, self.th_g) + self.amb, o)
                if level != self.fan_level:
                    self.fan_level = level
                    self.coef = self.coef_table[level]
                    self._update_fan_pwm()
            return
        auto = self.fan_mode == FAN_AUTO
        if not np.count_nonzero(auto):
            return  # no board follows the curve (fan off or on): nothing to poll
        due = np.flatnonzero(auto & (polls_crossed(t0, self.t, self.fan_poll_s, o) > 0))
        if not due.size:
            return
        level = fan_auto_level(fan, np.maximum(self.th_c[due], self.th_g[due]) + self.amb[due], o)
        moved = level != self.fan_level[due]
        if moved.any():
            changed = due[moved]
            self.fan_level = self.fan_level.copy()
            self.fan_level[changed] = level[moved]
            self.coef[:, changed] = self.coef_tables[changed, level[moved]].T
            self._update_fan_pwm()

    # -- one decision --------------------------------------------------------------------------
    def step(self, cpu_idx: Value, gpu_idx: Value) -> dict[str, Value]:
        """Apply requested clock indices and run until the next decision point.

        :return: per-board step results (floats or arrays ``[n]``), see :meth:`_stage`.
        """
        if self.res.scenario.decision == "frame":
            first = self._stage(cpu_idx, gpu_idx)
            second = self._stage(cpu_idx, gpu_idx)
            return _merge(first, second)
        return self._stage(cpu_idx, gpu_idx)

    def _stage(self, cpu_idx: Value, gpu_idx: Value) -> dict[str, Value]:
        o, res, wl = self.ops, self.res, self.res.workload
        pick = self._pick
        # a bool when every board is at the same decision (the usual case): the other phase's work is skipped
        phase1 = self._alike(self.phase == 0)
        frame_done = ~phase1 if isinstance(phase1, np.ndarray) else not phase1
        self.req_c, self.req_g = cpu_idx, gpu_idx
        t_start, e_start, dropped_before = self.t, self.energy, self.dropped
        b = res.board
        # 1) wait for the camera frame (only before stage 1)
        if phase1 is False:
            idle_s = self._full(0.0)
        else:
            idle_s = pick(phase1, o.maximum(self.arrival - self.t, 0.0), 0.0)
            fc_idx = o.minimum(cpu_idx, self.cap_c)
            fg_idx = o.minimum(gpu_idx, self.cap_g)
            self.segment(idle_s, fc_idx, fg_idx, b.cpu.idle_activity, b.gpu.idle_activity, 0.0)
            self.frame_start = pick(phase1, self.t, self.frame_start)
        fc_idx = o.minimum(cpu_idx, self.cap_c)
        fg_idx = o.minimum(gpu_idx, self.cap_g)
        # a clock change stalls the pipeline (physics.switch_stall_s); a camera wait absorbs it
        stall_s = switch_stall_s(b.actuation, fc_idx != self.app_c, fg_idx != self.app_g)
        stall_ms = s_to_ms(o.maximum(stall_s - idle_s, 0.0))
        self.app_c, self.app_g = fc_idx, fg_idx
        # 2) run the stage
        f_c, f_g = o.take(self.cpu_ghz, fc_idx), o.take(self.gpu_speed, fg_idx)
        n_prop = self.proposals

        def cost(stage1: float, fixed: float, per_proposal: float) -> Value:  # this stage's cost of each board
            if phase1 is True:
                return stage1
            stage2 = fixed + per_proposal * n_prop
            return stage2 if phase1 is False else np.where(phase1, stage1, stage2)

        s1, fx, pp = wl.stage1, wl.stage2_fixed, wl.stage2_per_proposal
        cpu_ms = cost(s1.cpu_mcycles, fx.cpu_mcycles, pp.cpu_mcycles) / f_c
        gpu_ms = cost(s1.gpu_mcycles, fx.gpu_mcycles, pp.gpu_mcycles) / f_g
        mem_ms = cost(s1.mem_ms, fx.mem_ms, pp.mem_ms)
        if self.batched:
            jitter = self._jitter.get(self._rows, self.key, self.counter)[0] * self.wl_scale
        else:
            jitter = self._board_jitter.get(self.key, self.counter) * self.wl_scale
        self.counter = self.counter + 1
        cpu_ms, gpu_ms, mem_ms = cpu_ms * jitter, gpu_ms * jitter, mem_ms * jitter
        stage_ms = cpu_ms + gpu_ms + mem_ms + stall_ms
        act_c, act_g = stage_activity(b, cpu_ms, gpu_ms, stage_ms)
        self.segment(stage_ms * S_PER_MS, fc_idx, fg_idx, act_c, act_g, mem_ms / stage_ms)
        # 3) bookkeeping
        tmax = o.maximum(self.th_c, self.th_g) + self.amb
        self._sample_sensors(t_start)
        dt = self.t - t_start
        filters = self.filters
        filters.update_slope(o.maximum(self.sen_c, self.sen_g), dt)  # from the readings, as on a board
        latency_ms = s_to_ms(self.t - self.frame_start)
        frame_energy = self.frame_energy
        lat_ema_prev = filters.lat_ema
        lat_mean_prev, lat_n_prev = self.lat_mean, self.lat_n
        if phase1 is not False:
            self.stage1_ms = pick(phase1, stage_ms, self.stage1_ms)
            self.s1_hist0, self.s1_hist1, self.s1_hist2 = (
                pick(phase1, self.s1_hist1, self.s1_hist0),
                pick(phase1, self.s1_hist2, self.s1_hist1),
                pick(phase1, stage_ms, self.s1_hist2),
            )
        if frame_done is not False:
            filters.update_latency(latency_ms, self.frame == 0, frame_done)
            self.lat_n = pick(frame_done, lat_n_prev + 1.0, lat_n_prev)
            self.lat_mean = pick(frame_done, lat_mean_prev + (latency_ms - lat_mean_prev) / (lat_n_prev + 1.0),
                                 lat_mean_prev)  # fmt: skip
            self.last_latency = pick(frame_done, latency_ms, self.last_latency)
            self.frame_energy = pick(frame_done, 0.0, self.frame_energy)
            self._advance_frame(frame_done)
        self.phase = 1 - self.phase  # 0 <-> 1
        throttled = is_capped(self.cap_c, self.cap_g, self.n_cpu, self.n_gpu)
        dt_safe = o.maximum(dt, 1e-9)
        self._last_power = (self.energy - e_start) / dt_safe
        # the inference thread is busy (computing or waiting on the GPU) for the whole stage
        self._last_cpu_util = stage_ms * S_PER_MS / dt_safe
        self._last_gpu_util = gpu_ms * S_PER_MS / dt_safe
        out = self._result(
            self._full(frame_done), lat_ema_prev, tmax, stage_ms, latency_ms, pick(frame_done, stage_ms, 0.0),
            idle_s, n_prop, frame_energy, e_start, dt, fc_idx, fg_idx, throttled, dropped_before,
        )  # fmt: skip
        out["lat_mean_prev_ms"], out["lat_n_prev"] = lat_mean_prev, lat_n_prev
        return out

    def _result(
        self, frame_done: Value, lat_ema_prev: Value, tmax: Value, stage_ms: Value, latency_ms: Value,
        stage2_ms: Value, idle_s: Value, proposals: Value, frame_energy: Value, e_start: Value, dt: Value,
        fc_idx: Value, fg_idx: Value, throttled: Value, dropped_before: Value,
    ) -> dict[str, Value]:  # fmt: skip
        """A step result (the keys :meth:`step` and :meth:`skip` return), after the step has run."""
        return {
            "frame_done": frame_done,
            "lat_ema_prev_ms": lat_ema_prev,
            "max_temp_c": tmax,
            "stage_ms": stage_ms,
            "latency_ms": latency_ms,
            "stage1_ms": self.stage1_ms,
            "stage2_ms": stage2_ms,
            "idle_ms": s_to_ms(idle_s),
            "proposals": proposals,
            "frame_energy_j": frame_energy,
            "energy_j": self.energy - e_start,
            "power_w": self._last_power,
            "dt_s": dt,
            "cpu_util": self._last_cpu_util,
            "gpu_util": self._last_gpu_util,
            "applied_cpu_idx": fc_idx,
            "applied_gpu_idx": fg_idx,
            "throttled": throttled,
            "shutdown": tmax > self.shutdown,
            "dropped": self.dropped - dropped_before,
        }

    def skip(self, mask: Value = True) -> dict[str, Value]:
        """Skip the camera frame the next stage-1 decision would run (admission control).

        Boards in ``mask`` whose next decision is before stage 1 idle at their requested clocks
        (capped by the firmware; idle activity) until the camera frame after the skipped one
        arrives; the skipped frame counts in ``dropped`` like one the camera produced while the
        detector was busy. Back-to-back (fps 0) boards idle for their last frame's latency (at
        least 1 ms) instead. Other boards do not change.

        :param mask: boards to skip (a bool for one board, ``bool [n]`` for a batch).
        :return: a step result with the keys of :meth:`step` (no frame done) plus ``skipped``.
        """
        o, res, b = self.ops, self.res, self.res.board
        sel = (self.phase == 0) & mask
        t_start, e_start, dropped_before = self.t, self.energy, self.dropped
        fc_idx = o.minimum(self.req_c, self.cap_c)
        fg_idx = o.minimum(self.req_g, self.cap_g)
        period = res.period_s
        if period > 0:
            wait_s = o.maximum(self.arrival + period - self.t, 0.0)
        else:
            wait_s = o.maximum(self.last_latency * S_PER_MS, 1e-3)
        idle_s = o.where(sel, wait_s, 0.0)
        if self.batched:
            theta = self._theta.copy()
            slope, tmax_prev = self.filters.slope.copy(), self.filters.tmax_prev.copy()
        if sel.any() if self.batched else sel:
            self.segment(idle_s, fc_idx, fg_idx, b.cpu.idle_activity, b.gpu.idle_activity, 0.0)
            if self.batched:  # a zero-length segment may round: keep the other boards to the bit
                self._theta[:, ~sel] = theta[:, ~sel]
            self._sample_sensors(t_start)
            self.filters.update_slope(o.maximum(self.sen_c, self.sen_g), self.t - t_start)
            if self.batched:
                self.filters.slope = np.where(sel, self.filters.slope, slope)
                self.filters.tmax_prev = np.where(sel, self.filters.tmax_prev, tmax_prev)
        self.dropped = o.where(sel, self.dropped + 1, self.dropped)
        if period > 0:
            self.arrival = o.where(sel, self.arrival + period, self.arrival)
        self.app_c, self.app_g = o.where(sel, fc_idx, self.app_c), o.where(sel, fg_idx, self.app_g)
        dt = self.t - t_start
        dt_safe = o.maximum(dt, 1e-9)
        self._last_power = o.where(sel, (self.energy - e_start) / dt_safe, self._last_power)
        self._last_cpu_util = o.where(sel, 0.0, self._last_cpu_util)
        self._last_gpu_util = o.where(sel, 0.0, self._last_gpu_util)
        tmax = o.maximum(self.th_c, self.th_g) + self.amb
        zero = 0.0 * self.t
        throttled = is_capped(self.cap_c, self.cap_g, self.n_cpu, self.n_gpu)
        out = self._result(
            sel & False, self.filters.lat_ema, tmax, zero, zero, zero, idle_s, self.proposals, self.frame_energy,
            e_start, dt, fc_idx, fg_idx, throttled, dropped_before,
        )  # fmt: skip
        out["skipped"] = sel
        out["lat_mean_prev_ms"], out["lat_n_prev"] = self.lat_mean, self.lat_n
        return out

    def _advance_frame(self, frame_done: Value) -> None:
        """After stage 2: next frame index, its proposals and its camera arrival time.

        :param frame_done: the boards whose frame finished, from ``_alike`` (a bool when all or none).
        """
        o, pick = self.ops, self._pick
        self.frame = pick(frame_done, self.frame + 1, self.frame)
        if self.batched:
            upcoming = self.traces[self._rows, self.frame % self.traces.shape[1]]
        else:
            upcoming = int(self.trace[self.frame % len(self.trace)])
        self.last_proposals = pick(frame_done, self.proposals, self.last_proposals)
        self.proposals = pick(frame_done, upcoming, self.proposals)
        # shift the Lotus stability histories
        self.lat_hist0, self.lat_hist1, self.lat_hist2 = (
            pick(frame_done, self.lat_hist1, self.lat_hist0),
            pick(frame_done, self.lat_hist2, self.lat_hist1),
            pick(frame_done, self.last_latency, self.lat_hist2),
        )
        period = self.res.period_s
        if period <= 0:
            self.arrival = pick(frame_done, self.t, self.arrival)
            return
        newest_tick = o.floor(self.t / period) * period
        late = newest_tick > self.arrival + 0.5 * period
        missed = o.maximum(o.rint((newest_tick - self.arrival) / period) - 1, 0)
        nxt_arrival = o.where(late, newest_tick, self.arrival + period)
        self.dropped = o.where(frame_done & late, self.dropped + missed, self.dropped)
        self.arrival = pick(frame_done, nxt_arrival, self.arrival)

    # -- readings ------------------------------------------------------------------------------
    def raw_readings(self) -> dict[str, Value]:
        """Physical readings for :func:`lotus.core.schema.encode_observation` (what a board would show)."""
        o, res, pick = self.ops, self.res, self._pick
        stage2_next = self._alike(self.phase == 1)
        cap_c, cap_g = o.minimum(self.req_c, self.cap_c), o.minimum(self.req_g, self.cap_g)
        period = res.period_s
        if period > 0:
            due = self.arrival if stage2_next is False else pick(stage2_next, self.arrival + period, self.arrival)
            next_in = s_to_ms(o.maximum(due - self.t, 0.0))
        else:
            next_in = 0.0 * self.t
        return {
            "stage2_next": pick(stage2_next, 1.0, 0.0),
            "cpu_khz": o.take(self._cpu_khz, cap_c),
            "gpu_hz": o.take(self._gpu_hz, cap_g),
            "cpu_max_khz": res.cpu_ghz[-1] * KHZ_PER_GHZ,
            "gpu_max_hz": res.gpu_ghz[-1] * HZ_PER_GHZ,
            "cpu_temp_c": self.sen_c,
            "gpu_temp_c": self.sen_g,
            "trip_c": self.trip,
            "temp_slope_c_per_s": self.filters.slope,
            "proposals": pick(stage2_next, self.proposals, self.last_proposals),
            "max_proposals": res.workload.max_proposals,
            "deadline_ms": res.deadline_ms * self.d_scale,
            "frame_elapsed_ms": pick(stage2_next, self.stage1_ms, 0.0),
            "last_latency_ms": self.last_latency,
            "latency_ema_ms": self.filters.lat_ema,
            "last_stage1_ms": self.stage1_ms,
            "next_frame_in_ms": next_in,
            "power_w": self._last_power,
            "budget_w": res.budget_w,
            "cpu_util": self._last_cpu_util,
            "gpu_util": self._last_gpu_util,
            "throttled": self._pick(self._alike(is_capped(self.cap_c, self.cap_g, self.n_cpu, self.n_gpu)), 1.0, 0.0),
            "fan_pwm": self._fan_pwm,
        }

    def _update_fan_pwm(self) -> None:
        """The fan PWM reading (0..1) of the fan mode and level; kept as state, as both change rarely."""
        o = self.ops
        self._fan_pwm = o.where(
            self.fan_mode == FAN_AUTO, self.fan_level / (FAN_LEVELS - 1), o.where(self.fan_mode == FAN_ON, 1.0, 0.0)
        )

    _fan_pwm: Value = 0.0
    _last_power: Value = 0.0
    _last_cpu_util: Value = 0.0
    _last_gpu_util: Value = 0.0


def _merge(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Combine the two stages of a ``frame``-mode step into one step result."""
    out = dict(second)
    for key in ("energy_j", "dt_s", "idle_ms", "dropped"):
        out[key] = first[key] + second[key]
    dt = np.maximum(out["dt_s"], 1e-9) if isinstance(out["dt_s"], np.ndarray) else max(out["dt_s"], 1e-9)
    out["power_w"] = out["energy_j"] / dt
    out["cpu_util"] = (first["cpu_util"] * first["dt_s"] + second["cpu_util"] * second["dt_s"]) / dt
    out["gpu_util"] = (first["gpu_util"] * first["dt_s"] + second["gpu_util"] * second["dt_s"]) / dt
    out["shutdown"] = first["shutdown"] | second["shutdown"]
    out["throttled"] = first["throttled"] | second["throttled"]
    return out
