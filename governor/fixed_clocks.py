"""``lotus bench fixed-clocks``: what a room allows, from every joint clock held for a whole run.

A governor cannot do better than the physics allow. Holding one joint clock for the whole run,
for each clock of a grid, shows two things a table of policies does not:

- whether **0 % throttling is feasible at all** in the room (in some it is not: at the bottom
  clocks the idle power alone heats the die past the trip), and what objective the best clock
  that never throttles reaches;
- how far the best *constant* choice is from the policies (a policy that loses to a constant
  clock has not learnt the room).

With ``served_shares`` each clock is also held while serving only that share of the camera
frames (the others skipped evenly, each counted as a drop: :class:`~lotus.governor.admission.ServedShare`),
which shows what an admission action can buy in a room that cannot hold the full frame rate.

With ``shield`` each clock is asked for from inside the safety shield (its caps and admission rule,
as every ``+shield`` policy and ``drl`` run): the constant to hold a shielded policy against, since
in a hot room the shield, not the policy, decides how much heat is spent.

The metrics are those of ``lotus eval`` (:mod:`lotus.governor.metrics`: every camera frame
counted, a drop is a miss), averaged over seeds with a 95 % CI.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from lotus.core.schema import ActionTable
from lotus.envs.core import Resolved
from lotus.envs.scenario import Scenario
from lotus.governor.admission import ServedShare
from lotus.governor.features import clock_grid
from lotus.governor.metrics import mean_ci95, recording_metrics
from lotus.governor.policies import make_policy
from lotus.governor.protocol import PolicyBase, TimeStep
from lotus.governor.rollout import rollout
from lotus.governor.shield import Shield


class FixedClocks(PolicyBase):
    """Always answers one joint action (a constant-clock reference, not a governor).

    :param share: share of the camera frames it serves, 0.5..1 (1: every frame; else :meth:`admit`
        skips the others evenly).
    """

    def __init__(self, actions: ActionTable, action: int, share: float = 1.0) -> None:
        if not 0 <= action < actions.n:
            raise ValueError(f"joint action {action} is outside the table's 0..{actions.n - 1}")
        if not 0.5 <= share <= 1.0:
            raise ValueError(f"a served share must be in 0.5..1, got {share}")
        self.action = int(action)
        self.share = float(share)
        cpu, gpu = actions.split(np.array([action]))
        self.cpu_mhz = actions.cpu_khz[int(cpu[0])] / 1e3
        self.gpu_mhz = actions.gpu_hz[int(gpu[0])] / 1e6
        self.name = f"fixed-{self.cpu_mhz:.0f}-{self.gpu_mhz:.0f}" + ("" if share == 1.0 else f"@{share:.2f}")
        self._served = ServedShare(1)

    @property
    def serves_share(self) -> bool:
        """Whether it skips frames itself (a shield around it then asks :meth:`admit` too)."""
        return self.share < 1.0

    def reset(self, n: int = 1) -> None:
        self._served = ServedShare(1)

    def act(self, obs: np.ndarray, dt_s: TimeStep = None) -> np.ndarray:
        return np.full(np.atleast_2d(obs).shape[0], self.action, dtype=np.int64)

    def admit(self, obs: np.ndarray, dt_s: float | None = None, shutdown_gap_c: float | None = None) -> bool:
        """Serve the frame about to start, or skip it to keep :attr:`share` of them."""
        return self._served.admit(self.share)


def sweep_fixed_clocks(
    scenario: Scenario,
    duration_s: float,
    seeds: Sequence[int],
    all_clocks: bool = False,
    progress: Callable[[float], None] | None = None,
    served_shares: Sequence[float] = (1.0,),
    shield: bool = False,
    actions: Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """One row per joint clock (drl's 5 x 5 grid, the whole table with ``all_clocks``, or the joint
    indices ``actions``) and served share; with ``shield`` each clock runs inside :class:`Shield`.

    Each row: ``cpu_mhz``, ``gpu_mhz``, ``share``, ``shielded``, mean and 95 % CI of ``objective``,
    ``throttled_pct``, ``on_time_pct``, ``max_temp_c``, ``latency_mean_ms``, ``latency_std_ms``, and
    ``shutdowns`` (runs out of ``len(seeds)``).
    """
    res = Resolved.from_scenario(scenario)
    fps = 1.0 / res.period_s if res.period_s else 0.0
    if actions is None:
        actions = range(res.actions.n) if all_clocks else clock_grid(res.actions)
    rows = []
    for action, share in itertools.product(actions, served_shares):
        fixed = FixedClocks(res.actions, action, share)
        runs = []
        for seed in seeds:  # a fresh policy per run: the shield keeps per-run state
            policy = FixedClocks(res.actions, action, share)
            run = Shield(policy, res.actions, make_policy("stock", res.actions)) if shield else policy
            rec = rollout(run, scenario, duration_s, seed=seed, progress=progress)
            runs.append(recording_metrics(rec, duration_s, fps))
        row: dict[str, Any] = {"cpu_mhz": fixed.cpu_mhz, "gpu_mhz": fixed.gpu_mhz, "share": share,
                               "shielded": shield, "seeds": len(runs)}  # fmt: skip
        for key in ("objective", "throttled_pct", "on_time_pct", "max_temp_c", "latency_mean_ms", "latency_std_ms"):
            row[key], row[f"{key}_ci95"] = mean_ci95([float(r[key]) for r in runs])
        row["shutdowns"] = sum(bool(r["shutdown"]) for r in runs)
        row["max_throttled_pct"] = max(float(r["throttled_pct"]) for r in runs)
        rows.append(row)
    return rows


def feasibility(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The best row overall and the best that never throttles nor shuts down on any seed (None if none)."""
    ok = [r for r in rows if math.isfinite(r["objective"])]
    best = min(ok, key=lambda r: r["objective"]) if ok else None
    cool = [r for r in ok if r["max_throttled_pct"] == 0.0 and r["shutdowns"] == 0]
    best_cool = min(cool, key=lambda r: r["objective"]) if cool else None
    return {"best": best, "best_without_throttling": best_cool, "zero_throttling_feasible": best_cool is not None}


