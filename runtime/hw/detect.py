"""Pick the best board backend for a root, and write a paste-able diagnostic report."""

from __future__ import annotations

import logging
import os
import platform
import stat
import sys
from importlib import metadata
from pathlib import Path

from lotus.core.errors import DeviceError
from lotus.runtime.hw import cpu, fan, gpu, nvpmodel, power, thermal
from lotus.runtime.hw.base import BACKENDS, Board, load_backend

log = logging.getLogger(__name__)

AUTO_ORDER = ("jetson", "nvml", "linux")


def detect_board(sysfs_root: Path = Path("/"), prefer: str | None = None) -> Board | None:
    """The best backend: jetson (GPU devfreq + Tegra zones), else nvml, else linux (cpufreq).

    Returns None when nothing matches; the caller then falls back to a simulated board. NVML talks
    to the real driver, not to ``sysfs_root``, so it is only tried automatically when the root is
    ``/`` (a fake tree on a GPU host must not detect the host's GPU). ``prefer`` names one backend
    from :data:`~lotus.runtime.hw.base.BACKENDS` and raises DeviceError if it does not detect.
    """
    root = Path(sysfs_root)
    if prefer is not None:
        board = load_backend(prefer)(root)
        if board is None:
            raise DeviceError(f"board backend {prefer!r} found no hardware under {root} (`lotus boards --diagnose`)")
        return board
    names = [n for n in AUTO_ORDER if n in BACKENDS] + [n for n in BACKENDS if n not in AUTO_ORDER and n != "sim"]
    for name in names:
        if name == "nvml" and root.resolve() != Path("/"):
            continue
        board = load_backend(name)(root)
        if board is not None:
            log.info("board backend: %s (root %s)", name, root)
            return board
    return None


def _describe_path(path: Path) -> str:
    try:
        st = path.lstat()
    except OSError:
        return "missing"
    kind = "dir" if stat.S_ISDIR(st.st_mode) else "link" if stat.S_ISLNK(st.st_mode) else "file"
    rights = ("r" if os.access(path, os.R_OK) else "-") + ("w" if os.access(path, os.W_OK) else "-")
    return f"{kind} {stat.filemode(st.st_mode)} uid={st.st_uid} gid={st.st_gid} access={rights}"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def diagnose(sysfs_root: Path = Path("/")) -> str:
    """A plain-text report: system, versions, every probed path with permissions, the detection."""
    root = Path(sysfs_root)

    def read(rel: str) -> str:
        try:
            return (root / rel.lstrip("/")).read_text(errors="replace").strip().replace("\x00", "")
        except OSError:
            return "(unreadable)"

    lines = [
        "# lotus boards --diagnose",
        f"sysfs_root: {root}",
        f"uid: {os.geteuid()}  python: {sys.version.split()[0]}  machine: {platform.machine()}",
        f"kernel: {read('/proc/version')}",
        f"model: {read('/proc/device-tree/model')}",
        f"l4t: {read('/etc/nv_tegra_release').splitlines()[0] if read('/etc/nv_tegra_release') else ''}",
        "versions: " + ", ".join(f"{p}={_version(p)}" for p in ("lotus-edge", "nvidia-ml-py", "typer", "rich")),
        "",
        "## probed paths",
    ]
    patterns = [
        cpu.CPUFREQ_DIR + "/policy*",
        *gpu.probe_paths(),
        thermal.THERMAL_DIR + "/thermal_zone*",
        power.INA3221_HWMON,
        *power.INA3221_IIO,
        power.RAPL_DIR + "/intel-rapl:*",
        *fan.probe_paths(),
        nvpmodel.STATUS_FILE,
    ]
    for pattern in patterns:
        matches = sorted(root.glob(pattern.lstrip("/"))) if "*" in pattern else [root / pattern.lstrip("/")]
        matches = [m for m in matches if m.exists() or "*" not in pattern]
        if not matches:
            lines.append(f"{pattern}: missing")
        for match in matches:
            lines.append(f"{'/' + str(match.relative_to(root))}: {_describe_path(match)}")
    for policy in sorted(root.glob(cpu.CPUFREQ_DIR.lstrip("/") + "/policy*")):
        for name in ("scaling_governor", "scaling_min_freq", "scaling_max_freq", "scaling_setspeed"):
            lines.append(f"  {name}: {_describe_path(policy / name)}")
    lines += ["", "## detection"]
    for name in BACKENDS:
        if name == "nvml" and root.resolve() != Path("/"):
            lines.append("nvml: skipped (fake root)")
            continue
        try:
            board = load_backend(name)(root)
        except Exception as exc:  # report, never crash the diagnostic
            lines.append(f"{name}: error {type(exc).__name__}: {exc}")
            continue
        lines.append(f"{name}: {'detected' if board else 'not detected'}")
        if board is not None:
            for note in board.describe().notes:
                lines.append(f"  note: {note}")
            board.close()
    return "\n".join(lines) + "\n"
