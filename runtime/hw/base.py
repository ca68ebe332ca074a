"""The board interface: small dataclasses, the Protocols every backend satisfies, the registry.

Units are in the names or stated: CPU clocks in kHz and GPU clocks in Hz (each domain carries its
``unit``, as the kernel exposes them), temperatures in degrees C, power in W, energy in J.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from lotus.core.errors import ConfigError


@dataclass(frozen=True)
class ClockDomainInfo:
    """What one clock domain is and how it can be driven."""

    name: str
    kind: str  # "cpu" or "gpu"
    unit: str  # "kHz" (cpufreq) or "Hz" (devfreq, NVML)
    path: str
    available: tuple[int, ...]
    current: int | None
    min: int | None
    max: int | None
    governor: str | None
    governors: tuple[str, ...]
    cpus: tuple[int, ...] = ()
    writable: bool = False
    method: str = "none"  # "userspace", "minmax", "nvml-locked", "none"


@dataclass(frozen=True)
class TripPoint:
    index: int
    type: str  # passive, active, hot, critical
    temp_c: float


@dataclass(frozen=True)
class ZoneInfo:
    name: str
    path: str
    temp_c: float | None
    trips: tuple[TripPoint, ...] = ()

    @property
    def passive_c(self) -> float | None:
        """Lowest passive trip: where the kernel starts throttling."""
        temps = [t.temp_c for t in self.trips if t.type == "passive" and t.temp_c > 0]  # 0: unset
        return min(temps) if temps else None


@dataclass(frozen=True)
class RailInfo:
    name: str
    source: str  # "ina3221-hwmon", "ina3221-iio", "rapl", "nvml"
    path: str
    has_energy: bool


@dataclass(frozen=True)
class FanInfo:
    path: str
    pwm: int | None
    rpm: int | None
    writable: bool


@dataclass(frozen=True)
class NvpMode:
    """nvpmodel state: ``pmode:0002 fmode:quiet`` gives id 2, fan mode ``quiet``."""

    id: int | None
    name: str | None
    fan_mode: str | None


@dataclass
class BoardDescription:
    """What was detected and what can be controlled; ``to_dict()`` is the JSON form."""

    backend: str
    model: str | None
    sysfs_root: str
    domains: list[ClockDomainInfo] = field(default_factory=list)
    zones: list[ZoneInfo] = field(default_factory=list)
    rails: list[RailInfo] = field(default_factory=list)
    fan: FanInfo | None = None
    nvpmodel: NvpMode | None = None
    cpu_util: bool = False
    gpu_load: bool = False
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for zone, info in zip(data["zones"], self.zones, strict=True):
            zone["passive_c"] = info.passive_c
        return data


@dataclass(slots=True)
class Snapshot:
    """One sensor read, taken between pipeline stages. Missing sensors are absent or None."""

    t_mono_s: float
    freqs: dict[str, int | None]  # domain name -> current clock, in the domain's unit
    temps_c: dict[str, float]
    power_w: dict[str, float]
    energy_j: dict[str, float]  # cumulative since the board was opened (RAPL, NVML)
    cpu_util_pct: float | None
    gpu_load_pct: float | None
    fan_pwm: int | None


@dataclass
class RestoreReport:
    """What giving the clocks back did: one line per restored, skipped or failed control."""

    restored: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


@runtime_checkable
class ClockDomain(Protocol):
    """One frequency domain (a cpufreq policy, a GPU devfreq device, an NVML GPU, a simulated one).

    Frequencies are in the domain's ``unit`` (``kHz`` for cpufreq, ``Hz`` for devfreq and NVML).
    Every write raises :class:`~lotus.core.errors.DeviceError` for a bad value or a failed write.
    """

    name: str
    kind: str  # "cpu" or "gpu"
    unit: str  # "kHz" or "Hz"

    @property
    def method(self) -> str:
        """How :meth:`set` drives the clock now: ``userspace``, ``minmax``, ``nvml-locked`` or ``none``."""
        ...

    def available(self) -> tuple[int, ...]:
        """Selectable frequencies, ascending (empty when unknown)."""
        ...

    def current(self) -> int | None: ...
    def limits(self) -> tuple[int | None, int | None]:
        """The (min, max) the kernel enforces now; None where unreadable."""
        ...

    def governor(self) -> str | None: ...
    def governors(self) -> tuple[str, ...]:
        """Governors the kernel offers for this domain (empty when it has none)."""
        ...

    def set_governor(self, name: str) -> None: ...
    def set(self, freq: int) -> None:
        """Run at ``freq``; DeviceError when it is not available or the write fails."""
        ...

    def set_limits(self, lo: int, hi: int) -> None:
        """Keep the clock in [lo, hi]; DeviceError when lo > hi or the write fails."""
        ...

    def info(self) -> ClockDomainInfo: ...
    def state_record(self) -> dict[str, Any]:
        """What puts this domain back as it was before this process changed it (state-file record)."""
        ...


@runtime_checkable
class ControllableDomain(ClockDomain, Protocol):
    """A clock domain that holds its own original settings while the board controls it.

    The domain saves its governor and limits before its first write (or when control is taken)
    and gives exactly those back in :meth:`release_control`, so its own view (cached governor,
    :attr:`method`) always matches the kernel.
    """

    def take_control(self, original: Mapping[str, Any] | None = None) -> str:
        """Save the settings to give back, open the full range, switch to ``userspace`` if offered.

        :param original: this domain's record from a state file left by a crashed run; it replaces
            the current settings as the ones to give back (settings already saved are kept).
        :returns: the method :meth:`set` will use.
        """
        ...

    def release_control(self) -> str | None:
        """Write the saved settings back; a line saying what was restored, None if nothing was saved.

        Raises DeviceError on a failed write; the saved settings are then kept for a retry.
        """
        ...

    def close(self) -> None: ...


@runtime_checkable
class Board(Protocol):
    """A board backend: clock domains, sensors, control that it takes and gives back, a description.

    The open board is the one owner of the board's state: :meth:`take_control` saves the original
    governors/limits in the board itself and :meth:`release_control` (and :meth:`close`) puts them
    back through the same domains. The state file (:mod:`lotus.runtime.hw.state`) is a copy for
    crash recovery only.
    """

    backend: str
    sysfs_root: Path

    @property
    def domains(self) -> Mapping[str, ClockDomain]: ...

    def snapshot(self, *, temps: bool = True, power: bool = True, util: bool = True) -> Snapshot: ...
    def set_clocks(self, cpu: int | None = None, gpu: int | None = None) -> None:
        """Set every CPU domain to ``cpu`` kHz and every GPU domain to ``gpu`` Hz (None: leave)."""
        ...

    def take_control(self, originals: Sequence[Mapping[str, Any]] = ()) -> list[str]:
        """Save what to give back, then make the clocks settable; one line per domain (its method).

        :param originals: state-file records of a previous run that did not give control back; they
            name the settings to restore instead of the current (pinned) ones.
        """
        ...

    def release_control(self) -> RestoreReport:
        """Give back every saved setting through the domains; failures are reported, not raised."""
        ...

    def note_activity(self, busy: bool) -> None:
        """The pipeline starts (True) or stops (False) a stage: a no-op on real boards."""
        ...

    def firmware_throttled(self) -> bool | None:
        """Whether firmware caps the clocks now; None when this board cannot tell directly."""
        ...

    def nvpmodel(self) -> NvpMode | None: ...
    def set_fan_pwm(self, pwm: int) -> None:
        """Set the fan PWM (0-255); DeviceError without a fan or for a bad value."""
        ...

    def describe(self) -> BoardDescription: ...
    def state_records(self) -> list[dict[str, Any]]:
        """Records that put the board back as it was before this process changed it."""
        ...

    def close(self) -> None:
        """Give control back (if held) and release the sensors; idempotent."""
        ...


class BackendFactory(Protocol):
    """``detect(sysfs_root)`` builds the board, or returns None when the hardware is absent."""

    def __call__(self, sysfs_root: Path) -> Board | None: ...


# Name -> "module:function" (resolved lazily so importing this module stays cheap) or a callable.
BACKENDS: dict[str, str | BackendFactory] = {
    "jetson": "lotus.runtime.hw.jetson:detect",
    "nvml": "lotus.runtime.hw.nvml:detect",
    "linux": "lotus.runtime.hw.linux:detect",
    "sim": "lotus.runtime.hw.sim:detect",  # never auto-detected: the daemon's fallback when nothing real is found
}


def register_backend(name: str, factory: str | BackendFactory) -> None:
    """Add or replace a backend (e.g. the simulated board registers ``"sim"``)."""
    BACKENDS[name] = factory


def load_backend(name: str) -> BackendFactory:
    """The detect function of backend ``name``; unknown names raise ConfigError with a suggestion."""
    try:
        target = BACKENDS[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(BACKENDS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown board backend {name!r} (known: {', '.join(BACKENDS)}).{hint}") from None
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        factory: BackendFactory = getattr(importlib.import_module(module), attr)
        return factory
    return target
