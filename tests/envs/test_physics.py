"""Board physics: the thermal RC network, throttling, shutdown, power/energy and determinism."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from simhelpers import board_variant, compute_bound_workload, run_constant

from lotus.envs import TwoStageDetectorEnv, load_board
from lotus.envs.thermal import FAN_LEVELS, advance, advance_batched, coefficient_table, coefficients, conductance

MAX_ACTION = 99  # Orin Nano 15W: top CPU and GPU clocks
NANO = load_board("orin-nano")


# -- thermal network (envs.thermal) -----------------------------------------------------------


@pytest.mark.parametrize(("r_scale", "fan_pwm"), [(1.0, 0.0), (1.0, 1.0), (0.8, 0.5), (1.3, 0.0)])
def test_conductance_matrix_is_symmetric_and_leaks_only_through_sink(r_scale: float, fan_pwm: float) -> None:
    g = conductance(NANO, r_scale, fan_pwm)
    np.testing.assert_allclose(g, g.T)
    assert np.all(np.linalg.eigvalsh(g) > 0)
    th = NANO.thermal
    g_sa = 1 / (th.r_sink_amb_passive_k_per_w * r_scale)
    g_sa += (1 / (th.r_sink_amb_fan_k_per_w * r_scale) - g_sa) * fan_pwm
    # column sums: die nodes have no path to ambient, the sink leaks g_sa
    np.testing.assert_allclose(g.sum(axis=0), [0.0, 0.0, g_sa], atol=1e-12)


@pytest.mark.parametrize(("fan_pwm", "r_field"), [(0.0, "r_sink_amb_passive_k_per_w"), (1.0, "r_sink_amb_fan_k_per_w")])
@pytest.mark.parametrize("power", [(3.0, 8.0, 2.2), (1.0, 0.5, 4.0)])
def test_constant_power_converges_to_steady_state(fan_pwm: float, r_field: str, power: tuple) -> None:
    k = coefficients(NANO, 1.0, fan_pwm)
    g = conductance(NANO, 1.0, fan_pwm)
    theta = advance(k, 0.0, 0.0, 0.0, *power, 1e5, math.exp)
    theta_ss = np.linalg.solve(g, np.asarray(power))
    np.testing.assert_allclose(theta, theta_ss, rtol=1e-2)
    # the whole power leaves through the heatsink: its rise is P_total * R_sink_amb
    r_sink = getattr(NANO.thermal, r_field)
    assert theta[2] == pytest.approx(sum(power) * r_sink, rel=1e-2)
    # dies sit above the sink, the power balance holds
    assert theta[0] > theta[2] and theta[1] > theta[2]
    np.testing.assert_allclose(g @ np.asarray(theta), power, rtol=1e-2, atol=1e-6)


def test_steady_state_scales_with_r_scale() -> None:
    p = (2.0, 6.0, 2.0)
    lo = advance(coefficients(NANO, 1.0, 0.0), 0.0, 0.0, 0.0, *p, 1e5, math.exp)
    hi = advance(coefficients(NANO, 1.2, 0.0), 0.0, 0.0, 0.0, *p, 1e5, math.exp)
    assert hi[2] == pytest.approx(1.2 * lo[2], rel=1e-6)


def test_many_small_steps_equal_one_big_step() -> None:
    k = coefficients(NANO, 1.0, 0.0)
    p = (2.5, 7.0, 3.0)
    start = (10.0, 20.0, 5.0)
    big = advance(k, *start, *p, 120.0, math.exp)
    th = start
    for _ in range(12000):
        th = advance(k, *th, *p, 0.01, math.exp)
    np.testing.assert_allclose(th, big, rtol=1e-9, atol=1e-9)
    assert big[2] > start[2]  # it actually moved


def test_zero_dt_leaves_temperatures_unchanged() -> None:
    k = coefficients(NANO, 1.0, 0.0)
    th = advance(k, 12.0, 30.0, 4.0, 5.0, 5.0, 5.0, 0.0, math.exp)
    np.testing.assert_allclose(th, (12.0, 30.0, 4.0), atol=1e-9)


def test_die_time_constant_is_seconds_and_sink_is_minutes() -> None:
    lam = np.asarray(coefficients(NANO, 1.0, 0.0)[27:30])
    taus = np.sort(1.0 / lam)
    assert taus[-1] > 60.0  # heatsink: minutes
    assert taus[0] < 5.0  # dies: seconds


def test_advance_batched_matches_scalar_advance() -> None:
    rng = np.random.default_rng(0)
    n = 6
    tables = [coefficient_table(NANO, r) for r in rng.uniform(0.8, 1.2, n)]
    levels = rng.integers(0, FAN_LEVELS, n)
    coef = np.stack([np.asarray(tables[i][levels[i]]) for i in range(n)], axis=1)
    theta = rng.uniform(0, 50, (3, n))
    power = rng.uniform(0, 8, (3, n))
    dt = rng.uniform(0.001, 5.0, n)
    expected = [advance(tables[i][levels[i]], *theta[:, i], *power[:, i], dt[i], math.exp) for i in range(n)]
    advance_batched(coef, theta, power, dt)
    np.testing.assert_allclose(theta, np.asarray(expected).T, rtol=1e-12, atol=1e-12)


# -- throttling, fan, shutdown (full simulator) -----------------------------------------------


def _first_throttle_s(rec: dict) -> float | None:
    idx = np.flatnonzero(rec["throttled"])
    return float(rec["time_s"][idx[0]]) if idx.size else None


def _frame_latency(rec: dict, t_from: float, t_to: float) -> float:
    sel = rec["frame_done"] & (rec["time_s"] >= t_from) & (rec["time_s"] < t_to)
    return float(rec["latency_ms"][sel].mean())


# a sealed box (heatsink-to-ambient resistance x1.3) in a 40 C room, the board already warm
HOT_ROOM = {"ambient_c": 40.0, "r_scale": 1.3, "init_temp_c": 85.0}


def _hot(**kw) -> TwoStageDetectorEnv:  # noqa: ANN003
    return TwoStageDetectorEnv(episode_frames=10**9, decision="frame", **{**HOT_ROOM, **kw})


@pytest.fixture(scope="module")
def hot() -> dict:
    """Max clocks, fan off, 15W, the hot room, 10 simulated minutes."""
    return run_constant(_hot(), MAX_ACTION, 600.0)


def test_max_clocks_in_a_hot_box_throttle_within_seven_minutes(hot: dict) -> None:
    t = _first_throttle_s(hot)
    assert t is not None and 60.0 < t < 420.0
    assert not hot["terminated"].any()


def test_max_clocks_in_open_air_at_35c_do_not_throttle() -> None:
    """The calibrated module draws ~8 W on this detector: a fanless dev kit in open air stays below the trip."""
    rec = run_constant(TwoStageDetectorEnv(episode_frames=10**9, decision="frame", ambient_c=35.0), MAX_ACTION, 900.0)
    assert not rec["throttled"].any()
    assert 75.0 < max(rec["cpu_temp_c"].max(), rec["gpu_temp_c"].max()) < 95.0


def test_throttling_raises_latency(hot: dict) -> None:
    first = _frame_latency(hot, 0.0, 60.0)
    last = _frame_latency(hot, 540.0, 600.1)
    assert last > 1.15 * first, (first, last)


def test_cpu_only_throttling_holds_the_die_between_trip_and_shutdown(hot: dict) -> None:
    tmax = np.maximum(hot["cpu_temp_c"], hot["gpu_temp_c"])
    assert tmax.max() > 99.0  # it crossed the trip...
    assert tmax.max() < 104.5  # ...and the CPU caps kept it off the shutdown trip
    late = tmax[hot["time_s"] > 450]
    assert 99.0 <= late.mean() < 104.5  # the uncapped GPU keeps it above the trip (T234 cooling map)


def test_a_hotter_box_reaches_shutdown(hot: dict) -> None:
    """The sw-throttle caps only the CPU: at 45 C the GPU alone heats the board to its critical trip."""
    rec = run_constant(_hot(ambient_c=45.0), MAX_ACTION, 900.0)
    assert rec["terminated"][-1]
    assert max(rec["cpu_temp_c"][-1], rec["gpu_temp_c"][-1]) > 104.0


def test_fan_on_runs_much_cooler_without_throttling(hot: dict) -> None:
    rec = run_constant(_hot(fan="on"), MAX_ACTION, 600.0)
    hot_max = max(hot["cpu_temp_c"].max(), hot["gpu_temp_c"].max())
    cool_max = max(rec["cpu_temp_c"][rec["time_s"] > 300].max(), rec["gpu_temp_c"][rec["time_s"] > 300].max())
    assert cool_max < hot_max - 30.0, (cool_max, hot_max)
    assert not rec["throttled"].any()


def test_fan_auto_sits_between_off_and_on(hot: dict) -> None:
    rec = run_constant(_hot(fan="auto"), MAX_ACTION, 300.0)
    early = hot["time_s"] <= 300.0
    auto_max = max(rec["cpu_temp_c"].max(), rec["gpu_temp_c"].max())
    off_max = max(hot["cpu_temp_c"][early].max(), hot["gpu_temp_c"][early].max())
    assert auto_max < off_max - 5.0
    assert auto_max > load_board("orin-nano").fan.on_c


def test_hotter_room_throttles_sooner(hot: dict) -> None:
    rec = run_constant(_hot(ambient_c=44.0), MAX_ACTION, 420.0)
    t44, t40 = _first_throttle_s(rec), _first_throttle_s(hot)
    assert t44 is not None and t40 is not None
    assert t44 < t40 - 10.0, (t44, t40)


@pytest.mark.parametrize("ambient_c", [25.0, 35.0])
def test_min_clocks_never_throttle(ambient_c: float) -> None:
    env = TwoStageDetectorEnv(episode_frames=10**9, decision="frame", ambient_c=ambient_c)
    rec = run_constant(env, 0, 900.0)
    assert rec["time_s"][-1] >= 900.0
    assert not rec["throttled"].any()
    assert max(rec["cpu_temp_c"].max(), rec["gpu_temp_c"].max()) < 99.0 - 5.0


def test_trip_point_is_a_scenario_parameter(hot: dict) -> None:
    rec = run_constant(_hot(trip_c=92.0), MAX_ACTION, 600.0)
    t92 = _first_throttle_s(rec)
    assert t92 is not None and t92 < _first_throttle_s(hot)
    assert rec["throttled"].mean() > hot["throttled"].mean()
    tmax = np.maximum(rec["cpu_temp_c"], rec["gpu_temp_c"])
    hot_tmax = np.maximum(hot["cpu_temp_c"], hot["gpu_temp_c"])
    assert tmax[rec["time_s"] > 450].mean() < hot_tmax[hot["time_s"] > 450].mean()


def test_throttling_steps_the_cpu_down_one_step_per_poll(hot: dict) -> None:
    env = TwoStageDetectorEnv()
    cpu_table = np.asarray(env.actions.cpu_khz)
    t = hot["time_s"]
    cpu_idx = np.searchsorted(cpu_table, hot["applied_cpu_khz"])
    change = np.flatnonzero(np.diff(cpu_idx))
    assert change.size >= 2, "throttling must move the applied clock several times"
    assert np.all(np.abs(np.diff(cpu_idx)) <= 1), "clocks must move one table step at a time"
    assert cpu_idx[change[0] + 1] == len(cpu_table) - 2
    downs = change[np.diff(cpu_idx)[change] < 0]
    gaps = np.diff(t[downs + 1])  # successive down-steps are at least one 1 s poll apart
    assert gaps.size and gaps.min() > 0.9
    # the CPU does not collapse to its floor in the first seconds of throttling
    t0 = _first_throttle_s(hot)
    early = (t >= t0) & (t < t0 + 3.0)
    assert cpu_idx[early].min() >= len(cpu_table) - 1 - 4
    # the T234 sw-throttle maps to the CPU clusters only: the GPU keeps its clock
    assert np.all(hot["applied_gpu_hz"] == env.actions.gpu_hz[-1])


def test_throttle_reports_requested_vs_applied(hot: dict) -> None:
    throttled = hot["throttled"]
    top_cpu = TwoStageDetectorEnv().actions.cpu_khz[-1]
    assert np.all(hot["applied_cpu_khz"][~throttled] == top_cpu)
    assert np.any(hot["applied_cpu_khz"][throttled] < top_cpu)


def test_overheated_board_shuts_down_and_terminates() -> None:
    env = TwoStageDetectorEnv(ambient_c=60.0, init_temp_c=103.0, episode_frames=10**9)
    rec = run_constant(env, MAX_ACTION, 120.0)  # fan off: 60 C room, already at 103 C
    assert rec["terminated"][-1]
    assert rec["time_s"][-1] < 60.0
    assert max(rec["cpu_temp_c"][-1], rec["gpu_temp_c"][-1]) > 104.5
    with pytest.raises(Exception, match="reset"):
        env.step(0)


def test_shutdown_carries_a_large_penalty() -> None:
    env = TwoStageDetectorEnv(ambient_c=60.0, init_temp_c=103.0, episode_frames=10**9)
    env.reset(seed=0)
    rewards = []
    while True:
        _, r, terminated, _, _ = env.step(MAX_ACTION)
        rewards.append(r)
        if terminated:
            break
    assert rewards[-1] < min(rewards[:-1]) - 20.0


def test_cool_start_does_not_shut_down() -> None:
    env = TwoStageDetectorEnv(ambient_c=60.0, init_temp_c=60.0, episode_frames=10**9, decision="frame")
    rec = run_constant(env, 0, 30.0)
    assert not rec["terminated"].any()


# -- power and energy ---------------------------------------------------------------------------


def _energy_sweep(path: Path, domain: str) -> tuple[np.ndarray, np.ndarray]:
    board = board_variant(path.parent, actuation={})  # no clock-change stall: the pure power-vs-clock curve
    env = TwoStageDetectorEnv(workload=str(path), board=str(board), fps=0, decision="frame", trace="steady")
    a = env.actions
    energies = []
    n = a.n_cpu if domain == "cpu" else a.n_gpu
    for i in range(n):
        env.reset(seed=0)
        action = a.index(i, a.n_gpu - 1) if domain == "cpu" else a.index(a.n_cpu - 1, i)
        energies.append(env.step(action)[4]["frame_energy_j"])
    freqs = np.asarray(a.cpu_khz if domain == "cpu" else a.gpu_hz, dtype=float)
    return freqs, np.asarray(energies)


@pytest.mark.parametrize(("domain", "cpu", "gpu"), [("cpu", 20.0, 0.0), ("gpu", 0.0, 20.0)])
def test_energy_per_frame_is_convex_in_frequency(tmp_path: Path, domain: str, cpu: float, gpu: float) -> None:
    freqs, energy = _energy_sweep(compute_bound_workload(tmp_path, cpu, gpu), domain)
    slopes = np.diff(energy) / np.diff(freqs)  # divided differences: the table is not evenly spaced
    tol = 1e-6 * np.abs(slopes).max()
    assert np.all(np.diff(slopes) >= -tol), (energy, slopes)
    # back-to-back frames: the ~5 W the module draws whatever the clocks makes racing to idle pay,
    # so the minimum sits in the top third of the table (the curve is flat there: within 3 % of the top)
    best = int(np.argmin(energy))
    assert best >= (2 * len(energy)) // 3, energy
    assert energy[best] > 0.97 * energy[-1]


def test_energy_at_lowest_cpu_clock_far_above_optimum(tmp_path: Path) -> None:
    """Race-to-idle: at the floor clock static power over the long run time dominates."""
    _, energy = _energy_sweep(compute_bound_workload(tmp_path, 20.0, 0.0), "cpu")
    assert energy[0] > 2.0 * energy.min()


def test_compute_bound_latency_scales_with_inverse_clock(tmp_path: Path) -> None:
    env = TwoStageDetectorEnv(workload=str(compute_bound_workload(tmp_path, 20.0, 0.0)), fps=0, decision="frame")
    a = env.actions
    lat = []
    for c in (0, a.n_cpu - 1):
        env.reset(seed=0)
        lat.append(env.step(a.index(c, a.n_gpu - 1))[4]["latency_ms"])
    # two stages of 20 Mcycles each; moving off the top clock (where reset leaves it) stalls 300 us once
    stall_ms = NANO.actuation.cpu_switch_us * 1e-3
    assert stall_ms == pytest.approx(0.3)
    assert lat[0] == pytest.approx(2 * 20.0 / (a.cpu_khz[0] * 1e-6) + stall_ms, rel=1e-9)
    assert lat[1] == pytest.approx(2 * 20.0 / (a.cpu_khz[-1] * 1e-6), rel=1e-9)


def test_power_rises_with_clocks() -> None:
    env = TwoStageDetectorEnv(decision="frame")
    powers = []
    for action in (0, 50, MAX_ACTION):
        env.reset(seed=0)
        powers.append(np.mean([env.step(action)[4]["power_w"] for _ in range(30)]))
    assert powers[0] < powers[1] < powers[2]
    assert 2.5 < powers[0] and powers[2] < 25.0  # plausible Orin Nano module power


def test_energy_info_is_power_times_time() -> None:
    env = TwoStageDetectorEnv()
    env.reset(seed=0)
    t_prev = 0.0
    for _ in range(40):
        info = env.step(MAX_ACTION)[4]
        dt = info["time_s"] - t_prev
        t_prev = info["time_s"]
        assert info["energy_j"] == pytest.approx(info["power_w"] * dt, rel=1e-9)


# -- determinism -------------------------------------------------------------------------------


def _trajectory(seed: int, n_steps: int = 500, **kw) -> list:  # noqa: ANN003
    env = TwoStageDetectorEnv(episode_frames=10**6, **kw)
    obs, _ = env.reset(seed=seed)
    actions = np.random.default_rng(123).integers(0, env.action_space.n, n_steps)
    out = [obs]
    for a in actions:
        obs, r, term, trunc, info = env.step(int(a))
        out.append((obs, r, term, trunc, info))
    return out


def _same(a: list, b: list) -> bool:
    if not np.array_equal(a[0], b[0]):
        return False
    for (o1, r1, te1, tr1, i1), (o2, r2, te2, tr2, i2) in zip(a[1:], b[1:]):
        if not (np.array_equal(o1, o2) and r1 == r2 and te1 == te2 and tr1 == tr2 and i1 == i2):
            return False
    return True


@pytest.mark.parametrize("kw", [{}, {"trace": "bursty", "reward": "lotus", "fan": "auto"}])
def test_same_seed_same_trajectory(kw: dict) -> None:
    assert _same(_trajectory(11, **kw), _trajectory(11, **kw))


def test_different_seed_different_trajectory() -> None:
    assert not _same(_trajectory(11), _trajectory(12))
