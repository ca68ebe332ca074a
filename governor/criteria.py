"""Issue 11's judged criteria, checked against a suite run (``suite.json`` of ``lotus eval --suite``).

Each criterion is recomputed from the per-seed records, so a reader can re-judge any suite folder
(``lotus criteria docs/results/suite-standard``) instead of trusting prose. What a suite cannot
show (the daemon's policy on other boards, the Ray sweep) is tested in the test suite, not here.

The criteria, for the policy under test (``drl`` by default), on every scenario of the suite:

- ``no-throttling``: throttled 0 % of the time on every seed;
- ``no-shutdown``: no seed reached the shutdown temperature;
- ``lowest-objective``: its mean objective is lower than that of every other policy except the
  references (:data:`lotus.governor.foresight.REFERENCES`); a difference within
  :data:`lotus.governor.suite.TIE_MS` is a tie, not a win. The detail gives the paired difference
  to the best other policy with its 95 % CI over seeds, so a win inside the noise shows as one;
- ``on-time``: its on-time share is no more than :data:`ON_TIME_SLACK_PCT` points below the best
  other policy's.

And over the suite:

- ``suite-average``: its objective averaged over the scenarios is at least
  :data:`AVERAGE_LEAD` below the best non-learned baseline's average (policies whose base name,
  before ``+shield``, is not in :data:`lotus.governor.registry.LEARNED`);
- ``near-reference``: on the main scenario its objective is within :data:`REFERENCE_SLACK` of
  the foresight reference's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from lotus.core.errors import ConfigError
from lotus.governor.foresight import NAME as FORESIGHT
from lotus.governor.foresight import REFERENCES
from lotus.governor.metrics import mean_ci95
from lotus.governor.registry import LEARNED
from lotus.governor.suite import TIE_MS

ON_TIME_SLACK_PCT = 1.0  # points of on-time share the policy may trail the best other policy by
AVERAGE_LEAD = 0.05  # the suite-average objective must be this share below the best non-learned baseline's
REFERENCE_SLACK = 0.10  # and within this share of the reference on the main scenario
MAIN_SCENARIO = "nano15-25c-video"


@dataclass(frozen=True)
class Verdict:
    """One criterion on one scenario (``scenario`` None: over the suite).

    ``met`` is None where the suite cannot tell (the policy or a reference was not run).
    """

    criterion: str
    scenario: str | None
    met: bool | None
    detail: str


def is_learned(policy: str) -> bool:
    """Whether ``policy`` (a suite name such as ``ztt+shield``) is trained, not hand-written."""
    base = policy.split("+", 1)[0]
    return base in LEARNED or base.endswith(".json") or base.startswith("python:")


def load_suite(folder: Path) -> dict[str, Any]:
    """The ``suite.json`` in ``folder`` (a ``lotus eval --suite`` output), or a clear error."""
    import json

    path = folder / "suite.json"
    if not path.is_file():
        raise ConfigError(f"{folder} holds no suite.json (a `lotus eval --suite` output folder)")
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("scenarios"), dict):
        raise ConfigError(f"{path} has no 'scenarios' table: not a suite run")
    return doc


def _paired(records: Sequence[dict], policy: str, other: str) -> tuple[float, float, int]:
    """Mean and 95 % CI (ms) of ``policy`` minus ``other`` on the seeds both ran, and their count."""
    mine = {r["seed"]: float(r["objective"]) for r in records if r["policy"] == policy}
    theirs = {r["seed"]: float(r["objective"]) for r in records if r["policy"] == other}
    diffs = [mine[s] - theirs[s] for s in sorted(mine.keys() & theirs.keys())]
    if not diffs:
        return math.nan, math.nan, 0
    mean, ci = mean_ci95(diffs)
    return mean, ci, len(diffs)


def _scenario_verdicts(name: str, entry: dict[str, Any], policy: str) -> list[Verdict]:
    rows = {r["policy"]: r for r in entry["table"]}
    if policy not in rows:
        why = f"{policy} was not run here"
        return [Verdict(c, name, None, why) for c in ("no-throttling", "no-shutdown", "lowest-objective", "on-time")]
    me = rows[policy]
    mine = [r for r in entry["records"] if r["policy"] == policy]
    worst = max(float(r["throttled_pct"]) for r in mine)
    hot = f"throttled {float(me['throttled_pct']):.1f} % (worst seed {worst:.1f} %)"
    down = f"{int(me['shutdowns'])}/{len(mine)} seeds shut down"
    out = [Verdict("no-throttling", name, worst == 0.0, hot), Verdict("no-shutdown", name, me["shutdowns"] == 0, down)]
    others = [r for p, r in rows.items() if p != policy and p not in REFERENCES]
    if not others:
        why = "no other policy was run here"
        return [*out, Verdict("lowest-objective", name, None, why), Verdict("on-time", name, None, why)]
    best = min(others, key=lambda r: (int(r["shutdowns"]) > 0, float(r["objective"])))
    lead = float(best["objective"]) - float(me["objective"])
    mean, ci, n = _paired(entry["records"], policy, best["policy"])
    detail = (f"{float(me['objective']):.2f} ms against {best['policy']} {float(best['objective']):.2f}; "
              f"paired {mean:+.2f} ± {ci:.2f} ms over {n} seeds")  # fmt: skip
    ref = rows.get(FORESIGHT)
    if ref is not None and float(ref["objective"]) >= float(best["objective"]) - TIE_MS:
        detail += f"; {FORESIGHT} scores {float(ref['objective']):.2f}, so no strict win is open here"
    out.append(Verdict("lowest-objective", name,
                       int(me["shutdowns"]) <= int(best["shutdowns"]) and lead > TIE_MS, detail))  # fmt: skip
    top = max(others, key=lambda r: float(r["on_time_pct"]))
    gap = float(top["on_time_pct"]) - float(me["on_time_pct"])
    detail = (f"{float(me['on_time_pct']):.1f} % on time against {top['policy']} {float(top['on_time_pct']):.1f} % "
              f"({gap:+.1f} points behind; {ON_TIME_SLACK_PCT:g} allowed)")  # fmt: skip
    cool = [r for r in others if float(r["throttled_pct"]) == 0.0]
    if float(top["throttled_pct"]) > 0.0 and cool:
        best_cool = max(cool, key=lambda r: float(r["on_time_pct"]))
        detail += (f"; {top['policy']} throttles {float(top['throttled_pct']):.1f} %, the best unthrottled is "
                   f"{best_cool['policy']} at {float(best_cool['on_time_pct']):.1f} %")  # fmt: skip
    out.append(Verdict("on-time", name, gap <= ON_TIME_SLACK_PCT, detail))
    return out


def _suite_average(doc: dict[str, Any], policy: str) -> Verdict:
    scenarios = doc["scenarios"]
    averages: dict[str, float] = {}
    for p in {r["policy"] for e in scenarios.values() for r in e["table"]}:
        values = [float(r["objective"]) for e in scenarios.values() for r in e["table"] if r["policy"] == p]
        if len(values) == len(scenarios):  # only policies run on every scenario have a suite average
            averages[p] = sum(values) / len(values)
    if policy not in averages:
        return Verdict("suite-average", None, None, f"{policy} was not run on every scenario")
    baselines = {p: v for p, v in averages.items() if p not in REFERENCES and p != policy and not is_learned(p)}
    if not baselines:
        return Verdict("suite-average", None, None, "no non-learned baseline was run on every scenario")
    name, value = min(baselines.items(), key=lambda kv: kv[1])
    mine = averages[policy]
    lead = 1.0 - mine / value
    return Verdict(
        "suite-average", None, lead >= AVERAGE_LEAD,
        f"{mine:.2f} ms against {name} {value:.2f} ({100 * lead:+.1f} % lower; {100 * AVERAGE_LEAD:g} % asked)",
    )  # fmt: skip


def _near_reference(doc: dict[str, Any], policy: str, main: str) -> Verdict:
    entry = doc["scenarios"].get(main)
    rows = {r["policy"]: r for r in entry["table"]} if entry else {}
    if policy not in rows or FORESIGHT not in rows:
        return Verdict("near-reference", main, None, f"{policy} and {FORESIGHT} were not both run on {main}")
    ratio = float(rows[policy]["objective"]) / float(rows[FORESIGHT]["objective"])
    return Verdict(
        "near-reference", main, ratio <= 1.0 + REFERENCE_SLACK,
        f"{float(rows[policy]['objective']):.2f} ms, {ratio:.3f} x {FORESIGHT} "
        f"({1 + REFERENCE_SLACK:.2f} allowed)",
    )  # fmt: skip


def judge(doc: dict[str, Any], policy: str = "drl", main: str = MAIN_SCENARIO) -> list[Verdict]:
    """Every criterion for ``policy`` on the suite run ``doc``: per scenario, then over the suite.

    :raises ConfigError: the suite never ran ``policy``, or has no scenario ``main``.
    """
    ran = sorted({r["policy"] for e in doc["scenarios"].values() for r in e["table"]})
    if policy not in ran:
        raise ConfigError(f"this suite run has no policy {policy!r}; it ran {', '.join(ran)}")
    if main not in doc["scenarios"]:
        raise ConfigError(f"this suite run has no scenario {main!r}; it has {', '.join(doc['scenarios'])}")
    out = [v for name, entry in doc["scenarios"].items() for v in _scenario_verdicts(name, entry, policy)]
    return [*out, _suite_average(doc, policy), _near_reference(doc, policy, main)]


def witnesses(doc: dict[str, Any]) -> dict[str, list[str]]:
    """Per scenario, every run (any policy, the references included) that meets that scenario's four
    criteria together, judged against the other policies as the policy under test is.

    An empty list says no run of this suite shows the four can be met together there: the
    criteria conflict in that room, or nothing tried reaches them.
    """
    out: dict[str, list[str]] = {}
    for name, entry in doc["scenarios"].items():
        runs = [r["policy"] for r in entry["table"]]
        out[name] = [p for p in runs if all(v.met for v in _scenario_verdicts(name, entry, p))]
    return out


def format_verdicts(verdicts: Sequence[Verdict], policy: str, shown: dict[str, list[str]] | None = None) -> str:
    """A Markdown table of the verdicts and a one-line count; with ``shown`` (:func:`witnesses`),
    which runs meet each scenario's criteria together."""
    mark = {True: "met", False: "**not met**", None: "cannot tell"}
    lines = [f"| criterion | scenario | {policy} | detail |", "|---|---|---|---|"]
    lines += [f"| {v.criterion} | {v.scenario or '(suite)'} | {mark[v.met]} | {v.detail} |" for v in verdicts]
    met = sum(v.met is True for v in verdicts)
    lines.append(f"\n{met} of {len(verdicts)} met, {sum(v.met is False for v in verdicts)} not met, "
                 f"{sum(v.met is None for v in verdicts)} cannot tell.")  # fmt: skip
    if shown is not None:
        lines.append("\nRuns that meet a scenario's four criteria together (any policy of the run, the references "
                     "included, each judged against the others):\n")  # fmt: skip
        lines += [f"- {name}: {', '.join(f'`{p}`' for p in runs) if runs else 'none'}" for name, runs in shown.items()]
    return "\n".join(lines) + "\n"


def verdicts_json(verdicts: Sequence[Verdict]) -> list[dict[str, Any]]:
    """The verdicts as plain dicts (for ``--json``)."""
    return [asdict(v) for v in verdicts]
