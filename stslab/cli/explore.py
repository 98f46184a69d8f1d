"""``stslab explore``: random valid campaigns against the reference twin."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from stslab.cli.errors import ArgumentError


def explore_command(
    steps: Annotated[int, typer.Option(help="Steps to run at most (over every run).")] = 1000,
    seed: Annotated[
        int, typer.Option(help="Seed of the random sequences (same seed, same run).")
    ] = 0,
    bench: Annotated[
        str, typer.Option(help="sim, virtual (the default: fastest) or a bench file.")
    ] = "virtual",
    dut: Annotated[str | None, typer.Option(help="The DUT (meter) profile.")] = None,
    model: Annotated[
        str | None, typer.Option(help="SimLab meter model: module:Class (a SimMeter subclass).")
    ] = None,
    defect: Annotated[
        list[str] | None, typer.Option(help="SimLab defect to give the meter (repeatable).")
    ] = None,
    speed: Annotated[float, typer.Option(help="SimLab clock speed (sim only).")] = 20.0,
    out: Annotated[
        Path, typer.Option(help="Folder for the scenario file of a difference found.")
    ] = Path("explore"),
    no_shrink: Annotated[
        bool, typer.Option("--no-shrink", help="Write the sequence as found, unshrunk.")
    ] = False,
) -> None:
    """Run random sequences of valid steps on the bench and compare the meter with the
    reference twin after every step; a difference is shrunk to the shortest sequence that
    still shows it and written to OUT as a scenario file (exit status 1)."""
    from stslab.cli.certify import check_campaign_inputs, check_defects, check_model
    from stslab.explore import explore
    from stslab.session import CampaignConfig, is_simlab

    if steps < 1:
        raise ArgumentError("--steps", "must be at least 1")
    if (defect or model) and not is_simlab(bench):
        raise ArgumentError("--defect" if defect else "--model", "needs a SimLab bench "
                            "(sim or virtual)")  # fmt: skip
    check_defects(defect)
    check_model(model)
    config = CampaignConfig(bench=bench, dut=dut, model=model, defects=tuple(defect or ()),
                            speed=speed)  # fmt: skip
    check_campaign_inputs(config)
    console = Console()
    result = explore(config, steps=steps, seed_value=seed, out=out, shrink=not no_shrink)
    console.print(f"{result.steps_run} steps in {result.runs} runs, {result.wall_s:.1f} s "
                  f"({result.steps_per_s:.1f} steps/s)")  # fmt: skip
    if result.scenario_file is None:
        console.print(f"no difference from the reference meter in {result.steps_run} steps "
                      f"(seed {seed})")  # fmt: skip
        return
    console.print(f"[red]difference[/] after {result.found_after} steps, shrunk to "
                  f"{len(result.shrunk)} step(s):")  # fmt: skip
    for d in result.differences:
        console.print(f"  {d['sentence']}")
    console.print(f"scenario written: {result.scenario_file}")
    raise typer.Exit(1)
