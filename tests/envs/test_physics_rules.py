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
    sensor_readings,
    stage_activity,
    switch_stall_s,
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
    th = load_board("orin-nano").throttling.model_copy(
        update={"hysteresis_c": 3.0, "steps_per_poll": 2, "cooling": ["cpu", "gpu"], "trend": False}
    )

    def poll(cap: int, hottest: float, polls: int = 1, rules=th, prev: float = 0.0) -> tuple[int, int]:  # noqa: ANN001
        wrap = (lambda x: np.asarray([x])) if ops is ARRAY else (lambda x: x)
        caps = wrap(cap), wrap(min(cap, 4))
        c, g = throttle_poll(rules, *caps, wrap(hottest), wrap(prev), 99.0, wrap(polls), 10, 5, ops)
        return int(np.asarray(c).ravel()[0]), int(np.asarray(g).ravel()[0])

    assert poll(9, 100.0) == (7, 2)  # above trip: steps_per_poll down per poll, both domains
    assert poll(9, 100.0, polls=3)[0] == 3
    assert poll(1, 100.0) == (0, 0)  # never below the lowest clock
    assert poll(5, 97.0) == (5, 4)  # inside the hysteresis band: hold
    assert poll(5, 95.0)[0] == 6 and poll(5, 95.0, polls=2)[0] == 7  # below trip - hysteresis: one up per poll
    assert poll(9, 20.0) == (9, 4)  # never above the top clock
    assert poll(5, 100.0, polls=0) == (5, 4)
    # the T234 cooling map: only the CPU clusters are cooling devices of the sw-throttle trip
    cpu_only = th.model_copy(update={"cooling": ["cpu"]})
    assert poll(9, 100.0, rules=cpu_only) == (7, 4)
    # step_wise with the zone trend: above the trip it deepens while not falling, holds while falling
    trend = th.model_copy(update={"trend": True})
    assert poll(9, 100.0, rules=trend, prev=99.5) == (7, 2)  # rising
    assert poll(9, 100.0, rules=trend, prev=100.0) == (7, 2)  # flat counts as not falling
    assert poll(9, 100.0, rules=trend, prev=100.5) == (9, 4)  # falling above the trip: hold
    assert poll(5, 95.0, rules=trend, prev=94.0)[0] == 6  # below trip - hysteresis: release, whatever the trend


def test_sensor_readings_are_quantised_noisy_and_reproducible() -> None:
    sensors = load_board("orin-nano").sensors
    assert sensors.quantum_c == 0.03125  # 1/32 C, as Orin's zones read
    key, true_c = 12345, 71.2345
    reads = np.array([sensor_readings(sensors, true_c, true_c, key, k, SCALAR) for k in range(4000)])
    np.testing.assert_allclose(np.round(reads / sensors.quantum_c) * sensors.quantum_c, reads, atol=1e-12)
    assert reads.mean() == pytest.approx(true_c, abs=0.01)
    assert reads[:, 0].std() == pytest.approx(math.hypot(sensors.noise_c, sensors.quantum_c / math.sqrt(12)), rel=0.1)
    assert abs(np.corrcoef(reads[:, 0], reads[:, 1])[0, 1]) < 0.1  # CPU and GPU noise independent
    again = sensor_readings(sensors, true_c, true_c, key, 17, SCALAR)
    assert tuple(reads[17]) == again  # a reading depends only on (key, sample)
    batch = sensor_readings(sensors, np.full(3, true_c), np.full(3, true_c), np.full(3, key, dtype=np.uint64),
                            np.array([17, 18, 19], dtype=np.uint64), ARRAY)  # fmt: skip
    np.testing.assert_allclose(np.stack(batch, axis=1), reads[17:20], rtol=0, atol=1e-12)
    exact = sensors.model_copy(update={"quantum_c": 0.0, "noise_c": 0.0})
    assert sensor_readings(exact, true_c, 50.0, key, 3, SCALAR) == (true_c, 50.0)


def test_clock_change_stall_adds_the_switch_latency_of_each_domain_that_changed() -> None:
    act = load_board("orin-nano").actuation
    assert act.cpu_switch_us == 300  # TEGRA_CPUFREQ_TRANSITION_LATENCY
    assert switch_stall_s(act, False, False) == 0.0
    assert switch_stall_s(act, True, False) == pytest.approx(300e-6)
    assert switch_stall_s(act, True, True) == pytest.approx((act.cpu_switch_us + act.gpu_switch_us) * 1e-6)
    np.testing.assert_allclose(switch_stall_s(act, np.array([True, False]), np.array([True, True])),
                               [600e-6, 300e-6])  # fmt: skip


def test_capped_polls_and_fan_curve() -> None:
    assert not is_capped(9, 4, 10, 5) and is_capped(8, 4, 10, 5) and is_capped(9, 3, 10, 5)
    np.testing.assert_array_equal(is_capped(np.array([9, 8]), np.array([4, 4]), 10, 5), [False, True])
    assert polls_crossed(0.2, 0.9, 1.0, SCALAR) == 0 and polls_crossed(0.9, 1.0, 1.0, SCALAR) == 1
    assert polls_crossed(0.5, 3.5, 1.0, SCALAR) == 3
    np.testing.assert_array_equal(polls_crossed(np.array([0.5, 0.9]), np.array([0.7, 2.1]), 1.0, ARRAY), [0, 2])
    fan = load_board("orin-nano").fan
    assert fan_auto_level(fan, fan.on_c - 1, SCALAR) == 0
    assert fan_auto_level(fan, fan.full_c + 1, SCALAR) == FAN_LEVELS - 1
    # the p3767 quiet profile's knot: PWM 187/255 at 74 C, i.e. level round(0.733 * 4) = 3
    assert fan.curve() == ((35.0, 74.0, 95.0), (0.0, 0.733, 1.0))
    assert fan_auto_level(fan, 74.0, SCALAR) == 3
    np.testing.assert_array_equal(fan_auto_level(fan, np.array([20.0, 54.5, 74.0, 99.0]), ARRAY), [0, 1, 3, 4])


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
