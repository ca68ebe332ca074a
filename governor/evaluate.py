"""``lotus eval``: every policy on identical seeded scenarios, one table, JSON and plots.

The objective (lower is better, ms) follows the Lotus formulation,
``mean + ALPHA * variance + deadline * miss fraction``, with misses counted over every camera
frame (a dropped frame is a miss; see :mod:`lotus.governor.metrics`). Temperature limits are
reported as constraints (``throttled_pct``, ``shutdown``), not priced into it.
``objective_vs_foresight`` divides by the foresight reference's objective on the same seed
(:mod:`lotus.governor.foresight`); ``beats_foresight`` flags a run below it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lotus.core.errors import NoTrainedPolicyError, PolicyError
from lotus.envs.core import Resolved
from lotus.envs.scenario import Scenario
from lotus.governor.context import PolicyContext
from lotus.governor.foresight import NAME as REFERENCE
from lotus.governor.foresight import REFERENCES, foresight_rollout
from lotus.governor.metrics import failed_run_metrics, mean_ci95, recording_metrics
from lotus.governor.registry import build_policy, split_margin
from lotus.governor.report import summarize
from lotus.governor.rollout import Recording, rollout
from lotus.governor.shield import Shield

DEFAULT_POLICIES = ("stock", "performance", "mpc", "ztt", "lotus-dac24", "drl", "foresight")


@dataclass
class EvalResult:
    records: list[dict[str, Any]]  # one per (policy, seed)
    table: list[dict[str, Any]]  # one per policy, averaged over seeds
    recordings: dict[str, Recording]  # first seed of each policy, for plots
    unavailable: dict[str, str] = field(default_factory=dict)  # policy -> why it has no variant for this board


def policy_context(res: Resolved) -> PolicyContext:
    """What a governor is told about ``res``'s scenario: nominal profiles, deadline, camera rate."""
    sc = res.scenario
    return PolicyContext(deadline_ms=res.deadline_ms, fps=1.0 / res.period_s if res.period_s > 0 else 0.0,
                         board=sc.board, power_mode=sc.power_mode, workload=sc.workload)  # fmt: skip


def _reference_rollout(scenario: Scenario, duration_s: float, seed: int, progress: Callable[[float], None] | None,
                       cool: bool = False) -> tuple[Recording | None, dict[str, Any]]:  # fmt: skip
    rec, chosen = foresight_rollout(scenario, duration_s, seed=seed, progress=progress, cool=cool)
    return rec, dict(chosen)


def evaluate(
    scenario: Scenario,
    policies: Sequence[str],
    seeds: Sequence[int],
    duration_s: float,
    progress: Callable[[float], None] | None = None,
) -> EvalResult:
    """Run each policy on each seed (same scenario, same seeds, same traces).

    Every record holds :data:`lotus.governor.metrics.METRIC_KEYS` (every camera frame counted, a
    shutdown run owes the rest of the run) plus the older summary keys; an infeasible room gives
    ``shutdown: true`` rows, never an exception. ``beats_foresight`` flags a run whose objective
    is below the foresight reference's on the same seed.
    """
    res = Resolved.from_scenario(scenario)
    context = policy_context(res)
    fps = context.fps
    records: list[dict[str, Any]] = []
    recordings: dict[str, Recording] = {}
    ref_obj: dict[int, float] = {}
    ordered = sorted(policies, key=lambda p: p not in REFERENCES)  # the references first: the others divide by one
    unavailable = {}
    for name in ordered:  # fail on a bad name now, not after hours of rollouts
        if name not in REFERENCES and (why := _untrained_for_board(name, res.actions, context)) is not None:
            unavailable[name] = why
    ordered = [name for name in ordered if name not in unavailable]
    for name in ordered:
        for seed in seeds:
            extra: dict[str, Any] = {}
            rec: Recording | None
            if name in REFERENCES:
                rec, extra = _reference_rollout(scenario, duration_s, seed, progress, cool=name != REFERENCE)
            else:
                policy = build_policy(name, res.actions, context=context)
                rec = rollout(policy, scenario, duration_s, seed=seed, progress=progress)
                diag = policy.diagnostics()
                if diag.shielded:
                    extra = {"shield_interventions": diag.interventions, "shield_fallbacks": diag.fallbacks}
            if rec is None:
                metrics: dict[str, Any] = {**failed_run_metrics(duration_s, fps), "objective": math.inf}
                summary: dict[str, Any] = {}
            else:
                summary = summarize(rec)
                metrics = recording_metrics(rec, duration_s, fps)
            obj = float(metrics["objective"])
            if name == REFERENCE:
                ref_obj[seed] = obj
            ref = ref_obj.get(seed, float("nan"))
            ratio = obj / ref if math.isfinite(ref) and ref > 0 else float("nan")
            beats = name not in REFERENCES and math.isfinite(ref) and obj < ref
            records.append({"policy": name, "seed": seed, **summary, **metrics, "objective_vs_foresight": ratio,
                            "beats_foresight": beats, **extra})  # fmt: skip
            if rec is not None:
                recordings.setdefault(name, rec)
    table = [
        aggregate(name, [r for r in records if r["policy"] == name]) for name in policies if name not in unavailable
    ]
    return EvalResult(records, table, recordings, unavailable)


