"""The ``lotus sim`` and ``lotus bench env`` commands, and how the console script reports errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lotus.core.cli import build_app

app = build_app()

SUMMARY_KEYS = {
    "latency_mean_ms", "latency_std_ms", "latency_p50_ms", "latency_p99_ms", "deadline_miss_pct",
    "max_cpu_temp_c", "max_gpu_temp_c", "throttled_pct", "energy_per_frame_j", "frames",
}  # fmt: skip
LOTUS = Path(sys.executable).with_name("lotus")
# a sealed box in a 40 C room, the board already warm: max clocks throttle after about 5 minutes
HOT_ROOM = ("--ambient", "40", "--enclosure", "1.3", "--init-temp", "85")


def _sim_json(out_dir: Path, *args: str) -> dict:
    result = CliRunner().invoke(app, ["sim", "--out", str(out_dir), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def performance_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("sim-performance")
    return _sim_json(out, "--policy", "performance", "--duration", "400", *HOT_ROOM), out


@pytest.fixture(scope="module")
def powersave_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("sim-powersave")
    return _sim_json(out, "--policy", "powersave", "--duration", "400", *HOT_ROOM), out


def _lotus(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run the real console script (runtime.cli:main), falling back to calling main()."""
    if LOTUS.exists():
        cmd = [str(LOTUS), *args]
    else:
        cmd = [sys.executable, "-c", "import sys; from lotus.core.cli import main; main(sys.argv[1:])", *args]
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_help_lists_commands() -> None:
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "sim" in result.output and "bench" in result.output


def test_console_script_help(tmp_path: Path) -> None:
    proc = _lotus("--help", cwd=tmp_path)
    assert proc.returncode == 0
    assert "sim" in proc.stdout and "bench" in proc.stdout


def test_sim_json_has_summary_keys(performance_run: tuple[dict, Path]) -> None:
    doc, _ = performance_run
    assert SUMMARY_KEYS <= set(doc)
    assert doc["policy"] == "performance" and doc["board"] == "orin-nano"
    assert doc["frames"] > 400 * 25  # 30 fps camera for 400 s, a few frames dropped at most
    assert doc["latency_p50_ms"] <= doc["latency_p99_ms"]
    assert doc["latency_std_ms"] >= 0 and doc["energy_per_frame_j"] > 0
    assert doc["shutdown"] is False


def test_sim_performance_throttles_powersave_does_not(
    performance_run: tuple[dict, Path], powersave_run: tuple[dict, Path]
) -> None:
    perf, _ = performance_run
    save, _ = powersave_run
    assert perf["throttled_pct"] > 0
    assert save["throttled_pct"] == 0
    assert perf["max_gpu_temp_c"] > 95.0
    assert save["max_gpu_temp_c"] < min(perf["max_gpu_temp_c"] - 5.0, 99.0 - 3.0)
    assert save["latency_mean_ms"] > perf["latency_mean_ms"]
    assert save["deadline_miss_pct"] > perf["deadline_miss_pct"]


def test_sim_writes_csv_and_png(performance_run: tuple[dict, Path]) -> None:
    doc, out = performance_run
    csv_path, png_path = out / "rollout.csv", out / "rollout.png"
    assert doc["csv"] == str(csv_path) and doc["plot"] == str(png_path)
    assert png_path.stat().st_size > 1000
    assert png_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    header = csv_path.read_text().splitlines()[0].split(",")
    assert header[:3] == ["time_s", "cpu_temp_c", "gpu_temp_c"] and "throttled" in header
    data = np.loadtxt(csv_path, delimiter=",", skiprows=1)
    assert data.shape[1] == len(header)
    assert 395.0 <= data[-1, 0] <= 401.0  # the rollout covers the requested duration
    throttled = data[:, header.index("throttled")]
    assert throttled.any() and not throttled[:100].any()


def test_sim_table_output(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["sim", "--out", str(tmp_path), "--duration", "5", "--policy", "powersave"])
    assert result.exit_code == 0, result.output
    assert "powersave" in result.stdout and "lat mean ms" in result.stdout
    assert "rollout.csv" in result.stdout


def test_sim_fixed_policy_and_csv_trace(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("proposals\n10\n200\n")
    doc = _sim_json(tmp_path / "o", "--policy", "fixed:800000,500000000", "--duration", "3", "--trace", str(trace))
    assert doc["policy"] == "fixed:800000,500000000"
    data = np.genfromtxt(tmp_path / "o" / "rollout.csv", delimiter=",", names=True)
    assert set(np.unique(data["cpu_khz"])) == {806400}
    assert set(np.unique(data["gpu_hz"])) == {510000000}


def _bad_inputs(tmp: Path) -> dict[str, list[str]]:
    bad_yaml = tmp / "bad-board.yaml"
    bad_yaml.write_text("name: x\nmodes:\n  15W:\n    cpu_online: 6\n   budget_w: 15\n")
    text_trace = tmp / "text.csv"
    text_trace.write_text("3\n4\nabc\n")
    neg_trace = tmp / "neg.csv"
    neg_trace.write_text("3\n-4\n")
    return {
        "unknown-board": ["--board", "nope"],
        "malformed-yaml": ["--board", str(bad_yaml)],
        "text-trace": ["--trace", str(text_trace)],
        "negative-trace": ["--trace", str(neg_trace)],
        "bad-fixed-policy": ["--policy", "fixed:abc"],
        "unknown-policy": ["--policy", "turbo"],
        "bad-fan": ["--fan", "sideways"],
    }


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("unknown-board", "nope"),
        ("malformed-yaml", "bad-board.yaml"),
        ("text-trace", "line 3"),
        ("negative-trace", "negative"),
        ("bad-fixed-policy", "fixed:abc"),
        ("unknown-policy", "turbo"),
        ("bad-fan", "fan"),
    ],
)
def test_sim_user_error_is_one_line(tmp_path: Path, case: str, needle: str) -> None:
    args = _bad_inputs(tmp_path)[case]
    proc = _lotus("sim", "--duration", "2", "--out", str(tmp_path / "out"), *args, cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:"), proc.stderr
    assert needle in lines[0]


def test_bench_env_json() -> None:
    args = ["bench", "env", "--json", "--steps", "500", "--batched-steps", "20", "--repeats", "3"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["boards"] == 64 and doc["repeats"] == 3
    assert len(doc["single_runs"]) == len(doc["batched_runs"]) == 3
    assert min(doc["single_runs"]) <= doc["single_steps_per_s"] <= max(doc["single_runs"])
    assert min(doc["batched_runs"]) <= doc["batched_board_steps_per_s"] <= max(doc["batched_runs"])
    assert doc["targets"] == {"single_steps_per_s": 20_000, "batched_board_steps_per_s": 200_000}
    assert doc["other_cpus_busy"] >= 0 and doc["steal_cpus"] >= 0
    assert doc["machine_busy"] == (max(doc["other_cpus_busy"], doc["steal_cpus"]) > 0.2)


def test_bench_env_table() -> None:
    result = CliRunner().invoke(app, ["bench", "env", "--steps", "300", "--batched-steps", "10", "--repeats", "2"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["median", "min", "max", "target"]
    assert lines[1].startswith("single env") and "20,000" in lines[1]
    assert lines[2].startswith("batched env (N=64)") and "200,000" in lines[2]
    assert "2 interleaved repeats" in lines[3] and "CPUs busy" in lines[3]
