"""``stslab certify``: run a scenario pack against a meter on a bench (through pytest)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from rich.console import Console
from rich.table import Table

from stslab.cli.errors import ArgumentError


class _Progress:
    """pytest plugin object: starts and stops the journal follower (stslab.cli.progress),
    marks a bench whose worker died, and picks up the record at the end."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.config: Any = None
        self.record: dict[str, Any] | None = None
        self.run_dir: Path | None = None
        self.follower: Any = None
        self.collect_errors: list[str] = []

    def pytest_configure(self, config: Any) -> None:
        self.config = config

    def pytest_collectreport(self, report: Any) -> None:
        # With pytest's terminal off, a file that does not collect would go unsaid.
        if report.failed:
            self.collect_errors.append(str(report.longrepr).strip())

    def pytest_sessionstart(self, session: Any) -> None:
        from stslab.cli.progress import Follower

        run_dir = getattr(session.config, "_stslab_run_dir", None)
        if self.quiet or run_dir is None:
            return
        lines = None if self.console.is_terminal else self.console.file
        self.follower = Follower(run_dir, self.console, lines).start()

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        if error is not None and self.follower is not None:
            self.follower.view.stopped(node.workerinput.get("stslab_shard"))

    def pytest_unconfigure(self, config: Any) -> None:
        if self.follower is not None:
            self.follower.stop()
        self.record = getattr(config, "_stslab_record", None)
        self.run_dir = getattr(config, "_stslab_run_dir", None)


