"""One frame through the daemon: decode -> stage 1 -> governor -> stage 2 -> governor -> result.

:class:`FramePipeline.process` runs on the single inference worker thread (ORT releases the GIL,
so the event loop stays responsive). Around the two ONNX stages it reads the board's sensors,
builds the shared observation (:mod:`runtime.observation`), asks the governor for the stage-2
clocks (proposal count known) and, after the frame, for the next frame's clocks (in streaming
mode ``next_frame_in_ms`` comes from the source's rate, so clocks can rise before the frame is
due). A single-stage model (``onnx-detector``) gets one decision per frame instead, taken after
decoding and before its one graph runs. Energy per frame is the board's energy counter difference
when it has one, else the trapezoid integral of the power read at the frame's sensor reads.

**Admission.** A ``--source`` stream frame (``source="source"``) is first offered to the shield's
admission rule (:meth:`GovernorController.admit`, active mode only): within a few C of the trip
point it skips frames, which are not run; the result comes back with ``skipped="thermal"`` (or
``"policy"`` for a policy that serves a share of the frames), counted in
``lotus_frames_skipped_total`` and published as a ``skipped`` event. Frames API clients send
(``/v1/detect``, WebSocket, KServe) are always run.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lotus.core.errors import BadInputError, ConfigError, ModelLoadError
from lotus.runtime.config import ModelsConfig
from lotus.runtime.governor_loop import Decision, GovernorController
from lotus.runtime.hw.base import Board, Snapshot
from lotus.runtime.observation import ObservationBuilder, SensorView, sensor_view

if TYPE_CHECKING:  # onnxruntime is imported when the models load, not with this module
    import onnxruntime as ort

    from lotus.runtime.metrics import Metrics
    from lotus.runtime.models.base import Detection, ModelPipeline
    from lotus.runtime.models.manifest import ModelManifest

log = logging.getLogger(__name__)
MAX_PIXELS = 40_000_000  # decoded images above this are refused (decompression bombs)
NO_DECISION = Decision(None, None, None, False, 0.0, 0.0)  # the in-frame decision a single-stage model skips
SKIPPABLE_SOURCES = frozenset({"source"})  # frame sources the admission rule may skip (never a client's request)


def decode_image(data: bytes) -> np.ndarray:
    """JPEG/PNG/... bytes -> ``[H, W, 3]`` uint8 RGB.

    :raises BadInputError: (400) empty, not a readable image, or more than :data:`MAX_PIXELS` pixels;
        whatever the decoder raises on a malformed file (Pillow's decoders raise many unrelated
        types, and DecompressionBombError) becomes this, so a bad image is never a 5xx
    """
    from PIL import Image

    if not data:
        raise BadInputError("empty body: send a JPEG or PNG image")
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PIXELS:
                raise BadInputError(f"image is {img.width}x{img.height}: more than {MAX_PIXELS} pixels")
            return np.asarray(img.convert("RGB"))
    except BadInputError:
        raise
    except MemoryError:
        raise BadInputError(f"image too large to decode (limit {MAX_PIXELS} pixels)") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the payload's fault
        raise BadInputError(f"body is not a readable image ({type(exc).__name__}: {exc})") from None


# --- ORT providers and models ------------------------------------------------------------------
def probe_providers(preference: list[str], warn: bool = True) -> list[str]:
    """The preferred providers this onnxruntime build offers, in order, always ending with CPU.

    Missing ones are logged with the provider used instead: a WARNING when ``warn``, else INFO.
    """
    import onnxruntime as ort

    available = ort.get_available_providers()
    chosen = [p for p in preference if p in available]
    missing = [p for p in preference if p not in available]
    if "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    if missing:
        gpu = any(p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") for p in missing)
        hint = "; GPU providers need onnxruntime-gpu (on Jetson the JetPack wheel), see docs/gpu.md" if gpu else ""
        log.log(
            logging.WARNING if warn else logging.INFO,
            "ONNX Runtime provider %s not available in onnxruntime %s (it has %s); using %s instead%s",
            ", ".join(missing), ort.__version__, ", ".join(available), chosen[0], hint,
        )  # fmt: skip
    return chosen


def _gpu_visible() -> bool:
    """Whether this machine shows an NVIDIA GPU (a desktop driver or a Jetson), whatever onnxruntime offers."""
    return any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/nvhost-ctrl-gpu", "/etc/nv_tegra_release"))


def session_options(threads: int, spinning: bool) -> ort.SessionOptions:
    """ORT options: ``threads`` intra-op threads, one inter-op thread, spinning on or off."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    spin = "1" if spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return opts


