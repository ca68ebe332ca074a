"""A sysfs frequency domain (cpufreq policy or devfreq device) with safe-order writes.

cpufreq and devfreq expose the same controls under different file names; :class:`FreqLayout`
holds the names and :class:`SysfsClockDomain` the logic. Limits are always written in the safe
order: lower the minimum first (if it goes down), then the maximum, then raise the minimum, so the
kernel never sees min > max (devfreq rejects that with EINVAL).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lotus.core.errors import DeviceError
from lotus.runtime.hw.base import ClockDomainInfo
from lotus.runtime.hw.sysfs import SysfsIO, parse_int_list

log = logging.getLogger(__name__)


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


# cpufreq (CPU policies) and devfreq (GPU) name the same controls differently
CPUFREQ = FreqLayout("scaling_governor", "scaling_available_governors", "scaling_available_frequencies",
                     "scaling_min_freq", "scaling_max_freq", "scaling_cur_freq", "scaling_setspeed",
                     hw_min="cpuinfo_min_freq", hw_max="cpuinfo_max_freq")  # fmt: skip
DEVFREQ = FreqLayout("governor", "available_governors", "available_frequencies", "min_freq", "max_freq", "cur_freq",
                     "userspace/set_freq")  # fmt: skip


def _writable(path: Path) -> bool:
    """A regular file we may write (a directory in its place counts as not writable)."""
    return path.is_file() and os.access(path, os.W_OK)


def write_limits(io: SysfsIO, min_path: Path, max_path: Path, lo: int, hi: int) -> None:
    """Write the limits [lo, hi] in the safe order: lower the min first, set the max, raise the min."""
    cur_min = io.read_int(min_path)
    lowered = cur_min is None or lo < cur_min
    if lowered:
        io.write(min_path, lo)
    io.write(max_path, hi)
    if not lowered:
        io.write(min_path, lo)


class SysfsClockDomain:
    """One clock domain driven through sysfs. Frequencies are in the kernel's unit (``unit``).

    It owns its original settings: before its first write (or in :meth:`take_control`) it saves
    the governor and limits, and :meth:`release_control` writes exactly those back through this
    object, so the cached governor (and :attr:`method`) never disagrees with the kernel.
    """

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
        self._saved: dict[str, Any] | None = None  # the state record to give back; None: nothing changed

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
        """The governor as last read or written (cached: this object is the only writer)."""
        return self._governor

    def governors(self) -> tuple[str, ...]:
        return tuple((self.io.read_text(self.directory / self.layout.governors) or "").split())

    @property
    def method(self) -> str:
        """How :meth:`set` drives the clock: ``userspace`` (setspeed file) or ``minmax`` pinning."""
        if self._governor == "userspace" and (self.directory / self.layout.setspeed).exists():
            return "userspace"
        return "minmax"

    @property
    def in_control(self) -> bool:
        """Whether original settings are saved (and owed back by :meth:`release_control`)."""
        return self._saved is not None

    # --- writes ------------------------------------------------------------------------------
    def set_governor(self, name: str) -> None:
        self._hold()
        self.io.write(self.directory / self.layout.governor, name)
        self._governor = name

    def set_limits(self, lo: int, hi: int) -> None:
        """Pin the clock into [lo, hi] in the safe order (lower min, set max, raise min)."""
        if lo > hi:
            raise DeviceError(f"{self.name}: min {lo} > max {hi} {self.unit} for {self.io.rel(self.directory)}")
        self._hold()
        write_limits(self.io, self.directory / self.layout.min, self.directory / self.layout.max, lo, hi)

    def set(self, freq: int) -> None:
        """Run at ``freq`` (must be one of :meth:`available` when the kernel lists them)."""
        self.check(freq)
        if self.method == "userspace":
            self._hold()
            self.io.write(self.directory / self.layout.setspeed, freq)
        else:
            self.set_limits(freq, freq)

    def check(self, freq: int) -> None:
        """DeviceError unless ``freq`` is settable (listed, or inside the hardware range)."""
        table = self._available
        if len(table) > 2 and freq not in table:
            raise DeviceError(f"{self.name}: {freq} {self.unit} is not one of the available frequencies {table}")
        if table and not table[0] <= freq <= table[-1]:
            raise DeviceError(f"{self.name}: {freq} {self.unit} outside [{table[0]}, {table[-1]}]")

    def nearest(self, freq: float) -> int:
        """The available frequency closest to ``freq``."""
        if not self._available:
            raise DeviceError(f"{self.name}: no frequency table at {self.directory / self.layout.available}")
        return min(self._available, key=lambda f: abs(f - freq))

    # --- control -----------------------------------------------------------------------------
    def take_control(self, original: Mapping[str, Any] | None = None) -> str:
        """Save the settings to give back, open the full range, switch to ``userspace`` if offered.

        ``original`` (this domain's record from a stale state file) replaces the current settings
        as the ones to give back, unless settings are saved already. Returns the method.
        """
        self._governor = self.io.read_text(self.directory / self.layout.governor)  # someone may have changed it
        if self._saved is None:
            saved = self._record_now()
            if original is not None:
                if original.get("kind") == "freq" and original.get("dir") == saved["dir"]:
                    saved.update({k: original.get(k) for k in ("governor", "min", "max")})
                else:
                    log.warning("%s: ignoring a saved record for another control (%r)", self.name, original)
            self._saved = saved
        table = self._available
        if table:
            self.set_limits(table[0], table[-1])
        if "userspace" in self.governors() and self._governor != "userspace":
            self.set_governor("userspace")
        return self.method

    def release_control(self) -> str | None:
        """Write the saved governor and limits back (limits first); None when nothing was saved."""
        saved = self._saved
        if saved is None:
            return None
        gov_path = self.directory / self.layout.governor
        lo, hi, governor = saved.get("min"), saved.get("max"), saved.get("governor")
        try:
            if lo is not None and hi is not None:
                write_limits(self.io, self.directory / self.layout.min, self.directory / self.layout.max, lo, hi)
            if governor and self.io.read_text(gov_path) != governor:
                self.io.write(gov_path, governor)
        finally:
            self._governor = self.io.read_text(gov_path)  # what the kernel has now, whatever happened
        self._saved = None
        return f"{self.name}: governor={governor} min={lo} max={hi} ({saved['dir']})"

    def _hold(self) -> None:
        """Save the current settings before the first write (cheap when already saved)."""
        if self._saved is None:
            self._saved = self._record_now()

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
        """What :func:`runtime.hw.state.restore` needs to put this domain back as it was.

        While settings are saved (this process changed the domain) that is the saved settings,
        else the current ones.
        """
        return dict(self._saved) if self._saved is not None else self._record_now()

    def _record_now(self) -> dict[str, Any]:
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
