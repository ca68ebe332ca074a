"""Power rails: INA3221 (hwmon and the older iio driver) and RAPL energy counters.

Each source's ``read()`` returns ``(power_w, energy_j)``: instantaneous watts per rail, and
cumulative joules since the source was opened where the hardware counts energy (RAPL).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from lotus.runtime.hw.base import RailInfo
from lotus.runtime.hw.sysfs import CachedReader, SysfsIO

INA3221_HWMON = "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"
INA3221_IIO = ("/sys/bus/i2c/drivers/ina3221x/*/iio:device*", "/sys/bus/i2c/drivers/ina3221x/*/iio_device")
RAPL_DIR = "/sys/class/powercap"


class _Rail:
    __slots__ = ("name", "volts", "amps", "watts")

    def __init__(self, name: str, volts: Path | None, amps: Path | None, watts: Path | None) -> None:
        self.name = name
        self.volts = CachedReader(volts) if volts else None
        self.amps = CachedReader(amps) if amps else None
        self.watts = CachedReader(watts) if watts else None

    def read_w(self) -> float | None:
        if self.watts is not None:  # iio: in_power (mW)
            mw = self.watts.read_int()
            return None if mw is None else mw / 1000.0
        mv = self.volts.read_int() if self.volts else None
        ma = self.amps.read_int() if self.amps else None
        return None if mv is None or ma is None else mv * ma / 1e6

    def close(self) -> None:
        for reader in (self.volts, self.amps, self.watts):
            if reader is not None:
                reader.close()


class Ina3221:
    """INA3221 rails by label (``VDD_IN``, ``VDD_CPU_GPU_CV``...): power only, no energy counter."""

    def __init__(self, io: SysfsIO) -> None:
        self.io = io
        self.rails: list[_Rail] = []
        self.source = "ina3221-hwmon"
        self.paths: list[str] = []
        for hwmon in io.glob(INA3221_HWMON):
            self.paths.append(io.rel(hwmon))
            for label in io.glob(io.rel(hwmon) + "/in*_label"):
                n = re.fullmatch(r"in(\d+)_label", label.name)
                name = io.read_text(label)
                if not n or not name or "sum" in name.lower():
                    continue
                volts, amps = hwmon / f"in{n.group(1)}_input", hwmon / f"curr{n.group(1)}_input"
                if volts.exists() and amps.exists():
                    self.rails.append(_Rail(name, volts, amps, None))
        if self.rails:
            return
        self.source = "ina3221-iio"
        for pattern in INA3221_IIO:
            for device in io.glob(pattern):
                self.paths.append(io.rel(device))
                for label in io.glob(io.rel(device) + "/rail_name_*"):
                    channel = label.name.rsplit("_", 1)[-1]
                    name = io.read_text(label)
                    watts = device / f"in_power{channel}_input"
                    if name and watts.exists():
                        self.rails.append(_Rail(name, None, None, watts))

    def __len__(self) -> int:
        return len(self.rails)

    def read(self) -> tuple[dict[str, float], dict[str, float]]:
        out = {}
        for rail in self.rails:
            watts = rail.read_w()
            if watts is not None:
                out[rail.name] = watts
        return out, {}

    def info(self) -> list[RailInfo]:
        return [RailInfo(r.name, self.source, self.paths[0] if self.paths else "", False) for r in self.rails]

    def close(self) -> None:
        for rail in self.rails:
            rail.close()


class _RaplZone:
    __slots__ = ("name", "path", "reader", "max_range_uj", "last_uj", "last_t", "total_j", "watts")

    def __init__(self, name: str, path: Path, max_range_uj: int | None) -> None:
        self.name, self.path = name, path
        self.reader = CachedReader(path / "energy_uj")
        self.max_range_uj = max_range_uj
        self.last_uj: int | None = None
        self.last_t = 0.0
        self.total_j = 0.0
        self.watts: float | None = None

    def update(self, now: float) -> None:
        raw = self.reader.read_int()
        if raw is None:
            return
        if self.last_uj is not None:
            delta = raw - self.last_uj
            if delta < 0 and self.max_range_uj:  # the counter wrapped past max_energy_range_uj to 0
                delta += self.max_range_uj
            if delta >= 0:
                self.total_j += delta / 1e6
                dt = now - self.last_t
                if dt > 0:
                    self.watts = delta / 1e6 / dt
        self.last_uj, self.last_t = raw, now


class Rapl:
    """Intel/AMD RAPL zones (``package-0``, ``core``, ``dram``...) with counter wraparound.

    Power is the average over the interval between two reads, so the first read gives energy only.
    """

    def __init__(self, io: SysfsIO) -> None:
        self.io = io
        self.zones: list[_RaplZone] = []
        names: set[str] = set()
        for path in io.glob(RAPL_DIR + "/intel-rapl:*"):
            if not (path / "energy_uj").exists():
                continue
            name = io.read_text(path / "name") or path.name
            if name in names:
                name = f"{name}:{path.name.removeprefix('intel-rapl:')}"
            names.add(name)
            self.zones.append(_RaplZone(name, path, io.read_int(path / "max_energy_range_uj")))

    def __len__(self) -> int:
        return len(self.zones)

    def read(self) -> tuple[dict[str, float], dict[str, float]]:
        now = time.monotonic()
        power, energy = {}, {}
        for zone in self.zones:
            zone.update(now)
            if zone.last_uj is not None:
                energy[zone.name] = zone.total_j
            if zone.watts is not None:
                power[zone.name] = zone.watts
        return power, energy

    def info(self) -> list[RailInfo]:
        return [RailInfo(z.name, "rapl", self.io.rel(z.path), True) for z in self.zones]

    def close(self) -> None:
        for zone in self.zones:
            zone.reader.close()