@dataclass
class LoadedModel:
    """A model ready to serve: its pipeline, provider and per-model targets.

    :param name: the name it is served under (its folder name in the repository)
    :param path: the manifest it was loaded from
    :param shipped: loaded from the read-only shipped models (not from ``models.repository``)
    :param deadline_ms: per-frame latency target, ms (config ``slo_ms``, else the manifest's default)
    :param max_proposals: the most proposals stage 1 can produce (normalises the observation)
    :param proposal_cap: cap on proposals passed to stage 2 (None: all)
    :param version: the version served: the manifest's ``version`` (its folder number when unset)
    """

    name: str
    manifest: ModelManifest
    pipeline: ModelPipeline
    provider: str
    deadline_ms: float
    max_proposals: int
    proposal_cap: int | None
    version: str
    path: Path | None = None
    shipped: bool = False

    @property
    def kind(self) -> str:
        return str(self.manifest.kind)

    def io_spec(self) -> dict[str, Any]:
        """The tensors as served, KServe v2 metadata style, plus each ONNX graph's tensors with their roles.

        ``inputs``/``outputs``: what ``/v2/models/{name}/infer`` takes and returns (the same for
        every kind: an RGB image in, detections out). ``stages``: stage -> ``inputs``/``outputs``
        of the model's own graphs, each ``{"name", "datatype", "shape", "role"}`` (-1: dynamic dim).
        """
        kserve = {"float32": "FP32", "float16": "FP16", "int64": "INT64", "int32": "INT32", "uint8": "UINT8"}
        stages = {
            st.name: {
                side: [
                    {
                        "name": t.name,
                        "datatype": kserve[t.dtype],
                        "role": t.role,
                        "shape": [d if isinstance(d, int) else -1 for d in t.shape],
                    }
                    for t in getattr(st, side)
                ]  # fmt: skip
                for side in ("inputs", "outputs")
            }
            for st in self.manifest.stages
        }
        return {
            "inputs": [{"name": "image", "datatype": "UINT8", "shape": [-1, -1, 3]}],
            "outputs": [
                {"name": "boxes", "datatype": "FP32", "shape": [-1, 4]},
                {"name": "scores", "datatype": "FP32", "shape": [-1]},
                {"name": "labels", "datatype": "BYTES", "shape": [-1]},
                {"name": "class_ids", "datatype": "INT64", "shape": [-1]},
            ],
            "stages": stages,
        }


