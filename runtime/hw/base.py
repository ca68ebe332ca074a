"""The board interface: small dataclasses, the Protocols every backend satisfies, the registry.

Units are in the names or stated: CPU clocks in kHz and GPU clocks in Hz (each domain carries its
``unit``, as the kernel exposes them), temperatures in degrees C, power in W, energy in J.
"""

from __future__ import annotations

import difflib
import importlib
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


@runtime_checkable
class ClockDomain(Protocol):
    """One frequency domain (a cpufreq policy, a GPU devfreq device, an NVML GPU)."""

    name: str
    kind: str
    unit: str

    def available(self) -> tuple[int, ...]: ...
    def current(self) -> int | None: ...
    def limits(self) -> tuple[int | None, int | None]: ...
    def governor(self) -> str | None: ...
    def set_governor(self, name: str) -> None: ...
    def set(self, freq: int) -> None: ...
    def set_limits(self, lo: int, hi: int) -> None: ...
    def info(self) -> ClockDomainInfo: ...
    def state_record(self) -> dict[str, Any]: ...


@runtime_checkable
class Board(Protocol):
    """A board backend: clock domains, sensors, save/restore records, a description."""

    backend: str
    sysfs_root: Path
    domains: dict[str, ClockDomain]

    def snapshot(self, *, temps: bool = True, power: bool = True, util: bool = True) -> Snapshot: ...
    def set_clocks(self, cpu: int | None = None, gpu: int | None = None) -> None: ...
    def take_control(self) -> list[str]: ...
    def nvpmodel(self) -> NvpMode | None: ...
    def set_fan_pwm(self, pwm: int) -> None: ...
    def describe(self) -> BoardDescription: ...
    def state_records(self) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


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
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]
    return target
