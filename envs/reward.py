"""Rewards: ``objective`` (ours), ``stable`` (our earlier one), ``lotus`` (the Lotus paper's, as
its code computes it), ``ztt``.

Both are written against :mod:`envs.ops`, so they serve one board (floats) or many (arrays).

``stable``: per decision, ``-W_THROTTLE`` while firmware throttling is active and
``-W_HEAT * excess / HEAT_MARGIN_C`` for every C the hotter die sits above
``trip - HEAT_MARGIN_C``; when a frame completes, also
``-(W_DEVIATION * |l - L|/D + W_LATENCY * l/D + W_MISS * [l > D] + W_ENERGY * E/(P_budget * D))``
with ``l`` the frame latency, ``L = TARGET_FRACTION * D`` the latency target, ``D`` the deadline
and ``E`` the frame's energy. It prices, in this order: throttling (the board takes control
away), latency off its target (either way: faster than needed spends the thermal budget that a
later burst of proposals will need), deadline misses, mean latency, energy.

``objective``: the reported metric (:mod:`lotus.governor.metrics`) spread over decisions, in
deadline units: when a frame completes ``-(l + ALPHA (l - m)^2 + D [l > D]) / D`` with ``m`` the
latency EMA before the frame, and ``-1`` for every camera frame dropped during the decision (a
drop is a miss, as the metric counts it); plus ``stable``'s throttle term and its heat term from
``OBJECTIVE_HEAT_MARGIN_C`` under the trip (temperature limits are constraints, priced to be
avoided, not traded). It targets
nothing below the deadline: what the benchmark reports is what the policy is paid for.

``objective-run``: ``objective`` with the spread measured as the metric measures it, around the
episode's own mean rather than a short EMA: a finished frame adds ``(l - m) ** 2 * k / (k + 1)``
(``m`` the mean of the episode's ``k`` earlier frames), Welford's increment of the sum of squared
deviations, so over an episode the spread terms sum to ``frames x variance`` exactly and the
undiscounted return is ``-frames x objective / D``. The EMA spread misses the slow part of the
variance (a scene's proposal count drifting over minutes), which is most of it: in the Orin Nano 7 W
room the top clocks' latency has a 2.9 ms spread around its EMA against an 8.5 ms std.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

# every reward kind compute_reward knows (Scenario.reward and the policy families name one)
RewardKind: TypeAlias = Literal["objective", "objective-run", "objective-projected", "stable", "lotus", "ztt"]

TARGET_FRACTION = 0.9
W_DEVIATION = 4.0
W_LATENCY = 0.2
W_MISS = 1.0
W_THROTTLE = 2.0
W_HEAT = 3.0
HEAT_MARGIN_C = 6.0
W_ENERGY = 0.1

# Lotus (governors.md 1.2): penalty factor P, weight beta, shutdown penalty for both rewards.
LOTUS_PENALTY = 2.0
LOTUS_BETA = 1.0
SHUTDOWN_PENALTY = 50.0

STABLE_WEIGHTS = {
    "target_fraction": TARGET_FRACTION, "deviation": W_DEVIATION, "latency": W_LATENCY,
    "miss": W_MISS, "throttle": W_THROTTLE, "heat": W_HEAT, "heat_margin_c": HEAT_MARGIN_C, "energy": W_ENERGY,
    "shutdown": SHUTDOWN_PENALTY,
}  # fmt: skip


def stable_reward(step: dict[str, Any], trip_c: Any, deadline_ms: float, budget_w: float, ops: Any) -> Any:
    """Our reward for one decision (see module docstring)."""
    # constants folded and booleans multiplied rather than where()'d: a batch's reward is a dozen
    # array operations (the same value as the formula in the docstring, up to rounding)
    heat = ops.maximum(step["max_temp_c"] - (trip_c - HEAT_MARGIN_C), 0.0) * (W_HEAT / HEAT_MARGIN_C)
    r = -heat - step["throttled"] * W_THROTTLE
    lat = step["latency_ms"]
    frame_cost = (
        abs(lat - TARGET_FRACTION * deadline_ms) * (W_DEVIATION / deadline_ms)
        + lat * (W_LATENCY / deadline_ms)
        + (lat > deadline_ms) * W_MISS
        + step["frame_energy_j"] * (W_ENERGY / (budget_w * deadline_ms * 1e-3))
    )
    return r - frame_cost * step["frame_done"] - step["shutdown"] * SHUTDOWN_PENALTY


OBJECTIVE_ALPHA_PER_MS = 0.1  # lotus.governor.metrics.ALPHA_PER_MS (envs cannot import governor)
# The heat term starts 3 C under the trip, 1 C under the shield's cap limit (trip - 2 C): the
# objective does not price temperature, so the headroom below that is the policy's to spend.
OBJECTIVE_HEAT_MARGIN_C = 3.0
OBJECTIVE_WEIGHTS = {
    "alpha_per_ms": OBJECTIVE_ALPHA_PER_MS, "miss": 1.0, "drop": 1.0, "throttle": W_THROTTLE, "heat": W_HEAT,
    "heat_margin_c": OBJECTIVE_HEAT_MARGIN_C, "shutdown": SHUTDOWN_PENALTY,
}  # fmt: skip

# ``objective-projected`` (an ablation, docs/governor.md E and G; not the shipped recipe): the heat
# and throttle terms come too late to teach a back-off (from a warm heatsink every choice reaches the
# trip and pays about the same), so this adds the same heat term on where the step's power takes the
# die PROJECTION_S ahead, from the exact RC network (privileged state, in the reward only).
PROJECTION_S = 30.0
W_PROJECTED = 1.0
PROJECTED_WEIGHTS = {**OBJECTIVE_WEIGHTS, "projected_heat": W_PROJECTED, "projection_s": PROJECTION_S}


def projected_temp_c(step: dict[str, Any], core: Any, horizon_s: float, ops: Any) -> Any:
    """The hotter die ``horizon_s`` ahead at the step's average power, C (floats or ``[N]``).

    The heatsink's steady rise is ``R_sink_amb * P`` (all heat leaves through it: coefficient 8,
    row 2 of ``G^-1``), approached along the network's slowest mode (eigenvalue 27, 1/s); the dice
    keep their present offset over the heatsink.
    """
    k = core.coef
    return step["max_temp_c"] + (k[8] * step["power_w"] - core.th_s) * (1.0 - ops.exp(-k[27] * horizon_s))


def projected_objective_reward(step: dict[str, Any], core: Any, deadline_ms: float, ops: Any) -> Any:
    """:func:`objective_reward` plus its heat term on :func:`projected_temp_c`."""
    limit = core.trip - OBJECTIVE_HEAT_MARGIN_C
    ahead = ops.maximum(projected_temp_c(step, core, PROJECTION_S, ops) - limit, 0.0) / OBJECTIVE_HEAT_MARGIN_C
    return objective_reward(step, core.trip, deadline_ms, ops) - W_PROJECTED * ahead


def _limits_cost(step: dict[str, Any], trip_c: Any, ops: Any) -> Any:
    """The objective rewards' price on temperature limits: heat near the trip, and throttling."""
    excess = ops.maximum(step["max_temp_c"] - (trip_c - OBJECTIVE_HEAT_MARGIN_C), 0.0)
    return excess * (W_HEAT / OBJECTIVE_HEAT_MARGIN_C) + step["throttled"] * W_THROTTLE


