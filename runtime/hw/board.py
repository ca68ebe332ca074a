"""The concrete board: clock domains plus sensors, composed by each backend's ``detect``.

:class:`HwBoard` is the one owner of the board's state while it is open: its domains and fan save
their original settings before they first change them, :meth:`HwBoard.release_control` gives those
back through the same objects, and :meth:`HwBoard.close` does it if nobody did.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from lotus.core.errors import DeviceError
from lotus.runtime.hw.base import BoardDescription, ControllableDomain, NvpMode, RailInfo, RestoreReport, Snapshot
from lotus.runtime.hw.cpu import CpuLoad
from lotus.runtime.hw.fan import Fan
from lotus.runtime.hw.nvpmodel import NvpModel
from lotus.runtime.hw.sysfs import SysfsIO
from lotus.runtime.hw.thermal import ThermalZones

log = logging.getLogger(__name__)


class Closeable(Protocol):
    def close(self) -> None: ...


class PowerSource(Protocol):
    """Rails: ``read()`` gives (power W, cumulative energy J) by rail name."""

    def read(self) -> tuple[dict[str, float], dict[str, float]]: ...
    def info(self) -> list[RailInfo]: ...
    def close(self) -> None: ...


class LoadSource(Protocol):
    """A utilisation sensor: ``read()`` gives busy %, None when unreadable."""

    def read(self) -> float | None: ...
    def close(self) -> None: ...


class TempSource(Protocol):
    """Extra temperatures (degrees C) by sensor name (e.g. an NVML GPU)."""

    def read(self) -> dict[str, float]: ...


class HwBoard:
    """A board made of parts; any part may be missing (None or empty) and is then not reported."""

    def __init__(
        self,
        backend: str,
        io: SysfsIO,
        domains: Mapping[str, ControllableDomain],
        thermal: ThermalZones | None = None,
        power: list[PowerSource] | None = None,
        cpu_load: CpuLoad | None = None,
        gpu_load: LoadSource | None = None,
        fan: Fan | None = None,
        nvpmodel: NvpModel | None = None,
        extra_temps: list[TempSource] | None = None,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.backend, self.io, self.sysfs_root = backend, io, io.root
        self.domains: dict[str, ControllableDomain] = dict(domains)
        self.thermal, self.power = thermal, power or []
        self.cpu_load, self.gpu_load, self.fan, self._nvpmodel = cpu_load, gpu_load, fan, nvpmodel
        self.extra_temps = extra_temps or []
        self._on_close = on_close
        self._closed = False

    # --- hot path ----------------------------------------------------------------------------
    def snapshot(self, *, temps: bool = True, power: bool = True, util: bool = True) -> Snapshot:
        """Read every sensor once: clocks, temperatures, rails, utilisation, fan PWM.

        Switch groups off to save time on a fast path (INA3221 rails sit behind I2C on Jetson and
        are usually the slowest part): ``snapshot(power=False)`` between stages, full reads less often.
        """
        temps_c: dict[str, float] = {}
        if temps:
            temps_c = self.thermal.read() if self.thermal else {}
            for extra in self.extra_temps:
                temps_c.update(extra.read())
        power_w: dict[str, float] = {}
        energy_j: dict[str, float] = {}
        if power:
            for rails in self.power:
                watts, joules = rails.read()
                power_w.update(watts)
                energy_j.update(joules)
        return Snapshot(
            t_mono_s=time.monotonic(),
            freqs={name: d.current() for name, d in self.domains.items()},
            temps_c=temps_c,
            power_w=power_w,
            energy_j=energy_j,
            cpu_util_pct=self.cpu_load.read() if self.cpu_load and util else None,
            gpu_load_pct=self.gpu_load.read() if self.gpu_load and util else None,
            fan_pwm=self.fan.read_pwm() if self.fan else None,
        )

    def set_clocks(self, cpu: int | None = None, gpu: int | None = None) -> None:
        """Set every CPU domain to ``cpu`` kHz and every GPU domain to ``gpu`` Hz (None: leave)."""
        for domain in self.domains.values():
            target = cpu if domain.kind == "cpu" else gpu if domain.kind == "gpu" else None
            if target is not None:
                domain.set(target)

    def note_activity(self, busy: bool) -> None:
        """Real boards measure their power: nothing to do."""

    def firmware_throttled(self) -> bool | None:
        """A sysfs board cannot tell directly (the governor compares set and actual clocks)."""
        return None

    # --- control ------------------------------------------------------------------------------
    def take_control(self, originals: Sequence[Mapping[str, Any]] = ()) -> list[str]:
        """Save each domain's settings, open its full range and switch to ``userspace`` if offered.

        Domains without ``userspace`` stay on their governor and are driven by min/max pinning.
        ``originals``: records of a state file a crashed run left (its settings are the ones owed
        back). Taking control again while in control keeps the first saved settings. Returns one
        line per domain saying which method it will use.
        """
        by_name = {rec.get("name"): rec for rec in originals if rec.get("kind") != "file"}
        lines = [f"{name}: {domain.take_control(by_name.get(name))}" for name, domain in self.domains.items()]
        if self.fan is not None:
            self.fan.take_control(originals)
        return lines

    def release_control(self) -> RestoreReport:
        """Give every saved governor, limit and fan setting back through the domains and the fan.

        A failed write is reported (the part keeps its saved settings, so calling again retries);
        parts that changed nothing are not written.
        """
        report = RestoreReport()
        parts: list[tuple[str, Callable[[], str | None]]] = [
            (name, domain.release_control) for name, domain in self.domains.items()
        ]
        if self.fan is not None:
            parts.append(("fan", self.fan.release_control))
        for name, release in parts:
            try:
                line = release()
            except DeviceError as exc:
                report.failed.append(f"{name}: {exc}")
            else:
                if line:
                    report.restored.append(line)
        return report

    def set_fan_pwm(self, pwm: int) -> None:
        if self.fan is None:
            raise DeviceError(f"{self.backend}: no controllable fan found under {self.sysfs_root}")
        self.fan.set_pwm(pwm)

    def nvpmodel(self) -> NvpMode | None:
        return self._nvpmodel.read() if self._nvpmodel else None

    # --- description and state ---------------------------------------------------------------
    def model(self) -> str | None:
        text = self.io.read_text(self.io.path("/proc/device-tree/model"))
        if text:
            return text.rstrip("\x00")
        cpuinfo = self.io.read_text(self.io.path("/proc/cpuinfo")) or ""
        for line in cpuinfo.splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
        return platform.machine() if self.sysfs_root == Path("/") else None

    def describe(self) -> BoardDescription:
        desc = BoardDescription(backend=self.backend, model=self.model(), sysfs_root=str(self.sysfs_root))
        desc.domains = [d.info() for d in self.domains.values()]
        desc.zones = self.thermal.info() if self.thermal else []
        desc.rails = [rail for source in self.power for rail in source.info()]
        desc.fan = self.fan.info() if self.fan else None
        desc.nvpmodel = self.nvpmodel()
        desc.cpu_util = self.cpu_load is not None
        desc.gpu_load = self.gpu_load is not None
        if not any(d.kind == "gpu" for d in desc.domains):
            desc.notes.append("no controllable GPU clock found")
        if not desc.rails:
            desc.notes.append("no power rails found: energy will be estimated, not measured")
        for info in desc.domains:
            if not info.writable:
                desc.notes.append(f"{info.name}: clock not writable ({info.path}); run as root or install the rule")
        return desc

    def state_records(self) -> list[dict[str, Any]]:
        records = [d.state_record() for d in self.domains.values()]
        if self.fan:
            records += self.fan.state_records()
        return records

    def close(self) -> None:
        """Give control back (logging what fails), then close every sensor. Idempotent."""
        if self._closed:
            return
        self._closed = True
        report = self.release_control()
        for line in report.restored:
            log.info("gave back %s", line)
        for line in report.failed:
            log.error("could not give back %s (`lotus restore-clocks STATE_FILE` retries)", line)
        parts: list[Closeable | None] = [
            *self.domains.values(), self.thermal, *self.power, self.cpu_load, self.gpu_load, self.fan,
        ]  # fmt: skip
        for part in parts:
            if part is not None:
                part.close()
        if self._on_close:
            self._on_close()

    def __enter__(self) -> HwBoard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
