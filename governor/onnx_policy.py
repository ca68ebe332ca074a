"""A learned policy run with ONNX Runtime: what the daemon uses (numpy + onnxruntime only)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lotus.core.errors import PolicyError
from lotus.core.schema import N_FEATURES, ActionTable
from lotus.governor.admission import ServedShare
from lotus.governor.artifacts import PolicyArtifact, load_artifact
from lotus.governor.features import FEATURE_SPECS
from lotus.governor.protocol import NOMINAL_DECISION_S, DecisionKind, PolicyBase, PolicyDiagnostics, TimeStep

if TYPE_CHECKING:
    from lotus.governor.mpc import MpcPolicy


class OnnxPolicy(PolicyBase):
    """Argmax of an exported network over its action subset, mapped back to joint indices.

    ``decision`` is the cadence the network was trained at and ``deadline_scale_max`` the largest
    deadline factor it saw (from its metadata); ``diagnostics().version`` names the artifact file
    and its training time stamp (``drl.orin-nx-15W@20261201-153000``).
    """

    def __init__(self, artifact: PolicyArtifact, threads: int = 1) -> None:
        import onnxruntime as ort

        self.artifact = artifact
        self.name = artifact.family
        # which file decides, and when it was trained: drl.orin-nx-15W@20261201-153000
        stamp = str(artifact.meta.get("version", artifact.meta["onnx_sha256"][:12]))
        self.version = f"{artifact.json_path.stem}@{stamp}"
        spec = FEATURE_SPECS.get(artifact.family)
        if spec is None:
            raise PolicyError(f"policy {artifact.json_path} has unknown family {artifact.family!r}")
        self.spec = spec
        self.decision: DecisionKind | None = spec.decision
        self.actions = artifact.actions
        self.action_map = np.asarray(artifact.meta["action_map"], dtype=np.int64)
        # the share of camera frames each output serves (metadata without it: every frame)
        self.share_map = np.asarray(artifact.meta.get("served_share") or [1.0] * len(self.action_map), dtype=float)
        self._held_out = np.zeros(0, dtype=np.int64)  # per board: the network output being held
        self._out = np.zeros(0, dtype=np.int64)  # per board: the network's last output (per-stage path)
        self.deadline_scale_max = artifact.deadline_scale_max
        self.trained_deadline_ms = artifact.trained_deadline_ms  # read once: diagnostics() runs every frame
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(artifact.onnx_path), opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - ORT raises its own exception types
            raise PolicyError(f"policy network {artifact.onnx_path} cannot be loaded: {exc}") from None
        self.input_name = self.session.get_inputs()[0].name
        # a held policy asks its network once per hold_s per board (metadata written before holds
        # existed has no hold_s: those networks decided at every stage)
        self.hold_s = float(artifact.meta.get("hold_s", 0.0))
        # shares below 1 (skipped frames) come with a held choice: admit() reads the held output
        self._serves = ServedShare(1) if self.hold_s > 0 and (self.share_map < 1.0).any() else None
        self._held = np.zeros(0, dtype=np.int64)  # per board: the action being held
        self._since = np.zeros(0)  # per board: seconds since the network was last asked
        # drl --levels: outputs that set a latency level for the per-stage allocator instead of clocks
        self.level_map = np.asarray(artifact.meta.get("level_map") or [0.0] * len(self.action_map), dtype=float)
        self._allocator = self._level_allocator() if (self.level_map > 0).any() else None
        # drl reads the schema's features as they are, already inside the +-5 the network saw
        self._identity = spec.n_inputs == N_FEATURES and spec.name == "drl"
        width = self.session.get_outputs()[0].shape[-1]
        if isinstance(width, int) and width != len(self.action_map):
            raise PolicyError(
                f"policy network {artifact.onnx_path} scores {width} actions but its metadata maps "
                f"{len(self.action_map)}"
            )

    def _level_allocator(self) -> MpcPolicy:
        """The allocator the level outputs drive, on the profile and scenario the network was trained for."""
        from lotus.governor.mpc import level_allocator

        meta, sc = self.artifact.meta, self.artifact.meta.get("scenario") or {}
        try:
            return level_allocator(self.actions, str(meta["board"]), meta.get("power_mode"), str(sc["workload"]),
                                   _number(sc.get("deadline_ms")), _number(sc.get("fps")))  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            where = self.artifact.json_path
            raise PolicyError(f"policy {where} has level outputs but no usable scenario: {exc}") from None

    @classmethod
    def load(cls, name_or_path: str | Path, actions: ActionTable | None = None, threads: int = 1) -> OnnxPolicy:
        return cls(load_artifact(name_or_path, actions), threads)

    def diagnostics(self) -> PolicyDiagnostics:
        return PolicyDiagnostics(
            policy_name=self.name, version=self.version, trained_deadline_ms=self.trained_deadline_ms
        )

    def reset(self, n: int = 1) -> None:
        if self._allocator is not None:
            self._allocator.reset(n)
        self._held = np.zeros(0, dtype=np.int64)
        self._held_out = np.zeros(0, dtype=np.int64)
        self._since = np.zeros(0)
        if self._serves is not None:
            self._serves = ServedShare(1)

    @property
    def serves_share(self) -> bool:
        """Whether some outputs serve less than every camera frame (then :meth:`admit` may skip)."""
        return self._serves is not None

    def admit(self, obs: np.ndarray, dt_s: float | None = None, shutdown_gap_c: float | None = None) -> bool:
        """Board 0 at a camera frame: serve it, or skip it to keep the held output's share.

        Before the first decision the network is asked (and its answer held) from ``obs``.
        """
        if self._serves is None:
            return True
        if len(self._held_out) == 0:
            self.act(np.atleast_2d(obs).astype(np.float32, copy=False), 0.0)
        return self._serves.admit(float(self.share_map[self._held_out[0]]))

    def scores(self, obs: np.ndarray) -> np.ndarray:
        """Raw network outputs ``[N, len(action_map)]`` (logits or Q-values)."""
        x = self.spec.inputs(obs, self.actions)
        x = np.minimum(np.maximum(x, -5.0, dtype=np.float32), 5.0, dtype=np.float32)
        return np.asarray(self.session.run(None, {self.input_name: x})[0])

    def act(self, obs: np.ndarray, dt_s: TimeStep = None) -> np.ndarray:
        if self._allocator is None:
            return self._act_clocks(obs, dt_s)
        joint = self._act_clocks(obs, dt_s)  # sets _held_out (held) or _out (per stage)
        out = self._held_out if self.hold_s > 0 else self._out
        level = self.level_map[out]
        rows = level > 0
        if not rows.any():
            return joint
        obs2 = np.atleast_2d(obs)
        if len(self._allocator.k) != len(obs2):
            self._allocator.reset(len(obs2))
        self._allocator.margins[rows] = level[rows]
        return np.where(rows, self._allocator.act(obs2, dt_s, rows=rows), joint)

    def _act_clocks(self, obs: np.ndarray, dt_s: TimeStep = None) -> np.ndarray:
        """The outputs' joint clocks (a level output: the top clocks), held or per stage."""
        if self.hold_s <= 0:
            return self._decide(obs)
        obs = obs if obs.ndim == 2 else np.atleast_2d(obs)
        n = obs.shape[0]
        if len(self._held) != n:  # first call (or a new board count): ask now
            self._held_out, self._since = self._choose(obs).copy(), np.zeros(n)
            self._held = self.action_map[self._held_out]
            return self._held.copy()
        if n == 1 and not isinstance(dt_s, np.ndarray):
            # the daemon's path (one board, a scalar dt): Python floats, no array ops; the same
            # float64 sums and comparison as the vector path below, so the same decisions
            since = float(self._since[0]) + (NOMINAL_DECISION_S if dt_s is None else float(dt_s))
            if since >= self.hold_s - 1e-9:
                pick = int(self._choose(obs.astype(np.float32, copy=False))[0])
                self._held_out[0], self._held[0], since = pick, self.action_map[pick], 0.0
            self._since[0] = since
            return self._held.copy()
        self._since += NOMINAL_DECISION_S if dt_s is None else np.asarray(dt_s, dtype=float)
        due = self._since >= self.hold_s - 1e-9
        if due.any():
            fresh = self._choose(obs[due].astype(np.float32, copy=False))
            self._held_out[due] = fresh
            self._held[due] = self.action_map[fresh]
            self._since[due] = 0.0
        return self._held.copy()

    def _decide(self, obs: np.ndarray) -> np.ndarray:
        """The network's joint clock for every row of ``obs``."""
        self._out = self._choose(obs)
        return self.action_map[self._out]

    def _choose(self, obs: np.ndarray) -> np.ndarray:
        """The network's output index for every row of ``obs``."""
        if self._identity and obs.ndim == 2 and obs.shape[0] == 1 and obs.dtype == np.float32:
            # the daemon's per-stage path: one board, the schema already bounds the features
            row = self.session.run(None, {self.input_name: obs})[0][0]
            best = int(row.argmax())  # argmax lands on a NaN if there is one
            if not math.isfinite(float(row[best])):
                raise PolicyError(f"policy {self.name} produced non-finite outputs")
            return np.array([best], dtype=np.int64)
        scores = self.scores(obs)
        best = np.argmax(scores, axis=1)
        if not np.isfinite(scores[np.arange(len(best)), best]).all() or np.isnan(scores).any():
            raise PolicyError(f"policy {self.name} produced non-finite outputs")
        return best.astype(np.int64)


def _number(value: object) -> float | None:
    """A metadata number as a float; None stays None (the workload's default)."""
    return None if value is None else float(value)  # type: ignore[arg-type]