def objective_reward(step: dict[str, Any], trip_c: Any, deadline_ms: float, ops: Any) -> Any:
    """The reported objective per decision, in deadline units (see module docstring)."""
    r = -_limits_cost(step, trip_c, ops)
    lat = step["latency_ms"]
    ema = step["lat_ema_prev_ms"]
    spread = ops.where(ema > 0, lat - ema, 0.0)
    frame_cost = (lat + OBJECTIVE_ALPHA_PER_MS * spread**2) * (1.0 / deadline_ms) + (lat > deadline_ms)
    return r - frame_cost * step["frame_done"] - step["dropped"] - step["shutdown"] * SHUTDOWN_PENALTY


def objective_run_reward(step: dict[str, Any], trip_c: Any, deadline_ms: float, ops: Any) -> Any:
    """:func:`objective_reward` with the spread around the episode's running mean (see module docstring)."""
    r = -_limits_cost(step, trip_c, ops)
    lat, k = step["latency_ms"], step["lat_n_prev"]
    spread2 = (lat - step["lat_mean_prev_ms"]) ** 2 * (k / (k + 1.0))
    frame_cost = (lat + OBJECTIVE_ALPHA_PER_MS * spread2) * (1.0 / deadline_ms) + (lat > deadline_ms)
    return r - frame_cost * step["frame_done"] - step["dropped"] - step["shutdown"] * SHUTDOWN_PENALTY


