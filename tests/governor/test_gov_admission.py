"""The admission rule (governor.admission), the shield's admit, and the simulator's frame skip under it."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lotus.core.schema import encode_observation
from lotus.envs import BatchedDetectorEnv, TwoStageDetectorEnv
from lotus.envs.core import Resolved
from lotus.envs.scenario import Scenario
from lotus.governor.admission import (
    BAND_C,
    GROW,
    MAX_GAP_S,
    MIN_GAP_S,
    SHUTDOWN_MARGIN_C,
    TRIP_MARGIN_C,
    Admission,
)
from lotus.governor.metrics import recording_metrics
from lotus.governor.policies import make_policy
from lotus.governor.registry import build_policy
from lotus.governor.rollout import rollout
from lotus.governor.shield import Shield

TRIP, SHUT = 99.0, 104.5
# the shutdown anchor (the former rule): its hot, hysteresis and cool readings
_OLD_LIMIT = SHUT - SHUTDOWN_MARGIN_C
HOT, WARM, COOL = _OLD_LIMIT + 0.5, _OLD_LIMIT - 0.5 * BAND_C, _OLD_LIMIT - BAND_C - 0.5
LIMIT = TRIP - TRIP_MARGIN_C  # the trip anchor's (the default's) limit: 96.5 C
FRAME_S = 1.0 / 30.0


def _run(adm: Admission, temps: list[float], dt: float = FRAME_S, slope: float = 0.0) -> list[bool]:
    return [adm.update(t, slope, TRIP, SHUT, dt) for t in temps]


# --- the rule against hand-computed traces --------------------------------------------------------
def test_first_hot_second_steps_the_gap_once_per_second() -> None:
    adm = Admission("shutdown")
    # 0.5 s hot at 20 calls/s: the clock crosses no 1 s boundary, nothing is skipped
    assert all(_run(adm, [HOT] * 10, dt=0.05)) and adm.gap_s == 0.0
    # every frame admitted: the interval between admitted frames is 0.05 s; t = 1 s at the 20th call
    assert all(_run(adm, [HOT] * 9, dt=0.05)) and adm.gap_s == 0.0
    # the 20th call reaches t = 1 s: gap = max(gap 0, interval 0.05, MIN_GAP_S) * GROW, which bites at once
    assert adm.update(HOT, 0.0, TRIP, SHUT, 0.05) is False
    assert adm.gap_s == pytest.approx(0.05 * GROW)
    assert adm.update(HOT, 0.0, TRIP, SHUT, 0.05) is True  # 0.1 s since the last admitted start
    adm.update(HOT, 0.0, TRIP, SHUT, 1.0)  # one more second, one more step (from the 0.1 s interval)
    assert adm.gap_s == pytest.approx(0.1 * GROW) and adm.state.last_interval_s == pytest.approx(1.0)


def test_gap_skips_the_frames_inside_it_and_counts_them() -> None:
    adm = Admission("shutdown")
    adm.state.gap_s = 0.12
    got = _run(adm, [WARM] * 12, dt=0.05)  # the hysteresis band: the gap holds
    # admitted at t = 0.05 (first call), then whenever 0.12 s passed since the last admitted start
    assert got == [True, False, False] * 4
    assert adm.skipped == got.count(False) == 8 and adm.state.admitted == 4 and adm.gap_s == 0.12


def test_gap_saturates_at_max_and_releases_with_hysteresis() -> None:
    adm = Admission("shutdown")
    for _ in range(60):
        adm.update(HOT, 0.0, TRIP, SHUT, 1.0)
    assert adm.gap_s == MAX_GAP_S and adm.served_fps_cap == pytest.approx(1.0 / MAX_GAP_S)
    # the hysteresis band holds the gap however long it lasts
    for _ in range(99):
        adm.update(WARM, 0.0, TRIP, SHUT, 1.0)
    assert adm.gap_s == MAX_GAP_S and adm.state.clock_ns == 159 * 10**9
    # cool: one step per 3 s boundary of the clock (like a poll): none by 161.9 s, one at 162 s
    adm.update(COOL, 0.0, TRIP, SHUT, 0.9)
    adm.update(COOL, 0.0, TRIP, SHUT, 1.0)
    adm.update(COOL, 0.0, TRIP, SHUT, 1.0)
    assert adm.gap_s == MAX_GAP_S
    adm.update(COOL, 0.0, TRIP, SHUT, 0.1)
    assert adm.gap_s == pytest.approx(MAX_GAP_S / GROW)
    # back to no limit after ceil(log(MAX / MIN) / log(GROW)) steps
    steps = math.ceil(math.log(MAX_GAP_S / MIN_GAP_S) / math.log(GROW))
    for _ in range(3 * steps):
        adm.update(COOL, 0.0, TRIP, SHUT, 1.0)
    assert adm.gap_s == 0.0 and adm.served_fps_cap is None


def test_rate_moves_on_time_not_on_calls() -> None:
    """The same 2 s hot from a 1 s gap: one step per second at 60 and at 20 calls/s."""
    fast, slow = Admission("shutdown"), Admission("shutdown")
    fast.state.gap_s = slow.state.gap_s = 1.0
    _run(fast, [HOT] * 120, dt=1.0 / 60.0)
    _run(slow, [HOT] * 40, dt=0.05)
    assert fast.gap_s == pytest.approx(slow.gap_s, rel=1e-6) and slow.gap_s == pytest.approx(1.0 * GROW * GROW)
    assert slow.state.clock_ns == 2 * 10**9


def test_rising_slope_engages_before_the_reading_is_hot() -> None:
    adm = Admission("shutdown")
    t = SHUT - SHUTDOWN_MARGIN_C - 0.5  # not hot on the reading, hot 1 s ahead at +1 C/s
    for _ in range(3):
        adm.update(t, 1.0, TRIP, SHUT, 1.0)
    assert adm.gap_s > 0.0
    flat = Admission("shutdown")
    for _ in range(3):
        flat.update(t, 0.0, TRIP, SHUT, 1.0)
    assert flat.gap_s == 0.0


def test_nan_reading_admits() -> None:
    adm = Admission("shutdown")
    adm.state.gap_s = MAX_GAP_S
    assert all(adm.update(float("nan"), float("nan"), TRIP, SHUT, FRAME_S) for _ in range(10))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-20.0, TRIP - 1e-6), st.floats(-5.0, 50.0), st.floats(0.0, 2.0)), min_size=1, max_size=80
    )
)
def test_shutdown_anchor_never_skips_below_the_trip(trace: list[tuple[float, float, float]]) -> None:
    """The former rule: whatever the history (gap saturated first), a reading below the trip is admitted."""
    adm = Admission("shutdown")
    for _ in range(10):
        adm.update(SHUT, 0.0, TRIP, SHUT, 1.0)
    assert adm.gap_s > 0.0
    for temp, slope, dt in trace:
        assert adm.update(temp, slope, TRIP, SHUT, dt)


def test_trip_anchor_skips_below_the_trip_and_the_shutdown_anchor_does_not() -> None:
    """97 C held, 2 C under the trip: the default (trip) anchor starts skipping at the first 1 s step."""
    trip, old = Admission(), Admission("shutdown")
    assert trip.anchor == "trip" and trip.margin_c == TRIP_MARGIN_C
    got_trip = _run(trip, [TRIP - 2.0] * 60, dt=0.05)  # 3 s at 20 calls/s
    got_old = _run(old, [TRIP - 2.0] * 60, dt=0.05)
    assert all(got_old) and old.gap_s == 0.0
    # the 20th call reaches t = 1 s: gap = max(0, interval 0.05, MIN_GAP_S) * GROW = 0.0625 s, and bites
    assert all(got_trip[:19]) and got_trip[19] is False and got_trip[20] is True
    # t = 2 s: gap = max(0.0625, last interval 0.1) * GROW; t = 3 s: once more, from the wider interval
    assert trip.gap_s > 0.1 * GROW and got_trip.count(False) == trip.skipped > 1
    # cool again (below the limit minus the band): one step off per 3 s, then every frame again
    for _ in range(40):
        trip.update(LIMIT - BAND_C - 0.5, 0.0, TRIP, SHUT, 1.0)
    assert trip.gap_s == 0.0 and all(_run(trip, [LIMIT - BAND_C - 0.5] * 30))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(-20.0, LIMIT - 1e-6), st.floats(0.0, 2.0)), min_size=1, max_size=80))
def test_trip_anchor_never_engages_below_its_limit(trace: list[tuple[float, float]]) -> None:
    """From a fresh start, a die predicted below trip - margin never loses a frame (a normal room)."""
    adm = Admission()
    for temp, dt in trace:
        assert adm.update(temp, 0.0, TRIP, SHUT, dt)
    assert adm.gap_s == 0.0 and adm.skipped == 0


def test_admission_anchor_is_checked() -> None:
    with pytest.raises(ValueError, match="anchor"):
        Admission("critical")
    acts = Resolved.from_scenario(Scenario()).actions
    with pytest.raises(ValueError, match="admission_anchor"):
        Shield(make_policy("performance", acts), acts, make_policy("stock", acts), admission_anchor="critical")


def test_normal_room_never_skips_through_the_shield() -> None:
    """A 25 C room for 60 s through rollout with a shielded policy: no frame skipped, no limit set."""
    sc = Scenario(fps=30.0, ambient_c=25.0, trace="bursty")
    policy = build_policy("performance+shield", Resolved.from_scenario(sc).actions)
    rec = rollout(policy, sc, 60.0, seed=0)
    assert rec.skipped_frames == 0 and policy.diagnostics().skipped_frames == 0
    assert policy.diagnostics().served_fps_cap is None


# --- the shield's admit ----------------------------------------------------------------------------
def _obs_at(temp_c: float, slope: float = 0.0, trip_c: float = TRIP) -> np.ndarray:
    env = TwoStageDetectorEnv(fps=30.0)
    env.reset(seed=0)
    raw = env.core.raw_readings()
    raw.update(cpu_temp_c=temp_c, gpu_temp_c=temp_c - 1.0, trip_c=trip_c, temp_slope_c_per_s=slope)
    return encode_observation(raw)[None, :]


def test_shield_admit_follows_the_rule_and_reports_it() -> None:
    sc = Scenario(fps=30.0)
    acts = Resolved.from_scenario(sc).actions
    shield = Shield(make_policy("performance", acts), acts, make_policy("stock", acts))
    plain = Admission()
    hot = _obs_at(HOT)
    got = [shield.admit(hot, 0.25, SHUT - TRIP) for _ in range(40)]
    want = [plain.update(HOT, 0.0, TRIP, SHUT, 0.25) for _ in range(40)]
    assert got == want and not all(got)
    diag = shield.diagnostics()
    assert diag.skipped_frames == want.count(False) and diag.served_fps_cap == plain.served_fps_cap
    # the gap to shutdown counts from the observation's trip: an 80 C trip with the same 104.5 C shutdown
    # (the observation's headroom ends 30 C above the trip: hotter readings look like trip + 30 C)
    low_trip = _obs_at(HOT, trip_c=80.0)
    other = Shield(make_policy("performance", acts), acts, make_policy("stock", acts))
    assert [other.admit(low_trip, 0.25, SHUT - 80.0) for _ in range(40)] == want
    off = Shield(make_policy("performance", acts), acts, make_policy("stock", acts), admission=False)
    assert all(off.admit(hot, 0.25) for _ in range(40)) and off.diagnostics().skipped_frames == 0
    shield.reset(1)
    assert shield.diagnostics().skipped_frames == 0 and shield.diagnostics().served_fps_cap is None


def test_shield_admit_many_matches_one_board_each() -> None:
    acts = Resolved.from_scenario(Scenario()).actions
    many = Shield(make_policy("performance", acts), acts, make_policy("stock", acts))
    obs = np.concatenate([_obs_at(HOT), _obs_at(90.0), _obs_at(HOT + 1.0, slope=0.5)])
    singles = [Shield(make_policy("performance", acts), acts, make_policy("stock", acts)) for _ in range(3)]
    for _ in range(30):
        got = many.admit_many(obs, 0.3, SHUT - TRIP)
        want = [s.admit(obs[i : i + 1], 0.3, SHUT - TRIP) for i, s in enumerate(singles)]
        assert got.tolist() == want
    assert many.diagnostics().skipped_frames == sum(s.diagnostics().skipped_frames for s in singles) > 0


# --- the simulator: the infeasible room ---------------------------------------------------------------
HOT_BOX = Scenario(fps=30.0, ambient_c=40.0, trace="bursty", r_scale=1.3, init_temp_c=97.0)  # suite "nano15-hot-box"
HOT_BOX_S = 600.0  # bare performance shuts down at ~345 s, the shield without admission at ~440 s


def _hot_box(policy: object) -> dict:
    rec = rollout(policy, HOT_BOX, HOT_BOX_S, seed=0)  # type: ignore[arg-type]
    m = recording_metrics(rec, HOT_BOX_S, 30.0)
    assert m["skipped_frames"] == rec.skipped_frames
    return m


def test_hot_box_admission_keeps_shielded_policies_out_of_shutdown() -> None:
    acts = Resolved.from_scenario(HOT_BOX).actions
    bare = _hot_box(build_policy("performance", acts))
    assert bare["shutdown"] and bare["shutdown_time_s"] < HOT_BOX_S and bare["skipped_frames"] == 0
    no_admission = Shield(make_policy("performance", acts), acts, make_policy("stock", acts), admission=False)
    clipped = _hot_box(no_admission)
    assert clipped["shutdown"] and clipped["skipped_frames"] == 0  # the caps alone are not enough here
    for name in ("performance+shield", "drl"):
        m = _hot_box(build_policy(name, acts))
        assert not m["shutdown"] and m["shutdown_time_s"] is None, name
        assert m["max_temp_c"] < 104.5
        # skipped frames are drops, and drops are misses over camera frames
        assert m["skipped_frames"] > 1000 and m["dropped_frames"] >= m["skipped_frames"]
        # every camera frame is processed, dropped or skipped, none twice (the last one may start past 600 s)
        assert int(HOT_BOX_S * 30) <= m["processed_frames"] + m["dropped_frames"] <= int(HOT_BOX_S * 30) + 1
        assert m["on_time_pct"] < 100.0 and m["drop_pct"] >= 100.0 * m["skipped_frames"] / m["camera_frames"]


def test_35c_hot_box_is_held_indefinitely() -> None:
    """At 35 C the idle board settles below shutdown: degraded, the shield holds the room for 20 min."""
    sc = HOT_BOX.model_copy(update={"ambient_c": 35.0})
    acts = Resolved.from_scenario(sc).actions
    bare = recording_metrics(rollout(build_policy("performance", acts), sc, 1200.0, seed=0), 1200.0, 30.0)
    m = recording_metrics(rollout(build_policy("performance+shield", acts), sc, 1200.0, seed=0), 1200.0, 30.0)
    assert bare["shutdown"] and not m["shutdown"] and m["max_temp_c"] < 103.5 and m["skipped_frames"] > 0


def test_enclosure_sheds_frames_before_the_trip_instead_of_throttling() -> None:
    """The suite's sealed box, 10 min: skipping before the caps holds it unthrottled, and scores better."""
    from lotus.governor.suite import suite

    sc = next(s.scenario for s in suite("standard")[0] if s.name == "nano15-35c-enclosure")
    acts = Resolved.from_scenario(sc).actions
    got = {}
    for anchor in ("trip", "shutdown"):
        policy = Shield(make_policy("performance", acts), acts, make_policy("stock", acts), admission_anchor=anchor)
        got[anchor] = recording_metrics(rollout(policy, sc, 600.0, seed=0), 600.0, 30.0)
    trip, old = got["trip"], got["shutdown"]
    assert trip["throttled_pct"] == 0.0 and not trip["shutdown"] and trip["skipped_frames"] > 0
    assert old["throttled_pct"] > 0.0  # the former rule left the firmware's trip to act first
    assert trip["objective"] < old["objective"] and trip["max_temp_c"] < TRIP


