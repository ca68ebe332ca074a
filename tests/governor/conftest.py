"""Shared fixtures for the governor tests (governor/, ``lotus train``/``lotus eval``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from govhelpers import TRAIN_ENVS, TRAIN_STEPS, TRAINED

from lotus.core.schema import ActionTable
from lotus.envs.core import Resolved
from lotus.envs.scenario import Scenario
from lotus.envs.vector import BatchedDetectorEnv


@pytest.fixture(scope="session")
def actions() -> ActionTable:
    return Resolved.from_scenario(Scenario()).actions


@pytest.fixture(scope="session")
def env_obs() -> np.ndarray:
    """Real observations ``[N, F]``: 16 boards, random clocks, stage-1 and stage-2 decisions, warm starts."""
    benv = BatchedDetectorEnv(16, Scenario(ambient_c=35.0, init_temp_c=92.0))
    obs = benv.reset(seed=7)
    rng = np.random.default_rng(7)
    rows = [obs]
    for _ in range(40):
        obs, *_ = benv.step(rng.integers(0, benv.actions.n, size=benv.n))
        rows.append(obs)
    return np.concatenate(rows)


@pytest.fixture
def one_thread():
    """Training fixtures share two cores with other jobs: keep torch on one thread."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict]]:
    """Each policy family trained once on a tiny budget: ``family -> (out dir, metadata)``."""
    import torch

    from lotus.governor.train import TrainConfig, train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runs = {}
        for policy, algo in TRAINED:
            out = tmp_path_factory.mktemp(f"train-{policy}")
            cfg = TrainConfig(policy=policy, algo=algo, steps=TRAIN_STEPS, n_envs=TRAIN_ENVS)
            runs[policy] = (out, train(cfg, out, progress=False))
        return runs
    finally:
        torch.set_num_threads(before)
