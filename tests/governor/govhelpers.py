"""Constants and plain helpers shared by the governor tests (imported by name: rootdir imports)."""

from __future__ import annotations

# Orin Nano 15W (the default board and power mode): 20 CPU x 5 GPU clocks, 100 joint actions.
NANO_15W_CPU_KHZ = (
    115200, 192000, 268800, 345600, 422400, 499200, 576000, 652800, 729600, 806400,
    883200, 960000, 1036800, 1113600, 1190400, 1267200, 1344000, 1420800, 1497600, 1510400,
)  # fmt: skip
NANO_15W_GPU_HZ = (306000000, 408000000, 510000000, 612000000, 624750000)

# tiny training budgets: enough for two PPO rollouts (n_steps 256 x 8 boards) and DQN updates
TRAIN_STEPS = 4096
TRAIN_ENVS = 8
TRAINED = (("drl", "ppo"), ("lotus-dac24", "dqn"), ("ztt", "dqn"))
