"""``lotus serve`` (the daemon) and ``lotus check-config``.

``serve`` validates the configuration (file, then ``LOTUS_*`` environment, then these flags),
runs uvicorn in this process with the app of :func:`runtime.api.create_app`, and restores the
clocks on SIGTERM/SIGINT (uvicorn's handlers start the lifespan shutdown) or on a fatal error
(``finally``). Also runnable as ``python -m lotus.runtime.cli serve ...``.
"""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path
from typing import Any

import typer

ConfigOpt = typer.Option(None, "--config", "-c", help="YAML config file (see deploy/config.example.yaml).")


def _server_class():  # noqa: ANN202 - a uvicorn.Server subclass, imported lazily
    import contextlib
    import signal
    import threading

    import uvicorn

    class DaemonServer(uvicorn.Server):
        """uvicorn's server with our own SIGTERM/SIGINT handlers: set ``should_exit`` (the lifespan
        then restores the clocks) and exit 0, instead of re-raising the signal after shutdown."""

        @contextlib.contextmanager
        def capture_signals(self):  # noqa: ANN202
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    return DaemonServer


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _overrides(**flags: Any) -> dict[str, Any]:
    """Nested override dict from the flags that were given (None = not given)."""
    out: dict[str, Any] = {}
    for dotted, value in flags.items():
        if value is None:
            continue
        section, _, key = dotted.partition("__")
        out.setdefault(section, {})[key] = value
    return out


def serve(
    config: Path | None = ConfigOpt,
    host: str | None = typer.Option(None, help="Listen address \\[server.host]."),
    port: int | None = typer.Option(None, help="TCP port, 0 picks a free one \\[server.port]."),
    backend: str | None = typer.Option(None, help="auto|jetson|linux|nvml|sim \\[board.backend]."),
    sysfs_root: Path | None = typer.Option(None, help="Root of the sysfs tree \\[board.sysfs_root]."),
    state_file: Path | None = typer.Option(None, help="Clock state file \\[board.state_file]."),
    model: list[str] | None = typer.Option(None, "--model", "-m", help="Model to load (repeat) \\[models.load]."),
    repository: Path | None = typer.Option(
        None,
        "--model-repository",
        "--repository",
        help="Your model repository: <name>/manifest.yaml folders, searched before the shipped models, "
        "e.g. runs/compress/models \\[models.repository, env LOTUS_MODELS__REPOSITORY].",
    ),
    shipped_models: bool | None = typer.Option(
        None,
        "--shipped-models/--no-shipped-models",
        help="Fall back to the read-only models shipped with lotus \\[models.shipped_models].",
    ),
    threads: int | None = typer.Option(None, help="ORT intra-op threads \\[models.threads]."),
    providers: str | None = typer.Option(
        None,
        help="ORT execution providers in order, comma-separated: tensorrt,cuda,cpu or full ORT names "
        "\\[models.providers].",
    ),
    policy: str | None = typer.Option(None, help="Governor policy \\[governor.policy]."),
    mode: str | None = typer.Option(None, help="active|shadow|off \\[governor.mode]."),
    source: str | None = typer.Option(None, help="video.mp4 | DIR | camera:0 | rtsp://... \\[source.uri]."),
    log_level: str | None = typer.Option(None, help="debug|info|warning|error \\[server.log_level]."),
) -> None:
    """Run the inference daemon: HTTP API, governor, optional streaming source."""
    import uvicorn

    from lotus.core.errors import ConfigError
    from lotus.runtime.api import create_app
    from lotus.runtime.config import load_settings, parse_providers

    try:
        provider_list = None if providers is None else parse_providers(providers)
    except ConfigError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    flags = _overrides(
        server__host=host, server__port=port, board__backend=backend, board__sysfs_root=sysfs_root,
        board__state_file=state_file, models__repository=repository, models__shipped_models=shipped_models,
        models__threads=threads, models__providers=provider_list,
        governor__policy=policy, governor__mode=mode, source__uri=source, server__log_level=log_level,
    )  # fmt: skip
    if model:
        flags.setdefault("models", {})["load"] = [{"name": m} for m in model]
    settings = load_settings(config, flags)
    if settings.source.uri:  # a source that can never work: one error line, exit 2, before anything starts
        from lotus.runtime.source import check_source

        check_source(settings.source)
    level = settings.server.log_level
    logging.getLogger().setLevel(level.upper())
    logging.getLogger("runtime").setLevel(level.upper())
    if settings.server.port == 0:
        settings.server.port = _free_port(settings.server.host)
    fatal: list[BaseException] = []
    server: uvicorn.Server | None = None

    def on_fatal(exc: BaseException) -> None:
        fatal.append(exc)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_fatal=on_fatal)
    cfg = uvicorn.Config(
        app, host=settings.server.host, port=settings.server.port, lifespan="on", log_level=level,
        ws_max_size=settings.server.max_body_bytes, timeout_graceful_shutdown=10, access_log=level == "debug",
    )  # fmt: skip
    server = _server_class()(cfg)
    shown = "127.0.0.1" if settings.server.host in ("0.0.0.0", "::") else settings.server.host
    url = f"http://{shown}:{settings.server.port}"
    model_name = settings.models.load[0].name
    print(f"lotus serving {', '.join(m.name for m in settings.models.load)} on {url}  (API docs: {url}/docs)")
    print(f"try: curl -s -H 'Content-Type: image/jpeg' --data-binary @image.jpg '{url}/v1/detect?model={model_name}'")
    sys.stdout.flush()
    try:
        server.run()
    finally:
        app.state.daemon.stop()  # idempotent: the lifespan normally did it already
    if fatal:
        from lotus.core.errors import LotusError

        exc = fatal[0]
        if isinstance(exc, LotusError):
            raise exc
        raise SystemExit(f"error: start-up failed: {type(exc).__name__}: {exc}")


def check_config(path: Path = typer.Argument(..., help="YAML config file to validate.")) -> None:
    """Validate a config file (and the environment overrides) without starting anything."""
    from lotus.runtime.config import load_settings

    settings = load_settings(path)
    names = ", ".join(m.name for m in settings.models.load)
    typer.echo(
        f"{path}: ok (board {settings.board.backend}, models {names}, governor {settings.governor.mode}/"
        f"{settings.governor.policy}, listen {settings.server.host}:{settings.server.port})"
    )
