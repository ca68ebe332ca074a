"""``governor.evaluate``: records, objective, the foresight reference, determinism, plots."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from lotus.core.errors import PolicyError
from lotus.envs.core import Resolved
from lotus.envs.scenario import Scenario
from lotus.governor.evaluate import EvalResult, evaluate, plot_eval, trailing_mean
from lotus.governor.foresight import ForesightController, foresight_rollout, pareto_front
from lotus.governor.metrics import METRIC_KEYS

RECORD_KEYS = {
    "latency_mean_ms", "latency_std_ms", "latency_p50_ms", "latency_p99_ms", "deadline_miss_pct", "max_cpu_temp_c",
    "max_gpu_temp_c", "throttled_pct", "energy_per_frame_j", "frames", "policy", "seed", "objective",
    "objective_vs_foresight",
}  # fmt: skip
POLICIES = ("stock", "performance", "foresight")
SEEDS = (0, 1)
DURATION_S = 60.0
# a board already near its trip point in a hot room: the reference's price search has work to do
HOT = Scenario(ambient_c=40.0, init_temp_c=97.0, r_scale=1.3)  # a warm board in a sealed box


@pytest.fixture(scope="module")
def result() -> EvalResult:
    return evaluate(Scenario(), list(POLICIES), list(SEEDS), DURATION_S)


@pytest.fixture(scope="module")
def hot_result() -> EvalResult:
    return evaluate(HOT, list(POLICIES), [0], 60.0)


def _rec(result: EvalResult, policy: str, seed: int) -> dict:
    (rec,) = [r for r in result.records if r["policy"] == policy and r["seed"] == seed]
    return rec


def test_one_record_per_policy_and_seed(result: EvalResult) -> None:
    assert sorted((r["policy"], r["seed"]) for r in result.records) == sorted((p, s) for p in POLICIES for s in SEEDS)
    for rec in result.records:
        assert RECORD_KEYS <= set(rec), RECORD_KEYS - set(rec)
        assert set(METRIC_KEYS) <= set(rec)
        assert rec["shutdown"] is False and rec["camera_frames"] == int(DURATION_S * 30)
        for key in RECORD_KEYS - {"policy", "seed"}:
            assert isinstance(rec[key], int | float) and math.isfinite(rec[key]), key
        assert rec["frames"] > 0.8 * DURATION_S * 30  # 30 fps camera, mostly kept up with
    assert [row["policy"] for row in result.table] == list(POLICIES)
    assert set(result.recordings) == set(POLICIES)


def test_objective_and_ratio(result: EvalResult) -> None:
    deadline = Resolved.from_scenario(Scenario()).deadline_ms
    for rec in result.records:
        lotus_obj = rec["latency_mean_ms"] + 0.1 * rec["latency_std_ms"] ** 2
        assert rec["objective"] == pytest.approx(lotus_obj + deadline * (1 - rec["on_time_pct"] / 100))
        assert rec["objective_vs_foresight"] == pytest.approx(
            rec["objective"] / _rec(result, "foresight", rec["seed"])["objective"]
        )
    for seed in SEEDS:
        assert _rec(result, "foresight", seed)["objective_vs_foresight"] == 1.0
    stock = [row for row in result.table if row["policy"] == "stock"][0]
    assert stock["objective"] == pytest.approx(np.mean([_rec(result, "stock", s)["objective"] for s in SEEDS]))


def test_foresight_in_a_cool_room_is_the_fastest_frame_every_time(result: EvalResult) -> None:
    """Heat never binds at 25 C: no price is needed, and nothing beats it."""
    for seed in SEEDS:
        ref = _rec(result, "foresight", seed)
        assert ref["throttled_pct"] == 0.0 and ref["foresight_rollouts"] == 2.0
        assert ref["foresight_lam_ms_per_j"] == 0.0
        for name in ("stock", "performance"):
            other = _rec(result, name, seed)
            assert ref["objective"] <= other["objective"] + 1e-9
            assert not other["beats_foresight"]


def test_foresight_in_a_hot_room_searches_the_price_and_beats_the_baselines(hot_result: EvalResult) -> None:
    ref, stock = _rec(hot_result, "foresight", 0), _rec(hot_result, "stock", 0)
    perf = _rec(hot_result, "performance", 0)
    assert perf["throttled_pct"] > 0  # the room is hot enough to throttle max clocks
    assert ref["foresight_rollouts"] > 1 and ref["foresight_lam_ms_per_j"] > 0
    assert ref["objective"] < min(stock["objective"], perf["objective"])
    assert ref["throttled_pct"] < perf["throttled_pct"]
    assert not any(r["beats_foresight"] for r in hot_result.records)


def test_pareto_front_keeps_only_points_nothing_beats() -> None:
    t = np.array([3.0, 1.0, 2.0, 2.0, 4.0])
    e = np.array([1.0, 5.0, 2.0, 3.0, 0.5])
    assert list(pareto_front(t, e)) == [1, 2, 0, 4]


def test_foresight_prices_energy_above_the_idle_floor() -> None:
    """Camera-paced: at a high price the per-frame choice moves off the top clocks (race-to-idle is not free)."""
    from lotus.envs.detector_env import TwoStageDetectorEnv

    picks = {}
    for lam in (0.0, 5000.0):
        env = TwoStageDetectorEnv(Scenario(fps=30.0))
        env.reset(seed=0)
        picks[lam] = ForesightController(env, lam).act()
    assert picks[0.0] == env.actions.n - 1 and picks[5000.0] < picks[0.0]


def test_foresight_skips_a_frame_only_when_its_heat_costs_more_than_a_miss() -> None:
    """The reference has the skip action the shield and a served-share ``drl`` have: it prices it."""
    from lotus.governor.foresight import _run
    from lotus.governor.metrics import recording_metrics

    cool = Scenario(fps=30.0)
    free = _run(cool, 5.0, 0, 0.0, None)  # no heat price: every frame fits the deadline, none is skipped
    assert free.skipped_frames == 0
    dear = _run(cool, 5.0, 0, 1e5, None)  # heat dearer than any miss: every frame after the first is skipped
    assert len(dear.frames["latency_ms"]) >= 1 and dear.skipped_frames >= 140
    m = recording_metrics(dear, 5.0, 30.0)
    assert m["drop_pct"] >= 100.0 * 140 / 150 and m["on_time_pct"] < 5.0  # a skip is a drop, a miss
    assert _run(cool, 5.0, 0, 1e5, None, skips=False).skipped_frames == 0


def test_foresight_rollout_reports_its_choice() -> None:
    rec, chosen = foresight_rollout(HOT, 20.0, seed=3)
    assert set(chosen) == {
        "foresight_lam_ms_per_j", "foresight_mu_ms", "foresight_onset_c", "foresight_rollouts", "foresight_skips"
    }  # fmt: skip
    assert chosen["foresight_onset_c"] is None  # the plain reference prices energy everywhere
    assert rec.policy == "foresight" and len(rec.frames["latency_ms"]) > 100
    # the skip action can only lower the reference: never above the search without it
    from lotus.governor.foresight import _search
    from lotus.governor.metrics import recording_metrics
    from lotus.governor.rollout import episode_frames_for

    hot = HOT.model_copy(update={"decision": "stage", "episode_frames": episode_frames_for(20.0, 30.0)})
    plain = min(key for key, *_ in _search(hot, 20.0, 3, 30.0, False, None, 0.0))[1]
    assert recording_metrics(rec, 20.0, 30.0)["objective"] <= plain + 1e-9


def test_same_seeds_give_identical_records(result: EvalResult) -> None:
    again = evaluate(Scenario(), list(POLICIES), [1], DURATION_S)
    first = [r for r in result.records if r["seed"] == 1]
    assert again.records == first


def test_records_differ_between_seeds(result: EvalResult) -> None:
    assert _rec(result, "stock", 0)["latency_mean_ms"] != _rec(result, "stock", 1)["latency_mean_ms"]


def test_unknown_policy_raises_policy_error() -> None:
    with pytest.raises(PolicyError, match="unknown policy 'bogus'"):
        evaluate(Scenario(), ["bogus"], [0], 5.0)


def test_unknown_policy_fails_before_any_rollout(monkeypatch: pytest.MonkeyPatch) -> None:
    import lotus.governor.evaluate as ev

    calls = []
    monkeypatch.setattr(ev, "rollout", lambda *a, **k: calls.append(a) or pytest.fail("rollout ran"))
    with pytest.raises(PolicyError):
        evaluate(Scenario(), ["stock", "bogus"], [0], 5.0)
    assert not calls


def test_plot_eval_writes_three_pngs(result: EvalResult, tmp_path: Path) -> None:
    paths = plot_eval(result, tmp_path, "orin-nano 25 C")
    assert len(paths) == 3 and len(set(paths)) == 3
    for p in paths:
        assert p.parent == tmp_path and p.suffix == ".png"
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 10_000


def test_infeasible_room_gives_shutdown_rows_not_a_crash() -> None:
    """A room so hot that even bottom clocks overheat: every policy's run is a failed run."""
    inferno = Scenario(ambient_c=80.0, init_temp_c=104.0)
    result = evaluate(inferno, ["powersave", "foresight"], [0], 20.0)
    for rec in result.records:
        assert rec["shutdown"] is True
        assert rec["on_time_pct"] < 100.0 and rec["camera_frames"] == 600
    ref = _rec(result, "foresight", 0)
    assert ref["foresight_rollouts"] > 1  # every price tried: each run still shuts down
    assert all(row["shutdowns"] == 1 for row in result.table)


