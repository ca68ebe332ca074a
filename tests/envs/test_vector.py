"""BatchedDetectorEnv: same numbers as N single envs, auto-reset, and the SB3 VecEnv adapter."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from lotus.envs import BatchedDetectorEnv, Randomization, TwoStageDetectorEnv

RANDOMIZE = Randomization(
    ambient_c=(20.0, 35.0), r_scale=(0.8, 1.2), workload_scale=(0.9, 1.1), init_heat=(0.0, 0.8),
    traces=("steady", "bursty", "video"), deadline_scale=(1.0, 1.6),
)  # fmt: skip

SCENARIOS = [
    pytest.param({"episode_frames": 15}, id="plain"),
    pytest.param({"episode_frames": 15, "decision": "frame", "reward": "lotus"}, id="frame-lotus"),
    pytest.param({"episode_frames": 12, "fan": "auto", "randomize": RANDOMIZE}, id="fan-auto-randomized"),
    pytest.param(
        {"episode_frames": 10**6, "ambient_c": 75.0, "init_temp_c": 104.0, "fan": "off"}, id="shutdown-resets"
    ),
    pytest.param(
        {
            "episode_frames": 40,
            "randomize": Randomization(trip_c=(80.0, 95.0), fan_auto_prob=0.5, init_heat=(0.9, 1.0)),
        },
        id="trip-fan-prob",
    ),
]

# step results compared between a single env's info and the batched env's result arrays
COMPARED_KEYS = (
    "latency_ms", "stage2_ms", "stage_ms", "idle_ms", "proposals", "power_w", "energy_j", "frame_energy_j",
    "cpu_temp_c", "gpu_temp_c", "throttled", "frame_done",
)  # fmt: skip


def _compare(kw: dict, seeds: list[int], n_steps: int, multi_discrete: bool = False, rtol: float = 1e-9) -> int:
    """Step a batch and N singles with the same actions; return the number of auto-resets seen.

    Observations, terminations and truncations must match exactly; rewards, latencies and
    temperatures to ``rtol`` (``rtol=0``: bit for bit).
    """
    n = len(seeds)
    venv = BatchedDetectorEnv(n, multi_discrete=multi_discrete, **kw)
    singles = [TwoStageDetectorEnv(multi_discrete=multi_discrete, **kw) for _ in range(n)]
    obs = venv.reset(seed=seeds)
    assert obs.shape == (n, 17) and obs.dtype == np.float32
    for i, env in enumerate(singles):
        o, _ = env.reset(seed=seeds[i])
        np.testing.assert_array_equal(obs[i], o)
    rng = np.random.default_rng(99)
    resets = 0
    for step in range(n_steps):
        if multi_discrete:
            actions = np.stack([rng.integers(0, 20, n), rng.integers(0, 5, n)], axis=1)
        else:
            actions = rng.integers(0, 100, n)
        obs, rew, term, trunc, out = venv.step(actions.copy())  # copy: see the aliasing test below
        for i, env in enumerate(singles):
            o, r, te, tr, info = env.step(actions[i])
            ctx = f"board {i} step {step}"
            assert te == term[i] and tr == trunc[i], ctx
            pairs = [(r, rew[i])] + [(info[k], out[k][i]) for k in COMPARED_KEYS]
            for single, batched in pairs:
                assert single == (pytest.approx(batched, rel=rtol, abs=0) if rtol else batched), ctx
            assert info["applied_cpu_khz"] == venv.actions.cpu_khz[out["applied_cpu_idx"][i]], ctx
            assert info["applied_gpu_hz"] == venv.actions.gpu_hz[out["applied_gpu_idx"][i]], ctx
            if te or tr:
                resets += 1
                np.testing.assert_array_equal(venv.final_obs[i], o, err_msg=ctx)
                o, _ = env.reset()
            np.testing.assert_array_equal(obs[i], o, err_msg=ctx)
    return resets


@pytest.mark.parametrize("kw", SCENARIOS)
def test_batched_equals_singles_with_auto_reset(kw: dict) -> None:
    resets = _compare(kw, [3, 17, 42, 1000], 120)
    assert resets >= 4, "the comparison must cross auto-resets"


def test_batched_equals_singles_multidiscrete() -> None:
    _compare({"episode_frames": 10, "fan": "auto", "randomize": RANDOMIZE}, [5, 6, 7], 60, multi_discrete=True)


def test_step_does_not_modify_callers_actions() -> None:
    venv = BatchedDetectorEnv(2, multi_discrete=True, decision="frame", episode_frames=1)
    venv.reset(seed=0)
    actions = np.array([[3, 1], [5, 2]])
    _, _, _, truncated, _ = venv.step(actions)
    assert truncated.all()
    np.testing.assert_array_equal(actions, [[3, 1], [5, 2]])


def test_step_results_of_finished_boards_describe_the_finished_step() -> None:
    venv = BatchedDetectorEnv(2, decision="frame", episode_frames=1)
    venv.reset(seed=[0, 1])
    _, _, _, truncated, out = venv.step(np.array([23, 45]))
    assert truncated.all()
    singles = []
    for seed, action in ((0, 23), (1, 45)):
        env = TwoStageDetectorEnv(decision="frame", episode_frames=1)
        env.reset(seed=seed)
        singles.append(env.step(action)[4])
    np.testing.assert_array_equal(out["requested_cpu_idx"], [23 % 20, 45 % 20])
    np.testing.assert_array_equal(out["requested_gpu_idx"], [23 // 20, 45 // 20])
    np.testing.assert_allclose(out["stage1_ms"], [s["stage1_ms"] for s in singles], rtol=1e-9)


def test_int_seed_means_consecutive_seeds() -> None:
    a = BatchedDetectorEnv(3, randomize=RANDOMIZE).reset(seed=10)
    b = BatchedDetectorEnv(3, randomize=RANDOMIZE).reset(seed=[10, 11, 12])
    np.testing.assert_array_equal(a, b)


def test_boards_are_independent() -> None:
    venv = BatchedDetectorEnv(4, randomize=RANDOMIZE)
    venv.reset(seed=0)
    assert len({float(t) for t in venv.core.amb}) == 4
    obs, *_ = venv.step(np.full(4, 99))
    assert len({row.tobytes() for row in obs}) == 4


def test_batched_same_seed_reproducible() -> None:
    def run() -> np.ndarray:
        venv = BatchedDetectorEnv(3, episode_frames=5, randomize=RANDOMIZE)
        venv.reset(seed=1)
        rewards = [venv.step(np.arange(3) * 30)[1] for _ in range(30)]
        return np.asarray(rewards)

    np.testing.assert_array_equal(run(), run())


def test_batched_rejects_out_of_range_actions() -> None:
    venv = BatchedDetectorEnv(2)
    venv.reset(seed=0)
    with pytest.raises(ValueError):
        venv.step(np.array([0, 100]))
    with pytest.raises(ValueError):
        venv.step(np.array([-1, 0]))


def test_batched_rejects_wrong_seed_count_and_zero_boards() -> None:
    with pytest.raises(ValueError):
        BatchedDetectorEnv(2).reset(seed=[1, 2, 3])
    with pytest.raises(ValueError):
        BatchedDetectorEnv(0)


@pytest.fixture
def vec_env_module():  # noqa: ANN201
    if importlib.util.find_spec("lotus.governor.vec_env") is None:
        pytest.skip("governor/vec_env.py (SB3 VecEnv adapter) is not written yet")
    return pytest.importorskip("lotus.governor.vec_env")


@pytest.fixture
def feature_specs() -> dict:
    return pytest.importorskip("lotus.governor.features").FEATURE_SPECS


@pytest.mark.filterwarnings("ignore:The `render_mode` attribute is not defined:UserWarning")
def test_sb3_vec_env_matches_batched_env(vec_env_module, feature_specs: dict) -> None:  # noqa: ANN001
    """With the identity ("drl") spec, not held, the adapter is the batched env behind SB3's conventions
    (the held form is tests/governor/test_gov_hold.py)."""
    from dataclasses import replace

    from stable_baselines3.common.vec_env import VecEnv

    spec = replace(feature_specs["drl"], hold_s=0.0)
    kw = {"episode_frames": 4, "decision": spec.decision, "reward": spec.reward}
    venv = vec_env_module.DetectorVecEnv(BatchedDetectorEnv(3, **kw), spec)
    ref = BatchedDetectorEnv(3, **kw)
    assert isinstance(venv, VecEnv)
    assert venv.num_envs == 3
    venv.seed(0)
    np.testing.assert_array_equal(venv.reset(), ref.reset(seed=0))
    rng = np.random.default_rng(0)
    saw_done = False
    for _ in range(12):
        actions = rng.integers(0, venv.action_space.n, 3)
        obs, rewards, dones, infos = venv.step(actions)
        r_obs, r_rew, r_term, r_trunc, _ = ref.step(venv.action_map[actions])
        assert obs.shape == (3, 17) and rewards.shape == (3,) and dones.dtype == bool
        np.testing.assert_array_equal(obs, r_obs)
        np.testing.assert_allclose(rewards, r_rew, rtol=1e-6)
        np.testing.assert_array_equal(dones, r_term | r_trunc)
        assert len(infos) == 3
        for i in np.flatnonzero(dones):
            saw_done = True
            np.testing.assert_array_equal(infos[i]["terminal_observation"], ref.final_obs[i])
            assert infos[i]["TimeLimit.truncated"] == bool(r_trunc[i] and not r_term[i])
    assert saw_done, "episodes of 4 frames must end within 12 steps"
    venv.close()


@pytest.mark.filterwarnings("ignore:The `render_mode` attribute is not defined:UserWarning")
@pytest.mark.parametrize("name", ["drl", "lotus-dac24", "ztt"])
def test_sb3_vec_env_spaces_follow_feature_spec(vec_env_module, feature_specs: dict, name: str) -> None:  # noqa: ANN001
    if name not in feature_specs:
        pytest.skip(f"feature spec {name!r} not defined")
    spec = feature_specs[name]
    benv = BatchedDetectorEnv(2, episode_frames=3, decision=spec.decision, reward=spec.reward)
    venv = vec_env_module.DetectorVecEnv(benv, spec)
    assert venv.observation_space.shape == (spec.n_inputs,)
    assert venv.action_space.n == len(spec.action_map(benv.actions))
    venv.seed(1)
    obs = venv.reset()
    for _ in range(8):
        assert obs.shape == (2, spec.n_inputs) and obs.dtype == np.float32
        assert all(venv.observation_space.contains(o) for o in obs)
        obs, rewards, _, _ = venv.step(np.full(2, venv.action_space.n - 1))
        assert np.all(np.isfinite(rewards))


def test_batched_equals_singles_across_draw_blocks() -> None:
    """Long enough for several blocks of precomputed jitter and sensor draws, with boards out of phase."""
    kw = {"episode_frames": 10**6, "ambient_c": 60.0, "init_temp_c": 103.0, "fan": "auto", "fps": 15.0}
    assert _compare(kw, [1, 2, 3], 400) >= 1, "a shutdown reset must put the boards out of phase"


def test_ahead_draws_equal_direct_draws() -> None:
    from lotus.envs.core import DRAW_BLOCK, AheadDraws
    from lotus.envs.ops import ARRAY, normal

    def draw(k: np.ndarray, c: np.ndarray) -> np.ndarray:
        return normal(k, c, ARRAY)[None]

    n, rng = 5, np.random.default_rng(0)
    keys = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    draws, counters = AheadDraws(n, 1, draw), np.zeros(n, dtype=np.uint64)
    for step in range(3 * DRAW_BLOCK):
        rows = np.flatnonzero(rng.random(n) < 0.7)
        k, c = keys[rows], counters[rows]
        np.testing.assert_array_equal(draws.get(rows, k, c)[0], draw(k, c)[0])
        counters += rng.integers(1, 3, n).astype(np.uint64)  # jumps too
        if step == DRAW_BLOCK:  # a board reset: new key, counter from 0
            keys[2], counters[2] = np.uint64(12345), np.uint64(0)
            draws.forget(2)


def test_board_draws_equal_direct_draws() -> None:
    """The one-board blocks give the batch's draws, single and paired, across blocks, jumps and key changes."""
    from lotus.envs.core import BOARD_DRAW_BLOCK, BoardDraws
    from lotus.envs.ops import ARRAY, SCALAR, normal
    from lotus.envs.physics import sensor_noise

    def pair(k: np.ndarray, c: np.ndarray) -> np.ndarray:
        return np.stack(sensor_noise(k, c, ARRAY))

    single, paired = BoardDraws(lambda k, c: normal(k, c, ARRAY)[None]), BoardDraws(pair)
    rng, key, counter = np.random.default_rng(1), 987654321, 0
    for step in range(3 * BOARD_DRAW_BLOCK // 2):
        k, c = np.array([key], dtype=np.uint64), np.array([counter], dtype=np.uint64)
        assert single.get(key, counter) == normal(k, c, ARRAY)[0]
        assert paired.pair(key, counter) == tuple(float(x[0]) for x in sensor_noise(k, c, ARRAY))
        assert paired.pair(key, counter)[0] == pytest.approx(sensor_noise(key, counter, SCALAR)[0], rel=1e-12)
        counter += int(rng.integers(1, 4))  # jumps, as sensor samples do
        if step == BOARD_DRAW_BLOCK // 2:  # a reset: a new key, its counters from 0
            key, counter = 42, 0


def test_masked_step_equals_stepping_the_active_boards_alone() -> None:
    """``step(actions, active)``: the active boards move as if alone; the frozen ones keep every bit of state."""
    kw = {"episode_frames": 300, "ambient_c": 40.0, "fan": "auto", "r_scale": 1.3, "init_temp_c": 95.0}
    venv = BatchedDetectorEnv(4, **kw)
    venv.reset(seed=0)
    alone = [BatchedDetectorEnv(1, **kw) for _ in range(4)]
    for i, env in enumerate(alone):
        env.reset(seed=[i])
    rng, resets = np.random.default_rng(0), 0
    for _ in range(2500):
        actions, active = rng.integers(0, venv.actions.n, 4), rng.random(4) < 0.6
        before = venv.observe()
        obs, reward, terminated, truncated, _ = venv.step(actions, active=active)
        np.testing.assert_array_equal(obs[~active], before[~active])
        assert not (reward[~active] != 0).any() and not (terminated | truncated)[~active].any()
        for i in np.flatnonzero(active):
            o, r, te, tr, _ = alone[i].step(actions[i : i + 1])
            np.testing.assert_array_equal(obs[i], o[0])
            assert reward[i] == pytest.approx(r[0], rel=1e-9) and (terminated[i], truncated[i]) == (te[0], tr[0])
            resets += int(te[0] or tr[0])
    assert resets >= 2, "episodes must end (and the boards reset) inside the run"
