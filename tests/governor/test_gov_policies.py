"""The fixed-clock baselines, ``make_policy`` and the stock (schedutil + podgov-like) governor."""

from __future__ import annotations

import numpy as np
import pytest

from lotus.core.errors import PolicyError
from lotus.core.schema import IDX, N_FEATURES
from lotus.envs.scenario import Scenario
from lotus.governor.baselines import StockPolicy
from lotus.governor.policies import Policy, make_policy, policy_names
from lotus.governor.rollout import rollout


def _obs(cpu_khz: float, gpu_hz: float, cpu_util: float, gpu_util: float, actions, n: int = 1) -> np.ndarray:  # noqa: ANN001
    obs = np.zeros((n, N_FEATURES), dtype=np.float32)
    obs[:, IDX["cpu_freq_frac"]] = cpu_khz / actions.cpu_khz[-1]
    obs[:, IDX["gpu_freq_frac"]] = gpu_hz / actions.gpu_hz[-1]
    obs[:, IDX["cpu_util"]] = cpu_util
    obs[:, IDX["gpu_util"]] = gpu_util
    obs[:, IDX["cpu_headroom"]] = obs[:, IDX["gpu_headroom"]] = 1.0
    return obs


def test_performance_is_last_joint_index(actions) -> None:  # noqa: ANN001
    a = make_policy("performance", actions).act(np.zeros((3, N_FEATURES), np.float32))
    np.testing.assert_array_equal(a, [actions.n - 1] * 3)
    assert actions.clocks(a[0]) == (actions.cpu_khz[-1], actions.gpu_hz[-1])


def test_powersave_is_index_zero(actions) -> None:  # noqa: ANN001
    a = make_policy("powersave", actions).act(np.zeros((2, N_FEATURES), np.float32))
    np.testing.assert_array_equal(a, [0, 0])
    assert actions.clocks(0) == (actions.cpu_khz[0], actions.gpu_hz[0])


@pytest.mark.parametrize(
    ("arg", "want_khz", "want_hz"),
    [
        ("1000000,500000000", 1036800, 510000000),  # between entries: nearest on each axis
        ("960000,612000000", 960000, 612000000),  # exact entries
        ("1,1", 115200, 306000000),  # below the table: bottom
        ("9000000,9000000000", 1510400, 624750000),  # above the table: top
        ("1.5e6,6.2e8", 1497600, 624750000),  # float notation
    ],
)
def test_fixed_picks_nearest_table_entry(actions, arg: str, want_khz: int, want_hz: int) -> None:  # noqa: ANN001
    pol = make_policy(f"fixed:{arg}", actions)
    a = pol.act(np.zeros((1, N_FEATURES), np.float32))
    assert actions.clocks(a[0]) == (want_khz, want_hz)
    assert pol.name == f"fixed:{arg}"


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("fixed:", "fixed:<cpu_khz>,<gpu_hz>"),
        ("fixed:1000000", "fixed:<cpu_khz>,<gpu_hz>"),
        ("fixed:1,2,3", "fixed:<cpu_khz>,<gpu_hz>"),
        ("fixed:fast,slow", "fixed:<cpu_khz>,<gpu_hz>"),
        ("fixed:0,500000000", "positive"),
        ("fixed:1000000,-5", "positive"),
    ],
)
def test_bad_fixed_args_raise_policy_error(actions, spec: str, needle: str) -> None:  # noqa: ANN001
    with pytest.raises(PolicyError) as exc:
        make_policy(spec, actions)
    assert needle in str(exc.value)
    assert spec.partition(":")[2] in str(exc.value)  # the user's argument is echoed


@pytest.mark.parametrize("spec", ["turbo", "Performance", "stock:1", "performance:x", ""])
def test_unknown_policy_lists_known_names(actions, spec: str) -> None:  # noqa: ANN001
    with pytest.raises(PolicyError) as exc:
        make_policy(spec, actions)
    msg = str(exc.value)
    assert f"unknown policy {spec!r}" in msg
    for name in ("performance", "powersave", "stock", "fixed:<args>"):
        assert name in msg


def test_policy_names_include_baselines() -> None:
    names = policy_names()
    assert {"performance", "powersave", "stock", "fixed:<args>"} <= set(names)