def test_mpc_shield_variants_and_third_party_policies(tmp_path: Path) -> None:
    mine = tmp_path / "mine.py"
    mine.write_text(
        "import numpy as np\n"
        "class Half:\n"
        "    name = 'half'\n"
        "    def __init__(self, actions, deadline_ms):\n"
        "        self.a, self.deadline_ms = actions.n // 2, deadline_ms\n"
        "    def reset(self, n=1):\n"
        "        pass\n"
        "    def act(self, obs):\n"
        "        return np.full(len(obs), self.a, dtype=np.int64)\n"
    )
    names = ["mpc", "mpc+shield", "stock+shield", f"python:{mine}:Half"]
    result = evaluate(Scenario(), names, [0, 1], 20.0)
    assert [row["policy"] for row in result.table] == names
    for row in result.table:
        assert row["seeds"] == 2 and math.isfinite(row["on_time_pct_ci95"]) and row["shutdowns"] == 0
    assert "shield_interventions" in _rec(result, "stock+shield", 0)
    with pytest.raises(PolicyError, match="no class Nope"):
        evaluate(Scenario(), [f"python:{mine}:Nope"], [0], 5.0)


def test_policy_style_tells_families_and_variants_apart() -> None:
    from lotus.governor.evaluate import policy_style, seeds_phrase

    names = ["stock", "stock+shield", "ztt", "ztt-pub", "ztt+shield", "drl", "drl-stable", "mpc", "mpc-energy"]
    styles = {n: policy_style(n) for n in names}
    assert styles["stock"]["color"] == styles["stock+shield"]["color"] != styles["ztt"]["color"]
    assert (styles["ztt"]["ls"], styles["ztt+shield"]["ls"], styles["ztt-pub"]["ls"]) == ("-", "--", ":")
    assert styles["drl-stable"]["ls"] == "-." and styles["drl"]["lw"] > styles["mpc"]["lw"]
    assert styles["mpc"]["color"] != styles["mpc-energy"]["color"]  # a family of its own, not an mpc variant
    assert len({(s["color"], s["ls"]) for s in styles.values()}) == len(names)
    assert policy_style("python:my.mod:Gov", 1)["color"] != policy_style("python:my.mod:Gov", 0)["color"]
    assert seeds_phrase([0]) == "1 seed; plots show seed 0" and seeds_phrase(range(5)).startswith("5 seeds")


