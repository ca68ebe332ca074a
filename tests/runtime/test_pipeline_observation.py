"""Observation parity (simulator vs daemon), the sim board, governor modes, and the config loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lotus.core.errors import ConfigError, PolicyError
from lotus.core.schema import encode_observation
from lotus.envs.core import Resolved, SimCore
from lotus.envs.scenario import Scenario
from lotus.runtime.config import load_settings
from lotus.runtime.governor_loop import GovernorController
from lotus.runtime.hw.base import Snapshot
from lotus.runtime.hw.sim import SimBoard
from lotus.runtime.notify import Notifier
from lotus.runtime.observation import ObservationBuilder, action_table, board_trip_c, sensor_view


def _fake_board_snapshot(raw: dict, t: float) -> Snapshot:
    """What a board backend would report in the simulator's state (names as on a Jetson)."""
    return Snapshot(
        t_mono_s=t,
        freqs={"cpu0": raw["cpu_khz"], "gpu": raw["gpu_hz"]},
        temps_c={"cpu-thermal": raw["cpu_temp_c"], "gpu-thermal": raw["gpu_temp_c"]},
        power_w={"VDD_IN": raw["power_w"]},
        energy_j={},
        cpu_util_pct=None,
        gpu_load_pct=raw["gpu_util"] * 100.0,
        fan_pwm=round(raw["fan_pwm"] * 255),
    )


@pytest.mark.parametrize("fps", [30.0, 0.0])
def test_daemon_observation_matches_simulator(fps: float) -> None:
    res = Resolved.from_scenario(Scenario(fps=fps, init_temp_c=60.0))
    core = SimCore(res)
    core.reset_board(0, np.random.default_rng(3))
    builder = ObservationBuilder(res.actions, trip_c=core.trip, budget_w=res.budget_w)
    builder.update_slope(core.t, max(core.th_c, core.th_g) + core.amb)  # the sim starts its filter here
    rng = np.random.default_rng(0)
    for _ in range(60):
        action = int(rng.integers(res.actions.n))
        out = core.step(*res.actions.split(action))
        raw_sim = core.raw_readings()
        # the daemon's side: sensors after the stage, then its own filters and bookkeeping
        view = sensor_view(_fake_board_snapshot(raw_sim, core.t), res.actions)
        builder.update_slope(core.t, max(view.cpu_temp_c, view.gpu_temp_c))
        stage2_next = core.phase == 1
        if out["frame_done"]:
            builder.frame_done(out["latency_ms"], core.stage1_ms, int(raw_sim["proposals"]))
        raw_daemon = builder.raw(
            view, stage2_next=stage2_next, proposals=int(raw_sim["proposals"]),
            max_proposals=res.workload.max_proposals, deadline_ms=res.deadline_ms,
            frame_elapsed_ms=raw_sim["frame_elapsed_ms"], next_frame_in_ms=raw_sim["next_frame_in_ms"],
            cpu_util=raw_sim["cpu_util"], gpu_util=view.gpu_util, throttled=bool(raw_sim["throttled"]),
            stage1_ms=core.stage1_ms if stage2_next else None,
        )  # fmt: skip
        np.testing.assert_allclose(builder.encode(raw_daemon)[0], encode_observation(raw_sim), rtol=0, atol=1e-6)
    assert builder.frames == core.frame and builder.lat_ema == pytest.approx(core.lat_ema, abs=1e-9)


def test_sim_board_heats_throttles_and_recovers() -> None:
    now = [0.0]
    # a 10 C room: the trip (50 C) lies between the idle (~49 C) and flat-out (~70 C) steady states
    board = SimBoard(clock=lambda: now[0], trip_c=50.0, ambient_c=10.0)
    top = board.domains["cpu0"].available()[-1]
    board.set_clocks(cpu=top, gpu=board.domains["gpu"].available()[-1])
    idle_power = board.snapshot().power_w["VDD_IN"]
    board.note_activity(True)
    for _ in range(900):
        now[0] += 1.0
        snap = board.snapshot()
    assert snap.power_w["VDD_IN"] > idle_power
    assert board.firmware_throttled() and board.throttle_events >= 1
    assert snap.freqs["cpu0"] < top  # the firmware capped the clock the governor asked for
    assert snap.energy_j["VDD_IN"] > 900 * idle_power
    board.note_activity(False)
    board.set_clocks(cpu=board.domains["cpu0"].available()[0], gpu=board.domains["gpu"].available()[0])
    for _ in range(1500):
        now[0] += 1.0
        board.snapshot()
    assert not board.firmware_throttled()


