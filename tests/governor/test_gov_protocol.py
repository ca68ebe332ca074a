"""The Policy protocol: every policy satisfies it, duck-typed ones are adapted, diagnostics are typed."""

from __future__ import annotations

import numpy as np
import pytest

from lotus.core.errors import PolicyError
from lotus.envs.scenario import Scenario
from lotus.governor.kernel_governors import KernelStockPolicy as StockPolicy
from lotus.governor.onnx_policy import OnnxPolicy
from lotus.governor.policies import REGISTRY, make_policy, register
from lotus.governor.protocol import Policy, PolicyAdapter, PolicyBase, PolicyDiagnostics, as_policy
from lotus.governor.registry import build_policy
from lotus.governor.rollout import rollout
from lotus.governor.shield import Shield


class Duck:
    """A third-party policy with only name, reset and act(obs)."""

    name = "duck"

    def __init__(self) -> None:
        self.resets: list[int] = []

    def reset(self, n: int = 1) -> None:
        self.resets.append(n)

    def act(self, obs: np.ndarray) -> np.ndarray:
        return np.zeros(len(obs), dtype=np.int64)


@pytest.mark.parametrize(
    "spec", ["performance", "powersave", "fixed:900000,408000000", "stock", "drl", "lotus-dac24", "ztt"]
)
def test_every_builtin_policy_satisfies_the_protocol(actions, env_obs: np.ndarray, spec: str) -> None:  # noqa: ANN001
    policy = build_policy(spec, actions)
    assert isinstance(policy, Policy) and isinstance(policy, PolicyBase)
    policy.reset(4)
    a = policy.act(env_obs[:4], 1 / 60)
    assert a.shape == (4,) and a.dtype == np.int64
    diag = policy.diagnostics()
    assert isinstance(diag, PolicyDiagnostics) and diag.policy_name == policy.name
    assert diag.shielded == isinstance(policy, Shield)


def test_versions_and_cadence(actions) -> None:  # noqa: ANN001
    drl = build_policy("drl", actions)
    assert isinstance(drl, Shield) and isinstance(drl.inner, OnnxPolicy)
    assert drl.diagnostics().version == drl.inner.version != "builtin"
    assert drl.decision == "stage" and build_policy("ztt", actions).decision == "frame"
    assert make_policy("stock", actions).decision is None
    assert make_policy("stock", actions).diagnostics().version == "builtin"
    assert Shield(None, actions, StockPolicy(actions)).diagnostics().version == "builtin"
    # trained on the real deadline only: no stretch; it decides once per held second
    assert drl.deadline_scale_max == 1.0 == drl.stretch_max == drl.inner.deadline_scale_max
    assert drl.inner.hold_s == 1.0


def test_a_broken_learned_policy_reports_fallback(actions) -> None:  # noqa: ANN001
    def loader() -> Policy:
        raise PolicyError("policy metadata x.json does not exist")

    diag = Shield(loader, actions, StockPolicy(actions)).diagnostics()
    assert diag == PolicyDiagnostics(
        policy_name="shield(stock)", version="fallback", load_error="policy metadata x.json does not exist",
        shielded=True,
    )  # fmt: skip


def test_duck_typed_policies_are_adapted(actions, env_obs: np.ndarray) -> None:  # noqa: ANN001
    duck = Duck()
    adapted = as_policy(duck)
    assert isinstance(adapted, PolicyAdapter) and isinstance(adapted, Policy)
    assert adapted.name == "duck" and adapted.deadline_scale_max == 1.0 and adapted.decision is None
    adapted.reset(3)
    assert duck.resets == [3]
    np.testing.assert_array_equal(adapted.act(env_obs[:3], 0.02), [0, 0, 0])
    assert adapted.diagnostics() == PolicyDiagnostics(policy_name="duck")
    shield = Shield(duck, actions, StockPolicy(actions))
    assert shield.name == "shield(duck)" and isinstance(shield.inner, PolicyAdapter)
    full = StockPolicy(actions)
    assert as_policy(full) is full


def test_registered_duck_factories_come_back_adapted(actions) -> None:  # noqa: ANN001
    register("duck-test", lambda actions: Duck())
    try:
        policy = make_policy("duck-test", actions)
        assert isinstance(policy, PolicyAdapter) and policy.name == "duck"
    finally:
        REGISTRY.pop("duck-test")


def test_non_policies_are_refused() -> None:
    with pytest.raises(PolicyError, match="not a policy"):
        as_policy(object())


def test_rollout_passes_the_simulated_time_between_decisions(actions) -> None:  # noqa: ANN001
    class Clock(PolicyBase):
        name = "clock"

        def __init__(self) -> None:
            self.dts: list[float] = []

        def act(self, obs: np.ndarray, dt_s: object = None) -> np.ndarray:
            assert isinstance(dt_s, float)
            self.dts.append(dt_s)
            return np.full(len(obs), actions.n - 1, dtype=np.int64)

    policy = Clock()
    rec = rollout(policy, Scenario(fps=30), 5.0, seed=0)
    dts = np.asarray(policy.dts)
    assert dts[0] == 0.0 and (dts[1:] > 0).all()
    # each decision's dt is the previous step's duration
    np.testing.assert_allclose(dts[1:], rec.steps["dt_s"][: len(dts) - 1])
    assert 50 < len(dts) / rec.steps["time_s"][-1] < 70  # about 60 decisions/s at 30 fps
