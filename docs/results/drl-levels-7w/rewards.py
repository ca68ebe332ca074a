"""What the two objective rewards pay for levelling on Orin Nano 7 W (the README's two tables).

Run from the repository root: ``python docs/results/drl-levels-7w/rewards.py`` (about 3 min).

1. The suite's 7 W room (25 C, video, 15 fps / 80 ms), one 3000-frame training episode on
   seeds 0-2: the return of the top clocks and of ``mpc-energy`` levelling at 0.8, under
   ``objective`` and ``objective-run``.
2. drl's training rooms (the randomised 7 W scenario of ``lotus train``, 64 boards, seeds 0-63),
   ``objective-run``: each fixed level's return minus the top clocks', paired board by board.
"""

from __future__ import annotations

import sys

import numpy as np

from lotus.envs.scenario import Scenario
from lotus.envs.vector import BatchedDetectorEnv
from lotus.governor.mpc import MpcPolicy
from lotus.governor.train import TrainConfig, training_scenario, training_spec

ROOM = {"power_mode": "7W", "fps": 15.0, "deadline_ms": 80.0, "ambient_c": 25.0, "trace": "video",
        "episode_frames": 3000}  # fmt: skip


def episode_returns(scenario: Scenario, level: float | None, seeds: list[int]) -> np.ndarray:
    """One episode per board (seed) at the top clocks (``level`` None) or levelling at ``level``."""
    env = BatchedDetectorEnv(len(seeds), scenario)
    obs = env.reset(seed=seeds)
    rule = MpcPolicy(env.actions, power_mode="7W", deadline_ms=80.0, fps=15.0, goal="energy",
                     latency_margin=level or 0.92)  # fmt: skip
    rule.reset(len(seeds))
    total, done = np.zeros(len(seeds)), np.zeros(len(seeds), dtype=bool)
    while not done.all():
        action = rule.act(obs, 1 / 30) if level else np.full(len(seeds), env.actions.n - 1)
        obs, reward, terminated, truncated, _ = env.step(action)
        total += np.where(done, 0.0, reward)
        done |= terminated | truncated
    return total


def say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main() -> None:
    say("suite room, mean return of seeds 0-2 (3000 frames; higher is better)")
    for kind in ("objective", "objective-run"):
        room = Scenario.model_validate({**ROOM, "reward": kind})
        top, lev = episode_returns(room, None, [0, 1, 2]), episode_returns(room, 0.8, [0, 1, 2])
        say(f"  {kind:14s} top clocks {top.mean():9.1f}   levelling at 0.8 {lev.mean():9.1f}")
    cfg = TrainConfig(power_mode="7W", reward="objective-run")
    rooms = training_scenario(cfg, training_spec(cfg))
    seeds = list(range(64))
    top = episode_returns(rooms, None, seeds)
    say("training rooms (64 boards), objective-run: level minus top clocks, paired")
    for level in (0.6, 0.7, 0.8, 0.9):
        diff = episode_returns(rooms, level, seeds) - top
        say(f"  level {level:.1f}: mean {diff.mean():8.1f}, boards where it is better {int((diff > 0).sum())} of 64")


if __name__ == "__main__":
    main()
