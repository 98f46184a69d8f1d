"""The scenarios of ``11d-mutation.yaml`` (and ``00-as_received.yaml``) catch the firmware
mistakes they were written for.

Each was written for a mutant of the reference meter that the rest of the catalogue let
through (``benchmarks/catalogue_mutation.py``). Here each runs on virtual time against a meter
model with that mistake, the way a lab loads its own model (``module:Class``), and against the
reference meter, on the built-in profiles.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from simlab.lcd import DisplayState
from simlab.meter import SimMeter
from sts.meter import (
    Effect,
    EntryResult,
    PowerLimitSet,
    ReferenceMeter,
    Result,
    WaterMeterFactorSet,
)
from sts.tokens import SetWaterMeterFactor, Token, TransferCredit
from sts.vending import KEN_NEVER_EXPIRES
from stslab.campaign import Outcome
from stslab.selftest import run_one
from stslab.session import DEFAULT_PACK, Campaign, CampaignConfig

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


class RegisterKeptWholeMeter(SimMeter):
    """Counts the energy used apart and never takes it off the credit register: the credit
    it reads out is right, but the register still holds what was transferred."""

    def _account_energy(self) -> None:
        energy = self.plant.energy_wh()
        self._wh_used_in_unit += max(0.0, energy - self._last_energy)
        self._last_energy = energy


class TripsAtOnceMeter(SimMeter):
    """Counts a new power limit's trip delay from when the load came on, so a limit lowered
    under a running load trips at once."""

    def _apply_effect(self, effect: object) -> None:
        super()._apply_effect(effect)
        if isinstance(effect, PowerLimitSet):
            self._mpl_over_since = float("-inf")


class LitWithoutSupplyMeter(SimMeter):
    """An LCD that keeps showing the credit when the supply goes."""

    def _display_locked(self) -> DisplayState:
        if not self._powered:
            return self._credit_display(frozenset())
        return super()._display_locked()


class EntryHidesIconsMeter(SimMeter):
    """Turns every icon off while an entry is typed."""

    def _display_locked(self) -> DisplayState:
        state = super()._display_locked()
        if self._powered and self._message is None and self._entry:
            return DisplayState(state.text)
        return state


class MppulTestShowsMplMeter(SimMeter):
    """Its phase power unbalance limit test shows the maximum power limit."""

    def _test_display(self, bit: int) -> tuple[DisplayState, Callable[[], None] | None]:
        if bit == 10:
            return DisplayState(self._fit(f"PU {self.core.state.mpl or 0}")), None
        return super()._test_display(bit)


class FactoryCreditProcess(ReferenceMeter):
    """Leaves the factory with 0.1 kWh in its electricity register."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.state.credit[0] = 1


class FactoryCreditMeter(SimMeter):
    processor_class = FactoryCreditProcess


class KeyNeverExpiresProcess(ReferenceMeter):
    """Leaves the factory with a key that never expires, whatever key expiry number it is
    declared with."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.state.ken = KEN_NEVER_EXPIRES


class KeyNeverExpiresMeter(SimMeter):
    processor_class = KeyNeverExpiresProcess


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
    *[("FactoryCreditMeter", "STS-NEW-001", dut) for dut in (*BOTH, "ea09")],
    ("KeyNeverExpiresMeter", "STS-NEW-001", "ea09"),  # the profile whose key expires (KEN 254)
    *[("RegisterKeptWholeMeter", "STS-MUT-008", dut) for dut in BOTH],
    *[("TripsAtOnceMeter", "STS-MUT-009", dut) for dut in BOTH],
    *[("LitWithoutSupplyMeter", "STS-MUT-010", dut) for dut in BOTH],
    *[("EntryHidesIconsMeter", "STS-MUT-011", dut) for dut in BOTH],
    ("MppulTestShowsMplMeter", "STS-DSP-108", "ea09"),  # the profile that offers test 10
]


@pytest.mark.parametrize(("model", "scenario", "dut"), CAUGHT)
def test_the_scenario_fails_the_meter_with_the_mistake(model: str, scenario: str, dut: str) -> None:
    assert outcomes(f"{HERE}:{model}", dut, scenario) == {scenario: "FAIL"}


@pytest.mark.parametrize("dut", BOTH)
def test_the_reference_meter_passes_every_mutation_scenario(dut: str) -> None:
    got = outcomes(None, dut, "STS-MUT-")
    ids = {s for s in got if s.startswith("STS-MUT-")}
    assert ids == {f"STS-MUT-{n:03d}" for n in range(1, 12)}
    assert {got[s] for s in ids} <= {"PASS", "SKIP"}
    assert "PASS" in set(got.values())


@pytest.mark.parametrize("dut", [*BOTH, "ea09"])
def test_a_meter_as_received_passes_on_every_built_in_profile(dut: str) -> None:
    assert outcomes(None, dut, "STS-NEW-001") == {"STS-NEW-001": "PASS"}


def test_a_meter_the_harness_gave_tokens_is_not_new(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The ledger knows the meter has had tokens: the scenario for a meter as received is a
    SKIP that says so, not a verdict on a meter that is no longer as its maker shipped it."""
    ledger = tmp_path / "ledger"
    first = CampaignConfig(bench="virtual", out=tmp_path / "a", select=("STS-TC-001",),
                           ledger_dir=ledger)  # fmt: skip
    with Campaign(first) as campaign:
        [result] = [campaign.run_scenario(s) for s in campaign.pending()]
        assert result.outcome is Outcome.PASS
        campaign.finish()
    second = CampaignConfig(bench="virtual", out=tmp_path / "b", select=("STS-NEW-001",),
                            ledger_dir=ledger)  # fmt: skip
    with Campaign(second) as campaign:
        [result] = [campaign.run_scenario(s) for s in campaign.pending()]
        campaign.finish()
    assert result.outcome is Outcome.SKIP
    assert result.skip_reason is not None and "as received" in result.skip_reason
