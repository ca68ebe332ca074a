"""The fixed-clock baselines and the policy registry.

The :class:`Policy` protocol (re-exported here) lives in :mod:`lotus.governor.protocol`.
:func:`make_policy` builds any registered policy from its name.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lotus.core.errors import PolicyError
from lotus.core.schema import ActionTable
from lotus.governor.protocol import Policy, PolicyBase, PolicyDiagnostics, TimeStep, as_policy

__all__ = [
    "PARAMETRIC", "REGISTRY", "ConstantPolicy", "Policy", "PolicyBase", "PolicyDiagnostics", "PolicyFactory",
    "fixed", "make_policy", "performance", "policy_names", "powersave", "register", "stock",
]  # fmt: skip


class ConstantPolicy(PolicyBase):
    """Always the same joint clocks (``performance``, ``powersave``, ``fixed:...``)."""

    def __init__(self, name: str, action: int) -> None:
        self.name = name
        self.action = int(action)

    def act(self, obs: np.ndarray, dt_s: TimeStep = None) -> np.ndarray:
        return np.full(np.atleast_2d(obs).shape[0], self.action, dtype=np.int64)


def performance(actions: ActionTable) -> Policy:
    """Top clocks of the power mode, as ``jetson_clocks`` sets them."""
    return ConstantPolicy("performance", actions.n - 1)


def powersave(actions: ActionTable) -> Policy:
    """Bottom clocks of the power mode."""
    return ConstantPolicy("powersave", 0)


def fixed(actions: ActionTable, arg: str) -> Policy:
    """``fixed:<cpu_khz>,<gpu_hz>``: the table entry nearest to the given clocks."""
    try:
        cpu_text, gpu_text = arg.split(",")
        cpu_khz, gpu_hz = float(cpu_text), float(gpu_text)
    except ValueError:
        raise PolicyError(f"fixed policy needs 'fixed:<cpu_khz>,<gpu_hz>', got 'fixed:{arg}'") from None
    if cpu_khz <= 0 or gpu_hz <= 0:
        raise PolicyError(f"fixed policy clocks must be positive, got 'fixed:{arg}'")
    return ConstantPolicy(f"fixed:{arg}", actions.nearest(cpu_khz, gpu_hz))


def stock_simple(actions: ActionTable) -> Policy:
    """The earlier dead-band approximation of the stock governors (kept to compare with old results)."""
    from lotus.governor.baselines import StockPolicy

    return StockPolicy(actions)


def stock(actions: ActionTable) -> Policy:
    """What the board runs without lotus: L4T's schedutil + nvhost_podgov on their own timers."""
    from lotus.governor.kernel_governors import KernelStockPolicy

    return KernelStockPolicy(actions)


PolicyFactory = Callable[..., object]
"""``factory(actions, **kwargs)``: a :class:`Policy`, or a bare one :func:`as_policy` adapts."""
REGISTRY: dict[str, PolicyFactory] = {
    "performance": performance, "powersave": powersave, "stock": stock, "stock-simple": stock_simple,
}  # fmt: skip
PARAMETRIC: dict[str, Callable[[ActionTable, str], Policy]] = {"fixed": fixed}


def register(name: str, factory: PolicyFactory) -> None:
    """Add a policy factory ``factory(actions, **kwargs) -> Policy`` under ``name`` (a factory may
    return a duck-typed object with ``name``, ``reset`` and ``act(obs)``: :func:`make_policy` adapts it)."""
    REGISTRY[name] = factory


def policy_names() -> list[str]:
    """Every name :func:`make_policy` accepts (parametric ones shown with their argument)."""
    return sorted(REGISTRY) + [f"{p}:<args>" for p in PARAMETRIC]


def make_policy(spec: str, actions: ActionTable, **kwargs: object) -> Policy:
    """Build a policy from ``performance``, ``powersave``, ``fixed:<cpu_khz>,<gpu_hz>``, ...

    :raises PolicyError: unknown name or bad arguments.
    """
    name, _, arg = spec.partition(":")
    if name in PARAMETRIC:
        return PARAMETRIC[name](actions, arg)
    if name in REGISTRY and not arg:
        return as_policy(REGISTRY[name](actions, **kwargs))
    raise PolicyError(f"unknown policy {spec!r}; known: {', '.join(policy_names())}")
