"""The library's core: the class Robot imports, with its settings, scope and documentation;
its keywords live in groups, one file per concern, over one shared context."""

from __future__ import annotations

from typing import Literal

from robotlibcore import DynamicCore

from stslab import __version__
from stslab.robot.bench import BenchKeywords
from stslab.robot.campaign import CampaignKeywords
from stslab.robot.context import CampaignContext
from stslab.robot.observation import ObservationKeywords
from stslab.robot.settings import CampaignSettings, Carrier
from stslab.robot.side_door import SideDoorKeywords
from stslab.robot.tokens import TokenKeywords
from stslab.robot.verdicts import VerdictKeywords
from stslab.session import CampaignConfig


class StsLab(DynamicCore):
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
    `Press Keys`) takes its action through the campaign runner, as a pack scenario's step
    does: it watches the display from before the entry (the meter shows its answer only for
    a few seconds, and a message still shown from the entry before is not this entry's
    answer) and reads the result register; `Result Should Be` and `Display Should Show`
    judge those readings until the next action. `Load Switch Should Be` right after an entry
    counts its window from the end of the entry, as a scenario's ``relay`` expectation does;
    after any other action, from its own call.
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
        model: str | None = None,
        seed: int | None = None,
        pack_keys: str = "",
        ledger: str | None = None,
        carrier: Carrier | None = None,
        on_fault: Literal["continue", "stop"] = "continue",
    ) -> None:
        """``bench`` is a bench file, ``sim`` (SimLab in-process on its real transports) or
        ``virtual`` (SimLab on virtual time); ``dut`` a meter profile
        file or built-in name; ``job`` a job file; ``out`` the folder for run folders;
        ``pack`` the scenario pack folder (for `Run Scenario`; default sts-core); ``mode``
        ``pre-submission`` or ``accredited``; ``speed``, ``defects`` (comma-separated),
        ``noise``, ``model`` (``module:Class``, a SimMeter subclass) and ``seed`` configure
        SimLab; ``pack_keys`` are trusted pack keys
        (comma-separated PEM files); ``ledger`` the DUT ledger folder; ``carrier`` the
        default token carrier (else the meter's first declared); ``on_fault`` ``continue``
        (the run goes on after a fault) or ``stop``.
        """
        settings = CampaignSettings().updated(
            bench=bench,
            dut=dut,
            job=job,
            out=out,
            pack=pack,
            mode=mode,
            speed=speed,
            defects=defects,
            noise=noise,
            model=model,
            seed=seed,
            pack_keys=pack_keys,
            ledger=ledger,
            carrier=carrier,
            on_fault=on_fault,
        )
        self.ctx = CampaignContext(settings)
        # the context follows suites and tests into the journal
        self.ROBOT_LIBRARY_LISTENER = self.ctx
        groups = (
            CampaignKeywords,
            TokenKeywords,
            BenchKeywords,
            ObservationKeywords,
            VerdictKeywords,
            SideDoorKeywords,
        )
        DynamicCore.__init__(self, [group(self.ctx) for group in groups])