def test_cool_price_bisection_finds_the_lowest_price_that_never_throttles() -> None:
    """Throttling stops at a price of 3000 ms/J: the bisection closes in on it from the grid's neighbours."""
    from types import SimpleNamespace

    from lotus.governor.foresight import COOL_BISECT_STEPS, _bisect_cool_price

    def fake(lam: float) -> SimpleNamespace:
        return SimpleNamespace(steps={"throttled": np.array([lam < 3000.0])}, shutdown=False)

    tried: list = [((1.0, 50.0), 1250.0, None, None, fake(1250.0)), ((0.0, 60.0), 6250.0, None, None, fake(6250.0))]
    asked: list[float] = []

    def attempt(lam: float) -> SimpleNamespace:
        asked.append(lam)
        return fake(lam)

    _bisect_cool_price(tried, attempt)
    assert len(asked) == COOL_BISECT_STEPS and all(1250.0 < lam < 6250.0 for lam in asked)
    kept_cool = min(lam for lam in asked if lam >= 3000.0)
    assert kept_cool / 3000.0 < (6250.0 / 1250.0) ** (1 / 2**COOL_BISECT_STEPS) + 1e-9  # within one last step
    asked.clear()
    _bisect_cool_price([((1.0, 50.0), 1250.0, None, None, fake(1250.0))], attempt)  # no cool price: nothing to bisect
    assert asked == []


