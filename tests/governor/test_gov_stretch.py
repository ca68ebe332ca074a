"""The shield's deadline stretch: a deadline-conditioned policy is shown a longer deadline when hot."""

from __future__ import annotations

import numpy as np

from lotus.core.schema import IDX, N_FEATURES
from lotus.envs.scenario import Scenario
from lotus.governor.policies import make_policy
from lotus.governor.protocol import NOMINAL_DECISION_S, PolicyBase
from lotus.governor.registry import build_policy
from lotus.governor.report import summarize
from lotus.governor.rollout import rollout
from lotus.governor.shield import Shield

RELATIVE = ("last_latency", "latency_ema", "last_stage1", "next_frame_in")


class Recorder(PolicyBase):
    """Asks for the top clocks and keeps every observation it was shown."""

    name = "recorder"

    def __init__(self, n_actions: int, deadline_scale_max: float | None) -> None:
        self.n_actions, self.seen = n_actions, []
        if deadline_scale_max is not None:
            self.deadline_scale_max = deadline_scale_max

    def act(self, obs: np.ndarray, dt_s=None) -> np.ndarray:  # noqa: ANN001
        self.seen.append(obs.copy())
        return np.full(len(obs), self.n_actions - 1)


def _obs(n: int, below_trip_c: float) -> np.ndarray:
    obs = np.zeros((n, N_FEATURES), dtype=np.float32)
    obs[:, IDX["cpu_headroom"]] = obs[:, IDX["gpu_headroom"]] = below_trip_c / 30.0
    obs[:, IDX["stage2_next"]] = 1.0
    obs[:, IDX["budget_left"]] = 0.25  # 75 % of the deadline spent
    for name in RELATIVE:
        obs[:, IDX[name]] = 1.2
    return obs


def _shield(policy: Recorder, actions, **kw) -> Shield:  # noqa: ANN001
    return Shield(policy, actions, make_policy("stock", actions), **kw)


def test_hot_board_sees_a_longer_deadline_up_to_the_trained_range(actions) -> None:  # noqa: ANN001
    rec = Recorder(actions.n, deadline_scale_max=1.5)
    shield = _shield(rec, actions, stretch_rate_per_s=0.01 / NOMINAL_DECISION_S)
    assert shield.stretch_max == 1.5
    stretches = []
    for _ in range(100):
        shield.act(_obs(1, below_trip_c=2.2))  # inside margin 2 + 0.5: hot
        stretches.append(float(shield.stretch[0]))
    assert (np.diff(stretches) >= 0).all() and stretches[0] > 1.0
    assert stretches[-1] == 1.5  # capped at the largest factor the policy was trained on
    last = rec.seen[-1][0]
    for name in RELATIVE:
        assert abs(last[IDX[name]] - 1.2 / 1.5) < 1e-6
    # 0.75 deadlines spent is 0.5 of the stretched deadline
    assert abs(last[IDX["budget_left"]] - 0.5) < 1e-6
    for _ in range(200):  # cool: the stretch decays back to the real deadline
        shield.act(_obs(1, below_trip_c=20.0))
    assert shield.stretch[0] == 1.0
    np.testing.assert_array_equal(rec.seen[-1], _obs(1, below_trip_c=20.0))


def test_hold_band_keeps_the_stretch(actions) -> None:  # noqa: ANN001
    shield = _shield(Recorder(actions.n, 2.0), actions, stretch_rate_per_s=0.01 / NOMINAL_DECISION_S)
    for _ in range(20):
        shield.act(_obs(1, below_trip_c=2.0))
    held = float(shield.stretch[0])
    for _ in range(20):  # between limit (2.5 C) and limit + band (3.5 C): no change
        shield.act(_obs(1, below_trip_c=3.0))
    assert float(shield.stretch[0]) == held > 1.0


def test_policy_trained_on_one_deadline_is_never_stretched(actions) -> None:  # noqa: ANN001
    rec = Recorder(actions.n, deadline_scale_max=None)
    shield = _shield(rec, actions, stretch_rate_per_s=0.05 / NOMINAL_DECISION_S)
    assert shield.stretch_max == 1.0
    hot = _obs(1, below_trip_c=1.0)
    for _ in range(50):
        shield.act(hot)
    assert all(np.array_equal(seen, hot) for seen in rec.seen)


def test_stretch_is_per_board_and_resets(actions) -> None:  # noqa: ANN001
    rec = Recorder(actions.n, 1.6)
    shield = _shield(rec, actions, stretch_rate_per_s=0.02 / NOMINAL_DECISION_S)
    obs = np.concatenate([_obs(1, below_trip_c=1.0), _obs(1, below_trip_c=20.0)])
    for _ in range(10):
        shield.act(obs)
    s = shield.stretch
    assert s[0] > 1.0 and s[1] == 1.0
    assert rec.seen[-1][1, IDX["last_latency"]] == np.float32(1.2)
    shield.reset_boards(np.array([True, False]))
    assert (shield.stretch == 1.0).all()


def test_a_deadline_trained_policy_is_stretched_within_its_training_range(actions) -> None:  # noqa: ANN001
    old = build_policy("drl-stable", actions)  # the previous drl, trained on deadlines x1-1.6
    assert isinstance(old, Shield) and old.inner is not None
    assert 1.0 < old.stretch_max <= 2.0
    drl = build_policy("drl", actions)  # the current one is trained on the real deadline: no stretch
    assert isinstance(drl, Shield) and drl.stretch_max == 1.0


def _settled_latency(rec, after_s: float) -> np.ndarray:  # noqa: ANN001
    return rec.frames["latency_ms"][rec.frames["time_s"] > after_s]


def test_stretch_levels_latency_in_a_hot_room(actions) -> None:  # noqa: ANN001
    """The previous drl (``drl-stable``) from a hot start in a sealed box at 30 C on bursty proposals: once the stretch
    has settled, latency is steadier (std and p99) than with the caps alone, and the board never throttles."""
    scenario = Scenario(ambient_c=30.0, r_scale=1.3, trace="bursty", fps=30, init_temp_c=93.0)
    stretched = build_policy("drl-stable", actions)
    clipped = build_policy("drl-stable", actions)
    assert isinstance(clipped, Shield) and isinstance(stretched, Shield)
    clipped.stretch_max = 1.0
    # the stretch against the caps: the former admission rule, which lets the caps act first
    stretched.admission_anchor = clipped.admission_anchor = "shutdown"
    rec_s = rollout(stretched, scenario, 360.0, seed=3)
    rec_c = rollout(clipped, scenario, 360.0, seed=3)
    assert summarize(rec_s)["throttled_pct"] == 0.0
    assert float(stretched.stretch[0]) > 1.0
    lat_s, lat_c = _settled_latency(rec_s, 120.0), _settled_latency(rec_c, 120.0)
    # in this room (a warm board in a sealed box, near the limit of what any clock can hold) the
    # stretch buys a modest gain: the heatsink's minutes-long time constant leaves little to level
    assert lat_s.std() < 0.95 * lat_c.std()
    assert np.percentile(lat_s, 99) < np.percentile(lat_c, 99)
