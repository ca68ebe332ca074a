"""Fan: hwmon ``pwm1`` (0-255) with an optional tachometer; older Tegra ``target_pwm``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lotus.core.errors import DeviceError
from lotus.runtime.hw.base import FanInfo
from lotus.runtime.hw.sysfs import CachedReader, SysfsIO

HWMON_DIR = "/sys/class/hwmon"
FAN_HWMON_NAMES = ("pwmfan", "pwm-fan", "pwm_fan")
LEGACY_PWM = ("/sys/devices/pwm-fan/target_pwm",)


def probe_paths() -> list[str]:
    return [HWMON_DIR + "/hwmon*/pwm1", *LEGACY_PWM]


class Fan:
    """A PWM fan. On Jetson, stop ``nvfancontrol`` before setting the PWM or it will overwrite it.

    Like a clock domain it owns its original settings: the first :meth:`set_pwm` saves
    ``pwm1_enable`` and ``pwm1``, and :meth:`release_control` writes them back. A fan this process
    never set is never written (``nvfancontrol`` keeps driving it).
    """

    def __init__(self, pwm_path: Path, io: SysfsIO, rpm_path: Path | None = None) -> None:
        self.pwm_path, self.io, self.rpm_path = pwm_path, io, rpm_path
        self.enable_path = pwm_path.with_name(pwm_path.name + "_enable")
        self._pwm = CachedReader(pwm_path)
        self._rpm = CachedReader(rpm_path) if rpm_path else None
        self._saved: dict[str, str] | None = None  # system path -> value, in restore order

    @classmethod
    def discover(cls, io: SysfsIO) -> Fan | None:
        hwmons = io.glob(HWMON_DIR + "/hwmon*")
        rpm = None
        for hwmon in hwmons:
            name = io.read_text(hwmon / "name") or ""
            for tach in ("rpm", "fan1_input"):
                if rpm is None and (hwmon / tach).is_file() and ("tach" in name or tach == "fan1_input"):
                    rpm = hwmon / tach
        named = [h for h in hwmons if (io.read_text(h / "name") or "") in FAN_HWMON_NAMES]
        for hwmon in named + [h for h in hwmons if h not in named]:
            if (hwmon / "pwm1").is_file():
                return cls(hwmon / "pwm1", io, rpm)
        for legacy in LEGACY_PWM:
            if io.path(legacy).is_file():
                return cls(io.path(legacy), io, rpm)
        return None

    def read_pwm(self) -> int | None:
        return self._pwm.read_int()

    def read_rpm(self) -> int | None:
        return self._rpm.read_int() if self._rpm else None

    def set_pwm(self, pwm: int) -> None:
        """Set the PWM duty (0-255), switching ``pwm1_enable`` to manual first where it exists."""
        if not 0 <= pwm <= 255:
            raise DeviceError(f"fan {self.io.rel(self.pwm_path)}: PWM {pwm} outside 0..255")
        if self._saved is None:
            self._saved = self._current()
        if self.enable_path.is_file() and self.io.read_int(self.enable_path) not in (None, 1):
            self.io.write(self.enable_path, 1)  # 1 = manual control in hwmon's pwm*_enable convention
        self.io.write(self.pwm_path, pwm)

    def take_control(self, originals: Sequence[Mapping[str, Any]] = ()) -> None:
        """Adopt a stale state file's fan settings when they differ from the current ones.

        A run that crashed after setting the fan left it manual; its saved settings are then owed
        back. Matching settings (the fan was never set) are not held, so the fan is never written.
        """
        if self._saved is not None:
            return
        current = self._current()
        stale = {
            str(rec["path"]): str(rec["value"]).strip()
            for rec in originals
            if rec.get("kind") == "file" and rec.get("path") in current and "value" in rec
        }
        if any(current[path] != value for path, value in stale.items()):
            self._saved = {**current, **stale}

    def release_control(self) -> str | None:
        """Write the saved ``pwm1_enable`` (first) and ``pwm1`` back; None when the fan was never set."""
        saved = self._saved
        if saved is None:
            return None
        for path, value in saved.items():
            self.io.write(self.io.path(path), value)
        self._saved = None
        return "fan: " + " ".join(f"{path}={value}" for path, value in saved.items())

    def _current(self) -> dict[str, str]:
        values = {}
        for path in (self.enable_path, self.pwm_path):
            value = self.io.read_text(path) if path.is_file() else None
            if value is not None:
                values[self.io.rel(path)] = value
        return values

    def info(self) -> FanInfo:
        return FanInfo(
            self.io.rel(self.pwm_path),
            self.read_pwm(),
            self.read_rpm(),
            self.pwm_path.is_file() and os.access(self.pwm_path, os.W_OK),
        )

    def state_records(self) -> list[dict[str, Any]]:
        """Restore ``pwm1_enable`` first (back to automatic), then the PWM value (the saved ones if set)."""
        values = self._saved if self._saved is not None else self._current()
        return [{"kind": "file", "name": "fan", "path": path, "value": value} for path, value in values.items()]

    def close(self) -> None:
        self._pwm.close()
        if self._rpm:
            self._rpm.close()
