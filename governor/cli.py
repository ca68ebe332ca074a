"""``lotus train``, ``lotus eval`` and ``lotus sim``: learn governors in the simulator, compare and run them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from lotus.core.cli import BENCH_HELP, group, requires_extra
from lotus.core.console import print_json, progress_bar

if TYPE_CHECKING:
    from lotus.governor.train import TrainConfig


def register(app: typer.Typer) -> None:
    """Mount the governor's commands on the root ``lotus`` app."""
    app.command("sim", help="Run one simulated rollout of a policy on a board and plot it.")(sim)
    app.command("train", help="Train a governor in the simulator (SB3) and export it to ONNX.")(train)
    app.command("eval", help="Compare governors on identical simulated scenarios: table, JSON, plots.")(evaluate)
    group(app, "bench", BENCH_HELP).command("fixed-clocks")(bench_fixed_clocks)
    app.command("criteria", help="Judge a suite run against issue 11's criteria for one policy (no runs).")(criteria)


def _scenario(**fields: object):  # noqa: ANN202
    from pydantic import ValidationError

    from lotus.core.errors import ConfigError
    from lotus.core.files import format_validation_error
    from lotus.envs.core import Resolved
    from lotus.envs.scenario import Scenario

    try:
        scenario = Scenario.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise ConfigError(f"invalid scenario: {format_validation_error(exc)}") from None
    Resolved.from_scenario(scenario)  # loads board, workload and trace now: errors surface before work starts
    return scenario


RAY_HELP = "run as Ray tasks: auto | local | HOST:PORT | ray://HOST:PORT (the cluster extra)"
DEFAULT_STEPS = 8_000_000  # the shipped policies' budget, every family alike


