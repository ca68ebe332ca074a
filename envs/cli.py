"""``lotus bench env``: the simulator's speed, single env and batched, side by side."""

from __future__ import annotations

import time

import typer

from lotus.core.cli import BENCH_HELP, group, requires_extra
from lotus.core.console import print_json


def register(app: typer.Typer) -> None:
    """Mount the simulator's commands on the root ``lotus`` app."""
    group(app, "bench", BENCH_HELP).command("env")(bench_env)


def bench_env(
    steps: int = typer.Option(20000, min=100, help="single-env steps to time"),
    boards: int = typer.Option(64, min=1, help="boards in the batched env"),
    batched_steps: int = typer.Option(2000, min=10, help="batched steps to time"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON document"),
) -> None:
    """Simulator speed: single-env steps/s and batched board-steps/s, side by side."""
    import numpy as np

    with requires_extra("sim", "lotus bench env"):
        from lotus.envs.detector_env import TwoStageDetectorEnv
        from lotus.envs.vector import BatchedDetectorEnv

    env = TwoStageDetectorEnv(episode_frames=10**9)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, env.actions.n, size=steps).tolist()
    for a in actions[:200]:
        env.step(a)
    t0 = time.perf_counter()
    for a in actions:
        env.step(a)
    single = steps / (time.perf_counter() - t0)
    venv = BatchedDetectorEnv(boards, episode_frames=10**9)
    venv.reset(seed=0)
    batch_actions = rng.integers(0, venv.actions.n, size=(batched_steps, boards))
    for a in batch_actions[:20]:
        venv.step(a)
    t0 = time.perf_counter()
    for a in batch_actions:
        venv.step(a)
    batched = batched_steps * boards / (time.perf_counter() - t0)
    doc = {"single_steps_per_s": round(single, 1), "batched_board_steps_per_s": round(batched, 1), "boards": boards}
    if json_out:
        print_json(doc)
        return
    print(f"{'single env':<22}{single:>14,.0f} steps/s")
    print(f"{'batched env (N=' + str(boards) + ')':<22}{batched:>14,.0f} board-steps/s")
