"""The safety shield: thermal margin against adversarial policies, fallback on invalid output."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from lotus.core.errors import PolicyError
from lotus.core.schema import IDX, N_FEATURES
from lotus.envs.scenario import Scenario
from lotus.governor.kernel_governors import KernelStockPolicy as StockPolicy
from lotus.governor.metrics import recording_metrics
from lotus.governor.policies import make_policy
from lotus.governor.report import summarize
from lotus.governor.rollout import rollout
from lotus.governor.shield import Shield

TRIP_C = 99.0


class Adversary:
    """A policy whose ``act`` is any function of the observation batch."""

    def __init__(self, fn, name: str = "adversary") -> None:  # noqa: ANN001
        self.fn, self.name, self.resets = fn, name, 0

    def reset(self, n: int = 1) -> None:
        self.resets += 1

    def act(self, obs: np.ndarray) -> np.ndarray:
        return self.fn(obs)


def _raise(obs: np.ndarray) -> np.ndarray:
    raise RuntimeError("network exploded")


def _shield(inner, actions) -> Shield:  # noqa: ANN001
    return Shield(inner, actions, make_policy("stock", actions))


def _cool_obs(n: int) -> np.ndarray:
    obs = np.zeros((n, N_FEATURES), dtype=np.float32)
    obs[:, IDX["cpu_freq_frac"]] = obs[:, IDX["gpu_freq_frac"]] = 0.5
    obs[:, IDX["cpu_headroom"]] = obs[:, IDX["gpu_headroom"]] = 1.5  # 45 C below the trip
    obs[:, IDX["cpu_util"]], obs[:, IDX["gpu_util"]] = 0.6, 0.7
    return obs


def _hot_obs(n: int) -> np.ndarray:
    obs = _cool_obs(n)
    obs[:, IDX["cpu_headroom"]] = obs[:, IDX["gpu_headroom"]] = 1.0 / 30.0  # 1 C below the trip
    obs[:, IDX["temp_slope"]] = 0.5
    return obs


def test_always_max_clocks_in_a_hot_box_never_throttle_behind_the_shield(actions) -> None:  # noqa: ANN001
    """900 simulated s, a board at 90 C in a sealed box at 30 C: bare ``performance`` throttles, shielded it never does.

    (In a hotter box even the lowest clocks cannot hold the die below the trip: the shield then
    only delays throttling, as docs/simulator.md shows; this room is one it can hold.)
    """
    scenario = Scenario(ambient_c=30.0, r_scale=1.3, init_temp_c=90.0)
    bare_rec = rollout(make_policy("performance", actions), scenario, 900.0, seed=0)
    bare = summarize(bare_rec)
    assert bare["throttled_pct"] > 10.0  # the scenario is a real threat

    shield = _shield(make_policy("performance", actions), actions)
    rec = rollout(shield, scenario, 900.0, seed=0)
    s = summarize(rec)
    assert rec.steps["time_s"][-1] >= 899.0 and not rec.shutdown
    assert s["throttled_pct"] == 0.0
    assert max(s["max_cpu_temp_c"], s["max_gpu_temp_c"]) < TRIP_C
    # the admission rule sheds frames half a degree before the caps would act; it does the work here,
    # and the frames it runs keep their clocks: a better objective than throttling every frame
    assert shield.diagnostics().skipped_frames > 0 and shield.fallbacks == 0
    assert recording_metrics(rec, 900.0, 30.0)["objective"] < recording_metrics(bare_rec, 900.0, 30.0)["objective"]
    assert s["frames"] > 0.25 * bare["frames"]  # it serves fewer frames, it does not stop the stream


BAD_OUTPUTS = {
    "raises": _raise,
    "nan": lambda obs: np.full(len(obs), np.nan),
    "inf": lambda obs: np.full(len(obs), np.inf),
    "negative": lambda obs: np.full(len(obs), -1, dtype=np.int64),
    "too_large": lambda obs: np.full(len(obs), 100, dtype=np.int64),
    "fractional": lambda obs: np.full(len(obs), 2.5),
    "too_long": lambda obs: np.zeros(len(obs) + 1, dtype=np.int64),
    "2d": lambda obs: np.zeros((len(obs), 2), dtype=np.int64),
    "scalar": lambda obs: np.int64(3),
    "none": lambda obs: None,
    "strings": lambda obs: np.array(["max"] * len(obs)),
}


@pytest.mark.parametrize("kind", sorted(BAD_OUTPUTS))
def test_invalid_policy_output_falls_back_to_stock(actions, env_obs: np.ndarray, kind: str, caplog) -> None:  # noqa: ANN001
    obs = env_obs[:8]
    shield = _shield(Adversary(BAD_OUTPUTS[kind], name=f"bad-{kind}"), actions)
    shield.reset(len(obs))
    with caplog.at_level(logging.WARNING, logger="lotus.governor.shield"):
        first = shield.act(obs)
        shield.act(obs)
    assert shield.fallbacks == 2 * len(obs)
    assert first.shape == (len(obs),) and first.dtype == np.int64
    # the first decision is stock's, clipped by caps that have not moved yet (full table)
    np.testing.assert_array_equal(first, StockPolicy(actions).act(obs))
    warnings = [r for r in caplog.records if r.name == "lotus.governor.shield" and r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert f"bad-{kind}" in warnings[0].getMessage() and "stock" in warnings[0].getMessage()


def test_valid_float_indices_are_accepted(actions) -> None:  # noqa: ANN001
    shield = _shield(Adversary(lambda obs: np.full(len(obs), 7.0)), actions)
    np.testing.assert_array_equal(shield.act(_cool_obs(3)), [7, 7, 7])
    assert shield.fallbacks == 0


def test_policy_failing_mid_run_does_not_stop_the_rollout(actions) -> None:  # noqa: ANN001
    calls = {"n": 0}

    def flaky(obs: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] % 5 == 0:
            raise ValueError("every fifth decision fails")
        return np.full(len(obs), actions.n - 1, dtype=np.int64)

    shield = _shield(Adversary(flaky), actions)
    rec = rollout(shield, Scenario(), 10.0, seed=0)
    assert rec.steps["time_s"][-1] >= 9.9
    assert shield.fallbacks == calls["n"] // 5 > 0


def test_load_failure_runs_stock(actions, env_obs: np.ndarray, caplog) -> None:  # noqa: ANN001
    def loader():  # noqa: ANN202
        raise PolicyError("policy metadata drl.json does not exist")

    with caplog.at_level(logging.WARNING, logger="lotus.governor.shield"):
        shield = _shield(loader, actions)
    assert shield.inner is None
    assert shield.load_error is not None and "drl.json" in shield.load_error
    assert shield.name == "shield(stock)"
    assert any("could not be loaded" in r.getMessage() for r in caplog.records)
    obs = env_obs[:5]
    shield.reset(len(obs))
    np.testing.assert_array_equal(shield.act(obs), StockPolicy(actions).act(obs))
    assert shield.fallbacks == len(obs)
    rec = rollout(shield, Scenario(), 5.0, seed=0)  # and it drives a board
    assert rec.frames["latency_ms"].size > 0


def test_loader_is_called_once_and_its_policy_used(actions) -> None:  # noqa: ANN001
    calls = []

    def loader():  # noqa: ANN202
        calls.append(1)
        return make_policy("fixed:900000,408000000", actions)

    shield = _shield(loader, actions)
    assert shield.load_error is None and len(calls) == 1
    assert shield.name == "shield(fixed:900000,408000000)"
    a = shield.act(_cool_obs(2))
    assert actions.clocks(a[0]) == (883200, 408000000)


def test_cool_board_passes_actions_through(actions) -> None:  # noqa: ANN001
    """A real 60 s rollout at 25 C: random requests reach the board unchanged."""
    rng = np.random.default_rng(0)
    proposed: list[int] = []

    def random_policy(obs: np.ndarray) -> np.ndarray:
        a = rng.integers(0, actions.n, size=len(obs))
        proposed.extend(a.tolist())
        return a

    shield = _shield(Adversary(random_policy), actions)
    rec = rollout(shield, Scenario(ambient_c=25.0), 60.0, seed=0)
    assert shield.interventions == 0 and shield.fallbacks == 0
    requested = [actions.nearest(c, g) for c, g in zip(rec.steps["requested_cpu_khz"], rec.steps["requested_gpu_hz"])]
    assert requested == proposed


def test_cool_observations_pass_through_unchanged(actions) -> None:  # noqa: ANN001
    a = np.arange(actions.n, dtype=np.int64)
    shield = _shield(Adversary(lambda obs: a[: len(obs)]), actions)
    for _ in range(40):
        np.testing.assert_array_equal(shield.act(_cool_obs(actions.n)), a)
    assert shield.interventions == 0


DT = 1 / 64  # s between decisions in these tests (a binary fraction: step boundaries are exact)


def test_hot_board_steps_caps_down_then_back_up(actions) -> None:  # noqa: ANN001
    shield = Shield(
        make_policy("performance", actions), actions, make_policy("stock", actions),
        down_every_s=3 * DT, up_every_s=30 * DT,
    )  # fmt: skip
    top = actions.n - 1
    outs = [int(shield.act(_hot_obs(1), DT)[0]) for _ in range(9)]
    c, g = actions.split(np.array(outs))
    assert outs[:2] == [top, top]  # one cap step every 3 decisions' worth of time
    assert c[-1] == actions.n_cpu - 4 and g[-1] == actions.n_gpu - 4
    assert (np.diff(c) <= 0).all() and shield.interventions > 0
    for _ in range(60):  # cool again: caps climb back one step every 30 decisions' worth
        out = int(shield.act(_cool_obs(1), DT)[0])
    assert actions.split(out)[0] == actions.n_cpu - 2


def test_caps_are_per_board(actions) -> None:  # noqa: ANN001
    shield = Shield(make_policy("performance", actions), actions, make_policy("stock", actions), down_every_s=3 * DT)
    obs = np.concatenate([_hot_obs(1), _cool_obs(1)])
    for _ in range(6):
        out = shield.act(obs, DT)
    assert out[0] < actions.n - 1 and out[1] == actions.n - 1
