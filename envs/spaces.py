"""Gymnasium spaces of the shared schema (:mod:`lotus.core.schema` itself stays gymnasium-free)."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from lotus.core.schema import HIGH, LOW, ActionTable


def observation_space() -> spaces.Box:
    """The Box space of one observation, ``float32 [N_FEATURES]``."""
    return spaces.Box(low=LOW.copy(), high=HIGH.copy(), dtype=np.float32)


def action_space(table: ActionTable, multi_discrete: bool = False) -> spaces.Space:
    """``Discrete(table.n)``, or ``MultiDiscrete([n_cpu, n_gpu])``."""
    if multi_discrete:
        return spaces.MultiDiscrete([table.n_cpu, table.n_gpu])
    return spaces.Discrete(table.n)
