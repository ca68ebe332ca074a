"""Jetson backend: cpufreq clusters, GPU devfreq, Tegra thermal zones, INA3221, fan, nvpmodel."""

from __future__ import annotations

import logging
from pathlib import Path

from lotus.runtime.hw.base import ControllableDomain
from lotus.runtime.hw.board import HwBoard
from lotus.runtime.hw.cpu import CpuLoad, discover_cpu_domains
from lotus.runtime.hw.fan import Fan
from lotus.runtime.hw.gpu import GpuLoad, discover_gpu_domain, find_gpu_load
from lotus.runtime.hw.nvpmodel import NvpModel
from lotus.runtime.hw.power import Ina3221
from lotus.runtime.hw.sysfs import SysfsIO
from lotus.runtime.hw.thermal import ThermalZones

log = logging.getLogger(__name__)


def detect(sysfs_root: Path = Path("/"), io: SysfsIO | None = None) -> HwBoard | None:
    """A Jetson board when a Tegra GPU devfreq node and Tegra thermal zones are present, else None.

    :param sysfs_root: root of the tree to probe (``/`` on the board, a fake tree in tests).
    :param io: the sysfs access layer (tests pass a :class:`~runtime.hw.fake_sysfs.FakeKernel`).
    """
    io = io or SysfsIO(sysfs_root)
    gpu = discover_gpu_domain(io)
    thermal = ThermalZones(io)
    if gpu is None or not thermal.is_tegra():
        log.debug("not a Jetson: gpu devfreq=%s tegra zones=%s", gpu is not None, thermal.is_tegra())
        return None
    domains: dict[str, ControllableDomain] = {**discover_cpu_domains(io), "gpu": gpu}
    load_path = find_gpu_load(io, gpu.directory)
    cpu_load = CpuLoad(io)
    power = Ina3221(io)
    nvp = NvpModel(io)
    return HwBoard(
        "jetson",
        io,
        domains,
        thermal=thermal,
        power=[power] if len(power) else [],
        cpu_load=cpu_load if cpu_load.available() else None,
        gpu_load=GpuLoad(load_path) if load_path else None,
        fan=Fan.discover(io),
        nvpmodel=nvp if nvp.available() else None,
    )
