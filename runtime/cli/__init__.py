"""The daemon's commands: ``serve``, ``check-config``, ``boards``, ``restore-clocks``, ``bench serve``.

Training, evaluation and compression commands belong to their own packages (``lotus.governor``,
``lotus.detectors``); the root in :mod:`lotus.core.cli` mounts them all.
"""

from __future__ import annotations

import typer

from lotus.core.cli import BENCH_HELP, group
from lotus.runtime.cli import bench, boards, models, serve


def register(app: typer.Typer) -> None:
    """Mount the daemon's commands on the root ``lotus`` app."""
    app.command("serve", help="Run the inference daemon: HTTP API, governor, optional streaming source.")(serve.serve)
    app.command("check-config", help="Validate a daemon config file without starting anything.")(serve.check_config)
    app.add_typer(boards.app, name="boards", help="Detected board, sensors and controllable clocks; fake sysfs trees.")
    app.command("restore-clocks", help="Restore the governors, clock limits and fan saved by the daemon.")(
        boards.restore_clocks
    )
    group(app, "bench", BENCH_HELP).command("serve")(bench.bench_serve)
    app.add_typer(models.app, name="models", help="Your model repository: import ONNX models, list, show, verify.")
