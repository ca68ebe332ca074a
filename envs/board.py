"""Board profiles: clock tables, power and thermal parameters of one Jetson-class board.

Profiles are YAML data files (``envs/profiles/boards/<name>.yaml``), validated here with
pydantic. Every field carries its unit in its name. :func:`load_board` accepts a shipped
profile name or a path to a YAML file.
"""

from __future__ import annotations

import difflib
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from lotus.core.errors import ProfileError
from lotus.core.files import format_validation_error, read_yaml_mapping

BOARDS_DIR = Path(__file__).parent / "profiles" / "boards"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PowerMode(_Strict):
    """One nvpmodel mode: the clock tables it allows."""

    cpu_online: int = Field(ge=1, description="CPU cores online in this mode")
    cpu_freqs_khz: list[int] = Field(min_length=2, description="available CPU clocks, ascending, kHz")
    gpu_freqs_hz: list[int] = Field(min_length=2, description="available GPU clocks, ascending, Hz")
    budget_w: float = Field(gt=0, description="nominal module power budget of the mode, W")

    @model_validator(mode="after")
    def _check_sorted(self) -> PowerMode:
        for name in ("cpu_freqs_khz", "gpu_freqs_hz"):
            values = getattr(self, name)
            if any(b <= a for a, b in zip(values, values[1:])) or values[0] <= 0:
                raise ValueError(f"{name} must be positive and strictly ascending")
        return self


class VoltageCurve(_Strict):
    """Voltage as a function of clock: flat at ``v_min_v`` up to ``knee_hz``, then linear."""

    v_min_v: float = Field(gt=0, le=2)
    v_max_v: float = Field(gt=0, le=2)
    knee_hz: float = Field(ge=0, description="clock below which voltage stays at its floor, Hz")
    max_hz: float = Field(gt=0, description="clock at which voltage reaches v_max_v, Hz")

    @model_validator(mode="after")
    def _check(self) -> VoltageCurve:
        if self.v_max_v < self.v_min_v or self.max_hz <= self.knee_hz:
            raise ValueError("need v_max_v >= v_min_v and max_hz > knee_hz")
        return self


class ClockDomain(_Strict):
    """Power parameters of one clock domain (the CPU complex or the GPU)."""

    c_eff_nf: float = Field(gt=0, description="effective switched capacitance per core (CPU) or GPU, nF")
    voltage: VoltageCurve
    static_w_25c: float = Field(ge=0, description="leakage power at 25 C, W")
    leak_per_c: float = Field(ge=0, le=0.1, description="exponential growth of leakage per C, 1/C")
    idle_activity: float = Field(ge=0, le=1, description="activity factor when idle (clock-gated)")


class Thermal(_Strict):
    """Lumped RC network: CPU die, GPU die, shared heatsink/board node, ambient."""

    c_cpu_j_per_k: float = Field(gt=0)
    c_gpu_j_per_k: float = Field(gt=0)
    c_sink_j_per_k: float = Field(gt=0)
    r_cpu_sink_k_per_w: float = Field(gt=0)
    r_gpu_sink_k_per_w: float = Field(gt=0)
    r_cpu_gpu_k_per_w: float = Field(gt=0, description="lateral coupling between the two dies")
    r_sink_amb_passive_k_per_w: float = Field(gt=0, description="heatsink to ambient, fan off")
    r_sink_amb_fan_k_per_w: float = Field(gt=0, description="heatsink to ambient, fan at full PWM")


class Fan(_Strict):
    """Fan curve: PWM 0 below ``on_c``, rising linearly to 1 at ``full_c`` (of the hottest die)."""

    on_c: float
    full_c: float

    @model_validator(mode="after")
    def _check(self) -> Fan:
        if self.full_c <= self.on_c:
            raise ValueError("fan full_c must be above on_c")
        return self


class Throttling(_Strict):
    """Firmware thermal throttling, as the step-wise governor over the passive trip does it."""

    trip_c: float = Field(gt=0, description="passive (sw-throttle) trip point, C")
    shutdown_c: float = Field(gt=0, description="critical trip: the board powers off, C")
    poll_s: float = Field(gt=0, description="thermal zone polling interval, s")
    hysteresis_c: float = Field(ge=0, description="release when below trip - hysteresis, C")
    steps_per_poll: int = Field(ge=1, description="clock steps removed per poll while above trip")


class BoardProfile(_Strict):
    """Everything the simulator knows about one board."""

    name: str
    description: str
    default_mode: str
    modes: dict[str, PowerMode]
    cpu: ClockDomain
    gpu: ClockDomain
    base_w: float = Field(ge=0, description="rest of the module and carrier board (SoC, IO, DRAM idle), W")
    mem_active_w: float = Field(ge=0, description="extra DRAM/EMC power while memory-bound work runs, W")
    thermal: Thermal
    fan: Fan
    throttling: Throttling
    kind: Literal["jetson"] = "jetson"

    @model_validator(mode="after")
    def _check_modes(self) -> BoardProfile:
        if self.default_mode not in self.modes:
            raise ValueError(f"default_mode {self.default_mode!r} is not one of {sorted(self.modes)}")
        if self.throttling.shutdown_c <= self.throttling.trip_c:
            raise ValueError("shutdown_c must be above trip_c")
        return self

    def mode(self, name: str | None = None) -> PowerMode:
        """The named power mode (the default one when ``name`` is None)."""
        key = name or self.default_mode
        if key not in self.modes:
            raise ProfileError(f"board {self.name!r} has no power mode {key!r}; choose one of {', '.join(self.modes)}")
        return self.modes[key]


def available_boards() -> list[str]:
    """Names of the shipped board profiles."""
    return sorted(p.stem for p in BOARDS_DIR.glob("*.yaml"))


def resolve_profile_path(name_or_path: str | Path, directory: Path, what: str) -> Path:
    """A shipped profile name, or an existing file path; unknown names get a suggestion."""
    text = str(name_or_path)
    candidate = Path(text)
    if candidate.suffix in (".yaml", ".yml") or candidate.exists():
        if not candidate.is_file():
            raise ProfileError(f"{what} file {candidate} does not exist")
        return candidate
    shipped = directory / f"{text}.yaml"
    if shipped.is_file():
        return shipped
    names = sorted(p.stem for p in directory.glob("*.yaml"))
    close = difflib.get_close_matches(text, names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ProfileError(f"unknown {what} {text!r}{hint}; known: {', '.join(names)}")


@lru_cache(maxsize=32)
def _load_board_cached(path: Path) -> BoardProfile:
    data = read_yaml_mapping(path, "board profile", ProfileError)
    try:
        return BoardProfile.model_validate(data)
    except ValidationError as exc:
        raise ProfileError(f"board profile {path} is invalid: {format_validation_error(exc)}") from None


def load_board(name_or_path: str | Path) -> BoardProfile:
    """Load a board profile by shipped name (``orin-nano``) or YAML path."""
    return _load_board_cached(resolve_profile_path(name_or_path, BOARDS_DIR, "board").resolve())
