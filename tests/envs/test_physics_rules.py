"""The public physics rules (lotus.envs.physics) and observation filters (lotus.core.filters)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lotus.core.filters import ObservationFilters
from lotus.core.schema import LATENCY_EMA_ALPHA, TEMP_SLOPE_TAU_S
from lotus.envs import load_board
from lotus.envs.core import Resolved
from lotus.envs.ops import ARRAY, SCALAR
from lotus.envs.physics import (
    dynamic_power_table,
    fan_auto_level,
    is_capped,
    polls_crossed,
    segment_power,
    stage_activity,
    throttle_poll,
    voltage_v,
)
from lotus.envs.scenario import Scenario
from lotus.envs.thermal import FAN_LEVELS


def test_dynamic_power_table_is_c_v2_f_per_mode() -> None:
    board = load_board("orin-nano")
    mode = board.mode()
    cpu_w, gpu_w = dynamic_power_table(board, mode)
    assert len(cpu_w) == len(mode.cpu_freqs_khz) and len(gpu_w) == len(mode.gpu_freqs_hz)
    f = mode.cpu_freqs_khz[-1] * 1e3
    v = float(voltage_v(board.cpu, np.asarray([f]))[0])
    assert cpu_w[-1] == pytest.approx(mode.cpu_online * board.cpu.c_eff_nf * 1e-9 * v**2 * f, rel=1e-12)
    assert all(b > a for a, b in zip(cpu_w, cpu_w[1:])) and all(b > a for a, b in zip(gpu_w, gpu_w[1:]))
    res = Resolved.from_scenario(Scenario())
    assert (res.dyn_cpu_w, res.dyn_gpu_w) == (cpu_w, gpu_w)  # the simulator's tables are these


def test_voltage_is_flat_below_the_knee_and_capped_above_max() -> None:
    dom = load_board("orin-nano").cpu
    v = dom.voltage
    hz = np.asarray([0.0, v.knee_hz, (v.knee_hz + v.max_hz) / 2, v.max_hz, 2 * v.max_hz])
    np.testing.assert_allclose(
        voltage_v(dom, hz), [v.v_min_v, v.v_min_v, (v.v_min_v + v.v_max_v) / 2, v.v_max_v, v.v_max_v]
    )


def test_segment_power_scalar_and_array_agree() -> None:
    board = load_board("orin-nano")
    act_c, act_g = stage_activity(board, 3.0, 5.0, 10.0)
    assert act_c == pytest.approx(0.75 * 0.3 + board.cpu.idle_activity)
    assert act_g == pytest.approx(0.5 + board.gpu.idle_activity)
    one = segment_power(board, 2.0, 3.0, act_c, act_g, 0.2, 70.0, 80.0, math.exp)
    many = segment_power(
        board, np.full(4, 2.0), np.full(4, 3.0), act_c, act_g, 0.2, np.full(4, 70.0), np.full(4, 80.0), np.exp
    )
    for a, b in zip(one, many):
        np.testing.assert_allclose(b, a, rtol=1e-14)
    leak_c = board.cpu.static_w_25c * math.exp(board.cpu.leak_per_c * 45.0)
    assert one[0] == pytest.approx(2.0 * act_c + leak_c, rel=1e-12)
    assert one[2] == pytest.approx(board.base_w + 0.2 * board.mem_active_w)


@pytest.mark.parametrize("ops", [SCALAR, ARRAY], ids=["scalar", "array"])
def test_throttle_poll_steps_down_while_hot_and_up_once_below_the_hysteresis(ops) -> None:  # noqa: ANN001
    th = load_board("orin-nano").throttling.model_copy(update={"hysteresis_c": 3.0, "steps_per_poll": 2})

    def poll(cap: int, hottest: float, polls: int = 1) -> int:
        wrap = (lambda x: np.asarray([x])) if ops is ARRAY else (lambda x: x)
        c, g = throttle_poll(th, wrap(cap), wrap(cap), wrap(hottest), 99.0, wrap(polls), 10, 5, ops)
        c, g = (int(np.asarray(c).ravel()[0]), int(np.asarray(g).ravel()[0]))
        assert g == min(c, 4) or cap > 4
        return c

    assert poll(9, 100.0) == 7  # above trip: steps_per_poll down per poll
    assert poll(9, 100.0, polls=3) == 3
    assert poll(1, 100.0) == 0  # never below the lowest clock
    assert poll(5, 97.0) == 5  # inside the hysteresis band: hold
    assert poll(5, 95.0) == 6 and poll(5, 95.0, polls=2) == 7  # below trip - hysteresis: one up per poll
    assert poll(9, 20.0) == 9  # never above the top clock
    assert poll(5, 100.0, polls=0) == 5


def test_capped_polls_and_fan_curve() -> None:
    assert not is_capped(9, 4, 10, 5) and is_capped(8, 4, 10, 5) and is_capped(9, 3, 10, 5)
    np.testing.assert_array_equal(is_capped(np.array([9, 8]), np.array([4, 4]), 10, 5), [False, True])
    assert polls_crossed(0.2, 0.9, 1.0, SCALAR) == 0 and polls_crossed(0.9, 1.0, 1.0, SCALAR) == 1
    assert polls_crossed(0.5, 3.5, 1.0, SCALAR) == 3
    np.testing.assert_array_equal(polls_crossed(np.array([0.5, 0.9]), np.array([0.7, 2.1]), 1.0, ARRAY), [0, 2])
    fan = load_board("orin-nano").fan
    assert fan_auto_level(fan, fan.on_c - 1, SCALAR) == 0
    assert fan_auto_level(fan, fan.full_c + 1, SCALAR) == FAN_LEVELS - 1


def test_slope_filter_has_its_time_constant_whatever_the_sampling() -> None:
    for dt in (0.01, 0.1, 0.5):
        f = ObservationFilters(tmax_prev=50.0)
        t = 0.0
        while t < TEMP_SLOPE_TAU_S - 1e-9:
            t += dt
            f.update_slope(50.0 + 2.0 * t, dt)  # a 2 C/s ramp
        assert f.slope == pytest.approx(2.0 * (1 - math.exp(-1)), rel=1e-9)
    f = ObservationFilters(tmax_prev=50.0)
    f.update_slope(51.0, 0.0)  # no time passed: zero weight, no division by zero
    assert f.slope == 0.0 and f.tmax_prev == 51.0


def test_latency_ema_first_frame_sets_it() -> None:
    f = ObservationFilters()
    assert f.update_latency(40.0, first=True) == 40.0
    assert f.update_latency(50.0, first=False) == pytest.approx(40.0 + LATENCY_EMA_ALPHA * 10.0)
    assert f.update_latency(99.0, first=False, done=False) == pytest.approx(41.0)


def test_filters_on_arrays_equal_filters_on_floats() -> None:
    rng = np.random.default_rng(0)
    n, steps = 4, 200
    temps = 60 + np.cumsum(rng.normal(0, 0.3, size=(steps, n)), axis=0)
    dts = rng.uniform(0.005, 0.2, size=(steps, n))
    lats = rng.uniform(20, 60, size=(steps, n))
    done = rng.random((steps, n)) < 0.5
    batch = ObservationFilters(
        np.zeros(n), np.full(n, 60.0), np.zeros(n), exp=np.exp, maximum=np.maximum, where=np.where
    )
    singles = [ObservationFilters(tmax_prev=60.0) for _ in range(n)]
    frames = np.zeros(n, dtype=int)
    for k in range(steps):
        batch.update_slope(temps[k], dts[k])
        batch.update_latency(lats[k], frames == 0, done[k])
        for i, f in enumerate(singles):
            f.update_slope(float(temps[k, i]), float(dts[k, i]))
            if done[k, i]:
                f.update_latency(float(lats[k, i]), first=frames[i] == 0)
        frames += done[k]
        np.testing.assert_allclose(batch.slope, [f.slope for f in singles], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(batch.lat_ema, [f.lat_ema for f in singles])