def load_models(cfg: ModelsConfig) -> dict[str, LoadedModel]:
    """Load, verify and open every configured model; a GPU provider that fails falls back to CPU.

    Names resolve in ``models.repository`` first, then in the read-only shipped models
    (:meth:`ModelsConfig.model_repository`); a model with version folders serves its highest
    version unless the entry pins one (a ``version`` key, when the config has it). Model folders
    are only read. Sessions get the ``tensorrt``/``cuda`` options (:meth:`ModelsConfig.provider_options`);
    a configured provider this onnxruntime lacks is a WARNING (INFO for the default list on a
    machine without an NVIDIA GPU).

    :raises ConfigError: ``models.repository`` is set but is not a directory, or the TensorRT
        engine cache directory cannot be created
    :raises ModelLoadError: a name resolves nowhere, or a manifest or ONNX file is missing or corrupt
    """
    from lotus.runtime.config import DEFAULT_PROVIDERS
    from lotus.runtime.models.manifest import read_manifest
    from lotus.runtime.models.two_stage import create_pipeline

    if cfg.repository is not None and not cfg.repository.is_dir():
        raise ConfigError(f"models.repository {cfg.repository} is not a directory")
    repo = cfg.model_repository()
    providers = probe_providers(cfg.providers, warn=cfg.providers != DEFAULT_PROVIDERS or _gpu_visible())
    cache = cfg.tensorrt.engine_cache_dir
    if cache is not None and "TensorrtExecutionProvider" in providers:
        try:
            cache.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"TensorRT engine cache {cache}: {exc.strerror or exc}") from None
    models: dict[str, LoadedModel] = {}
    for mc in cfg.load:
        path = repo.find(mc.name, getattr(mc, "version", None))
        manifest = read_manifest(path)
        shipped = repo.is_shipped(path)
        pipe: ModelPipeline | None = None
        tried = providers if providers[0] != "CPUExecutionProvider" else ["CPUExecutionProvider"]
        for attempt in (tried, ["CPUExecutionProvider"]):
            try:
                pipe = create_pipeline(
                    manifest, cfg.provider_options(attempt), session_options(cfg.threads, cfg.spinning)
                )
                break
            except ModelLoadError as exc:
                if attempt == ["CPUExecutionProvider"]:
                    raise
                log.warning("model %s: providers %s failed (%s); falling back to CPU", mc.name, attempt, exc)
        assert pipe is not None
        wl = manifest.workload
        models[mc.name] = LoadedModel(
            name=mc.name,
            manifest=manifest,
            pipeline=pipe,
            provider=pipe.provider,
            deadline_ms=float(mc.slo_ms or wl.default_deadline_ms),
            max_proposals=int(wl.max_proposals),
            proposal_cap=mc.max_proposals,
            version=str(manifest.version),
            path=path,
            shipped=shipped,
        )
        where = "shipped" if shipped else "repository"
        variants = ", ".join(f"{st} {v}" for st, v in pipe.variants.items() if v is not None)
        log.info("model %s %s (%s, %s) loaded on %s%s", mc.name, manifest.version, where, path.parent, pipe.provider,
                 f" ({variants})" if variants else "")  # fmt: skip
    return models


def warm_up(model: LoadedModel, frames: int) -> None:
    """Run ``frames`` dummy frames so lazy allocations (and TensorRT engine builds) happen before ready."""
    pipe = model.pipeline
    image = pipe.warmup_image()
    for _ in range(frames):
        pipe.run_stage2(pipe.run_stage1(pipe.preprocess(image)), model.proposal_cap)


# --- one frame -------------------------------------------------------------------------------
@dataclass
class FrameOrigin:
    """Where a ``--source`` frame came from (set by the daemon; None for frames API clients send).

    :param index: the frame's index in the source, 0-based (every frame read, skipped ones included)
    :param ts_s: source timestamp, s: media position (file, directory) or wall-clock capture time (live)
    :param clock: ``"media"`` or ``"wall"``: what ``ts_s`` measures
    :param received_s: wall-clock time the frame was read from the source (Unix), s
    :param decode_ms: time the source took to read and decode the frame, ms
    """

    index: int
    ts_s: float
    clock: str
    received_s: float
    decode_ms: float


