"""The daemon's configuration: one validated pydantic-settings tree.

Sources, lowest to highest priority: defaults, the YAML file (``lotus serve --config FILE``),
environment variables ``LOTUS_<SECTION>__<FIELD>`` (e.g. ``LOTUS_SERVER__PORT=9000``), then
command-line flags. Unknown keys are errors (``extra="forbid"``); :func:`load_settings` turns any
problem into one :class:`~lotus.core.errors.ConfigError` line.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from lotus.core.errors import ConfigError
from lotus.core.files import read_yaml_mapping
from lotus.core.schema import GovernorMode

if TYPE_CHECKING:
    from lotus.runtime.models.manifest import ModelRepository

DEFAULT_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
PROVIDER_ALIASES = {"trt": "tensorrt"}  # short names besides ORT's own names without ``ExecutionProvider``


def provider_name(name: str) -> str:
    """The full ONNX Runtime name of a provider: ``tensorrt``/``trt``, ``cuda``, ``cpu`` (any name ORT knows,
    without ``ExecutionProvider``) or the full name, in any case.

    :raises ValueError: ORT knows no such provider
    """
    import onnxruntime as ort

    key = name.strip().lower()
    key = PROVIDER_ALIASES.get(key, key)
    for full in ort.get_all_providers():
        if key in (full.lower(), full.lower().removesuffix("executionprovider")):
            return str(full)
    raise ValueError(
        f"unknown ONNX Runtime provider {name!r}: use tensorrt, cuda or cpu, or a full name like CUDAExecutionProvider"
    )


def parse_providers(text: str) -> list[str]:
    """``tensorrt,cuda,cpu`` (``--providers``) -> full ORT provider names, in order.

    :raises ConfigError: empty, or a name ORT does not know
    """
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise ConfigError("--providers: name at least one provider, e.g. tensorrt,cuda,cpu")
    try:
        return [provider_name(n) for n in names]
    except ValueError as exc:
        raise ConfigError(f"--providers: {exc}") from None


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Section):
    """HTTP server and admission control."""

    host: str = Field(default="127.0.0.1", description="address to listen on (0.0.0.0 exposes the API to the network)")
    port: int = Field(default=8080, ge=0, le=65535, description="TCP port (0: pick a free one)")
    max_body_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        le=256 * 1024 * 1024,
        description="largest request body accepted, bytes (413 above)",
    )
    queue_size: int = Field(
        default=8, ge=1, le=1024, description="frames waiting for the inference worker (503 when full)"
    )
    request_timeout_s: float = Field(default=30.0, gt=0, le=600, description="longest wait for one inference result, s")
    max_batch_size: int = Field(
        default=8,
        ge=0,
        le=64,
        description="images one KServe v2 request may carry as UINT8 [B, H, W, 3] (0: no batch dim)",
    )
    stream_buffer: int = Field(
        default=2, ge=1, le=64, description="frames a /v1/stream client may have waiting; older ones are dropped"
    )
    telemetry_samples: int = Field(
        default=512, ge=16, le=100_000, description="per-frame samples kept for /v1/telemetry"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(default="info", description="log verbosity")


class BoardConfig(_Section):
    """Which board backend drives the clocks, and where its state is saved."""

    backend: Literal["auto", "jetson", "linux", "nvml", "sim"] = Field(
        default="auto", description="board backend; auto probes jetson, nvml, linux and falls back to sim"
    )
    sysfs_root: Path = Field(default=Path("/"), description="root of the sysfs/proc tree (a fake tree in tests)")
    state_file: Path = Field(
        default=Path("/var/lib/lotus/clock-state.json"),
        description="where the original governors/limits are saved at start (for lotus restore-clocks)",
    )
    allow_nvml_set: bool = Field(default=False, description="let the nvml backend lock GPU clocks (needs root)")
    budget_w: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="power-mode budget the observation normalises by, W; None: the sim board's mode budget, else 15",
    )
    trip_c: float | None = Field(
        default=None,
        gt=0,
        le=150,
        description="passive trip point, C; None reads it from the thermal zones (99 C on Orin)",
    )
    sim_ambient_c: float = Field(default=25.0, ge=-40, le=80, description="ambient temperature of the sim board, C")
    sim_board: str = Field(default="orin-nano", description="board profile the sim backend emulates")
    sim_power_mode: str | None = Field(
        default=None, description="nvpmodel mode the sim board runs (7W, MAXN_SUPER, ...); None: the profile's default"
    )


class ModelConfig(_Section):
    """One model to load, by name: ``models.repository/<name>/`` first, else the shipped model of that name."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="model name: a <name>/manifest.yaml folder of models.repository, else a shipped model (frcnn-lite)",
    )
    slo_ms: float | None = Field(
        default=None,
        gt=0,
        le=60_000,
        description="per-frame latency target, ms; feeds deadline_ms (None: manifest default)",
    )
    max_proposals: int | None = Field(default=None, ge=1, description="cap on proposals passed to stage 2 (None: all)")
    version: str | None = Field(
        default=None, pattern=r"^[0-9]+$", description="serve this version folder (None: the highest, docs/models.md)"
    )