# --- the simulator's skip ---------------------------------------------------------------------------
def test_skip_frame_idles_to_the_next_camera_frame_and_counts_a_drop() -> None:
    env = TwoStageDetectorEnv(fps=30.0, ambient_c=25.0, episode_frames=100)
    env.reset(seed=1)
    env.step(99)
    env.step(99)  # one frame done
    core = env.core
    t0, arrival, dropped = core.t, core.arrival, core.dropped
    energy, frame = core.energy, core.frame
    _, reward, term, trunc, info = env.skip_frame()
    assert info["skipped"] and info["dropped"] == 1 and info["dropped_frames"] == dropped + 1
    assert core.t == pytest.approx(arrival + env.res.period_s) and core.arrival == pytest.approx(core.t)
    assert info["idle_ms"] == pytest.approx((core.t - t0) * 1e3) and not info["frame_done"]
    assert core.frame == frame and core.phase == 0 and core.energy > energy and not (term or trunc)
    assert math.isfinite(reward)
    # the next stage 1 starts at once: the frame after the skipped one has just arrived
    _, _, _, _, info = env.step(99)
    assert info["idle_ms"] == 0.0 and info["dropped"] == 0
    with pytest.raises(ValueError, match="before its stage 1"):
        env.skip_frame()
    # a normal step's result keeps "dropped" (frames dropped during the step) and "skipped" False
    assert info["skipped"] is False