@dataclass
class FrameResult:
    """Everything one frame produced (raw values; ``DetectResponse.from_frame`` is its JSON form).

    :param frame: the daemon's frame counter
    :param detections: in original-image pixels
    :param timings_ms: per step (queue, decode, stage1, decision_stage2, clock_set_stage2, stage2,
        decision_next, clock_set_next, frame, total), ms
    :param clocks_before: ``cpu_khz``/``gpu_hz`` at the start of the frame; ``clocks_stage2``
        during stage 2; ``clocks_after`` chosen for the next frame
    :param temps_c: sensor name -> temperature, C
    :param power_w: board power at the end of the frame, W
    :param energy_j: board energy over the frame, J
    :param governor: mode, policy, action_stage2, action_next, deadline_ms, slo_met
    :param image_size: (width, height), px
    :param source: who sent the frame (api, ws, kserve, source)
    :param provider: the ORT execution provider the model ran on
    :param model_version: the version of the model that ran
    :param origin: the ``--source`` frame's index and timestamps (None: sent by an API client)
    :param skipped: why the frame was not run (``"thermal"``: the shield's admission rule; ``"policy"``:
        the policy's served share), None: it ran
    """

    model: str
    frame: int
    detections: list[Detection]
    num_proposals: int
    timings_ms: dict[str, float]
    clocks_before: dict[str, float | None]
    clocks_stage2: dict[str, float | None]
    clocks_after: dict[str, float | None]
    temps_c: dict[str, float]
    power_w: float
    energy_j: float
    throttled: bool
    governor: dict[str, Any]
    image_size: tuple[int, int]
    source: str = "api"
    provider: str = ""
    model_version: str = ""
    origin: FrameOrigin | None = None
    skipped: str | None = None

    @property
    def extra(self) -> dict[str, str]:
        """``source`` and ``provider`` as a dict (older callers read ``result.extra["source"]``)."""
        return {"source": self.source, "provider": self.provider}


def _clocks(view: SensorView) -> dict[str, float | None]:
    return {"cpu_khz": view.cpu_khz, "gpu_hz": view.gpu_hz}


def board_shutdown_c(board: Board) -> float | None:
    """The lowest critical trip of the board's zones, C (None: none set or unreadable)."""
    try:
        temps = [t.temp_c for z in board.describe().zones for t in z.trips if t.type == "critical" and t.temp_c > 0]
    except Exception:  # noqa: BLE001 - a backend that cannot describe itself: the rule's default gap
        return None
    return float(min(temps)) if temps else None


