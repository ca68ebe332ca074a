"""``lotus bench env``: the simulator's speed, single env and batched, side by side."""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import typer

from lotus.core.cli import BENCH_HELP, group, requires_extra
from lotus.core.console import print_json

SINGLE_TARGET = 20_000  # single-env steps/s (docs/simulator.md section 7)
BATCHED_TARGET = 200_000  # batched board-steps/s at N = 64


def register(app: typer.Typer) -> None:
    """Mount the simulator's commands on the root ``lotus`` app."""
    group(app, "bench", BENCH_HELP).command("env")(bench_env)


def bench_env(
    steps: int = typer.Option(20000, min=100, help="single-env steps per repeat"),
    boards: int = typer.Option(64, min=1, help="boards in the batched env"),
    batched_steps: int = typer.Option(2000, min=10, help="batched steps per repeat"),
    repeats: int = typer.Option(5, min=1, help="interleaved repeats of both timings"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON document"),
) -> None:
    """Simulator speed: single-env steps/s and batched board-steps/s, interleaved and repeated.

    Prints the median of the repeats with their range, the targets, and the load average: a
    machine that is busy with other work cannot test the targets.
    """
    import numpy as np

    with requires_extra("sim", "lotus bench env"):
        from lotus.envs.detector_env import TwoStageDetectorEnv
        from lotus.envs.vector import BatchedDetectorEnv

    env = TwoStageDetectorEnv(episode_frames=10**9)
    env.reset(seed=0)
    venv = BatchedDetectorEnv(boards, episode_frames=10**9)
    venv.reset(seed=0)
    rng = np.random.default_rng(0)
    for a in rng.integers(0, env.actions.n, size=200).tolist():  # warm-up
        env.step(a)
    for a in rng.integers(0, venv.actions.n, size=(20, boards)):
        venv.step(a)
    load_before = os.getloadavg()[0]
    single: list[float] = []
    batched: list[float] = []
    for _ in range(repeats):  # interleaved, so a burst of load hits both series alike
        actions = rng.integers(0, env.actions.n, size=steps).tolist()
        t0 = time.perf_counter()
        for a in actions:
            env.step(a)
        single.append(steps / (time.perf_counter() - t0))
        batch_actions = rng.integers(0, venv.actions.n, size=(batched_steps, boards))
        t0 = time.perf_counter()
        for a in batch_actions:
            venv.step(a)
        batched.append(batched_steps * boards / (time.perf_counter() - t0))
    load = max(load_before, os.getloadavg()[0])
    doc: dict[str, Any] = {
        "single_steps_per_s": round(statistics.median(single), 1),
        "batched_board_steps_per_s": round(statistics.median(batched), 1),
        "single_runs": [round(v, 1) for v in single],
        "batched_runs": [round(v, 1) for v in batched],
        "boards": boards,
        "repeats": repeats,
        "load_average_1min": round(load, 2),
        "cpus": os.cpu_count(),
        "targets": {"single_steps_per_s": SINGLE_TARGET, "batched_board_steps_per_s": BATCHED_TARGET},
    }
    if json_out:
        print_json(doc)
        return
    print(f"{'':<22}{'median':>14}{'min':>12}{'max':>12}   target")
    _row("single env", single, "steps/s", SINGLE_TARGET)
    _row(f"batched env (N={boards})", batched, "board-steps/s", BATCHED_TARGET if boards == 64 else None)
    print(f"{repeats} interleaved repeats; 1-min load average {load:.2f} on {os.cpu_count()} CPUs")
    if load > 0.5:
        print("the machine was busy during the run: rerun on an idle one before quoting these figures")


def _row(label: str, values: list[float], unit: str, target: int | None) -> None:
    med = statistics.median(values)
    verdict = "" if target is None else f"   {target:,} ({'met' if med >= target else 'not met'})"
    print(f"{label:<22}{med:>14,.0f}{min(values):>12,.0f}{max(values):>12,.0f}   {unit}{verdict}")
