"""The policies shipped in governor/policies/ (skipped until they are trained and added)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from govhelpers import NANO_15W_CPU_KHZ, NANO_15W_GPU_HZ

from lotus.core.schema import SCHEMA_VERSION, ActionTable
from lotus.governor.artifacts import SHIPPED_DIR, load_artifact
from lotus.governor.features import FEATURE_SPECS
from lotus.governor.onnx_policy import OnnxPolicy
from lotus.governor.registry import build_policy
from lotus.governor.shield import Shield

SHIPPED = ("drl", "lotus-dac24", "ztt")
NANO_15W = ActionTable(NANO_15W_CPU_KHZ, NANO_15W_GPU_HZ)


@pytest.fixture(params=SHIPPED)
def shipped(request: pytest.FixtureRequest) -> str:
    name = request.param
    if not (SHIPPED_DIR / f"{name}.json").exists() or not (SHIPPED_DIR / f"{name}.onnx").exists():
        pytest.skip("shipped policy not yet trained")
    return name


def test_shipped_metadata(shipped: str) -> None:
    meta = json.loads((SHIPPED_DIR / f"{shipped}.json").read_text())
    assert meta["schema_version"] == SCHEMA_VERSION
    assert meta["policy"] == shipped
    assert meta["board"] == "orin-nano" and meta["power_mode"] == "15W"
    assert ActionTable.from_dict(meta["action_table"]) == NANO_15W
    assert meta["action_map"] == FEATURE_SPECS[shipped].action_map(NANO_15W).tolist()
    assert meta["n_inputs"] == FEATURE_SPECS[shipped].n_inputs
    assert meta["export_agreement"] >= 0.99
    art = load_artifact(shipped, NANO_15W)  # hash and table checks
    assert art.onnx_path == SHIPPED_DIR / f"{shipped}.onnx"


def test_shipped_policy_acts_on_env_observations(shipped: str, actions, env_obs: np.ndarray) -> None:  # noqa: ANN001
    assert actions == NANO_15W
    pol = OnnxPolicy.load(shipped, actions)
    a = pol.act(env_obs)
    assert a.shape == (len(env_obs),) and a.dtype == np.int64
    assert ((a >= 0) & (a < actions.n)).all()
    assert set(a.tolist()) <= set(FEATURE_SPECS[shipped].action_map(actions).tolist())
    np.testing.assert_array_equal(pol.act(env_obs), a)  # deterministic


def test_shipped_policy_through_the_registry(shipped: str, actions, env_obs: np.ndarray) -> None:  # noqa: ANN001
    pol = build_policy(shipped, actions)
    if shipped == "drl":
        assert isinstance(pol, Shield) and pol.load_error is None and pol.name == "shield(drl)"
    else:
        assert isinstance(pol, OnnxPolicy) and pol.name == shipped
    pol.reset(len(env_obs))
    a = pol.act(env_obs)
    assert ((a >= 0) & (a < actions.n)).all()
    if isinstance(pol, Shield):
        assert pol.fallbacks == 0
