"""Fake sysfs trees (``jetpack5``, ``jetpack6``, ``x86``) and a FakeKernel that reacts to writes.

The trees are plain files, so the real backends run against them unchanged. Plain files do not
react to writes; :class:`FakeKernel` is a drop-in :class:`SysfsIO` that adds the kernel's side of
the contract: it rejects min > max and unknown governors with EINVAL, accepts ``scaling_setspeed``
/ ``userspace/set_freq`` only under the userspace governor, updates ``*cur_freq`` to the clamped
target, and logs every write (for the safe-order tests). Without it, written values land in the
files but ``cur_freq`` keeps its old value.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from lotus.core.errors import ConfigError, DeviceError
from lotus.runtime.hw.sysfs import SysfsIO

LAYOUTS = ("jetpack5", "jetpack6", "x86")

ORIN_NANO_CPU_KHZ = tuple(
    int(f)
    for f in "115200 192000 268800 345600 422400 499200 576000 652800 729600 806400 883200 960000 1036800 "
    "1113600 1190400 1267200 1344000 1420800 1497600 1510400".split()
)
ORIN_NANO_GPU_HZ = (306000000, 408000000, 510000000, 612000000, 624750000)
X86_CPU_KHZ = (3400000, 2800000, 2200000, 1600000, 800000)  # acpi-cpufreq lists them descending
CPU_GOVERNORS = "conservative ondemand userspace powersave performance schedutil"
GPU_GOVERNORS = "wmark_active nvhost_podgov userspace performance simple_ondemand"
GPU_DEVFREQ = {
    "jetpack5": "sys/devices/gpu.0/devfreq/17000000.ga10b",
    "jetpack6": "sys/devices/platform/bus@0/17000000.gpu/devfreq/17000000.gpu",
}


def _put(root: Path, rel: str, value: object) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n")


def _cpufreq(root: Path, policy: int, cpus: tuple[int, ...], table: tuple[int, ...], governor: str) -> None:
    base = f"sys/devices/system/cpu/cpufreq/policy{policy}"
    lo, hi = min(table), max(table)
    for name, value in {
        "scaling_available_frequencies": " ".join(map(str, table)),
        "scaling_available_governors": CPU_GOVERNORS,
        "scaling_governor": governor,
        "scaling_min_freq": lo,
        "scaling_max_freq": hi,
        "scaling_cur_freq": hi,
        "cpuinfo_cur_freq": hi,
        "cpuinfo_min_freq": lo,
        "cpuinfo_max_freq": hi,
        "scaling_setspeed": "<unsupported>",
        "related_cpus": " ".join(map(str, cpus)),
        "affected_cpus": " ".join(map(str, cpus)),
    }.items():
        _put(root, f"{base}/{name}", value)
    for cpu in cpus:
        _put(root, f"sys/devices/system/cpu/cpu{cpu}/online", 1)
        link = root / f"sys/devices/system/cpu/cpu{cpu}/cpufreq"
        if not link.exists():
            link.symlink_to(f"../cpufreq/policy{policy}")


def _zone(root: Path, n: int, kind: str, milli_c: int, trips: tuple[tuple[str, int], ...] = ()) -> None:
    base = f"sys/class/thermal/thermal_zone{n}"
    _put(root, f"{base}/type", kind)
    _put(root, f"{base}/temp", milli_c)
    for i, (trip_type, temp) in enumerate(trips):
        _put(root, f"{base}/trip_point_{i}_type", trip_type)
        _put(root, f"{base}/trip_point_{i}_temp", temp)


def _jetson(root: Path, layout: str) -> None:
    _cpufreq(root, 0, tuple(range(6)), ORIN_NANO_CPU_KHZ, "schedutil")
    gpu = GPU_DEVFREQ[layout]
    lo, hi = ORIN_NANO_GPU_HZ[0], ORIN_NANO_GPU_HZ[-1]
    for name, value in {
        "available_frequencies": " ".join(map(str, ORIN_NANO_GPU_HZ)),
        "available_governors": GPU_GOVERNORS,
        "governor": "nvhost_podgov",
        "min_freq": lo,
        "max_freq": hi,
        "cur_freq": hi,
        "target_freq": hi,
        "userspace/set_freq": hi,
    }.items():
        _put(root, f"{gpu}/{name}", value)
    _put(root, str(Path(gpu).parent.parent / "load"), 312)  # per-mille
    link = root / "sys/class/devfreq" / Path(gpu).name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(root / gpu, link.parent))
    trips = (("passive", 99000), ("critical", 104500))
    for n, (kind, temp) in enumerate(
        [
            ("cpu-thermal", 45500),
            ("gpu-thermal", 44000),
            ("soc0-thermal", 43250),
            ("soc1-thermal", 42750),
            ("soc2-thermal", 43000),
        ]
    ):
        _zone(root, n, kind, temp, trips)
    ina = "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
    for ch, (label, mv, ma) in enumerate(
        [("VDD_IN", 5000, 1100), ("VDD_CPU_GPU_CV", 4992, 400), ("VDD_SOC", 4992, 300)], start=1
    ):
        _put(root, f"{ina}/in{ch}_label", label)
        _put(root, f"{ina}/in{ch}_input", mv)
        _put(root, f"{ina}/curr{ch}_input", ma)
    _put(root, "sys/class/hwmon/hwmon0/name", "pwm_tach")
    _put(root, "sys/class/hwmon/hwmon0/rpm", 2100)
    _put(root, "sys/class/hwmon/hwmon2/name", "pwmfan")
    _put(root, "sys/class/hwmon/hwmon2/pwm1", 84)
    _put(root, "var/lib/nvpmodel/status", "pmode:0000 fmode:quiet")
    _put(root, "etc/nvpmodel.conf", "< POWER_MODEL ID=0 NAME=15W >\n< POWER_MODEL ID=1 NAME=7W >")
    _put(root, "proc/device-tree/model", "NVIDIA Jetson Orin Nano Developer Kit\x00")
    release = "R35 (release), REVISION: 4.1" if layout == "jetpack5" else "R36 (release), REVISION: 4.0"
    _put(root, "etc/nv_tegra_release", f"# {release}, GCID: 0, BOARD: generic, EABI: aarch64")
    kernel = "5.10.120-tegra" if layout == "jetpack5" else "5.15.148-tegra"
    _put(root, "proc/version", f"Linux version {kernel} (fake) #1 SMP PREEMPT")


def _x86(root: Path) -> None:
    for cpu in range(2):
        _cpufreq(root, cpu, (cpu,), X86_CPU_KHZ, "ondemand")
        _put(root, f"sys/devices/system/cpu/cpufreq/policy{cpu}/scaling_driver", "acpi-cpufreq")
    _zone(root, 0, "x86_pkg_temp", 52000, (("passive", 0),))
    _zone(root, 1, "acpitz", 40000, (("critical", 105000),))
    for zone, name, uj in (("intel-rapl:0", "package-0", 1_000_000), ("intel-rapl:0:0", "core", 400_000)):
        _put(root, f"sys/class/powercap/{zone}/name", name)
        _put(root, f"sys/class/powercap/{zone}/energy_uj", uj)
        _put(root, f"sys/class/powercap/{zone}/max_energy_range_uj", 262143328850)
    _put(root, "sys/class/powercap/intel-rapl/enabled", 1)
    _put(root, "proc/cpuinfo", "processor\t: 0\nmodel name\t: Fake x86 CPU @ 3.40GHz\n")
    _put(root, "proc/version", "Linux version 6.8.0-fake (fake) #1 SMP PREEMPT_DYNAMIC")


def write_fake_sysfs(root: Path, layout: str = "jetpack6") -> Path:
    """Write a fake tree for ``layout`` under ``root`` (created if needed) and return ``root``.

    ConfigError for an unknown layout or a ``root`` that already holds a ``sys/`` tree.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown fake sysfs layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    root = Path(root)
    if (root / "sys").exists():
        raise ConfigError(f"{root} already holds a sys/ tree; use an empty directory")
    root.mkdir(parents=True, exist_ok=True)
    if layout == "x86":
        _x86(root)
    else:
        _jetson(root, layout)
    _put(root, "proc/stat", "cpu  1000 0 500 10000 100 0 0 0 0 0\ncpu0 500 0 250 5000 50 0 0 0 0 0")
    return root


