"""The shared observation/action schema (envs.schema)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import lotus.core.schema as schema
from lotus.core.schema import (
    FEATURE_NAMES,
    FEATURES,
    IDX,
    N_FEATURES,
    RAW_FIELDS,
    ActionTable,
    encode_observation,
)
from lotus.envs import TwoStageDetectorEnv, load_board
from lotus.envs.spaces import action_space, observation_space

NANO_15W = ActionTable.from_mode(load_board("orin-nano").mode("15W"))


def _raw(**overrides: float) -> dict[str, float]:
    """Plausible physical readings of an Orin Nano mid-frame."""
    raw = {
        "stage2_next": 1.0, "cpu_khz": 806400.0, "gpu_hz": 510e6, "cpu_max_khz": 1510400.0, "gpu_max_hz": 624.75e6,
        "cpu_temp_c": 71.0, "gpu_temp_c": 74.5, "trip_c": 99.0, "temp_slope_c_per_s": 0.4, "proposals": 120.0,
        "max_proposals": 300.0, "deadline_ms": 40.0, "frame_elapsed_ms": 14.0, "last_latency_ms": 31.0,
        "latency_ema_ms": 29.0, "last_stage1_ms": 15.0, "next_frame_in_ms": 6.0, "power_w": 11.0,
        "budget_w": 15.0, "cpu_util": 0.6, "gpu_util": 0.8, "throttled": 0.0, "fan_pwm": 0.25,
    }  # fmt: skip
    raw.update(overrides)
    return raw


def test_feature_names_match_documented_table() -> None:
    """The module docstring's table (index, name) is the order encode_observation uses."""
    rows = re.findall(r"^(\d+)\s+(\w+)\s", schema.__doc__, flags=re.MULTILINE)
    assert [int(i) for i, _ in rows] == list(range(N_FEATURES))
    assert tuple(name for _, name in rows) == FEATURE_NAMES


def test_feature_bookkeeping_is_consistent() -> None:
    assert N_FEATURES == len(FEATURE_NAMES) == len(FEATURES) == 17
    assert [IDX[n] for n in FEATURE_NAMES] == list(range(N_FEATURES))
    space = observation_space()
    assert space.shape == (N_FEATURES,) and space.dtype == np.float32
    np.testing.assert_array_equal(space.low, [lo for lo, _ in FEATURES.values()])
    np.testing.assert_array_equal(space.high, [hi for _, hi in FEATURES.values()])


def test_features_in_documented_order() -> None:
    raw = _raw()
    expected = {
        "stage2_next": 1.0,
        "cpu_freq_frac": 806400 / 1510400,
        "gpu_freq_frac": 510 / 624.75,
        "cpu_headroom": (99 - 71) / 30,
        "gpu_headroom": (99 - 74.5) / 30,
        "temp_slope": 0.4,
        "proposals": 120 / 300,
        "budget_left": (40 - 14) / 40,
        "last_latency": 31 / 40,
        "latency_ema": 29 / 40,
        "last_stage1": 15 / 40,
        "next_frame_in": 6 / 40,
        "power": 11 / 15,
        "cpu_util": 0.6,
        "gpu_util": 0.8,
        "throttled": 0.0,
        "fan": 0.25,
    }
    obs = encode_observation(raw)
    assert obs.dtype == np.float32 and obs.shape == (N_FEATURES,)
    np.testing.assert_allclose(obs, [expected[n] for n in FEATURE_NAMES], rtol=1e-6)


def test_scalar_and_array_inputs_give_same_rows() -> None:
    rng = np.random.default_rng(0)
    rows = [_raw(cpu_temp_c=t, power_w=p, proposals=n) for t, p, n in zip(rng.uniform(20, 110, 5),
            rng.uniform(3, 40, 5), rng.integers(0, 300, 5).astype(float))]  # fmt: skip
    arrays = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    batch = encode_observation(arrays)
    assert batch.shape == (5, N_FEATURES) and batch.dtype == np.float32
    for i, row in enumerate(rows):
        np.testing.assert_array_equal(batch[i], encode_observation(row))


def test_mixed_scalar_and_array_readings() -> None:
    """The simulator passes per-board arrays next to shared scalars (deadline, budget)."""
    raw = _raw()
    raw["cpu_temp_c"] = np.array([60.0, 80.0])
    raw["gpu_temp_c"] = np.array([61.0, 81.0])
    out = encode_observation(raw)
    assert out.shape == (2, N_FEATURES)
    np.testing.assert_allclose(out[:, IDX["cpu_headroom"]], [39 / 30, 19 / 30], rtol=1e-6)
    np.testing.assert_allclose(out[0, IDX["power"]], 11 / 15, rtol=1e-6)


