"""Thermal zones discovered by ``type``, with their trip points (temperatures in degrees C)."""

from __future__ import annotations

import re
from pathlib import Path

from lotus.runtime.hw.base import TripPoint, ZoneInfo
from lotus.runtime.hw.sysfs import CachedReader, SysfsIO

THERMAL_DIR = "/sys/class/thermal"
# Zone types that identify a Tegra SoC: Orin (cpu-thermal, soc0-thermal, tj-thermal...) and the
# older TX2/Xavier names (CPU-therm, Tboard_tegra...).
TEGRA_ZONE = re.compile(r"^(cpu|gpu|cv\d|soc\d|tj|tboard|tdiode|ao|pll|aux|pmic)[-_](thermal|therm|tegra)", re.I)


class ThermalZone:
    """One ``thermal_zoneN`` directory; the ``temp`` file is kept open for cheap reads."""

    def __init__(self, name: str, directory: Path, io: SysfsIO) -> None:
        self.name, self.directory, self.io = name, directory, io
        self._temp = CachedReader(directory / "temp")

    def read_c(self) -> float | None:
        milli = self._temp.read_int()
        return None if milli is None else milli / 1000.0

    def trips(self) -> tuple[TripPoint, ...]:
        trips = []
        for type_path in self.io.glob(self.io.rel(self.directory) + "/trip_point_*_type"):
            match = re.fullmatch(r"trip_point_(\d+)_type", type_path.name)
            kind = self.io.read_text(type_path)
            temp = self.io.read_int(type_path.with_name(f"trip_point_{match.group(1)}_temp")) if match else None
            if match and kind and temp is not None:
                trips.append(TripPoint(int(match.group(1)), kind, temp / 1000.0))
        return tuple(trips)

    def info(self) -> ZoneInfo:
        return ZoneInfo(self.name, self.io.rel(self.directory), self.read_c(), self.trips())

    def close(self) -> None:
        self._temp.close()


class ThermalZones:
    """All readable thermal zones, keyed by ``type`` (``cpu-thermal``; duplicates get ``_N``)."""

    def __init__(self, io: SysfsIO) -> None:
        self.zones: dict[str, ThermalZone] = {}
        for directory in io.glob(THERMAL_DIR + "/thermal_zone*"):
            kind = io.read_text(directory / "type")
            if not kind or not (directory / "temp").exists():
                continue
            name = kind if kind not in self.zones else f"{kind}_{directory.name.removeprefix('thermal_zone')}"
            self.zones[name] = ThermalZone(name, directory, io)

    def __len__(self) -> int:
        return len(self.zones)

    def is_tegra(self) -> bool:
        return any(TEGRA_ZONE.match(name) for name in self.zones)

    def read(self) -> dict[str, float]:
        """Temperatures of the zones that read cleanly (a disabled tj-thermal reads empty: skipped)."""
        out = {}
        for name, zone in self.zones.items():
            temp = zone.read_c()
            if temp is not None:
                out[name] = temp
        return out

    def info(self) -> list[ZoneInfo]:
        return [zone.info() for zone in self.zones.values()]

    def close(self) -> None:
        for zone in self.zones.values():
            zone.close()
