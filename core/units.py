"""Unit conversions used across lotus. The kernel reports CPU clocks in kHz and GPU clocks in Hz;
the simulator's cost model works in GHz (Mcycles / GHz = ms); times are seconds unless named ``_ms``."""

from __future__ import annotations

from typing import TypeVar

import numpy as np

T = TypeVar("T", float, np.ndarray)  # a scalar or an array of any shape

MS_PER_S = 1e3
HZ_PER_KHZ = 1e3
HZ_PER_GHZ = 1e9
KHZ_PER_GHZ = 1e6


def khz_to_hz(khz: T) -> T:
    """kHz (cpufreq's unit) -> Hz."""
    return khz * HZ_PER_KHZ


def hz_to_ghz(hz: T) -> T:
    """Hz (devfreq's unit) -> GHz."""
    return hz / HZ_PER_GHZ


def ms_to_s(ms: T) -> T:
    """Milliseconds -> seconds."""
    return ms / MS_PER_S


def s_to_ms(s: T) -> T:
    """Seconds -> milliseconds."""
    return s * MS_PER_S
