"""What the keyword groups of one Robot run share: the campaign (opened on first use, finished
when the run ends), the scenario each step belongs to, the meter's answer to the last entry and
the credit before the last action; and the one way a keyword becomes a journal step.

The context is also the library's Robot listener: suites and tests start and end scenarios in
the journal."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from robot.api import logger

from instruments.base import InstrumentError
from stslab.campaign import Outcome, ScenarioResult, StepFault, StepResult, worst
from stslab.factory import MintError
from stslab.robot.faults import BenchFault, CampaignFault, FatalBenchFault
from stslab.robot.settings import RUN_METADATA, VARIABLES, CampaignSettings
from stslab.robot.steps import LastEntry, RobotScenario, failed_checks, now, step_text
from stslab.session import Campaign


class CampaignContext:
    """One Robot run over one campaign: its state, and the steps the keywords journal."""

    ROBOT_LISTENER_API_VERSION = 3

    def __init__(self, settings: CampaignSettings) -> None:
        self.settings = settings
        self.campaign: Campaign | None = None
        self.record: dict[str, Any] | None = None
        self.opened_with: CampaignSettings | None = None
        self.test: RobotScenario | None = None
        self.last: LastEntry | None = None
        self.credit_before: dict[int, Decimal] = {}
        self._plan: list[str] | None = None
        self._suites: list[dict[str, Any]] = []
        self._outside: RobotScenario | None = None

    # -- the campaign -------------------------------------------------------------------------

    def effective(self, settings: CampaignSettings) -> CampaignSettings:
        """``settings`` with the ``${STSLAB_*}`` variables of the running suite applied."""
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

    def open(self) -> Campaign:
        """The campaign, opened now if it is not yet."""
        if self.campaign is not None:
            return self.campaign
        if _Active.context is not None and _Active.context is not self:
            raise CampaignFault(
                "another StsLab instance already has the campaign of this run open: import "
                "the library with the same arguments in every suite (for example from one "
                "resource file), or set them with ${STSLAB_*} variables"
            )
        settings = self.effective(self.settings)
        campaign = Campaign(settings.campaign_config(self._plan or []))
        try:
            campaign.open()
        except Exception as exc:  # every cause (bench, DUT, job, pack) is named in the text
            raise CampaignFault(f"the campaign cannot open: {exc}") from exc
        self.campaign = campaign
        self.opened_with = settings
        _Active.context = self
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
            if self.test is not None:
                self._end_scenario(self.test, None)
            if campaign.journal is not None:
                self.record = campaign.finish()
        finally:
            self.campaign = None
            self.test = None
            if _Active.context is self:
                _Active.context = None
            campaign.close()

    def fault(self, message: str) -> BenchFault:
        """The exception for a fault, by the campaign's ``on_fault`` policy."""
        assert self.opened_with is not None
        kind = FatalBenchFault if self.opened_with.on_fault == "stop" else BenchFault
        return kind(message)

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
        self.test = RobotScenario.of_test(data)
        self.last = None

    def end_test(self, data: Any, result: Any) -> None:
        test, self.test = self.test, None
        self.last = None
        if test is None or self.campaign is None:
            return
        self.campaign.runner.stop_watching()  # a test's entries are not watched into the next
        outcome = self._end_scenario(test, result)
        if outcome is None and test.pack_outcomes:
            outcome = worst(test.pack_outcomes)
        if outcome is not None:
            result.tags.add(f"stslab:{outcome.value}")

    def close(self) -> None:
        self._finish()

    # -- scenarios in the journal --------------------------------------------------------------

    def target(self) -> RobotScenario:
        """The scenario the next step belongs to: the running test, else the suite's setup
        or teardown."""
        if self.test is not None:
            return self.test
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
        campaign = self.open()
        if target.begun:
            return
        if target.id in campaign.completed:
            raise ValueError(
                f"scenario {target.id} already has a result in this run: give each test its "
                "own id: tag or name"
            )
        assert campaign.journal is not None
        campaign.journal.append("scenario_start", {"scenario": target.id, "at": now()})
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

    def step(
        self,
        kind: str,
        detail: str,
        act: Callable[[StepResult], None],
        *,
        action: bool = True,
    ) -> StepResult:
        """One keyword as one journal step: act and observe through the Runner, judge, journal,
        then raise by outcome (FAIL: AssertionError; ERROR: BenchFault)."""
        target = self.target()
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
                runner.stop_watching()  # the last entry's watch ends with an action
                runner._acted()
                runner._relay_anchor = None  # the last entry's relay window closes with an action
                self._read_credit_before(res)
                runner._acted()
                self.last = None
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
            raise self.fault(f"{res.label}: {res.error}")
        if res.outcome is Outcome.FAIL:
            raise AssertionError(failed_checks(res))
        return res

    def _close_step(self, target: RobotScenario, res: StepResult, t0: float, m0: float) -> None:
        assert self.campaign is not None
        if res.outcome is not Outcome.ERROR:
            res.outcome = worst([c.outcome for c in res.checks]) if res.checks else Outcome.PASS
        res.duration_s = time.perf_counter() - t0
        res.modelled_s = self.campaign.runner.clock.now() - m0
        self._journal(target, res)
        logger.info(step_text(target, res))

    def _read_credit_before(self, res: StepResult) -> None:
        assert self.campaign is not None
        runner = self.campaign.runner
        self.credit_before = {}
        for register in self.campaign.profile.tokens.services:
            value = runner.observe_credit(register, res)
            if value is None:
                return  # no meter port: credit is not observable on this bench
            self.credit_before[register] = value
        if 0 in self.credit_before:
            res.observations["credit_before"] = str(self.credit_before[0])

    def carrier(self, carrier: str | None) -> str:
        """``carrier``, else the campaign's, else the meter's first declared."""
        assert self.campaign is not None and self.opened_with is not None
        return carrier or self.opened_with.carrier or self.campaign.profile.carriers[0]

    def perform(self, step: Any, via: str, res: StepResult, *, entry: bool) -> None:
        """The Runner's action for ``step``, without judging. An entry is watched on the
        display (the check keyword comes later, and the meter shows its answer only for a
        few seconds) by the rule a scenario step uses."""
        assert self.campaign is not None
        runner = self.campaign.runner
        watch = entry and "display" in runner.bench.drivers
        # The watch goes on after the entry: a text check that follows judges every display
        # shown after it (a class-1 test sequence), as a step's own expectation does.
        with runner.action(step, via, res, self.target().tids, watch=watch, keep_watching=True):
            pass

    def remember_entry(self, res: StepResult) -> None:
        """Keep the meter's answer to this entry for the check keywords that follow."""
        results = res.observations.get("results") or [None]
        self.last = LastEntry(
            res.label,
            results[-1],
            res.observations.get("display"),
            res.observations.get("section_results"),
        )

    def require_entry(self) -> LastEntry:
        if self.last is None:
            raise StepFault("no entry to judge since the last action")
        return self.last


class KeywordGroup:
    """Keywords of one concern, over the run's shared context."""

    def __init__(self, ctx: CampaignContext) -> None:
        self.ctx = ctx


class _Active:
    """The context whose campaign is open in this process (one run, one campaign)."""

    context: CampaignContext | None = None
