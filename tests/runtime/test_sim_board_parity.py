"""The daemon's simulated board and observation filters against the simulator's own code.

``SimBoard`` (``lotus serve``'s fallback board) and ``ObservationBuilder`` (the daemon's features)
must give what ``SimCore`` gives for the same schedule or readings: same power, energy,
temperatures and throttle caps; same temperature slope and latency EMA.
"""

from __future__ import annotations

import inspect
import subprocess
import sys

import numpy as np
import pytest

from lotus.core.errors import DeviceError
from lotus.envs.core import Resolved, SimCore
from lotus.envs.scenario import Scenario
from lotus.runtime.hw import sim
from lotus.runtime.hw.sim import SimBoard
from lotus.runtime.observation import ObservationBuilder

TICK_S = 0.25  # simulated seconds per tick: one SimBoard segment, poll boundaries fall on ticks


def _hot_schedule(n_cpu: int, n_gpu: int) -> list[tuple[bool, int, int]]:
    """(busy, cpu index, gpu index) per tick: 18 min near flat out, then 12 min mostly idle at low clocks."""
    rng = np.random.default_rng(7)
    hot = [(bool(rng.random() < 0.9), n_cpu - 1 - int(rng.integers(2)), n_gpu - 1) for _ in range(4320)]
    cool = [(bool(rng.random() < 0.05), int(rng.integers(2)), 0) for _ in range(2880)]
    return hot + cool


@pytest.mark.parametrize(("batched", "time_scale", "tol"), [(False, 1.0, 0.0), (False, 4.0, 0.0), (True, 1.0, 1e-9)])
def test_sim_board_matches_simulator_physics_over_a_hot_run(batched: bool, time_scale: float, tol: float) -> None:
    now = [0.0]
    board = SimBoard(clock=lambda: now[0], time_scale=time_scale, trip_c=52.0, ambient_c=10.0)
    res = Resolved.from_scenario(Scenario(board="orin-nano", ambient_c=10.0, trip_c=52.0, fan="off"))
    core = SimCore(res, n=2 if batched else 1, batched=batched)
    for i in range(core.n):
        core.reset_board(i, np.random.default_rng(i))
    cpu, gpu = board.domains["cpu0"].available(), board.domains["gpu"].available()
    sim_rec, board_rec = [], []
    for busy, ci, gi in _hot_schedule(len(cpu), len(gpu)):
        board.set_clocks(cpu=cpu[ci], gpu=gpu[gi])
        board.note_activity(busy)
        act_c, act_g, mem = board.activity()
        fc, fg = np.minimum(ci, core.cap_c), np.minimum(gi, core.cap_g)
        energy = core.segment(TICK_S, fc, fg, act_c, act_g, mem)
        now[0] += TICK_S / time_scale
        snap = board.snapshot()
        applied = np.minimum(ci, core.cap_c)  # after this segment's poll, as the snapshot shows it
        t = {"cpu-thermal": board.th_c + board.amb, "gpu-thermal": board.th_g + board.amb}  # true, not the readings
        t["soc0-thermal"] = snap.temps_c["soc0-thermal"]
        sim_temps = (core.th_c + core.amb, core.th_g + core.amb, core.th_s + core.amb)
        sim_rec.append(np.broadcast_arrays(*sim_temps, energy / TICK_S, core.energy, core.cap_c, core.cap_g, applied))
        board_temps = (t["cpu-thermal"], t["gpu-thermal"], t["soc0-thermal"])
        board_rest = (snap.power_w["VDD_IN"], snap.energy_j["VDD_IN"], board._cap_c, board._cap_g)
        board_rec.append([*board_temps, *board_rest, cpu.index(snap.freqs["cpu0"])])
    sim_arr = np.asarray(sim_rec, dtype=float).reshape(len(sim_rec), 8, -1)  # [ticks, 8, boards]
    board_arr = np.asarray(board_rec)[:, :, None]  # [ticks, 8, 1]
    np.testing.assert_allclose(
        sim_arr[:, :5], np.broadcast_to(board_arr[:, :5], sim_arr[:, :5].shape), rtol=tol, atol=tol
    )
    np.testing.assert_array_equal(sim_arr[:, 5:], np.broadcast_to(board_arr[:, 5:], sim_arr[:, 5:].shape))
    assert board_arr[:, 5].min() < len(cpu) - 3  # the run throttled several steps deep ...
    assert not board.firmware_throttled()  # ... and recovered


