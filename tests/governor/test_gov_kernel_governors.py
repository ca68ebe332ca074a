"""The ports of nvhost_podgov and schedutil, pinned against traces computed by hand."""

from __future__ import annotations

import pytest

from lotus.governor.kernel_governors import Podgov, Schedutil

MHZ = 1_000_000


def test_podgov_trace() -> None:
    gov = Podgov([100 * MHZ, 200 * MHZ, 300 * MHZ, 600 * MHZ])
    # poll 1 at 600 MHz, half busy: cycles_avg = 600*0.5/11; busyness = 1000*cycles_avg/600
    cycles = 600 * 0.5 / 11
    busyness = 1000 * cycles / 600
    res = 600 + 80 * 600 * (busyness - 700) / (100 * 700)  # = 151.17 MHz
    freq_avg = (10 * 600 + res) / 11
    out = (7 * res + 3 * freq_avg) / 10  # = 273.6 MHz, rounded up to the 300 MHz entry
    assert out == pytest.approx(273.58, abs=0.01)
    assert gov.tick(0.025, 0.5) == 2
    # poll 2, 25 ms later: inside the 50 ms block window, only the average moves
    assert gov.tick(0.050, 1.0) == 2
    cycles = (10 * cycles + 300 * 1.0) / 11
    assert gov.cycles_avg == pytest.approx(cycles)
    # poll 3: load 1000 > 900 -> jump by f_max/3 = 200 MHz, damp 10: out = 500 -> 600 MHz entry
    assert gov.tick(0.075, 1.0) == 3
    assert gov.freq_avg == pytest.approx((10 * freq_avg + 500) / 11)
    # steady 70 % busy at the top clock holds it: busyness converges to 700, boost to 0
    for k in range(400):
        idx = gov.tick(0.1 + 0.025 * k, 0.7)
    assert idx == 3


def test_podgov_steps_down_when_idle_and_never_below_the_table() -> None:
    gov = Podgov([100 * MHZ, 200 * MHZ, 300 * MHZ, 600 * MHZ])
    for k in range(100):
        idx = gov.tick(0.025 * (k + 1), 0.0)
    assert idx == 0


def test_schedutil_trace() -> None:
    gov = Schedutil([500, 1000, 2000])
    # 10 ms fully running at the top clock from util 0
    util = 1024 * (1 - 0.5 ** (10 / 32))  # = 199.46
    target = 1.25 * 2000 * util / 1024  # = 486.89 kHz -> the 500 kHz entry
    assert gov.tick(0.010, 0.010, 1.0) == 0
    assert gov.util == pytest.approx(util)
    assert target == pytest.approx(486.89, abs=0.01)
    # 5 ms later: rate-limited (10 ms); utilisation accrues frequency-invariant at 500/2000
    assert gov.tick(0.015, 0.005, 1.0) == 0
    util = util * 0.5 ** (5 / 32) + 1024 * 0.25 * (1 - 0.5 ** (5 / 32))
    assert gov.util == pytest.approx(util)
    # a task that always runs at the top clock drives util to 1024 and the clock to the top
    gov.reset(2)
    for k in range(100):
        idx = gov.tick(0.01 * (k + 1), 0.01, 1.0)
    assert idx == 2 and gov.util > 1000


def test_stock_on_the_25c_video_scenario_is_not_pinned_at_the_bottom_gpu_clock() -> None:
    import numpy as np

    from lotus.envs.core import Resolved
    from lotus.envs.scenario import Scenario
    from lotus.governor.policies import make_policy
    from lotus.governor.rollout import rollout

    sc = Scenario(ambient_c=25.0, trace="video", fps=30.0)
    actions = Resolved.from_scenario(sc).actions
    policy = make_policy("stock", actions)
    assert policy.name == "stock"
    rec = rollout(policy, sc, 60.0, seed=0)
    gpu = rec.steps["applied_gpu_hz"]
    at_bottom = float(np.mean(gpu == actions.gpu_hz[0]))
    assert at_bottom < 0.2, at_bottom  # the old dead-band rule sat at the bottom on 100 % of decisions
    assert float(np.mean(gpu >= actions.gpu_hz[1])) > 0.8
