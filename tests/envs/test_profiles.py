"""Board and workload profiles: shipped files load, tables are right, bad files fail clearly."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest

from lotus.core.errors import ConfigError, ProfileError
from lotus.core.schema import ActionTable
from lotus.envs import TwoStageDetectorEnv, available_boards, available_workloads, load_board, load_workload

BOARDS = ["orin-nano", "orin-nx", "tx2"]
WORKLOADS = ["frcnn-lite", "ppocr-v4"]


def test_shipped_profiles_are_listed() -> None:
    assert set(BOARDS) <= set(available_boards())
    assert set(WORKLOADS) <= set(available_workloads())


@pytest.mark.parametrize("name", BOARDS)
def test_every_shipped_board_loads_with_ascending_tables(name: str) -> None:
    board = load_board(name)
    assert board.name == name
    assert board.default_mode in board.modes
    for mode in board.modes.values():
        assert np.all(np.diff(mode.cpu_freqs_khz) > 0)
        assert np.all(np.diff(mode.gpu_freqs_hz) > 0)
    assert board.throttling.shutdown_c > board.throttling.trip_c


@pytest.mark.parametrize("name", WORKLOADS)
def test_every_shipped_workload_loads(name: str) -> None:
    wl = load_workload(name)
    assert wl.name == name
    assert 0 < wl.mean_proposals <= wl.max_proposals
    assert wl.default_deadline_ms > 0


@pytest.mark.parametrize("board", BOARDS)
@pytest.mark.parametrize("workload", WORKLOADS)
def test_every_board_workload_pair_simulates(board: str, workload: str) -> None:
    env = TwoStageDetectorEnv(board=board, workload=workload, episode_frames=50)
    obs, _ = env.reset(seed=1)
    mode = load_board(board).mode()
    assert env.action_space.n == len(mode.cpu_freqs_khz) * len(mode.gpu_freqs_hz)
    for _ in range(20):
        obs, reward, terminated, _, info = env.step(env.action_space.n - 1)
        assert np.isfinite(reward) and not terminated
        assert env.observation_space.contains(obs)
    assert info["latency_ms"] > 0 and info["energy_j"] > 0


LOADED_C = 60.0  # die temperature of a loaded board for the budget check (P 2 tegrastats: ~54 C)
MODES = [(b, m) for b in BOARDS for m in load_board(b).modes]


def _power(board: str, mode: str, act_cpu: float, act_gpu: float, mem: float, temp_c: float) -> float:
    import math

    from lotus.envs.physics import dynamic_power_table, segment_power

    prof = load_board(board).in_mode(mode)
    dyn_c, dyn_g = dynamic_power_table(prof, prof.mode(mode))
    return float(sum(segment_power(prof, dyn_c[-1], dyn_g[-1], act_cpu, act_gpu, mem, temp_c, temp_c, math.exp)))


@pytest.mark.parametrize(("board", "mode"), MODES)
def test_top_clocks_with_every_unit_busy_stay_within_the_mode_budget(board: str, mode: str) -> None:
    """nvpmodel holds a mode's budget with its caps: flat out at the caps must not exceed it."""
    budget = load_board(board).mode(mode).budget_w
    flat_out = _power(board, mode, 1.0, 1.0, 1.0, LOADED_C)
    assert flat_out <= budget, (board, mode, flat_out)
    assert flat_out > 0.4 * budget  # and the budget is not a loose bound either


def test_orin_nano_idle_matches_the_measured_vdd_in() -> None:
    """Idle VDD_IN 5.4-5.5 W (physics-sources 2), dies warm at ~45 C; the 7W mode idles lower."""
    nano = load_board("orin-nano")
    idle = _power("orin-nano", "15W", nano.cpu.idle_activity, nano.gpu.idle_activity, 0.0, 45.0)
    assert 5.2 <= idle <= 5.6
    assert _power("orin-nano", "7W", nano.cpu.idle_activity, nano.gpu.idle_activity, 0.0, 45.0) < idle - 0.8


