"""Board state has one owner: the open board takes and gives back control, and its domains know it.

The daemon switches the governor active -> shadow -> active ... on a fake JetPack 6 tree behind a
:class:`FakeKernel` (which rejects ``set_freq`` unless the governor really is ``userspace``): every
re-entry into ``active`` must be able to write clocks again, and after ``stop()`` the tree's
governors, min/max limits and fan must be exactly as they started.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lotus.core.errors import DeviceError
from lotus.core.schema import N_FEATURES
from lotus.runtime.hw import save_state
from lotus.runtime.hw.fake_sysfs import GPU_DEVFREQ, FakeKernel, write_fake_sysfs
from lotus.runtime.hw.jetson import detect

CPU = "sys/devices/system/cpu/cpufreq/policy0"
GPU = GPU_DEVFREQ["jetpack6"]
FAN = "sys/class/hwmon/hwmon2"
CPU_KHZ, GPU_HZ = 1190400, 510000000


def _controls(root: Path) -> dict[str, str]:
    names = [f"{CPU}/scaling_governor", f"{CPU}/scaling_min_freq", f"{CPU}/scaling_max_freq",
             f"{GPU}/governor", f"{GPU}/min_freq", f"{GPU}/max_freq", f"{FAN}/pwm1"]  # fmt: skip
    return {n: (root / n).read_text().strip() for n in names}


def _read(root: Path, rel: str) -> str:
    return (root / rel).read_text().strip()


@pytest.fixture
def quadrant_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx")
    from lotus.runtime.testing import write_quadrant_model

    return write_quadrant_model(tmp_path_factory.mktemp("repo"))


def test_mode_switches_keep_clock_writes_working_and_restore_exactly(tmp_path: Path, quadrant_repo: Path) -> None:
    from lotus.runtime.config import load_settings
    from lotus.runtime.daemon import Daemon

    root = write_fake_sysfs(tmp_path / "jp6", "jetpack6")
    state_file = tmp_path / "state" / "clocks.json"
    settings = load_settings(
        None,
        {
            "board": {"backend": "jetson", "sysfs_root": str(root), "state_file": str(state_file)},
            "models": {"repository": str(quadrant_repo), "load": [{"name": "quadrants"}], "threads": 1,
                       "warmup_frames": 1},
            "governor": {"policy": f"fixed:{CPU_KHZ},{GPU_HZ}", "mode": "active"},
        },
    )  # fmt: skip
    original = _controls(root)
    board = detect(root, io=FakeKernel(root))
    assert board is not None
    daemon = Daemon(settings, board=board)
    obs = np.zeros((1, N_FEATURES), dtype=np.float32)
    try:
        daemon.start()
        gov = daemon.governor
        assert gov is not None
        for round_ in range(3):  # start, then two re-entries into active
            decision = gov.decide(obs)
            assert decision.applied and gov.mode == "active" and gov.write_errors == 0, round_
            assert _read(root, f"{CPU}/scaling_governor") == "userspace"
            assert _read(root, f"{CPU}/scaling_setspeed") == str(CPU_KHZ)
            assert _read(root, f"{GPU}/governor") == "userspace"
            assert _read(root, f"{GPU}/userspace/set_freq") == str(GPU_HZ)
            board.set_clocks(cpu=960000, gpu=408000000)  # a direct write works too
            assert board.snapshot().freqs == {"cpu": 960000, "gpu": 408000000}
            assert state_file.exists()
            if round_ == 2:
                break
            gov.set_mode("shadow")
            assert _controls(root) == original, round_  # the kernel governors have the clocks back
            assert board.domains["cpu"].governor() == "schedutil"  # and the domain knows it
            assert board.domains["gpu"].governor() == "nvhost_podgov"
            assert not state_file.exists()
            gov.decide(obs)  # shadow: decides, writes nothing
            assert _controls(root) == original
            gov.set_mode("active")
    finally:
        daemon.stop()
    assert _controls(root) == original
    assert not state_file.exists()


def test_board_take_and_release_control(jp6: Path) -> None:
    kernel = FakeKernel(jp6)
    board = detect(jp6, io=kernel)
    assert board is not None
    original = _controls(jp6)
    for _ in range(2):
        assert board.take_control() == ["cpu: userspace", "gpu: userspace"]
        board.set_clocks(cpu=729600, gpu=306000000)
        board.set_fan_pwm(255)
        assert _read(jp6, f"{FAN}/pwm1") == "255"
        report = board.release_control()
        assert report.ok, report
        assert _controls(jp6) == original
        assert board.domains["cpu"].governor() == "schedutil" and board.domains["cpu"].method == "minmax"
    board.close()
    assert _controls(jp6) == original


def test_take_control_twice_keeps_the_first_originals(jp6: Path) -> None:
    board = detect(jp6, io=FakeKernel(jp6))
    assert board is not None
    original = _controls(jp6)
    board.take_control()
    board.set_clocks(cpu=729600)
    board.take_control()  # already in control: the originals are not overwritten by the pinned state
    assert board.release_control().ok
    assert _controls(jp6) == original


def test_close_gives_control_back(jp6: Path) -> None:
    board = detect(jp6, io=FakeKernel(jp6))
    assert board is not None
    original = _controls(jp6)
    board.take_control()
    board.set_clocks(cpu=345600, gpu=306000000)
    board.close()
    assert _controls(jp6) == original
    board.close()  # idempotent


def test_state_file_records_the_originals_while_in_control(jp6: Path, tmp_path: Path) -> None:
    """A state file saved after taking control still holds the originals (crash recovery)."""
    from lotus.runtime.hw import restore

    board = detect(jp6, io=FakeKernel(jp6))
    assert board is not None
    original = _controls(jp6)
    board.take_control()
    board.set_clocks(cpu=345600, gpu=306000000)
    state = save_state(board, tmp_path / "clocks.json")
    cpu = next(r for r in state["records"] if r["name"] == "cpu")
    assert cpu["governor"] == "schedutil" and cpu["min"] == 115200 and cpu["max"] == 1510400
    assert restore(tmp_path / "clocks.json", jp6).ok  # as `lotus restore-clocks` after kill -9
    assert _controls(jp6) == original


def test_take_control_adopts_originals_from_a_stale_state_file(jp6: Path, tmp_path: Path) -> None:
    """After a crash the tree holds the pinned clocks; the state file holds the real originals."""
    original = _controls(jp6)
    crashed = detect(jp6, io=FakeKernel(jp6))
    assert crashed is not None
    state_file = tmp_path / "clocks.json"
    save_state(crashed, state_file)
    crashed.take_control()
    crashed.set_clocks(cpu=345600, gpu=306000000)
    crashed.set_fan_pwm(255)  # ... and the process dies here (no release)
    assert _controls(jp6) != original
    board = detect(jp6, io=FakeKernel(jp6))
    assert board is not None
    state = save_state(board, state_file)  # keeps the stale file's originals
    assert board.take_control(state["records"]) == ["cpu: userspace", "gpu: userspace"]
    board.set_clocks(cpu=960000, gpu=510000000)
    report = board.release_control()
    assert report.ok and any(line.startswith("fan:") for line in report.restored), report
    assert _controls(jp6) == original


def test_fan_never_set_is_never_written(jp6: Path) -> None:
    kernel = FakeKernel(jp6)
    board = detect(jp6, io=kernel)
    assert board is not None
    board.take_control()
    (jp6 / FAN / "pwm1").write_text("120\n")  # nvfancontrol keeps driving the fan
    assert board.release_control().ok
    assert _read(jp6, f"{FAN}/pwm1") == "120"
    assert not any("hwmon" in path for path, _ in kernel.writes)


def test_release_failure_is_reported_and_retried(jp6: Path) -> None:
    board = detect(jp6, io=FakeKernel(jp6))
    assert board is not None
    original = _controls(jp6)
    board.take_control()
    board.set_clocks(cpu=729600, gpu=306000000)
    gov_file = jp6 / GPU / "governor"
    gov_file.unlink()
    gov_file.mkdir()  # a write now fails with EISDIR
    report = board.release_control()
    assert not report.ok and "governor" in report.failed[0]
    gov_file.rmdir()
    gov_file.write_text("userspace\n")
    assert board.release_control().ok  # the gpu domain kept its originals for the retry
    assert _controls(jp6) == original


def test_bad_values_raise_device_error(jp6: Path) -> None:
    board = detect(jp6)
    assert board is not None
    with pytest.raises(DeviceError, match=r"cpu.*1000000"):
        board.domains["cpu"].set(1000000)
    with pytest.raises(DeviceError, match=r"gpu.*min 624750000 > max 306000000"):
        board.domains["gpu"].set_limits(624750000, 306000000)
    with pytest.raises(DeviceError, match=r"fan.*300"):
        board.set_fan_pwm(300)


def test_real_boards_have_no_activity_hook_and_cannot_tell_throttling(jp6: Path, x86: Path) -> None:
    from lotus.runtime.hw.base import Board, ClockDomain
    from lotus.runtime.hw.linux import detect as linux_detect

    for board in (detect(jp6), linux_detect(x86)):
        assert board is not None
        assert isinstance(board, Board)
        assert all(isinstance(d, ClockDomain) for d in board.domains.values())
        board.note_activity(True)
        board.note_activity(False)
        assert board.firmware_throttled() is None
        board.close()


def _settings(root: Path, repo: Path, state_file: Path, mode: str = "active") -> object:
    from lotus.runtime.config import load_settings

    return load_settings(
        None,
        {
            "board": {"backend": "jetson", "sysfs_root": str(root), "state_file": str(state_file)},
            "models": {"repository": str(repo), "load": [{"name": "quadrants"}], "threads": 1, "warmup_frames": 1},
            "governor": {"policy": f"fixed:{CPU_KHZ},{GPU_HZ}", "mode": mode},
        },
    )


def test_daemon_start_over_a_stale_state_file_restores_the_real_originals(tmp_path: Path, quadrant_repo: Path) -> None:
    from lotus.runtime.daemon import Daemon

    root = write_fake_sysfs(tmp_path / "jp6", "jetpack6")
    state_file = tmp_path / "clocks.json"
    original = _controls(root)
    crashed = detect(root, io=FakeKernel(root))
    assert crashed is not None
    save_state(crashed, state_file)
    crashed.take_control()
    crashed.set_clocks(cpu=345600, gpu=306000000)  # killed here: pinned clocks, stale state file
    board = detect(root, io=FakeKernel(root))
    assert board is not None
    daemon = Daemon(_settings(root, quadrant_repo, state_file), board=board)  # type: ignore[arg-type]
    try:
        daemon.start()
        assert daemon.governor is not None
        assert daemon.governor.decide(np.zeros((1, N_FEATURES), dtype=np.float32)).applied
    finally:
        daemon.stop()
    assert _controls(root) == original
    assert not state_file.exists()


class _NoUserspaceCpu(FakeKernel):
    """A kernel whose cpufreq driver lists ``userspace`` but refuses to switch to it."""

    def write(self, path: Path, value: str | int) -> None:
        if Path(path).name == "scaling_governor" and str(value) == "userspace":
            self._reject(path, value, "userspace refused")
        super().write(path, value)


def test_failed_take_at_run_time_raises_gives_back_and_keeps_serving(tmp_path: Path, quadrant_repo: Path) -> None:
    from lotus.runtime.daemon import Daemon

    root = write_fake_sysfs(tmp_path / "jp6", "jetpack6")
    (root / CPU / "scaling_max_freq").write_text("1190400\n")  # an operator's cap: take_control opens it
    state_file = tmp_path / "clocks.json"
    original = _controls(root)
    board = detect(root, io=_NoUserspaceCpu(root))
    assert board is not None
    daemon = Daemon(_settings(root, quadrant_repo, state_file, mode="shadow"), board=board)  # type: ignore[arg-type]
    try:
        daemon.start()
        with pytest.raises(DeviceError, match="userspace refused"):
            daemon._control(True)
        assert (f"/{CPU}/scaling_max_freq", "1190400") in board.io.writes[-2:]  # type: ignore[attr-defined]
        assert _controls(root) == original  # the opened cpu range was given back
        assert not state_file.exists()
        assert board.snapshot().freqs["cpu"] is not None  # still serving
    finally:
        daemon.stop()
    assert _controls(root) == original
