"""Policy artifacts: the ONNX network plus a metadata JSON, and their loader (no torch here)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lotus.core.errors import LotusError, NoTrainedPolicyError, PolicyError
from lotus.core.files import sha256_file
from lotus.core.schema import SCHEMA_VERSION, ActionTable

SHIPPED_DIR = Path(__file__).parent / "policies"
ARTIFACT_FORMAT = 1


@dataclass(frozen=True)
class PolicyArtifact:
    """A loaded, verified metadata JSON and the path of its ONNX file."""

    meta: dict[str, Any]
    onnx_path: Path
    json_path: Path

    @property
    def family(self) -> str:
        return str(self.meta["policy"])

    @property
    def actions(self) -> ActionTable:
        return ActionTable.from_dict(self.meta["action_table"])

    @property
    def deadline_scale_max(self) -> float:
        """The largest deadline factor the policy was trained on (1.0: only the real deadline)."""
        try:
            high = float(self.meta["scenario"]["randomize"]["deadline_scale"][1])
        except (KeyError, TypeError, IndexError, ValueError):
            return 1.0
        return high if math.isfinite(high) and high >= 1.0 else 1.0

    @property
    def trained_deadline_ms(self) -> tuple[float, float] | None:
        """The range of latency targets (ms) the policy was trained on: its training rooms' deadline
        (the workload's default when unset) times the deadline randomisation; None when unknown."""
        from lotus.envs.workload import load_workload

        scenario = self.meta.get("scenario") or {}
        try:
            deadline = scenario.get("deadline_ms") or load_workload(scenario["workload"]).default_deadline_ms
            scale = (scenario.get("randomize") or {}).get("deadline_scale") or (1.0, 1.0)
            low, high = float(deadline) * float(scale[0]), float(deadline) * float(scale[1])
        except (KeyError, TypeError, IndexError, ValueError, OSError, LotusError):
            return None
        return (low, high) if math.isfinite(low) and math.isfinite(high) and 0 < low <= high else None


def resolve_artifact(name_or_path: str | Path) -> Path:
    """The metadata JSON of a shipped policy name (``drl``) or of a ``.json``/``.onnx`` path."""
    text = str(name_or_path)
    path = Path(text)
    if path.suffix == ".onnx":
        path = path.with_suffix(".json")
    if path.suffix == ".json":
        return path
    shipped = SHIPPED_DIR / f"{text}.json"
    return shipped


def shipped_variants(name: str, where: Path | None = None) -> list[Path]:
    """Metadata JSONs of a shipped family, one per board profile: ``NAME.json`` (Orin Nano 15W)
    first, then ``NAME.<board>-<mode>.json`` in name order (in ``where``, default :data:`SHIPPED_DIR`)."""
    where = SHIPPED_DIR if where is None else where
    main = where / f"{name}.json"
    return ([main] if main.is_file() else []) + sorted(where.glob(f"{name}.*.json"))


def _is_shipped_name(name_or_path: str | Path) -> bool:
    text = str(name_or_path)
    return Path(text).suffix not in (".json", ".onnx") and "/" not in text and bool(shipped_variants(text))


def _table_of(json_path: Path) -> ActionTable | None:
    try:
        return ActionTable.from_dict(json.loads(json_path.read_text())["action_table"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _variant_for(name: str, actions: ActionTable) -> Path:
    """The shipped variant of ``name`` trained for the clock table ``actions``."""
    variants = shipped_variants(name)
    for path in variants:
        if _table_of(path) == actions:
            return path
    have = ", ".join(p.name for p in variants)
    raise NoTrainedPolicyError(
        f"no shipped {name} policy for this board's clock table {actions.n_cpu}x{actions.n_gpu} (shipped: {have})"
    )


def load_artifact(name_or_path: str | Path, expect_actions: ActionTable | None = None) -> PolicyArtifact:
    """Read and check a policy's metadata JSON and ONNX file.

    A shipped name with ``expect_actions`` picks the variant trained for that clock table (see
    :func:`shipped_variants`); a board without one gets a :class:`PolicyError` saying so.

    :raises PolicyError: missing or unreadable files, bad JSON, wrong schema version, hash
        mismatch (a corrupt or swapped ONNX file), or an action table that differs from the board's.
    """
    if expect_actions is not None and _is_shipped_name(name_or_path):
        json_path = _variant_for(str(name_or_path), expect_actions)
    else:
        json_path = resolve_artifact(name_or_path)
    try:
        meta = json.loads(json_path.read_text())
    except FileNotFoundError:
        raise PolicyError(f"policy metadata {json_path} does not exist") from None
    except (OSError, ValueError) as exc:
        raise PolicyError(f"policy metadata {json_path} is unreadable: {exc}") from None
    if not isinstance(meta, dict):
        raise PolicyError(f"policy metadata {json_path} must hold a JSON object")
    for key in ("schema_version", "policy", "action_table", "action_map", "onnx_file", "onnx_sha256"):
        if key not in meta:
            raise PolicyError(f"policy metadata {json_path} lacks {key!r}")
    if not isinstance(meta["schema_version"], int) or isinstance(meta["schema_version"], bool):
        got = meta["schema_version"]
        raise PolicyError(f"policy metadata {json_path}: schema_version must be an integer, got {got!r}")
    if meta["schema_version"] != SCHEMA_VERSION:
        raise PolicyError(
            f"policy {json_path} was trained for observation schema v{meta['schema_version']}, "
            f"this lotus speaks v{SCHEMA_VERSION}: retrain or export it again"
        )
    if not isinstance(meta["onnx_file"], str) or not meta["onnx_file"]:
        raise PolicyError(f"policy metadata {json_path}: onnx_file must be a file name, got {meta['onnx_file']!r}")
    try:
        table = ActionTable.from_dict(meta["action_table"])
    except (KeyError, TypeError, ValueError):
        raise PolicyError(f"policy metadata {json_path}: action_table must hold cpu_khz and gpu_hz lists") from None
    amap = meta["action_map"]
    if (
        not isinstance(amap, list)
        or not amap
        or not all(isinstance(a, int) and not isinstance(a, bool) and 0 <= a < table.n for a in amap)
    ):
        raise PolicyError(f"policy metadata {json_path}: action_map must list joint indices in 0..{table.n - 1}")
    shares = meta.get("served_share")
    if shares is not None and (
        not isinstance(shares, list)
        or len(shares) != len(amap)
        or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and 0.5 <= x <= 1.0 for x in shares)
    ):
        raise PolicyError(
            f"policy metadata {json_path}: served_share must list one share in 0.5..1 per action_map entry"
        )
    onnx_path = json_path.parent / meta["onnx_file"]
    if not onnx_path.is_file():
        raise PolicyError(f"policy network {onnx_path} does not exist")
    if sha256_file(onnx_path) != meta["onnx_sha256"]:
        raise PolicyError(f"policy network {onnx_path} does not match its metadata hash (corrupt or replaced)")
    art = PolicyArtifact(meta, onnx_path, json_path)
    if expect_actions is not None and art.actions != expect_actions:
        raise PolicyError(
            f"policy {json_path} was trained for clock table {art.actions.n_cpu}x{art.actions.n_gpu} "
            f"({meta.get('board')}, {meta.get('power_mode')}), not this board's "
            f"{expect_actions.n_cpu}x{expect_actions.n_gpu}"
        )
    return art


def write_metadata(path: Path, meta: dict[str, Any]) -> None:
    path.write_text(json.dumps({"format": ARTIFACT_FORMAT, "schema_version": SCHEMA_VERSION, **meta}, indent=2))
