"""The governor inside the daemon: policy, mode (active/shadow/off), decisions and clock writes.

A decision is ``policy.act(obs, dt_s)`` (timed: ``decision_s``) and, in ``active`` mode, writing
the chosen clocks to the board (timed: ``clock_set_s``; skipped when the clocks are already set).
``dt_s`` is the wall time since the previous decision (``perf_counter``; 0 at the first one): the
shield's caps and deadline stretch run on it. ``shadow`` decides and records what it would have
set; ``off`` neither decides nor writes. The policy and the mode can be switched at run time; the
lock keeps a switch from landing mid-decision.

``admit`` asks a shielded policy's admission rule (:mod:`lotus.governor.admission`) whether a
stream frame runs at all; only ``active`` mode skips frames (shadow and off serve every frame).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lotus.core.errors import DeviceError, PolicyError
from lotus.core.schema import GOVERNOR_MODES, ActionTable, GovernorMode
from lotus.governor.lookahead import LookaheadMonitor
from lotus.governor.protocol import Admitting, Policy, PolicyDiagnostics
from lotus.runtime.hw.base import Board

log = logging.getLogger(__name__)


@dataclass
class Decision:
    """One governor decision: the action, the clocks it maps to, and what it cost."""

    action: int | None
    cpu_khz: int | None
    gpu_hz: int | None
    applied: bool
    decision_s: float
    clock_set_s: float


# a model served at a latency target this far outside the range the policy was trained on is warned about
DEADLINE_TOLERANCE = 0.25


def build_policy(spec: str, actions: ActionTable, margin_c: float | str | None = None) -> Policy:
    """``governor.registry.build_policy`` (numpy + onnxruntime only; never SB3/torch); ``margin_c``:
    the shield's thermal margin under the trip, C (None: the shield's default)."""
    from lotus.governor.registry import build_policy as _build

    return _build(spec, actions, margin_c=margin_c)


class GovernorController:
    """Owns the live policy and mode; ``decide`` is called by the pipeline twice per frame.

    :param board: the board whose clocks are set in ``active`` mode.
    :param actions: the joint clock table the policy indexes.
    :param on_control: called with ``True`` when control must be taken (entering active) and with
        ``False`` when the kernel governors must get it back (leaving active).
    :param margin_c: the safety shield's thermal margin under the trip, C, for every policy this
        controller builds (None: the shield's default).
    """

    def __init__(
        self,
        board: Board,
        actions: ActionTable,
        policy: str,
        mode: GovernorMode,
        on_control: Callable[[bool], None] | None = None,
        has_gpu: bool = True,
        margin_c: float | str | None = None,
    ) -> None:
        self.board, self.actions, self.margin_c = board, actions, margin_c
        self._lock = threading.Lock()
        self._on_control = on_control
        self.has_gpu = has_gpu
        self.policy_spec = policy
        t0 = time.perf_counter()
        self.policy = build_policy(policy, actions, margin_c)
        self.policy.reset(1)
        self.policy_load_s = time.perf_counter() - t0  # files read, ONNX session built (issue 11: < 1 s on a board)
        self.version = self.policy.diagnostics().version
        self.mode: GovernorMode = mode
        self.decisions = 0
        self.write_errors = 0
        self.last: Decision | None = None
        self._set: tuple[int | None, int | None] = (None, None)
        self.requested: tuple[int | None, int | None] = (None, None)
        self._last_decision_t: float | None = None  # time.perf_counter() of the previous decision, s
        self._last_admit_t: float | None = None  # time.perf_counter() of the previous admit call, s
        self.served_deadlines_ms: dict[str, float] = {}  # model name -> the latency target it is served at
        self.lookahead = LookaheadMonitor()  # how far the shield's temperature look-ahead errs on this board

    # --- run-time changes ---------------------------------------------------------------------
    def set_policy(self, spec: str) -> None:
        """Switch policy; PolicyError for unknown names (a broken ``drl`` file falls back to stock)."""
        t0 = time.perf_counter()
        policy = build_policy(spec, self.actions, self.margin_c)
        policy.reset(1)
        load_s = time.perf_counter() - t0
        version = policy.diagnostics().version
        with self._lock:
            self.policy, self.policy_spec, self.version, self.policy_load_s = policy, spec, version, load_s
        log.info("governor policy -> %s (%s)", spec, self.version)
        self._warn_deadlines()

    def set_served_deadlines(self, deadlines_ms: dict[str, float]) -> None:
        """The latency target (ms) each loaded model is served at; logs a warning for each one
        outside the targets the policy was trained on (see :meth:`deadline_mismatch`)."""
        self.served_deadlines_ms = dict(deadlines_ms)
        self._warn_deadlines()

    def deadline_mismatch(self) -> dict[str, float]:
        """Models served at a latency target (ms) more than :data:`DEADLINE_TOLERANCE` outside the
        range the live policy was trained on: its inputs (latency / deadline) are then outside
        what it saw in training. Empty for policies not trained on a deadline."""
        trained = self.diagnostics().trained_deadline_ms
        if trained is None:
            return {}
        low, high = trained[0] * (1 - DEADLINE_TOLERANCE), trained[1] * (1 + DEADLINE_TOLERANCE)
        return {name: d for name, d in self.served_deadlines_ms.items() if not low <= d <= high}

    def _warn_deadlines(self) -> None:
        trained = self.diagnostics().trained_deadline_ms
        if trained is None:  # a policy not trained on a deadline has nothing to mismatch
            return
        for name, deadline in self.deadline_mismatch().items():
            log.warning(
                "model %s is served at a %.0f ms latency target; policy %s was trained on %.0f-%.0f ms "
                "(set the model's slo_ms, and the camera rate, to what the policy was trained for)",
                name, deadline, self.version, trained[0], trained[1],
            )  # fmt: skip

    def set_mode(self, mode: str) -> None:
        if mode not in GOVERNOR_MODES:
            raise PolicyError(f"unknown governor mode {mode!r}; choose one of {', '.join(GOVERNOR_MODES)}")
        with self._lock:
            old, self.mode = self.mode, mode
            if old != "active" and mode == "active" and self._on_control:
                try:
                    self._on_control(True)  # on failure it has already given back what it changed
                except Exception:
                    self.mode = old
                    raise
                self._set = (None, None)
            if old == "active" and mode != "active" and self._on_control:
                self._on_control(False)
                self._set = (None, None)
        log.info("governor mode %s -> %s", old, mode)

    # --- the hot path ---------------------------------------------------------------------------
    def decide(self, obs: np.ndarray) -> Decision:
        """Run the policy on ``obs`` ``[1, N_FEATURES]`` and (active mode) set the clocks."""
        with self._lock:
            if self.mode == "off":
                self.last = Decision(None, None, None, False, 0.0, 0.0)
                return self.last
            t0 = time.perf_counter()
            dt_s = 0.0 if self._last_decision_t is None else t0 - self._last_decision_t
            self._last_decision_t = t0
            action = int(self.policy.act(obs, dt_s)[0])
            cpu_khz, gpu_hz = self.actions.clocks(action)
            t1 = time.perf_counter()
            self.lookahead.observe(t0, obs[0])
            applied = False
            if self.mode == "active":
                gpu = gpu_hz if self.has_gpu else None
                try:
                    if (cpu_khz, gpu) != self._set:
                        self.board.set_clocks(cpu=cpu_khz, gpu=gpu)
                        self._set = (cpu_khz, gpu)
                    self.requested = (cpu_khz, gpu)
                    applied = True
                except DeviceError as exc:
                    # a clock write failed: stop driving clocks, give them back to the kernel, keep serving
                    self.write_errors += 1
                    log.error("clock write failed (%s): governor falls back to shadow mode", exc)
                    self.mode = "shadow"
                    self._set = (None, None)
                    if self._on_control:
                        self._on_control(False)
            t2 = time.perf_counter()
            self.decisions += 1
            self.last = Decision(action, cpu_khz, gpu_hz, applied, t1 - t0, t2 - t1)
            return self.last

    @property
    def admits(self) -> bool:
        """Whether :meth:`admit` may refuse a frame now (``active`` mode, a policy with admission)."""
        return self.mode == "active" and isinstance(self.policy, Admitting)

    def admit(self, obs: np.ndarray, shutdown_gap_c: float | None = None) -> bool:
        """Whether the stream frame about to start runs (True) or is skipped to cool the board.

        :param obs: the observation before stage 1 ``[1, N_FEATURES]``.
        :param shutdown_gap_c: shutdown minus the observation's trip point, C (None: the rule's default).
        """
        with self._lock:
            policy = self.policy
            if self.mode != "active" or not isinstance(policy, Admitting):
                return True
            t = time.perf_counter()
            dt_s = 0.0 if self._last_admit_t is None else t - self._last_admit_t
            self._last_admit_t = t
            return bool(policy.admit(obs, dt_s, shutdown_gap_c))

    @property
    def skip_reason(self) -> str:
        """Why :meth:`admit` last refused a frame: ``thermal`` (the shield's rule) or ``policy`` (its served share)."""
        return str(getattr(self.policy, "skip_reason", "thermal"))

    def throttled(self, cpu_khz: float, gpu_hz: float) -> bool:
        """Firmware throttling: the board's own flag, or, where it cannot tell, a clock below what
        the governor set (``cpu_khz`` kHz and ``gpu_hz`` Hz: the clocks read now)."""
        flag = self.board.firmware_throttled()
        if flag is not None:
            return flag
        req_c, req_g = self.requested
        if self.mode != "active":
            return False
        return bool((req_c is not None and cpu_khz < req_c * 0.99) or (req_g is not None and gpu_hz < req_g * 0.99))

    def diagnostics(self) -> PolicyDiagnostics:
        """The live policy's counters and identity."""
        return self.policy.diagnostics()

    @property
    def deciding(self) -> str:
        """The policy actually choosing the clocks: the configured one, or the shield's fallback
        when the configured one could not be loaded (e.g. no trained policy for this board's clock table)."""
        diag = self.diagnostics()
        if diag.load_error:
            fallback = getattr(self.policy, "fallback", None)
            return str(getattr(fallback, "name", "fallback"))
        return self.policy_spec

    @property
    def deadline_stretch(self) -> float:
        """The deadline factor the shield shows the policy now (1.0 without a stretch)."""
        return self.diagnostics().deadline_stretch

    def status(self) -> dict[str, object]:
        """The JSON of GET /v1/governor."""
        diag = self.diagnostics()
        last = self.last
        return {
            "mode": self.mode,
            "policy": self.policy_spec,
            "deciding": self.deciding,
            "policy_name": diag.policy_name,
            "version": self.version,
            "policy_load_ms": round(self.policy_load_s * 1e3, 2),
            "load_error": diag.load_error,
            "fallbacks": diag.fallbacks,
            "interventions": diag.interventions,
            "deadline_stretch": diag.deadline_stretch,
            "shield_margin_c": getattr(self.policy, "margin_c", None),
            "shield_margin_auto": getattr(self.policy, "auto_margin", None) is not None,
            "lookahead_error_c": self.lookahead.summary(),
            "trained_deadline_ms": None if diag.trained_deadline_ms is None else list(diag.trained_deadline_ms),
            "deadline_mismatch_ms": self.deadline_mismatch(),
            "skipped_frames": diag.skipped_frames,
            "served_fps_cap": diag.served_fps_cap,
            "decisions": self.decisions,
            "clock_write_errors": self.write_errors,
            "n_actions": self.actions.n,
            "cpu_khz_table": list(self.actions.cpu_khz),
            "gpu_hz_table": list(self.actions.gpu_hz),
            "last": None
            if last is None
            else {
                "action": last.action,
                "cpu_khz": last.cpu_khz,
                "gpu_hz": last.gpu_hz,
                "applied": last.applied,
                "decision_us": round(last.decision_s * 1e6, 1),
                "clock_set_us": round(last.clock_set_s * 1e6, 1),
            },
        }
