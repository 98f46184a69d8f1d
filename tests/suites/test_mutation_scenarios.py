"""The scenarios of ``11d-mutation.yaml`` catch the firmware mistakes they were written for.

Each was written for a mutant of the reference meter that the rest of the catalogue let
through (``benchmarks/catalogue_mutation.py``). Here each runs on virtual time against a meter
model with that mistake, the way a lab loads its own model (``module:Class``), and against the
reference meter, on both built-in profiles.
"""

from __future__ import annotations

import pytest

from simlab.meter import SimMeter
from sts.meter import Effect, EntryResult, ReferenceMeter, Result, WaterMeterFactorSet
from sts.tokens import SetWaterMeterFactor, Token, TransferCredit
from stslab.selftest import run_one
from stslab.session import DEFAULT_PACK

HERE = "tests.suites.test_mutation_scenarios"


class WaterFactorAnywayProcess(ReferenceMeter):
    """Takes SetWaterMeterFactor whatever the meter declares."""

    def execute(self, token: Token) -> tuple[Result, tuple[Effect, ...], str]:
        if isinstance(token, SetWaterMeterFactor):
            self.state.water_meter_factor = token.factor
            return Result.ACCEPT, (WaterMeterFactorSet(token.factor),), ""
        return super().execute(token)


class WaterFactorAnywayMeter(SimMeter):
    processor_class = WaterFactorAnywayProcess


class ZeroCreditRefusedProcess(ReferenceMeter):
    """Refuses a transfer of nothing as a Range error."""

    def add_credit(self, token: TransferCredit) -> tuple[Result, tuple[Effect, ...], str]:
        if token.amount == 0:
            return Result.RANGE, (), "nothing to transfer"
        return super().add_credit(token)


class ZeroCreditRefusedMeter(SimMeter):
    processor_class = ZeroCreditRefusedProcess


class CurrencyAtUnitsLimitProcess(ReferenceMeter):
    """Holds a currency register to the units registers' limit."""

    def register_limit(self, register: int) -> int:
        return self.parameters.credit_limit


class CurrencyAtUnitsLimitMeter(SimMeter):
    processor_class = CurrencyAtUnitsLimitProcess


class DeafWhileTrippedMeter(SimMeter):
    """Ignores every entry while its switch is open on the maximum power limit."""

    def _process(self, digits: str, carrier: str) -> EntryResult:
        if "mpl" in self._open_reasons:
            return EntryResult(Result.NOT_READY)
        return super()._process(digits, carrier)


class LateTripMeter(SimMeter):
    """Checks the power limit only when something else wakes it: it never schedules the
    end of its trip delay, so it opens late."""

    def _mpl_rule(self, now: float, events: list[float]) -> None:
        super()._mpl_rule(now, scheduled := [])
        events.extend(t for t in scheduled if self._mpl_over_since is None)


def outcomes(model: str | None, dut: str, scenario: str) -> dict[str, str]:
    row = run_one(None, str(DEFAULT_PACK), dut, 1.0, (scenario,), stop_at_kill=False,
                  bench="virtual", model=model)  # fmt: skip
    return row.outcomes


BOTH = ("default", "ea11")
CAUGHT = [
    *[("DeafWhileTrippedMeter", "STS-MUT-001", dut) for dut in BOTH],
    *[("WaterFactorAnywayMeter", "STS-MUT-002", dut) for dut in BOTH],
    *[("LateTripMeter", "STS-MUT-005", dut) for dut in BOTH],
    *[("ZeroCreditRefusedMeter", "STS-MUT-006", dut) for dut in BOTH],
    ("CurrencyAtUnitsLimitMeter", "STS-MUT-007", "ea11"),  # the profile with a currency register
]


@pytest.mark.parametrize(("model", "scenario", "dut"), CAUGHT)
def test_the_scenario_fails_the_meter_with_the_mistake(model: str, scenario: str, dut: str) -> None:
    assert outcomes(f"{HERE}:{model}", dut, scenario) == {scenario: "FAIL"}


@pytest.mark.parametrize("dut", BOTH)
def test_the_reference_meter_passes_every_mutation_scenario(dut: str) -> None:
    got = outcomes(None, dut, "STS-MUT-")
    ids = {s for s in got if s.startswith("STS-MUT-")}
    assert ids == {f"STS-MUT-00{n}" for n in range(1, 8)}
    assert {got[s] for s in ids} <= {"PASS", "SKIP"}
    assert "PASS" in set(got.values())
