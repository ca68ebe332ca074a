"""Plain helpers shared by the simulator tests (imported by name: tests use rootdir imports)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml


def compute_bound_workload(tmp_path: Path, cpu_mcycles: float, gpu_mcycles: float) -> Path:
    """A workload whose stages are purely CPU- or GPU-bound, no memory time, no jitter."""
    stage = {"cpu_mcycles": cpu_mcycles, "gpu_mcycles": gpu_mcycles, "mem_ms": 0.0}
    data = {
        "name": "compute-bound",
        "stage1": stage,
        "stage2_fixed": stage,
        "stage2_per_proposal": {"cpu_mcycles": 0.0, "gpu_mcycles": 0.0, "mem_ms": 0.0},
        "jitter_sigma": 0.0,
        "max_proposals": 10,
        "mean_proposals": 5,
        "default_fps": 0,
        "default_deadline_ms": 100,
    }
    path = tmp_path / f"compute-{cpu_mcycles:g}-{gpu_mcycles:g}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def board_variant(tmp_path: Path, name: str = "orin-nano", **updates: object) -> Path:
    """A copy of a shipped board profile with top-level fields replaced (e.g. ``actuation={}``), as YAML."""
    from lotus.envs.board import BOARDS_DIR

    data = yaml.safe_load((BOARDS_DIR / f"{name}.yaml").read_text())
    data.update(updates)
    path = tmp_path / f"{name}-variant.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def run_constant(env, action: int, duration_s: float, seed: int = 0) -> dict[str, np.ndarray]:  # noqa: ANN001
    """Step ``env`` with one action for ``duration_s`` simulated seconds; per-step info as arrays."""
    env.reset(seed=seed)
    keys = ("time_s", "cpu_temp_c", "gpu_temp_c", "throttled", "frame_done", "latency_ms", "applied_cpu_khz",
            "applied_gpu_hz")  # fmt: skip
    rec: dict[str, list] = {k: [] for k in keys}
    rec["terminated"] = []
    while True:
        _, _, terminated, truncated, info = env.step(action)
        for k in keys:
            rec[k].append(info[k])
        rec["terminated"].append(terminated)
        if terminated or truncated or info["time_s"] >= duration_s:
            break
    return {k: np.asarray(v) for k, v in rec.items()}
