"""The gymnasium env: checker compliance, spaces, decision modes, info keys and episode end."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import lotus.envs as envs
from lotus.core.schema import IDX
from lotus.envs import TwoStageDetectorEnv

INFO_KEYS = {
    "latency_ms", "stage1_ms", "stage2_ms", "proposals", "cpu_temp_c", "gpu_temp_c", "power_w", "energy_j",
    "requested_cpu_khz", "requested_gpu_hz", "applied_cpu_khz", "applied_gpu_hz", "throttled", "frame_done",
    "time_s", "frame",
}  # fmt: skip

VARIANTS = [
    pytest.param({}, id="discrete-stage-stable"),
    pytest.param({"multi_discrete": True}, id="multidiscrete"),
    pytest.param({"decision": "frame"}, id="frame"),
    pytest.param({"reward": "lotus"}, id="lotus-reward"),
    pytest.param({"multi_discrete": True, "decision": "frame", "reward": "lotus"}, id="all-three"),
]


@pytest.mark.parametrize("kw", VARIANTS)
def test_gymnasium_env_checker_passes(kw: dict) -> None:
    env = TwoStageDetectorEnv(episode_frames=50, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # checker warnings are failures too
        gym_check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("kw", VARIANTS)
def test_sb3_env_checker_passes(kw: dict) -> None:
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = TwoStageDetectorEnv(episode_frames=50, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env, warn=True, skip_render_check=True)


def test_gym_make_builds_registered_env() -> None:
    assert envs.ENV_ID in gym.registry
    env = gym.make(envs.ENV_ID, decision="frame", episode_frames=20)
    assert isinstance(env.unwrapped, TwoStageDetectorEnv)
    assert env.unwrapped.scenario.decision == "frame"
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    assert isinstance(reward, float)
    env.close()


def test_spaces() -> None:
    env = TwoStageDetectorEnv()
    assert env.action_space == gym.spaces.Discrete(100)
    assert env.observation_space.shape == (17,)
    assert env.observation_space.dtype == np.float32
    md = TwoStageDetectorEnv(multi_discrete=True)
    assert md.action_space == gym.spaces.MultiDiscrete([20, 5])


def test_scenario_object_and_keywords_combine() -> None:
    base = envs.Scenario(ambient_c=30.0, decision="frame")
    env = TwoStageDetectorEnv(base, fan="on")
    assert env.scenario.ambient_c == 30.0 and env.scenario.fan == "on" and env.scenario.decision == "frame"


def test_invalid_scenario_field_rejected() -> None:
    with pytest.raises(ValueError):
        TwoStageDetectorEnv(decision="sometimes")
    with pytest.raises(ValueError):
        TwoStageDetectorEnv(nonexistent_field=1)


def test_stage_mode_alternates_and_proposals_match() -> None:
    env = TwoStageDetectorEnv(trace="video", episode_frames=200)
    obs, _ = env.reset(seed=4)
    max_p = env.res.workload.max_proposals
    rng = np.random.default_rng(0)
    expected_next = 0.0
    for _ in range(200):
        assert obs[IDX["stage2_next"]] == expected_next
        before = obs
        obs, _, _, _, info = env.step(int(rng.integers(100)))
        if before[IDX["stage2_next"]] == 1.0:  # this step ran stage 2
            assert info["frame_done"]
            assert info["proposals"] == round(float(before[IDX["proposals"]]) * max_p)
            assert info["stage2_ms"] > 0
        else:
            assert not info["frame_done"]
            assert info["stage2_ms"] == 0.0
        expected_next = 1.0 - expected_next


def test_frame_mode_completes_a_frame_every_step() -> None:
    env = TwoStageDetectorEnv(decision="frame", episode_frames=100)
    obs, _ = env.reset(seed=0)
    for i in range(50):
        assert obs[IDX["stage2_next"]] == 0.0
        obs, _, _, _, info = env.step(i % 100)
        assert info["frame_done"]
        assert info["frame"] == i + 1
        assert info["latency_ms"] == pytest.approx(info["stage1_ms"] + info["stage2_ms"], rel=1e-9)


def test_info_has_documented_keys_with_sane_values() -> None:
    env = TwoStageDetectorEnv()
    env.reset(seed=0)
    for _ in range(4):
        _, _, _, _, info = env.step(99)
        assert INFO_KEYS <= set(info)
    assert info["latency_ms"] > 0 and info["stage1_ms"] > 0 and info["stage2_ms"] > 0
    assert 20.0 < info["cpu_temp_c"] < 40.0 and 20.0 < info["gpu_temp_c"] < 40.0
    assert info["power_w"] > 0 and info["energy_j"] > 0
    assert info["requested_cpu_khz"] == info["applied_cpu_khz"] == 1510400
    assert info["requested_gpu_hz"] == info["applied_gpu_hz"] == 624750000
    assert info["throttled"] is False


def test_requested_clocks_follow_action_index_order() -> None:
    env = TwoStageDetectorEnv()
    env.reset(seed=0)
    a = env.actions
    cpu_idx, gpu_idx = 7, 2
    info = env.step(gpu_idx * a.n_cpu + cpu_idx)[4]
    assert info["requested_cpu_khz"] == a.cpu_khz[cpu_idx]
    assert info["requested_gpu_hz"] == a.gpu_hz[gpu_idx]
    md = TwoStageDetectorEnv(multi_discrete=True)
    md.reset(seed=0)
    info_md = md.step(np.array([cpu_idx, gpu_idx]))[4]
    assert info_md["requested_cpu_khz"] == info["requested_cpu_khz"]
    assert info_md["requested_gpu_hz"] == info["requested_gpu_hz"]


@pytest.mark.parametrize("action", [-1, 100, 1000])
def test_out_of_range_discrete_action_raises(action: int) -> None:
    env = TwoStageDetectorEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(action)


@pytest.mark.parametrize("action", [[20, 0], [0, 5], [-1, 0]])
def test_out_of_range_multidiscrete_action_raises(action: list) -> None:
    env = TwoStageDetectorEnv(multi_discrete=True)
    env.reset(seed=0)
    with pytest.raises(ValueError):
        env.step(np.array(action))


def test_step_before_reset_raises() -> None:
    env = TwoStageDetectorEnv()
    with pytest.raises(gym.error.ResetNeeded):
        env.step(0)


@pytest.mark.parametrize(("decision", "steps_per_frame"), [("stage", 2), ("frame", 1)])
def test_truncation_after_episode_frames(decision: str, steps_per_frame: int) -> None:
    frames = 7
    env = TwoStageDetectorEnv(decision=decision, episode_frames=frames)
    env.reset(seed=0)
    n_steps = frames * steps_per_frame
    for i in range(n_steps):
        _, _, terminated, truncated, info = env.step(50)
        assert not terminated
        assert truncated == (i == n_steps - 1)
    assert info["frame"] == frames
    with pytest.raises(gym.error.ResetNeeded):
        env.step(50)
    env.reset()
    _, _, _, truncated, _ = env.step(50)
    assert not truncated


def test_reset_without_seed_continues_rng_stream() -> None:
    env = TwoStageDetectorEnv(episode_frames=3)
    env.reset(seed=5)
    first = [env.step(99)[4]["proposals"] for _ in range(6)]
    env.reset()
    second = [env.step(99)[4]["proposals"] for _ in range(6)]
    env.reset(seed=5)
    again = [env.step(99)[4]["proposals"] for _ in range(6)]
    assert first == again
    assert first != second


def test_rewards_are_finite_and_penalise_misses() -> None:
    """Stable reward: a frame that misses its deadline costs more than one that meets it."""
    env = TwoStageDetectorEnv(decision="frame", episode_frames=100)
    env.reset(seed=0)
    fast = [env.step(99)[1] for _ in range(20)]
    env.reset(seed=0)
    slow = [env.step(0)[1] for _ in range(20)]
    assert np.all(np.isfinite(fast)) and np.all(np.isfinite(slow))
    assert np.mean(fast) > np.mean(slow) + 1.0


def test_observations_stay_in_space_through_throttling() -> None:
    env = TwoStageDetectorEnv(ambient_c=45.0, init_temp_c=97.0, decision="frame", episode_frames=10**6)
    obs, _ = env.reset(seed=0)
    saw_throttle = False
    for _ in range(3000):
        obs, _, terminated, _, info = env.step(99)
        assert env.observation_space.contains(obs)
        saw_throttle |= info["throttled"]
        if info["throttled"]:
            assert obs[IDX["throttled"]] == 1.0
        if terminated:
            break
    assert saw_throttle


def test_deadline_scale_rescales_the_deadline_the_policy_is_judged_by() -> None:
    """A board drawn with deadline factor 2 sees latencies in units of twice the deadline and is
    charged against that deadline; the physics are untouched."""
    from lotus.envs import Randomization

    plain = TwoStageDetectorEnv(ambient_c=30.0, episode_frames=50, randomize=Randomization(deadline_scale=(1.0, 1.0)))
    scaled = TwoStageDetectorEnv(ambient_c=30.0, episode_frames=50, randomize=Randomization(deadline_scale=(2.0, 2.0)))
    o_p, _ = plain.reset(seed=4)
    o_s, _ = scaled.reset(seed=4)
    rewards_p, rewards_s = [], []
    for step in range(30):
        a = (step * 37) % plain.action_space.n
        o_p, r_p, *_, info_p = plain.step(a)
        o_s, r_s, *_, info_s = scaled.step(a)
        assert info_p["latency_ms"] == info_s["latency_ms"] and info_p["gpu_temp_c"] == info_s["gpu_temp_c"]
        for name in ("last_latency", "latency_ema", "last_stage1"):
            assert o_s[IDX[name]] == pytest.approx(o_p[IDX[name]] / 2.0, rel=1e-6)
        rewards_p.append(r_p)
        rewards_s.append(r_s)
    assert rewards_p != rewards_s


def test_inverted_deadline_scale_is_rejected() -> None:
    from lotus.envs import Randomization

    with pytest.raises(ValueError, match="deadline_scale"):
        Randomization(deadline_scale=(1.5, 1.0))


def test_hot_start_puts_the_board_near_the_trip_and_leaves_other_draws_alone() -> None:
    """``hot_start_prob`` 1 starts every node within ``hot_start_below_trip_c`` of the trip (the die
    reads it at reset); probability 0 draws nothing extra, so the room and trace stay those of a
    scenario without the field."""
    from lotus.envs import Randomization

    hot = Randomization(ambient_c=(20.0, 40.0), hot_start_prob=1.0, hot_start_below_trip_c=(-1.0, 3.0))
    starts = []
    for seed in range(12):
        env = TwoStageDetectorEnv(episode_frames=20, randomize=hot)
        env.reset(seed=seed)
        core = env.core
        starts.append(core.th_s + core.amb)
        assert core.trip - 3.0 - 1e-9 <= starts[-1] <= core.trip + 1.0 + 1e-9
    assert max(starts) - min(starts) > 1.0  # drawn, not fixed
    cool = Randomization(ambient_c=(20.0, 40.0), init_heat=(0.0, 1.0))
    same = Randomization(ambient_c=(20.0, 40.0), init_heat=(0.0, 1.0), hot_start_prob=0.0)
    a = TwoStageDetectorEnv(episode_frames=20, randomize=cool)
    b = TwoStageDetectorEnv(episode_frames=20, randomize=same)
    obs_a, _ = a.reset(seed=3)
    obs_b, _ = b.reset(seed=3)
    assert np.array_equal(obs_a, obs_b)
    for _ in range(10):
        assert a.step(5)[4] == b.step(5)[4]


def test_inverted_hot_start_range_is_rejected() -> None:
    from lotus.envs import Randomization

    with pytest.raises(ValueError, match="hot_start_below_trip_c"):
        Randomization(hot_start_below_trip_c=(4.0, 1.0))
