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
