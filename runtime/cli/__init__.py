"""The ``lotus`` command line.

Each command group lives in its own module and imports its heavy dependencies lazily, inside
the command, so ``lotus --help`` stays fast and the daemon never pulls in torch.
"""

from __future__ import annotations

import logging
import sys

import typer

from envs.errors import LotusError
from runtime.cli import bench, boards, detectors, governor, serve, sim

app = typer.Typer(
    name="lotus",
    help="On-device two-stage inference with a learned CPU+GPU clock governor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("serve", help="Run the inference daemon: HTTP API, governor, optional streaming source.")(serve.serve)
app.command("check-config", help="Validate a daemon config file without starting anything.")(serve.check_config)
app.command("sim", help="Run one simulated rollout of a policy on a board and plot it.")(sim.sim)
app.command("train", help="Train a governor in the simulator (SB3) and export it to ONNX.")(governor.train)
app.command("eval", help="Compare governors on identical simulated scenarios: table, JSON, plots.")(governor.evaluate)
app.add_typer(detectors.app, name="detectors", help="Two-stage detector: train, export, eval, dataset, ocr-manifest.")
app.command("compress", help="Prune, quantize and measure the detector; write the report and ship frcnn-lite.")(
    detectors.compress
)
app.add_typer(bench.app, name="bench", help="Measure speed: simulator, daemon.")
app.add_typer(boards.app, name="boards", help="Detected board, sensors and controllable clocks; fake sysfs trees.")
app.command("restore-clocks", help="Restore the governors, clock limits and fan saved by the daemon.")(
    boards.restore_clocks
)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lotus`` console script: user errors become one line on stderr."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app(args=argv, standalone_mode=True)
    except LotusError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