def train(
    algo: str = typer.Option(None, help="ppo | dqn (default: ppo for drl, dqn for lotus-dac24 and ztt)"),
    policy: str = typer.Option("drl", help="drl | lotus-dac24 | ztt"),
    board: str = typer.Option("orin-nano", help="board profile name or YAML path"),
    power_mode: str = typer.Option(None, help="nvpmodel mode (board default if omitted)"),
    steps: int = typer.Option(
        None, min=1000, help="environment steps, decisions over all boards (default 8M; published: the paper's)"
    ),
    recipe: str = typer.Option("equal", help="equal (drl's rooms and budget for all) | published (as the papers)"),
    reward: str = typer.Option(None, help="reward kind instead of the family's (e.g. objective-projected)"),
    reward_scale: float = typer.Option(1.0, min=1e-6, help="factor on every reward the learner sees"),
    hot_start_prob: float = typer.Option(0.0, min=0.0, max=1.0, help="share of episodes that start near the trip"),
    clocks: str = typer.Option(None, help="drl's clock choices: grid (5x5) | ladder (9 rungs, power-ordered)"),
    served_shares: str = typer.Option(
        None, help="drl's served shares of camera frames, comma-separated in 0.5..1 (e.g. 1,0.83,0.67,0.5)"
    ),
    hold: float = typer.Option(
        None, min=0.0, max=60.0, help="drl: seconds each choice is held (default 1; 0: a decision before every stage)"
    ),
    levels: str = typer.Option(
        None, help="drl: latency levels (comma-separated in (0, 1]) the network may hand the per-stage allocator"
    ),
    hyperparam: list[str] = typer.Option(None, help="KEY=VALUE override of an SB3 hyperparameter (repeatable)"),
    envs: int = typer.Option(32, min=1, help="boards simulated in parallel"),
    admission_in_loop: bool = typer.Option(
        False, help="drl: skip the frames the shield's admission rule refuses in training too, as deployed"
    ),
    out: Path = typer.Option(Path("runs/train"), help="output directory"),
    seed: int = typer.Option(0, help="random seed"),
    resume: bool = typer.Option(False, help="continue from the latest checkpoint in OUT"),
    threads: int = typer.Option(1, min=1, help="torch threads (1 is fastest for these small networks)"),
    seeds: int = typer.Option(
        None, min=1, help="train N seeds (SEED, SEED+1, ...) into OUT/seed-K/, score them, name the median (seeds.json)"
    ),
    ray_address: str = typer.Option(None, "--ray", help=RAY_HELP + " (with --seeds)"),
    workers: int = typer.Option(1, min=1, help="with --seeds and no --ray: seeds trained at once in local processes"),
    profiles: str = typer.Option(
        None,
        help="train each BOARD:MODE of a comma-separated list ('all': the shipped profiles) into OUT/BOARD-MODE/",
    ),
    ship: bool = typer.Option(
        False, help="with --seeds: copy each profile's median seed into the source tree's governor/policies/"
    ),
    json_out: bool = typer.Option(False, "--json", help="print the metadata JSON (seeds.json with --seeds)"),
) -> None:
    """Train a governor with stable-baselines3 and export it to ONNX + metadata JSON."""
    from typing import get_args

    from lotus.core.errors import ConfigError
    from lotus.governor.features import FEATURE_SPECS, RewardKind

    if profiles is not None and seeds is None:
        seeds = 1
    if seeds is None and (ray_address is not None or workers > 1):
        raise ConfigError("--ray and --workers spread several seeds: add --seeds N")
    if ship and seeds is None:
        raise ConfigError("--ship copies the median of several seeds: add --seeds N")
    if seeds is not None and resume:
        raise ConfigError("--resume continues one run: it does not combine with --seeds")

    with requires_extra("train", "lotus train"):
        from lotus.governor.train import (
            PUBLISHED_STEPS,
            TrainConfig,
            artifact_name,
            default_algo,
            set_threads,
            training_spec,
        )
        from lotus.governor.train import train as run_train

    if policy not in FEATURE_SPECS:
        raise ConfigError(f"unknown policy family {policy!r}; choose one of {', '.join(FEATURE_SPECS)}")

    set_threads(threads)
    if steps is None:
        steps = PUBLISHED_STEPS.get(policy, DEFAULT_STEPS) if recipe == "published" else DEFAULT_STEPS
    kinds = get_args(RewardKind)
    if reward is not None and reward not in kinds:
        raise ConfigError(f"unknown reward {reward!r}; choose one of {', '.join(kinds)}")
    cfg = TrainConfig(policy=policy, algo=algo or default_algo(policy), board=board, power_mode=power_mode,
                      steps=steps, n_envs=envs, seed=seed, recipe=recipe, reward=reward, reward_scale=reward_scale,
                      hot_start_prob=hot_start_prob, clocks=clocks, served_shares=_parse_shares(served_shares),
                      admission_in_loop=admission_in_loop, hold_s=hold, levels=_parse_shares(levels, "--levels"),
                      hyperparams=_parse_hyperparams(hyperparam or []))  # fmt: skip
    training_spec(cfg)  # a bad --clocks, --served-shares, --hold or --levels fails here, before any work
    _scenario(board=board, power_mode=power_mode)
    if profiles is not None:
        _train_profiles(cfg, profiles, out, seeds or 1, ray_address, workers, threads, json_out, ship)
        return
    if seeds is not None:
        _train_seeds(cfg, out, seeds, ray_address, workers, threads, json_out, ship)
        return
    meta = run_train(cfg, out, resume=resume, progress=not json_out)
    if json_out:
        print_json(meta)
        return
    print(
        f"trained {policy} ({cfg.algo}, {steps} steps) in {meta['train_seconds']:.0f} s; "
        f"ONNX agrees with SB3 on {100 * meta['export_agreement']:.1f} % of {meta['export_samples']} observations"
    )
    name = artifact_name(cfg)
    print(f"wrote {out / (name + '.onnx')} and {out / (name + '.json')}")


def _parse_shares(text: str | None, option: str = "--served-shares") -> tuple[float, ...] | None:
    """``--served-shares 1,0.83,0.67`` (or ``--levels``): the numbers as floats (None when not given)."""
    from lotus.core.errors import ConfigError

    if text is None:
        return None
    try:
        return tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"{option} wants comma-separated numbers, got {text!r}") from None