class TensorrtConfig(_Section):
    """TensorRT execution provider options (only read when ``TensorrtExecutionProvider`` is in ``providers``)."""

    fp16: bool = Field(default=True, description="let TensorRT build FP16 kernels (trt_fp16_enable)")
    int8: bool = Field(
        default=False, description="let TensorRT build INT8 kernels (trt_int8_enable): for QDQ-quantized graphs"
    )
    engine_cache_dir: Path | None = Field(
        default=None,
        description="keep built engines here across restarts (trt_engine_cache_path, e.g. /var/lib/lotus/trt); "
        "None: rebuild at every start (minutes on a Jetson)",
    )
    dla_core: int | None = Field(
        default=None, ge=0, le=1, description="run on this DLA core, 0 or 1 (trt_dla_enable, trt_dla_core)"
    )
    workspace_mb: int | None = Field(
        default=None, ge=1, le=1024 * 1024, description="TensorRT builder workspace, MiB (trt_max_workspace_size)"
    )

    @field_validator("engine_cache_dir")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @model_validator(mode="after")
    def _dla_precision(self) -> TensorrtConfig:
        if self.dla_core is not None and not (self.fp16 or self.int8):
            raise ValueError("dla_core needs fp16 or int8: the DLA runs no FP32")
        return self


class CudaConfig(_Section):
    """CUDA execution provider options (``device_id`` also picks TensorRT's GPU)."""

    device_id: int = Field(default=0, ge=0, le=63, description="GPU index for the CUDA and TensorRT providers")


class ModelsConfig(_Section):
    """Model repository, ONNX Runtime providers and threads.

    A model name resolves to ``repository/<name>/manifest.yaml`` when that exists, else to the
    model of that name shipped with lotus (``lotus.compressed_models``, read-only; off with
    ``shipped_models: false``). The daemon only reads model folders; it never writes into them.
    """

    repository: Path | None = Field(
        default=None,
        description="your model repository: a directory of <name>/manifest.yaml folders (e.g. runs/compress/models), "
        "searched before the shipped models (None: shipped models only)",
    )
    shipped_models: bool = Field(
        default=True, description="fall back to the read-only models shipped with lotus for names not in repository"
    )
    load: list[ModelConfig] = Field(
        default_factory=lambda: [ModelConfig(name="frcnn-lite")], min_length=1, description="models to serve"
    )
    providers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PROVIDERS),
        min_length=1,
        description="ORT execution providers in order of preference (tensorrt, cuda, cpu or full ORT names); "
        "unavailable ones are skipped with a warning",
    )
    tensorrt: TensorrtConfig = Field(default_factory=TensorrtConfig, description="TensorRT provider options")
    cuda: CudaConfig = Field(default_factory=CudaConfig, description="CUDA provider options")
    threads: int = Field(default=2, ge=1, le=64, description="ORT intra-op threads per session")
    spinning: bool = Field(
        default=False, description="let ORT threads busy-wait between ops (burns power; off by default)"
    )
    warmup_frames: int = Field(default=2, ge=0, le=100, description="dummy frames run per model before ready")
    trt_cache_dir: Path | None = Field(
        default=None,
        description="older name of tensorrt.engine_cache_dir (used when that is not set)",
    )

    @field_validator("repository", "trt_cache_dir")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(provider_name(p) for p in value))

    @field_validator("load")
    @classmethod
    def _unique(cls, value: list[ModelConfig]) -> list[ModelConfig]:
        names = [m.name for m in value]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        return value

    @model_validator(mode="after")
    def _read_only_shipped(self) -> ModelsConfig:
        from lotus.runtime.models.manifest import MODELS_ROOT, is_within

        if self.repository is None and not self.shipped_models:
            raise ValueError("shipped_models is false and no repository is set: there is nothing to load")
        trt = self.tensorrt
        if self.trt_cache_dir is not None:
            if trt.engine_cache_dir is not None and trt.engine_cache_dir != self.trt_cache_dir:
                raise ValueError(
                    "trt_cache_dir and tensorrt.engine_cache_dir differ: set only tensorrt.engine_cache_dir"
                )
            trt.engine_cache_dir = self.trt_cache_dir
        if trt.engine_cache_dir is not None and is_within(trt.engine_cache_dir, MODELS_ROOT):
            raise ValueError(f"TensorRT engine cache {trt.engine_cache_dir} is inside the read-only shipped models")
        return self

    def provider_options(self, providers: list[str]) -> list[tuple[str, dict[str, str]]]:
        """``[(name, options), ...]`` for ``InferenceSession(providers=...)``: the ``tensorrt`` and ``cuda``
        sections as ORT provider options (strings), no options for any other provider."""
        trt, cuda = self.tensorrt, self.cuda
        out: list[tuple[str, dict[str, str]]] = []
        for name in providers:
            opts: dict[str, str] = {}
            if name == "TensorrtExecutionProvider":
                opts = {"device_id": str(cuda.device_id), "trt_fp16_enable": str(trt.fp16),
                        "trt_int8_enable": str(trt.int8)}  # fmt: skip
                if trt.engine_cache_dir is not None:
                    opts["trt_engine_cache_enable"] = "True"
                    opts["trt_engine_cache_path"] = str(trt.engine_cache_dir)
                if trt.dla_core is not None:
                    opts["trt_dla_enable"] = "True"
                    opts["trt_dla_core"] = str(trt.dla_core)
                if trt.workspace_mb is not None:
                    opts["trt_max_workspace_size"] = str(trt.workspace_mb * 1024 * 1024)
            elif name == "CUDAExecutionProvider":
                opts = {"device_id": str(cuda.device_id)}
            out.append((name, opts))
        return out

    def model_repository(self) -> ModelRepository:
        """Where model names resolve: ``repository`` first, then (``shipped_models``) the shipped models."""
        from lotus.runtime.models.manifest import MODELS_ROOT, ModelRepository

        return ModelRepository(self.repository, MODELS_ROOT if self.shipped_models else None)


