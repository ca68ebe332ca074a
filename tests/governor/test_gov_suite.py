"""``lotus eval --suite``: named scenario suites, per-scenario tables with CIs, JSON, plots, a ranking."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from lotus.core.cli import build_app
from lotus.governor.suite import STANDARD_POLICIES, suite

app = build_app()


def test_standard_suite_covers_the_rooms_and_the_baselines() -> None:
    scenarios, duration, seeds, policies = suite("standard")
    names = {s.name for s in scenarios}
    assert {"nano15-25c-video", "nano15-35c-bursty", "nano7w-25c-video", "nx-30c-video"} <= names
    assert any(s.held_out for s in scenarios) and seeds >= 5 and duration >= 600
    assert {"stock", "mpc", "ztt", "lotus-dac24", "drl", "foresight", "mpc+shield", "stock+shield"} <= set(policies)
    assert policies == STANDARD_POLICIES


def test_smoke_suite_writes_tables_json_plots_and_a_ranking(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["eval", "--suite", "smoke", "--duration", "8", "--seeds", "2",
                                   "--policies", "stock,mpc,foresight", "--out", str(tmp_path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "suite.json").read_text())
    assert set(doc["scenarios"]) == {s.name for s in suite("smoke")[0]}
    for name, entry in doc["scenarios"].items():
        assert (tmp_path / name / "table.md").read_text().count("±") > 0
        assert (tmp_path / name / "latency.png").stat().st_size > 0
        assert [r["policy"] for r in entry["table"]] == ["stock", "mpc", "foresight"]
        assert all(r["seeds"] == 2 and "on_time_pct_ci95" in r for r in entry["table"])
    assert [r["policy"] for r in doc["ranking"]] and "foresight" not in {r["policy"] for r in doc["ranking"]}
    assert "ranking" in res.output
    scatter = tmp_path / "on_time_vs_energy.png"
    assert scatter.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and scatter.stat().st_size > 10_000


def test_unknown_suite_is_one_error_line() -> None:
    res = CliRunner().invoke(app, ["eval", "--suite", "nope"])
    assert res.exit_code != 0
    assert "unknown suite 'nope'" in str(res.exception)


def test_a_suite_run_in_pieces_merges_into_one(tmp_path: Path) -> None:
    """Scenarios and policies split over runs: merged, the tables and ratios equal one whole run's."""
    base = ["eval", "--suite", "smoke", "--duration", "6", "--seeds", "2", "--out"]
    whole, a, b, merged = (tmp_path / n for n in ("whole", "a", "b", "merged"))
    for out, extra in ((whole, ["--policies", "stock,foresight"]), (a, ["--policies", "foresight"]),
                       (b, ["--policies", "stock", "--scenarios", "nano15-25c-video"])):  # fmt: skip
        res = CliRunner().invoke(app, [*base, str(out), *extra])
        assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["eval", "--merge", f"{a},{b}", "--out", str(merged)])
    assert res.exit_code == 0, res.output
    got = json.loads((merged / "suite.json").read_text())["scenarios"]["nano15-25c-video"]["table"]
    want = json.loads((whole / "suite.json").read_text())["scenarios"]["nano15-25c-video"]["table"]
    assert [r["policy"] for r in got] == ["foresight", "stock"]
    by_name = {r["policy"]: r for r in want}
    for row in got:
        for key in ("objective", "objective_vs_foresight", "on_time_pct", "beats_foresight"):
            assert row[key] == by_name[row["policy"]][key], (row["policy"], key)
    assert (merged / "nano15-25c-video" / "table.md").is_file()
    # a policy re-run in a later part replaces its earlier records instead of doubling them
    again = tmp_path / "again"
    res = CliRunner().invoke(app, ["eval", "--merge", f"{whole},{b}", "--out", str(again)])
    assert res.exit_code == 0, res.output
    records = json.loads((again / "suite.json").read_text())["scenarios"]["nano15-25c-video"]["records"]
    assert sorted((r["policy"], r["seed"]) for r in records) == [("foresight", 0), ("foresight", 1), ("stock", 0),
                                                                 ("stock", 1)]  # fmt: skip


def test_unknown_scenario_and_bad_merge_folder_are_one_error_line(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["eval", "--suite", "smoke", "--scenarios", "nope", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "has no scenario nope" in str(res.exception)
    res = CliRunner().invoke(app, ["eval", "--merge", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert res.exit_code != 0 and "holds no suite.json" in str(res.exception)


def test_suite_matrix_has_a_row_per_policy_and_bolds_the_best() -> None:
    from lotus.governor.report import format_suite_matrix

    row = {"objective_ci95": 0.5, "shutdowns": 0}
    doc = {"scenarios": {
        "a": {"held_out": False, "table": [{"policy": "stock", "objective": 30.0, **row},
                                           {"policy": "mpc", "objective": 25.0, **row},
                                           {"policy": "foresight", "objective": 20.0, **row}]},
        "b": {"held_out": True, "table": [{"policy": "stock", "objective": 40.0, **row, "shutdowns": 2}]},
    }}  # fmt: skip
    text = format_suite_matrix(doc)
    lines = text.splitlines()
    assert lines[0] == "| policy | a | b (held out) |" and len(lines) == 5
    assert "**25.0 ± 0.5**" in lines[3] and "**" not in lines[4]  # the reference is never bold
    assert "(2 off)" in lines[2]


def test_ranking_shares_tied_ranks_and_wins_whatever_the_listing_order() -> None:
    from lotus.governor.suite import ranking

    def room(*rows: tuple[str, float, int]) -> dict:
        return {"table": [{"policy": p, "objective": obj, "shutdowns": off} for p, obj, off in rows]}

    doc = {"scenarios": {
        # a and b tie within a microsecond for first; c is third; d shut down, so it ranks last
        "x": room(("d", 10.0, 1), ("c", 26.0, 0), ("b", 24.0000004, 0), ("a", 24.0, 0), ("foresight", 23.0, 0)),
        "y": room(("a", 30.0, 0), ("b", 31.0, 0), ("c", 32.0, 0), ("d", 33.0, 0)),
    }}  # fmt: skip
    out = {r["policy"]: r for r in ranking(doc)}
    assert out["a"]["mean_rank"] == (1.5 + 1) / 2 and out["b"]["mean_rank"] == (1.5 + 2) / 2
    assert out["c"]["mean_rank"] == 3 and out["d"]["mean_rank"] == 4
    assert (out["a"]["wins"], out["b"]["wins"], out["c"]["wins"]) == (2, 1, 0)
    assert "foresight" not in out
    flipped = {"scenarios": {k: {"table": v["table"][::-1]} for k, v in doc["scenarios"].items()}}
    assert ranking(flipped) == ranking(doc)
