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
    bench: Annotated[
        str | None,
        typer.Option(
            help="SimLab bench: sim (real transports; the default) or virtual (virtual time; "
            "the default with --explore)."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="SimLab meter model: module:Class (a SimMeter subclass).")
    ] = None,
    coverage: Annotated[
        bool,
        typer.Option(
            "--coverage",
            help="Print each declared parameter of the profile with the scenarios that prove "
            "it (runs nothing); fail when one has none.",
        ),
    ] = False,
    explore: Annotated[
        bool,
        typer.Option(
            "--explore",
            help="Explore each defect against the reference twin instead "
            "of running the pack: steps until the first difference.",
        ),
    ] = False,
    steps: Annotated[int, typer.Option(help="With --explore: steps per meter at most.")] = 5000,
    seed: Annotated[int, typer.Option(help="With --explore: the seed.")] = 0,
    compare: Annotated[
        str | None,
        typer.Option(
            help="Run everything on each of these benches (e.g. sim,virtual) and print every "
            "scenario whose verdict differs."
        ),
    ] = None,
) -> None:
    """Print the kill matrix: which scenario catches each SimLab defect."""
    from simlab.defects import CATALOGUE, lookup
    from stslab.cli.certify import check_campaign_inputs, check_model
    from stslab.selftest import REFERENCE, selftest
    from stslab.session import DEFAULT_PACK, CampaignConfig

    try:
        chosen = [d.name for d in (lookup(defect) if defect else CATALOGUE)]
    except ValueError as exc:
        raise ArgumentError("--defect", str(exc)) from None
    if workers < 1:
        raise ArgumentError("--workers", "must be at least 1")
    from stslab.session import SIMLAB_BENCHES

    bench = bench or ("virtual" if explore else "sim")
    if bench not in SIMLAB_BENCHES:
        raise ArgumentError("--bench", f"{bench!r} is not one of {', '.join(SIMLAB_BENCHES)}")
    if pack is not None and not (pack / "manifest.yaml").exists():
        raise ArgumentError("--pack", f"{pack} has no manifest.yaml")
    check_model(model)
    # Checked once here, not in every worker: a bad file is one line, not a traceback each.
    check_campaign_inputs(
        CampaignConfig(bench=bench, dut=dut, pack=pack or DEFAULT_PACK, model=model)
    )
    console = Console()
    if coverage:
        _coverage(console, pack or DEFAULT_PACK, dut)
        return
    if explore:
        _explore(console, chosen, dut, steps, seed, bench, model, workers, not no_reference)
        return
    if compare is not None:
        _compare(console, compare, chosen, pack or DEFAULT_PACK, dut, speed,
                 tuple(select or ()), workers, model)  # fmt: skip
        return
    rows = selftest(chosen, pack or DEFAULT_PACK, dut, speed, tuple(select or ()), workers,
                    not no_reference, not all_kills, bench=bench, model=model)  # fmt: skip
    table = Table("meter", "verdict", "killed by / problems", "scenarios run", "wall s",
                  title="kill matrix")  # fmt: skip
    for r in rows:
        if r.not_observable is not None:
            verdict, detail = "not observable", r.not_observable
        elif r.defect == REFERENCE:
            verdict = "all pass" if r.ok else "[red]NOT CLEAN[/]"
            detail = ", ".join(r.failures + r.errors) or "-"
        else:
            verdict = "killed" if r.ok else "[red]SURVIVED[/]"
            detail = ", ".join(r.killed_by) or ", ".join(r.errors) or "-"
        table.add_row(r.defect, verdict, detail, str(r.scenarios_run), f"{r.wall_s:.1f}")
    console.print(table)
    bad = [r.defect for r in rows if not r.ok]
    observable = [r for r in rows if r.defect != REFERENCE and r.not_observable is None]
    killed = sum(1 for r in observable if r.ok)
    hidden = sum(1 for r in rows if r.not_observable is not None)
    console.print(f"defects killed: {killed}/{len(observable)}"
                  + (f" ({hidden} not observable on this meter)" if hidden else ""))  # fmt: skip
    if bad:
        console.print(f"[red]selftest failed:[/] {', '.join(bad)}")
        raise typer.Exit(1)