def _parse_hyperparams(pairs: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` strings as a dict; values parsed as JSON where they parse (32, 0.99, true)."""
    from lotus.core.errors import ConfigError

    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--hyperparam wants KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _policies_dir() -> Path:
    """governor/policies of the source checkout (``--ship``'s target); refuses an installed package."""
    from lotus.core.errors import ConfigError
    from lotus.governor.artifacts import SHIPPED_DIR

    if not (SHIPPED_DIR.parent.parent / "pyproject.toml").is_file():
        raise ConfigError(
            f"--ship writes into the source tree's governor/policies/, but lotus runs from an installed package "
            f"({SHIPPED_DIR}); leave out --ship and load the policy by its JSON path"
        )
    return SHIPPED_DIR


def _print_seeds(doc: dict, where: Path) -> None:
    for row in doc["seeds"]:
        print(f"  seed {row['seed']:<4} objective {row['objective']:8.2f} ms  on time {row['on_time_pct']:5.1f} %  "
              f"export agreement {100 * row['export_agreement']:.1f} %  {row['train_seconds']:.0f} s")  # fmt: skip
    print(f"median seed: {doc['median_seed']} ({where / doc['median_dir']}); wrote {where / 'seeds.json'}")


def _train_seeds(cfg: TrainConfig, out: Path, seeds: int, ray_address: str | None, workers: int, threads: int,
                 json_out: bool, ship: bool = False) -> None:  # fmt: skip
    from lotus.governor.sweep import ship_median, train_seeds

    dest = _policies_dir() if ship else None
    bar = progress_bar(seeds, f"train {seeds} seeds", unit="seed")
    try:
        doc = train_seeds(cfg, out, seeds, ray_address, workers, threads, progress=lambda _k: bar.update(1))
    finally:
        bar.close()
    shipped = ship_median(doc, out, dest) if dest is not None else None
    if json_out:
        print_json(doc)
        return
    _print_seeds(doc, out)
    if shipped is not None:
        print(f"shipped {shipped}")


def _train_profiles(cfg: TrainConfig, profiles: str, out: Path, seeds: int, ray_address: str | None, workers: int,
                    threads: int, json_out: bool, ship: bool) -> None:  # fmt: skip
    from lotus.governor.sweep import parse_profiles, ship_median, train_profiles

    pairs = parse_profiles(profiles)
    for board, mode in pairs:
        _scenario(board=board, power_mode=mode)  # an unknown board or mode is one error line, before training
    dest = _policies_dir() if ship else None
    n = len(pairs) * seeds
    bar = progress_bar(n, f"train {len(pairs)} profiles x {seeds} seeds", unit="run")
    try:
        doc = train_profiles(cfg, pairs, out, seeds, ray_address, workers, threads, progress=lambda _k: bar.update(1))
    finally:
        bar.close()
    shipped = [ship_median(d, out / label, dest) for label, d in doc["profiles"].items()] if dest is not None else []
    if json_out:
        print_json(doc)
        return
    for label, d in doc["profiles"].items():
        print(f"{label}:")
        _print_seeds(d, out / label)
    for path in shipped:
        print(f"shipped {path}")


def evaluate(
    board: str = typer.Option("orin-nano", help="board profile name or YAML path"),
    power_mode: str = typer.Option(None, help="nvpmodel mode"),
    ambient: float = typer.Option(25.0, help="ambient temperature, C"),
    trace: str = typer.Option("video", help="steady | bursty | video | crowd | CSV path"),
    workload: str = typer.Option("frcnn-lite", help="workload profile name or path"),
    fps: float = typer.Option(30.0, help="camera fps (0 = back-to-back)"),
    deadline: float = typer.Option(None, help="latency target, ms"),
    fan: str = typer.Option("off", help="off | on | auto"),
    trip: float = typer.Option(None, help="passive trip override, C"),
    enclosure: float = typer.Option(1.0, min=0.1, help="factor on heatsink-to-ambient resistance (1.3: sealed box)"),
    init_temp: float = typer.Option(None, help="start temperature of the board, C (default: ambient)"),
    duration: float = typer.Option(None, min=1.0, help="simulated seconds per run (default 1200, or the suite's)"),
    seeds: int = typer.Option(None, min=1, help="seeds per policy, 0..N-1 (default 3, or the suite's)"),
    policies: str = typer.Option(
        None,
        help="comma-separated names: stock, performance, mpc, ztt, lotus-dac24, drl, foresight, foresight-cool "
        "(the reference under the no-throttling constraint), NAME+shield, NAME+shield@M (shield margin M C, "
        "or auto: measured), policy JSON paths, python:PATH_OR_MODULE:CLASS "
        "(default: the suite's, else the classic six plus mpc)",
    ),
    suite: str = typer.Option(None, help="run a named suite instead of one scenario: smoke | standard"),
    scenarios: str = typer.Option(None, help="with --suite: only these comma-separated scenarios of it"),
    merge: str = typer.Option(None, help="combine comma-separated suite output folders into --out (no runs)"),
    ray_address: str = typer.Option(None, "--ray", help=RAY_HELP + " (with --suite)"),
    workers: int = typer.Option(1, min=1, help="with --suite and no --ray: (scenario, seed) runs at once in processes"),
    out: Path = typer.Option(Path("runs/eval"), help="directory for results, tables and plots"),
    json_out: bool = typer.Option(False, "--json", help="print the per-policy, per-seed records as JSON"),
) -> None:
    """Compare governors on identical seeded scenarios: tables with 95 % CIs, JSON records and PNG plots."""
    with requires_extra("sim", "lotus eval"):
        from lotus.governor.evaluate import DEFAULT_POLICIES, plot_eval, seeds_phrase
        from lotus.governor.evaluate import evaluate as run_eval
        from lotus.governor.report import format_suite_table
        from lotus.governor.suite import run_suite
        from lotus.governor.suite import suite as suite_spec

    names = [p.strip() for p in policies.split(",") if p.strip()] if policies else None
    if (ray_address is not None or workers > 1) and (suite is None or merge is not None):
        from lotus.core.errors import ConfigError

        raise ConfigError("--ray and --workers spread a suite's runs: use them with --suite")
    if merge is not None:
        from lotus.governor.suite import merge_suites

        doc = merge_suites([Path(p.strip()) for p in merge.split(",") if p.strip()], out)
        _print_suite(doc, out, json_out)
        return
    if suite is not None:
        all_scenarios, dur, n_seeds, default = suite_spec(suite)
        only = [s.strip() for s in scenarios.split(",") if s.strip()] if scenarios else None
        count = len(only) if only else len(all_scenarios)
        dur, n_seeds, names = duration or dur, seeds or n_seeds, names or list(default)
        runs = count * n_seeds * len(names)  # the foresight search reports its share of one run
        bar = progress_bar(dur * runs, f"suite {suite}")
        try:
            doc = run_suite(suite, out, names, n_seeds, dur, progress=bar.update, only=only, ray_address=ray_address,
                            workers=workers)  # fmt: skip
        finally:
            bar.close()
        _print_suite(doc, out, json_out)
        return
    dur, n_seeds, names = duration or 1200.0, seeds or 3, names or list(DEFAULT_POLICIES)
    scenario = _scenario(board=board, power_mode=power_mode, ambient_c=ambient, trace=trace, workload=workload,
                         fps=fps, deadline_ms=deadline, fan=fan, trip_c=trip, r_scale=enclosure,
                         init_temp_c=init_temp)  # fmt: skip
    runs = len(names) * n_seeds
    bar = progress_bar(dur * runs, "eval")
    try:
        result = run_eval(scenario, names, range(n_seeds), dur, progress=bar.update)
    finally:
        bar.close()
    out.mkdir(parents=True, exist_ok=True)
    doc = {"scenario": scenario.model_dump(mode="json"), "duration_s": dur, "records": result.records,
           "table": result.table}  # fmt: skip
    (out / "results.json").write_text(json.dumps(doc, indent=2, default=str))
    title = f"{board} {ambient:g} C, {trace}, {fps:g} fps ({seeds_phrase(range(n_seeds))})"
    plots = plot_eval(result, out, title)
    if json_out:
        print_json(result.records)
        return
    print(format_suite_table(result.table))
    print(f"wrote {out / 'results.json'} and {', '.join(str(p) for p in plots)}")


def bench_fixed_clocks(
    suite: str = typer.Option("standard", help="the named suite the scenario belongs to"),
    scenario: str = typer.Option(..., help="the suite scenario, e.g. nano15-35c-enclosure"),
    duration: float = typer.Option(None, min=1.0, help="simulated seconds per run (default: the suite's)"),
    seeds: int = typer.Option(1, min=1, help="seeds per clock, 0..N-1"),
    all_clocks: bool = typer.Option(False, help="every joint clock of the table, not drl's 5 x 5 grid"),
    served_shares: str = typer.Option(
        "1", help="shares of the camera frames each clock serves, comma-separated in 0.5..1 (the rest are skipped)"
    ),
    shield: bool = typer.Option(False, help="ask for each clock from inside the safety shield (caps and admission)"),
    json_out: bool = typer.Option(False, "--json", help="print the rows and the summary as JSON"),
) -> None:
    """Hold each joint clock for a whole run: is 0 % throttling feasible here, at what objective?"""
    from lotus.core.errors import ConfigError

    with requires_extra("sim", "lotus bench fixed-clocks"):
        from lotus.governor.fixed_clocks import feasibility, format_fixed_clocks, sweep_fixed_clocks
        from lotus.governor.suite import suite as suite_spec

    scenarios, dur, _, _ = suite_spec(suite)
    by_name = {s.name: s for s in scenarios}
    if scenario not in by_name:
        raise ConfigError(f"suite {suite!r} has no scenario {scenario!r}; it has {', '.join(by_name)}")
    dur = duration or dur
    from lotus.envs.core import Resolved
    from lotus.governor.features import clock_grid

    shares = _parse_shares(served_shares) or (1.0,)
    if any(not 0.5 <= x <= 1.0 for x in shares):
        raise ConfigError(f"--served-shares must lie in 0.5..1, got {served_shares!r}")
    res = Resolved.from_scenario(by_name[scenario].scenario)
    count = (res.actions.n if all_clocks else len(clock_grid(res.actions))) * len(shares)
    bar = progress_bar(dur * count * seeds, f"fixed clocks {scenario}")
    try:
        rows = sweep_fixed_clocks(
            by_name[scenario].scenario, dur, range(seeds), all_clocks, progress=bar.update, served_shares=shares,
            shield=shield,
        )  # fmt: skip
    finally:
        bar.close()
    if json_out:
        print_json({"scenario": scenario, "duration_s": dur, "shielded": shield, "rows": rows, **feasibility(rows)})
        return
    print(f"{scenario}: {dur:g} s, seeds 0..{seeds - 1}{', inside the shield' if shield else ''}\n")
    print(format_fixed_clocks(rows))


def criteria(
    folder: Path = typer.Argument(..., help="a `lotus eval --suite` output folder (holds suite.json)"),
    policy: str = typer.Option("drl", help="the policy under test, as named in the suite"),
    main: str = typer.Option("nano15-25c-video", help="the main scenario, where it must be near the reference"),
    out: Path = typer.Option(None, help="also write the table to this Markdown file"),
    strict: bool = typer.Option(False, help="exit with status 1 unless every criterion is met"),
    json_out: bool = typer.Option(False, "--json", help="print the verdicts as JSON"),
) -> None:
    """Per scenario: no throttling, no shutdown, the lowest objective, on time within a point; then the suite's
    average against the best non-learned baseline and the main scenario against the reference."""
    from lotus.governor.criteria import format_verdicts, judge, load_suite, verdicts_json, witnesses

    doc = load_suite(folder)
    verdicts = judge(doc, policy, main)
    text = format_verdicts(verdicts, policy, witnesses(doc))
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(f"# `{policy}` against issue 11's criteria on `{folder}`\n\n" + text)
    if json_out:
        print_json(verdicts_json(verdicts))
    else:
        print(text, end="")
    if strict and not all(v.met for v in verdicts):
        raise typer.Exit(1)


def _print_suite(doc: dict, out: Path, json_out: bool) -> None:
    from lotus.governor.criteria import MAIN_SCENARIO, format_verdicts, judge, witnesses
    from lotus.governor.report import format_suite_table

    verdicts = None
    ran = {r["policy"] for e in doc["scenarios"].values() for r in e["table"]}
    if "drl" in ran and MAIN_SCENARIO in doc["scenarios"]:  # the run judges itself (`lotus criteria`)
        verdicts = judge(doc, "drl")
        text = format_verdicts(verdicts, "drl", witnesses(doc))
        (out / "criteria.md").write_text("# `drl` against issue 11's criteria\n\n" + text)
    if json_out:
        print_json(doc["ranking"])
        return
    for name, entry in doc["scenarios"].items():
        print(f"\n### {name}{' (held out)' if entry['held_out'] else ''}\n")
        print(format_suite_table(entry["table"]))
    print("\nranking (mean rank of the objective over scenarios; foresight excluded):")
    for row in doc["ranking"]:
        print(f"  {row['policy']:<22} mean rank {row['mean_rank']:.2f}  wins {row['wins']}")
    if verdicts is not None:
        met = sum(v.met is True for v in verdicts)
        print(f"drl meets {met} of {len(verdicts)} of issue 11's criteria here ({out / 'criteria.md'})")
    print(f"wrote {out / 'suite.json'} and one folder per scenario")


def sim(
    board: str = typer.Option("orin-nano", help="board profile name or YAML path"),
    policy: str = typer.Option("performance", help="performance | powersave | stock | drl | fixed:<khz>,<hz> | ..."),
    ambient: float = typer.Option(25.0, help="ambient temperature, C"),
    duration: float = typer.Option(600.0, min=1.0, help="simulated seconds"),
    out: Path = typer.Option(Path("runs/sim"), help="directory for the CSV and the PNG plot"),
    power_mode: str = typer.Option(None, help="nvpmodel mode (board default if omitted)"),
    workload: str = typer.Option("frcnn-lite", help="workload profile name or YAML/manifest path"),
    trace: str = typer.Option("video", help="steady | bursty | video | path to a CSV trace"),
    fps: float = typer.Option(None, help="camera fps (0 = back-to-back; default from the workload)"),
    deadline: float = typer.Option(None, help="latency target, ms (default from the workload)"),
    fan: str = typer.Option("off", help="off | on | auto"),
    trip: float = typer.Option(None, help="passive trip point override, C"),
    enclosure: float = typer.Option(1.0, min=0.1, help="factor on heatsink-to-ambient resistance (1.3: sealed box)"),
    init_temp: float = typer.Option(None, help="start temperature of the board, C (default: ambient)"),
    decision: str = typer.Option("stage", help="stage (2 decisions per frame) | frame"),
    seed: int = typer.Option(0, help="random seed"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON document instead of a table"),
) -> None:
    """Run one rollout and report latency, temperatures, throttling and energy."""
    from pydantic import ValidationError

    from lotus.core.errors import ConfigError
    from lotus.core.files import format_validation_error
    from lotus.envs.core import Resolved
    from lotus.envs.scenario import Scenario
    from lotus.governor.registry import build_policy

    with requires_extra("sim", "lotus sim"):
        from lotus.governor.report import format_table, plot_rollout, summarize, write_csv
        from lotus.governor.rollout import rollout

    try:
        scenario = Scenario.model_validate({
            "board": board, "power_mode": power_mode, "ambient_c": ambient, "workload": workload, "trace": trace,
            "fps": fps, "deadline_ms": deadline, "fan": fan, "trip_c": trip, "decision": decision,
            "r_scale": enclosure, "init_temp_c": init_temp,
        })  # fmt: skip
    except ValidationError as exc:
        raise ConfigError(f"invalid scenario: {format_validation_error(exc)}") from None
    res = Resolved.from_scenario(scenario)  # loads and validates board, workload
    pol = build_policy(policy, res.actions)
    bar = progress_bar(duration, f"sim {pol.name}")
    try:
        rec = rollout(pol, scenario, duration, seed=seed, progress=bar.update)
    finally:
        bar.close()
    summary = {"policy": pol.name, "board": res.board.name, "ambient_c": ambient, **summarize(rec)}
    out.mkdir(parents=True, exist_ok=True)
    csv_path, png_path = out / "rollout.csv", out / "rollout.png"
    write_csv(rec, csv_path)
    title = f"{pol.name} on {res.board.name} at {ambient:g} C ({scenario.trace}, fan {fan})"
    plot_rollout(rec, png_path, title)
    summary.update(csv=str(csv_path), plot=str(png_path), shutdown=rec.shutdown)
    if json_out:
        print_json(summary)
        return
    print(format_table([summary]))
    if rec.shutdown:
        print("the board reached its shutdown trip point: episode ended early")
    print(f"wrote {csv_path} and {png_path}")