_MIN = {"scaling_min_freq", "min_freq"}
_MAX = {"scaling_max_freq", "max_freq"}
_SETSPEED = {"scaling_setspeed", "set_freq"}


class FakeKernel(SysfsIO):
    """A SysfsIO over a fake tree that behaves like cpufreq/devfreq on writes (see module doc)."""

    def __init__(self, root: Path | str) -> None:
        super().__init__(root)
        self.writes: list[tuple[str, str]] = []

    def write(self, path: Path, value: str | int) -> None:
        name = Path(path).name
        domain = path.parent.parent if name == "set_freq" else path.parent
        is_cpu = (domain / "scaling_governor").exists()
        gov_file = domain / ("scaling_governor" if is_cpu else "governor")
        text = str(value).strip()
        if name in _MIN | _MAX | _SETSPEED:
            lo, hi = self._limits(domain, is_cpu)
            new = int(text)
            if (name in _MIN and new > hi) or (name in _MAX and new < lo):
                self._reject(path, value, "min above max")
            if name in _SETSPEED and (self.read_text(gov_file) or "") != "userspace":
                self._reject(path, value, "governor is not userspace")
        if name in ("scaling_governor", "governor"):
            allowed = (self.read_text(domain / f"{'scaling_' if is_cpu else ''}available_governors") or "").split()
            if text not in allowed:
                self._reject(path, value, "unknown governor")
        super().write(path, value)
        self.writes.append((self.rel(path), text))
        if gov_file.exists():
            self._update_cur(domain, is_cpu, name)

    def _limits(self, domain: Path, is_cpu: bool) -> tuple[int, int]:
        prefix = "scaling_" if is_cpu else ""
        return (
            self.read_int(domain / f"{prefix}min_freq") or 0,
            self.read_int(domain / f"{prefix}max_freq") or 0,
        )

    def _update_cur(self, domain: Path, is_cpu: bool, written: str) -> None:
        lo, hi = self._limits(domain, is_cpu)
        cur_file = domain / ("scaling_cur_freq" if is_cpu else "cur_freq")
        governor = self.read_text(domain / ("scaling_governor" if is_cpu else "governor"))
        cur = self.read_int(cur_file) or hi
        if governor == "userspace" and written in _SETSPEED:
            cur = self.read_int(domain / ("scaling_setspeed" if is_cpu else "userspace/set_freq")) or cur
        elif governor == "performance":
            cur = hi
        elif governor == "powersave":
            cur = lo
        cur = max(lo, min(hi, cur))
        SysfsIO.write(self, cur_file, cur)
        if not is_cpu and (domain / "target_freq").exists():
            SysfsIO.write(self, domain / "target_freq", cur)

    def _reject(self, path: Path, value: str | int, why: str) -> None:
        raise DeviceError(f"{self._error(path, value, OSError(errno.EINVAL, 'Invalid argument'))} [fake: {why}]")
