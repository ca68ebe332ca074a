"""Per-policy views of the shared observation, and their action subsets.

Every learned policy reads the *shared* observation (:mod:`envs.schema`) and answers a *joint*
action index; what differs is which features it looks at and which joint actions it may pick.
These adapters are numpy only, so the daemon applies them before running the ONNX network,
exactly as training did.

- ``drl`` (ours): all features; a 5 x 5 grid of joint clocks (0, 1/4, 1/2, 3/4 and all of each
  table), chosen once per :data:`DRL_HOLD_S` second and held (the two-timescale design of
  ``docs/governor.md``: a decision every second moves the die by a measurable amount, one per
  stage does not, so the thermal trade-off can be learnt).
- ``lotus-dac24``: the Lotus state (stage, CPU/GPU clock index, squashed thermal headroom,
  time to deadline, proposals), all joint actions (100 on Orin Nano 15W).
- ``ztt``: the zTT state (CPU/GPU clock index, power, temperatures, frame rate) and its
  3 x 3 joint actions at 3/11, 7/11 and 11/11 of each clock table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lotus.core.schema import HEADROOM_SCALE_C, IDX, N_FEATURES, ActionTable
from lotus.envs.reward import RewardKind
from lotus.governor.protocol import DecisionKind


def _identity(obs: np.ndarray, actions: ActionTable) -> np.ndarray:
    return obs


def _squash(h: np.ndarray) -> np.ndarray:
    return np.where(h > 0, np.tanh(h), h)


def _lotus_state(obs: np.ndarray, actions: ActionTable) -> np.ndarray:
    """[stage, cpu idx/n, tanh-squashed CPU headroom, gpu idx/n, GPU headroom, t2ddl, proposals]."""
    headroom_c = obs[:, IDX["cpu_headroom"]] * HEADROOM_SCALE_C
    headroom_g = obs[:, IDX["gpu_headroom"]] * HEADROOM_SCALE_C
    return np.stack(
        [
            obs[:, IDX["stage2_next"]],
            obs[:, IDX["cpu_freq_frac"]],
            _squash(headroom_c / 10.0),
            obs[:, IDX["gpu_freq_frac"]],
            _squash(headroom_g / 10.0),
            obs[:, IDX["budget_left"]],
            obs[:, IDX["proposals"]] * obs[:, IDX["stage2_next"]],  # 0 at stage 1, as in the Lotus code
        ],
        axis=1,
    ).astype(np.float32)


def _ztt_state(obs: np.ndarray, actions: ActionTable) -> np.ndarray:
    """[cpu clock, gpu clock, power, CPU temp, GPU temp, fps / target fps] (scaled to ~[0, 1])."""
    fps_ratio = 1.0 / np.maximum(obs[:, IDX["last_latency"]], 1e-3)  # deadline / latency
    return np.stack(
        [
            obs[:, IDX["cpu_freq_frac"]],
            obs[:, IDX["gpu_freq_frac"]],
            obs[:, IDX["power"]],
            1.0 - obs[:, IDX["cpu_headroom"]],
            1.0 - obs[:, IDX["gpu_headroom"]],
            np.minimum(fps_ratio, 2.0),
        ],
        axis=1,
    ).astype(np.float32)


def ztt_actions(actions: ActionTable) -> list[int]:
    """zTT's 9 joint actions: clock indices at 3/11, 7/11, 11/11 of each table."""

    def picks(n: int) -> list[int]:
        return sorted({round(k / 11 * (n - 1)) for k in (3, 7, 11)})

    return [int(actions.index(c, g)) for g in picks(actions.n_gpu) for c in picks(actions.n_cpu)]


GRID_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 1.0)
DRL_HOLD_S = 1.0  # drl's decision period, s: its choice is held this long (then asked again)


def clock_grid(actions: ActionTable) -> list[int]:
    """Joint indices at :data:`GRID_FRACTIONS` of each clock table (duplicates dropped, cheapest first)."""

    def picks(n: int) -> list[int]:
        return sorted({round(f * (n - 1)) for f in GRID_FRACTIONS})

    return [int(actions.index(c, g)) for g in picks(actions.n_gpu) for c in picks(actions.n_cpu)]


