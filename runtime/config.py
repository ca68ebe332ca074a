"""The daemon's configuration: one validated pydantic-settings tree.

Sources, lowest to highest priority: defaults, the YAML file (``lotus serve --config FILE``),
environment variables ``LOTUS_<SECTION>__<FIELD>`` (e.g. ``LOTUS_SERVER__PORT=9000``), then
command-line flags. Unknown keys are errors (``extra="forbid"``); :func:`load_settings` turns any
problem into one :class:`~envs.errors.ConfigError` line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from lotus.core.errors import ConfigError
from lotus.core.files import read_yaml_mapping
from lotus.core.schema import GovernorMode

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent.parent / "compressed_models"
DEFAULT_PROVIDERS = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ServerConfig(_Section):
    """HTTP server and admission control."""

    host: str = Field("127.0.0.1", description="address to listen on (0.0.0.0 exposes the API to the network)")
    port: int = Field(8080, ge=0, le=65535, description="TCP port (0: pick a free one)")
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, le=256 * 1024 * 1024, description="largest request body accepted, bytes (413 above)"
    )
    queue_size: int = Field(8, ge=1, le=1024, description="frames waiting for the inference worker (503 when full)")
    request_timeout_s: float = Field(30.0, gt=0, le=600, description="longest wait for one inference result, s")
    stream_buffer: int = Field(
        2, ge=1, le=64, description="frames a /v1/stream client may have waiting; older ones are dropped"
    )
    telemetry_samples: int = Field(512, ge=16, le=100_000, description="per-frame samples kept for /v1/telemetry")
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log verbosity")


class BoardConfig(_Section):
    """Which board backend drives the clocks, and where its state is saved."""

    backend: Literal["auto", "jetson", "linux", "nvml", "sim"] = Field(
        "auto", description="board backend; auto probes jetson, nvml, linux and falls back to sim"
    )
    sysfs_root: Path = Field(Path("/"), description="root of the sysfs/proc tree (a fake tree in tests)")
    state_file: Path = Field(
        Path("/var/lib/lotus/clock-state.json"),
        description="where the original governors/limits are saved at start (for lotus restore-clocks)",
    )
    allow_nvml_set: bool = Field(False, description="let the nvml backend lock GPU clocks (needs root)")
    budget_w: float = Field(15.0, gt=0, le=1000, description="power-mode budget the observation normalises by, W")
    trip_c: float | None = Field(
        None, gt=0, le=150, description="passive trip point, C; None reads it from the thermal zones (99 C on Orin)"
    )
    sim_ambient_c: float = Field(25.0, ge=-40, le=80, description="ambient temperature of the sim board, C")
    sim_board: str = Field("orin-nano", description="board profile the sim backend emulates")


class ModelConfig(_Section):
    """One model to load from the repository."""

    name: str = Field(description="model folder under models.repository (e.g. frcnn-lite)")
    slo_ms: float | None = Field(
        None, gt=0, le=60_000, description="per-frame latency target, ms; feeds deadline_ms (None: manifest default)"
    )
    max_proposals: int | None = Field(None, ge=1, description="cap on proposals passed to stage 2 (None: all)")


class ModelsConfig(_Section):
    """Model repository, ONNX Runtime providers and threads."""

    repository: Path = Field(DEFAULT_MODELS_DIR, description="directory with <model>/manifest.yaml folders")
    load: list[ModelConfig] = Field(
        default_factory=lambda: [ModelConfig(name="frcnn-lite")], min_length=1, description="models to serve"
    )
    providers: list[str] = Field(
        default_factory=lambda: list(DEFAULT_PROVIDERS),
        min_length=1,
        description="ORT execution providers in order of preference; unavailable ones are skipped",
    )
    threads: int = Field(2, ge=1, le=64, description="ORT intra-op threads per session")
    spinning: bool = Field(False, description="let ORT threads busy-wait between ops (burns power; off by default)")
    warmup_frames: int = Field(2, ge=0, le=100, description="dummy frames run per model before ready")
    trt_cache_dir: Path | None = Field(None, description="TensorRT engine cache directory (e.g. /var/lib/lotus/trt)")

    @field_validator("load")
    @classmethod
    def _unique(cls, value: list[ModelConfig]) -> list[ModelConfig]:
        names = [m.name for m in value]
        if len(set(names)) != len(names):
            raise ValueError(f"model names must be unique, got {names}")
        return value


class GovernorConfig(_Section):
    """The clock governor and who may change it at run time."""

    mode: GovernorMode = Field(
        "active", description="active: set clocks; shadow: decide and log only; off: leave the kernel governors"
    )
    policy: str = Field("drl", description="performance, powersave, stock, fixed:<khz>,<hz>, drl, ... or a .json path")
    token: str | None = Field(None, min_length=8, description="bearer token for PUT /v1/governor (None: disabled)")
    token_file: Path | None = Field(None, description="file holding the bearer token (first line)")

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

    uri: str | None = Field(None, description="video file, image DIR, camera:N or rtsp://... (None: API only)")
    fps: float | None = Field(None, gt=0, le=1000, description="frame rate, frames/s (None: the source's own)")
    model: str | None = Field(None, description="model to run (None: the first loaded)")
    loop: bool = Field(True, description="restart a file or directory source at its end")


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
