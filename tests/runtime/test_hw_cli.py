"""``lotus boards`` through typer's CliRunner, and the restore-clocks function."""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from typer.testing import CliRunner

from lotus.core.errors import DeviceError
from lotus.runtime.hw import save_state
from lotus.runtime.hw.fake_sysfs import FakeKernel
from lotus.runtime.hw.jetson import detect

ROOT = Path(__file__).resolve().parents[2]


def boards_cli() -> ModuleType:
    """lotus.runtime.cli.boards; loaded from its file if the package __init__ cannot import yet.

    runtime/cli/__init__.py imports every command module; while one of them is still being
    written that import fails, which must not hide regressions in this module.
    """
    try:
        return importlib.import_module("lotus.runtime.cli.boards")
    except ImportError:
        spec = importlib.util.spec_from_file_location("lotus_cli_boards", ROOT / "runtime/cli/boards.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module


@pytest.fixture(scope="module")
def cli() -> ModuleType:
    return boards_cli()


def test_fake_sysfs_then_json(cli: ModuleType, tmp_path: Path) -> None:
    runner = CliRunner()
    tree = tmp_path / "tree"
    result = runner.invoke(cli.app, ["fake-sysfs", "--layout", "jetpack5", str(tree)])
    assert result.exit_code == 0, result.output
    assert (tree / "sys/devices/gpu.0/devfreq/17000000.ga10b/available_frequencies").is_file()
    result = runner.invoke(cli.app, ["--json", "--sysfs-root", str(tree)])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["backend"] == "jetson"
    assert [d["name"] for d in doc["domains"]] == ["cpu", "gpu"]
    assert doc["domains"][1]["available"][-1] == 624750000
    assert doc["zones"][0]["passive_c"] == 99.0
    assert doc["nvpmodel"] == {"id": 0, "name": "15W", "fan_mode": "quiet"}


def test_table_diagnose_and_errors(cli: ModuleType, x86: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli.app, ["--sysfs-root", str(x86)])
    assert result.exit_code == 0, result.output
    assert "linux" in result.output and "cpu0" in result.output and "package-0" in result.output
    result = runner.invoke(cli.app, ["--diagnose", "--sysfs-root", str(x86)])
    assert result.exit_code == 0
    assert "## probed paths" in result.output and "linux: detected" in result.output
    assert "/sys/class/powercap/intel-rapl:0: dir" in result.output
    result = runner.invoke(cli.app, ["--json", "--sysfs-root", str(tmp_path / "none")])
    assert json.loads(result.output)["backend"] is None
    result = runner.invoke(cli.app, ["fake-sysfs", "--layout", "arm", str(tmp_path / "t")])
    assert result.exit_code == 2
    result = runner.invoke(cli.app, ["fake-sysfs", "--layout", "x86", str(x86)])  # not empty
    assert result.exit_code == 2


def test_restore_clocks(cli: ModuleType, jp6: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    kernel = FakeKernel(jp6)
    board = detect(jp6, io=kernel)
    assert board is not None
    state_file = tmp_path / "clocks.json"
    save_state(board, state_file)
    board.take_control()
    board.set_clocks(cpu=422400)
    cli.restore_clocks(state_file, jp6)
    out = capsys.readouterr().out
    assert "restored cpu: governor=schedutil min=115200 max=1510400" in out
    policy = jp6 / "sys/devices/system/cpu/cpufreq/policy0"
    assert (policy / "scaling_governor").read_text().strip() == "schedutil"
    (policy / "scaling_min_freq").unlink()
    (policy / "scaling_min_freq").mkdir()
    with pytest.raises(DeviceError, match="could not restore"):
        cli.restore_clocks(state_file, jp6)