def power_ladder(actions: ActionTable) -> list[int]:
    """Nine joint clocks of :func:`clock_grid`, each step up raising one clock one grid level.

    CPU and GPU levels alternate, ``(0, 0), (1, 0), (1, 1), ... (4, 4)``, so power and speed grow
    together along the ladder: a short list that still holds the fixed clocks that do best in the
    hot rooms (``lotus bench fixed-clocks``: 499/408 and 883/408 MHz on Orin Nano 15W).
    """

    def picks(n: int) -> list[int]:
        return sorted({round(f * (n - 1)) for f in GRID_FRACTIONS})

    cpu, gpu = picks(actions.n_cpu), picks(actions.n_gpu)
    rungs = [(0, 0)]
    while rungs[-1] != (len(cpu) - 1, len(gpu) - 1):
        c, g = rungs[-1]
        step_cpu = c < len(cpu) - 1 and (c <= g or g == len(gpu) - 1)
        rungs.append((c + 1, g) if step_cpu else (c, g + 1))
    return [int(actions.index(cpu[c], gpu[g])) for c, g in rungs]


@dataclass(frozen=True)
class FeatureSpec:
    """How one policy family sees the board: observation transform and allowed joint actions.

    With ``served_shares`` other than ``(1.0,)`` each output is a (joint clock, served share)
    pair: output ``k`` is clock ``k % len(subset)`` at share ``served_shares[k // len(subset)]`` of
    the camera frames (the others are skipped: graceful degradation, counted as drops).

    ``levels`` adds one output per level after those: a learned *latency level* for the per-stage
    allocator of :mod:`lotus.governor.mpc` (``mpc-energy``: at every stage the cheapest clocks
    predicted to end the frame by ``level x min(deadline, frame period)``), the residual design of
    ``docs/governor.md``: the network picks how hard to level, the model picks each stage's clocks.
    """

    name: str
    n_inputs: int
    transform: Callable[[np.ndarray, ActionTable], np.ndarray]  # obs [N, F] -> float32 [N, n_inputs]
    action_subset: Callable[[ActionTable], list[int]] | None  # joint indices it may pick; None: all
    decision: DecisionKind
    reward: RewardKind
    hold_s: float = 0.0  # > 0: the choice is held this many seconds before the network is asked again
    served_shares: tuple[float, ...] = (1.0,)  # shares of camera frames the outputs may serve, each in [0.5, 1]
    levels: tuple[float, ...] = ()  # latency levels of the allocator outputs (after the clock outputs), each in (0, 1]

    def inputs(self, obs: np.ndarray, actions: ActionTable) -> np.ndarray:
        return self.transform(np.atleast_2d(obs), actions)

    def clocks(self, actions: ActionTable) -> np.ndarray:
        """The joint clocks the family chooses among ``int64 [K]``."""
        subset = self.action_subset(actions) if self.action_subset is not None else None
        return np.asarray(subset if subset is not None else range(actions.n), dtype=np.int64)

    def action_map(self, actions: ActionTable) -> np.ndarray:
        """Joint clock index of each network output ``int64 [K * len(served_shares) + len(levels)]``
        (a level output's entry is the top clocks, what its allocator falls back to)."""
        clocks = np.tile(self.clocks(actions), len(self.served_shares))
        return np.concatenate([clocks, np.full(len(self.levels), actions.n - 1, dtype=np.int64)])

    def share_map(self, actions: ActionTable) -> np.ndarray:
        """Served share of each network output ``float64 [K * len(served_shares) + len(levels)]``."""
        shares = np.repeat(np.asarray(self.served_shares, dtype=float), len(self.clocks(actions)))
        return np.concatenate([shares, np.ones(len(self.levels))])

    def level_map(self, actions: ActionTable) -> np.ndarray:
        """Latency level of each network output ``float64 [len(action_map)]`` (0: a clock output)."""
        n_clock = len(self.clocks(actions)) * len(self.served_shares)
        return np.concatenate([np.zeros(n_clock), np.asarray(self.levels, dtype=float)])


FEATURE_SPECS: dict[str, FeatureSpec] = {
    "drl": FeatureSpec("drl", N_FEATURES, _identity, clock_grid, "stage", "objective", DRL_HOLD_S),
    "lotus-dac24": FeatureSpec("lotus-dac24", 7, _lotus_state, None, "stage", "lotus"),
    "ztt": FeatureSpec("ztt", 6, _ztt_state, ztt_actions, "frame", "ztt"),
}
