"""Named scenario suites for ``lotus eval --suite``: the benchmark every governor is compared on.

``standard`` covers the README's two rooms, a steady and a heavy-proposal trace, a hot enclosure,
a fan-on case, the 7 W mode, Orin NX, and a held-out board variant whose heatsink resistance,
heat capacity and workload cost lie outside the ranges ``drl`` was trained on
(:data:`lotus.governor.train.DRL_RANDOMIZATION`: resistance and capacity x0.6-1.4, workload
x0.6-1.4). The crowd trace is held out too (training sees steady, bursty, video and regimes).
``smoke`` is a short version that runs in CI.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lotus.core.errors import ConfigError
from lotus.envs.scenario import Randomization, Scenario
from lotus.governor.foresight import REFERENCES

if TYPE_CHECKING:
    from lotus.governor.evaluate import EvalResult

STANDARD_POLICIES = (
    "stock", "stock+shield", "performance", "performance+shield", "mpc", "mpc+shield", "mpc-energy",
    "mpc-energy+shield", "ztt", "ztt+shield", "ztt-pub", "lotus-dac24", "lotus-dac24+shield", "lotus-dac24-pub", "drl",
    "foresight",
)  # fmt: skip


@dataclass(frozen=True)
class SuiteScenario:
    """One scenario of a suite: its name, the scenario, and whether it is held out of training."""

    name: str
    scenario: Scenario
    held_out: bool = False


def _nano(**fields: Any) -> Scenario:
    return Scenario.model_validate({"board": "orin-nano", "fps": 30.0, **fields})


def _standard() -> list[SuiteScenario]:
    # outside drl's training ranges (x0.6-1.4 each): a lighter model on a board with a poorer,
    # lighter heatsink that has been running (70 C); at top clocks it reaches the shutdown
    variant = Randomization(r_scale=(1.6, 1.6), c_scale=(0.5, 0.5), workload_scale=(0.55, 0.55))
    return [
        SuiteScenario("nano15-25c-video", _nano(ambient_c=25.0, trace="video")),
        SuiteScenario("nano15-35c-bursty", _nano(ambient_c=35.0, trace="bursty")),
        SuiteScenario("nano15-30c-steady", _nano(ambient_c=30.0, trace="steady")),
        SuiteScenario("nano15-30c-crowd", _nano(ambient_c=30.0, trace="crowd"), held_out=True),
        # a sealed box (heatsink-to-ambient resistance x1.3) in a 35 C room that has been running: the
        # board starts at 85 C; at top clocks the heatsink heads for ~108 C, so the trip binds within minutes
        SuiteScenario("nano15-35c-enclosure", _nano(ambient_c=35.0, trace="video", r_scale=1.3, init_temp_c=85.0)),
        SuiteScenario("nano15-35c-fan", _nano(ambient_c=35.0, trace="bursty", fan="on")),
        # the 7 W mode cannot hold 30 fps with this detector at any clock (~56 ms at the top): it serves
        # 15 fps, with the deadline scaled as the frame period (40 ms at 30 fps -> 80 ms)
        SuiteScenario(
            "nano7w-25c-video", _nano(power_mode="7W", ambient_c=25.0, trace="video", fps=15.0, deadline_ms=80.0)
        ),
        SuiteScenario("nx-30c-video", Scenario(board="orin-nx", fps=30.0, ambient_c=30.0, trace="video")),
        SuiteScenario(
            "nano15-30c-variant",
            _nano(ambient_c=30.0, trace="video", init_temp_c=70.0, randomize=variant),
            held_out=True,
        ),  # fmt: skip
    ]


def _smoke() -> list[SuiteScenario]:
    return [
        SuiteScenario("nano15-25c-video", Scenario(fps=30.0, ambient_c=25.0, trace="video")),
        SuiteScenario(
            "nano15-hot-box", Scenario(fps=30.0, ambient_c=40.0, trace="bursty", r_scale=1.3, init_temp_c=97.0)
        ),
    ]


SUITES: dict[str, tuple[Callable[[], list[SuiteScenario]], float, int, tuple[str, ...]]] = {
    # name: (scenarios, seconds per run, seeds, default policies)
    "standard": (_standard, 600.0, 5, STANDARD_POLICIES),
    "smoke": (_smoke, 20.0, 2, ("stock", "mpc", "drl", "foresight")),
}


def suite(name: str) -> tuple[list[SuiteScenario], float, int, tuple[str, ...]]:
    """The scenarios, run length (s), seed count and default policies of suite ``name``."""
    if name not in SUITES:
        raise ConfigError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    build, duration, seeds, policies = SUITES[name]
    return build(), duration, seeds, policies


def run_suite(
    name: str,
    out: Path,
    policies: Sequence[str] | None = None,
    seeds: int | None = None,
    duration_s: float | None = None,
    progress: Callable[[float], None] | None = None,
    only: Sequence[str] | None = None,
    ray_address: str | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """Evaluate every scenario of suite ``name``; write per-scenario tables, JSON and plots, and a ranking.

    ``only`` restricts the run to the named scenarios (e.g. to split a suite over machines).
    ``ray_address`` or ``workers`` > 1 hand the run to :func:`run_suite_parallel` (same documents).

    :return: ``{"suite", "scenarios": {name: {"table", "held_out", ...}}, "ranking": [...]}``.
    """
    if ray_address is not None or workers > 1:
        return run_suite_parallel(name, out, policies, seeds, duration_s, progress, only, ray_address, workers)
    import json

    from lotus.governor.evaluate import evaluate

    scenarios, dur, n_seeds, default = suite(name)
    if only:
        known = {sc.name for sc in scenarios}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise ConfigError(f"suite {name!r} has no scenario {', '.join(unknown)}; it has {', '.join(sorted(known))}")
        scenarios = [sc for sc in scenarios if sc.name in only]
    dur = duration_s or dur
    names = list(policies or default)
    seed_list = list(range(seeds or n_seeds))
    doc: dict[str, Any] = {"suite": name, "duration_s": dur, "seeds": seed_list, "policies": names, "scenarios": {}}
    for sc in scenarios:
        result = evaluate(sc.scenario, names, seed_list, dur, progress=progress)
        doc["scenarios"][sc.name] = write_scenario(out, sc, result, seed_list)
    doc["ranking"] = ranking(doc)
    (out / "suite.json").write_text(json.dumps(doc, indent=2, default=str))
    from lotus.governor.evaluate import plot_suite_scatter

    plot_suite_scatter(doc, out)
    return doc


@dataclass(frozen=True)
class EvalUnit:
    """One task of :func:`run_suite_parallel`: every policy on one scenario and one seed."""

    scenario: Scenario
    policies: tuple[str, ...]
    seed: int
    duration_s: float
    recordings: bool  # ship the recordings back (the first seed's: the plots)


def evaluate_unit(unit: EvalUnit) -> EvalResult:
    """:func:`lotus.governor.evaluate.evaluate` on one seed (foresight ratios included); a Ray or process task."""
    from lotus.governor.evaluate import evaluate

    result = evaluate(unit.scenario, unit.policies, [unit.seed], unit.duration_s)
    if not unit.recordings:
        result.recordings = {}
    return result


def run_suite_parallel(
    name: str,
    out: Path,
    policies: Sequence[str] | None = None,
    seeds: int | None = None,
    duration_s: float | None = None,
    progress: Callable[[float], None] | None = None,
    only: Sequence[str] | None = None,
    ray_address: str | None = None,
    workers: int = 1,
) -> dict[str, Any]:
    """:func:`run_suite` with its (scenario, seed) units fanned out by :func:`lotus.governor.parallel.run_tasks`.

    Each task runs every policy on one scenario and one seed; this process puts the records in
    :func:`run_suite`'s order and writes the same documents, so the numbers equal a serial run's.
    Only the first seed's tasks send their recordings back, for the plots. ``progress`` gets the
    simulated seconds of each finished task.
    """
    import json

    from lotus.governor.evaluate import EvalResult, aggregate, plot_suite_scatter
    from lotus.governor.parallel import run_tasks

    scenarios, dur, n_seeds, default = suite(name)
    if only:
        known = {sc.name for sc in scenarios}
        unknown = [n for n in only if n not in known]
        if unknown:
            raise ConfigError(f"suite {name!r} has no scenario {', '.join(unknown)}; it has {', '.join(sorted(known))}")
        scenarios = [sc for sc in scenarios if sc.name in only]
    dur = duration_s or dur
    names = list(policies or default)
    seed_list = list(range(seeds or n_seeds))
    units = [EvalUnit(sc.scenario, tuple(names), seed, dur, recordings=seed == seed_list[0])
             for sc in scenarios for seed in seed_list]  # fmt: skip

    def report(_k: int) -> None:
        if progress is not None:
            progress(dur * len(names))

    results = run_tasks(evaluate_unit, units, ray_address=ray_address, workers=workers, progress=report)
    ordered = sorted(names, key=lambda p: p not in REFERENCES)  # evaluate's record order: the references first
    doc: dict[str, Any] = {"suite": name, "duration_s": dur, "seeds": seed_list, "policies": names, "scenarios": {}}
    for k, sc in enumerate(scenarios):
        parts = results[k * len(seed_list) : (k + 1) * len(seed_list)]
        records = [r for p in dict.fromkeys(ordered) for part in parts for r in part.records if r["policy"] == p]
        missing = parts[0].unavailable
        table = [aggregate(p, [r for r in records if r["policy"] == p]) for p in names if p not in missing]
        result = EvalResult(records, table, parts[0].recordings, missing)
        doc["scenarios"][sc.name] = write_scenario(out, sc, result, seed_list)
    doc["ranking"] = ranking(doc)
    (out / "suite.json").write_text(json.dumps(doc, indent=2, default=str))
    plot_suite_scatter(doc, out)
    return doc


def write_scenario(out: Path, sc: SuiteScenario, result: EvalResult, seed_list: Sequence[int]) -> dict[str, Any]:
    """``out/<scenario>/``: results.json, table.md and the plots (first seed) of one scenario's evaluation."""
    import json

    from lotus.governor.evaluate import plot_eval, seeds_phrase

    where = out / sc.name
    where.mkdir(parents=True, exist_ok=True)
    entry = {"scenario": sc.scenario.model_dump(mode="json"), "held_out": sc.held_out, "table": result.table,
             "records": result.records, "not_trained": result.unavailable}  # fmt: skip
    (where / "results.json").write_text(json.dumps(entry, indent=2, default=str))
    (where / "table.md").write_text(scenario_table_md(result.table, result.unavailable))
    plot_eval(result, where, f"{sc.name} ({seeds_phrase(seed_list)})")
    return entry


