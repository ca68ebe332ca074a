"""Ablation O against the suite: each hot-room seed, the shipped drl and mpc+shield, paired by evaluation seed.

Run from the repository root after ``lotus eval --suite standard --scenarios
nano15-35c-enclosure,nano15-30c-variant,nano15-25c-video --seeds 5 --policies
OUT/seed-0/drl.json,OUT/seed-1/drl.json,OUT/seed-2/drl.json --out EVAL``:
``python docs/results/drl-hot-rooms/compare.py [EVAL/suite.json]`` (default: the committed
``docs/results/drl-hot-rooms/suite.json``, that run with the seeds renamed; the suite's own records come from
``docs/results/suite-standard/suite.json``; evaluation is deterministic, so seeds pair exactly).
Output: ``compare.txt``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lotus.governor.metrics import mean_ci95

SUITE = Path("docs/results/suite-standard/suite.json")
PROBE = Path("docs/results/drl-hot-rooms/suite.json")
BASELINES = ("drl", "performance+shield", "mpc+shield")


def main(probe: Path) -> None:
    ours, theirs = json.loads(probe.read_text()), json.loads(SUITE.read_text())
    for room, entry in ours["scenarios"].items():
        recs = entry["records"] + [r for r in theirs["scenarios"][room]["records"] if r["policy"] in BASELINES]
        by_policy: dict[str, dict[int, dict]] = {}
        for r in recs:
            by_policy.setdefault(r["policy"], {})[r["seed"]] = r
        ref = by_policy["mpc+shield"]
        sys.stdout.write(f"{room}\n")
        for policy, seeds in by_policy.items():
            obj, ci = mean_ci95([r["objective"] for r in seeds.values()])
            diff, dci = mean_ci95([seeds[s]["objective"] - ref[s]["objective"] for s in sorted(seeds)])
            on_time = mean_ci95([r["on_time_pct"] for r in seeds.values()])[0]
            hot = mean_ci95([r["throttled_pct"] for r in seeds.values()])[0]
            name = policy.replace("/tmp/runs/hot500/", "hot-rooms ").replace("/drl.json", "")
            sys.stdout.write(f"  {name:24s} {obj:6.2f} ± {ci:4.2f} ms  on time {on_time:5.1f} %  throttled {hot:4.1f} %"
                             f"  minus mpc+shield {diff:+.2f} ± {dci:.2f}\n")  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else PROBE)