def test_orin_nano_heatsink_time_constant_matches_the_soak() -> None:
    """The 30-min soak's dominant time constant is ~125 s at full fan (physics-sources 1)."""
    from lotus.envs.thermal import coefficients

    nano = load_board("orin-nano")
    assert nano.thermal.c_sink_j_per_k >= 60.0  # several times the old 12 J/K
    tau_fan = 1.0 / min(coefficients(nano, 1.0, 1.0)[27:30])
    assert 90.0 < tau_fan < 160.0


def test_7w_mode_gates_half_the_gpu() -> None:
    """TPC_PG_MASK 252 leaves 2 of 4 TPCs: half the GPU's power per clock and half its throughput."""
    nano = load_board("orin-nano")
    assert nano.mode("7W").gpu_tpc_fraction == 0.5
    assert nano.in_mode("7W").gpu.c_eff_nf == pytest.approx(0.5 * nano.gpu.c_eff_nf)
    slow = TwoStageDetectorEnv(power_mode="7W", fps=0, decision="frame")
    assert slow.res.gpu_speed_ghz == pytest.approx(tuple(0.5 * f for f in slow.res.gpu_ghz))


def test_t234_sw_throttle_cools_only_the_cpu() -> None:
    for name in ("orin-nano", "orin-nx"):
        assert load_board(name).throttling.cooling == ["cpu"]


def test_orin_nano_15w_tables() -> None:
    board = load_board("orin-nano")
    mode = board.mode("15W")
    assert board.default_mode == "15W"
    assert len(mode.cpu_freqs_khz) == 20
    assert len(mode.gpu_freqs_hz) == 5
    assert max(mode.cpu_freqs_khz) == 1510400
    assert max(mode.gpu_freqs_hz) == 624750000
    assert ActionTable.from_mode(mode).n == 100
    assert TwoStageDetectorEnv().action_space.n == 100


def test_orin_nano_maxn_super_gpu_tops_at_1020_mhz() -> None:
    mode = load_board("orin-nano").mode("MAXN_SUPER")
    assert max(mode.gpu_freqs_hz) == 1_020_000_000
    env = TwoStageDetectorEnv(power_mode="MAXN_SUPER")
    assert env.actions.gpu_hz[-1] == 1_020_000_000


def test_unknown_power_mode_is_a_profile_error() -> None:
    with pytest.raises(ProfileError, match="no power mode"):
        load_board("orin-nano").mode("99W")


def test_unknown_board_suggests_closest_name() -> None:
    with pytest.raises(ProfileError) as exc:
        load_board("orin-nan")
    msg = str(exc.value)
    assert "did you mean 'orin-nano'" in msg
    assert isinstance(exc.value, ConfigError)


def test_unknown_workload_suggests_closest_name() -> None:
    with pytest.raises(ProfileError, match="did you mean 'frcnn-lite'"):
        load_workload("frcnn-lit")


def test_unknown_board_in_env_constructor_raises_profile_error() -> None:
    with pytest.raises(ProfileError, match="orin-nan"):
        TwoStageDetectorEnv(board="orin-nan")


def test_missing_profile_file_is_a_profile_error(tmp_path: Path) -> None:
    missing = tmp_path / "nothere.yaml"
    with pytest.raises(ProfileError, match="nothere.yaml"):
        load_board(missing)


BAD_INDENT = """\
name: broken
description: bad indentation below
default_mode: 15W
modes:
  15W:
    cpu_online: 6
   budget_w: 15.0
"""


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken-board.yaml"
    path.write_text(BAD_INDENT)
    with pytest.raises(ProfileError) as exc:
        load_board(path)
    msg = str(exc.value)
    assert "broken-board.yaml" in msg
    m = re.search(r"line (\d+)", msg)
    assert m is not None, msg
    # the offending line is 7 (PyYAML may point at the line or the one after the bad key)
    assert int(m.group(1)) in (6, 7, 8), msg


def test_malformed_workload_yaml_names_file(tmp_path: Path) -> None:
    path = tmp_path / "broken-wl.yaml"
    path.write_text("name: x\nstage1: {cpu_mcycles: 1\n")
    with pytest.raises(ProfileError, match=r"broken-wl\.yaml.*line \d+"):
        load_workload(path)


