"""Board and two-stage detector simulator (gymnasium). Numpy only: no torch here.

Importing this package registers ``lotus/TwoStageDetector-v0``.
"""

from gymnasium.envs.registration import register, registry

from envs.board import BoardProfile, available_boards, load_board
from envs.detector_env import TwoStageDetectorEnv
from envs.scenario import Randomization, Scenario
from envs.vector import BatchedDetectorEnv
from envs.workload import WorkloadProfile, available_workloads, load_workload

ENV_ID = "lotus/TwoStageDetector-v0"
if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.detector_env:TwoStageDetectorEnv")

__all__ = [
    "ENV_ID", "BatchedDetectorEnv", "BoardProfile", "Randomization", "Scenario", "TwoStageDetectorEnv",
    "WorkloadProfile", "available_boards", "available_workloads", "load_board", "load_workload",
]  # fmt: skip
