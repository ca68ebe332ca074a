"""Per-profile policies: ``lotus train --profiles`` trains each board profile, ``--ship``-style copies
of the median seed are found by clock table, and a board without one gets a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lotus.core.cli import build_app
from lotus.core.errors import ConfigError, PolicyError
from lotus.envs.core import Resolved
from lotus.envs.scenario import Scenario
from lotus.governor import artifacts
from lotus.governor.artifacts import load_artifact, shipped_variants
from lotus.governor.sweep import TRAINED_PROFILES, parse_profiles, ship_median

app = build_app()


def _table(board: str, mode: str):  # noqa: ANN202
    return Resolved.from_scenario(Scenario(board=board, power_mode=mode)).actions


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("profiles")
    res = CliRunner().invoke(app, ["train", "--policy", "drl", "--steps", "1024", "--envs", "4", "--seeds", "1",
                                   "--profiles", "orin-nano:7W,orin-nx:15W", "--out", str(out), "--json"])  # fmt: skip
    assert res.exit_code == 0, res.output
    return out, json.loads(res.stdout)


def test_each_profile_trains_on_its_own_clock_table(trained: tuple[Path, dict]) -> None:
    out, doc = trained
    assert set(doc["profiles"]) == {"orin-nano-7W", "orin-nx-15W"}
    assert json.loads((out / "profiles.json").read_text()) == doc
    for label, board, mode in (("orin-nano-7W", "orin-nano", "7W"), ("orin-nx-15W", "orin-nx", "15W")):
        seeds = doc["profiles"][label]
        assert (out / label / "seeds.json").is_file()
        art = load_artifact(out / label / seeds["median_dir"] / "drl.json", _table(board, mode))
        assert (art.meta["board"], art.meta["power_mode"]) == (board, mode)


def test_shipped_name_resolves_to_the_board_variant(trained: tuple[Path, dict], tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    out, doc = trained
    monkeypatch.setattr(artifacts, "SHIPPED_DIR", tmp_path)
    for label, seeds in doc["profiles"].items():
        written = ship_median(seeds, out / label, tmp_path)
        assert written.name == f"drl.{label}.json"
        meta = json.loads(written.read_text())
        assert meta["seeds"]["median_seed"] == seeds["median_seed"] and meta["onnx_file"] == f"drl.{label}.onnx"
    assert [p.name for p in shipped_variants("drl")] == ["drl.orin-nano-7W.json", "drl.orin-nx-15W.json"]
    nx = load_artifact("drl", _table("orin-nx", "15W"))
    assert nx.json_path == tmp_path / "drl.orin-nx-15W.json" and nx.meta["board"] == "orin-nx"
    assert load_artifact("drl", _table("orin-nano", "7W")).meta["power_mode"] == "7W"
    with pytest.raises(PolicyError, match=r"no shipped drl policy for this board's clock table .*drl.orin-nx-15W"):
        load_artifact("drl", _table("tx2", "MAXQ"))


def test_the_primary_profile_ships_as_the_plain_name(trained: tuple[Path, dict], tmp_path: Path) -> None:
    out, doc = trained
    seeds = json.loads(json.dumps(doc["profiles"]["orin-nano-7W"]))
    src = out / "orin-nano-7W" / seeds["median_dir"] / "drl.json"
    meta = json.loads(src.read_text())
    meta["power_mode"] = "15W"  # pretend: the primary profile keeps the name drl.json
    fake = tmp_path / "src" / seeds["median_dir"]
    fake.mkdir(parents=True)
    (fake / "drl.json").write_text(json.dumps(meta))
    (fake / "drl.onnx").write_bytes(src.with_suffix(".onnx").read_bytes())
    seeds["training"]["board"] = "orin-nano"
    assert ship_median(seeds, tmp_path / "src", tmp_path / "dest").name == "drl.json"


def test_seeds_are_scored_in_a_room_the_mode_can_serve() -> None:
    """Orin Nano 7 W cannot hold 30 fps at any clock: its seeds are scored at 15 fps, 80 ms (the suite's 7 W room)."""
    from lotus.governor.sweep import score_scenario
    from lotus.governor.train import TrainConfig

    fast = score_scenario(TrainConfig(policy="drl", board="orin-nano", power_mode="15W"))
    slow = score_scenario(TrainConfig(policy="drl", board="orin-nano", power_mode="7W"))
    assert (fast.fps, fast.deadline_ms) == (30.0, 40.0)
    assert (slow.fps, slow.deadline_ms) == (15.0, 80.0) and slow.power_mode == "7W"


def test_parse_profiles() -> None:
    assert parse_profiles("all") == list(TRAINED_PROFILES)
    assert parse_profiles("orin-nx:15W, tx2:MAXQ") == [("orin-nx", "15W"), ("tx2", "MAXQ")]
    with pytest.raises(ConfigError, match="BOARD:MODE"):
        parse_profiles("orin-nx")


def test_unknown_mode_is_one_line_before_training(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["train", "--profiles", "orin-nx:99W", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "99W" in str(res.exception)
    assert not any(tmp_path.iterdir())


def test_eval_reports_a_learned_policy_without_a_variant_as_not_trained(tmp_path: Path) -> None:
    from lotus.governor.evaluate import evaluate

    res = evaluate(Scenario(board="tx2", power_mode="MAXQ", fps=30.0), ["stock", "ztt", "ztt+shield"], [0], 2.0)
    assert [row["policy"] for row in res.table] == ["stock"]  # not the shield's stock fallback under ztt's name
    assert set(res.unavailable) == {"ztt", "ztt+shield"}
    assert all("no shipped ztt policy" in why for why in res.unavailable.values())
    with pytest.raises(PolicyError):  # a broken file is still an error, not a missing variant
        bad = tmp_path / "bad.json"
        bad.write_text("{}")
        evaluate(Scenario(fps=30.0), [str(bad)], [0], 2.0)


def test_a_suite_scenario_where_nothing_can_run_writes_its_table(tmp_path: Path) -> None:
    from lotus.governor.suite import run_suite

    doc = run_suite("standard", tmp_path, policies=["ztt-pub"], seeds=1, duration_s=2.0, only=["nx-30c-video"])
    entry = doc["scenarios"]["nx-30c-video"]
    assert entry["table"] == [] and "ztt-pub" in entry["not_trained"]  # as published: Orin Nano 15W only
    assert "no variant trained for this board" in (tmp_path / "nx-30c-video" / "table.md").read_text()


def test_a_mode_trains_at_a_rate_it_can_serve() -> None:
    """Training rooms use the same rate as the scoring room: 7 W trains at 15 fps / 80 ms, 15 W at 30 fps / 40 ms."""
    from lotus.governor.features import FEATURE_SPECS
    from lotus.governor.train import TrainConfig, serving_rate, training_scenario

    slow = training_scenario(TrainConfig(power_mode="7W"), FEATURE_SPECS["drl"])
    fast = training_scenario(TrainConfig(power_mode="15W"), FEATURE_SPECS["drl"])
    assert (slow.fps, slow.deadline_ms) == (15.0, 80.0) and slow.randomize is not None
    assert (fast.fps, fast.deadline_ms) == (30.0, 40.0)
    assert serving_rate("orin-nano", "15W", "ppocr-v4") == (10.0, 120.0)  # the workload's own rate where it holds


def test_rescoring_names_the_median_again_on_a_held_out_evaluation_seed(
    trained: tuple[Path, dict], tmp_path: Path
) -> None:
    """Seeds are scored on evaluation seed SCORE_SEED, never one of the suite's 0..N-1; a finished
    sweep can be scored again by the current rule without training again."""
    import shutil

    from lotus.governor.evaluate import evaluate
    from lotus.governor.sweep import SCORE_SEED, rescore_seeds, score_hot_scenario, score_scenario
    from lotus.governor.train import TrainConfig

    out, _ = trained
    where = tmp_path / "nx"
    shutil.copytree(out / "orin-nx-15W", where)
    again = rescore_seeds(where, score_s=20.0)
    assert again["score"]["seed"] == SCORE_SEED >= 1000 and again["score"]["duration_s"] == 20.0
    assert json.loads((where / "seeds.json").read_text()) == again
    row = again["seeds"][0]
    cfg = TrainConfig(policy="drl", board="orin-nx", power_mode="15W")
    cool, hot = score_scenario(cfg), score_hot_scenario(cfg)
    assert hot.ambient_c > cool.ambient_c and hot.r_scale > 1.0 and hot.fps == cool.fps  # a hot part, same rate
    export = [str(where / row["dir"] / "drl.json")]
    direct = [float(evaluate(room, export, [SCORE_SEED], 20.0).records[0]["objective"]) for room in (cool, hot)]
    assert (row["objective_cool"], row["objective_hot"]) == tuple(direct)
    assert row["objective"] == sum(direct) / 2 and again["median_dir"] == row["dir"]
    with pytest.raises(ConfigError, match="seeds.json"):
        rescore_seeds(tmp_path / "nothing")
