"""A sysfs frequency domain (cpufreq policy or devfreq device) with safe-order writes.

cpufreq and devfreq expose the same controls under different file names; :class:`FreqLayout`
holds the names and :class:`SysfsClockDomain` the logic. Limits are always written in the safe
order: lower the minimum first (if it goes down), then the maximum, then raise the minimum, so the
kernel never sees min > max (devfreq rejects that with EINVAL).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lotus.core.errors import DeviceError
from lotus.runtime.hw.base import ClockDomainInfo
from lotus.runtime.hw.sysfs import SysfsIO, parse_int_list


@dataclass(frozen=True)
class FreqLayout:
    """File names of one sysfs frequency interface, relative to its directory."""

    governor: str
    governors: str
    available: str
    min: str
    max: str
    cur: str
    setspeed: str
    hw_min: str | None = None
    hw_max: str | None = None


CPUFREQ = FreqLayout(
    governor="scaling_governor",
    governors="scaling_available_governors",
    available="scaling_available_frequencies",
    min="scaling_min_freq",
    max="scaling_max_freq",
    cur="scaling_cur_freq",
    setspeed="scaling_setspeed",
    hw_min="cpuinfo_min_freq",
    hw_max="cpuinfo_max_freq",
)

DEVFREQ = FreqLayout(
    governor="governor",
    governors="available_governors",
    available="available_frequencies",
    min="min_freq",
    max="max_freq",
    cur="cur_freq",
    setspeed="userspace/set_freq",
)


def _writable(path: Path) -> bool:
    """A regular file we may write (a directory in its place counts as not writable)."""
    return path.is_file() and os.access(path, os.W_OK)


class SysfsClockDomain:
    """One clock domain driven through sysfs. Frequencies are in the kernel's unit (``unit``)."""

    def __init__(
        self,
        name: str,
        kind: str,
        unit: str,
        directory: Path,
        layout: FreqLayout,
        io: SysfsIO,
        cpus: tuple[int, ...] = (),
    ) -> None:
        self.name, self.kind, self.unit = name, kind, unit
        self.directory, self.layout, self.io, self.cpus = directory, layout, io, cpus
        self._cur = io.reader(directory / layout.cur)
        self._available = parse_int_list(io.read_text(directory / layout.available))
        if not self._available and layout.hw_min and layout.hw_max:
            lo, hi = io.read_int(directory / layout.hw_min), io.read_int(directory / layout.hw_max)
            self._available = tuple(v for v in (lo, hi) if v is not None)
        self._governor = io.read_text(directory / layout.governor)

    # --- reads -------------------------------------------------------------------------------
    def available(self) -> tuple[int, ...]:
        """Selectable frequencies, ascending (only the hardware range when the kernel lists none)."""
        return self._available

    def current(self) -> int | None:
        return self._cur.read_int()

    def limits(self) -> tuple[int | None, int | None]:
        return (
            self.io.read_int(self.directory / self.layout.min),
            self.io.read_int(self.directory / self.layout.max),
        )

    def governor(self) -> str | None:
        """The governor as last read or written (cached: it only changes when someone writes it)."""
        return self._governor

    def governors(self) -> tuple[str, ...]:
        return tuple((self.io.read_text(self.directory / self.layout.governors) or "").split())

    @property
    def method(self) -> str:
        """How :meth:`set` drives the clock: ``userspace`` (setspeed file) or ``minmax`` pinning."""
        if self._governor == "userspace" and (self.directory / self.layout.setspeed).exists():
            return "userspace"
        return "minmax"

    # --- writes ------------------------------------------------------------------------------
    def set_governor(self, name: str) -> None:
        self.io.write(self.directory / self.layout.governor, name)
        self._governor = name

    def set_limits(self, lo: int, hi: int) -> None:
        """Pin the clock into [lo, hi] in the safe order (lower min, set max, raise min)."""
        if lo > hi:
            raise ValueError(f"{self.name}: min {lo} > max {hi}")
        min_path, max_path = self.directory / self.layout.min, self.directory / self.layout.max
        cur_min = self.io.read_int(min_path)
        lowered = cur_min is None or lo < cur_min
        if lowered:
            self.io.write(min_path, lo)
        self.io.write(max_path, hi)
        if not lowered:
            self.io.write(min_path, lo)

    def set(self, freq: int) -> None:
        """Run at ``freq`` (must be one of :meth:`available` when the kernel lists them)."""
        self.check(freq)
        if self.method == "userspace":
            self.io.write(self.directory / self.layout.setspeed, freq)
        else:
            self.set_limits(freq, freq)

    def check(self, freq: int) -> None:
        table = self._available
        if len(table) > 2 and freq not in table:
            raise ValueError(f"{self.name}: {freq} {self.unit} is not one of the available frequencies {table}")
        if table and not table[0] <= freq <= table[-1]:
            raise ValueError(f"{self.name}: {freq} {self.unit} outside [{table[0]}, {table[-1]}]")

    def nearest(self, freq: float) -> int:
        """The available frequency closest to ``freq``."""
        if not self._available:
            raise DeviceError(f"{self.name}: no frequency table at {self.directory / self.layout.available}")
        return min(self._available, key=lambda f: abs(f - freq))

    # --- description and state ---------------------------------------------------------------
    def info(self) -> ClockDomainInfo:
        lo, hi = self.limits()
        files = [self.layout.min, self.layout.max] + ([self.layout.setspeed] if self.method == "userspace" else [])
        writable = all(_writable(self.directory / f) for f in files)
        return ClockDomainInfo(
            name=self.name,
            kind=self.kind,
            unit=self.unit,
            path=self.io.rel(self.directory),
            available=self._available,
            current=self.current(),
            min=lo,
            max=hi,
            governor=self._governor,
            governors=self.governors(),
            cpus=self.cpus,
            writable=writable,
            method=self.method if writable else "none",
        )

    def state_record(self) -> dict[str, Any]:
        """What :func:`runtime.hw.state.restore` needs to put this domain back as it is now."""
        lo, hi = self.limits()
        return {
            "kind": "freq",
            "name": self.name,
            "dir": self.io.rel(self.directory),
            "governor_file": self.layout.governor,
            "min_file": self.layout.min,
            "max_file": self.layout.max,
            "governor": self._governor,
            "min": lo,
            "max": hi,
        }

    def close(self) -> None:
        self._cur.close()