def test_sim_board_integrates_uneven_wall_clock_ticks_like_the_simulator() -> None:
    """Ticks of any length: SimBoard cuts them at polls (and 0.25 s); the energy is the same."""
    now = [0.0]
    board = SimBoard(clock=lambda: now[0], trip_c=55.0)
    board.set_clocks(cpu=board.domains["cpu0"].available()[-1], gpu=board.domains["gpu"].available()[-1])
    board.note_activity(True)
    res = Resolved.from_scenario(Scenario(trip_c=55.0))
    core = SimCore(res)
    core.reset_board(0, np.random.default_rng(0))
    act_c, act_g, mem = board.activity()
    top_c, top_g = res.actions.n_cpu - 1, res.actions.n_gpu - 1
    rng = np.random.default_rng(1)
    for _ in range(300):
        now[0] += float(rng.uniform(0.01, 3.0))
        board.snapshot()
        # the simulator, cut where SimBoard cuts: at the tick, at each poll, every MAX_SEGMENT_S
        while core.t < now[0] - 1e-9:
            nxt_poll = (np.floor(core.t / core.poll_s) + 1.0) * core.poll_s
            dur = min(now[0], nxt_poll, core.t + sim.MAX_SEGMENT_S) - core.t
            core.segment(dur, min(top_c, core.cap_c), min(top_g, core.cap_g), act_c, act_g, mem)
        assert core.energy == pytest.approx(board.energy_j, rel=1e-9)
        assert core.th_c + core.amb == pytest.approx(board.th_c + board.amb, abs=1e-9)
        assert (core.cap_c, core.cap_g) == (board._cap_c, board._cap_g)
    assert board.throttle_events >= 1 and board.firmware_throttled()


@pytest.mark.parametrize("fps", [30.0, 0.0])
def test_daemon_filters_equal_simulator_filters(fps: float) -> None:
    """Fed the simulator's readings stage by stage, the daemon's slope and EMA equal SimCore's exactly."""
    res = Resolved.from_scenario(Scenario(fps=fps, init_temp_c=70.0))
    core = SimCore(res)
    core.reset_board(0, np.random.default_rng(5))
    builder = ObservationBuilder(res.actions, trip_c=core.trip, budget_w=res.budget_w)
    builder.update_slope(core.t, max(core.th_c + core.amb, core.th_g + core.amb))  # reset primes the filter
    rng = np.random.default_rng(2)
    for _ in range(400):
        out = core.step(*res.actions.split(int(rng.integers(res.actions.n))))
        raw = core.raw_readings()
        slope = builder.update_slope(core.t, max(raw["cpu_temp_c"], raw["gpu_temp_c"]))
        if out["frame_done"]:
            builder.frame_done(out["latency_ms"], core.stage1_ms, int(raw["proposals"]))
        assert slope == raw["temp_slope_c_per_s"]
        assert builder.lat_ema == raw["latency_ema_ms"]
    assert builder.frames == core.frame > 100 and builder.slope != 0.0


