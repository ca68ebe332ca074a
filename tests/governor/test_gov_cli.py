"""``lotus eval`` and ``lotus train`` on the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from lotus.core.cli import build_app
from lotus.core.schema import SCHEMA_VERSION
from lotus.envs.board import BOARDS_DIR

app = build_app()

LOTUS = Path(sys.executable).with_name("lotus")
RECORD_KEYS = {
    "latency_mean_ms", "latency_std_ms", "latency_p50_ms", "latency_p99_ms", "deadline_miss_pct", "max_cpu_temp_c",
    "max_gpu_temp_c", "throttled_pct", "energy_per_frame_j", "frames", "policy", "seed", "objective",
    "objective_vs_foresight",
}  # fmt: skip


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def _eval(out: Path, *args: str) -> list[dict]:
    return json.loads(_invoke("eval", "--out", str(out), "--json", *args))


def test_eval_json_records(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    records = _eval(out, "--duration", "60", "--seeds", "1", "--policies", "stock,performance")
    assert sorted((r["policy"], r["seed"]) for r in records) == [("performance", 0), ("stock", 0)]
    for rec in records:
        assert RECORD_KEYS <= set(rec), RECORD_KEYS - set(rec)
        assert rec["objective_vs_foresight"] is None  # no foresight in the run: NaN printed as null
        assert rec["frames"] > 1000
    doc = json.loads((out / "results.json").read_text())
    assert doc["duration_s"] == 60.0 and len(doc["records"]) == 2 and len(doc["table"]) == 2
    assert doc["scenario"]["board"] == "orin-nano"
    for name in ("latency.png", "temperature.png", "latency_distribution.png"):
        assert (out / name).stat().st_size > 0


def test_eval_table_output(tmp_path: Path) -> None:
    text = _invoke("eval", "--out", str(tmp_path), "--duration", "5", "--seeds", "1", "--policies", "powersave")
    assert "powersave" in text and "vs foresight" in text and "results.json" in text


def test_eval_with_board_yaml_path(tmp_path: Path) -> None:
    board = yaml.safe_load((BOARDS_DIR / "orin-nano.yaml").read_text())
    board["name"] = "my-nano"
    path = tmp_path / "my-nano.yaml"
    path.write_text(yaml.safe_dump(board, sort_keys=False))
    records = _eval(tmp_path / "e", "--board", str(path), "--duration", "10", "--seeds", "1", "--policies", "stock")
    assert len(records) == 1 and records[0]["frames"] > 0
    doc = json.loads((tmp_path / "e" / "results.json").read_text())
    assert doc["scenario"]["board"] == str(path)


def test_eval_with_trace_csv_path(tmp_path: Path) -> None:
    few, many = tmp_path / "few.csv", tmp_path / "many.csv"
    few.write_text("proposals\n" + "1\n" * 50)
    many.write_text("proposals\n" + "60\n" * 50)
    args = ("--duration", "10", "--seeds", "1", "--policies", "performance", "--fps", "0")
    (light,) = _eval(tmp_path / "a", "--trace", str(few), *args)
    (heavy,) = _eval(tmp_path / "b", "--trace", str(many), *args)
    assert light["latency_mean_ms"] < heavy["latency_mean_ms"]  # the trace's counts drive stage 2


def test_train_cli_json(tmp_path: Path, one_thread) -> None:  # noqa: ANN001
    out = tmp_path / "ztt"
    meta = json.loads(_invoke("train", "--policy", "ztt", "--steps", "2000", "--envs", "4", "--out", str(out),
                              "--json"))  # fmt: skip
    assert meta["policy"] == "ztt" and meta["algo"] == "dqn" and meta["board"] == "orin-nano"
    assert meta["export_agreement"] >= 0.99 and len(meta["action_map"]) == 9
    assert meta["training"]["steps"] == 2000 and meta["training"]["n_envs"] == 4
    assert json.loads((out / "ztt.json").read_text())["schema_version"] == SCHEMA_VERSION
    assert (out / "ztt.onnx").is_file() and (out / "ztt.zip").is_file()


def _lotus(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(LOTUS), *args], capture_output=True, text=True, timeout=120)


def _assert_one_error_line(proc: subprocess.CompletedProcess, needle: str) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], proc.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("eval", "--policies", "bogus", "--duration", "5", "--seeds", "1"),
        ("eval", "--policies", "stock,fixed:fast", "--duration", "2", "--seeds", "1"),
        ("sim", "--policy", "bogus", "--duration", "5"),
    ],
    ids=["eval", "eval-fixed", "sim"],
)
def test_unknown_policy_is_one_error_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    proc = _lotus(*args, "--out", str(tmp_path))
    _assert_one_error_line(proc, "policy")
    assert proc.stdout == ""


def test_train_unknown_algo_is_one_error_line(tmp_path: Path) -> None:
    proc = _lotus("train", "--policy", "drl", "--algo", "a2c", "--steps", "1000", "--out", str(tmp_path))
    _assert_one_error_line(proc, "a2c")


def test_train_unknown_policy_is_one_error_line(tmp_path: Path) -> None:
    proc = _lotus("train", "--policy", "bogus", "--steps", "1000", "--out", str(tmp_path))
    _assert_one_error_line(proc, "bogus")


def test_eval_unknown_board_is_one_error_line(tmp_path: Path) -> None:
    proc = _lotus("eval", "--board", str(tmp_path / "missing.yaml"), "--duration", "5", "--out", str(tmp_path))
    _assert_one_error_line(proc, "missing.yaml")
