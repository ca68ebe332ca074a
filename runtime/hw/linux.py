"""Generic Linux backend: cpufreq policies, thermal zones, RAPL energy, hwmon fan (no GPU clock)."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from lotus.runtime.hw.base import ControllableDomain
from lotus.runtime.hw.board import HwBoard, PowerSource
from lotus.runtime.hw.cpu import CpuLoad, discover_cpu_domains
from lotus.runtime.hw.fan import Fan
from lotus.runtime.hw.power import Rapl
from lotus.runtime.hw.sysfs import SysfsIO
from lotus.runtime.hw.thermal import ThermalZones


class HostParts(TypedDict):
    """The generic parts of a Linux host, as keyword arguments of :class:`HwBoard`."""

    domains: dict[str, ControllableDomain]
    thermal: ThermalZones | None
    power: list[PowerSource]
    cpu_load: CpuLoad | None
    fan: Fan | None


def parts(io: SysfsIO) -> HostParts | None:
    """The generic parts (also reused by the NVML backend), or None without any cpufreq policy."""
    domains: dict[str, ControllableDomain] = {**discover_cpu_domains(io)}
    if not domains:
        return None
    rapl = Rapl(io)
    cpu_load = CpuLoad(io)
    thermal = ThermalZones(io)
    power: list[PowerSource] = [rapl] if len(rapl) else []
    return {
        "domains": domains,
        "thermal": thermal if len(thermal) else None,
        "power": power,
        "cpu_load": cpu_load if cpu_load.available() else None,
        "fan": Fan.discover(io),
    }


def detect(sysfs_root: Path = Path("/"), io: SysfsIO | None = None) -> HwBoard | None:
    """A generic Linux board when at least one cpufreq policy exists, else None.

    CPU clocks use the ``userspace`` governor after :meth:`HwBoard.take_control` when the driver
    offers it (acpi-cpufreq), else min/max pinning (intel_pstate, amd-pstate).
    """
    io = io or SysfsIO(sysfs_root)
    found = parts(io)
    if found is None:
        return None
    return HwBoard("linux", io, **found)
