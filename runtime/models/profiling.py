"""Stage latencies measured on this machine and the simulator workload profile fitted to them.

:func:`measure` times a loaded pipeline: stage 1 (pre-processing + graph) on a warm-up image and,
for two-stage kinds, stage 2 at several proposal counts (synthetic proposals of the kind's form).
:func:`fit_workload` turns the medians into the :class:`~lotus.envs.workload.WorkloadProfile`
the simulator and the governor use: ``t_ms = cpu_mcycles / f_cpu_ghz + gpu_mcycles / f_gpu_ghz +
mem_ms``, with stage 2 = a fixed part + a part per proposal (least squares over the counts).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from lotus.envs.workload import StageCost, WorkloadProfile
from lotus.runtime.models.base import ModelPipeline, Stage1Result

CPU_GHZ = 2.0  # clock the measured CPU times are converted at, GHz
GPU_SHARE = 0.8  # share of each stage's compute assumed to run on the GPU of a Jetson-class board
MEM_SHARE = 0.05  # share of each stage's time assumed memory-bound


@dataclass(frozen=True)
class Timings:
    """Medians measured on this machine, ms; ``proposals``: what stage 1 found on the warm-up image."""

    stage1_ms: float
    stage2_ms: dict[int, float]
    proposals: int


def median_ms(fn: Callable[[], object], runs: int = 5, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` over ``runs`` calls after ``warmup`` untimed ones, ms."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return float(statistics.median(times))


def synthetic_stage1(pipe: ModelPipeline, result: Stage1Result, n: int, seed: int = 0) -> Stage1Result:
    """``result`` with ``n`` random proposals in its kind's form: boxes ``[n, 4]``, or quads ``[n, 4, 2]``."""
    rng = np.random.default_rng(seed)
    if result.proposals.ndim == 3:  # text quads in image px (ppocr)
        h, w = result.state["image"].shape[:2]
        x0, y0 = rng.uniform(0, w * 0.7, n), rng.uniform(0, h * 0.9, n)
        x1, y1 = x0 + rng.uniform(8, w * 0.3, n), y0 + rng.uniform(8, h * 0.1, n)
        quads = np.stack([np.stack([x0, y0], 1), np.stack([x1, y0], 1), np.stack([x1, y1], 1),
                          np.stack([x0, y1], 1)], axis=1).astype(np.float32)  # fmt: skip
        return Stage1Result(n, quads, np.ones(n, np.float32), dict(result.state))
    side = float(getattr(pipe, "input_size", 320))
    xy = rng.uniform(0, side * 0.75, (n, 2))
    wh = rng.uniform(side * 0.05, side * 0.25, (n, 2))
    boxes = np.concatenate([xy, np.minimum(xy + wh, side)], axis=1).astype(np.float32)
    return Stage1Result(n, boxes, np.ones(n, np.float32), dict(result.state))


def measure(pipe: ModelPipeline, counts: list[int], runs: int = 5) -> Timings:
    """Stage-1 and (two-stage kinds) stage-2 medians at each proposal count in ``counts``.

    A single-stage model's "stage 2" is its numpy post-processing, timed once at count 0.
    """
    image = pipe.warmup_image()
    stage1_ms = median_ms(lambda: pipe.run_stage1(pipe.preprocess(image)), runs)
    result = pipe.run_stage1(pipe.preprocess(image))
    if not pipe.two_stage:
        return Timings(stage1_ms, {0: median_ms(lambda: pipe.run_stage2(result), runs)}, result.num_proposals)
    stage2 = {}
    for n in counts:
        fake = synthetic_stage1(pipe, result, n)
        stage2[n] = median_ms(partial(pipe.run_stage2, fake), max(3, runs // 2), warmup=1)
    return Timings(stage1_ms, stage2, result.num_proposals)


def fit_stage2(stage2_ms: dict[int, float]) -> tuple[float, float]:
    """(fixed ms, ms per proposal) of the least-squares line through ``{N: ms}``, both clipped at 0."""
    ns = np.array(list(stage2_ms), dtype=np.float64)
    ms = np.array(list(stage2_ms.values()), dtype=np.float64)
    if len(ns) < 2 or np.ptp(ns) == 0:
        return max(float(ms.mean()) if len(ms) else 0.0, 0.0), 0.0
    per, fixed = np.polyfit(ns, ms, 1)
    if per < 0:  # noise on a flat stage: all of it is fixed cost
        return max(float(ms.mean()), 0.0), 0.0
    if fixed < 0:
        return 0.0, float(np.sum(ns * ms) / np.sum(ns * ns))
    return float(fixed), float(per)


def stage_cost(
    ms: float, cpu_ghz: float = CPU_GHZ, gpu_share: float = GPU_SHARE, mem_share: float = MEM_SHARE
) -> StageCost:
    """A CPU-measured time (ms at ``cpu_ghz``) split into memory-bound ms, GPU mcycles (1 GHz) and CPU mcycles."""
    return StageCost.from_measured_ms(ms, cpu_ghz, gpu_share, mem_share)


def fit_workload(
    name: str,
    timings: Timings,
    two_stage: bool,
    max_proposals: int,
    deadline_ms: float | None = None,
    threads: int = 1,
    fps: float = 30.0,
    jitter: float = 0.08,
) -> WorkloadProfile:
    """The workload profile of measured ``timings``.

    :param two_stage: fit stage 2 as fixed + per-proposal cost (else it is all fixed: post-processing)
    :param max_proposals: the most proposals stage 1 passes on (1 for single-stage models)
    :param deadline_ms: the per-frame target, ms; None: twice the typical frame, at least 33.3
    """
    if two_stage:
        fixed, per = fit_stage2(timings.stage2_ms)
        how = f"stage-2 fit {fixed:.4g} ms + {per:.4g} ms/proposal over N={sorted(timings.stage2_ms)}"
    else:
        fixed, per = float(np.mean(list(timings.stage2_ms.values()) or [0.0])), 0.0
        how = "single stage: stage 2 is the numpy post-processing"
    mean = float(min(max(timings.proposals, 1), max_proposals)) if two_stage else 1.0
    frame_ms = timings.stage1_ms + fixed + per * mean
    deadline = deadline_ms if deadline_ms is not None else max(33.3, round(2 * frame_ms, 1))
    return WorkloadProfile(
        name=name,
        description=(
            f"measured by lotus models import with onnxruntime on this CPU ({threads} thread(s)); {how}. "
            f"Times are converted at an assumed {CPU_GHZ} GHz CPU clock; assumed split on a Jetson-class board: "
            f"{MEM_SHARE:.0%} memory-bound, {GPU_SHARE:.0%} of the rest on the GPU (mcycles at 1 GHz), "
            "the remainder on the CPU."
        ),
        stage1=stage_cost(timings.stage1_ms),
        stage2_fixed=stage_cost(fixed),
        stage2_per_proposal=stage_cost(per),
        jitter_sigma=jitter,
        max_proposals=max(int(max_proposals), 1),
        mean_proposals=mean,
        default_fps=fps,
        default_deadline_ms=deadline,
    )
