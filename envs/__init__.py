"""Board and two-stage detector simulator. Numpy only: no torch here.

The physics (:mod:`lotus.envs.physics`, :mod:`lotus.envs.core`, :mod:`lotus.envs.thermal`,
profiles) imports no gymnasium, so the daemon's simulated board can use it on the base install. The gymnasium API
(``TwoStageDetectorEnv``, ``BatchedDetectorEnv``, the ``lotus/TwoStageDetector-v0`` id) needs the
``sim`` extra and loads on first use::

    from lotus.envs import TwoStageDetectorEnv      # registers lotus/TwoStageDetector-v0
    gymnasium.make("lotus.envs.detector_env:lotus/TwoStageDetector-v0")
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from lotus.envs.board import BoardProfile, available_boards, load_board
from lotus.envs.scenario import Randomization, Scenario
from lotus.envs.workload import WorkloadProfile, available_workloads, load_workload

if TYPE_CHECKING:
    from lotus.envs.detector_env import TwoStageDetectorEnv
    from lotus.envs.vector import BatchedDetectorEnv

ENV_ID = "lotus/TwoStageDetector-v0"
_LAZY = {"TwoStageDetectorEnv": "lotus.envs.detector_env", "BatchedDetectorEnv": "lotus.envs.vector"}


def register_env() -> None:
    """Register :data:`ENV_ID` with gymnasium (idempotent)."""
    from gymnasium.envs.registration import register, registry

    if ENV_ID not in registry:
        register(id=ENV_ID, entry_point="lotus.envs.detector_env:TwoStageDetectorEnv")


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lotus.envs' has no attribute {name!r}")


__all__ = [
    "ENV_ID", "BatchedDetectorEnv", "BoardProfile", "Randomization", "Scenario", "TwoStageDetectorEnv",
    "WorkloadProfile", "available_boards", "available_workloads", "load_board", "load_workload", "register_env",
]  # fmt: skip
