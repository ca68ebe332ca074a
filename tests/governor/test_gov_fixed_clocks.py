"""``lotus bench fixed-clocks``: constant-clock runs that show what a room allows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from lotus.core.cli import build_app
from lotus.envs.core import Resolved
from lotus.envs.scenario import Scenario
from lotus.governor.fixed_clocks import FixedClocks, feasibility, format_fixed_clocks, sweep_fixed_clocks


def test_cool_room_top_clocks_are_best_and_never_throttle() -> None:
    rows = sweep_fixed_clocks(Scenario(fps=30.0, ambient_c=25.0, trace="video"), 8.0, [0, 1])
    assert len(rows) == 25 and all(r["seeds"] == 2 for r in rows)
    summary = feasibility(rows)
    assert summary["zero_throttling_feasible"]
    best = summary["best_without_throttling"]
    assert best is summary["best"]
    assert best["cpu_mhz"] >= 1190 and best["gpu_mhz"] >= 612  # a cool board: fast clocks win
    slowest = next(r for r in rows if r["cpu_mhz"] < 200 and r["gpu_mhz"] < 400)
    assert slowest["objective"] > 2 * best["objective"] and slowest["on_time_pct"] < best["on_time_pct"]


def test_a_board_past_its_trip_makes_zero_throttling_infeasible() -> None:
    """Started 3 C past the trip in a 45 C sealed box: every clock throttles, and the table says so."""
    hot = Scenario(fps=30.0, ambient_c=45.0, trace="video", r_scale=1.6, init_temp_c=102.0)
    rows = sweep_fixed_clocks(hot, 3.0, [0])
    assert all(r["max_throttled_pct"] > 0 for r in rows)
    summary = feasibility(rows)
    assert not summary["zero_throttling_feasible"] and summary["best_without_throttling"] is None
    assert "0 % throttling is not feasible here" in format_fixed_clocks(rows)


def test_fixed_clocks_policy_answers_its_action_and_rejects_a_bad_one() -> None:
    actions = Resolved.from_scenario(Scenario()).actions
    policy = FixedClocks(actions, actions.n - 1)
    assert policy.act(np.zeros((3, 17), dtype=np.float32)).tolist() == [actions.n - 1] * 3
    assert policy.cpu_mhz == actions.cpu_khz[-1] / 1e3
    with pytest.raises(ValueError, match="outside the table"):
        FixedClocks(actions, actions.n)


def test_cli_prints_json_and_names_an_unknown_scenario() -> None:
    app = build_app()
    ok = CliRunner().invoke(app, ["bench", "fixed-clocks", "--suite", "smoke", "--scenario", "nano15-hot-box",
                                  "--duration", "4", "--json"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)
    assert doc["scenario"] == "nano15-hot-box" and len(doc["rows"]) == 25 and "zero_throttling_feasible" in doc
    lotus = Path(sys.executable).with_name("lotus")
    bad = subprocess.run([str(lotus), "bench", "fixed-clocks", "--suite", "smoke", "--scenario", "nope"],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == [
        "error: suite 'smoke' has no scenario 'nope'; it has nano15-25c-video, nano15-hot-box"
    ]


def test_a_served_share_skips_that_share_of_frames_and_cools_a_hot_box() -> None:
    """In a sealed 40 C box, serving half the frames at the same clock runs the die cooler."""
    hot = Scenario(fps=30.0, ambient_c=40.0, trace="video", r_scale=1.3, init_temp_c=90.0)
    actions = Resolved.from_scenario(hot).actions
    top = actions.n - 1
    rows = sweep_fixed_clocks(hot, 20.0, [0], served_shares=(1.0, 0.5))
    full, half = (next(r for r in rows if r["share"] == s and r["cpu_mhz"] == actions.cpu_khz[-1] / 1e3
                       and r["gpu_mhz"] == actions.gpu_hz[-1] / 1e6) for s in (1.0, 0.5))  # fmt: skip
    assert len(rows) == 50
    assert half["max_temp_c"] < full["max_temp_c"] - 0.3
    assert half["on_time_pct"] <= 51.0  # a skipped frame is a miss
    policy = FixedClocks(actions, top, share=2 / 3)
    assert sum(policy.admit(np.zeros((1, 17), dtype=np.float32)) for _ in range(30)) == 20
    assert "@0.67" in policy.name
    with pytest.raises(ValueError, match="0.5..1"):
        FixedClocks(actions, top, share=0.2)


def test_cli_rejects_a_share_out_of_range() -> None:
    bad = CliRunner().invoke(build_app(), ["bench", "fixed-clocks", "--suite", "smoke", "--scenario",
                                           "nano15-hot-box", "--served-shares", "1,0.3"])  # fmt: skip
    assert bad.exit_code != 0


def test_inside_the_shield_a_clock_sheds_frames_instead_of_throttling() -> None:
    """A board 2 C under the trip in a 40 C box: the bare top clocks throttle most of a minute; the
    same clocks asked for inside the shield throttle a tenth as much and skip frames instead."""
    hot = Scenario(fps=30.0, ambient_c=40.0, trace="video", r_scale=1.3, init_temp_c=97.0)
    top = [Resolved.from_scenario(hot).actions.n - 1]
    (bare,) = sweep_fixed_clocks(hot, 60.0, [0], actions=top)
    (inside,) = sweep_fixed_clocks(hot, 60.0, [0], actions=top, shield=True)
    assert inside["shielded"] and not bare["shielded"]
    assert bare["throttled_pct"] > 50.0 and inside["throttled_pct"] < bare["throttled_pct"] / 10
    assert inside["max_temp_c"] < bare["max_temp_c"]
    assert inside["on_time_pct"] < bare["on_time_pct"]  # the shield's skips are misses
    # a served share is kept inside the shield too: the shield asks the clock's own admit as well
    (half,) = sweep_fixed_clocks(hot, 60.0, [0], actions=top, shield=True, served_shares=(0.5,))
    assert half["throttled_pct"] < inside["throttled_pct"]


def test_cli_runs_the_clocks_inside_the_shield() -> None:
    ok = CliRunner().invoke(build_app(), ["bench", "fixed-clocks", "--suite", "smoke", "--scenario",
                                          "nano15-hot-box", "--duration", "4", "--shield", "--json"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    doc = json.loads(ok.stdout)
    assert doc["shielded"] is True and len(doc["rows"]) == 25 and all(r["shielded"] for r in doc["rows"])
