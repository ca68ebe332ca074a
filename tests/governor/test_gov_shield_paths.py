"""The shield's two code paths (plain Python for one board, numpy for n) compute the same thing.

Hypothesis draws observations around the thermal thresholds (and some NaN/out-of-range values),
random times between decisions (None, tiny, long, negative, NaN, inf) and random shield settings
(no subnormal floats: a process with flush-to-zero set could not draw them), then checks,
decision by decision, that both paths give bit-identical caps, stretch factors, shown
observations, actions and counters; and that n boards in one batch behave like n shields.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lotus.core.schema import HIGH, IDX, LOW, N_FEATURES, ActionTable
from lotus.envs.core import Resolved
from lotus.envs.scenario import Scenario
from lotus.governor.baselines import StockPolicy
from lotus.governor.protocol import NOMINAL_DECISION_S, PolicyBase, TimeStep
from lotus.governor.shield import Shield

ACTIONS: ActionTable = Resolved.from_scenario(Scenario()).actions


class HashPolicy(PolicyBase):
    """An action that depends on every bit of the observation it is shown; fails on some rows."""

    name = "hash"

    def __init__(self, deadline_scale_max: float, fail_every: int) -> None:
        self.deadline_scale_max = deadline_scale_max
        self.fail_every = fail_every
        self.seen: list[bytes] = []

    def act(self, obs: np.ndarray, dt_s: TimeStep = None) -> np.ndarray:
        self.seen.append(obs.tobytes())
        h = np.frombuffer(obs.tobytes(), dtype=np.uint32).reshape(len(obs), -1).astype(np.int64).sum(axis=1)
        if self.fail_every and (h % self.fail_every == 0).any():
            raise RuntimeError("this row breaks the policy")
        return (h * 2654435761 % ACTIONS.n).astype(np.int64)


def _thermal(below_c: float) -> float:
    return below_c / 30.0


feature = st.floats(-1.0, 4.0, width=32, allow_subnormal=False)
below = st.one_of(
    st.floats(-3.0, 8.0, allow_subnormal=False), st.sampled_from([2.0, 2.5, 3.0, 3.5, float("nan"), 60.0])
)
slope = st.one_of(st.floats(-3.0, 3.0, width=32, allow_subnormal=False), st.sampled_from([0.0, -0.0, float("nan")]))


@st.composite
def observation(draw: st.DrawFn) -> np.ndarray:
    row = np.array([draw(feature) for _ in range(N_FEATURES)], dtype=np.float32)
    row = np.where(np.isnan(row), row, np.clip(row, LOW, HIGH)).astype(np.float32)
    row[IDX["cpu_headroom"]] = _thermal(draw(below))
    row[IDX["gpu_headroom"]] = _thermal(draw(below))
    row[IDX["temp_slope"]] = draw(slope)
    row[IDX["budget_left"]] = draw(st.floats(-1.0, 1.0, width=32, allow_subnormal=False))
    return row


dt = st.one_of(
    st.none(),
    st.floats(0.0, 0.1, allow_subnormal=False),
    st.sampled_from([NOMINAL_DECISION_S, 1 / 30, 0.0, -0.01, 0.5, 2.0, float("nan"), float("inf")]),
)


@st.composite
def shield_settings(draw: st.DrawFn) -> dict[str, float]:
    return {
        "down_every_s": draw(st.sampled_from([8 * NOMINAL_DECISION_S, 0.05, 0.3])),
        "up_every_s": draw(st.sampled_from([20 * NOMINAL_DECISION_S, 0.1, 0.7])),
        "stretch_rate_per_s": draw(st.sampled_from([0.03, 0.5, 5.0])),
        "max_dt_s": draw(st.sampled_from([1.0, 0.25])),
    }


def _pair(kw: dict[str, float], stretch_max: float, fail_every: int) -> tuple[Shield, Shield]:
    fast = Shield(HashPolicy(stretch_max, fail_every), ACTIONS, StockPolicy(ACTIONS), **kw)
    slow = Shield(HashPolicy(stretch_max, fail_every), ACTIONS, StockPolicy(ACTIONS), **kw)
    slow.scalar_path = False
    return fast, slow


def _same_state(a: Shield, b: Shield) -> None:
    ca, ga = a.caps
    cb, gb = b.caps
    np.testing.assert_array_equal(ca, cb)
    np.testing.assert_array_equal(ga, gb)
    assert a.stretch.tobytes() == b.stretch.tobytes()
    assert (a.fallbacks, a.interventions) == (b.fallbacks, b.interventions)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(st.tuples(observation(), dt), min_size=1, max_size=60),
    kw=shield_settings(),
    stretch_max=st.sampled_from([1.0, 1.6]),
    fail_every=st.sampled_from([0, 5]),
)
def test_scalar_and_numpy_paths_agree_for_one_board(
    steps: list[tuple[np.ndarray, float | None]], kw: dict[str, float], stretch_max: float, fail_every: int
) -> None:
    fast, slow = _pair(kw, stretch_max, fail_every)
    for row, dt_s in steps:
        obs = row[None, :]
        np.testing.assert_array_equal(fast.act(obs, dt_s), slow.act(obs, dt_s))
        _same_state(fast, slow)
        assert fast.diagnostics() == slow.diagnostics()
    assert isinstance(fast.inner, HashPolicy) and isinstance(slow.inner, HashPolicy)
    assert fast.inner.seen == slow.inner.seen  # the policy was shown the same bits


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=st.lists(st.tuples(observation(), dt), min_size=1, max_size=60),
    kw=shield_settings(),
    stretch_max=st.sampled_from([1.0, 1.6]),
)
def test_clip_alone_agrees(
    steps: list[tuple[np.ndarray, float | None]], kw: dict[str, float], stretch_max: float
) -> None:
    fast, slow = _pair(kw, stretch_max, 0)
    rng = np.random.default_rng(len(steps))
    for row, dt_s in steps:
        a = rng.integers(0, ACTIONS.n, size=1)
        np.testing.assert_array_equal(fast.clip(row[None, :], a, dt_s), slow.clip(row[None, :], a, dt_s))
        _same_state(fast, slow)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(
    n=st.integers(2, 4),
    data=st.data(),
    kw=shield_settings(),
    stretch_max=st.sampled_from([1.0, 1.6]),
)
def test_a_batch_of_boards_is_boards_side_by_side(n: int, data: st.DataObject, kw: dict[str, float],
                                                  stretch_max: float) -> None:  # fmt: skip
    """Each board has its own clock, caps and stretch: one shield over n boards = n shields."""
    batch = Shield(HashPolicy(stretch_max, 0), ACTIONS, StockPolicy(ACTIONS), **kw)
    singles = [Shield(HashPolicy(stretch_max, 0), ACTIONS, StockPolicy(ACTIONS), **kw) for _ in range(n)]
    batch.reset(n)
    for _ in range(data.draw(st.integers(1, 25))):
        obs = np.stack([data.draw(observation()) for _ in range(n)])
        board_dt = st.one_of(st.floats(0.0, 0.1, allow_subnormal=False), st.sampled_from([0.5, 3.0, float("nan")]))
        dts = np.array([data.draw(board_dt) for _ in range(n)])
        out = batch.act(obs, dts)
        for i, single in enumerate(singles):
            assert int(single.act(obs[i : i + 1], float(dts[i]))[0]) == int(out[i])
            assert float(single.stretch[0]) == float(batch.stretch[i])
            assert (single.caps[0][0], single.caps[1][0]) == (batch.caps[0][i], batch.caps[1][i])
    assert batch.interventions == sum(s.interventions for s in singles)


def test_nominal_rate_reproduces_the_per_decision_constants() -> None:
    """At 60 decisions/s (``dt_s=None``) the caps step every 8 decisions down, 20 up, and the
    stretch changes by 0.05 % per decision, as the shield did when it counted decisions."""
    hot = np.zeros((1, N_FEATURES), dtype=np.float32)
    hot[0, IDX["cpu_headroom"]] = hot[0, IDX["gpu_headroom"]] = _thermal(1.0)
    for path in (True, False):
        shield = Shield(HashPolicy(1.6, 0), ACTIONS, StockPolicy(ACTIONS))
        shield.scalar_path = path
        caps = []
        for _ in range(40):
            shield.act(hot)
            caps.append(int(shield.caps[0][0]))
        top = ACTIONS.n_cpu - 1
        steps_at = [i + 1 for i in range(40) if caps[i] != (caps[i - 1] if i else top)]
        assert steps_at == [8, 16, 24, 32, 40]
        assert math.isclose(float(shield.stretch[0]), 1.0005**40, rel_tol=1e-9)
        cool = hot.copy()
        cool[0, IDX["cpu_headroom"]] = cool[0, IDX["gpu_headroom"]] = _thermal(20.0)
        before = int(shield.caps[0][0])
        ups = []
        for _ in range(40):
            shield.act(cool)
            ups.append(int(shield.caps[0][0]))
        assert [i + 41 for i in range(40) if ups[i] != (ups[i - 1] if i else before)] == [60, 80]


def test_reaction_speed_does_not_depend_on_the_decision_rate() -> None:
    """One hot simulated second: the same cap steps and (to Euler error) the same stretch at 15,
    30, 60 and 120 decisions per second."""
    hot = np.zeros((1, N_FEATURES), dtype=np.float32)
    hot[0, IDX["cpu_headroom"]] = hot[0, IDX["gpu_headroom"]] = _thermal(1.0)
    results = []
    for rate in (15, 30, 60, 120):
        shield = Shield(HashPolicy(1.6, 0), ACTIONS, StockPolicy(ACTIONS))
        for _ in range(rate):
            shield.act(hot, 1.0 / rate)
        results.append((int(shield.caps[0][0]), float(shield.stretch[0])))
    caps = {c for c, _ in results}
    assert caps == {ACTIONS.n_cpu - 1 - 7}  # 1 s / (8/60 s) = 7.5: seven steps
    stretches = [s for _, s in results]
    assert max(stretches) - min(stretches) < 1e-3 and all(abs(s - math.exp(0.03)) < 1e-3 for s in stretches)


def test_a_long_gap_counts_as_max_dt() -> None:
    hot = np.zeros((1, N_FEATURES), dtype=np.float32)
    hot[0, IDX["cpu_headroom"]] = hot[0, IDX["gpu_headroom"]] = _thermal(1.0)
    shield = Shield(HashPolicy(1.0, 0), ACTIONS, StockPolicy(ACTIONS), max_dt_s=0.5)
    shield.act(hot, 600.0)  # the daemon sat idle for ten minutes
    assert int(shield.caps[0][0]) == ACTIONS.n_cpu - 1 - 3  # 0.5 s credited: 3 boundaries of 8/60 s
