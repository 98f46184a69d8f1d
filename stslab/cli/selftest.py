"""``stslab selftest``: run the catalogue against SimLab's reference meter and every defect."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from stslab.cli.errors import ArgumentError


def selftest_command(
    defect: Annotated[
        list[str] | None, typer.Option(help="Only these defects (default: all).")
    ] = None,
    dut: Annotated[str | None, typer.Option(help="Meter profile for SimLab.")] = None,
    pack: Annotated[Path | None, typer.Option(help="Scenario pack folder.")] = None,
    speed: Annotated[float, typer.Option(help="SimLab clock speed.")] = 20.0,
    select: Annotated[
        list[str] | None, typer.Option("--select", "-k", help="Only scenario ids containing this.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Parallel SimLab runs (pytest-xdist workers).")] = 2,
    no_reference: Annotated[
        bool, typer.Option("--no-reference", help="Skip the reference meter run.")
    ] = False,
    all_kills: Annotated[
        bool, typer.Option("--all-kills", help="Run every scenario per defect (full matrix).")
    ] = False,
) -> None:
    """Print the kill matrix: which scenario catches each SimLab defect."""
    from simlab.defects import CATALOGUE, lookup
    from stslab.selftest import REFERENCE, selftest
    from stslab.session import DEFAULT_PACK

    try:
        chosen = [d.name for d in (lookup(defect) if defect else CATALOGUE)]
    except ValueError as exc:
        raise ArgumentError("--defect", str(exc)) from None
    if workers < 1:
        raise ArgumentError("--workers", "must be at least 1")
    rows = selftest(chosen, pack or DEFAULT_PACK, dut, speed, tuple(select or ()), workers,
                    not no_reference, not all_kills)  # fmt: skip
    console = Console()
    table = Table("meter", "verdict", "killed by / problems", "scenarios run", "wall s",
                  title="kill matrix")  # fmt: skip
    for r in rows:
        if r.defect == REFERENCE:
            verdict = "all pass" if r.ok else "[red]NOT CLEAN[/]"
            detail = ", ".join(r.failures + r.errors) or "-"
        else:
            verdict = "killed" if r.ok else "[red]SURVIVED[/]"
            detail = ", ".join(r.killed_by) or ", ".join(r.errors) or "-"
        table.add_row(r.defect, verdict, detail, str(r.scenarios_run), f"{r.wall_s:.1f}")
    console.print(table)
    bad = [r.defect for r in rows if not r.ok]
    killed = sum(1 for r in rows if r.defect != REFERENCE and r.ok)
    total = sum(1 for r in rows if r.defect != REFERENCE)
    console.print(f"defects killed: {killed}/{total}")
    if bad:
        console.print(f"[red]selftest failed:[/] {', '.join(bad)}")
        raise typer.Exit(1)