def test_batched_simulator_filters_match_per_board_daemon_filters() -> None:
    res = Resolved.from_scenario(Scenario(init_temp_c=70.0))
    n = 3
    core = SimCore(res, n=n, batched=True)
    for i in range(n):
        core.reset_board(i, np.random.default_rng(10 + i))
    builders = [ObservationBuilder(res.actions, trip_c=float(core.trip[i]), budget_w=res.budget_w) for i in range(n)]
    for i, b in enumerate(builders):
        b.update_slope(float(core.t[i]), float(core.tmax_prev[i]))
    rng = np.random.default_rng(3)
    for _ in range(300):
        out = core.step(rng.integers(0, res.actions.n_cpu, n), rng.integers(0, res.actions.n_gpu, n))
        raw = core.raw_readings()
        for i, b in enumerate(builders):
            b.update_slope(float(core.t[i]), max(float(raw["cpu_temp_c"][i]), float(raw["gpu_temp_c"][i])))
            if out["frame_done"][i]:
                b.frame_done(float(out["latency_ms"][i]), float(core.stage1_ms[i]), int(raw["proposals"][i]))
        np.testing.assert_allclose([b.slope for b in builders], raw["temp_slope_c_per_s"], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose([b.lat_ema for b in builders], raw["latency_ema_ms"], rtol=1e-12, atol=1e-12)


def test_sim_board_readings_go_through_the_shared_sensor_model() -> None:
    """The daemon's sim thermal zones read like the simulator's: 1/32 C steps, noise around the true value."""
    from lotus.envs.ops import SCALAR
    from lotus.envs.physics import sensor_readings

    now = [100.0]
    board = SimBoard(clock=lambda: now[0], ambient_c=30.0)
    board.note_activity(True)
    reads = []
    for _ in range(400):
        now[0] += 0.1
        snap = board.snapshot()
        reads.append(snap.temps_c["cpu-thermal"] - (board.th_c + board.amb))
        sample = int(board._t // board.profile.sensors.update_s)
        expected = sensor_readings(
            board.profile.sensors, board.th_c + board.amb, board.th_g + board.amb, 0, sample, SCALAR
        )
        assert (snap.temps_c["cpu-thermal"], snap.temps_c["gpu-thermal"]) == expected
    q = board.profile.sensors.quantum_c
    assert np.std(reads) == pytest.approx(board.profile.sensors.noise_c, rel=0.25, abs=q)


def test_sim_board_holds_no_copy_of_the_physics() -> None:
    source = inspect.getsource(sim)
    for formula in ("c_eff_nf", "leak_per_c", "static_w_25c", "steps_per_poll", "hysteresis_c", "voltage"):
        assert formula not in source, f"runtime/hw/sim.py re-implements physics ({formula})"


def test_sim_clock_domain_errors_are_device_errors() -> None:
    board = SimBoard()
    cpu = board.domains["cpu0"]
    with pytest.raises(DeviceError, match="is not one of"):
        cpu.set(123)
    with pytest.raises(DeviceError, match="min"):
        cpu.set_limits(cpu.available()[-1], cpu.available()[0])
    with pytest.raises(DeviceError):
        board.set_clocks(gpu=1)
    assert board.firmware_throttled() is False


def test_sim_board_import_pulls_no_training_stack() -> None:
    code = (
        "import sys, lotus.runtime.hw.sim as s\n"
        "b = s.SimBoard(); b.note_activity(True); b.snapshot(); b.firmware_throttled()\n"
        "bad = [m for m in ('gymnasium', 'torch', 'stable_baselines3', 'matplotlib') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def test_sim_board_satisfies_the_board_protocol_and_gives_control_back() -> None:
    from lotus.runtime.hw.base import Board

    board = SimBoard()
    assert isinstance(board, Board)
    assert board.release_control().restored == []  # nothing taken, nothing owed
    assert board.take_control() == ["cpu0: userspace", "gpu: userspace"]
    board.take_control()  # again while in control: the first saved governors are kept
    report = board.release_control()
    assert report.ok and report.restored == ["cpu0: governor schedutil", "gpu: governor nvhost_podgov"]
    assert board.domains["cpu0"].governor() == "schedutil"
    board.close()  # idempotent
