"""Helpers shared by the CLI commands: JSON output, progress bars, scenario options."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from tqdm import tqdm


def print_json(doc: Any) -> None:
    """One JSON document on stdout (NaN becomes null)."""
    sys.stdout.write(json.dumps(_clean(doc), indent=2) + "\n")


def _clean(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if hasattr(x, "item"):
        return _clean(x.item())
    return x


def progress_bar(total: float, desc: str, unit: str = "s") -> tqdm:
    """A progress bar on stderr (hidden when stderr is not a terminal and the job is short)."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        leave=False,
        dynamic_ncols=True,
        disable=None,
        bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed}<{remaining}]",
    )
