"""Loading and unloading models while the daemon serves (Triton's model repository extension).

:class:`ModelControl` backs ``POST /v2/repository/index`` and ``/v2/repository/models/{name}/load``
and ``/unload``. A load reads the model from the model repository (``models.repository``, then the
shipped models), opens its ONNX sessions and warms it up on a helper thread, so frames of the other
models keep running on the inference worker; the warm model is then put in ``daemon.models`` (a
reload swaps it in atomically). An unload is queued on the inference worker, so the frames already
queued finish first; a request admitted just before the unload gets 404 instead of a frame. A frame
that is already running keeps its own reference to the model and finishes normally. One load or
unload runs at a time.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from lotus.core.errors import LotusError, ModelLoadError
from lotus.runtime.config import ModelConfig
from lotus.runtime.pipeline import LoadedModel, load_models, warm_up

if TYPE_CHECKING:
    from lotus.runtime.daemon import Daemon

log = logging.getLogger(__name__)


class ControlError(LotusError):
    """A load or unload request that cannot be done; ``status`` is the HTTP answer (400, 404, 409, 503)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ModelControl:
    """Load, unload and list the models of one daemon (see the module doc)."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.loading: set[str] = set()
        self.reasons: dict[str, str] = {}  # name -> why it is not loaded (unloaded, a load error)
        self._lock = asyncio.Lock()

    def _config(self, name: str) -> ModelConfig:
        """The configured ``models.load`` entry of ``name`` (its slo_ms, max_proposals), else the defaults."""
        for mc in self.daemon.settings.models.load:
            if mc.name == name:
                return mc
        try:
            return ModelConfig(name=name)
        except ValidationError:
            raise ControlError(f"invalid model name {name!r}: use letters, digits, '.', '_' or '-'") from None

    def _check_serving(self) -> None:
        if not self.daemon.ready or self.daemon.pipeline is None:
            state = "shutting down" if self.daemon.stopping else f"not ready yet ({self.daemon.status_text})"
            raise ControlError(f"daemon {state}", 503)

    def _open(self, mc: ModelConfig) -> LoadedModel:
        """Load and warm one model (blocking; runs on a helper thread)."""
        cfg = self.daemon.settings.models.model_copy(update={"load": [mc]})
        model = load_models(cfg)[mc.name]
        warm_up(model, cfg.warmup_frames)
        return model

    async def load(self, name: str) -> LoadedModel:
        """Load (or reload) model ``name`` from the repository and serve it once warm.

        :raises ControlError: 404 not in the repository, 400 it fails to load, 503 daemon not ready
        """
        mc = self._config(name)
        self._check_serving()
        async with self._lock:
            self._check_serving()
            try:
                self.daemon.settings.models.model_repository().find(name)
            except ModelLoadError as exc:
                raise ControlError(str(exc), 404) from None
            self.loading.add(name)
            try:
                model = await asyncio.to_thread(self._open, mc)
            except LotusError as exc:
                self.reasons[name] = f"load failed: {exc}"
                raise ControlError(f"failed to load model {name!r}: {exc}") from None
            finally:
                self.loading.discard(name)
            old = self.daemon.models.get(name)
            self.daemon.set_model(name, model)
            self.reasons.pop(name, None)
            what = f"reloaded (was {old.version})" if old is not None else "loaded"
            log.info("model %s %s %s on %s", name, model.version, what, model.provider)
            return model

    async def unload(self, name: str) -> None:
        """Stop serving model ``name`` once the frames already queued have run.

        :raises ControlError: 404 not loaded, 409 the streaming source runs it, 503 daemon not ready
        """
        self._check_serving()
        async with self._lock:
            self._check_serving()
            d = self.daemon
            if name not in d.models:
                raise ControlError(f"model {name!r} is not loaded; loaded: {', '.join(d.models) or 'none'}", 404)
            if d.settings.source.uri and name == (d.settings.source.model or d.default_model):
                raise ControlError(f"model {name!r} runs the streaming source {d.settings.source.uri}", 409)
            loop = asyncio.get_running_loop()
            try:
                await loop.run_in_executor(d.executor, d.set_model, name, None)
            except RuntimeError:  # the executor was shut down: the daemon is stopping
                raise ControlError("daemon shutting down", 503) from None
            d.model_stats.drop(name)
            self.reasons[name] = "unloaded"
            log.info("model %s unloaded", name)

    def index(self, ready_only: bool = False) -> list[dict[str, Any]]:
        """Triton's repository index: every model the repository resolves, plus the loaded ones."""
        d = self.daemon
        try:
            found = d.settings.models.model_repository().models()
        except (OSError, LotusError) as exc:
            log.warning("cannot list the model repository: %s", exc)
            found = {}
        out: list[dict[str, Any]] = []
        for name in sorted(set(found) | set(d.models)):
            model = d.models.get(name)
            if model is not None:
                entry = {"name": name, "version": model.version, "state": "READY" if d.ready else "UNAVAILABLE",
                         "reason": "" if d.ready else d.status_text}  # fmt: skip
            elif name in self.loading:
                entry = {"name": name, "state": "LOADING", "reason": "loading"}
            else:
                entry = {"name": name, "state": "UNAVAILABLE", "reason": self.reasons.get(name, "not loaded")}
                version = _manifest_version(found[name]) if name in found else None
                if version is not None:
                    entry["version"] = version
            if not ready_only or entry["state"] == "READY":
                out.append(entry)
        return out


def _manifest_version(path: Path) -> str | None:
    from lotus.runtime.models.manifest import read_manifest

    try:
        return str(read_manifest(path, verify=False).version)
    except LotusError:
        return None