def test_a_gated_price_acts_only_within_its_onset_of_the_trip() -> None:
    """``onset_c``: the energy price is the full ``lam`` near the trip and nothing further from it."""
    from lotus.envs.detector_env import TwoStageDetectorEnv
    from lotus.governor.foresight import ForesightController

    env = TwoStageDetectorEnv(HOT)
    env.reset(seed=0)
    core = env.core
    hottest = max(float(core.th_c), float(core.th_g)) + float(core.amb)
    gap = float(core.trip) - hottest
    assert gap > 1.0  # the room starts below its trip
    assert ForesightController(env, 500.0, onset_c=None)._price() == 500.0
    assert ForesightController(env, 500.0, onset_c=gap + 0.5)._price() == 500.0
    assert ForesightController(env, 500.0, onset_c=gap - 0.5)._price() == 0.0
    assert ForesightController(env, 0.0, onset_c=gap + 0.5)._price() == 0.0


def test_foresight_cool_never_throttles_where_a_policy_can_stay_cool() -> None:
    """The constrained reference: no throttling in the sealed box (it may skip), not a policy in any ranking."""
    from lotus.governor.evaluate import aggregate
    from lotus.governor.report import format_suite_matrix
    from lotus.governor.suite import ranking

    res = evaluate(HOT, ["stock", "foresight", "foresight-cool"], [0], 20.0)
    plain, cool = _rec(res, "foresight", 0), _rec(res, "foresight-cool", 0)
    assert plain["throttled_pct"] > 0 and cool["throttled_pct"] == 0.0
    assert cool["objective"] >= plain["objective"] - 1e-9  # a constraint can only cost the objective
    assert not cool["beats_foresight"] and cool["foresight_rollouts"] > plain["foresight_rollouts"]
    table = [
        aggregate(p, [r for r in res.records if r["policy"] == p]) for p in ("stock", "foresight", "foresight-cool")
    ]
    doc = {"scenarios": {"hot": {"table": table}}}
    assert [r["policy"] for r in ranking(doc)] == ["stock"]  # the references rank nothing, win nothing
    matrix = format_suite_matrix(doc)
    assert "| foresight-cool | **" not in matrix and "| stock | **" in matrix


def test_latency_plot_averages_over_time_not_frames() -> None:
    """At about 30 fps the trailing 1 s mean is a 30-frame mean; where frames are sparse (skipped),
    a window holds only the frames of its own second."""
    t = np.arange(1, 91) * 0.034  # 30 frames span 0.986 s, 31 span 1.02 s: no frame on a boundary
    lat = np.random.default_rng(0).uniform(20, 40, t.size)
    got = trailing_mean(t, lat)
    np.testing.assert_allclose(got[29:], np.convolve(lat, np.ones(30) / 30, mode="valid"))
    np.testing.assert_allclose(got[:3], [lat[0], lat[:2].mean(), lat[:3].mean()])
    sparse_t, sparse_lat = np.array([0.0, 0.5, 3.0, 6.0, 6.2]), np.array([20.0, 30.0, 70.0, 40.0, 60.0])
    np.testing.assert_allclose(trailing_mean(sparse_t, sparse_lat), [20.0, 25.0, 70.0, 40.0, 50.0])
