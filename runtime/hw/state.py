"""Crash recovery: a JSON copy of the original clock governors, limits and fan settings.

While it runs, the open board owns its state (:meth:`~lotus.runtime.hw.base.Board.take_control` /
``release_control``). This file is the copy that survives a crash: it stores system paths
(``/sys/...``), so ``lotus restore-clocks`` can restore without detecting the board again (e.g.
from systemd ``ExecStopPost=``). Restoring is idempotent and tolerant: a control that no longer
exists is skipped and reported.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from lotus.core.errors import ConfigError, DeviceError
from lotus.runtime.hw.base import Board, RestoreReport
from lotus.runtime.hw.clock import write_limits
from lotus.runtime.hw.sysfs import SysfsIO

log = logging.getLogger(__name__)
STATE_VERSION = 1


__all__ = ["STATE_VERSION", "RestoreReport", "load_state", "restore", "save_state"]


def save_state(board: Board, state_file: Path, overwrite: bool = False) -> dict[str, Any]:
    """Write the board's original settings to ``state_file`` (atomically) and return them.

    The originals are :meth:`Board.state_records`: the saved settings of parts the board has
    changed, the current ones of the rest. If the file already exists, a previous run did not
    restore (crash): its originals are kept, because the clocks now are probably the ones it
    pinned. Pass ``overwrite=True`` to replace it.
    """
    state_file = Path(state_file)
    if state_file.exists() and not overwrite:
        try:
            previous: dict[str, Any] = json.loads(state_file.read_text())
            if isinstance(previous, dict) and isinstance(previous.get("records"), list):
                log.warning("%s exists (previous run did not restore): keeping its original settings", state_file)
                return previous
            log.warning("%s has no 'records' list: replacing it with the current settings", state_file)
        except (OSError, ValueError):
            log.warning("%s is unreadable: replacing it with the current settings", state_file)
    state = {"version": STATE_VERSION, "backend": board.backend, "records": board.state_records()}
    state_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = state_file.with_name(state_file.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1))
    os.replace(tmp, state_file)
    return state


def load_state(state_file: Path) -> dict[str, Any] | None:
    """The saved state, None if there is no file; ConfigError if it is corrupt."""
    try:
        state = json.loads(Path(state_file).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"clock state file {state_file} is unreadable ({exc}); delete it and reboot") from exc
    if not isinstance(state, dict) or not isinstance(state.get("records"), list):
        raise ConfigError(f"clock state file {state_file} has no 'records' list")
    return state


def restore(state_file: Path, sysfs_root: Path = Path("/"), io: SysfsIO | None = None) -> RestoreReport:
    """Write back every setting saved in ``state_file`` (after a crash, from a fresh process).

    A running daemon gives control back through its open board instead. Missing controls are
    skipped, failed writes reported.
    """
    io = io or SysfsIO(sysfs_root)
    report = RestoreReport()
    state = load_state(state_file)
    if state is None:
        report.skipped.append(f"no state file at {state_file}: nothing to restore")
        return report
    for record in state["records"]:
        try:
            kind = record.get("kind")
            if kind == "freq":
                _restore_freq(io, record, report)
            elif kind == "file":
                _restore_file(io, record, report)
            elif kind == "nvml":
                _restore_nvml(record, report)
            else:
                report.skipped.append(f"unknown record kind {kind!r}")
        except DeviceError as exc:
            report.failed.append(str(exc))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            report.skipped.append(f"malformed record {record!r}: {exc}")
    return report


def _restore_freq(io: SysfsIO, rec: dict[str, Any], report: RestoreReport) -> None:
    directory = io.path(rec["dir"])
    if not directory.is_dir():
        report.skipped.append(f"{rec.get('name')}: {rec['dir']} is gone")
        return
    min_path, max_path = directory / rec["min_file"], directory / rec["max_file"]
    lo, hi = rec.get("min"), rec.get("max")
    if lo is not None and hi is not None:
        write_limits(io, min_path, max_path, int(lo), int(hi))
    governor = rec.get("governor")
    if governor and io.read_text(directory / rec["governor_file"]) != governor:
        io.write(directory / rec["governor_file"], governor)
    report.restored.append(f"{rec.get('name')}: governor={governor} min={lo} max={hi} ({rec['dir']})")


def _restore_file(io: SysfsIO, rec: dict[str, Any], report: RestoreReport) -> None:
    path = io.path(rec["path"])
    if not path.exists():
        report.skipped.append(f"{rec.get('name')}: {rec['path']} is gone")
        return
    io.write(path, rec["value"])
    report.restored.append(f"{rec.get('name')}: {rec['path']}={rec['value']}")


def _restore_nvml(rec: dict[str, Any], report: RestoreReport) -> None:
    if not rec.get("reset_locked_clocks"):
        report.skipped.append(f"{rec.get('name')}: NVML clocks were never set")
        return
    from lotus.runtime.hw.nvml import load_pynvml

    nvml = load_pynvml()
    if nvml is None:
        report.skipped.append(f"{rec.get('name')}: NVML unavailable, cannot reset locked clocks")
        return
    try:
        nvml.nvmlDeviceResetGpuLockedClocks(nvml.nvmlDeviceGetHandleByIndex(int(rec.get("index", 0))))
        report.restored.append(f"{rec.get('name')}: NVML locked clocks reset")
    except nvml.NVMLError as exc:
        report.failed.append(f"{rec.get('name')}: NVML reset failed ({exc}); run as root")
    finally:
        nvml.nvmlShutdown()
