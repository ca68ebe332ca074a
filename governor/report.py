"""Summaries, tables and plots of rollouts (``lotus sim`` and ``lotus eval``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lotus.governor.foresight import REFERENCES
from lotus.governor.rollout import Recording

SUMMARY_KEYS = (
    "latency_mean_ms", "latency_std_ms", "latency_p50_ms", "latency_p99_ms", "latency_cv",
    "deadline_miss_pct", "max_cpu_temp_c", "max_gpu_temp_c", "throttled_pct", "energy_per_frame_j",
    "frames", "dropped_frames",
)  # fmt: skip


def summarize(rec: Recording) -> dict[str, float]:
    """The summary numbers of one rollout (keys in :data:`SUMMARY_KEYS`)."""
    lat = rec.frames["latency_ms"]
    dt = rec.steps["dt_s"]
    total_t = float(dt.sum()) or 1.0
    mean = float(lat.mean()) if lat.size else float("nan")
    std = float(lat.std()) if lat.size else float("nan")
    return {
        "latency_mean_ms": mean,
        "latency_std_ms": std,
        "latency_p50_ms": float(np.percentile(lat, 50)) if lat.size else float("nan"),
        "latency_p99_ms": float(np.percentile(lat, 99)) if lat.size else float("nan"),
        "latency_cv": std / mean if lat.size and mean > 0 else float("nan"),
        "deadline_miss_pct": float(100.0 * (lat > rec.deadline_ms).mean()) if lat.size else float("nan"),
        "max_cpu_temp_c": float(rec.steps["cpu_temp_c"].max()),
        "max_gpu_temp_c": float(rec.steps["gpu_temp_c"].max()),
        "throttled_pct": float(100.0 * (dt * rec.steps["throttled"]).sum() / total_t),
        "energy_per_frame_j": float(rec.frames["frame_energy_j"].mean()) if lat.size else float("nan"),
        "frames": int(lat.size),
        "dropped_frames": int(rec.dropped_frames),
    }


COLUMNS = (
    ("latency_mean_ms", "lat mean ms", "{:.1f}"), ("latency_std_ms", "std ms", "{:.2f}"),
    ("latency_p50_ms", "p50 ms", "{:.1f}"), ("latency_p99_ms", "p99 ms", "{:.1f}"),
    ("latency_cv", "CV", "{:.3f}"), ("deadline_miss_pct", "miss %", "{:.1f}"),
    ("max_cpu_temp_c", "max CPU C", "{:.1f}"), ("max_gpu_temp_c", "max GPU C", "{:.1f}"),
    ("throttled_pct", "throttled %", "{:.1f}"), ("energy_per_frame_j", "J/frame", "{:.3f}"),
    ("frames", "frames", "{:.0f}"),
)  # fmt: skip


def format_table(rows: Sequence[dict], label_key: str = "policy", extra: Sequence[tuple] = ()) -> str:
    """A fixed-width text table of summary rows."""
    cols = [(label_key, label_key, "{}")] + list(COLUMNS) + list(extra)
    cells = [[c[1] for c in cols]]
    for row in rows:
        cells.append([fmt.format(row[key]) if key in row else "-" for key, _, fmt in cols])
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_csv(rec: Recording, path: Path) -> None:
    """Per-step series as CSV (time, temperatures, clocks, power, throttled, frame latency)."""
    s = rec.steps
    frame_lat = np.full(s["time_s"].shape, np.nan)
    idx = np.searchsorted(s["time_s"], rec.frames["time_s"])
    frame_lat[np.minimum(idx, len(frame_lat) - 1)] = rec.frames["latency_ms"]
    header = (
        "time_s,cpu_temp_c,gpu_temp_c,cpu_khz,gpu_hz,requested_cpu_khz,requested_gpu_hz,power_w,throttled,latency_ms"
    )
    data = np.column_stack([
        s["time_s"], s["cpu_temp_c"], s["gpu_temp_c"], s["applied_cpu_khz"], s["applied_gpu_hz"],
        s["requested_cpu_khz"], s["requested_gpu_hz"], s["power_w"], s["throttled"].astype(float), frame_lat,
    ])  # fmt: skip
    np.savetxt(path, data, delimiter=",", header=header, comments="", fmt="%.6g")


def plot_rollout(rec: Recording, path: Path, title: str) -> None:
    """Three stacked panels: temperatures vs trip, clocks (throttled time shaded), frame latency."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s, f = rec.steps, rec.frames
    t = s["time_s"]
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    trip = rec.scenario.trip_c or 99.0
    axes[0].plot(t, s["cpu_temp_c"], label="CPU die", lw=1)
    axes[0].plot(t, s["gpu_temp_c"], label="GPU die", lw=1)
    axes[0].axhline(trip, color="red", ls="--", lw=1, label=f"trip {trip:.0f} C")
    axes[0].set_ylabel("temperature (C)")
    axes[0].legend(loc="lower right")
    axes[1].plot(t, s["applied_cpu_khz"] / 1e3, label="CPU MHz", lw=1)
    axes[1].plot(t, s["applied_gpu_hz"] / 1e6, label="GPU MHz", lw=1)
    _shade(axes[1], t, s["throttled"].astype(bool))
    axes[1].set_ylabel("clock (MHz)")
    axes[1].legend(loc="lower right")
    axes[2].plot(f["time_s"], f["latency_ms"], ".", ms=1.5, alpha=0.5, label="frame latency")
    if f["latency_ms"].size > 30:
        k = 30
        smooth = np.convolve(f["latency_ms"], np.ones(k) / k, mode="valid")
        axes[2].plot(f["time_s"][k - 1 :], smooth, lw=1.5, label="1 s mean")
    axes[2].axhline(rec.deadline_ms, color="red", ls="--", lw=1, label="deadline")
    axes[2].set_ylabel("latency (ms)")
    axes[2].set_xlabel("time (s)")
    axes[2].legend(loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _shade(ax, t: np.ndarray, mask: np.ndarray) -> None:  # noqa: ANN001
    if not mask.any():
        return
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(int), [0]])))
    for start, stop in zip(edges[::2], edges[1::2]):
        ax.axvspan(t[start], t[min(stop, len(t) - 1)], color="red", alpha=0.12, lw=0)
    ax.plot([], [], color="red", alpha=0.3, lw=6, label="throttled")


