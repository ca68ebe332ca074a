"""NVML backend (discrete NVIDIA GPUs, Jetson Thor): GPU sensors via pynvml, CPU via cpufreq.

Setting GPU clocks uses NVML locked clocks, which needs root and changes a machine-wide setting,
so it is off unless the board is built with ``allow_set=True``; otherwise a set raises DeviceError.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from lotus.core.errors import DeviceError
from lotus.runtime.hw.base import ClockDomainInfo, RailInfo
from lotus.runtime.hw.board import HwBoard
from lotus.runtime.hw.linux import HostParts, parts
from lotus.runtime.hw.sysfs import SysfsIO

log = logging.getLogger(__name__)


def load_pynvml() -> ModuleType | None:
    """pynvml initialised, or None when the package, the driver or a GPU is missing."""
    try:
        import pynvml
    except ImportError:
        log.debug("pynvml not installed (pip install nvidia-ml-py)")
        return None
    try:
        pynvml.nvmlInit()
        if pynvml.nvmlDeviceGetCount() < 1:
            pynvml.nvmlShutdown()
            return None
    except Exception as exc:  # NVMLError_LibraryNotFound, DriverNotLoaded, ... or a broken install
        log.debug("NVML unavailable: %s", exc)
        return None
    return pynvml


class NvmlGpu:
    """GPU ``index`` as a clock domain (Hz) plus temperature, power, energy and load sensors."""

    kind, unit = "gpu", "Hz"

    def __init__(self, nvml: ModuleType, index: int = 0, allow_set: bool = False, name: str = "gpu") -> None:
        self.nvml, self.index, self.allow_set, self.name = nvml, index, allow_set, name
        self.handle = nvml.nvmlDeviceGetHandleByIndex(index)
        self._available = self._clock_table()
        self._energy0: float | None = None
        self._locked = False  # this process locked the clocks: release_control() resets them

    def _call(self, fn: str, *args: Any) -> Any:
        try:
            return getattr(self.nvml, fn)(self.handle, *args)
        except self.nvml.NVMLError as exc:
            log.debug("%s failed: %s", fn, exc)
            return None

    def _clock_table(self) -> tuple[int, ...]:
        mem = self._call("nvmlDeviceGetSupportedMemoryClocks") or []
        if not mem:
            return ()
        clocks = self._call("nvmlDeviceGetSupportedGraphicsClocks", max(mem)) or []
        return tuple(sorted({int(mhz) * 1_000_000 for mhz in clocks}))

    # clock domain
    def available(self) -> tuple[int, ...]:
        return self._available

    def current(self) -> int | None:
        mhz = self._call("nvmlDeviceGetClockInfo", self.nvml.NVML_CLOCK_GRAPHICS)
        return None if mhz is None else int(mhz) * 1_000_000

    def limits(self) -> tuple[int | None, int | None]:
        return (self._available[0], self._available[-1]) if self._available else (None, None)

    def governor(self) -> str | None:
        return None

    def governors(self) -> tuple[str, ...]:
        return ()

    def set_governor(self, name: str) -> None:
        raise DeviceError(f"NVML GPU {self.index} has no governor to set")

    def set(self, freq: int) -> None:
        table = self._available
        if table and not table[0] <= freq <= table[-1]:
            raise DeviceError(f"{self.name}: {freq} Hz outside [{table[0]}, {table[-1]}] (NVML GPU {self.index})")
        self.set_limits(freq, freq)

    def set_limits(self, lo: int, hi: int) -> None:
        if not self.allow_set:
            raise DeviceError(
                f"NVML GPU {self.index}: setting clocks is disabled; build the board with allow_set=True "
                "(it locks clocks machine-wide and needs root)"
            )
        if lo > hi:
            raise DeviceError(f"{self.name}: min {lo} > max {hi} Hz (NVML GPU {self.index})")
        try:
            self.nvml.nvmlDeviceSetGpuLockedClocks(self.handle, lo // 1_000_000, hi // 1_000_000)
        except self.nvml.NVMLError as exc:
            raise DeviceError(
                f"NVML GPU {self.index}: cannot lock clocks to [{lo}, {hi}] Hz ({exc}); run as root"
            ) from exc
        self._locked = True

    def take_control(self, original: Mapping[str, Any] | None = None) -> str:
        """Nothing to switch (NVML has no governor); a stale record that locked clocks is owed a reset."""
        if original is not None and original.get("kind") == "nvml" and original.get("reset_locked_clocks"):
            self._locked = True
        return self.method

    def release_control(self) -> str | None:
        """Reset the locked clocks if this process locked them; None otherwise."""
        if not self._locked:
            return None
        try:
            self.nvml.nvmlDeviceResetGpuLockedClocks(self.handle)
        except self.nvml.NVMLError as exc:
            raise DeviceError(f"NVML GPU {self.index}: cannot reset locked clocks ({exc}); run as root") from exc
        self._locked = False
        return f"{self.name}: NVML locked clocks reset"

    def close(self) -> None:
        """Nothing to close here (the board shuts NVML down after giving control back)."""

    @property
    def method(self) -> str:
        return "nvml-locked" if self.allow_set else "none"

    def info(self) -> ClockDomainInfo:
        lo, hi = self.limits()
        return ClockDomainInfo(
            self.name,
            "gpu",
            "Hz",
            f"nvml:{self.index}",
            self._available,
            self.current(),
            lo,
            hi,
            None,
            (),
            writable=self.allow_set,
            method=self.method,
        )

    def state_record(self) -> dict[str, Any]:
        return {"kind": "nvml", "name": self.name, "index": self.index, "reset_locked_clocks": self.allow_set}

    # sensors
    def read(self) -> tuple[dict[str, float], dict[str, float]]:
        """(power W, energy J since open) as a power source."""
        power, energy = {}, {}
        mw = self._call("nvmlDeviceGetPowerUsage")
        if mw is not None:
            power[self.name] = mw / 1000.0
        mj = self._call("nvmlDeviceGetTotalEnergyConsumption")
        if mj is not None:
            self._energy0 = mj if self._energy0 is None else self._energy0
            energy[self.name] = (mj - self._energy0) / 1000.0
        return power, energy

    def temps(self) -> dict[str, float]:
        temp = self._call("nvmlDeviceGetTemperature", self.nvml.NVML_TEMPERATURE_GPU)
        return {} if temp is None else {self.name: float(temp)}

    def load(self) -> float | None:
        util = self._call("nvmlDeviceGetUtilizationRates")
        return None if util is None else float(util.gpu)

    def rails(self) -> list[RailInfo]:
        return [RailInfo(self.name, "nvml", f"nvml:{self.index}", True)]


class _Temps:
    def __init__(self, gpu: NvmlGpu) -> None:
        self.read = gpu.temps


class _Load:
    def __init__(self, gpu: NvmlGpu) -> None:
        self.read = gpu.load

    def close(self) -> None:
        pass


class _Power:
    def __init__(self, gpu: NvmlGpu) -> None:
        self.read, self.info = gpu.read, gpu.rails

    def close(self) -> None:
        pass


def detect(
    sysfs_root: Path = Path("/"), io: SysfsIO | None = None, index: int = 0, allow_set: bool = False
) -> HwBoard | None:
    """An NVML GPU (plus the host's cpufreq/thermal/RAPL parts), or None without NVML or a GPU."""
    nvml = load_pynvml()
    if nvml is None:
        return None
    try:
        gpu = NvmlGpu(nvml, index=index, allow_set=allow_set)
    except Exception as exc:  # bad index, GPU fell off the bus
        log.debug("NVML GPU %d unusable: %s", index, exc)
        nvml.nvmlShutdown()
        return None
    io = io or SysfsIO(sysfs_root)
    host: HostParts = parts(io) or {"domains": {}, "thermal": None, "power": [], "cpu_load": None, "fan": None}
    host["domains"] = {**host["domains"], "gpu": gpu}
    host["power"] = [*host["power"], _Power(gpu)]
    return HwBoard("nvml", io, gpu_load=_Load(gpu), extra_temps=[_Temps(gpu)], on_close=nvml.nvmlShutdown, **host)
