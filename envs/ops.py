"""Two interchangeable math back-ends, so one physics implementation serves both paths.

``SCALAR`` works on Python floats (fast for one board: no numpy call overhead), ``ARRAY`` on
numpy arrays ``[N]`` (fast for many boards). The simulator core is written against this small
interface only, which is what makes a single env and a batch of N envs give the same numbers
(identical observations; rewards equal to ~1e-12, as numpy's ``exp`` may round unlike libm's).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

MASK64 = (1 << 64) - 1


class ScalarOps:
    """Python-float implementations."""

    exp = staticmethod(math.exp)
    log = staticmethod(math.log)
    sqrt = staticmethod(math.sqrt)
    cos = staticmethod(math.cos)
    sin = staticmethod(math.sin)
    floor = staticmethod(math.floor)
    minimum = staticmethod(min)
    maximum = staticmethod(max)

    @staticmethod
    def where(cond: Any, a: Any, b: Any) -> Any:
        return a if cond else b

    @staticmethod
    def clip(x: Any, lo: Any, hi: Any) -> Any:
        return lo if x < lo else hi if x > hi else x

    @staticmethod
    def take(table: Any, idx: Any) -> Any:
        return table[idx]

    @staticmethod
    def to_int(x: Any) -> int:
        return int(x)

    @staticmethod
    def u64(x: Any) -> int:
        return x & MASK64

    @staticmethod
    def u64_to_unit(x: int) -> float:
        return ((x >> 11) + 0.5) * (1.0 / 9007199254740992.0)

    @staticmethod
    def rint(x: Any) -> int:
        return int(round(x))


class ArrayOps:
    """numpy implementations over arrays ``[N]``."""

    exp = staticmethod(np.exp)
    log = staticmethod(np.log)
    sqrt = staticmethod(np.sqrt)
    cos = staticmethod(np.cos)
    sin = staticmethod(np.sin)
    floor = staticmethod(np.floor)
    minimum = staticmethod(np.minimum)
    maximum = staticmethod(np.maximum)
    where = staticmethod(np.where)

    @staticmethod
    def clip(x: Any, lo: Any, hi: Any) -> Any:
        return np.minimum(np.maximum(x, lo), hi)  # much cheaper than np.clip on small arrays

    @staticmethod
    def take(table: Any, idx: Any) -> Any:
        return table[idx]

    @staticmethod
    def to_int(x: Any) -> np.ndarray:
        return np.asarray(x).astype(np.int64)

    @staticmethod
    def u64(x: Any) -> np.ndarray:
        return x  # uint64 arithmetic wraps by itself

    @staticmethod
    def u64_to_unit(x: np.ndarray) -> np.ndarray:
        return ((x >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)

    @staticmethod
    def rint(x: Any) -> np.ndarray:
        return np.rint(x).astype(np.int64)


SCALAR = ScalarOps()
ARRAY = ArrayOps()


def splitmix64(x: Any, ops: Any) -> Any:
    """SplitMix64 finaliser: a counter-based hash giving independent 64-bit words per input."""
    x = ops.u64(x + 0x9E3779B97F4A7C15)
    x = ops.u64((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9)
    x = ops.u64((x ^ (x >> 27)) * 0x94D049BB133111EB)
    return x ^ (x >> 31)


PAIR_STEP = 0x632BE59BD9B4E019  # offset of a draw's second SplitMix64 word
_PAIR_OFFSETS = np.array([0, PAIR_STEP], dtype=np.uint64)


def _uniform_pair(key: Any, counter: Any, ops: Any) -> tuple[Any, Any]:
    """The two uniforms in (0, 1) of ``(key, counter)`` that Box-Muller turns into normals."""
    base = ops.u64(key ^ ops.u64(counter * 0xD1B54A32D192ED03))
    if ops is ARRAY:  # both words in one pass over a [2, ...] array (integer ops: the same bits)
        u = ops.u64_to_unit(splitmix64(np.add.outer(_PAIR_OFFSETS, base), ops))
        return u[0], u[1]
    return ops.u64_to_unit(splitmix64(base, ops)), ops.u64_to_unit(splitmix64(ops.u64(base + PAIR_STEP), ops))


def normal(key: Any, counter: Any, ops: Any) -> Any:
    """A standard normal draw that depends only on ``(key, counter)`` (Box-Muller)."""
    u1, u2 = _uniform_pair(key, counter, ops)
    return ops.sqrt(-2.0 * ops.log(u1)) * ops.cos(6.283185307179586 * u2)


def normal_pair(key: Any, counter: Any, ops: Any) -> tuple[Any, Any]:
    """Two independent standard normal draws of ``(key, counter)`` (both halves of Box-Muller)."""
    u1, u2 = _uniform_pair(key, counter, ops)
    r, phi = ops.sqrt(-2.0 * ops.log(u1)), 6.283185307179586 * u2
    return r * ops.cos(phi), r * ops.sin(phi)