SUITE_COLUMNS = (
    ("on_time_pct", "on time %", 1), ("drop_pct", "drop %", 1), ("latency_mean_ms", "mean ms", 1),
    ("latency_std_ms", "std ms", 2), ("latency_p99_ms", "p99 ms", 1), ("throttled_pct", "throttled %", 1),
    ("energy_per_camera_frame_j", "J/cam frame", 3), ("objective", "objective", 1),
    ("objective_vs_foresight", "vs foresight", 2),
)  # fmt: skip


def format_suite_table(rows: Sequence[dict]) -> str:
    """A Markdown table of seed means with their 95 % CI half-widths (``mean ± ci``), shutdowns and flags."""
    head = ["policy", *(label for _, label, _ in SUITE_COLUMNS), "shutdowns", "beats foresight"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        cells = [str(row["policy"])]
        for key, _, digits in SUITE_COLUMNS:
            mean, half = row.get(key, float("nan")), row.get(f"{key}_ci95", float("nan"))
            cells.append(f"{mean:.{digits}f} ± {half:.{digits}f}")
        cells += [f"{row.get('shutdowns', 0)}/{row.get('seeds', 0)}", str(row.get("beats_foresight", 0))]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_suite_matrix(doc: dict, key: str = "objective", digits: int = 1, higher_is_better: bool = False) -> str:
    """One Markdown table of a suite: a row per policy, a column per scenario, ``mean ± ci`` of ``key``.

    The best non-reference value of each column (lowest, or highest with ``higher_is_better``) is
    bold; a run with shutdowns is marked ``(n off)``, a learned policy with no variant for the
    scenario's board ``not trained``.
    """
    scenarios = list(doc["scenarios"])
    policies = list(dict.fromkeys(r["policy"] for e in doc["scenarios"].values() for r in e["table"]))
    cell: dict[tuple[str, str], dict] = {
        (name, row["policy"]): row for name, entry in doc["scenarios"].items() for row in entry["table"]
    }
    best: dict[str, float] = {}
    for name in scenarios:
        values = [cell[(name, p)][key] for p in policies if (name, p) in cell and p not in REFERENCES]
        best[name] = (max(values) if higher_is_better else min(values)) if values else float("nan")
    head = ["policy", *(f"{n}{' (held out)' if doc['scenarios'][n].get('held_out') else ''}" for n in scenarios)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in policies:
        cells = [p]
        for name in scenarios:
            row = cell.get((name, p))
            if row is None:  # no variant trained for this scenario's board, or not run
                cells.append("not trained" if p in doc["scenarios"][name].get("not_trained", {}) else "")
                continue
            text = f"{row[key]:.{digits}f} ± {row.get(f'{key}_ci95', float('nan')):.{digits}f}"
            if p not in REFERENCES and row[key] == best[name]:
                text = f"**{text}**"
            if row.get("shutdowns"):
                text += f" ({row['shutdowns']} off)"
            cells.append(text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
