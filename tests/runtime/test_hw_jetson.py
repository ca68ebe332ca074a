"""The jetson backend against fake JetPack 5 and JetPack 6 trees."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from lotus.core.errors import DeviceError
from lotus.runtime.hw import detect_board, restore, save_state
from lotus.runtime.hw.fake_sysfs import GPU_DEVFREQ, ORIN_NANO_CPU_KHZ, ORIN_NANO_GPU_HZ, FakeKernel
from lotus.runtime.hw.jetson import detect

POLICY = "sys/devices/system/cpu/cpufreq/policy0"


def gpu_dir(root: Path) -> Path:
    layout = "jetpack5" if (root / GPU_DEVFREQ["jetpack5"]).exists() else "jetpack6"
    return root / GPU_DEVFREQ[layout]


def test_discovery(jetson_root: Path) -> None:
    board = detect_board(jetson_root)
    assert board is not None and board.backend == "jetson"
    assert set(board.domains) == {"cpu", "gpu"}
    assert board.domains["cpu"].available() == ORIN_NANO_CPU_KHZ
    assert board.domains["gpu"].available() == ORIN_NANO_GPU_HZ
    assert board.domains["gpu"].directory == gpu_dir(jetson_root)  # type: ignore[attr-defined]
    desc = board.describe()
    cpu = next(d for d in desc.domains if d.name == "cpu")
    assert cpu.cpus == (0, 1, 2, 3, 4, 5) and cpu.unit == "kHz" and cpu.governor == "schedutil"
    assert [z.name for z in desc.zones] == [
        "cpu-thermal", "gpu-thermal", "soc0-thermal", "soc1-thermal", "soc2-thermal",
    ]  # fmt: skip
    assert all(z.passive_c == 99.0 for z in desc.zones)
    assert all(any(t.type == "critical" and t.temp_c == 104.5 for t in z.trips) for z in desc.zones)
    assert [r.name for r in desc.rails] == ["VDD_IN", "VDD_CPU_GPU_CV", "VDD_SOC"]
    assert desc.nvpmodel is not None and (desc.nvpmodel.id, desc.nvpmodel.name) == (0, "15W")
    assert desc.nvpmodel.fan_mode == "quiet"
    assert desc.fan is not None and desc.fan.pwm == 84 and desc.fan.rpm == 2100
    assert desc.model == "NVIDIA Jetson Orin Nano Developer Kit"
    json.dumps(desc.to_dict())  # serialisable
    board.close()


def test_snapshot_reads(jetson_root: Path) -> None:
    board = detect(jetson_root)
    assert board is not None
    first = board.snapshot()
    assert first.freqs == {"cpu": 1510400, "gpu": 624750000}
    assert first.temps_c["cpu-thermal"] == 45.5 and first.temps_c["soc2-thermal"] == 43.0
    assert first.power_w["VDD_IN"] == pytest.approx(5.5)
    assert first.power_w["VDD_SOC"] == pytest.approx(4.992 * 0.3)
    assert first.gpu_load_pct == pytest.approx(31.2)
    assert first.fan_pwm == 84 and first.cpu_util_pct is None  # utilisation needs two reads
    # sensors change between reads: cached descriptors must see the new values
    (jetson_root / "sys/class/thermal/thermal_zone1/temp").write_text("71250\n")
    (jetson_root / "proc/stat").write_text("cpu  1300 0 600 10500 100 0 0 0 0 0\n")
    second = board.snapshot()
    assert second.temps_c["gpu-thermal"] == 71.25
    assert second.cpu_util_pct == pytest.approx(100 * 400 / 900)
    board.close()


def test_gpu_found_through_class_devfreq_only(jp6: Path) -> None:
    real = jp6 / GPU_DEVFREQ["jetpack6"]
    link = jp6 / "sys/class/devfreq/17000000.gpu"
    link.unlink()
    shutil.move(real, link)  # now only /sys/class/devfreq/17000000.gpu exists
    board = detect(jp6)
    assert board is not None and board.domains["gpu"].directory == link  # type: ignore[attr-defined]


def test_not_a_jetson_without_tegra_zones(jp6: Path) -> None:
    for zone in (jp6 / "sys/class/thermal").iterdir():
        (zone / "type").write_text("acpitz\n")
    assert detect(jp6) is None
    board = detect_board(jp6)
    assert board is not None and board.backend == "linux"


def test_pinning_safe_order(jetson_root: Path) -> None:
    kernel = FakeKernel(jetson_root)
    board = detect(jetson_root, io=kernel)
    assert board is not None
    cpu, gpu = board.domains["cpu"], board.domains["gpu"]
    policy = jetson_root / POLICY
    board.set_clocks(cpu=729600, gpu=408000000)  # raising min: max first, then min
    assert (policy / "scaling_min_freq").read_text().strip() == "729600"
    assert (policy / "scaling_max_freq").read_text().strip() == "729600"
    assert (gpu_dir(jetson_root) / "min_freq").read_text().strip() == "408000000"
    assert cpu.current() == 729600 and gpu.current() == 408000000  # the fake kernel clamps cur_freq
    assert [Path(p).name for p, _ in kernel.writes[:2]] == ["scaling_max_freq", "scaling_min_freq"]
    kernel.writes.clear()
    cpu.set(1510400)  # going up from a pinned 729600: max first, else min > max
    cpu.set(115200)  # going down: min first, else max < min
    assert [(Path(p).name, v) for p, v in kernel.writes] == [
        ("scaling_max_freq", "1510400"), ("scaling_min_freq", "1510400"),
        ("scaling_min_freq", "115200"), ("scaling_max_freq", "115200"),
    ]  # fmt: skip
    assert cpu.limits() == (115200, 115200) and cpu.current() == 115200
    gpu.set_limits(306000000, 624750000)
    assert gpu.limits() == (306000000, 624750000)


def test_fake_kernel_rejects_unsafe_order(jp6: Path) -> None:
    kernel = FakeKernel(jp6)
    policy = jp6 / POLICY
    kernel.write(policy / "scaling_max_freq", 729600)
    with pytest.raises(DeviceError, match="EINVAL"):
        kernel.write(policy / "scaling_min_freq", 1510400)
    with pytest.raises(DeviceError, match="not userspace"):
        kernel.write(policy / "scaling_setspeed", 729600)


def test_userspace_control(jetson_root: Path) -> None:
    kernel = FakeKernel(jetson_root)
    board = detect(jetson_root, io=kernel)
    assert board is not None
    board.set_clocks(cpu=729600)  # pinned first, then take_control opens the range again
    assert board.take_control() == ["cpu: userspace", "gpu: userspace"]
    assert (jetson_root / POLICY / "scaling_governor").read_text().strip() == "userspace"
    assert board.domains["cpu"].limits() == (115200, 1510400)
    kernel.writes.clear()
    board.set_clocks(cpu=960000, gpu=510000000)
    assert [Path(p).name for p, _ in kernel.writes] == ["scaling_setspeed", "set_freq"]
    assert (gpu_dir(jetson_root) / "userspace/set_freq").read_text().strip() == "510000000"
    snap = board.snapshot()
    assert snap.freqs == {"cpu": 960000, "gpu": 510000000}


def test_set_rejects_unlisted_frequency(jp5: Path) -> None:
    board = detect(jp5)
    assert board is not None
    with pytest.raises(DeviceError, match="available"):
        board.domains["cpu"].set(1000000)
    with pytest.raises(DeviceError, match="min"):
        board.domains["gpu"].set_limits(624750000, 306000000)
    with pytest.raises(DeviceError, match="0..255"):
        board.set_fan_pwm(300)
    board.set_fan_pwm(200)
    assert (jp5 / "sys/class/hwmon/hwmon2/pwm1").read_text().strip() == "200"


def _controls(root: Path) -> dict[str, str]:
    files = [
        POLICY + "/scaling_governor", POLICY + "/scaling_min_freq", POLICY + "/scaling_max_freq",
        "sys/class/hwmon/hwmon2/pwm1",
    ]  # fmt: skip
    gpu = gpu_dir(root)
    out = {f: (root / f).read_text() for f in files}
    out.update({n: (gpu / n).read_text() for n in ("governor", "min_freq", "max_freq")})
    return out


def test_save_change_restore(jetson_root: Path, tmp_path: Path) -> None:
    kernel = FakeKernel(jetson_root)
    board = detect(jetson_root, io=kernel)
    assert board is not None
    before = _controls(jetson_root)
    state_file = tmp_path / "run" / "clocks.json"
    save_state(board, state_file)
    board.take_control()
    board.set_clocks(cpu=345600, gpu=306000000)
    board.domains["cpu"].set_governor("schedutil")
    board.domains["cpu"].set_limits(345600, 345600)
    board.set_fan_pwm(255)
    assert _controls(jetson_root) != before
    # a second save (e.g. the daemon restarted after a crash) must keep the originals
    save_state(board, state_file)
    report = restore(state_file, jetson_root, io=kernel)
    assert report.ok and len(report.restored) == 3, report
    assert _controls(jetson_root) == before
    again = restore(state_file, jetson_root, io=kernel)  # idempotent
    assert again.ok and _controls(jetson_root) == before


def test_restore_tolerates_missing_controls(jp6: Path, tmp_path: Path) -> None:
    board = detect(jp6)
    assert board is not None
    state_file = tmp_path / "clocks.json"
    save_state(board, state_file)
    shutil.rmtree(jp6 / GPU_DEVFREQ["jetpack6"])
    (jp6 / "sys/class/hwmon/hwmon2/pwm1").unlink()
    report = restore(state_file, jp6)
    assert report.ok
    assert len(report.restored) == 1 and report.restored[0].startswith("cpu:")
    assert any("is gone" in line for line in report.skipped)
    missing = restore(tmp_path / "nope.json", jp6)
    assert missing.ok and "nothing to restore" in missing.skipped[0]


def test_snapshot_is_cheap(jp6: Path) -> None:
    board = detect(jp6)
    assert board is not None
    board.snapshot()
    n = 500
    start = time.perf_counter()
    for _ in range(n):
        board.snapshot()
    per_read_us = (time.perf_counter() - start) / n * 1e6
    assert per_read_us < 1000, f"sensor snapshot took {per_read_us:.0f} us"


def test_two_clusters_and_partial_snapshot(jp6: Path) -> None:
    """Orin NX / AGX: policy0 and policy4, both driven by set_clocks(cpu=...)."""
    cpufreq = jp6 / "sys/devices/system/cpu/cpufreq"
    shutil.copytree(cpufreq / "policy0", cpufreq / "policy4")
    (cpufreq / "policy0/related_cpus").write_text("0-3\n")
    (cpufreq / "policy4/related_cpus").write_text("4-7\n")
    board = detect(jp6)
    assert board is not None
    assert list(board.domains) == ["cpu0", "cpu4", "gpu"]
    assert [d.cpus for d in board.describe().domains[:2]] == [(0, 1, 2, 3), (4, 5, 6, 7)]
    board.set_clocks(cpu=883200)
    assert (cpufreq / "policy4/scaling_max_freq").read_text().strip() == "883200"
    assert (cpufreq / "policy0/scaling_min_freq").read_text().strip() == "883200"
    fast = board.snapshot(power=False, temps=False, util=False)
    assert fast.power_w == {} and fast.temps_c == {} and fast.gpu_load_pct is None
    assert fast.freqs["gpu"] == 624750000


def test_legacy_ina3221_iio_layout(jp5: Path) -> None:
    shutil.rmtree(jp5 / "sys/bus/i2c/drivers/ina3221")
    iio = jp5 / "sys/bus/i2c/drivers/ina3221x/7-0040/iio:device0"
    iio.mkdir(parents=True)
    for n, (name, mw) in enumerate([("VDD_IN", 4200), ("VDD_CPU_GPU", 900), ("VDD_SOC", 700)]):
        (iio / f"rail_name_{n}").write_text(name + "\n")
        (iio / f"in_power{n}_input").write_text(f"{mw}\n")
    board = detect(jp5)
    assert board is not None
    assert board.snapshot().power_w == {"VDD_IN": 4.2, "VDD_CPU_GPU": 0.9, "VDD_SOC": 0.7}
    assert {r.source for r in board.describe().rails} == {"ina3221-iio"}