def test_sim_board_is_registered_and_described() -> None:
    from lotus.runtime.hw.base import BACKENDS, load_backend
    from lotus.runtime.hw.sim import ensure_registered

    ensure_registered()  # importing runtime.hw.sim registers it; hw tests may have reset the registry
    assert "sim" in BACKENDS
    board = load_backend("sim")(Path("/"))
    desc = board.describe()
    assert desc.backend == "sim" and board_trip_c(board) == 99.0
    table = action_table(board)
    assert table.n == 100 and table.cpu_khz[-1] == 1510400


def test_jetson_sensor_view(tmp_path: Path) -> None:
    from lotus.runtime.hw.fake_sysfs import write_fake_sysfs
    from lotus.runtime.hw.jetson import detect

    board = detect(write_fake_sysfs(tmp_path / "jp6", "jetpack6"))
    assert board is not None
    view = sensor_view(board.snapshot(), action_table(board))
    assert view.cpu_temp_c == 45.5 and view.gpu_temp_c == 44.0
    assert view.power_w == pytest.approx(5.5) and view.cpu_khz == 1510400 and view.gpu_hz == 624750000
    assert board_trip_c(board) == 99.0


def test_governor_modes_and_policy_switch() -> None:
    board = SimBoard()
    gov = GovernorController(board, action_table(board), "powersave", "shadow")
    obs = np.zeros((1, 17), dtype=np.float32)
    d = gov.decide(obs)
    assert d.action == 0 and not d.applied and board.domains["cpu0"].current() == 1510400
    gov.set_mode("active")
    d = gov.decide(obs)
    assert d.applied and board.domains["cpu0"].current() == 115200 and d.decision_s < 0.01
    gov.set_policy("performance")
    assert gov.decide(obs).action == 99
    gov.set_mode("off")
    assert gov.decide(obs).action is None
    with pytest.raises(PolicyError):
        gov.set_policy("nonsense")
    with pytest.raises(PolicyError):
        gov.set_mode("sideways")
    drl = GovernorController(board, action_table(board), "drl", "active")
    assert drl.decide(obs).action is not None  # shipped policy or its stock fallback


def test_config_sources_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("server:\n  port: 9000\ngovernor:\n  policy: stock\n")
    monkeypatch.setenv("LOTUS_SERVER__PORT", "9100")
    s = load_settings(path, {"governor": {"mode": "shadow"}})
    assert s.server.port == 9100 and s.governor.policy == "stock" and s.governor.mode == "shadow"
    path.write_text("server:\n  port: 9000\n  prot: 1\nboard: {backend: magic}\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path)
    msg = str(err.value)
    assert "\n" not in msg and "server.prot: unknown key" in msg and "board.backend" in msg
    path.write_text("server: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_settings(path)
    token = tmp_path / "token"
    token.write_text("abcdefghijk\n")
    assert load_settings(None, {"governor": {"token_file": str(token)}}).governor.resolve_token() == "abcdefghijk"
    with pytest.raises(ConfigError, match="token_file"):
        load_settings(None, {"governor": {"token_file": str(tmp_path / "missing")}})


def test_check_config_command(tmp_path: Path) -> None:
    import typer

    from lotus.runtime.cli.serve import check_config

    app = typer.Typer()
    app.command()(check_config)
    path = tmp_path / "c.yaml"
    path.write_text("board:\n  backend: sim\n")
    result = CliRunner().invoke(app, [str(path)])
    assert result.exit_code == 0 and "ok" in result.output


def test_notifier_without_and_with_socket(tmp_path: Path) -> None:
    import socket

    assert not Notifier({}).ready("x")
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        n = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
        assert n.watchdog_s == 2.0 and n.watchdog_due()
        assert n.ping() and sock.recv(100) == b"WATCHDOG=1"
        assert not n.watchdog_due()


def test_failed_clock_write_falls_back_to_shadow() -> None:
    from lotus.core.errors import DeviceError

    board = SimBoard()
    released = []

    def broken(cpu: int | None = None, gpu: int | None = None) -> None:
        raise DeviceError("write /sys/...: Permission denied")

    board.set_clocks = broken  # type: ignore[method-assign]
    gov = GovernorController(board, action_table(board), "powersave", "active", on_control=released.append)
    d = gov.decide(np.zeros((1, 17), dtype=np.float32))
    assert not d.applied and gov.mode == "shadow" and released == [False] and gov.status()["clock_write_errors"] == 1
