"""``stslab bench``: check a bench file's instruments."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from stslab.cli.errors import ArgumentError

app = typer.Typer(help="Bench files: check the instruments.", no_args_is_help=True,
                  rich_markup_mode=None)  # fmt: skip


@app.command("check")
def check(
    bench_file: Annotated[Path, typer.Argument(help="The bench file (YAML).", metavar="BENCH")],
) -> None:
    """Open and identify every instrument; exit 1 naming each role that failed."""
    from stslab.bench import BenchError, check_bench, load_bench

    try:
        bench = load_bench(bench_file)
    except BenchError as exc:
        raise ArgumentError("BENCH", str(exc)) from None
    console = Console()
    results = check_bench(bench)
    title = f"bench {bench.name}" + (" (simulated)" if bench.simulated else "")
    columns = ("role", "driver", "address", "identity", "calibration", "answer", "status")
    table = Table(*columns, title=title)
    for r in results:
        table.add_row(
            r.role,
            r.driver,
            r.address,
            str(r.identity) if r.identity else "-",
            r.calibration,
            f"{r.seconds * 1000:.0f} ms",
            "ok" if r.ok else f"[red]FAILED[/]: {r.error}",
        )
    console.print(table)
    failed = [r.role for r in results if not r.ok]
    if failed:
        console.print(f"[red]failed:[/] {', '.join(failed)}")
        raise typer.Exit(1)


@app.command("calibrate-display")
def calibrate_display(
    frame: Annotated[str, typer.Argument(help="An all-segments frame: PNG file or snapshot URL.")],
    layout: Annotated[Path, typer.Argument(help="The meter model's segment layout (YAML).")],
    out: Annotated[Path, typer.Option(help="Where to write the calibrated segment map.")],
) -> None:
    """Build a camera's segment map from one frame of the display with every segment lit
    (class-1 test 1): locate the glass, fit the perspective, check every segment reads on."""
    import urllib.request

    from instruments.display import CalibrationError, calibrate

    try:
        if frame.startswith(("http://", "https://")):
            with urllib.request.urlopen(frame, timeout=10) as reply:
                png = reply.read()
        else:
            png = Path(frame).read_bytes()
        text = calibrate(png, layout.read_text(), layout_source=str(layout))
    except (OSError, CalibrationError, ValueError) as exc:
        raise ArgumentError("FRAME", str(exc)) from None
    out.write_text(text)
    typer.echo(f"wrote {out}")
