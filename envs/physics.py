"""Board physics rules, written once: power drawn and the firmware's step-wise throttle.

Every rule is a function over :mod:`lotus.envs.ops` (or an injected ``exp``), so the same code
serves one board (Python floats, ``ops=SCALAR``) and ``n`` boards (numpy arrays ``[n]``,
``ops=ARRAY``). Its users are :class:`lotus.envs.core.SimCore` (single env and batch) and the
daemon's simulated board :class:`lotus.runtime.hw.sim.SimBoard`; no formula here is repeated there.
The heat flow itself is :mod:`lotus.envs.thermal`.

Power of a segment at constant clocks and activity (W)::

    P_cpu = dyn_cpu[f] * act_cpu + static_cpu * exp(leak_cpu * (T_cpu - 25 C))
    P_gpu = dyn_gpu[f] * act_gpu + static_gpu * exp(leak_gpu * (T_gpu - 25 C))
    P_sink = base + mem_active * mem_fraction

with ``dyn[f] = cores * C_eff * V(f)^2 * f`` the dynamic power per unit activity (cores: CPU
cores online, 1 for the GPU). No gymnasium here: the daemon imports this on the base install.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lotus.core.units import khz_to_hz
from lotus.envs.board import Actuation, BoardProfile, ClockDomain, Fan, PowerMode, Sensors, Throttling
from lotus.envs.ops import normal_pair
from lotus.envs.thermal import FAN_LEVELS

Value = Any  # float for one board, ndarray [n] for a batch
Ops = Any  # lotus.envs.ops.SCALAR (floats) or lotus.envs.ops.ARRAY (arrays [n])

CPU_THREADS_SHARE = 0.75  # share of online cores a stage's CPU-bound part keeps busy (assumption)
LEAKAGE_REF_C = 25.0  # temperature at which ``static_w_25c`` is given, C
F_PER_NF = 1e-9


# -- power -------------------------------------------------------------------------------------
def voltage_v(domain: ClockDomain, hz: np.ndarray) -> np.ndarray:
    """Supply voltage (V) at clocks ``hz`` (Hz, any shape): flat at ``v_min_v`` up to the knee, then linear."""
    v = domain.voltage
    frac = np.clip((hz - v.knee_hz) / (v.max_hz - v.knee_hz), 0.0, 1.0)
    return v.v_min_v + (v.v_max_v - v.v_min_v) * frac


def switching_power_w(domain: ClockDomain, hz: np.ndarray, cores: int = 1) -> np.ndarray:
    """Dynamic power per unit activity (W) at clocks ``hz`` (Hz): ``cores * C_eff * V(f)^2 * f``."""
    return cores * domain.c_eff_nf * F_PER_NF * voltage_v(domain, hz) ** 2 * hz


def dynamic_power_table(board: BoardProfile, mode: PowerMode) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Dynamic power per unit activity (W) at each CPU clock and each GPU clock of ``mode``.

    :return: ``(cpu_w, gpu_w)``, indexed like ``mode.cpu_freqs_khz`` and ``mode.gpu_freqs_hz``;
        the CPU entries count every core online in the mode.
    """
    cpu_hz = khz_to_hz(np.asarray(mode.cpu_freqs_khz, dtype=float))
    gpu_hz = np.asarray(mode.gpu_freqs_hz, dtype=float)
    cpu_w = switching_power_w(board.cpu, cpu_hz, mode.cpu_online)
    gpu_w = switching_power_w(board.gpu, gpu_hz)
    return tuple(float(x) for x in cpu_w), tuple(float(x) for x in gpu_w)


def stage_activity(board: BoardProfile, cpu_part: Value, gpu_part: Value, total: Value) -> tuple[Value, Value]:
    """Activity factors ``(act_cpu, act_gpu)`` of work split into CPU-, GPU- (and memory-) bound parts.

    ``cpu_part / total`` and ``gpu_part / total`` are the shares of the work's time bound by each
    (any common unit: ms, or shares with ``total=1``). The CPU-bound part keeps
    :data:`CPU_THREADS_SHARE` of the online cores busy; the idle (clock-gated) activity adds on top.
    """
    act_c = CPU_THREADS_SHARE * cpu_part / total + board.cpu.idle_activity
    act_g = gpu_part / total + board.gpu.idle_activity
    return act_c, act_g


def segment_power(
    board: BoardProfile,
    dyn_cpu_w: Value,
    dyn_gpu_w: Value,
    act_cpu: Value,
    act_gpu: Value,
    mem_frac: Value,
    cpu_temp_c: Value,
    gpu_temp_c: Value,
    exp: Any,
) -> tuple[Value, Value, Value]:
    """Node powers ``(P_cpu, P_gpu, P_sink)`` (W) of a segment at constant clocks and activity.

    :param dyn_cpu_w: the :func:`dynamic_power_table` entry of the applied CPU clock, W.
    :param dyn_gpu_w: the entry of the applied GPU clock, W.
    :param act_cpu: CPU activity factor (0..1), e.g. from :func:`stage_activity`.
    :param act_gpu: GPU activity factor.
    :param mem_frac: share of the segment that is memory-bound (DRAM/EMC power), 0..1.
    :param cpu_temp_c: CPU die temperature at the segment's start, C (leakage).
    :param gpu_temp_c: GPU die temperature at the segment's start, C.
    :param exp: ``math.exp`` (floats) or ``np.exp`` (arrays ``[n]``).
    """
    cpu, gpu = board.cpu, board.gpu  # leakage inline: this runs twice per simulated stage
    p_c = dyn_cpu_w * act_cpu + cpu.static_w_25c * exp(cpu.leak_per_c * (cpu_temp_c - LEAKAGE_REF_C))
    p_g = dyn_gpu_w * act_gpu + gpu.static_w_25c * exp(gpu.leak_per_c * (gpu_temp_c - LEAKAGE_REF_C))
    p_s = board.base_w + board.mem_active_w * mem_frac
    return p_c, p_g, p_s


