"""Failures: unwritable or missing controls raise DeviceError; bad sensors read as missing."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from lotus.core.errors import ConfigError, DeviceError
from lotus.runtime.hw import restore, save_state
from lotus.runtime.hw.fake_sysfs import GPU_DEVFREQ
from lotus.runtime.hw.jetson import detect

POLICY = "sys/devices/system/cpu/cpufreq/policy0"


def make_dir(path: Path) -> None:
    """As root, chmod 0444 does not stop writes; a directory in the file's place does (EISDIR)."""
    path.unlink()
    path.mkdir()


def test_unwritable_control_raises_device_error(jp6: Path) -> None:
    board = detect(jp6)
    assert board is not None
    make_dir(jp6 / POLICY / "scaling_max_freq")
    with pytest.raises(DeviceError) as info:
        board.set_clocks(cpu=729600)
    message = str(info.value)
    assert "scaling_max_freq" in message and "EISDIR" in message and "729600" in message
    assert "cpu" not in board.snapshot().freqs or board.snapshot().freqs["cpu"] == 1510400
    cpu_info = next(d for d in board.describe().domains if d.name == "cpu")
    assert cpu_info.writable is False and cpu_info.method == "none"


def test_missing_control_raises_with_hint(jp5: Path) -> None:
    board = detect(jp5)
    assert board is not None
    (jp5 / GPU_DEVFREQ["jetpack5"] / "max_freq").unlink()
    with pytest.raises(DeviceError, match=r"max_freq.*ENOENT.*does not exist"):
        board.set_clocks(gpu=408000000)


def test_permission_hint_in_message(jp6: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import os

    board = detect(jp6)
    assert board is not None

    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(DeviceError, match="run lotus as root, or install the udev/tmpfiles rule"):
        board.domains["gpu"].set_governor("userspace")


def test_garbage_and_missing_sensors_read_as_missing(jp6: Path, caplog: pytest.LogCaptureFixture) -> None:
    board = detect(jp6)
    assert board is not None
    zones = jp6 / "sys/class/thermal"
    (zones / "thermal_zone0/temp").write_text("garbage\n")
    (zones / "thermal_zone1/temp").unlink()  # vanished before the first read
    make_dir(zones / "thermal_zone2/temp")  # read() fails with EISDIR, like EIO from a failing sensor
    ina = jp6 / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon1"
    (ina / "in1_input").write_text("\n")
    (jp6 / "sys/class/hwmon/hwmon2/pwm1").unlink()
    with caplog.at_level(logging.WARNING):
        snap = board.snapshot()
        board.snapshot()
    assert sorted(snap.temps_c) == ["soc1-thermal", "soc2-thermal"]
    assert "VDD_IN" not in snap.power_w and "VDD_SOC" in snap.power_w
    assert snap.fan_pwm is None
    warnings = [r.message for r in caplog.records if "thermal_zone0" in r.getMessage()]
    assert len(warnings) == 1  # warned once, not once per read
    (zones / "thermal_zone0/temp").write_text("50000\n")
    assert board.snapshot().temps_c["cpu-thermal"] == 50.0  # recovers


def test_garbage_tables_and_nvpmodel(jp6: Path) -> None:
    gpu = jp6 / GPU_DEVFREQ["jetpack6"]
    (gpu / "available_frequencies").write_text("306000000 junk 408000000\n")
    (jp6 / "var/lib/nvpmodel/status").write_text("pmode:xx fmode:cool\n")
    board = detect(jp6)
    assert board is not None
    assert board.domains["gpu"].available() == (306000000, 408000000)
    nvp = board.nvpmodel()
    assert nvp is not None and nvp.id is None and nvp.fan_mode == "cool"


def test_bad_state_file(tmp_path: Path, jp6: Path) -> None:
    bad = tmp_path / "clocks.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="unreadable"):
        restore(bad, jp6)
    bad.write_text('{"records": [{"kind": "freq"}, {"kind": "weird"}]}')
    report = restore(bad, jp6)
    assert report.ok and len(report.skipped) == 2


def test_restore_reports_failed_writes(jp6: Path, tmp_path: Path) -> None:
    board = detect(jp6)
    assert board is not None
    state_file = tmp_path / "clocks.json"
    save_state(board, state_file)
    shutil.rmtree(jp6 / "sys/class/hwmon/hwmon2")
    make_dir(jp6 / POLICY / "scaling_max_freq")
    report = restore(state_file, jp6)
    assert not report.ok and "scaling_max_freq" in report.failed[0]
    assert any(line.startswith("gpu:") for line in report.restored)