class GovernorConfig(_Section):
    """The clock governor and who may change it at run time."""

    mode: GovernorMode = Field(
        default="active", description="active: set clocks; shadow: decide and log only; off: leave the kernel governors"
    )
    policy: str = Field(
        default="drl", description="performance, powersave, stock, fixed:<khz>,<hz>, drl, ... or a .json path"
    )
    shield_margin_c: Annotated[float, Field(ge=0.5, le=10.0)] | Literal["auto"] = Field(
        default=2.0,
        description="the safety shield keeps the predicted die this far under the passive trip, C "
        "(narrower: faster in hot rooms, less room for sensor error; docs/governor.md), or auto: the "
        "99.9 % quantile of the look-ahead errors measured on this board plus 0.25 C, in 0.5-10 C "
        "(2 C until 600 predictions near the trip were checked)",
    )
    token: str | None = Field(
        default=None,
        min_length=8,
        description="bearer token for PUT /v1/governor and the model load/unload API (None: disabled)",
    )
    token_file: Path | None = Field(default=None, description="file holding the bearer token (first line)")

    @model_validator(mode="after")
    def _one_token(self) -> GovernorConfig:
        if self.token and self.token_file:
            raise ValueError("set governor.token or governor.token_file, not both")
        return self

    def resolve_token(self) -> str | None:
        """The configured token (reads ``token_file``), None when PUT is disabled."""
        if self.token:
            return self.token
        if self.token_file:
            try:
                text = self.token_file.read_text().strip().splitlines()
            except OSError as exc:
                raise ConfigError(f"lotus.governor.token_file {self.token_file}: {exc.strerror or exc}") from None
            if not text or len(text[0]) < 8:
                raise ConfigError(f"lotus.governor.token_file {self.token_file}: token must be at least 8 characters")
            return text[0].strip()
        return None


class SourceConfig(_Section):
    """Optional frame source streamed through the pipeline at its own rate."""

    uri: str | None = Field(default=None, description="video file, image DIR, camera:N or rtsp://... (None: API only)")
    fps: float | None = Field(default=None, gt=0, le=1000, description="frame rate, frames/s (None: the source's own)")
    model: str | None = Field(default=None, description="model to run (None: the first loaded)")
    loop: bool = Field(default=True, description="restart a file or directory source at its end")


class Settings(BaseSettings):
    """Everything ``lotus serve`` needs. Sections: server, board, models, governor, source."""

    model_config = SettingsConfigDict(env_prefix="LOTUS_", env_nested_delimiter="__", extra="forbid")

    server: ServerConfig = Field(default_factory=ServerConfig)
    board: BoardConfig = Field(default_factory=BoardConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    governor: GovernorConfig = Field(default_factory=GovernorConfig)
    source: SourceConfig = Field(default_factory=SourceConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # env overrides the file (passed as init values); CLI flags are merged on top by load_settings
        return env_settings, init_settings


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _format(exc: ValidationError, source: str) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{loc}: {msg}")
    return f"invalid configuration ({source}): " + "; ".join(parts)


def read_config_file(path: Path) -> dict[str, Any]:
    """The YAML mapping in ``path`` (ConfigError naming the line when it is not valid YAML)."""
    return read_yaml_mapping(Path(path), "config file", ConfigError, empty_ok=True)


def load_settings(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """File, then ``LOTUS_*`` environment, then ``overrides`` (CLI flags, nested dicts)."""
    data = read_config_file(path) if path is not None else {}
    source = str(path) if path else "defaults"
    try:
        settings = Settings(**data)
        if overrides:
            merged = _merge(settings.model_dump(exclude_unset=False), overrides)
            settings = Settings.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError(_format(exc, source)) from None
    settings.governor.resolve_token()  # a missing token file is a start-up error
    return settings
