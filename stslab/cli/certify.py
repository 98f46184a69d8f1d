"""``stslab certify``: run a scenario pack against a meter on a bench (through pytest)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from stslab.cli.errors import ArgumentError


class _Progress:
    """pytest plugin object: a rich progress display fed by every step result."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.config: Any = None
        self.counts = {"PASS": 0, "FAIL": 0, "ERROR": 0, "SKIP": 0}
        self.record: dict[str, Any] | None = None
        self.run_dir: Path | None = None
        self.started = time.perf_counter()
        self.real_per_modelled: float | None = None
        self._progress: Progress | None = None
        self._task: Any = None
        self._estimates: dict[str, float] = {}
        self._done_estimate = 0.0
        self._current: str | None = None
        self.collect_errors: list[str] = []

    def pytest_configure(self, config: Any) -> None:
        self.config = config
        config._stslab_on_step = self.on_step

    def pytest_collectreport(self, report: Any) -> None:
        # With pytest's terminal off, a file that does not collect would go unsaid.
        if report.failed:
            self.collect_errors.append(str(report.longrepr).strip())

    def pytest_collection_finish(self, session: Any) -> None:
        from stslab.estimate import modelled_seconds

        items = [i for i in session.items if hasattr(i, "scenario")]
        self._estimates = {i.scenario.id: modelled_seconds(i.scenario) for i in items}
        if self.quiet or not items:
            return
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[counts]}"),
            TextColumn("left ≈ {task.fields[left]}"),
            console=self.console,
            transient=True,
        )
        self._progress.start()
        self._task = self._progress.add_task("starting", total=len(items), counts="", left="?")

    def pytest_runtest_logfinish(self, nodeid: str, location: Any) -> None:
        if self._progress is not None:
            self._progress.advance(self._task)

    def on_step(self, scenario: Any, step: Any) -> None:
        if self._progress is None:
            return
        if scenario.id != self._current:
            if self._current is not None:
                self._done_estimate += self._estimates.get(self._current, 0.0)
            self._current = scenario.id
        self._progress.update(self._task, description=f"{scenario.id} {step.label}",
                              counts=self._count_text(), left=self._left())  # fmt: skip

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when != "call" and not (report.when == "setup" and report.skipped):
            return
        outcome = "SKIP" if report.skipped else "PASS" if report.passed else None
        if outcome is None:
            text = str(report.longrepr)
            outcome = "ERROR" if text.startswith("ERROR") else "FAIL"
        self.counts[outcome] += 1

    def _count_text(self) -> str:
        c = self.counts
        return f"pass {c['PASS']} fail {c['FAIL']} error {c['ERROR']} skip {c['SKIP']}"

    def _left(self) -> str:
        elapsed = time.perf_counter() - self.started
        done = self._done_estimate
        total = sum(self._estimates.values())
        if done <= 0:
            return "?"
        left = elapsed * (total - done) / done
        return f"{left:.0f} s"

    def pytest_unconfigure(self, config: Any) -> None:
        if self._progress is not None:
            self._progress.stop()
        self.record = getattr(config, "_stslab_record", None)
        self.run_dir = getattr(config, "_stslab_run_dir", None)


