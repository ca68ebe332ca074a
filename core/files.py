"""File helpers shared by every package: hashing artifacts, reading YAML, formatting validation errors."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from lotus.core.errors import ConfigError, LotusError


def sha256_file(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_yaml_mapping(
    path: Path, what: str, error: type[LotusError] = ConfigError, empty_ok: bool = False
) -> dict[str, Any]:
    """The YAML mapping in ``path``; ``error`` (naming the file, and the line for bad YAML) otherwise."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise error(f"{what} {path} is not valid YAML{where}") from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise error(f"{what} {path} must hold a mapping at top level")
    return data


def format_validation_error(exc: ValidationError) -> str:
    """One line naming each invalid field, e.g. ``thermal.c_cpu_j_per_k: Field required``."""
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)
