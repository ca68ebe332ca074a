"""``lotus sim``: one simulated rollout of a policy, with a summary table, a CSV and a plot."""

from __future__ import annotations

from pathlib import Path

import typer

from runtime.cli._common import print_json, progress_bar


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
    decision: str = typer.Option("stage", help="stage (2 decisions per frame) | frame"),
    seed: int = typer.Option(0, help="random seed"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON document instead of a table"),
) -> None:
    """Run one rollout and report latency, temperatures, throttling and energy."""
    from pydantic import ValidationError

    from envs.board import format_validation_error
    from envs.core import Resolved
    from envs.errors import ConfigError
    from envs.scenario import Scenario
    from governor.registry import build_policy
    from governor.report import format_table, plot_rollout, summarize, write_csv
    from governor.rollout import rollout

    try:
        scenario = Scenario(
            board=board, power_mode=power_mode, ambient_c=ambient, workload=workload, trace=trace, fps=fps,
            deadline_ms=deadline, fan=fan, trip_c=trip, decision=decision,
        )  # fmt: skip
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
