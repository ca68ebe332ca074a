"""Build any governor by name: baselines, shipped learned policies, policy files.

``drl`` and policy files come wrapped in the safety :class:`~governor.shield.Shield` (with
``stock`` as fallback); ``lotus-dac24`` and ``ztt`` run bare, as their papers ran them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lotus.core.errors import PolicyError
from lotus.core.schema import ActionTable
from lotus.governor.context import PolicyContext, build_mpc, load_python_policy
from lotus.governor.policies import REGISTRY, Policy, make_policy, register
from lotus.governor.shield import AUTO, Shield

# shipped artifacts (-pub: as published; drl-stable: the previous drl recipe, per-stage on the stable reward)
LEARNED = ("drl", "lotus-dac24", "ztt", "lotus-dac24-pub", "ztt-pub", "drl-stable")


def _onnx(name_or_path: str | Path, actions: ActionTable) -> Policy:
    from lotus.governor.onnx_policy import OnnxPolicy

    return OnnxPolicy.load(name_or_path, actions)


def shielded(name_or_path: str | Path, actions: ActionTable, **shield_kw: Any) -> Shield:
    """A learned policy inside the shield; if its files fail to load, the shield runs ``stock``."""
    return Shield(lambda: _onnx(name_or_path, actions), actions, make_policy("stock", actions), **shield_kw)


def split_margin(spec: str) -> tuple[str, float | str | None]:
    """``NAME+shield@M`` -> (``NAME+shield``, M): a shielded policy with the shield's margin set to
    M C (the suite's shield-margin ablation, from the command line), or to ``auto`` (measured on the
    board, :func:`lotus.governor.shield.measured_margin_c`); any other spec -> (spec, None).

    :raises PolicyError: ``@`` after something other than ``+shield``, or M not a number >= 0 nor ``auto``.
    """
    base, at, text = spec.rpartition("@")
    if not at or spec.endswith((".json", ".onnx")) or spec.startswith("python:"):
        return spec, None
    if not base.endswith("+shield"):
        raise PolicyError(f"policy {spec!r}: a margin (@M, C) goes after +shield, e.g. ztt+shield@1")
    if text == AUTO:
        return base, AUTO
    try:
        margin = float(text)
    except ValueError:
        margin = float("nan")
    if not margin >= 0:
        raise PolicyError(f"policy {spec!r}: the shield margin after @ must be a number of C >= 0, or auto")
    return base, margin


def build_policy(
    spec: str,
    actions: ActionTable,
    shield: bool | None = None,
    context: PolicyContext | None = None,
    margin_c: float | str | None = None,
) -> Policy:
    """Any policy by name (see :func:`governor.policies.policy_names`) or by ``.json``/``.onnx`` path.

    ``NAME+shield`` is ``NAME`` inside the safety shield (stock as its fallback), so an evaluation
    shows the shield's share of a result; ``NAME+shield@M`` sets that shield's margin to M C.
    ``mpc`` and ``python:PATH_OR_MODULE:CLASS`` need the scenario's ``context`` (the nominal
    profiles, deadline and camera rate).

    :param shield: force the shield on or off; by default only ``drl`` and policy files get it.
    :param margin_c: the shield's thermal margin below the trip, C, or ``auto`` (None: its default,
        :data:`~lotus.governor.shield.MARGIN_C`).
    """
    spec, at_margin = split_margin(spec)
    margin_c = at_margin if at_margin is not None else margin_c
    kw: dict[str, Any] = {} if margin_c is None else {"margin_c": margin_c}
    if spec.endswith("+shield"):
        return build_policy(spec.removesuffix("+shield"), actions, shield=True, context=context, margin_c=margin_c)
    if spec in ("mpc", "mpc-energy") or spec.startswith("python:"):
        if context is None:
            raise PolicyError(f"policy {spec!r} needs the scenario (deadline, camera rate, profiles)")
        if spec.startswith("python:"):
            policy = load_python_policy(spec[7:], actions, context)
        else:
            policy = build_mpc(actions, context, "latency" if spec == "mpc" else "energy")
        return Shield(policy, actions, make_policy("stock", actions), **kw) if shield else policy
    is_file = spec.endswith((".json", ".onnx"))
    if spec in LEARNED or is_file:
        use_shield = shield if shield is not None else (spec in ("drl", "drl-stable") or is_file)
        return shielded(spec, actions, **kw) if use_shield else _onnx(spec, actions)
    policy = make_policy(spec, actions)
    return Shield(policy, actions, make_policy("stock", actions), **kw) if shield else policy


for _name in LEARNED:
    if _name not in REGISTRY:
        register(_name, lambda actions, _n=_name: build_policy(_n, actions))
