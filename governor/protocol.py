"""What every clock governor offers: the :class:`Policy` protocol, its diagnostics, a base class.

A policy maps observations ``float32 [n, N_FEATURES]`` (see :mod:`lotus.core.schema`) to joint
action indices ``int64 [n]`` of an :class:`~lotus.core.schema.ActionTable`. The same object runs
in the simulator (``n`` boards at once) and in the daemon (``n == 1``, twice per frame).

- Inherit :class:`PolicyBase` and define ``name`` and ``act``: it supplies the rest
  (``reset``, ``diagnostics``, ``deadline_scale_max``, ``decision``) with neutral defaults.
- A duck-typed object with only ``name``, ``reset(n)`` and ``act(obs)`` (a third-party class)
  becomes a :class:`Policy` through :func:`as_policy`.

Time: ``act`` takes ``dt_s``, the seconds of real or simulated time since that board's previous
decision (the daemon measures it, the simulator knows it). Stateless policies ignore it; the
safety shield runs its caps and its deadline stretch on it, so their reaction speed does not
depend on the frame rate. ``None`` stands for the nominal spacing, :data:`NOMINAL_DECISION_S`.

numpy only: the daemon imports this module.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal, Protocol, TypeAlias, runtime_checkable

import numpy as np

from lotus.core.errors import PolicyError

DecisionKind: TypeAlias = Literal["stage", "frame"]
"""``stage``: two decisions per frame (before stage 1 and before stage 2); ``frame``: one."""
TimeStep: TypeAlias = float | np.ndarray | None
"""Seconds since each board's previous decision: one float for every board, an array ``[n]``,
or None for :data:`NOMINAL_DECISION_S`."""

NOMINAL_FPS = 30.0  # the camera rate the shipped policies and the shield's constants assume
NOMINAL_DECISION_S = 1.0 / (2.0 * NOMINAL_FPS)  # stage decisions at 30 fps: 60 per second


@dataclass(frozen=True)
class PolicyDiagnostics:
    """What a policy reports about itself (``GET /v1/governor``, ``/metrics``, ``lotus eval``).

    :param policy_name: the policy's ``name`` (``shield(drl)``, ``stock``, ...).
    :param version: the learned network's artifact version; ``builtin`` for code-only policies;
        ``fallback`` when a learned policy could not be loaded and the fallback decides.
    :param load_error: why the learned policy could not be loaded, else None.
    :param shielded: True when the safety shield wraps the policy (the counters below are its).
    :param fallbacks: decisions answered by the fallback policy, summed over boards.
    :param interventions: decisions whose clocks the shield's thermal guard lowered.
    :param deadline_stretch: deadline factor board 0's policy is shown now (1.0: the real one).
    :param skipped_frames: camera frames the shield skipped, summed over boards: its admission rule's,
        and those a wrapped policy with a served share refused.
    :param served_fps_cap: board 0's served-rate cap now, frames/s (None: every frame is served).
    :param trained_deadline_ms: the latency targets (low, high; ms) a learned policy was trained
        on (None: a policy not trained on a deadline, or unknown).
    """

    policy_name: str
    version: str = "builtin"
    load_error: str | None = None
    shielded: bool = False
    fallbacks: int = 0
    interventions: int = 0
    deadline_stretch: float = 1.0
    skipped_frames: int = 0
    served_fps_cap: float | None = None
    trained_deadline_ms: tuple[float, float] | None = None


@runtime_checkable
class Policy(Protocol):
    """A clock governor. ``act`` must be cheap: it runs between the two stages of every frame."""

    @property
    def name(self) -> str:
        """Display name (``drl``, ``stock``, ``shield(drl)``, ...)."""
        ...

    @property
    def deadline_scale_max(self) -> float:
        """Largest deadline factor the policy was trained on (1.0: the real deadline only)."""
        ...

    @property
    def decision(self) -> DecisionKind | None:
        """How often the policy was trained to decide; None: any cadence works."""
        ...

    def reset(self, n: int = 1) -> None:
        """Forget any internal state; ``n`` boards will be driven."""
        ...

    def act(self, obs: np.ndarray, dt_s: TimeStep = None) -> np.ndarray:
        """Joint action indices ``int64 [n]`` for observations ``float32 [n, N_FEATURES]``.

        :param dt_s: seconds since each board's previous decision (see :data:`TimeStep`).
        """
        ...

    def diagnostics(self) -> PolicyDiagnostics:
        """Counters and identity for the daemon's status and metrics."""
        ...


class PolicyBase(ABC):
    """Defaults for everything in :class:`Policy` but ``name`` and ``act``, which subclasses define."""

    name: str
    deadline_scale_max: float = 1.0
    decision: DecisionKind | None = None

    def reset(self, n: int = 1) -> None:
        return None

    @abstractmethod
    def act(self, obs: np.ndarray, dt_s: TimeStep = None) -> np.ndarray: ...

    def diagnostics(self) -> PolicyDiagnostics:
        return PolicyDiagnostics(policy_name=self.name)


@runtime_checkable
class Admitting(Protocol):
    """A policy that can refuse a frame (the shield's admission rule, :mod:`lotus.governor.admission`).

    Asked once per camera frame, before the stage-1 decision; a refused frame is not run (it
    counts as a dropped frame, a miss). Policies without ``admit`` serve every frame.
    """

    def admit(self, obs: np.ndarray, dt_s: float | None = None, shutdown_gap_c: float | None = None) -> bool:
        """Whether board 0 runs the frame about to start.

        :param obs: its observation ``float32 [1, N_FEATURES]`` (or ``[N_FEATURES]``).
        :param dt_s: seconds since the previous ``admit`` call (None: one nominal frame).
        :param shutdown_gap_c: shutdown minus passive trip, C (None: the rule's default).
        """
        ...


@runtime_checkable
class BarePolicy(Protocol):
    """The least a duck-typed policy must have for :func:`as_policy` (no time, no diagnostics)."""

    @property
    def name(self) -> str: ...

    def reset(self, n: int = 1) -> None: ...

    def act(self, obs: np.ndarray) -> np.ndarray: ...


class PolicyAdapter(PolicyBase):
    """A :class:`BarePolicy` seen as a full :class:`Policy`: defaults for the rest, ``dt_s`` dropped."""

    def __init__(self, inner: BarePolicy) -> None:
        self.inner = inner
        self.name = inner.name

    def reset(self, n: int = 1) -> None:
        self.inner.reset(n)

    def act(self, obs: np.ndarray, dt_s: TimeStep = None) -> np.ndarray:
        return self.inner.act(obs)


def as_policy(obj: object) -> Policy:
    """``obj`` itself when it is a full :class:`Policy`, a :class:`PolicyAdapter` around a bare one.

    :raises PolicyError: ``obj`` lacks ``name``, ``reset`` or ``act``.
    """
    if isinstance(obj, PolicyBase | Policy):
        return obj
    if isinstance(obj, BarePolicy):
        return PolicyAdapter(obj)
    raise PolicyError(f"{obj!r} is not a policy: it needs a name, reset(n) and act(obs)")