def certify(
    bench: Annotated[
        list[str] | None,
        typer.Option(
            help="Bench file, or SimLab in-process: 'sim' (default; real transports, fast "
            "clock) or 'virtual' (virtual time: a campaign in seconds); repeat for several "
            "bench files, one sample each."
        ),
    ] = None,
    benches: Annotated[
        int | None,
        typer.Option(
            "--benches",
            "-n",
            help="Benches at once (SimLab: N simulated samples; with --reserve: up to N "
            "matching places, as many as are free once the first is).",
        ),
    ] = None,
    dut: Annotated[
        str | None, typer.Option(help="DUT (meter) profile: a file or a built-in name.")
    ] = None,
    job: Annotated[str | None, typer.Option(help="Job file (customer, item, lab, signer).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for run folders.")] = Path("runs"),
    mode: Annotated[
        str, typer.Option(help="pre-submission (default) or accredited.")
    ] = "pre-submission",
    pack: Annotated[Path | None, typer.Option(help="Scenario pack folder.")] = None,
    pack_key: Annotated[
        list[Path] | None, typer.Option("--pack-key", help="Trusted pack signing key (PEM).")
    ] = None,
    speed: Annotated[float, typer.Option(help="SimLab clock speed.")] = 20.0,
    defect: Annotated[list[str] | None, typer.Option(help="SimLab meter defect.")] = None,
    noise: Annotated[str, typer.Option(help="SimLab camera noise.")] = "none",
    model: Annotated[
        str | None, typer.Option(help="SimLab meter model: module:Class (a SimMeter subclass).")
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Resume the run in this folder.")] = None,
    select: Annotated[
        list[str] | None, typer.Option("--select", "-k", help="Only scenario ids containing this.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")] = False,
    no_report: Annotated[
        bool, typer.Option("--no-report", help="Leave the record; issue no signed PDF.")
    ] = False,
    place: Annotated[
        str | None,
        typer.Option(
            help="Run on this labgrid place: acquire it, build the bench from its "
            "resources, release it at the end."
        ),
    ] = None,
    reserve: Annotated[
        list[str] | None,
        typer.Option(
            help="Wait for any free labgrid place whose tags match KEY=VALUE "
            "(repeatable), then run there."
        ),
    ] = None,
    coordinator: Annotated[
        str | None,
        typer.Option(
            help="labgrid coordinator HOST[:PORT] (default: LG_COORDINATOR, else 127.0.0.1:20408)."
        ),
    ] = None,
) -> None:
    """Run the scenario pack against the meter and leave a journal and a record."""
    if mode not in ("pre-submission", "accredited"):
        raise ArgumentError("--mode", f"{mode!r} is not pre-submission or accredited")
    on_place = place is not None or bool(reserve)
    if on_place and bench:
        raise ArgumentError("--place", "a campaign on a place takes its bench from the place "
                            "(no --bench)")  # fmt: skip
    if place is not None and not reserve and benches not in (None, 1):
        raise ArgumentError("--benches", "--place names one bench; to run on up to N matching "
                            "places give --reserve KEY=VALUE --benches N")  # fmt: skip
    if benches is not None and benches < 1:
        raise ArgumentError("--benches", "must be at least 1")
    hold = None
    if on_place:  # taken in the background (labgrid's import, the coordinator's answers)
        from stslab.cli.lab import hold_for

        hold = hold_for(place, reserve or [], coordinator, mode, Console(file=sys.stdout),
                        benches=1 if resume is not None else benches or 1)  # fmt: skip
    try:  # while the inputs are checked; bad input leaves the places as they were
        from stslab.session import DEFAULT_PACK, CampaignConfig, is_simlab

        bench = list(bench or (["virtual"] if on_place else ["sim"]))
        if len(bench) > 1 and any(is_simlab(b) for b in bench):
            raise ArgumentError("--bench", "SimLab and bench files do not mix; for several "
                                "SimLab benches give --benches N")  # fmt: skip
        if len(bench) > 1 and benches not in (None, len(bench)):
            raise ArgumentError("--benches", f"{benches} benches, but {len(bench)} bench files")
        count = len(bench) if len(bench) > 1 else benches or 1
        if resume is not None:
            pack_of_run, count = _resume_plan(resume)
            from stslab.atomic import remove_scratch

            remove_scratch(resume)  # half-made files of the killed process (none renamed in)
            if count == 0:  # every bench finished; the process died before its report
                console = Console(file=sys.stdout)
                _conclude(console, _record_of_finished_run(resume), resume, no_report)
            pack = pack or pack_of_run
        pack_dir = (pack or DEFAULT_PACK).resolve()
        if not (pack_dir / "manifest.yaml").exists():
            raise ArgumentError("--pack", f"{pack_dir} has no manifest.yaml")
        check_defects(defect)
        check_model(model)
        if resume is None:  # a resumed run checks the inputs its journal names when it opens
            for b in bench:
                # A place's bench is only known once it is acquired (and checked then, in the
                # mode asked for): here it stands in for the inputs that do not depend on it.
                config = CampaignConfig(bench=b, dut=dut, job=job, pack=pack_dir, model=model,
                                        mode="pre-submission" if on_place else mode,
                                        pack_keys=tuple(pack_key or ()))  # fmt: skip
                check_campaign_inputs(config)
                if not on_place:
                    check_bench_free(b)
    except BaseException:
        if hold is not None:
            hold.release()
        raise
    # The console is bound to this stdout: pytest captures sys.stdout while tests run.
    console = Console(file=sys.stdout)
    plugins = []
    if hold is not None:
        from stslab.cli.lab import take_place

        bench_files, guard = take_place(hold, out, resume)
        bench, plugins = [str(f) for f in bench_files], [guard]
        if resume is None:
            count = len(bench)  # one bench per place taken
    # Our own configuration only: the progress display replaces pytest's terminal output.
    # labgrid's own pytest plugin (installed with the lab extra) needs pytest's terminal.
    args = [str(pack_dir), "-c", os.devnull, "-p", "no:cacheprovider", "-p", "no:terminal",
            "-p", "no:labgrid", "--capture", "sys", "--rootdir", str(pack_dir), "--out",
            str(out), "--mode", mode, "--speed", str(speed), "--noise", noise]  # fmt: skip
    for b in bench if resume is None else ():
        args += ["--bench", b]
    if count > 1:
        args += ["-n", str(count), "--dist", "loadgroup"]
    if dut:
        args += ["--dut", dut]
    if job:
        args += ["--job", job]
    if resume:
        args += ["--resume", str(resume)]
    for d in defect or ():
        args += ["--defect", d]
    if model:
        args += ["--model", model]
    for k in pack_key or ():
        args += ["--pack-key", str(k)]
    for k in select or ():
        args += ["--select", k]
    progress = _Progress(console, quiet)
    try:
        code = pytest.main(args, plugins=[progress, *plugins])
    finally:
        if hold is not None:
            hold.release()
            console.print(f"released place {', '.join(hold.places)}")
    record = progress.record
    if record is None:
        error = getattr(progress.config, "_stslab_error", None)
        if error is not None:
            raise ArgumentError(getattr(error, "option", "certify"), str(error))
        if progress.collect_errors:
            raise ArgumentError("--pack", "\n".join(progress.collect_errors))
        raise ArgumentError("certify", f"the campaign did not run (pytest exit status {code})")
    error = getattr(progress.config, "_stslab_error", None)
    if error is not None:  # a bench that could not open: its record says only that
        typer.echo(f"stslab: certify: {error}", err=True)
    _conclude(console, record, progress.run_dir, no_report)


def _conclude(console: Console, record: dict[str, Any], run_dir: Path | None,
              no_report: bool) -> None:  # fmt: skip
    """The summary, the signed report, and the exit status of the verdict."""
    _summary(console, record, run_dir)
    if not no_report and run_dir is not None:
        if record["mode"] == "accredited":
            # An accredited report is signed with the lab's own key, not a development one.
            console.print(f"issue the signed report: stslab report {run_dir} --p12 LAB.p12")
        else:
            # The signed PDF/A-3b report (a development certificate signs pre-submission runs).
            from stslab.cli.report import report as issue_report

            issue_report(run_dir=run_dir, junit=run_dir / "junit.xml")
    verdict = record["summary"]["verdict"]
    raise typer.Exit(0 if verdict == "PASS" else 1 if verdict == "FAIL" else 3)


def _record_of_finished_run(run_dir: Path) -> dict[str, Any]:
    """A run whose every bench finished, but whose process died before its signed report
    (building the record, rendering, signing or writing the report): its record built again
    from the journals. A run that has its report is finished."""
    from reports.render import existing_revisions
    from stslab.run import RunPlan
    from stslab.session import write_run_record

    plan = RunPlan.read(run_dir)
    issued = existing_revisions(run_dir, plan.run_id)
    if issued:
        raise ArgumentError("--resume", f"{run_dir}: the run already finished (report "
                            f"R{issued[-1]} issued)")  # fmt: skip
    try:
        return write_run_record(run_dir)
    except (OSError, ValueError) as exc:
        raise ArgumentError("--resume", f"{run_dir}: no record can be built: {exc}") from None


def check_campaign_inputs(config: Any) -> None:
    """Every input file of the campaign, validated before anything starts or is written: a bad
    one is an :class:`ArgumentError` naming the option, the file, the line and the key."""
    from stslab.session import CampaignError, InputError, check_inputs

    try:
        check_inputs(config)
    except InputError as exc:
        raise ArgumentError(exc.option, str(exc)) from None
    except CampaignError as exc:  # what the mode refuses (an unsigned pack, a SimLab bench)
        raise ArgumentError("--mode", str(exc)) from None


def check_bench_free(bench: str) -> None:
    """A bench file another campaign holds is refused before anything starts, naming the run
    that holds it (stslab.benchlock)."""
    from stslab.benchlock import BenchBusy, refuse_if_busy
    from stslab.session import is_simlab

    if is_simlab(bench):
        return
    try:
        refuse_if_busy(bench)
    except BenchBusy as exc:
        raise ArgumentError("--bench", str(exc)) from None


def check_defects(names: list[str] | None) -> None:
    from simlab.defects import lookup

    try:
        lookup(names or ())
    except ValueError as exc:
        raise ArgumentError("--defect", str(exc)) from None


def check_model(spec: str | None) -> None:
    """A SimLab meter model that does not load is bad input, named before anything starts."""
    if spec is None:
        return
    from simlab.meter import load_model

    try:
        load_model(spec)
    except ValueError as exc:
        raise ArgumentError("--model", str(exc)) from None


def _summary(console: Console, record: dict[str, Any], run_dir: Path | None) -> None:
    several = len(record.get("benches", [])) > 1
    table = Table("scenario", "group", "title", *(["bench"] if several else []), "verdict",
                  title="campaign results")  # fmt: skip
    colours = {"PASS": "green", "FAIL": "red", "ERROR": "yellow", "SKIP": "dim"}
    for s in record["scenarios"]:
        o = s["outcome"]
        table.add_row(s["id"], s["group"], s["title"], *([s["bench"]] if several else []),
                      f"[{colours.get(o, '')}]{o}[/]")  # fmt: skip
    console.print(table)
    sm = record["summary"]
    console.print(
        f"[bold]{sm['verdict']}[/] — {sm['scenarios']} scenarios: {sm['PASS']} pass, "
        f"{sm['FAIL']} fail, {sm['ERROR']} error, {sm['SKIP']} skip; {sm['steps']} steps; "
        f"modelled {sm['modelled_s']:.0f} s, wall {sm['wall_s']:.1f} s"
        + (f" summed over {len(record['benches'])} benches" if several else "")
        + f" ({record['mode']})"
    )
    if sm.get("guard_band"):
        console.print(f"[yellow]guard band:[/] {sm['guard_band']} result(s) inside the tolerance "
                      "but within U of a limit, not accepted (guarded acceptance)")  # fmt: skip
    for d in record["deviations"]:
        console.print(f"[yellow]deviation:[/] {d}")
    if run_dir is not None:
        console.print(f"run folder: {run_dir}  (record.json, benches/*/journal.jsonl, evidence/)")


def _resume_plan(run_dir: Path) -> tuple[Path | None, int]:
    """The pack a run was started with and how many of its benches did not finish (0: every
    bench finished)."""
    from stslab.run import RunError, RunPlan, shard_states

    try:
        plan = RunPlan.read(run_dir)
        left = [n for n, st in shard_states(run_dir, plan).items() if st != "finished"]
    except RunError as exc:
        raise ArgumentError("--resume", str(exc)) from None
    pack = plan.config.get("pack")
    return (Path(pack) if pack else None), len(left)
