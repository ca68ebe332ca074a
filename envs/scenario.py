"""Scenario: which board, workload, room and reward one simulated episode uses."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lotus.envs.reward import RewardKind

Range = tuple[float, float]


class Randomization(BaseModel):
    """Domain-randomisation ranges, each drawn uniformly per board at every reset.

    A range left ``None`` keeps the scenario's fixed value.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    ambient_c: Range | None = Field(default=None, description="ambient temperature, C")
    r_scale: Range | None = Field(default=None, description="factor on heatsink-to-ambient thermal resistance")
    c_scale: Range | None = Field(default=None, description="factor on the heatsink's heat capacity")
    workload_scale: Range | None = Field(default=None, description="factor on every stage cost")
    fan_auto_prob: float = Field(default=0.0, ge=0, le=1, description="chance the fan follows its curve")
    trip_c: Range | None = Field(default=None, description="passive trip point, C (Lotus emulates tight limits)")
    init_heat: Range = Field(
        default=(0.0, 0.0), description="start temperature: 0 = ambient, 1 = 8 C below the trip point (every node)"
    )
    hot_start_prob: float = Field(
        default=0.0, ge=0, le=1, description="chance an episode starts hot instead (init_heat is then not used)"
    )
    hot_start_below_trip_c: Range = Field(
        default=(-2.0, 6.0), description="a hot start puts every node this far under the trip point, C (< 0: past it)"
    )
    traces: tuple[str, ...] | None = Field(default=None, description="trace generators to pick from per episode")
    deadline_scale: Range | None = Field(
        default=None, description="factor on the latency deadline (a governor conditioned on the deadline it must meet)"
    )

    @model_validator(mode="after")
    def _check_ranges(self) -> Randomization:
        for name in (
            "ambient_c",
            "r_scale",
            "c_scale",
            "workload_scale",
            "trip_c",
            "init_heat",
            "deadline_scale",
            "hot_start_below_trip_c",
        ):
            rng = getattr(self, name)
            if rng is not None and rng[1] < rng[0]:
                raise ValueError(f"randomize.{name}: low {rng[0]} is above high {rng[1]}")
        return self


class Scenario(BaseModel):
    """Everything that defines one simulated episode, validated once.

    :param board: shipped board profile name or a YAML path.
    :param power_mode: nvpmodel mode name; the board's default when None.
    :param ambient_c: room temperature, C.
    :param workload: shipped workload profile name, a YAML path, or a model manifest path.
    :param trace: proposal generator (``steady``, ``bursty``, ``video``) or a CSV path.
    :param fps: camera rate (frames/s); 0 means back-to-back; None uses the workload default.
    :param deadline_ms: latency target, ms; None uses the workload default.
    :param decision: ``stage`` (two decisions per frame, as Lotus) or ``frame`` (one, as zTT).
    :param episode_frames: frames per episode before truncation.
    :param reward: ``objective`` (drl's), ``objective-projected`` (an ablation), ``stable`` (our
        earlier one), ``lotus`` (the Lotus paper's) or ``ztt``.
    :param trip_c: passive trip override, C; None uses the board's (99 C on Orin).
    :param fan: ``off`` (passive, closed enclosure), ``on`` (full PWM) or ``auto`` (fan curve).
    :param init_temp_c: temperature every node starts at; None starts at ambient.
    :param r_scale: factor on the heatsink-to-ambient resistance: above 1 is an enclosure (1.3: a
        sealed box), below 1 a bigger heatsink; ``randomize.r_scale`` replaces it when set.
    :param c_scale: factor on the heatsink's heat capacity (below 1: a lighter heatsink, faster
        heating); ``randomize.c_scale`` replaces it when set.
    :param randomize: domain-randomisation ranges, or None for a fixed scenario.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    board: str = "orin-nano"
    power_mode: str | None = None
    ambient_c: float = Field(default=25.0, ge=-40, le=80)
    workload: str = "frcnn-lite"
    trace: str = "video"
    fps: float | None = Field(default=None, ge=0, le=1000)
    deadline_ms: float | None = Field(default=None, gt=0)
    decision: Literal["stage", "frame"] = "stage"
    episode_frames: int = Field(default=1800, ge=1)
    reward: RewardKind = "stable"
    trip_c: float | None = Field(default=None, gt=0, le=150)
    fan: Literal["off", "on", "auto"] = "off"
    init_temp_c: float | None = Field(default=None, ge=-40, le=150)
    r_scale: float = Field(default=1.0, gt=0, le=10)
    c_scale: float = Field(default=1.0, gt=0, le=10)
    randomize: Randomization | None = None
