"""``lotus criteria``: issue 11's judged criteria recomputed from a suite run's records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from lotus.core.cli import build_app
from lotus.core.errors import ConfigError
from lotus.governor.criteria import Verdict, format_verdicts, is_learned, judge, witnesses
from lotus.governor.evaluate import aggregate

app = build_app()


def _record(policy: str, seed: int, objective: float, on_time: float = 90.0, throttled: float = 0.0) -> dict[str, Any]:
    return {"policy": policy, "seed": seed, "objective": objective, "on_time_pct": on_time, "drop_pct": 100 - on_time,
            "throttled_pct": throttled, "shutdown": False, "latency_mean_ms": objective, "latency_std_ms": 1.0,
            "latency_p50_ms": objective, "latency_p99_ms": objective, "max_temp_c": 80.0, "energy_per_frame_j": 0.2,
            "energy_per_camera_frame_j": 0.2, "objective_vs_foresight": 1.0, "beats_foresight": False,
            "deadline_miss_pct": 0.0, "frames": 100}  # fmt: skip


def _doc(rooms: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    scenarios = {}
    for name, records in rooms.items():
        names = list(dict.fromkeys(r["policy"] for r in records))
        table = [aggregate(p, [r for r in records if r["policy"] == p]) for p in names]
        scenarios[name] = {"table": table, "records": records, "held_out": False}
    return {"scenarios": scenarios}


def _room(objectives: dict[str, float], **overrides: dict[str, float]) -> list[dict[str, Any]]:
    """Three seeds per policy around the given objective (seed s adds 0.1 s ms)."""
    out = []
    for policy, obj in objectives.items():
        for seed in range(3):
            out.append(_record(policy, seed, obj + 0.1 * seed, **overrides.get(policy, {})))
    return out


def _by(verdicts: list[Verdict], criterion: str, scenario: str | None = None) -> Verdict:
    return next(v for v in verdicts if v.criterion == criterion and v.scenario == scenario)


def test_a_policy_ahead_everywhere_meets_every_criterion() -> None:
    rooms = {
        "nano15-25c-video": _room({"foresight": 20.0, "drl": 20.5, "mpc": 22.0, "ztt": 21.0}),
        "hot": _room({"foresight": 30.0, "drl": 32.0, "mpc": 36.0, "ztt": 35.0}),
    }
    verdicts = judge(_doc(rooms), "drl")
    assert all(v.met for v in verdicts), [v for v in verdicts if not v.met]
    avg = _by(verdicts, "suite-average")
    # the best non-learned baseline is mpc (29.1 on average), not the learned ztt (28.1)
    assert "against mpc 29.10" in avg.detail and "+9.5 % lower" in avg.detail


def test_ties_throttling_shutdowns_and_frames_are_each_caught() -> None:
    rooms = {
        "nano15-25c-video": _room({"foresight": 20.0, "drl": 21.0, "performance": 21.0}),
        "hot": _room(
            {"foresight": 30.0, "drl": 32.0, "mpc": 33.0, "stock": 40.0},
            drl={"throttled": 0.5, "on_time": 60.0},
            stock={"throttled": 20.0, "on_time": 80.0},
            mpc={"on_time": 61.5},
        ),
    }
    doc = _doc(rooms)
    verdicts = judge(doc, "drl")
    tie = _by(verdicts, "lowest-objective", "nano15-25c-video")
    assert tie.met is False and "paired +0.00 ± 0.00 ms over 3 seeds" in tie.detail
    assert _by(verdicts, "lowest-objective", "hot").met is True
    assert _by(verdicts, "no-throttling", "hot").met is False
    assert _by(verdicts, "no-throttling", "nano15-25c-video").met is True
    frames = _by(verdicts, "on-time", "hot")
    assert frames.met is False and "against stock 80.0 %" in frames.detail
    assert "the best unthrottled is mpc at 61.5 %" in frames.detail
    # a shutdown on one seed: the run ranks after every policy that stayed up
    doc["scenarios"]["hot"]["table"][1]["shutdowns"] = 1
    verdicts = judge(doc, "drl")
    assert _by(verdicts, "no-shutdown", "hot").met is False
    assert _by(verdicts, "lowest-objective", "hot").met is False
    # within 10 % of the reference on the main scenario: 21.1 / 20.1
    assert _by(verdicts, "near-reference", "nano15-25c-video").met is True


def test_a_room_the_reference_cannot_beat_says_no_strict_win_is_open() -> None:
    rooms = {"nano15-25c-video": _room({"foresight": 21.0, "drl": 21.0, "performance": 21.0})}
    tie = _by(judge(_doc(rooms), "drl"), "lowest-objective", "nano15-25c-video")
    assert tie.met is False and "no strict win is open" in tie.detail


def test_witnesses_name_the_runs_that_meet_a_room_together() -> None:
    late = {"on_time": 70.0}
    rooms = {
        "cool": _room({"foresight": 21.0, "drl": 21.0, "performance": 21.0}),  # a three-way tie: nobody
        # only mpc is the lowest of the others, unthrottled and within a point of stock's 80 % on time;
        # foresight is lower still but 10 points behind stock on time
        "hot": _room(
            {"foresight": 30.0, "drl": 32.0, "mpc": 31.0, "stock": 40.0},
            foresight=late,
            drl=late,
            stock={"throttled": 20.0, "on_time": 80.0},
            mpc={"on_time": 79.5},
        ),  # fmt: skip
    }
    doc = _doc(rooms)
    found = witnesses(doc)
    assert found == {"cool": [], "hot": ["mpc"]}
    text = format_verdicts(judge(doc, "drl", main="cool"), "drl", found)
    assert "- cool: none" in text and "- hot: `mpc`" in text


def test_learned_names_and_missing_runs() -> None:
    assert is_learned("ztt+shield") and is_learned("drl") and is_learned("runs/x/policy.json")
    assert not is_learned("mpc+shield@1") and not is_learned("stock")
    doc = _doc({"nano15-25c-video": _room({"drl": 21.0, "mpc": 22.0})})
    verdicts = judge(doc, "drl")
    assert _by(verdicts, "near-reference", "nano15-25c-video").met is None  # no foresight run
    with pytest.raises(ConfigError, match="no policy 'ztt'"):
        judge(doc, "ztt")
    with pytest.raises(ConfigError, match="no scenario 'elsewhere'"):
        judge(doc, "drl", main="elsewhere")


def test_cli_judges_a_real_smoke_suite_run(tmp_path: Path) -> None:
    """A real (short) suite run: each verdict agrees with the tables the run wrote."""
    policies = "stock,performance+shield,foresight"
    res = CliRunner().invoke(app, ["eval", "--suite", "smoke", "--duration", "6", "--seeds", "2",
                                   "--policies", policies, "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "criteria.md").exists()  # the run had no drl: it judged nothing itself
    report = tmp_path / "mine.md"
    res = CliRunner().invoke(app, ["criteria", str(tmp_path), "--policy", "performance+shield", "--out", str(report)])
    assert res.exit_code == 0, res.output
    assert "performance+shield" in report.read_text() and "met" in res.output
    res = CliRunner().invoke(app, ["criteria", str(tmp_path), "--policy", "performance+shield", "--json"])
    verdicts = json.loads(res.output)
    doc = json.loads((tmp_path / "suite.json").read_text())
    for v in verdicts:
        if v["criterion"] != "lowest-objective":
            continue
        rows = {r["policy"]: r for r in doc["scenarios"][v["scenario"]]["table"]}
        lower = rows["performance+shield"]["objective"] < rows["stock"]["objective"] - 1e-3
        assert v["met"] is (lower and rows["performance+shield"]["shutdowns"] <= rows["stock"]["shutdowns"])
    strict = CliRunner().invoke(app, ["criteria", str(tmp_path), "--policy", "stock", "--strict"])
    assert strict.exit_code == (0 if all(v["met"] for v in judge_json(tmp_path, "stock")) else 1)
    missing = CliRunner().invoke(app, ["criteria", str(tmp_path / "nope")])
    assert missing.exit_code != 0 and "holds no suite.json" in str(missing.exception)


def test_a_suite_run_with_drl_judges_itself(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["eval", "--suite", "smoke", "--duration", "6", "--seeds", "2",
                                   "--policies", "drl,stock,foresight", "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    written = (tmp_path / "criteria.md").read_text()
    assert written.count("| lowest-objective |") == 2 and "suite-average" in written
    met = sum(v["met"] is True for v in judge_json(tmp_path, "drl"))
    assert f"drl meets {met} of 10 of issue 11's criteria here" in res.output


def judge_json(folder: Path, policy: str) -> list[dict[str, Any]]:
    res = CliRunner().invoke(app, ["criteria", str(folder), "--policy", policy, "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.output)
