"""``lotus eval``: every policy on identical seeded scenarios, one table, JSON and plots.

The objective (lower is better) follows the Lotus formulation, per frame
``l + ALPHA * (l - mean)^2 + BETA * [l > deadline]``, averaged, plus a constraint term
``THROTTLE_COST * deadline * throttled fraction``; ``objective_vs_oracle`` divides by the
oracle's objective on the same seed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lotus.envs.core import Resolved
from lotus.envs.scenario import Scenario
from lotus.governor.registry import build_policy
from lotus.governor.report import SUMMARY_KEYS, summarize
from lotus.governor.rollout import Recording, rollout

ALPHA_PER_MS = 0.1  # weight of the latency variance, 1/ms
THROTTLE_COST = 1.0  # deadlines charged per unit of throttled time fraction
DEFAULT_POLICIES = ("stock", "performance", "ztt", "lotus-dac24", "drl", "oracle")


def objective(summary: dict[str, float], deadline_ms: float) -> float:
    """Lotus-style objective in ms: mean + alpha * variance + deadline * (miss + throttled fractions)."""
    return (
        summary["latency_mean_ms"]
        + ALPHA_PER_MS * summary["latency_std_ms"] ** 2
        + deadline_ms * summary["deadline_miss_pct"] / 100.0
        + THROTTLE_COST * deadline_ms * summary["throttled_pct"] / 100.0
    )


@dataclass
class EvalResult:
    records: list[dict[str, Any]]  # one per (policy, seed)
    table: list[dict[str, Any]]  # one per policy, averaged over seeds
    recordings: dict[str, Recording]  # first seed of each policy, for plots


def evaluate(
    scenario: Scenario,
    policies: Sequence[str],
    seeds: Sequence[int],
    duration_s: float,
    progress: Callable[[float], None] | None = None,
) -> EvalResult:
    """Run each policy on each seed (same scenario, same seeds, same traces)."""
    from lotus.governor.oracle import oracle_rollout

    res = Resolved.from_scenario(scenario)
    records: list[dict[str, Any]] = []
    recordings: dict[str, Recording] = {}
    oracle_obj: dict[int, float] = {}
    ordered = sorted(policies, key=lambda p: p != "oracle")  # oracle first: the others divide by it
    for name in ordered:  # fail on a bad name now, not after hours of rollouts
        if name != "oracle":
            build_policy(name, res.actions)
    for name in ordered:
        for seed in seeds:
            if name == "oracle":
                rec, target = oracle_rollout(scenario, duration_s, seed=seed, progress=progress)
                extra: dict[str, Any] = {"oracle_target_ms": target}
            else:
                policy = build_policy(name, res.actions)
                rec = rollout(policy, scenario, duration_s, seed=seed, progress=progress)
                diag = policy.diagnostics()
                extra = {}
                if diag.shielded:
                    extra = {"shield_interventions": diag.interventions, "shield_fallbacks": diag.fallbacks}
            summary = summarize(rec)
            obj = objective(summary, res.deadline_ms)
            if name == "oracle":
                oracle_obj[seed] = obj
            ratio = obj / oracle_obj[seed] if seed in oracle_obj else float("nan")
            records.append({"policy": name, "seed": seed, **summary, "objective": obj, "objective_vs_oracle": ratio,
                            **extra})  # fmt: skip
            recordings.setdefault(name, rec)
    table = []
    for name in policies:
        rows = [r for r in records if r["policy"] == name]
        keys = [*SUMMARY_KEYS, "objective", "objective_vs_oracle"]
        table.append({"policy": name, **{k: float(np.mean([r[k] for r in rows])) for k in keys}})
    return EvalResult(records, table, recordings)


def plot_eval(result: EvalResult, out: Path, title: str) -> list[Path]:
    """latency.png (1 s mean per policy), temperature.png, latency_hist.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(11, 5))
    for name, rec in result.recordings.items():
        f = rec.frames
        k = 30
        if f["latency_ms"].size > k:
            ax.plot(f["time_s"][k - 1 :], np.convolve(f["latency_ms"], np.ones(k) / k, mode="valid"), lw=1, label=name)
    first = next(iter(result.recordings.values()))
    ax.axhline(first.deadline_ms, color="red", ls="--", lw=1, label="deadline")
    ax.set(xlabel="time (s)", ylabel="frame latency, 1 s mean (ms)", title=f"Latency over time: {title}")
    ax.legend(ncol=4, fontsize=8)
    paths.append(_save(fig, out / "latency.png"))

    fig, ax = plt.subplots(figsize=(11, 5))
    for name, rec in result.recordings.items():
        s = rec.steps
        ax.plot(s["time_s"], np.maximum(s["cpu_temp_c"], s["gpu_temp_c"]), lw=1, label=name)
    trip = first.scenario.trip_c or 99.0
    ax.axhline(trip, color="red", ls="--", lw=1, label=f"trip {trip:.0f} C")
    ax.set(xlabel="time (s)", ylabel="hotter die (C)", title=f"Temperature over time: {title}")
    ax.legend(ncol=4, fontsize=8)
    paths.append(_save(fig, out / "temperature.png"))

    fig, ax = plt.subplots(figsize=(11, 5))
    data = [rec.frames["latency_ms"] for rec in result.recordings.values()]
    ax.boxplot(data, whis=(1, 99), showfliers=False)
    ax.set_xticks(range(1, len(data) + 1), list(result.recordings))
    ax.axhline(first.deadline_ms, color="red", ls="--", lw=1)
    ax.set(ylabel="frame latency (ms)", title=f"Latency distribution (box: p25-p75, whiskers: p1-p99): {title}")
    paths.append(_save(fig, out / "latency_distribution.png"))
    return paths


def _save(fig, path: Path) -> Path:  # noqa: ANN001
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
