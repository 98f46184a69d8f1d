"""Keywords of the campaign as a whole: open it, run a pack scenario through its runner, skip a
test the meter's declarations rule out."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Literal

from robot.api import SkipExecution
from robotlibcore import keyword

from stslab.campaign import Outcome, not_applicable
from stslab.robot.context import KeywordGroup
from stslab.robot.faults import CampaignFault
from stslab.robot.settings import Carrier, describe
from stslab.robot.steps import failed_checks
from stslab.scenario import Applicability, Scenario
from stslab.session import load_pack


class CampaignKeywords(KeywordGroup):
    _pack: dict[str, Scenario] | None = None  # the pack's scenarios by id, loaded on first use

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
        ctx = self.ctx
        try:
            wanted = ctx.settings.updated(
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
        if ctx.campaign is not None:
            effective = ctx.effective(wanted)
            if effective != ctx.opened_with:
                raise CampaignFault(
                    f"the campaign is already open ({describe(ctx.opened_with)}); "
                    f"Open Campaign asks for {describe(effective)}"
                )
            return str(ctx.campaign.run.directory)
        ctx.settings = wanted
        return str(ctx.open().run.directory)

    @keyword("Run Scenario")
    def run_scenario(self, scenario_id: str) -> None:
        """Runs a whole scenario of the pack (its own setup, steps and expectations) through
        the campaign's runner; it is journalled under its own id. FAIL fails the keyword,
        ERROR raises ``BenchFault``, a scenario that does not apply to the meter skips the test.

        | Run Scenario    STS-TID-003
        """
        ctx = self.ctx
        campaign = ctx.open()
        if self._pack is None:
            self._pack = {s.id: s for s in load_pack(campaign.config.pack)}
        scenario = self._pack.get(scenario_id)
        if scenario is None:
            raise ValueError(f"the pack {campaign.config.pack} has no scenario {scenario_id!r}")
        target = ctx.test
        if target is not None and target.begun and target.id == scenario_id:
            raise ValueError(f"this test already journals steps as {scenario_id}")
        if scenario_id in campaign.completed:
            raise ValueError(f"scenario {scenario_id} already has a result in this run")
        ctx.last = None
        ctx.credit_before = {}  # the scenario's steps are its own: no baseline for checks
        result = campaign.run_scenario(scenario)
        if target is not None:
            target.pack_outcomes.append(result.outcome)
        if result.outcome is Outcome.SKIP:
            raise SkipExecution(f"{scenario_id}: {result.skip_reason or 'does not apply'}")
        failed = [s for s in result.steps if s.outcome in (Outcome.FAIL, Outcome.ERROR)]
        text = "; ".join(f"{s.label} ({s.kind}): " + (s.error or failed_checks(s)) for s in failed)
        if result.outcome is Outcome.ERROR:
            raise ctx.fault(f"{scenario_id}: {text}")
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
        campaign = self.ctx.open()
        reason = not_applicable(
            SimpleNamespace(applies=applies),  # type: ignore[arg-type]
            campaign.profile,
            self.ctx.carrier(None),
        )
        if reason is None:
            return
        target = self.ctx.target()
        target.skip_reason = reason
        target.declared = True  # a skipped test is recorded, with the reason
        raise SkipExecution(reason)
