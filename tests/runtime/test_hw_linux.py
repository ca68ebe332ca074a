"""The generic linux backend against the fake x86 tree: cpufreq, thermal, RAPL, detection order."""

from __future__ import annotations

from pathlib import Path

import pytest

from lotus.core.errors import ConfigError, DeviceError
from lotus.runtime.hw import BACKENDS, detect_board, register_backend
from lotus.runtime.hw.fake_sysfs import FakeKernel
from lotus.runtime.hw.linux import detect

RAPL = "sys/class/powercap/intel-rapl:0"


def test_detect_linux(x86: Path) -> None:
    board = detect_board(x86)
    assert board is not None and board.backend == "linux"
    assert list(board.domains) == ["cpu0", "cpu1"]
    assert board.domains["cpu0"].available() == (800000, 1600000, 2200000, 2800000, 3400000)  # sorted
    desc = board.describe()
    assert desc.model == "Fake x86 CPU @ 3.40GHz"
    assert [z.name for z in desc.zones] == ["x86_pkg_temp", "acpitz"]
    assert {r.name: r.has_energy for r in desc.rails} == {"package-0": True, "core": True}
    assert "no controllable GPU clock found" in desc.notes
    assert desc.fan is None and desc.nvpmodel is None
    snap = board.snapshot()
    assert snap.temps_c == {"x86_pkg_temp": 52.0, "acpitz": 40.0}
    assert snap.freqs == {"cpu0": 3400000, "cpu1": 3400000}


def test_userspace_when_offered_else_minmax(x86: Path) -> None:
    kernel = FakeKernel(x86)
    board = detect(x86, io=kernel)
    assert board is not None
    board.set_clocks(cpu=1600000)  # ondemand governor: min/max pinning
    assert board.domains["cpu1"].limits() == (1600000, 1600000)
    assert board.take_control() == ["cpu0: userspace", "cpu1: userspace"]
    board.set_clocks(cpu=2200000)
    for policy in ("policy0", "policy1"):
        base = x86 / "sys/devices/system/cpu/cpufreq" / policy
        assert (base / "scaling_setspeed").read_text().strip() == "2200000"
        assert (base / "scaling_cur_freq").read_text().strip() == "2200000"
    # a driver without userspace (intel_pstate) stays on min/max pinning
    for policy in ("policy0", "policy1"):
        (x86 / "sys/devices/system/cpu/cpufreq" / policy / "scaling_available_governors").write_text(
            "performance powersave\n"
        )
        (x86 / "sys/devices/system/cpu/cpufreq" / policy / "scaling_governor").write_text("powersave\n")
    board = detect(x86, io=kernel)
    assert board is not None
    assert board.take_control() == ["cpu0: minmax", "cpu1: minmax"]


def test_no_frequency_table_uses_hardware_range(x86: Path) -> None:
    for policy in ("policy0", "policy1"):
        (x86 / "sys/devices/system/cpu/cpufreq" / policy / "scaling_available_frequencies").unlink()
    board = detect(x86)
    assert board is not None
    assert board.domains["cpu0"].available() == (800000, 3400000)
    board.domains["cpu0"].set(1234000)  # any value in range is allowed without a table
    assert board.domains["cpu0"].limits() == (1234000, 1234000)
    with pytest.raises(DeviceError, match="outside"):
        board.domains["cpu0"].set(4000000)


def test_rapl_energy_and_wraparound(x86: Path) -> None:
    (x86 / RAPL / "max_energy_range_uj").write_text("1000000\n")
    (x86 / RAPL / "energy_uj").write_text("999000\n")
    board = detect(x86)
    assert board is not None
    first = board.snapshot()
    assert first.energy_j["package-0"] == 0.0 and "package-0" not in first.power_w
    (x86 / RAPL / "energy_uj").write_text("500\n")  # wrapped: 1000 uJ to the top, then 500
    second = board.snapshot()
    assert second.energy_j["package-0"] == pytest.approx(1500e-6)
    assert second.power_w["package-0"] > 0
    (x86 / RAPL / "energy_uj").write_text("2500\n")
    third = board.snapshot()
    assert third.energy_j["package-0"] == pytest.approx(3500e-6)


def test_detection_order_and_prefer(x86: Path, tmp_path: Path) -> None:
    assert detect_board(tmp_path / "empty") is None
    with pytest.raises(DeviceError, match="jetson"):
        detect_board(x86, prefer="jetson")
    with pytest.raises(ConfigError, match="Did you mean 'linux'"):
        detect_board(x86, prefer="linx")
    board = detect_board(x86, prefer="linux")
    assert board is not None and board.backend == "linux"


def test_registry_accepts_a_sim_entry(tmp_path: Path) -> None:
    sentinel = object()
    register_backend("sim", lambda root: sentinel)  # type: ignore[arg-type,return-value]
    try:
        assert detect_board(tmp_path, prefer="sim") is sentinel
        assert detect_board(tmp_path) is None  # "sim" is never auto-detected
    finally:
        del BACKENDS["sim"]
