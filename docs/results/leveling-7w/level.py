"""Latency levelling on Orin Nano 7 W: ``mpc-energy`` with a lower latency target (an experiment).

``mpc-energy`` runs each stage at the lowest-power clocks predicted to end the frame by
``margin x min(deadline, frame period)``; a lower margin than its default 0.92 levels latency at
that target (light frames run slower, heavy ones at the top clocks), trading mean for variance.
Used from ``lotus eval --policies python:docs/results/leveling-7w/level.py:Level80`` (see the
README next to this file). Not a shipped policy: the margin was swept on the suite's own room.
"""

from __future__ import annotations

from typing import Any

from lotus.core.schema import ActionTable
from lotus.governor.context import PolicyContext
from lotus.governor.mpc import MpcPolicy


class _Level(MpcPolicy):
    margin = 0.92

    def __init__(self, actions: ActionTable, deadline_ms: float | None = None, context: PolicyContext | None = None,
                 **_: Any) -> None:  # fmt: skip
        if context is None:
            raise ValueError("a levelling policy needs the scenario's context")
        super().__init__(actions, board=context.board, workload=context.workload, deadline_ms=context.deadline_ms,
                         fps=context.fps, power_mode=context.power_mode, goal="energy",
                         latency_margin=self.margin)  # fmt: skip
        self.name = f"level@{self.margin:.2f}"


class Level70(_Level):
    margin = 0.70


class Level75(_Level):
    margin = 0.75


class Level80(_Level):
    margin = 0.80


class Level85(_Level):
    margin = 0.85