def _untrained_for_board(name: str, actions: Any, context: Any) -> str | None:
    """Why ``name`` cannot run on this board (no learned variant for its clock table), else None.

    Any other bad name or file raises :class:`PolicyError` here. A shielded learned policy without
    a variant would silently run the shield's fallback: it is reported as not trained instead.
    """
    try:
        policy = build_policy(name, actions, context=context)
    except NoTrainedPolicyError as exc:
        return str(exc)
    if isinstance(policy, Shield) and isinstance(policy.load_exception, NoTrainedPolicyError):
        return str(policy.load_exception)
    if isinstance(policy, Shield) and policy.load_exception is not None:
        raise PolicyError(f"policy {name!r} cannot be loaded: {policy.load_error}")
    return None


TABLE_KEYS = (
    "on_time_pct", "drop_pct", "latency_mean_ms", "latency_std_ms", "latency_p50_ms", "latency_p99_ms",
    "throttled_pct", "max_temp_c", "energy_per_frame_j", "energy_per_camera_frame_j", "objective",
    "objective_vs_foresight",
)  # fmt: skip


def aggregate(name: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One table row: the mean over seeds of each of :data:`TABLE_KEYS` and its 95 % CI half-width."""
    row: dict[str, Any] = {"policy": name, "seeds": len(rows)}
    for key in TABLE_KEYS:
        mean, half = mean_ci95([float(r.get(key, float("nan"))) for r in rows])
        row[key], row[f"{key}_ci95"] = mean, half
    row["shutdowns"] = sum(bool(r["shutdown"]) for r in rows)
    row["beats_foresight"] = sum(bool(r.get("beats_foresight")) for r in rows)
    # older summary names, kept for plots and callers of the previous table
    for old, new in (("deadline_miss_pct", None), ("frames", "processed_frames")):
        vals = [float(r[new or old]) for r in rows if (new or old) in r]
        row[old] = float(np.mean(vals)) if vals else float("nan")
    return row


# one colour per policy family (tab10), a line style per variant: a legend of 15 policies stays readable
_FAMILY_COLOURS = {
    "foresight": "black", "stock": "tab:orange", "performance": "tab:red", "mpc-energy": "tab:olive",
    "mpc": "tab:purple", "ztt": "tab:cyan", "lotus-dac24": "tab:green", "drl": "tab:blue",
}  # fmt: skip
_OTHER_COLOURS = ("tab:brown", "tab:pink", "tab:gray")


def policy_style(name: str, index: int = 0) -> dict[str, Any]:
    """Matplotlib line keywords of policy ``name``: its family's colour; dashed ``+shield``, dotted ``-pub``.

    :param index: the policy's position in its plot, for the colour of a name outside the families.
    """
    name = split_margin(name)[0]
    base = name.removesuffix("+shield")
    family = next((f for f in _FAMILY_COLOURS if base == f or base.startswith(f + "-")), None)
    colour = _FAMILY_COLOURS[family] if family else _OTHER_COLOURS[index % len(_OTHER_COLOURS)]
    ls = "--" if name.endswith("+shield") else ":" if base.endswith("-pub") else "-"
    if family and base not in (family, family + "-pub"):  # another variant of a family, e.g. drl-stable
        ls = "-."
    return {"color": colour, "ls": ls, "lw": 1.6 if base == "drl" else 1.0}


def seeds_phrase(seeds: Sequence[int]) -> str:
    """``"5 seeds; plots show seed 0"``: what a plot title says of the seeds behind it."""
    return f"{len(seeds)} seed{'s' if len(seeds) != 1 else ''}; plots show seed {seeds[0]}"


def trailing_mean(time_s: np.ndarray, values: np.ndarray, window_s: float = 1.0) -> np.ndarray:
    """``[F]`` mean of the values whose time is in ``(t_i - window_s, t_i]``, for each ``t_i``.

    A window in time, not in frames: where frames are skipped or dropped, fewer of them count (a
    30-frame mean would average over many seconds there and draw a smooth line that no second had).
    ``time_s`` must be non-decreasing.
    """
    t, v = np.asarray(time_s, dtype=float), np.asarray(values, dtype=float)
    csum = np.concatenate(([0.0], np.cumsum(v)))
    start = np.searchsorted(t, t - window_s, side="right")
    end = np.arange(1, t.size + 1)
    return (csum[end] - csum[start]) / (end - start)


def plot_eval(result: EvalResult, out: Path, title: str) -> list[Path]:
    """latency.png (trailing 1 s mean per policy), temperature.png, latency_distribution.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths: list[Path] = []
    if not result.recordings:  # nothing ran (every policy lacked a variant for this board): no plots
        return paths
    fig, ax = plt.subplots(figsize=(11, 5))
    for i, (name, rec) in enumerate(result.recordings.items()):
        f = rec.frames
        if f["latency_ms"].size:
            ax.plot(f["time_s"], trailing_mean(f["time_s"], f["latency_ms"]), label=name, **policy_style(name, i))
    first = next(iter(result.recordings.values()))
    ax.axhline(first.deadline_ms, color="red", ls=(0, (6, 2, 1, 2)), lw=1.2, label="deadline")
    ax.set(xlabel="time (s)", ylabel="processed frames' latency, mean over the last 1 s (ms)",
           title=f"Latency over time: {title}")  # fmt: skip
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    paths.append(_save(fig, out / "latency.png"))

    fig, ax = plt.subplots(figsize=(11, 5))
    for i, (name, rec) in enumerate(result.recordings.items()):
        s = rec.steps
        ax.plot(s["time_s"], np.maximum(s["cpu_temp_c"], s["gpu_temp_c"]), label=name, **policy_style(name, i))
    trip = first.scenario.trip_c or 99.0
    ax.axhline(trip, color="red", ls=(0, (6, 2, 1, 2)), lw=1.2, label=f"trip {trip:.0f} C")
    ax.set(xlabel="time (s)", ylabel="hotter die (C)", title=f"Temperature over time: {title}")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
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


def plot_suite_scatter(doc: dict[str, Any], out: Path) -> Path:
    """on_time_vs_energy.png: each policy's on-time % against energy per camera frame, one panel per
    scenario, seed means with 95 % CI bars (the seeds of ``doc``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(doc["scenarios"])
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols + 2.4, 3.4 * rows), squeeze=False)
    policies = list(dict.fromkeys(r["policy"] for e in doc["scenarios"].values() for r in e["table"]))
    # the line plots' colours; the marker tells the variant (as the line style does there)
    markers = {"-": "o", "--": "s", ":": "^", "-.": "D"}
    styles = {p: policy_style(p, i) for i, p in enumerate(policies)}
    marks = {p: {"color": st["color"], "marker": markers[st["ls"]]} for p, st in styles.items()}
    for ax, name in zip(axes.flat, names):
        for row in doc["scenarios"][name]["table"]:
            x, y = row["energy_per_camera_frame_j"], row["on_time_pct"]
            ax.errorbar(x, y, xerr=row["energy_per_camera_frame_j_ci95"], yerr=row["on_time_pct_ci95"], ls="", ms=4,
                        label=row["policy"], **marks[row["policy"]])  # fmt: skip
        ax.set(title=name, xlabel="energy per camera frame (J)", ylabel="on time (%)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    handles = [plt.Line2D([], [], ls="", label=p, **marks[p]) for p in policies]
    seeds = doc.get("seeds")
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
               title=f"seeds {seeds}" if seeds else None)  # fmt: skip
    fig.suptitle("On time vs energy per camera frame (seed means, 95 % CI)")
    fig.tight_layout()
    path = out / "on_time_vs_energy.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
