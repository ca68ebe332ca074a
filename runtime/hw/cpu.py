"""CPU: cpufreq policies (one clock domain per cluster) and utilisation from /proc/stat."""

from __future__ import annotations

import re
from pathlib import Path

from lotus.runtime.hw.clock import CPUFREQ, SysfsClockDomain
from lotus.runtime.hw.sysfs import CachedReader, SysfsIO

CPUFREQ_DIR = "/sys/devices/system/cpu/cpufreq"
CPU_DIR = "/sys/devices/system/cpu"


def _cpu_list(text: str | None) -> tuple[int, ...]:
    """Parse ``0-3 6`` or ``0 1 2`` style CPU lists."""
    cpus: list[int] = []
    for token in (text or "").replace(",", " ").split():
        lo, _, hi = token.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            cpus.extend(range(int(lo), int(hi or lo) + 1))
    return tuple(cpus)


def cpufreq_dirs(io: SysfsIO) -> list[tuple[int, Path]]:
    """(policy number, directory) of every cpufreq policy; falls back to ``cpuN/cpufreq``."""
    found = []
    for path in io.glob(CPUFREQ_DIR + "/policy*"):
        match = re.fullmatch(r"policy(\d+)", path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    if found:
        return found
    seen: set[Path] = set()
    for path in io.glob(CPU_DIR + "/cpu*/cpufreq"):
        match = re.fullmatch(r"cpu(\d+)", path.parent.name)
        real = path.resolve()
        if match and path.is_dir() and real not in seen:
            seen.add(real)
            found.append((int(match.group(1)), path))
    return found


def discover_cpu_domains(io: SysfsIO) -> dict[str, SysfsClockDomain]:
    """One domain per cpufreq policy, named ``cpu`` when there is one, else ``cpu0``, ``cpu4``..."""
    dirs = cpufreq_dirs(io)
    domains: dict[str, SysfsClockDomain] = {}
    for number, path in dirs:
        cpus = _cpu_list(io.read_text(path / "related_cpus") or io.read_text(path / "affected_cpus"))
        name = "cpu" if len(dirs) == 1 else f"cpu{number}"
        domains[name] = SysfsClockDomain(name, "cpu", "kHz", path, CPUFREQ, io, cpus=cpus or (number,))
    return domains


class CpuLoad:
    """Whole-CPU utilisation (%) between consecutive reads of ``/proc/stat``."""

    def __init__(self, io: SysfsIO) -> None:
        self.path = io.path("/proc/stat")
        self._reader = CachedReader(self.path)
        self._last: tuple[int, int] | None = None

    def available(self) -> bool:
        return self.path.exists()

    def read(self) -> float | None:
        """Busy percentage since the previous call (None on the first call or a bad read)."""
        text = self._reader.read()
        if not text:
            return None
        fields = text.split("\n", 1)[0].split()
        try:
            values = [int(v) for v in fields[1:9]]
        except ValueError:
            return None
        if fields[0] != "cpu" or len(values) < 4:
            return None
        idle = values[3] + (values[4] if len(values) > 4 else 0)
        total = sum(values)
        last, self._last = self._last, (idle, total)
        if last is None or total <= last[1]:
            return None
        return 100.0 * (1.0 - (idle - last[0]) / (total - last[1]))

    def close(self) -> None:
        self._reader.close()