def scenario_table_md(table: list[dict[str, Any]], not_trained: dict[str, str]) -> str:
    """A scenario's table.md: the suite table, then the policies with no variant for its board."""
    from lotus.governor.report import format_suite_table

    text = format_suite_table(table) + "\n"
    if not_trained:
        text += "\nNot run, no variant trained for this board:\n" + "".join(
            f"- `{p}`: {why}\n" for p, why in not_trained.items()
        )
    return text


TIE_MS = 1e-3
"""Objectives closer than this (ms) tie in the ranking: a microsecond of mean latency is rounding."""


def ranking(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Policies by mean rank of their objective over the suite's scenarios (the foresight reference excluded).

    Runs with shutdowns rank after those without. Policies whose objectives are within ``TIE_MS``
    share the mean of the ranks they span (as ``scipy.stats.rankdata(method="average")``), and a tie
    for first is a win for each of them, so list order never decides.
    """
    ranks: dict[str, list[float]] = {}
    wins: dict[str, int] = {}
    for entry in doc["scenarios"].values():
        rows = [r for r in entry["table"] if r["policy"] not in REFERENCES]
        ordered = sorted(rows, key=lambda r: (r["shutdowns"] > 0, r["objective"]))
        groups: list[list[dict[str, Any]]] = []
        for row in ordered:
            head = groups[-1][0] if groups else None
            if (
                head is not None
                and (head["shutdowns"] > 0) == (row["shutdowns"] > 0)
                and abs(float(row["objective"]) - float(head["objective"])) <= TIE_MS
            ):
                groups[-1].append(row)
            else:
                groups.append([row])
        first = 1
        for k, group in enumerate(groups):
            shared = first + (len(group) - 1) / 2
            for row in group:
                ranks.setdefault(row["policy"], []).append(shared)
                if k == 0:
                    wins[row["policy"]] = wins.get(row["policy"], 0) + 1
            first += len(group)
    out = [{"policy": p, "mean_rank": sum(r) / len(r), "wins": wins.get(p, 0)} for p, r in ranks.items()]
    return sorted(out, key=lambda r: r["mean_rank"])


def merge_suites(parts: Sequence[Path], out: Path) -> dict[str, Any]:
    """Combine suite runs made in pieces (other scenarios, or other policies on the same seeds).

    Records of the same scenario are pooled; where two parts ran the same policy on a scenario,
    the later part's records replace the earlier's (a retrained policy re-run). Each record's
    ``objective_vs_foresight`` and ``beats_foresight`` are recomputed against the foresight run of
    its scenario and seed, the tables and the ranking rebuilt. Writes ``out/suite.json`` and
    ``out/<scenario>/table.md``.
    """
    import json
    import math

    from lotus.governor.evaluate import aggregate

    doc: dict[str, Any] = {"suite": None, "parts": [str(p) for p in parts], "scenarios": {}}
    for part in parts:
        path = part / "suite.json"
        if not path.is_file():
            raise ConfigError(f"{part} holds no suite.json (a `lotus eval --suite` output folder)")
        run = json.loads(path.read_text())
        doc["suite"] = doc["suite"] or run.get("suite")
        for key in ("duration_s", "seeds"):
            if doc.setdefault(key, run.get(key)) != run.get(key):
                raise ConfigError(f"{part} used {key}={run.get(key)}, the other parts {doc[key]}: not comparable")
        for name, entry in run["scenarios"].items():
            merged = doc["scenarios"].setdefault(name, {**entry, "records": [], "not_trained": {}})
            rerun = {r["policy"] for r in entry["records"]}  # a later part's run of a policy replaces an earlier one
            merged["records"] = [r for r in merged["records"] if r["policy"] not in rerun] + entry["records"]
            merged["not_trained"].update(entry.get("not_trained", {}))
    for name, entry in doc["scenarios"].items():
        ref = {r["seed"]: float(r["objective"]) for r in entry["records"] if r["policy"] == "foresight"}
        for r in entry["records"]:
            base = ref.get(r["seed"], math.nan)
            obj = float(r["objective"])
            r["objective_vs_foresight"] = obj / base if math.isfinite(base) and base > 0 else math.nan
            r["beats_foresight"] = r["policy"] not in REFERENCES and math.isfinite(base) and obj < base
        names = list(dict.fromkeys(r["policy"] for r in entry["records"]))
        # a policy another part did run (a variant trained since) is no longer "not trained"
        entry["not_trained"] = {p: why for p, why in entry.get("not_trained", {}).items() if p not in names}
        entry["table"] = [aggregate(p, [r for r in entry["records"] if r["policy"] == p]) for p in names]
        where = out / name
        where.mkdir(parents=True, exist_ok=True)
        (where / "table.md").write_text(scenario_table_md(entry["table"], entry["not_trained"]))
    doc["ranking"] = ranking(doc)
    (out / "suite.json").write_text(json.dumps(doc, indent=2, default=str))
    from lotus.governor.evaluate import plot_suite_scatter

    plot_suite_scatter(doc, out)
    return doc
