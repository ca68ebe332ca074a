"""Board backends: read sensors and set CPU/GPU clocks through sysfs (jetson, linux) or NVML.

Every backend reaches the hardware through a root directory, so tests run the real code against
fake trees (:mod:`runtime.hw.fake_sysfs`). Start with :func:`detect_board`.
"""

from lotus.runtime.hw.base import BACKENDS, Board, BoardDescription, ClockDomain, Snapshot, register_backend
from lotus.runtime.hw.detect import detect_board, diagnose
from lotus.runtime.hw.state import RestoreReport, restore, save_state

__all__ = [
    "BACKENDS",
    "Board",
    "BoardDescription",
    "ClockDomain",
    "RestoreReport",
    "Snapshot",
    "detect_board",
    "diagnose",
    "register_backend",
    "restore",
    "save_state",
]