def format_fixed_clocks(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of the sweep, then the feasibility summary."""
    lines = [
        "| CPU MHz | GPU MHz | served | objective ms | throttled % | on time % | max C | shutdowns |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['cpu_mhz']:.0f} | {r['gpu_mhz']:.0f} | {r.get('share', 1.0):.2f} | "
            f"{r['objective']:.1f} ± {r['objective_ci95']:.1f} | "
            f"{r['throttled_pct']:.1f} | {r['on_time_pct']:.1f} | {r['max_temp_c']:.1f} | "
            f"{r['shutdowns']}/{r['seeds']} |"
        )
    summary = feasibility(rows)
    best, cool = summary["best"], summary["best_without_throttling"]
    if best is not None:
        lines.append(
            f"\nbest fixed clock: {best['cpu_mhz']:.0f}/{best['gpu_mhz']:.0f} MHz{_served(best)}, "
            f"objective {best['objective']:.1f} ms, throttled {best['throttled_pct']:.1f} %"
        )
    if cool is None:
        lines.append("no fixed clock avoids throttling or shutdown on every seed: 0 % throttling is not feasible here")
    else:
        lines.append(
            f"best fixed clock that never throttles: {cool['cpu_mhz']:.0f}/{cool['gpu_mhz']:.0f} MHz{_served(cool)}, "
            f"objective {cool['objective']:.1f} ms"
        )
    return "\n".join(lines)


def _served(row: dict[str, Any]) -> str:
    share = float(row.get("share", 1.0))
    return "" if share == 1.0 else f" serving {100 * share:.0f} % of the frames"
