"""The ``lotus`` command line: a thin root that mounts the commands each package contributes.

Each package (``lotus.runtime``, ``lotus.governor``, ``lotus.envs``, ``lotus.detectors``) declares
a ``register(app)`` function under the ``lotus.cli`` entry-point group in ``pyproject.toml``. The
root loads them, so it imports none of those packages itself and the layering holds: the daemon's
commands live in the daemon package, training commands in the governor package. Command modules
import their heavy dependencies inside the command; a command whose optional extra is missing
ends with one line naming the extra (:func:`requires_extra`), exit code 2.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from typing import ParamSpec, TypeVar

import typer

from lotus.core.errors import LotusError, MissingExtraError

P = ParamSpec("P")
R = TypeVar("R")
ENTRY_POINT_GROUP = "lotus.cli"
DISTRIBUTION = "lotus-edge"

# top-level modules each optional extra provides (what a ModuleNotFoundError is matched against)
EXTRA_MODULES: dict[str, frozenset[str]] = {
    "train": frozenset(
        {
            "torch",
            "stable_baselines3",
            "tensorboard",
            "onnx",
            "onnxscript",
            "faster_coco_eval",
            "onnxconverter_common",
            "gymnasium",
            "matplotlib",
        }
    ),  # fmt: skip
    "sim": frozenset({"gymnasium", "matplotlib"}),
    "ocr": frozenset({"rapidocr_onnxruntime"}),
    "video": frozenset({"cv2"}),
    "cluster": frozenset({"ray"}),
}


def version() -> str:
    """The installed distribution's version (``0+unknown`` when run from an uninstalled tree)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "0+unknown"


@contextmanager
def requires_extra(extra: str, command: str) -> Iterator[None]:
    """Turn a missing module of ``extra`` inside the block into :class:`MissingExtraError`.

    :param extra: name of the optional dependency group (a key of :data:`EXTRA_MODULES`).
    :param command: the command as typed, e.g. ``"lotus train"``, for the message.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").split(".")[0]
        if top not in EXTRA_MODULES.get(extra, frozenset()):
            raise
        raise MissingExtraError(
            f"{command} needs the {extra} extra: pip install '{DISTRIBUTION}[{extra}]' (missing module {top})"
        ) from None


def needs_extra(extra: str, command: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator form of :func:`requires_extra` for a whole command (keeps its signature for typer)."""

    def wrap(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            with requires_extra(extra, command):
                return fn(*args, **kwargs)

        return run

    return wrap


BENCH_HELP = "Measure: simulator and daemon speed, what a room allows."  # the ``bench`` group, shared by packages


def group(app: typer.Typer, name: str, help_text: str) -> typer.Typer:
    """The sub-command group ``name`` of ``app``, created on first use (packages share groups)."""
    for info in app.registered_groups:
        if info.name == name and info.typer_instance is not None:
            return info.typer_instance
    sub = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    app.add_typer(sub, name=name, help=help_text)
    return sub


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"lotus {version()}")
        raise typer.Exit()


def build_app(registrars: list[Callable[[typer.Typer], None]] | None = None) -> typer.Typer:
    """The root app with every contributed command mounted.

    :param registrars: ``register(app)`` functions; default: every ``lotus.cli`` entry point.
    """
    app = typer.Typer(
        name="lotus",
        help="On-device two-stage inference with a learned CPU+GPU clock governor.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(
        show_version: bool = typer.Option(
            False, "--version", callback=_version_callback, is_eager=True, help="print the version and exit"
        ),
    ) -> None:
        """On-device two-stage inference with a learned CPU+GPU clock governor."""

    if registrars is None:
        eps = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
        registrars = [ep.load() for ep in eps]
    for register in registrars:
        register(app)
    return app


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``lotus`` console script: user errors become one line on stderr, exit 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        build_app()(args=argv, standalone_mode=True)
    except LotusError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
