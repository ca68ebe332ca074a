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
BUSY_CPUS = 0.2  # other processes' CPUs (or the hypervisor's steal) above which the figures are not quoted


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

    Prints the median of the repeats with their range, the targets, and how busy the machine
    was with other work (other processes' CPU time and the hypervisor's steal, in CPUs, over the
    timed part; the load average counts this run too): a busy machine cannot test the targets.
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
    other = _OtherWork()
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
    other_cpus, steal_cpus = other.cpus()
    busy = other_cpus > BUSY_CPUS or steal_cpus > BUSY_CPUS
    doc: dict[str, Any] = {
        "single_steps_per_s": round(statistics.median(single), 1),
        "batched_board_steps_per_s": round(statistics.median(batched), 1),
        "single_runs": [round(v, 1) for v in single],
        "batched_runs": [round(v, 1) for v in batched],
        "boards": boards,
        "repeats": repeats,
        "other_cpus_busy": round(other_cpus, 3),
        "steal_cpus": round(steal_cpus, 3),
        "machine_busy": busy,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpus": os.cpu_count(),
        "targets": {"single_steps_per_s": SINGLE_TARGET, "batched_board_steps_per_s": BATCHED_TARGET},
    }
    if json_out:
        print_json(doc)
        return
    print(f"{'':<22}{'median':>14}{'min':>12}{'max':>12}   target")
    _row("single env", single, "steps/s", SINGLE_TARGET)
    _row(f"batched env (N={boards})", batched, "board-steps/s", BATCHED_TARGET if boards == 64 else None)
    print(
        f"{repeats} interleaved repeats on {os.cpu_count()} CPUs; other work during them: {other_cpus:.2f} CPUs busy, "
        f"{steal_cpus:.2f} stolen by the hypervisor"
    )
    if busy:
        print("the machine was busy during the run: rerun on an idle one before quoting these figures")


class _OtherWork:
    """CPU time the rest of the machine used since construction: other processes and hypervisor steal."""

    def __init__(self) -> None:
        import psutil

        self._psutil = psutil
        self._me = psutil.Process()
        self._start = self._sample()

    def _sample(self) -> tuple[float, float, float, float]:
        t = self._psutil.cpu_times()
        busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
        mine = self._me.cpu_times()
        return time.perf_counter(), busy, mine.user + mine.system, getattr(t, "steal", 0.0)

    def cpus(self) -> tuple[float, float]:
        """``(other processes' busy CPUs, stolen CPUs)``, averaged over the time since construction."""
        wall0, busy0, mine0, steal0 = self._start
        wall1, busy1, mine1, steal1 = self._sample()
        wall = max(wall1 - wall0, 1e-9)
        return max(busy1 - busy0 - (mine1 - mine0), 0.0) / wall, max(steal1 - steal0, 0.0) / wall


def _row(label: str, values: list[float], unit: str, target: int | None) -> None:
    med = statistics.median(values)
    verdict = "" if target is None else f"   {target:,} ({'met' if med >= target else 'not met'})"
    print(f"{label:<22}{med:>14,.0f}{min(values):>12,.0f}{max(values):>12,.0f}   {unit}{verdict}")
