"""How far the shield's 1.5 s temperature look-ahead errs in the simulator's hot rooms.

The shield caps clocks when its predicted headroom (the sensed hotter die's distance to the trip,
minus its positive slope times 1.5 s) falls under its margin (2 C by default). The margin has to
cover how optimistic that prediction can be. For every decision of a shielded run this compares the
prediction with the *true* hotter die's headroom 1.5 s later (the simulator's state, not the noisy,
lagged sensor the shield reads) and prints the error's upper quantiles: error = predicted - true
(positive: the shield thought it had more room than it had).

Run from the repository root: ``python docs/results/shield-margin/lookahead_error.py`` (about 20 s).
Output: ``lookahead_error.txt``.
"""

from __future__ import annotations

import sys

import numpy as np

from lotus.core.schema import IDX
from lotus.envs.core import Resolved
from lotus.governor.context import PolicyContext
from lotus.governor.lookahead import HORIZON_S, predicted_headroom_c
from lotus.governor.registry import build_policy
from lotus.governor.rollout import rollout
from lotus.governor.suite import suite

ROOMS = ("nano15-35c-enclosure", "nano15-30c-variant")
POLICIES = ("drl", "mpc+shield")
SEEDS = range(3)
_CPU, _GPU, _SLOPE = IDX["cpu_headroom"], IDX["gpu_headroom"], IDX["temp_slope"]
NEAR_C = 4.0  # decisions whose prediction was within this much of the trip (where the margin matters)


def errors(room: str, spec: str, seed: int) -> np.ndarray:
    """Predicted minus true headroom (C) 1.5 s later, for the decisions predicted within NEAR_C of the trip."""
    scenario = {s.name: s for s in suite("standard")[0]}[room].scenario
    res = Resolved.from_scenario(scenario)
    context = PolicyContext(deadline_ms=res.deadline_ms, fps=1.0 / res.period_s, board=scenario.board,
                            power_mode=scenario.power_mode, workload=scenario.workload)  # fmt: skip
    policy = build_policy(spec, res.actions, context=context)
    log: list[tuple[float, float]] = []  # (decision time s, predicted headroom C)
    clock = [0.0]
    act = policy.act

    def logged(obs: np.ndarray, dt_s: float | None = None) -> np.ndarray:
        clock[0] += float(dt_s or 0.0)
        row = np.atleast_2d(obs)[0].tolist()
        log.append((clock[0], predicted_headroom_c(row[_CPU], row[_GPU], row[_SLOPE], HORIZON_S)))
        return act(obs, dt_s)

    policy.act = logged  # type: ignore[method-assign]
    rec = rollout(policy, scenario, 600.0, seed)
    t = rec.steps["time_s"]
    true_head = float(scenario.trip_c or res.board.throttling.trip_c) - np.maximum(
        rec.steps["cpu_temp_c"], rec.steps["gpu_temp_c"]
    )
    when, predicted = np.array(log).T
    later = np.searchsorted(t, when + HORIZON_S)
    keep = (later < t.size) & (predicted < NEAR_C)
    return predicted[keep] - true_head[later[keep]]


def main() -> None:
    for room in ROOMS:
        for spec in POLICIES:
            e = np.concatenate([errors(room, spec, s) for s in SEEDS])
            q = np.quantile(e, [0.5, 0.99, 0.999]) if e.size else [np.nan] * 3
            sys.stdout.write(
                f"{room:22s} {spec:12s} {e.size:7d} decisions within {NEAR_C:g} C; error median {q[0]:+.2f} C, "
                f"99 % {q[1]:+.2f}, 99.9 % {q[2]:+.2f}, max {e.max():+.2f}\n"
            )


if __name__ == "__main__":
    main()
