"""The daemon's parts put together: board, models, governor, pipeline, worker thread, lifecycle.

:class:`Daemon` is built from :class:`~runtime.config.Settings`. ``start()`` opens the board,
saves its original governors/limits to the state file and takes control (mode ``active``),
loads and warms the models, and marks the daemon ready; a ``--source`` that can never work
(:func:`~lotus.runtime.source.check_source`) fails it first, before the board is touched.
``infer()`` admits a frame into the bounded queue (``OverloadedError`` when full) and runs it on
the single inference thread; every finished frame is published on :attr:`Daemon.telemetry`
(:mod:`lotus.runtime.events`). ``ready`` means frames can run; a live source that is down does
not change it (the API keeps serving) but shows in ``status_text`` and ``source_stats``.
``stop()`` restores the clocks; it is idempotent and runs from the app's lifespan ``finally``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from lotus.core.errors import ConfigError, DeviceError, NotReadyError, OverloadedError
from lotus.runtime.config import BoardConfig, Settings
from lotus.runtime.events import EventBus, frame_event, skip_event
from lotus.runtime.governor_loop import GovernorController
from lotus.runtime.hw.base import Board
from lotus.runtime.metrics import Metrics
from lotus.runtime.model_control import ModelControl
from lotus.runtime.model_stats import ModelStats
from lotus.runtime.notify import Notifier
from lotus.runtime.observation import ObservationBuilder, action_table, board_trip_c
from lotus.runtime.pipeline import (
    FrameOrigin,
    FramePipeline,
    FrameResult,
    LoadedModel,
    decode_image,
    load_models,
    warm_up,
)
from lotus.runtime.telemetry import sample_of

log = logging.getLogger(__name__)
INLINE_DECODE_BYTES = 256 * 1024  # compressed images up to this size decode on the event loop
VERSION = "0.1.0"


DEFAULT_BUDGET_W = 15.0  # Orin Nano's default nvpmodel mode


def board_budget_w(board: Board, configured: float | None) -> float:
    """The power budget the observation divides power by, W: the configured one, else the sim
    board's power-mode budget (as training saw it), else a watt figure in the nvpmodel mode's name
    (``7W``, ``15W``), else :data:`DEFAULT_BUDGET_W`."""
    import re

    from lotus.runtime.hw.sim import SimBoard

    if configured is not None:
        return configured
    if isinstance(board, SimBoard):
        return float(board.budget_w)
    try:
        mode = board.nvpmodel()
    except (OSError, DeviceError):
        mode = None
    match = re.fullmatch(r"(\d+(?:\.\d+)?)W", (mode.name or "") if mode else "")
    return float(match.group(1)) if match else DEFAULT_BUDGET_W


def open_board(cfg: BoardConfig) -> Board:
    """The configured backend; ``auto`` falls back to the simulated board when nothing is found."""
    from lotus.runtime.hw.detect import detect_board
    from lotus.runtime.hw.sim import SimBoard, ensure_registered

    ensure_registered()

    if cfg.backend == "sim":
        return SimBoard(cfg.sim_board, power_mode=cfg.sim_power_mode, ambient_c=cfg.sim_ambient_c, trip_c=cfg.trip_c)
    if cfg.backend == "nvml":
        from lotus.runtime.hw.nvml import detect as nvml_detect

        board: Board | None = nvml_detect(cfg.sysfs_root, allow_set=cfg.allow_nvml_set)
        if board is None:
            raise DeviceError("board backend 'nvml' found no NVIDIA GPU (is the driver loaded?)")
        return board
    if cfg.backend == "auto":
        board = detect_board(cfg.sysfs_root)
        if board is None:
            log.warning("no controllable board under %s: using the simulated board", cfg.sysfs_root)
            return SimBoard(
                cfg.sim_board, power_mode=cfg.sim_power_mode, ambient_c=cfg.sim_ambient_c, trip_c=cfg.trip_c
            )
        return board
    board = detect_board(cfg.sysfs_root, prefer=cfg.backend)
    assert board is not None
    return board


class Daemon:
    """Everything one ``lotus serve`` process runs (see module doc)."""

    def __init__(self, settings: Settings, board: Board | None = None) -> None:
        self.settings = settings
        self.board: Board | None = board
        self.metrics = Metrics()
        self.telemetry = EventBus(settings.server.telemetry_samples)
        self.notifier = Notifier()
        self.models: dict[str, LoadedModel] = {}
        self.governor: GovernorController | None = None
        self.pipeline: FramePipeline | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lotus-infer")
        self.pending = 0
        self.ready = False
        self.stopping = False
        self.state_saved = False
        self.started_at = time.time()
        self.status_text = "starting"
        self.source_stats: dict[str, Any] | None = None  # run_source's counters and state
        self._ready_text = ""  # the status line once ready, before any source state
        self._frame_meta = threading.local()  # the running frame's origin/decode time (worker thread)
        self.token = settings.governor.resolve_token()
        self.model_stats = ModelStats()  # per-model request statistics (/v2/models/stats)
        self.model_control = ModelControl(self)  # load/unload while serving (/v2/repository)
        self._stopped = False

    # --- lifecycle ------------------------------------------------------------------------------
    @property
    def default_model(self) -> str:
        return self.settings.models.load[0].name

    @property
    def provider(self) -> str | None:
        return next((m.provider for m in self.models.values()), None)

    def _status(self, text: str) -> None:
        self.status_text = text
        self.notifier.status(text)
        log.info("%s", text)

    def start(self) -> None:
        """Open the board, take control, load and warm the models. Blocking; raises LotusError."""
        s = self.settings
        if s.source.uri:
            from lotus.runtime.source import check_source

            self._status(f"checking source {s.source.uri}")
            check_source(s.source)
        self._status("opening board")
        if self.board is None:
            self.board = open_board(s.board)
        board = self.board
        actions = action_table(board)
        has_gpu = any(d.kind == "gpu" for d in board.domains.values())
        budget_w = board_budget_w(board, s.board.budget_w)
        builder = ObservationBuilder(actions, board_trip_c(board, s.board.trip_c), budget_w)
        if s.governor.mode == "active":
            self._take_control()
        self.governor = GovernorController(
            board,
            actions,
            s.governor.policy,
            s.governor.mode,
            on_control=self._control,
            has_gpu=has_gpu,
            margin_c=s.governor.shield_margin_c,
        )
        self._status("loading models")
        self.models = load_models(s.models)
        for name, model in self.models.items():
            self._status(f"warming up {name} on {model.provider}")
            warm_up(model, s.models.warmup_frames)
        self.governor.set_served_deadlines({name: m.deadline_ms for name, m in self.models.items()})
        self.pipeline = FramePipeline(board, self.models, self.governor, builder, self.metrics, self._on_frame)
        import onnxruntime as ort

        self.metrics.build.info(
            {"version": VERSION, "ort_version": ort.__version__, "provider": self.provider or "none",
             "board": board.backend, "models": ",".join(self.models)}
        )  # fmt: skip
        self._policy_info()
        self.ready = True
        text = (
            f"ready: {', '.join(self.models)} on {self.provider}, board {board.backend}, governor {self.governor.mode}"
        )
        self._ready_text = text
        text = self._with_source(text)
        self.status_text = text
        self.notifier.ready(text)
        log.info("%s", text)

    def _with_source(self, text: str) -> str:
        """``text`` plus the streaming source's state, when one is configured and has one."""
        st = self.source_stats
        if not st or not st.get("state"):
            return text
        state, reason = st["state"], st.get("reason")
        if state == "retrying":
            part = f"source not ready: {reason}; retry {st.get('retries', 0)} in {st.get('retry_in_s')} s"
        elif reason:
            part = f"source {state}: {reason}"
        else:
            part = f"source {state}"
        return f"{text}; {part}"

    def set_source_state(self, state: str, reason: str | None, retry_in_s: float | None = None) -> None:
        """Record the streaming source's state (opening, streaming, retrying, ended, failed) and why.

        Shown in ``source_stats`` and, once the daemon is ready, in ``status_text`` (``/readyz``) and
        the systemd STATUS line; ``retrying`` and ``failed`` are logged as warnings.
        """
        st = self.source_stats if self.source_stats is not None else {}
        changed = (st.get("state"), st.get("reason")) != (state, reason)
        st.update(state=state, reason=reason, retry_in_s=retry_in_s)
        self.source_stats = st
        if changed and state in ("retrying", "failed"):
            log.warning("source %s %s: %s", st.get("uri"), state, reason)
        elif changed:
            log.info("source %s %s", st.get("uri"), state)
        if self.ready and self._ready_text:
            self.status_text = self._with_source(self._ready_text)
            self.notifier.status(self.status_text)

    def _policy_info(self) -> None:
        if self.governor is not None:
            self.metrics.policy.info(
                {
                    "policy": self.governor.policy_spec,
                    "deciding": self.governor.deciding,
                    "version": self.governor.version,
                    "mode": self.governor.mode,
                }  # fmt: skip
            )

    def _take_control(self) -> None:
        """Write the crash-recovery state file, then let the open board take control.

        The board saves its own originals and gives them back in :meth:`restore_clocks`; the file
        is only for ``lotus restore-clocks`` after a crash. A file a crashed run left holds the
        real originals (the clocks now are its pinned ones): the board adopts them.
        """
        from lotus.runtime.hw.state import save_state

        board = self.board
        assert board is not None
        originals: list[dict[str, Any]] = []
        if board.backend != "sim":
            try:
                state = save_state(board, self.settings.board.state_file)
            except OSError as exc:
                raise ConfigError(
                    f"cannot write clock state file {self.settings.board.state_file}: {exc.strerror or exc} "
                    "(set board.state_file to a writable path)"
                ) from None
            self.state_saved = True
            originals = state["records"]
        lines = board.take_control(originals) if originals else board.take_control()
        for line in lines:
            log.info("control: %s", line)

    def restore_clocks(self) -> None:
        """Give the original governors/limits back through the open board (idempotent).

        The state file is deleted once everything is back; after a failed write it is kept for
        ``lotus restore-clocks`` (and the board retries on the next release or on close).
        """
        board = self.board
        if board is None:
            return
        report = board.release_control()
        for line in report.restored:
            log.info("restored %s", line)
        if report.failed:
            log.error("clock restore failed: %s", "; ".join(report.failed))
            return
        if self.state_saved:
            Path(self.settings.board.state_file).unlink(missing_ok=True)
            self.state_saved = False

    def _control(self, take: bool) -> None:
        """The governor's hook: take control entering ``active``, give it back leaving it.

        Giving back never raises (failures are logged, the state file kept). A failed take gives
        back whatever it changed, then raises its DeviceError/ConfigError: the switch to
        ``active`` did not happen (the API answers 400) and the daemon keeps serving.
        """
        if not take:
            self.restore_clocks()
            return
        try:
            self._take_control()
        except (DeviceError, ConfigError) as exc:
            log.error("taking clock control failed (%s): giving the clocks back", exc)
            self.restore_clocks()
            raise

    def stop(self) -> None:
        """Stop accepting work, wait for the worker, restore clocks. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self.stopping, self.ready = True, False
        self.notifier.stopping()
        self.executor.shutdown(wait=True, cancel_futures=True)
        try:
            self.restore_clocks()
        finally:
            if self.board is not None:
                self.board.close()

    # --- work -------------------------------------------------------------------------------------
    def _on_frame(self, result: FrameResult) -> None:
        """The pipeline's per-frame hook (worker thread): complete the result, publish its event."""
        meta = self._frame_meta
        origin: FrameOrigin | None = getattr(meta, "origin", None)
        decode_ms: float | None = getattr(meta, "decode_ms", None)
        if origin is not None:
            result.origin = origin
            decode_ms = origin.decode_ms if decode_ms is None else decode_ms
        if decode_ms is not None:
            result.timings_ms["decode"] = decode_ms
        if result.skipped is not None:  # the admission rule skipped it: a notice, not a telemetry sample
            self.telemetry.notify(skip_event(result), result.source)
            if self.notifier.watchdog_due():
                self.notifier.ping()
            return
        sample = sample_of(result)
        self.telemetry.publish(sample, lambda: frame_event(result, sample))
        if self.notifier.watchdog_due():
            self.notifier.ping()

    def set_model(self, name: str, model: LoadedModel | None) -> None:
        """Serve ``model`` under ``name`` from the next frame on; None stops serving ``name``.

        Called by :mod:`lotus.runtime.model_control`; a frame already running keeps its model.
        """
        tables = [self.models]
        if self.pipeline is not None and self.pipeline.models is not self.models:
            tables.append(self.pipeline.models)
        for table in tables:
            if model is None:
                table.pop(name, None)
            else:
                table[name] = model
        if self.governor is not None:
            self.governor.set_served_deadlines({n: m.deadline_ms for n, m in self.models.items()})

    def check_model(self, name: str | None) -> str:
        name = name or self.default_model
        if name not in self.models:
            raise KeyError(name)
        return name

    async def infer(
        self,
        data: Any,
        model: str,
        source: str = "api",
        next_frame_at: float | None = None,
        admit: bool = True,
        origin: FrameOrigin | None = None,
    ) -> FrameResult:
        """Run one frame on the worker thread. ``admit``: refuse with OverloadedError when the queue is full.

        ``origin``: where a ``--source`` frame came from (its index and timestamps, for the events).
        """
        if not self.ready or self.pipeline is None:
            raise NotReadyError("warming up" if not self.stopping else "shutting down")
        if admit and self.pending >= self.settings.server.queue_size:
            self.metrics.rejected.labels("overload").inc()
            raise OverloadedError(f"inference queue full ({self.pending} frames)")
        self.pending += 1
        self.metrics.queue_depth.set(self.pending)
        t_enq = time.perf_counter()
        pipeline = self.pipeline
        loop = asyncio.get_running_loop()
        decode_ms = None
        if isinstance(data, bytes | bytearray):
            # decode off the inference thread, so the next image decodes while this one infers;
            # small images right here on the event loop (a thread hand-off costs more than they do)
            try:
                if len(data) <= INLINE_DECODE_BYTES:
                    data = decode_image(bytes(data))
                else:
                    data = await loop.run_in_executor(None, decode_image, bytes(data))
            except BaseException:
                self.pending -= 1
                self.metrics.queue_depth.set(self.pending)
                raise
            decode_ms = (time.perf_counter() - t_enq) * 1e3
            t_enq = time.perf_counter()

        def job() -> FrameResult:
            meta = self._frame_meta  # read by _on_frame, which runs inside process on this thread
            meta.origin, meta.decode_ms = origin, decode_ms
            try:
                result = pipeline.process(data, model, next_frame_at, source, time.perf_counter() - t_enq)
            finally:
                meta.origin = meta.decode_ms = None
            if decode_ms is not None:
                result.timings_ms["decode"] = decode_ms
            return result

        fut = loop.run_in_executor(self.executor, job)

        def done(_: Any) -> None:
            self.pending -= 1
            self.metrics.queue_depth.set(self.pending)

        fut.add_done_callback(done)
        return await asyncio.wait_for(asyncio.shield(fut), self.settings.server.request_timeout_s)

    async def heartbeat(self) -> None:
        """Systemd watchdog while idle: a sensor read on the inference thread proves it is alive."""
        if self.notifier.watchdog_s is None:
            return
        period = self.notifier.watchdog_s / 4
        loop = asyncio.get_running_loop()
        while not self.stopping:
            await asyncio.sleep(period)
            if self.ready and self.notifier.watchdog_due() and self.board is not None:
                await loop.run_in_executor(self.executor, self.board.snapshot)
                self.notifier.ping()

    def debug_info(self) -> dict[str, Any]:
        return {
            "torch_imported": "torch" in sys.modules,
            "sb3_imported": "stable_baselines3" in sys.modules,
            "uptime_s": round(time.time() - self.started_at, 1),
            "source": None if self.source_stats is None else {
                k: self.source_stats.get(k) for k in ("uri", "state", "reason", "retries", "retry_in_s")
            },
        }  # fmt: skip
