"""``lotus boards``: what board was detected and what can be controlled; fake trees; restore."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from lotus.core.errors import ConfigError, DeviceError

if TYPE_CHECKING:
    from lotus.runtime.hw.base import Board, BoardDescription

app = typer.Typer(
    help="Detected board backend, sensors and controllable clocks.",
    invoke_without_command=True,
    no_args_is_help=False,
)

SysfsRoot = typer.Option(Path("/"), "--sysfs-root", help="Root of the sysfs tree to probe (a fake tree in tests).")


@app.callback()
def boards(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document instead of tables."),
    diagnose: bool = typer.Option(False, "--diagnose", help="Print a paste-able diagnostic report."),
    sysfs_root: Path = SysfsRoot,
    prefer: str | None = typer.Option(None, "--backend", help="Force one backend (jetson, linux, nvml...)."),
    bench: int = typer.Option(0, "--bench", min=0, help="Also time N sensor snapshots (us per read)."),
) -> None:
    """Print the detected board backend, its clock domains, sensors, and what is writable."""
    if ctx.invoked_subcommand is not None:
        return
    from lotus.runtime.hw import detect_board
    from lotus.runtime.hw import diagnose as diagnose_report

    if diagnose:
        typer.echo(diagnose_report(sysfs_root), nl=False)
        return
    board = detect_board(sysfs_root, prefer=prefer)
    if board is None:
        if as_json:
            typer.echo(json.dumps({"backend": None, "sysfs_root": str(sysfs_root)}))
        else:
            typer.echo(f"no board backend detected under {sysfs_root}: the daemon will use a simulated board")
        return
    try:
        desc = board.describe()
        timings = snapshot_timings(board, bench) if bench else {}
    finally:
        board.close()
    if as_json:
        doc = desc.to_dict()
        if timings:
            doc["snapshot_us"] = timings
        typer.echo(json.dumps(doc, indent=1))
        return
    _print_tables(desc)
    for variant, stats in timings.items():
        typer.echo(f"snapshot {variant}: " + "  ".join(f"{k}={v:.1f}us" for k, v in stats.items()))


def snapshot_timings(board: Board, n: int) -> dict[str, dict[str, float]]:
    """Median, p99 and mean microseconds per ``snapshot()``, full and without the slower groups."""
    import statistics
    import time

    variants: dict[str, dict[str, bool]] = {
        "full": {},
        "no_power": {"power": False},
        "clocks_only": {"power": False, "temps": False, "util": False},
    }
    out = {}
    for variant, kwargs in variants.items():
        board.snapshot(**kwargs)  # open the descriptors
        samples = []
        for _ in range(n):
            start = time.perf_counter()
            board.snapshot(**kwargs)
            samples.append((time.perf_counter() - start) * 1e6)
        samples.sort()
        out[variant] = {
            "p50": statistics.median(samples),
            "p99": samples[min(n - 1, int(n * 0.99))],
            "mean": statistics.fmean(samples),
        }
    return out


def _print_tables(desc: BoardDescription) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"[bold]backend[/] {desc.backend}   [bold]model[/] {desc.model}   [bold]root[/] {desc.sysfs_root}")
    if desc.nvpmodel:
        nvp = desc.nvpmodel
        console.print(f"[bold]nvpmodel[/] id={nvp.id} name={nvp.name} fan mode={nvp.fan_mode}")
    clocks = Table(title="clock domains")
    for col in ("domain", "unit", "current", "min", "max", "steps", "governor", "control", "path"):
        clocks.add_column(col)
    for d in desc.domains:
        steps = f"{len(d.available)} ({d.available[0]}..{d.available[-1]})" if d.available else "-"
        clocks.add_row(d.name, d.unit, str(d.current), str(d.min), str(d.max), steps, str(d.governor), d.method, d.path)
    console.print(clocks)
    sensors = Table(title="sensors")
    for col in ("kind", "name", "value", "detail"):
        sensors.add_column(col)
    for z in desc.zones:
        sensors.add_row(
            "temp",
            z.name,
            f"{z.temp_c} C",
            f"passive trip {z.passive_c} C" if z.passive_c else "no passive trip",
        )
    for r in desc.rails:
        sensors.add_row("power", r.name, r.source, "energy counter" if r.has_energy else "power only")
    if desc.fan:
        sensors.add_row(
            "fan", desc.fan.path, f"pwm {desc.fan.pwm}", f"rpm {desc.fan.rpm}, writable={desc.fan.writable}"
        )
    sensors.add_row("util", "cpu", "yes" if desc.cpu_util else "no", "/proc/stat")
    sensors.add_row("util", "gpu", "yes" if desc.gpu_load else "no", "")
    console.print(sensors)
    for note in desc.notes:
        console.print(f"[yellow]note[/] {note}")


@app.command("fake-sysfs")
def fake_sysfs(
    directory: Path = typer.Argument(..., help="Empty directory to write the fake tree into."),
    layout: str = typer.Option("jetpack6", "--layout", help="jetpack5, jetpack6 or x86."),
) -> None:
    """Write a fake sysfs tree (Orin Nano 15W tables, or an x86 box) for tests and demos."""
    from lotus.runtime.hw.fake_sysfs import LAYOUTS, write_fake_sysfs

    if layout not in LAYOUTS:
        raise typer.BadParameter(f"choose one of {', '.join(LAYOUTS)}", param_hint="--layout")
    try:
        write_fake_sysfs(directory, layout)
    except ConfigError as exc:
        raise typer.BadParameter(str(exc), param_hint="DIRECTORY") from exc
    typer.echo(f"wrote {layout} fake sysfs under {directory}; try: lotus boards --sysfs-root {directory}")


def restore_clocks(
    state_file: Path = typer.Argument(..., help="JSON state file the daemon saved at start."),
    sysfs_root: Path = SysfsRoot,
) -> None:
    """Put back the governors, clock limits and fan settings saved in STATE_FILE."""
    from lotus.runtime.hw.state import restore

    report = restore(state_file, sysfs_root)
    for line in report.restored:
        typer.echo(f"restored {line}")
    for line in report.skipped:
        typer.echo(f"skipped  {line}")
    if report.failed:
        raise DeviceError("could not restore: " + "; ".join(report.failed))
