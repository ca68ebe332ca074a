"""The Lotus (DAC'24) DQN's safety-guided exploration, on top of stable-baselines3's DQN.

When either die is past its thermal bound (negative headroom in the Lotus state), exploration
only picks joint actions whose CPU and GPU clock indices are at or below the current ones;
greedy actions obey the same mask with a probability that decays (cosine) from 1.0 to 0.5 over
``mask_decay_events`` overheat events (governors.md 1.2). Training only: imports torch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch as th
from stable_baselines3 import DQN

from lotus.core.schema import ActionTable

# columns of the Lotus state built by governor.features._lotus_state
_CPU_FRAC, _CPU_HEADROOM, _GPU_FRAC, _GPU_HEADROOM = 1, 2, 3, 4


class LotusDQN(DQN):
    """SB3 DQN whose exploration follows the Lotus overheat mask."""

    def __init__(self, *args: Any, actions: ActionTable | None = None, mask_decay_events: int = 2000,
                 **kwargs: Any) -> None:  # fmt: skip
        self.mask_decay_events = mask_decay_events
        self.overheat_events = 0
        super().__init__(*args, **kwargs)
        if actions is not None:
            self.set_table(actions)

    def set_table(self, actions: ActionTable) -> None:
        """The joint clock table the mask compares indices in (needed again after ``load``)."""
        self.table = actions
        idx = np.arange(actions.n)
        self._act_cpu, self._act_gpu = idx % actions.n_cpu, idx // actions.n_cpu

    def _mask_probability(self) -> float:
        frac = min(self.overheat_events / self.mask_decay_events, 1.0)
        return 0.5 + 0.25 * (1.0 + math.cos(math.pi * frac))

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None,
                deterministic: bool = False) -> tuple[np.ndarray, Any]:  # fmt: skip
        if deterministic or not isinstance(observation, np.ndarray) or observation.ndim != 2:
            return super().predict(observation, state, episode_start, deterministic)
        obs = observation
        n = obs.shape[0]
        overheat = (obs[:, _CPU_HEADROOM] < 0) | (obs[:, _GPU_HEADROOM] < 0)
        self.overheat_events += int(overheat.sum())
        cur_c = self._nearest(obs[:, _CPU_FRAC], self.table.cpu_khz)
        cur_g = self._nearest(obs[:, _GPU_FRAC], self.table.gpu_hz)
        allowed = (self._act_cpu[None, :] <= cur_c[:, None]) & (self._act_gpu[None, :] <= cur_g[:, None])
        with th.no_grad():
            q = self.q_net(th.as_tensor(obs, dtype=th.float32)).numpy()
        explore = np.random.random(n) < self.exploration_rate
        masked_greedy = overheat & (np.random.random(n) < self._mask_probability())
        actions = q.argmax(axis=1)
        for i in np.nonzero(masked_greedy)[0]:
            actions[i] = int(np.argmax(np.where(allowed[i], q[i], -np.inf)))
        for i in np.nonzero(explore)[0]:
            choices = np.nonzero(allowed[i])[0] if overheat[i] else np.arange(self.table.n)
            actions[i] = int(np.random.choice(choices))
        return actions, state

    @staticmethod
    def _nearest(frac: np.ndarray, table: tuple[int, ...]) -> np.ndarray:
        values = np.asarray(table, dtype=float)
        return np.abs(values[None, :] - frac[:, None] * values[-1]).argmin(axis=1)