def test_skip_back_to_back_idles_one_frame_time() -> None:
    env = TwoStageDetectorEnv(fps=0.0, episode_frames=100)
    env.reset(seed=0)
    env.step(50)
    env.step(50)
    t0, last = env.core.t, env.core.last_latency
    _, _, _, _, info = env.skip_frame()
    assert env.core.t - t0 == pytest.approx(last * 1e-3) and info["dropped"] == 1


@pytest.mark.parametrize(
    "kw",
    [
        pytest.param({"fps": 30.0, "episode_frames": 10**6}, id="30fps"),
        pytest.param({"fps": 30.0, "episode_frames": 10**6, "fan": "auto", "ambient_c": 35.0}, id="fan-auto"),
        pytest.param({"fps": 0.0, "episode_frames": 10**6}, id="back-to-back"),
        pytest.param({"fps": 30.0, "episode_frames": 40, "decision": "frame"}, id="frame-resets"),
        pytest.param({"fps": 30.0, "episode_frames": 2000, "ambient_c": 75.0, "init_temp_c": 104.3}, id="shutdown"),
    ],
)
def test_skip_batched_equals_singles(kw: dict) -> None:
    """Random skips and steps: the batch gives the singles' numbers, and boards outside the mask are untouched."""
    n, seeds = 4, [3, 4, 5, 6]
    venv = BatchedDetectorEnv(n, **kw)
    singles = [TwoStageDetectorEnv(**kw) for _ in range(n)]
    obs = venv.reset(seed=seeds)
    for i, env in enumerate(singles):
        np.testing.assert_array_equal(obs[i], env.reset(seed=seeds[i])[0])
    rng = np.random.default_rng(7)
    keys = ("dropped", "idle_ms", "energy_j", "power_w", "frame_energy_j", "cpu_temp_c", "gpu_temp_c", "throttled")
    skips = 0
    for _ in range(300):
        mask = (rng.random(n) < 0.4) & (venv.core.phase == 0)
        if mask.any() and rng.random() < 0.5:
            obs, rew, term, trunc, out = venv.skip_frames(mask)
            skips += int(mask.sum())
            for i, env in enumerate(singles):
                if not mask[i]:
                    continue
                o, r, te, tr, info = env.skip_frame()
                if te:
                    o, _ = env.reset()
                np.testing.assert_array_equal(obs[i], o)
                assert (te, tr) == (term[i], trunc[i]) and r == pytest.approx(rew[i], rel=1e-9)
                for k in keys:
                    assert info[k] == pytest.approx(out[k][i], rel=1e-9), k
            assert not out["skipped"][~mask].any() and (out["dropped"][~mask] == 0).all()
            assert (out["dt_s"][~mask] == 0.0).all()
        else:
            actions = rng.integers(0, 100, n)
            obs, rew, term, trunc, out = venv.step(actions)
            for i, env in enumerate(singles):
                o, r, te, tr, info = env.step(int(actions[i]))
                if te or tr:
                    o, _ = env.reset()
                np.testing.assert_array_equal(obs[i], o)
                assert (te, tr) == (term[i], trunc[i]) and r == pytest.approx(rew[i], rel=1e-9)
                assert info["dropped"] == out["dropped"][i]
    for i, env in enumerate(singles):
        assert venv.core.dropped[i] == env.core.dropped
    assert skips > 50


