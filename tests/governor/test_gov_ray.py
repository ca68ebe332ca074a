"""Scale-out: suite units and training seeds through local processes and a local Ray instance.

Parallel runs must write the serial run's documents byte for byte. The Ray tests skip when ray
(the ``cluster`` extra) is not installed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lotus.core.cli import build_app
from lotus.core.errors import MissingExtraError
from lotus.governor.parallel import run_tasks
from lotus.governor.suite import suite

app = build_app()
SMOKE = ["eval", "--suite", "smoke", "--duration", "5", "--seeds", "2", "--policies", "stock,foresight"]


def _invoke(*args: str) -> str:
    res = CliRunner().invoke(app, list(args))
    assert res.exit_code == 0, res.output
    return res.stdout


def _documents(out: Path) -> dict[str, str]:
    """suite.json and every scenario's results.json and table.md, as text (NaN-safe comparison)."""
    names = ["suite.json"] + [f"{sc.name}/{f}" for sc in suite("smoke")[0] for f in ("results.json", "table.md")]
    return {name: (out / name).read_text() for name in names}


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("serial")
    _invoke(*SMOKE, "--out", str(out))
    return _documents(out)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield
    ray.shutdown()


def _square(x: int) -> int:
    return x * x


def test_run_tasks_keeps_item_order_locally() -> None:
    seen: list[int] = []
    assert run_tasks(_square, [3, 1, 2], progress=seen.append) == [9, 1, 4]
    assert seen == [0, 1, 2]


def test_workers_suite_equals_the_serial_run(serial: dict[str, str], tmp_path: Path) -> None:
    _invoke(*SMOKE, "--workers", "2", "--out", str(tmp_path))
    assert _documents(tmp_path) == serial
    assert all((tmp_path / sc.name / "latency.png").stat().st_size > 0 for sc in suite("smoke")[0])


def test_ray_suite_equals_the_serial_run(serial: dict[str, str], local_ray: None, tmp_path: Path) -> None:
    _invoke(*SMOKE, "--ray", "local", "--out", str(tmp_path))
    assert _documents(tmp_path) == serial
    assert all((tmp_path / sc.name / "temperature.png").stat().st_size > 0 for sc in suite("smoke")[0])


def test_ray_training_sweep_names_the_median_seed(local_ray: None, tmp_path: Path) -> None:
    out = _invoke("train", "--policy", "ztt", "--steps", "2000", "--envs", "4", "--seeds", "3", "--seed", "5",
                  "--ray", "local", "--out", str(tmp_path), "--json")  # fmt: skip
    doc = json.loads(out)
    assert [r["seed"] for r in doc["seeds"]] == [5, 6, 7]
    for row in doc["seeds"]:
        where = tmp_path / row["dir"]
        assert (where / "ztt.onnx").is_file() and (where / "checkpoints").is_dir()
        assert json.loads((where / "ztt.json").read_text())["training"]["seed"] == row["seed"]
        assert row["export_agreement"] >= 0.99 and row["train_seconds"] >= 0
    objectives = sorted(r["objective"] for r in doc["seeds"])
    median = next(r for r in doc["seeds"] if r["seed"] == doc["median_seed"])
    assert median["objective"] == objectives[1] and doc["median_dir"] == f"seed-{doc['median_seed']}"
    assert json.loads((tmp_path / "seeds.json").read_text())["median_seed"] == doc["median_seed"]


def test_missing_ray_is_one_line_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ModuleNotFoundError
    with pytest.raises(MissingExtraError, match=r"lotus-edge\[cluster\]"):
        run_tasks(_square, [1], ray_address="local")


def test_ray_and_workers_need_a_suite_or_seeds(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["eval", "--workers", "2", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "use them with --suite" in str(res.exception)
    res = CliRunner().invoke(app, ["train", "--policy", "ztt", "--ray", "local", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "add --seeds N" in str(res.exception)
