"""What a policy may be told about the scenario it runs in, and policies that need it.

Baselines that model the board (``mpc``) and third-party classes (``python:...``) are built with a
:class:`PolicyContext`: the nominal board and workload profiles, the deadline and the camera rate,
as a user would configure them on a real board. They never see the simulator's hidden state.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lotus.core.errors import PolicyError
from lotus.core.schema import ActionTable
from lotus.governor.protocol import Policy, as_policy


@dataclass(frozen=True)
class PolicyContext:
    """The scenario as a governor may know it.

    :param deadline_ms: the latency deadline, ms.
    :param fps: the camera rate, frames/s (0: back-to-back).
    :param board: board profile name or path (the nominal one).
    :param power_mode: nvpmodel mode (None: the profile's default).
    :param workload: workload profile name or path.
    """

    deadline_ms: float
    fps: float
    board: str = "orin-nano"
    power_mode: str | None = None
    workload: str = "frcnn-lite"


def build_mpc(actions: ActionTable, context: PolicyContext, goal: str = "latency") -> Policy:
    """The model-based controller of :mod:`lotus.governor.mpc` for ``context`` (``goal``: see there)."""
    from lotus.governor.mpc import MpcPolicy

    return MpcPolicy(actions, board=context.board, workload=context.workload, deadline_ms=context.deadline_ms,
                     fps=context.fps, power_mode=context.power_mode, goal=goal)  # fmt: skip


def load_python_policy(target: str, actions: ActionTable, context: PolicyContext) -> Policy:
    """``PATH_OR_MODULE:CLASS`` -> an instance built as ``CLASS(actions, deadline_ms)``.

    ``PATH_OR_MODULE`` is a ``.py`` file or an importable module. The class needs ``name``,
    ``reset(n)`` and ``act(obs)`` (the :class:`~lotus.governor.protocol.Policy` protocol; ``act``
    may also take ``dt_s``). A constructor that also accepts ``context`` gets the whole
    :class:`PolicyContext`.
    """
    where, sep, cls_name = target.rpartition(":")
    if not sep or not where or not cls_name:
        raise PolicyError(f"python policy needs 'python:PATH_OR_MODULE:CLASS', got 'python:{target}'")
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise PolicyError(f"python policy file {path} does not exist")
            spec = importlib.util.spec_from_file_location(f"lotus_user_policy_{path.stem}", path)
            if spec is None or spec.loader is None:
                raise PolicyError(f"cannot load python policy file {path}")
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except PolicyError:
        raise
    except Exception as exc:  # a user's module may raise anything while importing
        raise PolicyError(f"cannot import python policy {where}: {type(exc).__name__}: {exc}") from None
    found = getattr(module, cls_name, None)
    if found is None or not inspect.isclass(found):
        raise PolicyError(f"python policy {where} has no class {cls_name}")
    cls: Any = found  # a user's class: its constructor is truly dynamic
    try:
        params = inspect.signature(cls).parameters
        kwargs = {"context": context} if "context" in params else {}
        obj: object = cls(actions, context.deadline_ms, **kwargs)
    except Exception as exc:
        raise PolicyError(
            f"python policy {cls_name}(actions, deadline_ms) failed: {type(exc).__name__}: {exc}"
        ) from None
    return as_policy(obj)