@pytest.mark.parametrize(
    ("overrides", "name", "expected"),
    [
        ({"cpu_temp_c": 150.0}, "cpu_headroom", -1.0),
        ({"gpu_temp_c": -40.0}, "gpu_headroom", 2.0),
        ({"temp_slope_c_per_s": 50.0}, "temp_slope", 3.0),
        ({"temp_slope_c_per_s": -50.0}, "temp_slope", -3.0),
        ({"frame_elapsed_ms": 400.0}, "budget_left", -1.0),
        ({"last_latency_ms": 1000.0}, "last_latency", 4.0),
        ({"power_w": 100.0}, "power", 2.0),
        ({"proposals": 900.0}, "proposals", 1.0),
        ({"cpu_util": 1.7}, "cpu_util", 1.0),
    ],
)
def test_values_clipped_into_space(overrides: dict, name: str, expected: float) -> None:
    obs = encode_observation(_raw(**overrides))
    assert obs[IDX[name]] == expected
    assert observation_space().contains(obs)
    batch = encode_observation({k: np.full(3, v, dtype=float) for k, v in _raw(**overrides).items()})
    assert np.all(batch[:, IDX[name]] == expected)
    assert all(observation_space().contains(row) for row in batch)


def test_raw_fields_are_what_the_simulator_provides() -> None:
    env = TwoStageDetectorEnv()
    env.reset(seed=0)
    env.step(99)
    raw = env.core.raw_readings()
    assert set(raw) == set(RAW_FIELDS)


def test_env_observation_is_encode_of_raw_readings() -> None:
    env = TwoStageDetectorEnv()
    env.reset(seed=3)
    for _ in range(10):
        obs = env.step(77)[0]
        np.testing.assert_array_equal(obs, encode_observation(env.core.raw_readings()))


# -- ActionTable ---------------------------------------------------------------------------------


def test_action_table_size_and_lotus_order() -> None:
    t = NANO_15W
    assert (t.n_cpu, t.n_gpu, t.n) == (20, 5, 100)
    for g in range(t.n_gpu):
        for c in range(t.n_cpu):
            a = g * t.n_cpu + c
            assert t.index(c, g) == a
            assert t.split(a) == (c, g)
            assert t.clocks(a) == (t.cpu_khz[c], t.gpu_hz[g])
    assert t.clocks(0) == (115200, 306000000)
    assert t.clocks(19) == (1510400, 306000000)  # the CPU index varies fastest
    assert t.clocks(20) == (115200, 408000000)
    assert t.clocks(99) == (1510400, 624750000)


def test_index_and_split_work_on_arrays() -> None:
    t = NANO_15W
    a = np.arange(t.n)
    c, g = t.split(a)
    np.testing.assert_array_equal(t.index(c, g), a)
    assert c.max() == t.n_cpu - 1 and g.max() == t.n_gpu - 1


def test_nearest_round_trips_every_action() -> None:
    t = NANO_15W
    for a in range(t.n):
        assert t.nearest(*t.clocks(a)) == a


def test_nearest_picks_closest_off_grid() -> None:
    t = NANO_15W
    assert t.clocks(t.nearest(1_000_000, 600e6)) == (1036800, 612000000)
    assert t.clocks(t.nearest(0, 0)) == (115200, 306000000)
    assert t.clocks(t.nearest(9e9, 9e12)) == (1510400, 624750000)


def test_to_dict_from_dict_round_trip() -> None:
    d = NANO_15W.to_dict()
    assert d["cpu_khz"][-1] == 1510400 and d["gpu_hz"][-1] == 624750000
    back = ActionTable.from_dict(d)
    assert back == NANO_15W
    assert ActionTable.from_dict({"cpu_khz": ["115200", 192000.0], "gpu_hz": [1, 2]}).cpu_khz == (115200, 192000)


def test_action_spaces() -> None:
    assert action_space(NANO_15W).n == 100
    np.testing.assert_array_equal(action_space(NANO_15W, multi_discrete=True).nvec, [20, 5])


def test_tables_of_other_modes_and_boards() -> None:
    for board in ("orin-nano", "orin-nx", "tx2"):
        b = load_board(board)
        for name, mode in b.modes.items():
            t = ActionTable.from_mode(mode)
            assert t.n == len(mode.cpu_freqs_khz) * len(mode.gpu_freqs_hz), (board, name)
            assert t.clocks(t.n - 1) == (max(mode.cpu_freqs_khz), max(mode.gpu_freqs_hz))