def test_skip_leaves_boards_outside_the_mask_bit_identical() -> None:
    kw = {"fps": 30.0, "episode_frames": 10**6, "ambient_c": 30.0}
    a, b = BatchedDetectorEnv(3, **kw), BatchedDetectorEnv(3, **kw)
    a.reset(seed=0)
    b.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(40):
        acts = rng.integers(0, 100, 3)
        a.step(acts)
        b.step(acts)
        if a.core.phase[0] == 0:
            a.skip_frames(np.array([True, False, False]))
            b.skip_frames(np.array([True, False, False]))
            b.skip_frames(np.zeros(3, dtype=bool))  # a no-op
    for name in ("t", "th_c", "th_g", "th_s", "energy", "dropped", "sen_c", "sen_g", "arrival"):
        np.testing.assert_array_equal(getattr(a.core, name), getattr(b.core, name), err_msg=name)
    np.testing.assert_array_equal(a.observe(), b.observe())


def test_after_skipped_frames_a_decision_gets_the_whole_time_since_the_previous_one(actions) -> None:  # noqa: ANN001
    """The shield's clocks run on ``dt_s``: in a rollout it must be the simulated time since the previous
    decision, skipped frames included, as the daemon's wall clock gives it (a skip used to cut it short)."""
    from lotus.governor.rollout import run_env

    hot = Scenario(ambient_c=40.0, trace="bursty", r_scale=1.3, init_temp_c=97.0, episode_frames=2000)
    env = TwoStageDetectorEnv(hot)
    shield = build_policy("performance+shield", actions)
    shield.reset(1)
    at: list[float] = []  # the simulator's clock at each decision, s
    given: list[float] = []  # the dt_s each decision was handed, s

    def decide(obs: np.ndarray, dt_s: float) -> int:
        at.append(float(env.core.t))
        given.append(dt_s)
        return int(shield.act(obs[None, :], dt_s)[0])

    def admit(obs: np.ndarray, dt_s: float, gap_c: float) -> bool:
        return shield.admit(obs[None, :], dt_s, gap_c)

    rec = run_env(env, decide, "performance+shield", 0, 30.0, admit=admit)
    assert rec.skipped_frames > 10  # the admission rule was at work
    assert given[0] == 0.0
    np.testing.assert_allclose(given[1:], np.diff(at), atol=1e-9)
