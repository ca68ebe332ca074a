"""Ablation O: the shipped drl recipe trained only in rooms like the suite's sealed box.

An upper-bound probe, not a shippable recipe: if PPO trained on the test room's own neighbourhood
(35 C, heatsink resistance x1.3, starts near the trip) cannot beat the top clocks or ``mpc+shield``
there, the ceiling is the room behind the shield, not the breadth of the training rooms.

Run from the repository root: ``python docs/results/drl-hot-rooms/train_hot.py SEED STEPS OUT``
(about 5 minutes per 200k held seconds on one core). The export lands in ``OUT/seed-SEED/drl.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lotus.envs.scenario import Randomization
from lotus.governor import train as train_mod

HOT_ROOMS = Randomization.model_validate(
    {
        "ambient_c": (30.0, 40.0),
        "r_scale": (1.15, 1.45),
        "c_scale": (0.8, 1.2),
        "workload_scale": (0.8, 1.2),
        "init_heat": (0.6, 1.1),  # from about 75 C to 2 C past "8 C under the trip" at 35 C
        "traces": ("steady", "bursty", "video", "regimes"),
    }
)


def main(seed: int, steps: int, out: Path) -> None:
    train_mod.DRL_RANDOMIZATION = HOT_ROOMS  # training_scenario reads the module constant
    cfg = train_mod.TrainConfig(policy="drl", steps=steps, n_envs=64, seed=seed, admission_in_loop=True)
    train_mod.set_threads(1)
    meta = train_mod.train(cfg, out / f"seed-{seed}", progress=False)
    sys.stdout.write(f"seed {seed}: {meta.get('train_s', float('nan')):.0f} s\n")


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
