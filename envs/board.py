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
    gpu_tpc_fraction: float = Field(
        default=1.0, gt=0, le=1, description="share of GPU TPCs the mode leaves powered (nvpmodel TPC_PG_MASK)"
    )
    base_w: float | None = Field(default=None, ge=0, description="the board's base_w in this mode, W (None: same)")
    mem_active_w: float | None = Field(default=None, ge=0, description="the board's mem_active_w in this mode, W")

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
    """Fan curve of the hotter die's temperature: PWM 0 below ``on_c``, 1 from ``full_c``.

    In between the PWM follows ``points`` (``[temp_c, pwm 0..1]`` pairs, piecewise linear, as in
    an nvfancontrol profile) or, without points, a straight line. The fan daemon re-reads the
    temperature every ``poll_s`` seconds.
    """

    on_c: float
    full_c: float
    points: list[tuple[float, float]] = Field(default_factory=list, description="[temp C, PWM 0..1] knots")
    poll_s: float = Field(default=1.0, gt=0, description="fan daemon polling interval, s")

    @model_validator(mode="after")
    def _check(self) -> Fan:
        if self.full_c <= self.on_c:
            raise ValueError("fan full_c must be above on_c")
        temps = [t for t, _ in self.points]
        if any(b <= a for a, b in zip(temps, temps[1:])) or any(not 0.0 <= p <= 1.0 for _, p in self.points):
            raise ValueError("fan points need ascending temperatures and PWM within 0..1")
        return self

    def curve(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Knots ``(temps_c, pwm)`` of the whole curve, from ``on_c`` (PWM 0) to ``full_c`` (PWM 1)."""
        knots = [(self.on_c, 0.0), *((t, p) for t, p in self.points if self.on_c < t < self.full_c), (self.full_c, 1.0)]
        return tuple(t for t, _ in knots), tuple(p for _, p in knots)


class Sensors(_Strict):
    """What the thermal-zone readings add to the true die temperatures."""

    quantum_c: float = Field(default=0.03125, ge=0, description="reading resolution, C (0: exact)")
    noise_c: float = Field(default=0.0, ge=0, description="standard deviation of the reading noise, C")
    update_s: float = Field(default=0.0, ge=0, description="sensor sampling period, s (0: every read is fresh)")


class Actuation(_Strict):
    """Time a clock change stalls the domain it changes (PLL relock, DVFS hand-shake)."""

    cpu_switch_us: float = Field(default=0.0, ge=0, description="CPU clock change, us")
    gpu_switch_us: float = Field(default=0.0, ge=0, description="GPU clock change, us")


def _both_domains() -> list[Literal["cpu", "gpu"]]:
    return ["cpu", "gpu"]


class Throttling(_Strict):
    """Firmware thermal throttling, as the step-wise governor over the passive trip does it."""

    trip_c: float = Field(gt=0, description="passive (sw-throttle) trip point, C")
    shutdown_c: float = Field(gt=0, description="critical trip: the board powers off, C")
    poll_s: float = Field(gt=0, description="thermal zone polling interval, s")
    hysteresis_c: float = Field(ge=0, description="release when below trip - hysteresis, C")
    steps_per_poll: int = Field(ge=1, description="clock steps removed per poll while above trip")
    cooling: list[Literal["cpu", "gpu"]] = Field(
        default_factory=_both_domains, min_length=1, description="clock domains the passive trip caps"
    )
    trend: bool = Field(
        default=True, description="step-wise: deepen only while not cooling, hold above the trip if falling"
    )


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
    sensors: Sensors = Field(default_factory=Sensors)
    actuation: Actuation = Field(default_factory=Actuation)
    kind: Literal["jetson"] = "jetson"

    @model_validator(mode="after")
    def _check_modes(self) -> BoardProfile:
        if self.default_mode not in self.modes:
            raise ValueError(f"default_mode {self.default_mode!r} is not one of {sorted(self.modes)}")
        if self.throttling.shutdown_c <= self.throttling.trip_c:
            raise ValueError("shutdown_c must be above trip_c")
        return self

    def in_mode(self, name: str | None = None) -> BoardProfile:
        """This profile with the power mode's overrides applied (the physics of a board running ``name``).

        Gated TPCs (``gpu_tpc_fraction``) scale the GPU's switched capacitance and leakage; the
        GPU's throughput scales the same way (:attr:`PowerMode.gpu_tpc_fraction`, applied to the
        latency by the simulator). ``base_w`` and ``mem_active_w`` take the mode's values if set.
        """
        mode = self.mode(name)
        frac = mode.gpu_tpc_fraction
        gpu = self.gpu.model_copy(
            update={"c_eff_nf": self.gpu.c_eff_nf * frac, "static_w_25c": self.gpu.static_w_25c * frac}
        )
        update: dict[str, object] = {"gpu": gpu}
        if mode.base_w is not None:
            update["base_w"] = mode.base_w
        if mode.mem_active_w is not None:
            update["mem_active_w"] = mode.mem_active_w
        return self.model_copy(update=update)

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