def _coverage(console: Console, pack: Path, dut: str | None) -> None:
    from stslab.declared import coverage
    from stslab.session import load_dut, load_pack

    profile = load_dut(dut)
    rows = coverage(load_pack(pack), profile)
    table = Table(title=f"declaration coverage: {profile.name} ({pack})")
    table.add_column("declared parameter", no_wrap=True)
    table.add_column("value")
    table.add_column("scenarios that prove it")
    for r in rows:
        if r.not_applicable is not None:
            proof = f"not applicable: {r.not_applicable}"
        else:
            proof = ", ".join(r.scenarios) or "[red]NONE[/]"
        table.add_row(r.parameter, r.value, proof)
    console.print(table)
    missing = [r.parameter for r in rows if not r.covered]
    applicable = sum(1 for r in rows if r.not_applicable is None)
    console.print(f"declared parameters proven: {applicable - len(missing)}/{applicable} "
                  f"({len(rows) - applicable} not applicable)")  # fmt: skip
    if missing:
        console.print(f"[red]coverage failed:[/] no scenario proves {', '.join(missing)}")
        raise typer.Exit(1)


def _explore(console: Console, defects: list[str], dut: str | None, steps: int, seed: int,
             bench: str, model: str | None, workers: int, reference: bool) -> None:  # fmt: skip
    from stslab.selftest import REFERENCE, explore_matrix

    if steps < 1:
        raise ArgumentError("--steps", "must be at least 1")
    rows = explore_matrix(defects, dut, steps, seed, bench, model, workers, reference)
    table = Table("meter", "found", "steps to find", "first difference", "wall s",
                  title=f"exploration against the reference twin (seed {seed})")  # fmt: skip
    for r in rows:
        if r.not_observable is not None:
            table.add_row(r.defect, "not observable", "-", r.not_observable, "-")
            continue
        if r.defect == REFERENCE:
            found = "clean" if r.ok else "[red]DIFFERS[/]"
            when = f"0 differences in {r.steps_run}" if r.ok else str(r.found_after)
        else:
            found = "found" if r.ok else f"[red]not in {steps}[/]"
            when = str(r.found_after) if r.ok else "-"
        table.add_row(r.defect, found, when, r.first_difference or "-", f"{r.wall_s:.1f}")
    console.print(table)
    explored = [r for r in rows if r.defect != REFERENCE and r.not_observable is None]
    found = sum(1 for r in explored if r.ok)
    hidden = len(rows) - len(explored) - sum(1 for r in rows if r.defect == REFERENCE)
    console.print(f"defects found by exploration: {found}/{len(explored)} within {steps} steps"
                  + (f" ({hidden} not observable on this meter)" if hidden else ""))  # fmt: skip
    bad = [r.defect for r in rows if not r.ok]
    if bad:
        console.print(f"[red]selftest --explore failed:[/] {', '.join(bad)}")
        raise typer.Exit(1)


def _compare(
    console: Console,
    spec: str,
    defects: list[str],
    pack: Path,
    dut: str | None,
    speed: float,
    select: tuple[str, ...],
    workers: int,
    model: str | None,
) -> None:
    from stslab.selftest import compare
    from stslab.session import SIMLAB_BENCHES

    benches = tuple(b.strip() for b in spec.split(",") if b.strip())
    wrong = [b for b in benches if b not in SIMLAB_BENCHES]
    if len(benches) < 2 or wrong or len(set(benches)) != len(benches):
        raise ArgumentError("--compare", f"{spec!r}: name two or more of sim, virtual")
    rows, differences = compare(benches, defects, pack, dut, speed, select, workers, model)
    table = Table("meter", *benches, title="scenarios run and wall seconds per bench")
    meters = list(dict.fromkeys(r.defect for r in rows))
    for meter in meters:
        cells = []
        for b in benches:
            row = next(r for r in rows if r.defect == meter and r.bench == b)
            cells.append(f"{row.scenarios_run} in {row.wall_s:.1f} s")
        table.add_row(meter, *cells)
    console.print(table)
    if not differences:
        total = sum(len(r.outcomes) for r in rows if r.bench == benches[0])
        console.print(f"same verdict on {', '.join(benches)}: {total} scenario runs, no difference")
        return
    diff = Table("meter", "scenario", *benches, title="verdicts that differ")
    for d in differences:
        diff.add_row(d.meter, d.scenario, *(d.verdicts[b] for b in benches))
    console.print(diff)
    console.print(f"[red]{len(differences)} verdict(s) differ[/]")
    raise typer.Exit(1)