@pytest.mark.parametrize("spec", ["performance", "powersave", "stock", "fixed:900000,500000000"])
def test_policies_map_n_observations_to_int64_indices(actions, env_obs: np.ndarray, spec: str) -> None:  # noqa: ANN001
    pol = make_policy(spec, actions)
    assert isinstance(pol, Policy)
    pol.reset(len(env_obs))
    a = pol.act(env_obs)
    assert a.shape == (len(env_obs),)
    assert a.dtype == np.int64
    assert ((a >= 0) & (a < actions.n)).all()
    one = pol.act(env_obs[0])  # a single observation [F] is a batch of one
    assert one.shape == (1,) and one.dtype == np.int64


# --- StockPolicy: schedutil on the CPU, podgov-like on the GPU --------------------------------


def test_stock_cpu_follows_schedutil_headroom(actions) -> None:  # noqa: ANN001
    stock = StockPolicy(actions)
    cur = actions.cpu_khz[10]  # 883200 kHz
    for util in (1.0, 0.9, 0.5, 0.2, 0.0):
        c, _ = actions.split(stock.act(_obs(cur, actions.gpu_hz[2], util, 0.7, actions))[0])
        want = 1.25 * cur * util
        lowest_above = next((i for i, f in enumerate(actions.cpu_khz) if f >= want - 1e-6), actions.n_cpu - 1)
        assert c == lowest_above, util


def test_stock_busy_cpu_raises_and_idle_cpu_lowers_the_clock(actions) -> None:  # noqa: ANN001
    stock = StockPolicy(actions)
    cur_idx = 10
    busy = stock.act(_obs(actions.cpu_khz[cur_idx], actions.gpu_hz[2], 1.0, 0.7, actions))[0]
    idle = stock.act(_obs(actions.cpu_khz[cur_idx], actions.gpu_hz[2], 0.3, 0.7, actions))[0]
    assert actions.split(busy)[0] == 13  # 1.25 x 883.2 MHz = 1104 MHz -> 1113.6 MHz, three steps up
    assert actions.split(idle)[0] < cur_idx
    top = stock.act(_obs(actions.cpu_khz[-1], actions.gpu_hz[2], 1.0, 0.7, actions))[0]
    assert actions.split(top)[0] == actions.n_cpu - 1  # clipped at the table's top


@pytest.mark.parametrize(
    ("gpu_idx", "load", "expect"),
    [
        (1, 0.9, 3),  # 408 MHz * 0.9 / 0.7 = 525 MHz -> next table clock 612 MHz
        (0, 0.99, 2),  # 306 * 0.99 / 0.7 = 433 -> 510
        (3, 1.0, 4),  # clipped at the top
        (2, 0.3, 1),  # < 0.5: exactly one step down
        (2, 0.45, 1),
        (3, 0.86, 4),  # just above 0.85: 612 * 0.86 / 0.7 = 752 -> top
        (0, 0.1, 0),  # already at the bottom
        (2, 0.7, 2),  # in the hold band: unchanged
        (2, 0.5, 2),  # band edges hold
        (2, 0.85, 2),
    ],
)
def test_stock_gpu_follows_podgov(actions, gpu_idx: int, load: float, expect: int) -> None:  # noqa: ANN001
    a = StockPolicy(actions).act(_obs(actions.cpu_khz[5], actions.gpu_hz[gpu_idx], 0.8, load, actions))[0]
    assert actions.split(a)[1] == expect


def test_stock_decides_each_board_independently(actions) -> None:  # noqa: ANN001
    obs = np.concatenate([
        _obs(actions.cpu_khz[10], actions.gpu_hz[1], 1.0, 0.95, actions),
        _obs(actions.cpu_khz[10], actions.gpu_hz[1], 0.2, 0.2, actions),
    ])  # fmt: skip
    (c0, g0), (c1, g1) = (actions.split(x) for x in StockPolicy(actions).act(obs))
    assert c0 > 10 and g0 > 1
    assert c1 < 10 and g1 == 0


def test_stock_in_sim_keeps_clocks_below_max(actions) -> None:  # noqa: ANN001
    """300 simulated s at 25 C (as ``lotus sim --policy stock``): stock is not ``performance``."""
    rec = rollout(make_policy("stock", actions), Scenario(ambient_c=25.0), 300.0, seed=0)
    s = rec.steps
    assert s["time_s"][-1] >= 299.0
    at_max = (s["applied_cpu_khz"] == actions.cpu_khz[-1]) & (s["applied_gpu_hz"] == actions.gpu_hz[-1])
    assert at_max.mean() < 0.5
    assert (s["applied_gpu_hz"] < actions.gpu_hz[-1]).mean() > 0.5
    assert not s["throttled"].any()
    assert rec.frames["latency_ms"].size > 1000