def certify(
    bench: Annotated[
        str,
        typer.Option(
            help="Bench file, or SimLab in-process: 'sim' (real transports, fast clock) or "
            "'virtual' (virtual time: a campaign in seconds)."
        ),
    ] = "sim",
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
) -> None:
    """Run the scenario pack against the meter and leave a journal and a record."""
    import pytest

    from stslab.session import DEFAULT_PACK, CampaignConfig

    if mode not in ("pre-submission", "accredited"):
        raise ArgumentError("--mode", f"{mode!r} is not pre-submission or accredited")
    if resume is not None and not (resume / "journal.jsonl").exists():
        raise ArgumentError("--resume", f"{resume} has no journal.jsonl")
    if resume is not None and pack is None:
        pack = _run_pack(resume)
    pack_dir = (pack or DEFAULT_PACK).resolve()
    if not (pack_dir / "manifest.yaml").exists():
        raise ArgumentError("--pack", f"{pack_dir} has no manifest.yaml")
    check_defects(defect)
    check_model(model)
    if resume is None:  # a resumed run checks the inputs its journal names when it opens
        config = CampaignConfig(bench=bench, dut=dut, job=job, pack=pack_dir, model=model,
                                pack_keys=tuple(pack_key or ()))  # fmt: skip
        check_campaign_inputs(config)
    console = Console()
    # Our own configuration only: the progress display replaces pytest's terminal output.
    args = [str(pack_dir), "-c", os.devnull, "-p", "no:cacheprovider", "-p", "no:terminal",
            "--rootdir",
            str(pack_dir), "--out", str(out), "--mode", mode, "--speed", str(speed),
            "--noise", noise, "--bench", bench]  # fmt: skip
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
    progress = _Progress(console, quiet)
    progress_select = tuple(select or ())

    class _Select:
        def pytest_configure(self, config: Any) -> None:
            config._stslab_select = progress_select

    code = pytest.main(args, plugins=[progress, _Select()])
    record = progress.record
    if record is None:
        error = getattr(progress.config, "_stslab_error", None)
        if error is not None:
            raise ArgumentError(getattr(error, "option", "certify"), str(error))
        if progress.collect_errors:
            raise ArgumentError("--pack", "\n".join(progress.collect_errors))
        raise ArgumentError("certify", f"the campaign did not run (pytest exit status {code})")
    _summary(console, record, progress.run_dir)
    if not no_report and progress.run_dir is not None:
        if record["mode"] == "accredited":
            # An accredited report is signed with the lab's own key, not a development one.
            console.print(
                f"issue the signed report: stslab report {progress.run_dir} --p12 LAB.p12"
            )
        else:
            # The signed PDF/A-3b report (a development certificate signs pre-submission runs).
            from stslab.cli.report import report as issue_report

            issue_report(run_dir=progress.run_dir, junit=progress.run_dir / "junit.xml")
    verdict = record["summary"]["verdict"]
    raise typer.Exit(0 if verdict == "PASS" else 1 if verdict == "FAIL" else 3)


def check_campaign_inputs(config: Any) -> None:
    """Every input file of the campaign, validated before anything starts or is written: a bad
    one is an :class:`ArgumentError` naming the option, the file, the line and the key."""
    from stslab.session import InputError, check_inputs

    try:
        check_inputs(config)
    except InputError as exc:
        raise ArgumentError(exc.option, str(exc)) from None


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
    table = Table("scenario", "group", "title", "verdict", title="campaign results")
    colours = {"PASS": "green", "FAIL": "red", "ERROR": "yellow", "SKIP": "dim"}
    for s in record["scenarios"]:
        o = s["outcome"]
        table.add_row(s["id"], s["group"], s["title"], f"[{colours.get(o, '')}]{o}[/]")
    console.print(table)
    sm = record["summary"]
    console.print(
        f"[bold]{sm['verdict']}[/] — {sm['scenarios']} scenarios: {sm['PASS']} pass, "
        f"{sm['FAIL']} fail, {sm['ERROR']} error, {sm['SKIP']} skip; {sm['steps']} steps; "
        f"modelled {sm['modelled_s']:.0f} s, wall {sm['wall_s']:.1f} s ({record['mode']})"
    )
    for d in record["deviations"]:
        console.print(f"[yellow]deviation:[/] {d}")
    if run_dir is not None:
        console.print(f"run folder: {run_dir}  (record.json, journal.jsonl, evidence/)")


def _run_pack(run_dir: Path) -> Path | None:
    """The pack a run was started with, from its journal's start record (None if unreadable:
    the campaign then refuses the resume and says why)."""
    from stslab.journal import JournalError, iter_journal

    try:
        first = next(iter(iter_journal(run_dir / "journal.jsonl")), None)
    except JournalError:
        return None
    if first is None or first.kind != "start":
        return None
    return Path(first.data["config"]["pack"])