def _squash(h: Any, ops: Any) -> Any:
    # tanh(h) for positive headroom, raw (negative) headroom otherwise
    e = ops.exp(-2.0 * ops.maximum(h, 0.0))
    return ops.where(h > 0, (1.0 - e) / (1.0 + e), h)


def _softsign(x: Any) -> Any:
    return x / (1.0 + abs(x))


def _std3(a: Any, b: Any, c: Any, ops: Any) -> Any:
    m = (a + b + c) / 3.0
    return ops.sqrt(((a - m) ** 2 + (b - m) ** 2 + (c - m) ** 2) / 3.0)


def lotus_reward(step: dict[str, Any], core: Any, deadline_ms: float, ops: Any) -> Any:
    """The Lotus reward ``r_temp + r_time + beta / (1 + std)`` after a decision."""
    t_bound = core.trip
    h_c = _squash(t_bound - (core.th_c + core.amb), ops)
    h_g = _squash(t_bound - (core.th_g + core.amb), ops)
    r_temp = 0.5 * ops.where(h_c > 0, h_c, LOTUS_PENALTY * h_c) + 0.5 * ops.where(h_g > 0, h_g, LOTUS_PENALTY * h_g)
    done = step["frame_done"]
    t2ddl = ops.where(done, deadline_ms - step["latency_ms"], deadline_ms - step["stage1_ms"])
    soft = _softsign(t2ddl / 1000.0)
    r_time = LOTUS_BETA * ops.where(t2ddl > 0, soft, LOTUS_PENALTY * soft)
    std = ops.where(
        done,
        _std3(core.lat_hist0, core.lat_hist1, core.lat_hist2, ops),
        _std3(core.s1_hist0, core.s1_hist1, core.s1_hist2, ops),
    )
    r = r_temp + r_time + LOTUS_BETA / (1.0 + std)
    return r - SHUTDOWN_PENALTY * ops.where(step["shutdown"], 1.0, 0.0)


# zTT (governors.md 2): u + v1 + beta / power, power in 0.1 W units, beta 2; the target
# temperature sits ZTT_TEMP_BELOW_TRIP_C under the trip (zTT used 50 C on a TX2 at room temperature).
ZTT_BETA = 2.0
ZTT_TEMP_BELOW_TRIP_C = 10.0


def ztt_reward(step: dict[str, Any], core: Any, deadline_ms: float, ops: Any) -> Any:
    """zTT's reward: frame-rate satisfaction + CPU temperature term + inverse power."""
    lat = ops.maximum(step["latency_ms"], 1e-3)
    u = ops.where(lat <= deadline_ms, 1.0, deadline_ms / lat)  # fps / target fps
    t_cpu = core.th_c + core.amb
    target = core.trip - ZTT_TEMP_BELOW_TRIP_C
    gap = target - t_cpu
    e = ops.exp(-2.0 * ops.clip(gap, -20.0, 20.0))
    v1 = ops.where(t_cpu >= target, -2.0, 0.2 * (1.0 - e) / (1.0 + e))
    r = u + v1 + ZTT_BETA / ops.maximum(step["power_w"] * 10.0, 1.0)
    return r - SHUTDOWN_PENALTY * ops.where(step["shutdown"], 1.0, 0.0)


def compute_reward(kind: str, step: dict[str, Any], core: Any, deadline_ms: float, budget_w: float, ops: Any) -> Any:
    """The reward named ``kind`` for one decision (floats or arrays ``[N]``)."""
    if kind == "objective":
        return objective_reward(step, core.trip, deadline_ms, ops)
    if kind == "objective-run":
        return objective_run_reward(step, core.trip, deadline_ms, ops)
    if kind == "objective-projected":
        return projected_objective_reward(step, core, deadline_ms, ops)
    if kind == "stable":
        return stable_reward(step, core.trip, deadline_ms, budget_w, ops)
    if kind == "lotus":
        return lotus_reward(step, core, deadline_ms, ops)
    if kind == "ztt":
        return ztt_reward(step, core, deadline_ms, ops)
    raise ValueError(f"unknown reward {kind!r}")