def test_yaml_that_is_not_a_mapping_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ProfileError, match="mapping"):
        load_board(path)


@pytest.mark.parametrize(
    ("section", "field"),
    [(None, "base_w"), ("thermal", "c_cpu_j_per_k"), ("throttling", "trip_c"), ("fan", "on_c")],
)
def test_board_missing_field_is_named(nano_yaml: dict, write_yaml, section: str | None, field: str) -> None:  # noqa: ANN001
    data = copy.deepcopy(nano_yaml)
    (data[section] if section else data).pop(field)
    path = write_yaml(data, f"missing-{field}.yaml")
    dotted = f"{section}.{field}" if section else field
    with pytest.raises(ProfileError, match=re.escape(dotted)) as exc:
        load_board(path)
    assert str(path.name) in str(exc.value)


@pytest.mark.parametrize(("section", "field"), [(None, "bogus_w"), ("cpu", "turbo"), ("thermal", "r_extra_k_per_w")])
def test_board_extra_field_is_named(nano_yaml: dict, write_yaml, section: str | None, field: str) -> None:  # noqa: ANN001
    data = copy.deepcopy(nano_yaml)
    (data[section] if section else data)[field] = 1.0
    path = write_yaml(data, f"extra-{field}.yaml")
    dotted = f"{section}.{field}" if section else field
    with pytest.raises(ProfileError, match=re.escape(dotted)):
        load_board(path)


@pytest.mark.parametrize("field", ["jitter_sigma", "max_proposals"])
def test_workload_missing_field_is_named(frcnn_yaml: dict, write_yaml, field: str) -> None:  # noqa: ANN001
    data = copy.deepcopy(frcnn_yaml)
    data.pop(field)
    with pytest.raises(ProfileError, match=field):
        load_workload(write_yaml(data, f"wl-missing-{field}.yaml"))


def test_workload_extra_field_is_named(frcnn_yaml: dict, write_yaml) -> None:  # noqa: ANN001
    data = copy.deepcopy(frcnn_yaml)
    data["stage1"]["fpga_mcycles"] = 3.0
    with pytest.raises(ProfileError, match=r"stage1\.fpga_mcycles"):
        load_workload(write_yaml(data, "wl-extra.yaml"))


@pytest.mark.parametrize("table", ["cpu_freqs_khz", "gpu_freqs_hz"])
def test_non_ascending_clock_table_is_rejected(nano_yaml: dict, write_yaml, table: str) -> None:  # noqa: ANN001
    data = copy.deepcopy(nano_yaml)
    values = data["modes"]["15W"][table]
    values[1], values[2] = values[2], values[1]
    with pytest.raises(ProfileError, match=table):
        load_board(write_yaml(data, f"unsorted-{table}.yaml"))


def test_duplicate_clock_entry_is_rejected(nano_yaml: dict, write_yaml) -> None:  # noqa: ANN001
    data = copy.deepcopy(nano_yaml)
    values = data["modes"]["15W"]["cpu_freqs_khz"]
    values[3] = values[2]
    with pytest.raises(ProfileError, match="cpu_freqs_khz"):
        load_board(write_yaml(data, "dup.yaml"))


def test_default_mode_must_exist(nano_yaml: dict, write_yaml) -> None:  # noqa: ANN001
    data = copy.deepcopy(nano_yaml)
    data["default_mode"] = "40W"
    with pytest.raises(ProfileError, match="default_mode"):
        load_board(write_yaml(data, "badmode.yaml"))


def test_valid_custom_profile_path_loads(nano_yaml: dict, write_yaml) -> None:  # noqa: ANN001
    data = copy.deepcopy(nano_yaml)
    data["name"] = "my-nano"
    data["thermal"]["r_sink_amb_passive_k_per_w"] = 5.0
    board = load_board(write_yaml(data, "my-nano.yaml"))
    assert board.name == "my-nano"
    assert board.thermal.r_sink_amb_passive_k_per_w == 5.0