# -- firmware ------------------------------------------------------------------------------------
def polls_crossed(t0_s: Value, t1_s: Value, poll_s: float, ops: Ops) -> Value:
    """Thermal-zone polls (every ``poll_s`` seconds of board time) falling in ``(t0_s, t1_s]`` (ints)."""
    return ops.to_int(ops.floor(t1_s / poll_s) - ops.floor(t0_s / poll_s))


def throttle_poll(
    throttling: Throttling,
    cap_cpu: Value,
    cap_gpu: Value,
    hottest_c: Value,
    prev_c: Value,
    trip_c: Value,
    polls: Value,
    n_cpu: int,
    n_gpu: int,
    ops: Ops,
) -> tuple[Value, Value]:
    """The step-wise thermal governor over ``polls`` polls: new clock caps ``(cap_cpu, cap_gpu)``.

    Caps are indices into the clock tables (``n - 1``: uncapped). Per poll, while the hotter die
    (``hottest_c``, C) is above ``trip_c`` and not falling (``>= prev_c``, the reading at the last
    poll; Linux ``step_wise`` with the BPMP zone's trend) the caps of the domains in
    ``throttling.cooling`` drop ``steps_per_poll`` steps; above the trip but falling they hold; once
    below ``trip_c - hysteresis_c`` they rise one step. Every poll of a segment sees the
    temperature at the segment's end.
    """
    above = hottest_c > trip_c
    if throttling.trend:
        above = above & (hottest_c >= prev_c)
    hot = ops.where(above, polls * throttling.steps_per_poll, 0)
    cool = ops.where(hottest_c < trip_c - throttling.hysteresis_c, polls, 0)
    cooling = throttling.cooling
    if "cpu" in cooling:
        cap_cpu = ops.clip(cap_cpu - hot + cool, 0, n_cpu - 1)
    if "gpu" in cooling:
        cap_gpu = ops.clip(cap_gpu - hot + cool, 0, n_gpu - 1)
    return cap_cpu, cap_gpu


def is_capped(cap_cpu: Value, cap_gpu: Value, n_cpu: int, n_gpu: int) -> Value:
    """Whether firmware throttling caps a clock (a bool, or a mask ``[n]``)."""
    return (cap_cpu < n_cpu - 1) | (cap_gpu < n_gpu - 1)


def fan_auto_level(fan: Fan, hottest_c: Value, ops: Ops) -> Value:
    """Fan level (0..``FAN_LEVELS - 1``) the fan curve gives at hotter-die temperature ``hottest_c``, C."""
    temps, pwms = fan.curve()
    pwm = np.interp(hottest_c, temps, pwms)
    return ops.rint(pwm * (FAN_LEVELS - 1))


# -- sensors and actuation -------------------------------------------------------------------------
SENSOR_STREAM = 0x5EC5_0C00_0000_0001  # RNG stream of the thermal-zone reading noise


def sensor_noise(key: Value, sample: Value, ops: Ops) -> tuple[Value, Value]:
    """Standard-normal pair behind reading ``sample`` of the board keyed ``key`` (CPU, GPU; before ``noise_c``).

    A counter-based pair of ``(key ^ SENSOR_STREAM, sample)``, so a reading depends only on the
    board's key and the sample index (the single env and the batch agree).
    """
    return normal_pair(key ^ SENSOR_STREAM, sample, ops)


def sensor_reading(sensors: Sensors, true_c: Value, noise: Value, ops: Ops) -> Value:
    """A thermal-zone reading (C) at true temperature ``true_c``: noise, then quantised.

    :param noise: a standard normal (from :func:`sensor_noise`), scaled by ``sensors.noise_c``.
    """
    if sensors.noise_c > 0:
        true_c = true_c + sensors.noise_c * noise
    if sensors.quantum_c > 0:
        q = sensors.quantum_c
        true_c = ops.floor(true_c / q + 0.5) * q
    return true_c


def sensor_readings(
    sensors: Sensors,
    cpu_c: Value,
    gpu_c: Value,
    key: Value,
    sample: Value,
    ops: Ops,
) -> tuple[Value, Value]:
    """Readings (C) of the two dies' thermal zones at true ``cpu_c``/``gpu_c`` (:func:`sensor_reading`)."""
    n_c, n_g = sensor_noise(key, sample, ops) if sensors.noise_c > 0 else (0.0, 0.0)
    return sensor_reading(sensors, cpu_c, n_c, ops), sensor_reading(sensors, gpu_c, n_g, ops)


def switch_stall_s(actuation: Actuation, cpu_changed: Value, gpu_changed: Value) -> Value:
    """Time (s) a decision's clock changes stall the pipeline: the sum of the domains that changed."""
    return cpu_changed * (actuation.cpu_switch_us * 1e-6) + gpu_changed * (actuation.gpu_switch_us * 1e-6)