class FramePipeline:
    """Runs frames for every loaded model on one board under one governor (one thread at a time)."""

    def __init__(
        self,
        board: Board,
        models: dict[str, LoadedModel],
        governor: GovernorController,
        builder: ObservationBuilder,
        metrics: Metrics | None = None,
        on_frame: Callable[[FrameResult], None] | None = None,
    ) -> None:
        self.board, self.models, self.governor, self.builder = board, models, governor, builder
        self.metrics, self.on_frame = metrics, on_frame
        self._lock = threading.Lock()
        self.frames = 0
        self._busy_s = 0.0
        self._last_decision_t = time.perf_counter()
        self._throttled_prev = False
        self.last_progress = time.monotonic()  # for the systemd watchdog
        shutdown_c = board_shutdown_c(board)
        # shutdown minus the observation's trip point, C: the admission rule sees headroom to the trip
        self.shutdown_gap_c = None if shutdown_c is None else shutdown_c - builder.trip_c
        self.skipped = 0  # stream frames the admission rule skipped

    def _cpu_util(self, now: float) -> float:
        util = self._busy_s / max(now - self._last_decision_t, 1e-9)
        self._busy_s, self._last_decision_t = 0.0, now
        return util

    def process(
        self,
        image: np.ndarray | bytes,
        model_name: str,
        next_frame_at: float | None = None,
        source: str = "api",
        queued_s: float = 0.0,
    ) -> FrameResult:
        """Run one frame. ``next_frame_at``: perf_counter time the next frame is due (streaming)."""
        model = self.models[model_name]
        with self._lock:
            return self._process(image, model, next_frame_at, source, queued_s)

    def _next_in_ms(self, next_frame_at: float | None, now: float) -> float:
        return 0.0 if next_frame_at is None else max(next_frame_at - now, 0.0) * 1e3

    def _process(
        self, image: np.ndarray | bytes, model: LoadedModel, next_frame_at: float | None, source: str, queued_s: float
    ) -> FrameResult:
        if not model.pipeline.two_stage:
            return self._process_single(image, model, next_frame_at, source, queued_s)
        pipe, gov, bld, board = model.pipeline, self.governor, self.builder, self.board
        acts = gov.actions
        t0 = time.perf_counter()
        snap0 = board.snapshot(util=False)
        view0 = sensor_view(snap0, acts)
        if source in SKIPPABLE_SOURCES and gov.admits and not self._admit(model, view0, snap0, next_frame_at, t0):
            return self._skip(image, model, view0, snap0, source, queued_s)
        board.note_activity(True)
        try:
            if isinstance(image, bytes):
                image = decode_image(image)
            t_dec = time.perf_counter()
            inputs = pipe.preprocess(image)
            s1 = pipe.run_stage1(inputs)
            t1 = time.perf_counter()
        except Exception:
            board.note_activity(False)
            raise
        self._busy_s += t1 - t0
        # decision 1: stage-2 clocks, proposals known
        snap1 = board.snapshot()
        view1 = sensor_view(snap1, acts)
        stage1_ms = (t1 - t_dec) * 1e3
        bld.update_slope(snap1.t_mono_s, max(view1.cpu_temp_c, view1.gpu_temp_c))
        raw1 = bld.raw(
            view1, stage2_next=True, proposals=s1.num_proposals, max_proposals=model.max_proposals,
            deadline_ms=model.deadline_ms, frame_elapsed_ms=(t1 - t0) * 1e3,
            next_frame_in_ms=self._next_in_ms(next_frame_at, t1), cpu_util=self._cpu_util(t1),
            gpu_util=view1.gpu_util, throttled=gov.throttled(view1.cpu_khz, view1.gpu_hz), stage1_ms=stage1_ms,
        )  # fmt: skip
        d1 = gov.decide(bld.encode(raw1))
        t2 = time.perf_counter()
        try:
            dets = pipe.run_stage2(s1, model.proposal_cap)
        finally:
            board.note_activity(False)
        t3 = time.perf_counter()
        self._busy_s += t3 - t2
        latency_ms = (t3 - t0) * 1e3
        bld.frame_done(latency_ms, stage1_ms, s1.num_proposals)
        # decision 2: clocks for the next frame
        snap2 = board.snapshot()
        view2 = sensor_view(snap2, acts)
        bld.update_slope(snap2.t_mono_s, max(view2.cpu_temp_c, view2.gpu_temp_c))
        throttled = gov.throttled(view2.cpu_khz, view2.gpu_hz)
        raw2 = bld.raw(
            view2, stage2_next=False, proposals=s1.num_proposals, max_proposals=model.max_proposals,
            deadline_ms=model.deadline_ms, frame_elapsed_ms=0.0,
            next_frame_in_ms=self._next_in_ms(next_frame_at, t3), cpu_util=self._cpu_util(t3),
            gpu_util=view2.gpu_util, throttled=throttled,
        )  # fmt: skip
        d2 = gov.decide(bld.encode(raw2))
        t4 = time.perf_counter()
        energy = self._energy(snap0, snap1, snap2, view0, view1, view2)
        self.frames += 1
        self.last_progress = time.monotonic()
        after = _clocks(view2)
        if d2.applied:
            after = {"cpu_khz": d2.cpu_khz, "gpu_hz": d2.gpu_hz if gov.has_gpu else view2.gpu_hz}
        stage2_clocks = _clocks(view1)
        if d1.applied:
            stage2_clocks = {"cpu_khz": d1.cpu_khz, "gpu_hz": d1.gpu_hz if gov.has_gpu else view1.gpu_hz}
        result = FrameResult(
            model=model.name,
            frame=self.frames,
            detections=dets,
            num_proposals=s1.num_proposals,
            timings_ms={
                "queue": queued_s * 1e3,
                "decode": (t_dec - t0) * 1e3,
                "stage1": stage1_ms,
                "decision_stage2": d1.decision_s * 1e3,
                "clock_set_stage2": d1.clock_set_s * 1e3,
                "stage2": (t3 - t2) * 1e3,
                "decision_next": d2.decision_s * 1e3,
                "clock_set_next": d2.clock_set_s * 1e3,
                "frame": latency_ms,
                "total": (t4 - t0) * 1e3,
            },
            clocks_before=_clocks(view0),
            clocks_stage2=stage2_clocks,
            clocks_after=after,
            temps_c=dict(snap2.temps_c),
            power_w=view2.power_w,
            energy_j=energy,
            throttled=throttled,
            governor={
                "mode": gov.mode,
                "policy": gov.deciding,
                "action_stage2": d1.action,
                "action_next": d2.action,
                "deadline_ms": model.deadline_ms,
                "slo_met": latency_ms <= model.deadline_ms,
            },
            image_size=(int(image.shape[1]), int(image.shape[0])),
            source=source,
            provider=model.provider,
            model_version=model.version,
        )
        self._finish(result, d1, d2)
        return result

    def _admit(
        self, model: LoadedModel, view: SensorView, snap: Snapshot, next_frame_at: float | None, now: float
    ) -> bool:
        """The admission rule's answer for the stream frame about to start (sensors ``view`` read at ``now``)."""
        bld, gov = self.builder, self.governor
        bld.update_slope(snap.t_mono_s, max(view.cpu_temp_c, view.gpu_temp_c))
        raw = bld.raw(
            view, stage2_next=False, proposals=0, max_proposals=model.max_proposals, deadline_ms=model.deadline_ms,
            frame_elapsed_ms=0.0, next_frame_in_ms=self._next_in_ms(next_frame_at, now), cpu_util=0.0,
            gpu_util=view.gpu_util, throttled=False,
        )  # fmt: skip
        return gov.admit(bld.encode(raw), self.shutdown_gap_c)

    def _skip(
        self, image: np.ndarray | bytes, model: LoadedModel, view: SensorView, snap: Snapshot, source: str,
        queued_s: float,
    ) -> FrameResult:  # fmt: skip
        """The result of a frame the admission rule skipped: nothing ran, the clocks stay."""
        gov = self.governor
        self.skipped += 1
        self.last_progress = time.monotonic()
        clocks = _clocks(view)
        timings = dict.fromkeys(
            ("decode", "stage1", "decision_stage2", "clock_set_stage2", "stage2", "decision_next", "clock_set_next",
             "frame", "total"), 0.0,
        )  # fmt: skip
        result = FrameResult(
            model=model.name, frame=self.frames, detections=[], num_proposals=0,
            timings_ms={"queue": queued_s * 1e3, **timings}, clocks_before=clocks, clocks_stage2=dict(clocks),
            clocks_after=dict(clocks), temps_c=dict(snap.temps_c), power_w=view.power_w, energy_j=0.0,
            throttled=gov.throttled(view.cpu_khz, view.gpu_hz),
            governor={"mode": gov.mode, "policy": gov.deciding, "action_stage2": None, "action_next": None,
                      "deadline_ms": model.deadline_ms, "slo_met": False},
            image_size=(int(image.shape[1]), int(image.shape[0])) if isinstance(image, np.ndarray) else (0, 0),
            source=source, provider=model.provider, model_version=model.version, skipped=gov.skip_reason,
        )  # fmt: skip
        if self.metrics is not None:
            self.metrics.observe_skip(result)
        if self.on_frame is not None:
            self.on_frame(result)
        return result

    def _finish(self, result: FrameResult, d1: Decision, d2: Decision) -> None:
        """Metrics and the frame callback for a finished frame."""
        if self.metrics is not None:
            self.metrics.observe_frame(result, d1, d2, result.throttled and not self._throttled_prev)
        self._throttled_prev = result.throttled
        if self.on_frame is not None:
            self.on_frame(result)

    def _process_single(
        self, image: np.ndarray | bytes, model: LoadedModel, next_frame_at: float | None, source: str, queued_s: float
    ) -> FrameResult:
        """A single-stage model: decode -> one governor decision -> preprocess + graph -> post-processing.

        The decision is reported as the ``next`` one (it holds for this frame and until the next
        decision); ``action_stage2`` is None and the ``*_stage2`` timings are 0.
        """
        pipe, gov, bld, board = model.pipeline, self.governor, self.builder, self.board
        acts = gov.actions
        t0 = time.perf_counter()
        snap0 = board.snapshot(util=False)
        view0 = sensor_view(snap0, acts)
        if source in SKIPPABLE_SOURCES and gov.admits and not self._admit(model, view0, snap0, next_frame_at, t0):
            return self._skip(image, model, view0, snap0, source, queued_s)
        board.note_activity(True)
        try:
            if isinstance(image, bytes):
                image = decode_image(image)
        except Exception:
            board.note_activity(False)
            raise
        t_dec = time.perf_counter()
        self._busy_s += t_dec - t0
        snap1 = board.snapshot()
        view1 = sensor_view(snap1, acts)
        bld.update_slope(snap1.t_mono_s, max(view1.cpu_temp_c, view1.gpu_temp_c))
        raw = bld.raw(
            view1, stage2_next=False, proposals=0, max_proposals=model.max_proposals,
            deadline_ms=model.deadline_ms, frame_elapsed_ms=(t_dec - t0) * 1e3,
            next_frame_in_ms=self._next_in_ms(next_frame_at, t_dec), cpu_util=self._cpu_util(t_dec),
            gpu_util=view1.gpu_util, throttled=gov.throttled(view1.cpu_khz, view1.gpu_hz),
        )  # fmt: skip
        d = gov.decide(bld.encode(raw))
        t1 = time.perf_counter()
        try:
            s1 = pipe.run_stage1(pipe.preprocess(image))
            t2 = time.perf_counter()
            dets = pipe.run_stage2(s1, model.proposal_cap)
        finally:
            board.note_activity(False)
        t3 = time.perf_counter()
        self._busy_s += t3 - t1
        latency_ms = (t3 - t0) * 1e3
        bld.frame_done(latency_ms, (t2 - t1) * 1e3, 0)
        snap2 = board.snapshot()
        view2 = sensor_view(snap2, acts)
        throttled = gov.throttled(view2.cpu_khz, view2.gpu_hz)
        self.frames += 1
        self.last_progress = time.monotonic()
        run_clocks = _clocks(view1)
        if d.applied:
            run_clocks = {"cpu_khz": d.cpu_khz, "gpu_hz": d.gpu_hz if gov.has_gpu else view1.gpu_hz}
        result = FrameResult(
            model=model.name,
            frame=self.frames,
            detections=dets,
            num_proposals=s1.num_proposals,
            timings_ms={
                "queue": queued_s * 1e3,
                "decode": (t_dec - t0) * 1e3,
                "stage1": (t2 - t1) * 1e3,
                "decision_stage2": 0.0,
                "clock_set_stage2": 0.0,
                "stage2": (t3 - t2) * 1e3,
                "decision_next": d.decision_s * 1e3,
                "clock_set_next": d.clock_set_s * 1e3,
                "frame": latency_ms,
                "total": (time.perf_counter() - t0) * 1e3,
            },
            clocks_before=_clocks(view0),
            clocks_stage2=run_clocks,
            clocks_after=run_clocks,
            temps_c=dict(snap2.temps_c),
            power_w=view2.power_w,
            energy_j=self._energy(snap0, snap1, snap2, view0, view1, view2),
            throttled=throttled,
            governor={
                "mode": gov.mode,
                "policy": gov.deciding,
                "action_stage2": None,
                "action_next": d.action,
                "deadline_ms": model.deadline_ms,
                "slo_met": latency_ms <= model.deadline_ms,
            },
            image_size=(int(image.shape[1]), int(image.shape[0])),
            source=source,
            provider=model.provider,
            model_version=model.version,
        )
        self._finish(result, NO_DECISION, d)
        return result

    @staticmethod
    def _energy(s0: Snapshot, s1: Snapshot, s2: Snapshot, v0: SensorView, v1: SensorView, v2: SensorView) -> float:
        if v0.energy_j is not None and v2.energy_j is not None and v2.energy_j >= v0.energy_j:
            return v2.energy_j - v0.energy_j
        return 0.5 * (v0.power_w + v1.power_w) * (s1.t_mono_s - s0.t_mono_s) + 0.5 * (v1.power_w + v2.power_w) * (
            s2.t_mono_s - s1.t_mono_s
        )
