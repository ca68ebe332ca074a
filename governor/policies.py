"""The policy interface and the fixed-clock baselines.

A policy maps observations ``[N, N_FEATURES]`` (see :mod:`envs.schema`) to joint action
indices ``[N]`` of an :class:`envs.schema.ActionTable`. The same object runs in the simulator
and in the daemon. :func:`make_policy` builds any policy from its name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from lotus.core.errors import PolicyError
from lotus.core.schema import ActionTable


@runtime_checkable
class Policy(Protocol):
    """A clock governor. ``act`` must be cheap: it runs between the two stages of every frame."""

    name: str

    def reset(self, n: int = 1) -> None:
        """Forget any internal state; ``n`` boards will be driven."""

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Joint action indices ``[N]`` for observations ``[N, N_FEATURES]``."""


class ConstantPolicy:
    """Always the same joint clocks (``performance``, ``powersave``, ``fixed:...``)."""

    def __init__(self, name: str, action: int) -> None:
        self.name = name
        self.action = int(action)

    def reset(self, n: int = 1) -> None:
        return None

    def act(self, obs: np.ndarray) -> np.ndarray:
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


def stock(actions: ActionTable) -> Policy:
    """The board's default governors (schedutil + podgov-like)."""
    from lotus.governor.baselines import StockPolicy

    return StockPolicy(actions)


PolicyFactory = Callable[..., Policy]
REGISTRY: dict[str, PolicyFactory] = {"performance": performance, "powersave": powersave, "stock": stock}
PARAMETRIC: dict[str, Callable[[ActionTable, str], Policy]] = {"fixed": fixed}


def register(name: str, factory: PolicyFactory) -> None:
    """Add a policy factory ``factory(actions, **kwargs) -> Policy`` under ``name``."""
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
        return REGISTRY[name](actions, **kwargs)
    raise PolicyError(f"unknown policy {spec!r}; known: {', '.join(policy_names())}")
