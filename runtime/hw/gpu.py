"""Tegra GPU: devfreq discovery across JetPack layouts, and the GPU load attribute."""

from __future__ import annotations

from pathlib import Path

from lotus.runtime.hw.clock import DEVFREQ, SysfsClockDomain
from lotus.runtime.hw.sysfs import CachedReader, SysfsIO

# Known devfreq directories (JetPack 5 / L4T 35 first, then JetPack 6 / L4T 36); the
# /sys/class/devfreq scan below catches renamed nodes on other releases.
GPU_DEVFREQ_CANDIDATES = (
    "/sys/devices/gpu.0/devfreq/17000000.ga10b",
    "/sys/devices/17000000.ga10b/devfreq/17000000.ga10b",
    "/sys/devices/platform/17000000.gpu/devfreq/17000000.gpu",
    "/sys/devices/platform/bus@0/17000000.gpu/devfreq/17000000.gpu",
)
DEVFREQ_CLASS = "/sys/class/devfreq"
GPU_DEVFREQ_TAG = "17000000"  # T234 (Orin) GPU unit address
# GPU load (per-mille) lives on the GPU device, two levels above its devfreq directory.
GPU_LOAD_CANDIDATES = ("/sys/devices/gpu.0/load", "/sys/devices/platform/gpu.0/load")


def probe_paths() -> list[str]:
    """Everything discovery looks at, for ``lotus boards --diagnose``."""
    return [*GPU_DEVFREQ_CANDIDATES, DEVFREQ_CLASS + f"/*{GPU_DEVFREQ_TAG}*", *GPU_LOAD_CANDIDATES]


def find_gpu_devfreq(io: SysfsIO) -> Path | None:
    """The GPU devfreq directory (it must hold ``available_frequencies``), or None."""
    for candidate in GPU_DEVFREQ_CANDIDATES:
        path = io.path(candidate)
        if (path / "available_frequencies").is_file():
            return path
    for path in io.glob(DEVFREQ_CLASS + "/*"):
        if GPU_DEVFREQ_TAG in path.name and (path / "available_frequencies").is_file():
            return path
    return None


def find_gpu_load(io: SysfsIO, devfreq_dir: Path | None) -> Path | None:
    candidates = []
    if devfreq_dir is not None:
        candidates += [devfreq_dir / "device" / "load", devfreq_dir.parent.parent / "load"]
    candidates += [io.path(p) for p in GPU_LOAD_CANDIDATES]
    return next((p for p in candidates if p.is_file()), None)


def discover_gpu_domain(io: SysfsIO) -> SysfsClockDomain | None:
    path = find_gpu_devfreq(io)
    if path is None:
        return None
    return SysfsClockDomain("gpu", "gpu", "Hz", path, DEVFREQ, io)


class GpuLoad:
    """GPU busy percentage from the Tegra ``load`` attribute (per-mille: 500 means 50 %)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader = CachedReader(path)

    def read(self) -> float | None:
        value = self._reader.read_int()
        return None if value is None else value / 10.0

    def close(self) -> None:
        self._reader.close()
