"""Top clocks while the die has headroom, an efficient joint clock once it is within H C of the trip.

Run from the repository root: ``python docs/results/fixed-clocks-shield/switch_rule.py ROOM 5`` (about
one minute per room). Each rule runs inside the shield, as every shielded policy does; the suite's
objective over 600 s, seeds 0..N-1, mean and 95 % CI. Output: ``switch_rule.txt``.
"""

from __future__ import annotations

import sys

import numpy as np

from lotus.core.schema import HEADROOM_SCALE_C, IDX, ActionTable
from lotus.envs.core import Resolved
from lotus.governor.metrics import mean_ci95, recording_metrics
from lotus.governor.policies import make_policy
from lotus.governor.protocol import PolicyBase, TimeStep
from lotus.governor.rollout import rollout
from lotus.governor.shield import Shield
from lotus.governor.suite import suite


class Switch(PolicyBase):
    """The top joint clock while the hotter die is more than ``h_c`` under the trip, ``hot_action`` after."""

    name = "switch"

    def __init__(self, actions: ActionTable, hot_action: int, h_c: float) -> None:
        self.top, self.hot, self.h_c = actions.n - 1, hot_action, h_c

    def act(self, obs: np.ndarray, dt_s: TimeStep = None) -> np.ndarray:
        obs = np.atleast_2d(obs)
        head_c = np.minimum(obs[:, IDX["cpu_headroom"]], obs[:, IDX["gpu_headroom"]]) * HEADROOM_SCALE_C
        return np.where(head_c < self.h_c, self.hot, self.top).astype(np.int64)


def main(room: str, n_seeds: int) -> None:
    scenario = {s.name: s for s in suite("standard")[0]}[room].scenario
    res = Resolved.from_scenario(scenario)
    a, fps = res.actions, 1.0 / res.period_s
    for cpu_i, gpu_i in [(16, 4), (17, 4), (14, 4), (14, 3)]:  # 1344/625, 1421/625, 1190/625, 1190/612 MHz
        for h_c in (3.5, 5.0, 8.0):
            runs = []
            for seed in range(n_seeds):
                policy = Shield(Switch(a, gpu_i * a.n_cpu + cpu_i, h_c), a, make_policy("stock", a))
                runs.append(recording_metrics(rollout(policy, scenario, 600.0, seed=seed), 600.0, fps))
            obj, ci = mean_ci95([float(r["objective"]) for r in runs])
            on_time = np.mean([r["on_time_pct"] for r in runs])
            throttled = np.mean([r["throttled_pct"] for r in runs])
            sys.stdout.write(
                f"{room} hot {a.cpu_khz[cpu_i] / 1e3:.0f}/{a.gpu_hz[gpu_i] / 1e6:.0f} below {h_c} C: "
                f"obj {obj:.2f} ± {ci:.2f} on {on_time:.1f} thr {throttled:.1f}\n"
            )


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
