"""The nvml backend with pynvml missing, failing, or replaced by a small fake module."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from lotus.core.errors import DeviceError
from lotus.runtime.hw import detect_board, nvml


class FakeNvmlError(Exception):
    pass


def fake_pynvml(init_error: bool = False) -> types.ModuleType:
    mod = types.ModuleType("pynvml")
    mod.NVMLError = FakeNvmlError  # type: ignore[attr-defined]
    mod.NVML_CLOCK_GRAPHICS, mod.NVML_TEMPERATURE_GPU = 0, 0  # type: ignore[attr-defined]
    mod.calls = []  # type: ignore[attr-defined]

    def init() -> None:
        if init_error:
            raise FakeNvmlError("Driver Not Loaded")

    def power(handle: object) -> int:
        raise FakeNvmlError("Not Supported")  # a sensor that fails must simply be absent

    functions = {
        "nvmlInit": init,
        "nvmlShutdown": lambda: mod.calls.append("shutdown"),  # type: ignore[attr-defined]
        "nvmlDeviceGetCount": lambda: 1,
        "nvmlDeviceGetHandleByIndex": lambda i: f"gpu{i}",
        "nvmlDeviceGetSupportedMemoryClocks": lambda h: [405, 5001],
        "nvmlDeviceGetSupportedGraphicsClocks": lambda h, mem: [1980, 1500, 210],
        "nvmlDeviceGetClockInfo": lambda h, kind: 1500,
        "nvmlDeviceGetTemperature": lambda h, kind: 61,
        "nvmlDeviceGetPowerUsage": power,
        "nvmlDeviceGetTotalEnergyConsumption": lambda h: 123456,
        "nvmlDeviceGetUtilizationRates": lambda h: types.SimpleNamespace(gpu=37),
        "nvmlDeviceSetGpuLockedClocks": lambda h, lo, hi: mod.calls.append(("lock", lo, hi)),  # type: ignore
        "nvmlDeviceResetGpuLockedClocks": lambda h: mod.calls.append("reset"),  # type: ignore[attr-defined]
    }
    for name, fn in functions.items():
        setattr(mod, name, fn)
    return mod


def test_pynvml_missing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    assert nvml.load_pynvml() is None
    assert nvml.detect(tmp_path) is None


def test_nvml_init_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error=True))
    assert nvml.detect(tmp_path) is None


def test_nvml_board_reads_and_gates_writes(monkeypatch: pytest.MonkeyPatch, x86: Path) -> None:
    fake = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    board = nvml.detect(x86)
    assert board is not None and board.backend == "nvml"
    assert list(board.domains) == ["cpu0", "cpu1", "gpu"]  # host CPUs come along
    gpu = board.domains["gpu"]
    assert gpu.available() == (210_000_000, 1_500_000_000, 1_980_000_000)
    snap = board.snapshot()
    assert snap.freqs["gpu"] == 1_500_000_000 and snap.temps_c["gpu"] == 61.0
    assert snap.gpu_load_pct == 37.0 and snap.energy_j["gpu"] == 0.0
    assert "gpu" not in snap.power_w and "x86_pkg_temp" in snap.temps_c
    with pytest.raises(DeviceError, match="allow_set=True"):
        board.set_clocks(gpu=1_500_000_000)
    board.close()
    assert "shutdown" in fake.calls

    board = nvml.detect(x86, allow_set=True)
    assert board is not None
    board.set_clocks(gpu=1_500_000_000)
    assert ("lock", 1500, 1500) in fake.calls
    assert board.domains["gpu"].state_record()["reset_locked_clocks"] is True


def test_fake_root_never_detects_the_host_gpu(monkeypatch: pytest.MonkeyPatch, x86: Path) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml())
    board = detect_board(x86)
    assert board is not None and board.backend == "linux"
    forced = detect_board(x86, prefer="nvml")
    assert forced is not None and forced.backend == "nvml"


def test_nvml_board_gives_locked_clocks_back(monkeypatch: pytest.MonkeyPatch, x86: Path) -> None:
    fake = fake_pynvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    board = nvml.detect(x86, allow_set=True)
    assert board is not None
    assert board.take_control()[-1] == "gpu: nvml-locked"
    assert board.release_control().ok and "reset" not in fake.calls  # nothing locked yet: nothing to reset
    board.take_control()
    board.set_clocks(gpu=1_500_000_000)
    with pytest.raises(DeviceError, match="outside"):
        board.domains["gpu"].set(3_000_000_000)
    with pytest.raises(DeviceError, match="min"):
        board.domains["gpu"].set_limits(1_980_000_000, 210_000_000)
    report = board.release_control()
    assert report.ok and "gpu: NVML locked clocks reset" in report.restored
    board.set_clocks(gpu=210_000_000)  # locked again outside take_control: close() still resets
    fake.calls.clear()
    board.close()
    assert fake.calls == ["reset", "shutdown"]  # reset before NVML is shut down
    assert board.firmware_throttled() is None
