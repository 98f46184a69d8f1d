"""Robot Framework keyword library over the campaign engine: ``Library    stslab.robot.StsLab``.

Robot suites drive the same :class:`~stslab.session.Campaign` and
:class:`~stslab.campaign.Runner` that ``stslab certify`` and the pytest plugin drive, so their
results land in the same hash-chained journal and the same record. Every keyword that acts on
the meter or checks it is one journal step (a :class:`~stslab.campaign.StepResult` with its
:class:`~stslab.campaign.Check` list) of a scenario named after the Robot test.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

from robot.api import SkipExecution, logger
from robot.api.deco import keyword

from instruments.base import InstrumentError
from sts.meter import Result
from stslab import __version__
from stslab.campaign import (
    Check,
    DisplayWatch,
    Outcome,
    ScenarioResult,
    StepFault,
    StepResult,
    not_applicable,
    worst,
)
from stslab.factory import Minted, MintError
from stslab.scenario import (
    Applicability,
    CreditExpectation,
    Expect,
    KeyChangeStep,
    KeysStep,
    LoadStep,
    NewKeySpec,
    OperatorStep,
    PowerCycleStep,
    RawStep,
    RelayExpectation,
    Scenario,
    SourceStep,
    TokenSpec,
    TokenStep,
    WaitStep,
    parse_result,
)
from stslab.session import DEFAULT_PACK, Campaign, CampaignConfig, load_pack

Carrier = Literal["keypad", "port", "card"]
RelayState = Literal["open", "closed"]

#: Robot variables that override the library's and ``Open Campaign``'s settings (the
#: command line wins: ``robot --variable STSLAB_BENCH:lab.yaml`` or ``stslab robot``).
VARIABLES = {
    "bench": "STSLAB_BENCH",
    "dut": "STSLAB_DUT",
    "job": "STSLAB_JOB",
    "out": "STSLAB_OUT",
    "pack": "STSLAB_PACK",
    "mode": "STSLAB_MODE",
    "speed": "STSLAB_SPEED",
    "defects": "STSLAB_DEFECTS",
    "noise": "STSLAB_NOISE",
    "seed": "STSLAB_SEED",
    "pack_keys": "STSLAB_PACK_KEYS",
    "ledger": "STSLAB_LEDGER",
    "carrier": "STSLAB_CARRIER",
    "on_fault": "STSLAB_ON_FAULT",
}
#: Suite metadata naming the run folder (read back from output.xml by ``stslab robot``).
RUN_METADATA = "stslab run"

# The scenario id pattern: Robot tests whose id has it can be pack scenarios, and are planned.
_ID_PATTERN = Scenario.model_fields["id"].metadata[0].pattern
_RESULT_BY_LABEL = {r.label: r for r in Result}
# Planned when no Robot test carries a scenario id: matches no pack scenario id.
_NO_PACK_SCENARIO = "(robot tests only)"


class BenchFault(RuntimeError):
    """A fault, not a verdict: a device did not answer, a reading was unusable, a token
    could not be minted. The step is ERROR in the record, never FAIL; the test stops and
    the run goes on."""

    ROBOT_CONTINUE_ON_FAILURE = False
    ROBOT_SUPPRESS_NAME = False


class FatalBenchFault(BenchFault):
    """A fault under the ``on_fault=stop`` policy: Robot stops the run (teardown and the
    record still happen)."""

    ROBOT_EXIT_ON_FAILURE = True


class CampaignFault(RuntimeError):
    """The campaign cannot open (bad bench, DUT, job or pack, a refused accredited run, a
    second campaign in one run): nothing can be tested, so Robot stops the run."""

    ROBOT_EXIT_ON_FAILURE = True
    ROBOT_SUPPRESS_NAME = False


@dataclass(frozen=True)
class CampaignSettings:
    """What the campaign opens: the fields of the library import and ``Open Campaign``."""

    bench: str = CampaignConfig.bench
    dut: str | None = None
    job: str | None = None
    out: str = str(CampaignConfig.out)
    pack: str | None = None
    mode: str = CampaignConfig.mode
    speed: float = CampaignConfig.speed
    defects: tuple[str, ...] = ()
    noise: str = CampaignConfig.noise
    seed: int | None = None
    pack_keys: tuple[str, ...] = ()
    ledger: str | None = None
    carrier: str | None = None
    on_fault: str = "continue"

    def updated(self, **values: Any) -> CampaignSettings:
        """These settings with the given (not None) values; text is converted and checked."""
        given = {k: _setting(k, v) for k, v in values.items() if v is not None}
        return replace(self, **given)

    def campaign_config(self, plan: list[str]) -> CampaignConfig:
        return CampaignConfig(
            bench=self.bench,
            dut=self.dut,
            job=self.job,
            out=Path(self.out),
            pack=Path(self.pack) if self.pack else DEFAULT_PACK,
            mode=self.mode,  # type: ignore[arg-type]
            speed=self.speed,
            defects=self.defects,
            noise=self.noise,
            ledger_dir=Path(self.ledger) if self.ledger else None,
            pack_keys=tuple(Path(p) for p in self.pack_keys),
            select=_selection(plan),
            seed=self.seed,
        )


def _setting(name: str, value: Any) -> Any:
    if name in ("defects", "pack_keys"):
        items = value.split(",") if isinstance(value, str) else list(value)
        return tuple(i.strip() for i in items if str(i).strip())
    if name == "speed":
        speed = float(value)
        if speed <= 0:
            raise ValueError(f"speed must be positive, not {value!r}")
        return speed
    if name == "seed":
        return int(value)
    text = str(value)
    allowed = {
        "mode": ("pre-submission", "accredited"),
        "on_fault": ("continue", "stop"),
        "carrier": ("keypad", "port", "card"),
    }.get(name)
    if allowed and text not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {text!r}")
    return text


def _selection(plan: list[str]) -> tuple[str, ...]:
    """The pack scenarios this run plans: those the Robot tests are (by id)."""
    ids = tuple(sorted({p for p in plan if re.fullmatch(_ID_PATTERN, p)}))
    return ids or (_NO_PACK_SCENARIO,)


@dataclass
class RobotScenario:
    """A Robot test (or a suite's setup or teardown) as the campaign journals it."""

    id: str
    title: str
    group: str
    clauses: list[str]
    source_file: str = ""
    declared: bool = False  # carries an id: tag
    steps: list[StepResult] = field(default_factory=list)
    tids: dict[str, int] = field(default_factory=dict)
    begun: bool = False
    started: float = 0.0
    perf0: float = 0.0
    modelled0: float = 0.0
    skip_reason: str | None = None
    pack_outcomes: list[Outcome] = field(default_factory=list)

    @classmethod
    def of_test(cls, test: Any) -> RobotScenario:
        tags = [str(t) for t in test.tags]
        ident = _tag_value(tags, "id")
        clauses = [t.split(":", 1)[1].strip() for t in tags if t.lower().startswith("clause:")]
        return cls(
            id=ident or test.name,
            title=test.name,
            group=_tag_value(tags, "group") or test.parent.name,
            clauses=clauses,
            source_file=str(test.source or ""),
            declared=ident is not None,
        )


def _tag_value(tags: list[str], name: str) -> str | None:
    for tag in tags:
        key, sep, value = tag.partition(":")
        if sep and key.strip().lower() == name and value.strip():
            return value.strip()
    return None


@dataclass
class _LastEntry:
    """What the meter answered to the last entry (valid until the next action)."""

    label: str
    result: str | None  # the result's label, None when nothing was recognised
    display: str | None  # the display text read right after the entry
    sections: list[str | None] | None = None  # per key change section


class StsLab:
    """Certification keywords for STS prepayment meters, over one stslab campaign.

    The library has GLOBAL scope: one campaign (one bench, one DUT, one journal, one record)
    serves every suite of a run. The campaign opens on first use with the settings of the
    library import or of `Open Campaign`; ``${STSLAB_BENCH}``, ``${STSLAB_DUT}``,
    ``${STSLAB_OUT}`` … variables (``robot --variable``, or ``stslab robot``) override both.
    When the run ends the bench is torn down (load off, source off, actuators released) and
    the record is written, whatever happened; the run folder is in the suite metadata
    ``stslab run``.

    = Scenarios and steps =

    Each Robot test is a scenario of the campaign: its id is the test's ``id:`` tag (for
    example ``id:STS-TC-001``), else its name; ``clause:`` tags name the clauses it tests and
    a ``group:`` tag its group (else the suite name). Every keyword that acts on the meter or
    checks it is one step (kind ``robot:<keyword>``) with the same structures pack scenarios
    use, so the record holds Robot results beside `Run Scenario` results. A step in a suite
    setup or teardown belongs to a scenario named after the suite.

    = Verdicts, faults and skips =

    A check keyword judges with the campaign's decision rule and fails with an
    ``AssertionError``: the step is FAIL. A fault (a device that does not answer, an unusable
    reading, a token that cannot be minted, an unknown register) makes the step ERROR and
    raises ``BenchFault`` - distinct from a FAIL: it is not a verdict on the meter. With
    ``on_fault=stop`` a fault raises ``FatalBenchFault`` and Robot stops the run. A test the
    meter's declarations rule out is skipped with Robot's ``SkipExecution``
    (`Skip Unless Declared`). Each test gets a tag ``stslab:PASS``, ``stslab:FAIL``,
    ``stslab:ERROR`` or ``stslab:SKIP`` with the record's outcome.

    = Observing after an entry =

    An entry keyword (`Enter Token`, `Mint And Enter Token`, `Enter Key Change`,
    `Press Keys`) watches the display through the entry (the meter shows its answer only for
    a few seconds) and reads the result register; `Result Should Be` and
    `Display Should Show` judge those readings until the next action.
    Actions read the credit first, so `Credit Change Should Be` judges the change across the
    last action.

    = Example =

    | ***** Settings *****
    | Library    stslab.robot.StsLab    bench=sim    speed=10
    |
    | ***** Test Cases *****
    | Credit token is accepted
    |     [Tags]    id:STS-TC-001    clause:IEC 62055-41 TransferCredit
    |     Mint And Enter Token    0    0    amount=10.0
    |     Result Should Be    accept
    |     Display Should Show    accept
    |     Credit Change Should Be    10.0
    """

    ROBOT_LIBRARY_SCOPE = "GLOBAL"
    ROBOT_LIBRARY_VERSION = __version__
    ROBOT_LIBRARY_DOC_FORMAT = "ROBOT"
    ROBOT_AUTO_KEYWORDS = False
    ROBOT_LISTENER_API_VERSION = 3

    def __init__(
        self,
        bench: str = CampaignConfig.bench,
        dut: str | None = None,
        job: str | None = None,
        out: str = str(CampaignConfig.out),
        pack: str | None = None,
        mode: Literal["pre-submission", "accredited"] = CampaignConfig.mode,
        speed: float = CampaignConfig.speed,
        defects: str = "",
        noise: str = CampaignConfig.noise,
        seed: int | None = None,
        pack_keys: str = "",
        ledger: str | None = None,
        carrier: Carrier | None = None,
        on_fault: Literal["continue", "stop"] = "continue",
    ) -> None:
        """``bench`` is a bench file or ``sim`` (SimLab in-process); ``dut`` a meter profile
        file or built-in name; ``job`` a job file; ``out`` the folder for run folders;
        ``pack`` the scenario pack folder (for `Run Scenario`; default sts-core); ``mode``
        ``pre-submission`` or ``accredited``; ``speed``, ``defects`` (comma-separated),
        ``noise`` and ``seed`` configure SimLab; ``pack_keys`` are trusted pack keys
        (comma-separated PEM files); ``ledger`` the DUT ledger folder; ``carrier`` the
        default token carrier (else the meter's first declared); ``on_fault`` ``continue``
        (the run goes on after a fault) or ``stop``.
        """
        self.ROBOT_LIBRARY_LISTENER = self
        self.settings = CampaignSettings().updated(
            bench=bench,
            dut=dut,
            job=job,
            out=out,
            pack=pack,
            mode=mode,
            speed=speed,
            defects=defects,
            noise=noise,
            seed=seed,
            pack_keys=pack_keys,
            ledger=ledger,
            carrier=carrier,
            on_fault=on_fault,
        )
        self.campaign: Campaign | None = None
        self.record: dict[str, Any] | None = None
        self._opened_with: CampaignSettings | None = None
        self._plan: list[str] | None = None
        self._suites: list[dict[str, Any]] = []
        self._test: RobotScenario | None = None
        self._minted: dict[str, Minted] = {}
        self._last: _LastEntry | None = None
        self._credit_before: dict[int, Decimal] = {}
        self._pack: dict[str, Scenario] | None = None
        self._outside: RobotScenario | None = None

    # -- the campaign -------------------------------------------------------------------------

    @keyword("Open Campaign")
    def open_campaign(
        self,
        bench: str | None = None,
        dut: str | None = None,
        job: str | None = None,
        out: str | None = None,
        speed: float | None = None,
        defects: str | None = None,
        mode: Literal["pre-submission", "accredited"] | None = None,
        pack: str | None = None,
        seed: int | None = None,
        carrier: Carrier | None = None,
        on_fault: Literal["continue", "stop"] | None = None,
    ) -> str:
        """Opens the campaign now and returns its run folder.

        Arguments not given keep the library import's values; ``${STSLAB_*}`` variables
        override both. Calling it again with the same settings does nothing; other settings
        while the campaign is open fail with ``CampaignFault`` (one run, one campaign).

        | ${run} =    Open Campaign    bench=sim    dut=default    speed=10
        """
        try:
            wanted = self.settings.updated(
                bench=bench,
                dut=dut,
                job=job,
                out=out,
                speed=speed,
                defects=defects,
                mode=mode,
                pack=pack,
                seed=seed,
                carrier=carrier,
                on_fault=on_fault,
            )
        except ValueError as exc:
            raise CampaignFault(f"Open Campaign: {exc}") from None
        if self.campaign is not None:
            effective = self._effective(wanted)
            if effective != self._opened_with:
                raise CampaignFault(
                    f"the campaign is already open ({self._describe(self._opened_with)}); "
                    f"Open Campaign asks for {self._describe(effective)}"
                )
            return str(self.campaign.run.directory)
        self.settings = wanted
        return str(self._open().run.directory)

    def _effective(self, settings: CampaignSettings) -> CampaignSettings:
        from robot.libraries.BuiltIn import BuiltIn, RobotNotRunningError

        overrides: dict[str, Any] = {}
        try:
            builtin = BuiltIn()
            for name, variable in VARIABLES.items():
                value = builtin.get_variable_value(f"${{{variable}}}")
                if value not in (None, ""):
                    overrides[name] = value
        except RobotNotRunningError:
            pass
        try:
            return settings.updated(**overrides)
        except ValueError as exc:
            raise CampaignFault(f"${{STSLAB_*}} variables: {exc}") from None

    @staticmethod
    def _describe(settings: CampaignSettings | None) -> str:
        if settings is None:
            return "none"
        default = CampaignSettings()
        changed = [
            f"{f.name}={getattr(settings, f.name)}"
            for f in fields(settings)
            if getattr(settings, f.name) != getattr(default, f.name)
        ]
        return ", ".join(changed) or "defaults"

    def _open(self) -> Campaign:
        if self.campaign is not None:
            return self.campaign
        if _Active.library is not None and _Active.library is not self:
            raise CampaignFault(
                "another StsLab instance already has the campaign of this run open: import "
                "the library with the same arguments in every suite (for example from one "
                "resource file), or set them with ${STSLAB_*} variables"
            )
        settings = self._effective(self.settings)
        campaign = Campaign(settings.campaign_config(self._plan or []))
        try:
            campaign.open()
        except Exception as exc:  # every cause (bench, DUT, job, pack) is named in the text
            raise CampaignFault(f"the campaign cannot open: {exc}") from exc
        self.campaign = campaign
        self._opened_with = settings
        _Active.library = self
        self._announce(campaign)
        return campaign

    @staticmethod
    def _announce(campaign: Campaign) -> None:
        from robot.libraries.BuiltIn import BuiltIn, RobotNotRunningError

        with contextlib.suppress(RobotNotRunningError):
            BuiltIn().set_suite_metadata(RUN_METADATA, str(campaign.run.directory), top=True)

    def _finish(self) -> None:
        """End the run: close what is open, teardown, the end record, the record file."""
        campaign = self.campaign
        if campaign is None:
            return
        try:
            for suite in reversed(self._suites):
                self._end_scenario(suite.get("target"), None)
            self._end_scenario(self._outside, None)
            self._outside = None
            if self._test is not None:
                self._end_scenario(self._test, None)
            if campaign.journal is not None:
                self.record = campaign.finish()
        finally:
            self.campaign = None
            self._test = None
            if _Active.library is self:
                _Active.library = None
            campaign.close()

    # -- listener (Robot calls these) ----------------------------------------------------------

    def start_suite(self, data: Any, result: Any) -> None:
        if self._plan is None:
            root = data
            while root.parent is not None:
                root = root.parent
            self._plan = [RobotScenario.of_test(t).id for t in root.all_tests]
        self._suites.append(
            {
                "name": data.name,
                "source": str(data.source or ""),
                "tests_started": False,
                "target": None,
            }
        )

    def end_suite(self, data: Any, result: Any) -> None:
        if self._suites:
            suite = self._suites.pop()
            self._end_scenario(suite["target"], None)
        if result.parent is None:
            self._finish()

    def start_test(self, data: Any, result: Any) -> None:
        if self._suites:
            suite = self._suites[-1]
            self._end_scenario(suite["target"], None)
            suite["target"] = None
            suite["tests_started"] = True
        self._test = RobotScenario.of_test(data)
        self._last = None

    def end_test(self, data: Any, result: Any) -> None:
        test, self._test = self._test, None
        self._last = None
        if test is None or self.campaign is None:
            return
        outcome = self._end_scenario(test, result)
        if outcome is None and test.pack_outcomes:
            outcome = worst(test.pack_outcomes)
        if outcome is not None:
            result.tags.add(f"stslab:{outcome.value}")

    def close(self) -> None:
        self._finish()

    # -- scenarios in the journal --------------------------------------------------------------

    def _target(self) -> RobotScenario:
        """The scenario the next step belongs to: the running test, else the suite's setup
        or teardown."""
        if self._test is not None:
            return self._test
        if not self._suites:
            if self._outside is None:
                self._outside = RobotScenario(
                    "robot (outside a suite)", "Robot keywords outside a suite", "robot", []
                )
            return self._outside
        suite = self._suites[-1]
        phase = "teardown" if suite["tests_started"] else "setup"
        if suite["target"] is None or not suite["target"].id.endswith(f"(suite {phase})"):
            self._end_scenario(suite["target"], None)
            suite["target"] = RobotScenario(
                f"{suite['name']} (suite {phase})",
                f"{suite['name']}: suite {phase}",
                suite["name"],
                [],
                source_file=suite["source"],
            )
        return suite["target"]

    def _begin(self, target: RobotScenario) -> None:
        campaign = self._open()
        if target.begun:
            return
        if target.id in campaign.completed:
            raise ValueError(
                f"scenario {target.id} already has a result in this run: give each test its "
                "own id: tag or name"
            )
        assert campaign.journal is not None
        campaign.journal.append("scenario_start", {"scenario": target.id, "at": _now()})
        target.begun = True
        target.started = time.time()
        target.perf0 = time.perf_counter()
        target.modelled0 = campaign.runner.clock.now()

    def _end_scenario(self, target: RobotScenario | None, robot: Any) -> Outcome | None:
        """Journal the scenario's end (and, for a test, reconcile with Robot's status)."""
        campaign = self.campaign
        if target is None or campaign is None:
            return None
        status = getattr(robot, "status", None)
        message = getattr(robot, "message", "") or ""
        if not target.begun:
            if (
                not target.declared
                or status is None
                or target.pack_outcomes
                or target.id in campaign.completed
            ):
                # not a meter test, nothing journalled, pack scenarios journalled on their own,
                # or an id taken (the test failed saying so)
                return None
            self._begin(target)
        outcome = worst([s.outcome for s in target.steps])
        if status == "SKIP" and outcome not in (Outcome.FAIL, Outcome.ERROR):
            outcome = Outcome.SKIP
            target.skip_reason = target.skip_reason or message or "skipped"
        elif status == "FAIL" and outcome not in (Outcome.FAIL, Outcome.ERROR):
            step = StepResult(
                len(target.steps),
                "Robot test",
                "robot:test",
                Outcome.ERROR,
                error=f"the test failed outside the stslab verdicts: {message}",
                started=time.time(),
            )
            self._journal(target, step)
            outcome = Outcome.ERROR
        elif status is None and not target.steps:
            outcome = Outcome.ERROR  # the run ended inside it
        result = ScenarioResult(
            target.id,
            target.title,
            target.group,
            target.clauses,
            outcome,
            skip_reason=target.skip_reason if outcome is Outcome.SKIP else None,
            steps=target.steps,
            started=target.started,
            duration_s=time.perf_counter() - target.perf0,
            modelled_s=campaign.runner.clock.now() - target.modelled0,
            source_file=target.source_file,
        )
        assert campaign.journal is not None
        summary = {k: v for k, v in result.to_json().items() if k != "steps"}
        campaign.journal.append("scenario_end", summary)
        campaign.results.append(result)
        campaign.completed.add(target.id)
        target.begun = False
        return outcome

    def _journal(self, target: RobotScenario, step: StepResult) -> None:
        assert self.campaign is not None
        self.campaign.runner._emit(target, step)  # type: ignore[arg-type]
        target.steps.append(step)

    # -- steps ----------------------------------------------------------------------------------

    def _step(
        self,
        kind: str,
        detail: str,
        act: Callable[[StepResult], None],
        *,
        action: bool = True,
    ) -> StepResult:
        """One keyword as one journal step: act and observe through the Runner, judge, journal,
        then raise by outcome (FAIL: AssertionError; ERROR: BenchFault)."""
        target = self._target()
        self._begin(target)
        assert self.campaign is not None
        runner = self.campaign.runner
        res = StepResult(
            len(target.steps),
            f"{kind} {detail}".strip(),
            f"robot:{kind}",
            Outcome.PASS,
            started=time.time(),
        )
        t0 = time.perf_counter()
        m0 = runner.clock.now()
        try:
            if action:
                runner._acted()
                self._read_credit_before(res)
                runner._acted()
                self._last = None
            act(res)
            if action:
                runner._acted()
        except MintError as exc:
            res.outcome, res.error = Outcome.ERROR, f"cannot mint: {exc}"
        except (InstrumentError, StepFault) as exc:
            res.outcome, res.error = Outcome.ERROR, str(exc)
        except ValueError as exc:  # a driver refused an argument before sending it
            res.outcome, res.error = Outcome.ERROR, f"refused by the driver: {exc}"
        except BaseException as exc:  # a bug or an interruption: journalled, then passed on
            res.outcome, res.error = Outcome.ERROR, f"{type(exc).__name__}: {exc}"
            self._close_step(target, res, t0, m0)
            raise
        self._close_step(target, res, t0, m0)
        if res.outcome is Outcome.ERROR:
            assert self._opened_with is not None
            fault = FatalBenchFault if self._opened_with.on_fault == "stop" else BenchFault
            raise fault(f"{res.label}: {res.error}")
        if res.outcome is Outcome.FAIL:
            raise AssertionError(_failed_checks(res))
        return res

    def _close_step(self, target: RobotScenario, res: StepResult, t0: float, m0: float) -> None:
        assert self.campaign is not None
        if res.outcome is not Outcome.ERROR:
            res.outcome = worst([c.outcome for c in res.checks]) if res.checks else Outcome.PASS
        res.duration_s = time.perf_counter() - t0
        res.modelled_s = self.campaign.runner.clock.now() - m0
        self._journal(target, res)
        logger.info(_step_text(target, res))

    def _read_credit_before(self, res: StepResult) -> None:
        assert self.campaign is not None
        runner = self.campaign.runner
        self._credit_before = {}
        for register in self.campaign.profile.tokens.services:
            value = runner.observe_credit(register, res)
            if value is None:
                return  # no meter port: credit is not observable on this bench
            self._credit_before[register] = value
        if 0 in self._credit_before:
            res.observations["credit_before"] = str(self._credit_before[0])

    def _carrier(self, carrier: str | None) -> str:
        assert self.campaign is not None and self._opened_with is not None
        return carrier or self._opened_with.carrier or self.campaign.profile.carriers[0]

    def _perform(self, step: Any, via: str, res: StepResult, *, entry: bool) -> None:
        """The Runner's action for ``step``, without judging; through an entry the display is
        watched (the meter shows its answer for a few seconds only, and the check keyword
        comes later)."""
        assert self.campaign is not None
        runner = self.campaign.runner
        if entry and "display" in runner.bench.drivers:
            runner._watch = DisplayWatch(runner.bench.get("display")).start()
        runner._inject_started = None
        try:
            getattr(runner, f"_do_{step.do}")(step, via, res, self._target().tids)
        finally:
            runner._finish_watch(res)

    def _remember_entry(self, res: StepResult) -> None:
        results = res.observations.get("results") or [None]
        self._last = _LastEntry(
            res.label,
            results[-1],
            res.observations.get("display"),
            res.observations.get("section_results"),
        )

    # -- tokens -------------------------------------------------------------------------------

    @keyword("Mint Token")
    def mint_token(
        self,
        token_class: int,
        subclass: int,
        amount: Decimal | None = None,
        value: int | None = None,
        tests: str | None = None,
        control: str | None = None,
        mfr_code: str = "0",
        tid: str = "next",
        key: Literal["current", "other_meter", "other_key", "previous"] = "current",
        rnd: int | None = None,
        name: str | None = None,
    ) -> str:
        """Mints a token for the meter under test and returns its 20 digits.

        ``token_class`` and ``subclass`` are the STS token class and subclass. Class 0 needs
        ``amount`` (in the service's unit: kWh for subclass 0); class 2 needs ``value``
        (watts for a power limit, the register for ClearCredit, 0 for ClearTamper); class 1
        needs ``tests`` (``all`` or control bits like ``3`` or ``1,4``) or ``control`` (hex).
        ``mfr_code`` is a number, ``own`` or ``other`` (class 1).

        ``tid`` picks the TID from the DUT ledger, never the wall clock: ``next``,
        ``same_as:NAME`` (the TID of the token minted with ``name=NAME`` in this test),
        ``below_store_min:N``, ``at_ken``, ``past_ken``, ``advance_minutes:N`` or
        ``absolute:N``. ``key`` is ``current``, ``other_meter`` (another PAN), ``other_key``
        (another KRN) or ``previous`` (the key before the last key change).

        The token and its fields are kept, so `Enter Token` records its TID in the ledger
        when the meter accepts it.

        | ${digits} =    Mint Token    0    0    amount=1.0    name=first
        | ${again} =     Mint Token    0    0    amount=1.0    tid=same_as:first
        """
        spec = _token_spec(
            token_class, subclass, amount, value, tests, control, mfr_code, tid, key, rnd
        )
        minted: list[Minted] = []

        def act(res: StepResult) -> None:
            assert self.campaign is not None
            target = self._target()
            m = self.campaign.factory.mint(spec, target.tids)
            if name is not None and m.tid is not None:
                target.tids[name] = m.tid
            res.action = {"token": m.fields, "digits": m.digits, "key": m.key_fingerprint}
            minted.append(m)

        self._step(
            "Mint Token",
            _args(
                token_class,
                subclass,
                amount=amount,
                value=value,
                tests=tests,
                tid=tid,
                key=key,
                name=name,
            ),
            act,
            action=False,
        )
        self._minted[minted[0].digits] = minted[0]
        return minted[0].digits

    @keyword("Enter Token")
    def enter_token(self, digits: str, carrier: Carrier | None = None) -> None:
        """Enters ``digits`` through ``carrier`` (default: the campaign's carrier) and reads
        the meter's answer.

        Digits from `Mint Token` are recorded in the ledger when accepted; any other digits
        (a 19- or 21-digit entry, a token from elsewhere) are entered as they are.

        | Enter Token    ${digits}
        | Enter Token    ${digits}[1:]    carrier=keypad
        """
        if not re.fullmatch(r"[0-9]+", digits):
            raise ValueError(f"Enter Token: {digits!r} is not a run of digits")
        minted = self._minted.get(digits)
        step = RawStep(do="raw", digits=digits)

        def act(res: StepResult) -> None:
            assert self.campaign is not None
            self._perform(step, self._carrier(carrier), res, entry=True)
            if minted is not None:
                res.action.update(token=minted.fields, key=minted.key_fingerprint)
                answer = (res.observations.get("results") or [None])[-1]
                self.campaign.runner._record_acceptance(minted.tid, _RESULT_BY_LABEL.get(answer))
            self._remember_entry(res)

        self._step("Enter Token", _args(f"{len(digits)} digits", carrier=carrier), act)

    @keyword("Mint And Enter Token")
    def mint_and_enter_token(
        self,
        token_class: int,
        subclass: int,
        amount: Decimal | None = None,
        value: int | None = None,
        tests: str | None = None,
        control: str | None = None,
        mfr_code: str = "0",
        tid: str = "next",
        key: Literal["current", "other_meter", "other_key", "previous"] = "current",
        rnd: int | None = None,
        name: str | None = None,
        corrupt: Literal["typo"] | None = None,
        carrier: Carrier | None = None,
    ) -> str:
        """Mints a token (arguments as in `Mint Token`), enters it and reads the answer, in
        one step; returns the digits entered.

        ``corrupt=typo`` changes one digit before entry (the CRC must catch it; the ledger
        does not record such a token as accepted).

        | Mint And Enter Token    0    0    amount=10.0
        | Mint And Enter Token    2    1    value=0
        | Mint And Enter Token    0    0    amount=1.0    key=other_meter
        """
        spec = _token_spec(
            token_class, subclass, amount, value, tests, control, mfr_code, tid, key, rnd
        )
        step = TokenStep(do="token", token=spec, corrupt=corrupt, id=name)
        entered: list[str] = []

        def act(res: StepResult) -> None:
            self._perform(step, self._carrier(carrier), res, entry=True)
            entered.append(res.action["digits"])
            self._remember_entry(res)

        self._step(
            "Mint And Enter Token",
            _args(
                token_class,
                subclass,
                amount=amount,
                value=value,
                tests=tests,
                tid=tid,
                key=key,
                corrupt=corrupt,
                carrier=carrier,
            ),
            act,
        )
        return entered[0]

    @keyword("Enter Key Change")
    def enter_key_change(
        self,
        krn: int | Literal["next"] = "next",
        ti: int | Literal["same"] = "same",
        kt: int | Literal["same"] = "same",
        base_date: int | Literal["same"] = "same",
        sgc: int | Literal["same"] = "same",
        ken: str = "never",
        ro: bool = False,
        order: list[int] | None = None,
        carrier: Carrier | None = None,
    ) -> None:
        """Enters a key change token set installing a new key, section by section.

        The new key's attributes are given relative to the current key: ``krn`` (a number or
        ``next``), ``ti``, ``kt``, ``base_date``, ``sgc`` (a number or ``same``), ``ken``
        (``never``, a number, or ``relative:N`` past the next TID's KEN) and ``ro``. ``order``
        lists the sections to enter, 1-based (``[2, 1]`` reversed, ``[1]`` half a set); the
        default is the whole set in order. The ledger follows the key when the whole set is
        accepted. Judge the answers with `Section Results Should Be` and `Result Should Be`.

        | Enter Key Change    krn=7
        | Enter Key Change    order=[2, 1]
        | Enter Key Change    kt=1
        """
        new_key = NewKeySpec.model_validate(
            {
                "krn": krn,
                "ti": ti,
                "kt": kt,
                "base_date": base_date,
                "sgc": sgc,
                "ken": _ken(ken),
                "ro": ro,
            }
        )

        step = KeyChangeStep(do="key_change", new_key=new_key, order=order)

        def act(res: StepResult) -> None:
            self._perform(step, self._carrier(carrier), res, entry=True)
            self._remember_entry(res)

        self._step(
            "Enter Key Change",
            _args(
                krn=krn,
                ti=ti,
                kt=kt,
                base_date=base_date,
                sgc=sgc,
                ken=ken,
                ro=ro or None,
                order=order,
                carrier=carrier,
            ),
            act,
        )

    @keyword("Press Keys")
    def press_keys(self, *keys: str, hold_ms: int | None = None, gap_ms: int | None = None) -> None:
        """Presses keypad keys and reads the meter's answer.

        Keys are names from the meter's keypad layout (``ENTER`` and ``BACK`` mean the
        declared enter and backspace keys) or ``digits:`` followed by a run of digits.
        ``hold_ms`` and ``gap_ms`` set the press and pause lengths for these keys only.

        | Press Keys    digits:1844674407    digits:5    BACK    digits:3843772416    ENTER
        | Press Keys    ENTER
        """
        if not keys:
            raise ValueError("Press Keys: no keys given")
        step = KeysStep(do="keys", keys=list(keys), hold_ms=hold_ms, gap_ms=gap_ms)

        def act(res: StepResult) -> None:
            self._perform(step, "keypad", res, entry=True)
            self._remember_entry(res)

        self._step("Press Keys", " ".join(keys), act)

    @keyword("Prepare Meter")
    def prepare_meter(self, credit: Decimal | None = None, carrier: Carrier | None = None) -> None:
        """Brings the bench to its baseline (load off, supply on at nominal voltage) and, with
        ``credit``, tops the meter's electricity credit up to at least that many kWh.

        | Prepare Meter    credit=5.0
        """
        if credit is not None and credit < 0:
            raise ValueError(f"Prepare Meter: credit {credit} is negative")

        def act(res: StepResult) -> None:
            assert self.campaign is not None
            done = self.campaign.runner._setup(
                SimpleNamespace(setup_credit=credit),  # type: ignore[arg-type]
                self._carrier(carrier),
            )
            assert done is not None
            res.action, res.observations = done.action, done.observations
            res.evidence += done.evidence
            if done.outcome is Outcome.ERROR:
                raise StepFault(done.error or "the baseline failed")

        self._step("Prepare Meter", _args(credit=credit), act)

    # -- the bench ------------------------------------------------------------------------------

    @keyword("Set Load")
    def set_load(
        self, setpoint: float = 0.0, mode: Literal["CC", "CR", "CP"] = "CP", on: bool = True
    ) -> None:
        """Sets the AC load on the meter's output: ``setpoint`` in ``mode`` (CP: watts,
        CC: amperes, CR: ohms), or off with ``on=False``.

        | Set Load    3000
        | Set Load    on=False
        """
        step = LoadStep(do="load", on=on, mode=mode, setpoint=setpoint)
        self._bench_step(
            "Set Load",
            _args(setpoint if on else None, mode=mode if on else None, on=None if on else False),
            step,
        )

    @keyword("Set Source")
    def set_source(
        self, output: bool = True, voltage: float | None = None, frequency: float | None = None
    ) -> None:
        """Switches the AC supply to the meter on or off, optionally at ``voltage`` (V) and
        ``frequency`` (Hz).

        | Set Source    voltage=207
        | Set Source    output=False
        """
        step = SourceStep(do="source", output=output, voltage=voltage, frequency=frequency)
        self._bench_step(
            "Set Source", _args(output=output, voltage=voltage, frequency=frequency), step
        )

    @keyword("Wait Seconds")
    def wait_seconds(self, seconds: float) -> None:
        """Waits ``seconds`` of bench time (SimLab's clock may run faster than real time).

        | Wait Seconds    100
        """
        self._bench_step("Wait Seconds", _args(seconds), WaitStep(do="wait", seconds=seconds))

    @keyword("Wait For Energy")
    def wait_for_energy(self, energy_wh: float, timeout: float = 600.0) -> None:
        """Waits until the power analyser has integrated ``energy_wh`` on the load side; not
        within ``timeout`` seconds of bench time is a fault.

        | Wait For Energy    50    timeout=120
        """
        step = WaitStep(do="wait", energy_wh=energy_wh, timeout_s=timeout)
        self._bench_step("Wait For Energy", _args(energy_wh, timeout=timeout), step)

    @keyword("Wait For Load Switch")
    def wait_for_load_switch(self, state: RelayState, timeout: float = 600.0) -> None:
        """Waits until the load switch is ``open`` or ``closed`` (inferred from load-side
        voltage and current); not within ``timeout`` seconds of bench time is a fault. To
        judge the switch, use `Load Switch Should Be`.

        | Wait For Load Switch    open    timeout=200
        """
        step = WaitStep(do="wait", relay=state, timeout_s=timeout)
        self._bench_step("Wait For Load Switch", _args(state, timeout=timeout), step)

    @keyword("Wait For Credit Display")
    def wait_for_credit_display(self, timeout: float = 600.0) -> None:
        """Waits until the meter is back at its default display: the display steadily shows
        the credit the meter port reads (after a class-1 test sequence or a message); not
        within ``timeout`` seconds of bench time is a fault.

        | Wait For Credit Display    timeout=600
        """
        step = WaitStep(do="wait", display="credit", timeout_s=timeout)
        self._bench_step("Wait For Credit Display", _args(timeout=timeout), step)

    @keyword("Power Cycle Meter")
    def power_cycle_meter(self, off_s: float = 5.0) -> None:
        """Switches the meter's supply off for ``off_s`` seconds of bench time, on again, and
        lets it boot.

        | Power Cycle Meter    off_s=60
        """
        step = PowerCycleStep(do="power_cycle", off_s=off_s)
        self._bench_step("Power Cycle Meter", _args(off_s=off_s), step)

    @keyword("Ask Operator")
    def ask_operator(self, prompt: str) -> None:
        """Asks the operator to do something at the bench and waits for the confirmation;
        a simulated bench acknowledges by itself. A real bench without an operator interface
        is a fault.
        """
        self._bench_step("Ask Operator", "", OperatorStep(do="operator", prompt=prompt))

    @keyword("Raise Tamper Condition")
    def raise_tamper_condition(self) -> None:
        """Raises a tamper condition on the meter: through SimLab's side door on a simulated
        bench, by asking the operator on a real one (for example to open and close the
        terminal cover).
        """
        prompt = (
            "Raise a tamper condition on the meter under test (for example open and "
            "close the terminal cover), then confirm."
        )
        step = OperatorStep(do="operator", prompt=prompt, sim_action="raise_tamper")
        self._bench_step("Raise Tamper Condition", "", step)

    def _bench_step(self, kind: str, detail: str, step: Any) -> None:
        def act(res: StepResult) -> None:
            self._perform(step, "", res, entry=False)

        self._step(kind, detail, act)

    # -- observations -------------------------------------------------------------------------

    @keyword("Read Display")
    def read_display(self) -> str:
        """Reads the meter's display through the camera and returns its text (the frame is
        kept as evidence).

        | ${text} =    Read Display
        """
        texts: list[str] = []

        def act(res: StepResult) -> None:
            assert self.campaign is not None
            reading = self.campaign.runner.read_display(res)
            res.observations["display"] = reading.text
            texts.append(reading.text)

        self._step("Read Display", "", act, action=False)
        return texts[0]

    @keyword("Read Register")
    def read_register(self, name: str) -> str:
        """Returns the value of a register the meter profile declares (``credit``, ``kt``,
        ``krn``, ``ti``, ``mpl``, ``tamper``, ``relay``, ``energy_kwh`` …) from the meter
        port's readout. A name the profile does not declare is a fault.

        | ${kt} =    Read Register    kt
        """
        values: list[str] = []

        def act(res: StepResult) -> None:
            assert self.campaign is not None
            runner = self.campaign.runner
            address = _register_address(self.campaign, name)
            reading = runner.readout(res).get(address)
            if reading is None:
                raise StepFault(f"the readout has no register {name} ({address})")
            res.observations[f"readout {name}"] = reading.value
            values.append(reading.value)

        self._step("Read Register", name, act, action=False)
        return values[0]

    # -- verdicts -------------------------------------------------------------------------------

    @keyword("Result Should Be")
    def result_should_be(self, expected: str) -> None:
        """Judges the meter's answer to the last entry: a result name such as ``accept``,
        ``used``, ``old``, ``crc``, ``format``, ``mfr_code``, ``key_type``, ``ddtk``,
        ``kct1_received`` (the names of the scenario format) or a result code.

        | Result Should Be    used
        """
        want = parse_result(int(expected) if expected.strip().isdigit() else expected)

        def act(res: StepResult) -> None:
            last = self._require_entry()
            res.observations["result_of"] = last.label
            res.checks.append(
                _check("result", want.label, last.result or "none", last.result == want.label)
            )

        self._step("Result Should Be", expected, act, action=False)

    @keyword("Section Results Should Be")
    def section_results_should_be(self, *expected: str) -> None:
        """Judges the answers to each key change section of the last `Enter Key Change`, in
        the order they were entered.

        | Section Results Should Be    kct2_received    accept
        """
        wants = [parse_result(e) for e in expected]
        if not wants:
            raise ValueError("Section Results Should Be: no results given")

        def act(res: StepResult) -> None:
            last = self._require_entry()
            if last.sections is None:
                raise StepFault(f"the last entry ({last.label}) was not a key change")
            res.observations["result_of"] = last.label
            for n, want in enumerate(wants, 1):
                got = last.sections[n - 1] if n <= len(last.sections) else "not entered"
                res.checks.append(
                    _check(
                        f"result of KCT entry {n}",
                        want.label,
                        got or "unreadable",
                        got == want.label,
                    )
                )

        self._step("Section Results Should Be", " ".join(expected), act, action=False)

    @keyword("Display Should Show")
    def display_should_show(self, result: str | None = None, text: str | None = None) -> None:
        """Judges the display: the meter's text for ``result`` (through the profile's display
        vocabulary) or a literal ``text``, compared as a seven-segment display shows them.
        A result is judged on the answer the display showed to the last entry (read now when
        there was none); a literal text is read now.

        | Display Should Show    accept
        | Display Should Show    text=tA 1
        """
        if (result is None) == (text is None):
            raise ValueError("Display Should Show: give result or text (one of them)")
        expect = Expect(display=result) if result is not None else Expect(display_text=text)

        def act(res: StepResult) -> None:
            assert self.campaign is not None
            if self._last is not None and self._last.display is not None:
                res.observations["display"] = self._last.display
                res.observations["display_of"] = self._last.label
            self.campaign.runner._judge(expect, {}, res)

        self._step("Display Should Show", result or f"text={text}", act, action=False)

    @keyword("Credit Change Should Be")
    def credit_change_should_be(
        self, change: Decimal, tolerance: Decimal = Decimal("0.05"), register: int = 0
    ) -> None:
        """Judges the change of a credit register (kWh for register 0) across the last action,
        within ``tolerance``.

        | Credit Change Should Be    10.0
        | Credit Change Should Be    0
        """
        credit = CreditExpectation.model_validate(
            {"register": register, "change": change, "tolerance": tolerance}
        )

        def act(res: StepResult) -> None:
            assert self.campaign is not None
            if register not in self._credit_before:
                raise StepFault(f"no credit reading of register {register} before the last action")
            before = {"credit": self._credit_before[register]}
            self.campaign.runner._judge(Expect(credit=credit), before, res)

        self._step(
            "Credit Change Should Be",
            _args(change, tolerance=tolerance, register=register or None),
            act,
            action=False,
        )

    @keyword("Credit Should Be")
    def credit_should_be(
        self, value: Decimal, tolerance: Decimal = Decimal("0.05"), register: int = 0
    ) -> None:
        """Judges the value of a credit register now, within ``tolerance``.

        | Credit Should Be    0
        """
        credit = CreditExpectation.model_validate(
            {"register": register, "equals": value, "tolerance": tolerance}
        )

        def act(res: StepResult) -> None:
            assert self.campaign is not None
            self.campaign.runner._judge(Expect(credit=credit), {}, res)

        self._step(
            "Credit Should Be",
            _args(value, tolerance=tolerance, register=register or None),
            act,
            action=False,
        )

    @keyword("Load Switch Should Be")
    def load_switch_should_be(self, state: RelayState, within: float = 5.0) -> None:
        """Judges the load switch: ``open`` or ``closed`` within ``within`` seconds of bench
        time (inferred from load-side voltage and current, with hysteresis).

        | Load Switch Should Be    open    within=60
        """
        expect = Expect(relay=RelayExpectation(state=state, within_s=within))

        def act(res: StepResult) -> None:
            assert self.campaign is not None
            self.campaign.runner._judge(expect, {}, res)

        self._step("Load Switch Should Be", _args(state, within=within), act, action=False)

    @keyword("Register Should Be")
    def register_should_be(self, name: str, value: str) -> None:
        """Judges a declared register of the meter port's readout (numbers compare as
        numbers). A name the profile does not declare is a fault.

        | Register Should Be    kt    2
        | Register Should Be    mpl    16000
        """

        def act(res: StepResult) -> None:
            assert self.campaign is not None
            self.campaign.runner._judge(Expect(readout={name: value}), {}, res)

        self._step("Register Should Be", f"{name} {value}", act, action=False)

    def _require_entry(self) -> _LastEntry:
        if self._last is None:
            raise StepFault("no entry to judge since the last action")
        return self._last

    # -- pack scenarios and applicability ---------------------------------------------------------

    @keyword("Run Scenario")
    def run_scenario(self, scenario_id: str) -> None:
        """Runs a whole scenario of the pack (its own setup, steps and expectations) through
        the campaign's runner; it is journalled under its own id. FAIL fails the keyword,
        ERROR raises ``BenchFault``, a scenario that does not apply to the meter skips the test.

        | Run Scenario    STS-TID-003
        """
        campaign = self._open()
        if self._pack is None:
            self._pack = {s.id: s for s in load_pack(campaign.config.pack)}
        scenario = self._pack.get(scenario_id)
        if scenario is None:
            raise ValueError(f"the pack {campaign.config.pack} has no scenario {scenario_id!r}")
        target = self._test
        if target is not None and target.begun and target.id == scenario_id:
            raise ValueError(f"this test already journals steps as {scenario_id}")
        if scenario_id in campaign.completed:
            raise ValueError(f"scenario {scenario_id} already has a result in this run")
        self._last = None
        self._credit_before = {}  # the scenario's steps are its own: no baseline for checks
        result = campaign.run_scenario(scenario)
        if target is not None:
            target.pack_outcomes.append(result.outcome)
        if result.outcome is Outcome.SKIP:
            raise SkipExecution(f"{scenario_id}: {result.skip_reason or 'does not apply'}")
        failed = [s for s in result.steps if s.outcome in (Outcome.FAIL, Outcome.ERROR)]
        text = "; ".join(f"{s.label} ({s.kind}): " + (s.error or _failed_checks(s)) for s in failed)
        if result.outcome is Outcome.ERROR:
            assert self._opened_with is not None
            fault = FatalBenchFault if self._opened_with.on_fault == "stop" else BenchFault
            raise fault(f"{scenario_id}: {text}")
        if result.outcome is Outcome.FAIL:
            raise AssertionError(f"{scenario_id}: {text}")

    @keyword("Skip Unless Declared")
    def skip_unless_declared(
        self,
        carrier: Carrier | None = None,
        feature: str | None = None,
        test: int | None = None,
        service: int | None = None,
        ea: Literal["07", "09", "11"] | None = None,
    ) -> None:
        """Skips the test unless the meter profile declares a ``carrier``, a ``feature``
        (``lockout``, ``key_expiry``, ``kct_2``, ``kct_4``, ``reconnect_auto``,
        ``reconnect_key``, ``mppul`` …), a class-1 ``test``, a ``service`` register or the
        encryption algorithm ``ea``. The reason goes into the record.

        | Skip Unless Declared    feature=reconnect_auto
        | Skip Unless Declared    carrier=keypad    test=3
        """
        applies = Applicability.model_validate(
            {
                "carriers": [carrier] if carrier else [],
                "features": [feature] if feature else [],
                "tests": [] if test is None else [test],
                "services": [] if service is None else [service],
                "ea": [ea] if ea else [],
            }
        )
        campaign = self._open()
        reason = not_applicable(
            SimpleNamespace(applies=applies),  # type: ignore[arg-type]
            campaign.profile,
            self._carrier(None),
        )
        if reason is None:
            return
        target = self._target()
        target.skip_reason = reason
        target.declared = True  # a skipped test is recorded, with the reason
        raise SkipExecution(reason)

    # -- SimLab's side door -------------------------------------------------------------------

    @keyword("Inject Transport Fault")
    def inject_transport_fault(
        self,
        role: str,
        fault: Literal["silent", "vanished", "drop_rate", "garble_rate", "delay_s"] = "silent",
        value: float = 1.0,
    ) -> None:
        """SimLab only: makes a simulated device's transport misbehave, to exercise the
        fault paths (``silent``, ``vanished``, or a ``drop_rate``, ``garble_rate`` or
        ``delay_s`` of ``value``). Recorded as a step. On a real bench this keyword fails:
        it has no side door.

        | Inject Transport Fault    port    silent
        """

        setting: bool | float = True if fault in ("silent", "vanished") else value

        def act(res: StepResult) -> None:
            assert self.campaign is not None
            setattr(self._sim_faults(role), fault, setting)
            self.campaign.runner._acted()
            res.action = {"side_door": "transport fault", "role": role, fault: setting}

        self._step("Inject Transport Fault", f"{role} {fault}", act, action=False)

    @keyword("Clear Transport Faults")
    def clear_transport_faults(self, role: str | None = None) -> None:
        """SimLab only: heals the transport faults of ``role`` (default: every device)."""

        def act(res: StepResult) -> None:
            assert self.campaign is not None
            sim = self._simlab()
            for name in [role] if role else list(sim.faults):
                self._sim_faults(name).clear()
            self.campaign.runner._acted()
            res.action = {"side_door": "clear transport faults", "role": role or "all"}

        self._step("Clear Transport Faults", role or "", act, action=False)

    def _simlab(self) -> Any:
        campaign = self._open()
        if campaign._sim is None:
            raise StepFault("this keyword needs SimLab's side door: the bench is not SimLab")
        return campaign._sim

    def _sim_faults(self, role: str) -> Any:
        sim = self._simlab()
        if role not in sim.faults:
            raise StepFault(f"SimLab has no {role!r} device ({', '.join(sim.faults)})")
        return sim.fault(role)


class _Active:
    """The library instance whose campaign is open in this process (one run, one campaign)."""

    library: StsLab | None = None


# --- helpers ---------------------------------------------------------------------------------


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _check(name: str, expected: str, observed: str, ok: bool) -> Check:
    return Check(name, expected, observed, Outcome.PASS if ok else Outcome.FAIL)


def _failed_checks(step: StepResult) -> str:
    return "; ".join(_check_text(c) for c in step.checks if c.outcome is Outcome.FAIL)


def _check_text(check: Check) -> str:
    unit = f" {check.unit}" if check.unit and check.unit != "s" else ""
    return f"{check.name}: expected {check.expected}{unit}, observed {check.observed}"


def _step_text(target: RobotScenario, step: StepResult) -> str:
    """The step as the Robot log shows it: outcome, checks, fault, what was observed."""
    lines = [f"{target.id} step {step.index}: {step.outcome.value}"]
    lines += [f"{_check_text(c)}: {c.outcome.value}" for c in step.checks]
    if step.error:
        lines.append(f"fault: {step.error}")
    for name, value in step.observations.items():
        lines.append(f"observed {name}: {value}")
    lines += step.retries
    return "\n".join(lines)


def _args(*positional: Any, **named: Any) -> str:
    """A keyword's arguments as a step label shows them (the ones given)."""
    parts = [str(p) for p in positional if p is not None]
    parts += [f"{k}={v}" for k, v in named.items() if v not in _DEFAULT_WORDS]
    return " ".join(parts)


# Argument values a step label leaves out: they are the defaults.
_DEFAULT_WORDS = (None, False, "next", "current", "same", "never")


def _token_spec(
    token_class: int,
    subclass: int,
    amount: Decimal | None,
    value: int | None,
    tests: str | None,
    control: str | None,
    mfr_code: str,
    tid: str,
    key: str,
    rnd: int | None,
) -> TokenSpec:
    data: dict[str, Any] = {
        "class": token_class,
        "subclass": subclass,
        "key": key,
        "tid": _tid_rule(tid),
    }
    code = str(mfr_code).strip()
    data["mfr_code"] = int(code) if code.isdigit() else code
    if amount is not None:
        data["amount"] = amount
    if value is not None:
        data["value"] = value
    if tests is not None:
        text = str(tests).strip()
        data["tests"] = "all" if text == "all" else [int(t) for t in text.split(",") if t.strip()]
    if control is not None:
        data["control"] = control
    if rnd is not None:
        data["rnd"] = rnd
    try:
        return TokenSpec.model_validate(data)
    except ValueError as exc:
        raise ValueError(f"token: {_one_line(exc)}") from None


def _tid_rule(text: str) -> dict[str, Any]:
    rule, sep, arg = str(text).partition(":")
    rule = rule.strip()
    if rule in ("next", "at_ken", "past_ken") and not sep:
        return {rule: True}
    if rule == "same_as" and arg.strip():
        return {rule: arg.strip()}
    if rule in ("below_store_min", "advance_minutes", "absolute") and arg.strip().isdigit():
        return {rule: int(arg)}
    raise ValueError(
        f"tid {text!r}: use next, same_as:NAME, below_store_min:N, at_ken, past_ken, "
        "advance_minutes:N or absolute:N"
    )


def _ken(text: str) -> int | str | dict[str, int]:
    text = str(text).strip()
    if text == "never":
        return text
    if text.startswith("relative:"):
        return {"relative": int(text.split(":", 1)[1])}
    return int(text)


def _register_address(campaign: Campaign, name: str) -> str:
    registers = campaign.profile.port.registers
    if name not in type(registers).model_fields:
        known = ", ".join(type(registers).model_fields)
        raise StepFault(f"{name!r} is not a declared register (the profile declares {known})")
    return str(getattr(registers, name))


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())
