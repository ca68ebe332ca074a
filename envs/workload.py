"""Workload profiles: what one frame of a two-stage detector costs on a board.

Each stage's time is split into a CPU-bound part (cycles), a GPU-bound part (cycles) and a
memory-bound part (milliseconds that do not scale with either clock)::

    t_stage_ms = cpu_mcycles / f_cpu_ghz + gpu_mcycles / f_gpu_ghz + mem_ms

Stage 2 costs a fixed part plus a part per proposal. Frame times get log-normal jitter.
Profiles are YAML files in ``envs/profiles/workloads/`` (or any path), or the ``workload``
section of a model manifest in a model repository.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lotus.core.errors import ProfileError
from lotus.core.files import format_validation_error, read_yaml_mapping
from lotus.envs.board import resolve_profile_path

WORKLOADS_DIR = Path(__file__).parent / "profiles" / "workloads"


class StageCost(BaseModel):
    """Cost of a piece of work, split by what bounds it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu_mcycles: float = Field(ge=0, description="CPU-bound work, millions of cycles")
    gpu_mcycles: float = Field(ge=0, description="GPU-bound work, millions of cycles")
    mem_ms: float = Field(ge=0, description="memory-bound time, independent of CPU/GPU clocks, ms")

    @classmethod
    def from_measured_ms(cls, ms: float, cpu_ghz: float, gpu_share: float, mem_share: float) -> StageCost:
        """A time measured on a CPU (``ms`` at ``cpu_ghz``) split into memory-bound ms, then ``gpu_share``
        of the rest as GPU work (mcycles at 1 GHz) and the remainder as CPU mcycles."""
        mem = ms * mem_share
        compute = ms - mem
        return cls(
            cpu_mcycles=round(compute * (1 - gpu_share) * cpu_ghz, 4),
            gpu_mcycles=round(compute * gpu_share * 1.0, 4),
            mem_ms=round(mem, 4),
        )


class WorkloadProfile(BaseModel):
    """Per-frame cost model of a two-stage pipeline (stage 1 -> proposals -> stage 2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    stage1: StageCost
    stage2_fixed: StageCost
    stage2_per_proposal: StageCost
    jitter_sigma: float = Field(ge=0, le=1, description="sigma of the log-normal factor on stage times")
    max_proposals: int = Field(ge=1, description="stage 1 never passes more proposals than this")
    mean_proposals: float = Field(gt=0, description="typical proposals per frame, for generators")
    default_fps: float = Field(ge=0, description="camera rate; 0 means back-to-back frames")
    default_deadline_ms: float = Field(gt=0, description="latency target per frame, ms")

    def stage_ms(
        self, stage: int, proposals: np.ndarray, f_cpu_ghz: np.ndarray, f_gpu_ghz: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Noise-free (cpu_ms, gpu_ms, mem_ms) of ``stage`` for arrays of boards. Shapes ``[N]``."""
        if stage == 1:
            c = self.stage1
            return (
                np.full_like(f_cpu_ghz, c.cpu_mcycles) / f_cpu_ghz,
                np.full_like(f_gpu_ghz, c.gpu_mcycles) / f_gpu_ghz,
                np.full_like(f_cpu_ghz, c.mem_ms),
            )
        fx, pp = self.stage2_fixed, self.stage2_per_proposal
        n = np.asarray(proposals, dtype=np.float64)
        return (
            (fx.cpu_mcycles + pp.cpu_mcycles * n) / f_cpu_ghz,
            (fx.gpu_mcycles + pp.gpu_mcycles * n) / f_gpu_ghz,
            fx.mem_ms + pp.mem_ms * n,
        )


def available_workloads() -> list[str]:
    """Names of the shipped workload profiles."""
    return sorted(p.stem for p in WORKLOADS_DIR.glob("*.yaml"))


@lru_cache(maxsize=32)
def _load_workload_cached(path: Path) -> WorkloadProfile:
    data = read_yaml_mapping(path, "workload profile", ProfileError)
    if "workload" in data and "stage1" not in data:  # a model manifest: use its workload section
        data = data["workload"]
    try:
        return WorkloadProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"workload profile {path} is invalid: {format_validation_error(exc)}") from None


def load_workload(name_or_path: str | Path) -> WorkloadProfile:
    """Load a workload profile by shipped name (``frcnn-lite``) or YAML path (profile or manifest)."""
    return _load_workload_cached(resolve_profile_path(name_or_path, WORKLOADS_DIR, "workload").resolve())
