"""The power budget the daemon's observation divides by follows the board's power mode."""

from __future__ import annotations

import pytest

from lotus.runtime.daemon import DEFAULT_BUDGET_W, board_budget_w
from lotus.runtime.hw.base import NvpMode
from lotus.runtime.hw.sim import SimBoard


def test_sim_board_reports_its_mode_budget() -> None:
    assert board_budget_w(SimBoard("orin-nano", power_mode="7W"), None) == 7.0
    assert board_budget_w(SimBoard("orin-nano"), None) == 15.0
    assert board_budget_w(SimBoard("orin-nano", power_mode="7W"), 9.5) == 9.5  # the configured one wins


@pytest.mark.parametrize(
    ("name", "watts"), [("7W", 7.0), ("15W", 15.0), ("MAXN_SUPER", DEFAULT_BUDGET_W), (None, DEFAULT_BUDGET_W)]
)
def test_a_real_board_reads_the_watts_in_its_nvpmodel_name(name: str | None, watts: float) -> None:
    board = SimBoard("orin-nano")
    real = type("RealBoard", (), {"nvpmodel": lambda self: NvpMode(id=0, name=name, fan_mode=None)})()
    assert isinstance(board, SimBoard) and board_budget_w(real, None) == watts  # type: ignore[arg-type]
