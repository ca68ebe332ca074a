"""Workload profiles (``envs.workload.WorkloadProfile``) from latencies measured on this CPU."""

from __future__ import annotations

from lotus.envs.workload import StageCost, WorkloadProfile


def placeholder_workload() -> WorkloadProfile:
    """An all-zero profile for manifests that are only used to run, not to simulate."""
    zero = StageCost(cpu_mcycles=0, gpu_mcycles=0, mem_ms=0)
    return WorkloadProfile(
        name="draft",
        stage1=zero,
        stage2_fixed=zero,
        stage2_per_proposal=zero,
        jitter_sigma=0,
        max_proposals=1,
        mean_proposals=1,
        default_fps=0,
        default_deadline_ms=1,
    )


def workload_from_ms(
    name: str,
    description: str,
    stage1_ms: float,
    stage2_fixed_ms: float,
    stage2_per_ms: float,
    cpu_ghz: float,
    gpu_share: float,
    max_proposals: int,
    mean_proposals: float,
    deadline_ms: float,
    fps: float = 30.0,
    jitter: float = 0.08,
    mem_share: float = 0.05,
) -> WorkloadProfile:
    """Workload profile from CPU-measured stage times (ms at ``cpu_ghz``).

    Each time is split: ``mem_share`` memory-bound, then ``gpu_share`` of the rest as GPU work
    (expressed at 1 GHz GPU clock) and the remainder as CPU cycles at ``cpu_ghz``.
    """

    def cost(ms: float) -> StageCost:
        return StageCost.from_measured_ms(ms, cpu_ghz, gpu_share, mem_share)

    return WorkloadProfile(
        name=name,
        description=description,
        stage1=cost(stage1_ms),
        stage2_fixed=cost(stage2_fixed_ms),
        stage2_per_proposal=cost(stage2_per_ms),
        jitter_sigma=jitter,
        max_proposals=max_proposals,
        mean_proposals=mean_proposals,
        default_fps=fps,
        default_deadline_ms=deadline_ms,
    )
