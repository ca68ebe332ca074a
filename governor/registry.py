"""Build any governor by name: baselines, shipped learned policies, policy files.

``drl`` and policy files come wrapped in the safety :class:`~governor.shield.Shield` (with
``stock`` as fallback); ``lotus-dac24`` and ``ztt`` run bare, as their papers ran them.
"""

from __future__ import annotations

from pathlib import Path

from lotus.core.schema import ActionTable
from lotus.governor.policies import REGISTRY, Policy, make_policy, register
from lotus.governor.shield import Shield

LEARNED = ("drl", "lotus-dac24", "ztt")


def _onnx(name_or_path: str | Path, actions: ActionTable) -> Policy:
    from lotus.governor.onnx_policy import OnnxPolicy

    return OnnxPolicy.load(name_or_path, actions)


def shielded(name_or_path: str | Path, actions: ActionTable, **shield_kw: float) -> Shield:
    """A learned policy inside the shield; if its files fail to load, the shield runs ``stock``."""
    return Shield(lambda: _onnx(name_or_path, actions), actions, make_policy("stock", actions), **shield_kw)


def build_policy(spec: str, actions: ActionTable, shield: bool | None = None) -> Policy:
    """Any policy by name (see :func:`governor.policies.policy_names`) or by ``.json``/``.onnx`` path.

    :param shield: force the shield on or off; by default only ``drl`` and policy files get it.
    """
    is_file = spec.endswith((".json", ".onnx"))
    if spec in LEARNED or is_file:
        use_shield = shield if shield is not None else (spec == "drl" or is_file)
        return shielded(spec, actions) if use_shield else _onnx(spec, actions)
    policy = make_policy(spec, actions)
    return Shield(policy, actions, make_policy("stock", actions)) if shield else policy


for _name in LEARNED:
    if _name not in REGISTRY:
        register(_name, lambda actions, _n=_name: build_policy(_n, actions))
