"""What a Jetson does without lotus: a schedutil-style CPU governor and a podgov-style GPU one.

Both act on the shared observation only (current clocks and busy fractions), so the same
object runs in the simulator and on a board. The firmware's thermal throttling is not part
of the policy: the simulator (or the board) applies it on top.
"""

from __future__ import annotations

import numpy as np

from lotus.core.schema import IDX, ActionTable
from lotus.governor.protocol import PolicyBase, TimeStep

SCHEDUTIL_HEADROOM = 1.25  # schedutil asks for 1.25x the utilisation-scaled clock
PODGOV_TARGET_LOAD = 0.7  # GPU load the podgov-style governor steers towards
PODGOV_UP_LOAD = 0.85  # above this load the GPU clock jumps up
PODGOV_DOWN_LOAD = 0.5  # below this load the GPU clock steps down once


class StockPolicy(PolicyBase):
    """schedutil (CPU) + nvhost_podgov-like (GPU): the main baseline.

    CPU: next clock = lowest table clock >= 1.25 * current clock * busy fraction.
    GPU: jump to ``current * load / 0.7`` when load > 0.85; one step down when load < 0.5.
    """

    name = "stock-simple"

    def __init__(self, actions: ActionTable) -> None:
        self.actions = actions
        self.cpu = np.asarray(actions.cpu_khz, dtype=float)
        self.gpu = np.asarray(actions.gpu_hz, dtype=float)

    def act(self, obs: np.ndarray, dt_s: TimeStep = None) -> np.ndarray:
        obs = np.atleast_2d(obs)
        f_cpu = obs[:, IDX["cpu_freq_frac"]] * self.cpu[-1]
        f_gpu = obs[:, IDX["gpu_freq_frac"]] * self.gpu[-1]
        util, load = obs[:, IDX["cpu_util"]], obs[:, IDX["gpu_util"]]
        want_cpu = SCHEDUTIL_HEADROOM * f_cpu * util
        cpu_idx = np.minimum(np.searchsorted(self.cpu, want_cpu - 1e-6), len(self.cpu) - 1)
        cur_gpu = np.abs(self.gpu[None, :] - f_gpu[:, None]).argmin(axis=1)
        up = np.minimum(np.searchsorted(self.gpu, f_gpu * load / PODGOV_TARGET_LOAD - 1e-6), len(self.gpu) - 1)
        gpu_idx = np.where(load > PODGOV_UP_LOAD, np.maximum(up, cur_gpu), cur_gpu)
        gpu_idx = np.where(load < PODGOV_DOWN_LOAD, np.maximum(cur_gpu - 1, 0), gpu_idx)
        return self.actions.index(cpu_idx, gpu_idx).astype(np.int64)
