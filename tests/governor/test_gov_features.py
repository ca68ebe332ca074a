"""Per-policy feature adapters (FEATURE_SPECS) and their action subsets."""

from __future__ import annotations

import numpy as np
import pytest
from govhelpers import NANO_15W_CPU_KHZ, NANO_15W_GPU_HZ

from lotus.core.schema import IDX, N_FEATURES
from lotus.governor.features import FEATURE_SPECS, ztt_actions


def test_specs_cover_the_three_families() -> None:
    assert set(FEATURE_SPECS) == {"drl", "lotus-dac24", "ztt"}
    assert FEATURE_SPECS["drl"].n_inputs == N_FEATURES
    assert (FEATURE_SPECS["drl"].decision, FEATURE_SPECS["lotus-dac24"].decision) == ("stage", "stage")
    assert FEATURE_SPECS["ztt"].decision == "frame"
    assert {s.reward for s in FEATURE_SPECS.values()} == {"objective", "lotus", "ztt"}


@pytest.mark.parametrize("family", sorted(FEATURE_SPECS))
def test_inputs_shape_dtype_and_finite(actions, env_obs: np.ndarray, family: str) -> None:  # noqa: ANN001
    spec = FEATURE_SPECS[family]
    x = spec.inputs(env_obs, actions)
    assert x.shape == (len(env_obs), spec.n_inputs)
    assert x.dtype == np.float32 and np.isfinite(x).all()
    assert spec.inputs(env_obs[0], actions).shape == (1, spec.n_inputs)


def test_drl_sees_the_shared_observation_unchanged(actions, env_obs: np.ndarray) -> None:  # noqa: ANN001
    np.testing.assert_array_equal(FEATURE_SPECS["drl"].inputs(env_obs, actions), env_obs)


def test_lotus_state_columns_and_ranges(actions, env_obs: np.ndarray) -> None:  # noqa: ANN001
    x = FEATURE_SPECS["lotus-dac24"].inputs(env_obs, actions)
    assert x.shape[1] == 7
    stage = x[:, 0]
    assert set(np.unique(stage)) == {0.0, 1.0}  # both decisions present in the sample
    np.testing.assert_array_equal(stage, env_obs[:, IDX["stage2_next"]])
    np.testing.assert_array_equal(x[:, 1], env_obs[:, IDX["cpu_freq_frac"]])
    np.testing.assert_array_equal(x[:, 3], env_obs[:, IDX["gpu_freq_frac"]])
    np.testing.assert_array_equal(x[:, 5], env_obs[:, IDX["budget_left"]])
    # squashed headroom: tanh(h / 10 C) above the trip distance 0, linear (h / 10 C) below: [-3, 1)
    for col in (2, 4):
        assert (x[:, col] >= -3.0).all() and (x[:, col] < 1.0).all()
    assert (x >= -3.0).all() and (x <= 1.0).all()
    # warm boards in the sample: some headroom is below 10 C, some above
    assert (x[:, 2] < np.tanh(1.0)).any() and (x[:, 2] > 0).any()


def test_lotus_headroom_squash_is_tanh_above_and_linear_below(actions) -> None:  # noqa: ANN001
    obs = np.zeros((4, N_FEATURES), dtype=np.float32)
    obs[:, IDX["cpu_headroom"]] = np.array([20.0, 5.0, 0.0, -15.0]) / 30.0  # C below the trip
    x = FEATURE_SPECS["lotus-dac24"].inputs(obs, actions)
    np.testing.assert_allclose(x[:, 2], [np.tanh(2.0), np.tanh(0.5), 0.0, -1.5], rtol=1e-5, atol=1e-6)


def test_lotus_proposals_are_zero_at_stage_one(actions, env_obs: np.ndarray) -> None:  # noqa: ANN001
    x = FEATURE_SPECS["lotus-dac24"].inputs(env_obs, actions)
    stage1 = x[:, 0] == 0
    assert stage1.any() and (~stage1).any()
    assert (x[stage1, 6] == 0).all()
    np.testing.assert_array_equal(x[~stage1, 6], env_obs[~stage1, IDX["proposals"]])
    assert (x[~stage1, 6] > 0).any()
    assert (env_obs[stage1, IDX["proposals"]] > 0).any()  # the shared obs does carry last frame's count


def test_ztt_state(actions, env_obs: np.ndarray) -> None:  # noqa: ANN001
    x = FEATURE_SPECS["ztt"].inputs(env_obs, actions)
    assert x.shape[1] == 6
    np.testing.assert_array_equal(x[:, 0], env_obs[:, IDX["cpu_freq_frac"]])
    np.testing.assert_array_equal(x[:, 2], env_obs[:, IDX["power"]])
    np.testing.assert_allclose(x[:, 3], 1.0 - env_obs[:, IDX["cpu_headroom"]], rtol=1e-6)
    assert (x[:, 5] >= 0).all() and (x[:, 5] <= 2.0).all()  # fps / target, capped


def test_ztt_has_nine_actions_spanning_low_mid_max_on_orin_nano_15w(actions) -> None:  # noqa: ANN001
    assert (actions.cpu_khz, actions.gpu_hz) == (NANO_15W_CPU_KHZ, NANO_15W_GPU_HZ)
    sub = ztt_actions(actions)
    assert len(sub) == len(set(sub)) == 9
    np.testing.assert_array_equal(FEATURE_SPECS["ztt"].action_map(actions), sub)
    c, g = actions.split(np.array(sub))
    assert sorted(set(c.tolist())) == [5, 12, 19]  # round(3/11, 7/11, 11/11 of 19)
    assert sorted(set(g.tolist())) == [1, 3, 4]  # round(3/11, 7/11, 11/11 of 4)
    assert {(int(a), int(b)) for a, b in zip(c, g)} == {(x, y) for x in (5, 12, 19) for y in (1, 3, 4)}
    assert actions.n - 1 in sub  # max clocks included
    clocks = {actions.clocks(a) for a in sub}
    assert (NANO_15W_CPU_KHZ[-1], NANO_15W_GPU_HZ[-1]) in clocks


def test_lotus_action_map_is_all_100_joint_actions(actions) -> None:  # noqa: ANN001
    amap = FEATURE_SPECS["lotus-dac24"].action_map(actions)
    assert amap.dtype == np.int64
    np.testing.assert_array_equal(amap, np.arange(100))


def test_drl_action_map_is_the_held_clock_grid(actions) -> None:  # noqa: ANN001
    amap = FEATURE_SPECS["drl"].action_map(actions)
    assert amap.dtype == np.int64 and len(amap) == 25 and amap[-1] == 99
    assert FEATURE_SPECS["drl"].hold_s == 1.0
