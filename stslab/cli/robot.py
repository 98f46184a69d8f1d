"""``stslab robot``: run Robot Framework suites against a meter on a bench, into one record.

The suites use the :mod:`stslab.robot` keyword library; the command's options reach it as
``${STSLAB_*}`` variables, which override the suites' own settings. Robot's output.xml,
log.html and report.html are moved into the campaign's run folder beside the bench journals and
record.json, and the record's summary is printed.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from stslab.cli.certify import _summary, check_campaign_inputs, check_defects, check_model
from stslab.cli.errors import ArgumentError

DEFAULT_SUITES = Path(str(resources.files("suites").joinpath("robot")))
ROBOT_OUTPUTS = ("output.xml", "log.html", "report.html")


def robot_command(
    suite: Annotated[
        Path | None, typer.Argument(help="Robot suite file or folder (default: suites/robot).")
    ] = None,
    bench: Annotated[
        str | None,
        typer.Option(
            help="Bench file, or SimLab in-process: 'sim' (real transports) or 'virtual' "
            "(virtual time)."
        ),
    ] = None,
    dut: Annotated[
        str | None, typer.Option(help="DUT (meter) profile: a file or a built-in name.")
    ] = None,
    job: Annotated[str | None, typer.Option(help="Job file (customer, item, lab, signer).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for run folders.")] = Path("runs"),
    mode: Annotated[
        str | None, typer.Option(help="pre-submission (default) or accredited.")
    ] = None,
    pack: Annotated[
        Path | None, typer.Option(help="Scenario pack folder (for Run Scenario).")
    ] = None,
    pack_key: Annotated[
        list[Path] | None, typer.Option("--pack-key", help="Trusted pack signing key (PEM).")
    ] = None,
    speed: Annotated[float | None, typer.Option(help="SimLab clock speed.")] = None,
    defect: Annotated[list[str] | None, typer.Option(help="SimLab meter defect.")] = None,
    noise: Annotated[str | None, typer.Option(help="SimLab camera noise.")] = None,
    model: Annotated[
        str | None, typer.Option(help="SimLab meter model: module:Class (a SimMeter subclass).")
    ] = None,
    carrier: Annotated[
        str | None, typer.Option(help="Default token carrier: keypad, port or card.")
    ] = None,
    on_fault: Annotated[
        str | None, typer.Option("--on-fault", help="After a fault: continue (default) or stop.")
    ] = None,
    include: Annotated[
        list[str] | None, typer.Option("--include", "-i", help="Only tests with this tag.")
    ] = None,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", "-e", help="No tests with this tag.")
    ] = None,
    test: Annotated[
        list[str] | None, typer.Option("--test", "-t", help="Only tests with this name.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No Robot console output.")] = False,
) -> None:
    """Run Robot suites with the stslab keywords; leave a journal, a record and Robot's logs."""
    import robot

    from stslab.robot import VARIABLES
    from stslab.session import DEFAULT_PACK, CampaignConfig

    suite = suite or DEFAULT_SUITES
    if not suite.exists():
        raise ArgumentError("SUITE", f"{suite} does not exist")
    for name, value, allowed in (("--mode", mode, ("pre-submission", "accredited")),
                                 ("--carrier", carrier, ("keypad", "port", "card")),
                                 ("--on-fault", on_fault, ("continue", "stop"))):  # fmt: skip
        if value is not None and value not in allowed:
            raise ArgumentError(name, f"{value!r} is not {' or '.join(allowed)}")
    if speed is not None and speed <= 0:
        raise ArgumentError("--speed", f"{speed} is not positive")
    if pack is not None and not (pack / "manifest.yaml").exists():
        raise ArgumentError("--pack", f"{pack} has no manifest.yaml")
    check_defects(defect)
    check_model(model)
    # The files given here are checked before Robot starts: a bad one leaves nothing behind.
    config = CampaignConfig(bench=bench or CampaignConfig.bench, dut=dut, job=job,
                            pack=pack or DEFAULT_PACK, mode=mode or "pre-submission",
                            pack_keys=tuple(pack_key or ()))  # fmt: skip
    check_campaign_inputs(config)
    given: dict[str, Any] = {
        "bench": bench, "dut": dut, "job": job, "out": out.resolve(), "mode": mode,
        "pack": pack.resolve() if pack else None, "speed": speed, "noise": noise,
        "model": model,
        "carrier": carrier, "on_fault": on_fault,
        "defects": ",".join(defect) if defect else None,
        "pack_keys": ",".join(str(k.resolve()) for k in pack_key) if pack_key else None,
    }  # fmt: skip
    variables = [f"{VARIABLES[k]}:{v}" for k, v in given.items() if v is not None]
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".robot-", dir=out))
    status = robot.run(
        str(suite),
        outputdir=str(staging),
        variable=variables,
        include=include or [],
        exclude=exclude or [],
        test=test or [],
        console="quiet" if quiet else "verbose",
    )
    run_dir = _run_folder(staging / "output.xml")
    if run_dir is None:
        # Robot's output stays where it is: it says why nothing ran.
        raise ArgumentError("SUITE", f"no campaign ran (robot exit status {status}); see {staging}")
    for name in ROBOT_OUTPUTS:
        if (staging / name).exists():
            shutil.move(str(staging / name), str(run_dir / name))
    shutil.rmtree(staging, ignore_errors=True)
    record_path = run_dir / "record.json"
    if not record_path.exists():
        raise ArgumentError("SUITE", f"the campaign left no record in {run_dir}")
    record = json.loads(record_path.read_text())
    _summary(Console(), record, run_dir)
    verdict = record["summary"]["verdict"]
    raise typer.Exit(0 if verdict == "PASS" else 1 if verdict == "FAIL" else 3)


def _run_folder(output: Path) -> Path | None:
    """The run folder the library named in output.xml's suite metadata (None: no campaign)."""
    from robot.api import ExecutionResult

    from stslab.robot import RUN_METADATA

    if not output.exists():
        return None
    folder = ExecutionResult(str(output)).suite.metadata.get(RUN_METADATA)
    return Path(folder) if folder else None
