"""Which joint clocks the shipped ``drl`` networks pick in their own training rooms.

Run from the repository root: ``python docs/results/fixed-clocks-shield/network_choices.py`` (about
two minutes). For each shipped profile: 64 boards of the profile's training randomisation (ambient,
heatsink, workload, trace kinds, start temperature), 6000 stage decisions each, the network deciding and
holding its choice as in the daemon, no shield. Prints the share of decisions per joint clock and the
choices made while the hotter die was within 5 C of the trip. Output: ``network_choices.txt``.
"""

from __future__ import annotations

import collections
import sys

import numpy as np

from lotus.core.schema import HEADROOM_SCALE_C, IDX
from lotus.envs.vector import BatchedDetectorEnv
from lotus.governor.onnx_policy import OnnxPolicy
from lotus.governor.train import TrainConfig, training_scenario, training_spec

PROFILES = [
    ("orin-nano", None, "drl"),
    ("orin-nano", "7W", "drl.orin-nano-7W"),
    ("orin-nano", "MAXN_SUPER", "drl.orin-nano-MAXN_SUPER"),
    ("orin-nx", None, "drl.orin-nx-15W"),
    ("tx2", None, "drl.tx2-MAXN"),
]


def main() -> None:
    for board, mode, artifact in PROFILES:
        cfg = TrainConfig(policy="drl", board=board, power_mode=mode)
        env = BatchedDetectorEnv(64, training_scenario(cfg, training_spec(cfg)))
        policy = OnnxPolicy.load(f"governor/policies/{artifact}.json", env.actions)
        obs = env.reset(seed=11)
        picks: collections.Counter[int] = collections.Counter()
        near: collections.Counter[int] = collections.Counter()
        for _ in range(6000):
            act = policy.act(obs, 1 / 60)
            picks.update(act.tolist())
            head_c = np.minimum(obs[:, IDX["cpu_headroom"]], obs[:, IDX["gpu_headroom"]]) * HEADROOM_SCALE_C
            near.update(act[head_c < 5.0].tolist())
            obs, *_ = env.step(act)
        n = sum(picks.values())
        shares = ", ".join(f"{a}: {100 * k / n:.2f} %" for a, k in picks.most_common(3))
        sys.stdout.write(
            f"{artifact}: top joint clock {env.actions.n - 1}; {n} decisions: {shares}; "
            f"within 5 C of the trip: {dict(near.most_common(3))}\n"
        )


if __name__ == "__main__":
    main()
