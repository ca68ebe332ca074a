"""A level relative to the frame's predicted top-clock time, as a fixed rule (the README's last table).

Run from the repository root: ``python docs/results/drl-levels-7w/relative_level.py`` (about 2 min).
``mpc-energy`` aims each frame at ``level x`` an EMA of its own prediction of the frame's time at
the top clocks (instead of ``level x`` the frame period), so light scenes are not slowed to a
fixed target. Scored on the 7 W room (25 C video, 600 s, seeds 0-2) by the suite's objective, and
on the training rooms by the ``objective-run`` return minus the top clocks' (64 boards, paired).
"""

from __future__ import annotations

import sys

import numpy as np

from lotus.core.schema import IDX
from lotus.envs.scenario import Scenario
from lotus.envs.vector import BatchedDetectorEnv
from lotus.governor.mpc import MpcPolicy
from lotus.governor.train import TrainConfig, training_scenario, training_spec


class RelativeLevel(MpcPolicy):
    """``mpc-energy`` aiming at ``level x`` the EMA (weight ``alpha`` per frame) of its top-clock prediction."""

    def __init__(self, actions, level: float, alpha: float = 0.05) -> None:  # noqa: ANN001
        super().__init__(actions, power_mode="7W", deadline_ms=80.0, fps=15.0, goal="energy")
        self.level, self.alpha = level, alpha

    def reset(self, n: int = 1) -> None:
        super().reset(n)
        self.top_ema = np.zeros(n)

    def _act_one(self, i: int, o: np.ndarray) -> int:
        if o[IDX["stage2_next"]] < 0.5:  # a new frame: its predicted time at the top clocks
            c2, g2, m2 = self._stage_parts(True, float(o[IDX["proposals"]]) * self.workload.max_proposals)
            c1, g1, m1 = self._stage_parts(False, 0.0)
            top = self.k[i] * (c1[-1] + g1[-1] + m1 + c2[-1] + g2[-1] + m2)
            ema = self.top_ema[i]
            self.top_ema[i] = top if ema == 0 else ema + self.alpha * (top - ema)
        span = min(self.deadline_ms, self.period_ms)
        self.margins[i] = min(self.level * self.top_ema[i] / span, 1.0) if self.top_ema[i] > 0 else 1.0
        return super()._act_one(i, o)


def run(scenario: Scenario, policy: MpcPolicy | None, seeds: list[int]) -> tuple[np.ndarray, list[list[float]]]:
    """Episode returns and each board's finished-frame latencies (``policy`` None: the top clocks)."""
    env = BatchedDetectorEnv(len(seeds), scenario)
    obs = env.reset(seed=seeds)
    n = len(seeds)
    total, done, lat = np.zeros(n), np.zeros(n, dtype=bool), [[] for _ in range(n)]
    if policy is not None:
        policy.reset(n)
    while not done.all():
        action = policy.act(obs, 1 / 30) if policy is not None else np.full(n, env.actions.n - 1)
        obs, reward, terminated, truncated, out = env.step(action)
        for j in np.flatnonzero(out["frame_done"] & ~done):
            lat[j].append(float(out["latency_ms"][j]))
        total += np.where(done, 0.0, reward)
        done |= terminated | truncated
    return total, lat


def objective(lat: list[float]) -> float:
    """The suite's objective of one run without drops, ms."""
    x = np.asarray(lat)
    return float(x.mean() + 0.1 * x.var() + 80.0 * (x > 80.0).mean())


def main() -> None:
    room = Scenario.model_validate({"power_mode": "7W", "fps": 15.0, "deadline_ms": 80.0, "ambient_c": 25.0,
                                    "trace": "video", "episode_frames": 9000, "reward": "objective-run"})  # fmt: skip
    actions = BatchedDetectorEnv(1, room).actions
    _, lat = run(room, None, [0, 1, 2])
    sys.stdout.write(f"7 W room, top clocks: objective {np.mean([objective(x) for x in lat]):.2f} ms\n")
    for level in (0.9, 1.0, 1.05):
        for alpha in (0.05, 0.01):
            _, lat = run(room, RelativeLevel(actions, level, alpha), [0, 1, 2])
            mean = np.mean([objective(x) for x in lat])
            sys.stdout.write(f"7 W room, level {level} of the top-clock EMA (alpha {alpha}): objective {mean:.2f} ms\n")
    cfg = TrainConfig(power_mode="7W", reward="objective-run")
    rooms = training_scenario(cfg, training_spec(cfg))
    seeds = list(range(64))
    top, _ = run(rooms, None, seeds)
    for level in (0.9, 1.0, 1.05):
        diff = run(rooms, RelativeLevel(actions, level), seeds)[0] - top
        better = int((diff > 0).sum())
        sys.stdout.write(f"training rooms, level {level}: mean {diff.mean():.1f}, better on {better} of 64\n")


if __name__ == "__main__":
    main()
