"""The scenarios of ``11e-meter_display.yaml`` judge what the meter shows besides its result
messages: each class-1 test's display, and the annunciators; ``11f-depletion.yaml`` the energy
a meter lets through on its credit.

Each runs on virtual time against a meter model with one display mistake (loaded as a lab
loads its own model, ``module:Class``) and against the reference meter, on both built-in
profiles; a caught mistake shows as the failed check that names it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from simlab.meter import DisplayState, SimMeter
from stslab.campaign import Outcome
from stslab.session import Campaign, CampaignConfig

HERE = "tests.suites.test_display_scenarios"
BOTH = ("default", "ea11")


class KeyDataSwappedMeter(SimMeter):
    """Its KRN and KT display test shows the key type first."""

    def _test_display(self, bit: int) -> tuple[DisplayState, Callable[[], None] | None]:
        if bit == 3:
            s = self.core.state
            return DisplayState(f"r{s.kt} t{s.krn}"), None
        return super()._test_display(bit)


class DarkIconsTestMeter(SimMeter):
    """Its information display test lights the digits but no annunciator."""

    def _test_display(self, bit: int) -> tuple[DisplayState, Callable[[], None] | None]:
        state, action = super()._test_display(bit)
        if bit == 1:
            return DisplayState(state.text), action
        return state, action


class ReversedTestsMeter(SimMeter):
    """Shows the requested display tests from the highest number down."""

    def _queue_tests(self, request: object) -> None:
        super()._queue_tests(request)  # type: ignore[arg-type]
        self._tests.reverse()


class NoUnitIconMeter(SimMeter):
    """Its credit display never lights the kWh annunciator."""

    def _credit_display(self, ann: frozenset[str]) -> DisplayState:
        state = super()._credit_display(ann)
        return DisplayState(state.text, state.annunciators - {"kwh"})


def failed_checks(model: str | None, dut: str, select: str) -> dict[str, list[str]]:
    """Scenario id -> the names of its failed checks (its outcome when it did not run)."""
    out: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="stslab-display-") as tmp:
        cfg = CampaignConfig(bench="virtual", dut=dut, out=Path(tmp), select=(select,),
                             model=f"{HERE}:{model}" if model else None)  # fmt: skip
        with Campaign(cfg) as campaign:
            for scenario in campaign.pending():
                result = campaign.run_scenario(scenario)
                if result.outcome in (Outcome.PASS, Outcome.FAIL):
                    out[result.id] = [c.name for step in result.steps for c in step.checks
                                      if c.outcome is Outcome.FAIL]  # fmt: skip
                else:
                    out[result.id] = [result.outcome.value]
    return out


@pytest.mark.parametrize("dut", BOTH)
def test_the_reference_meter_passes_every_display_scenario(dut: str) -> None:
    got = failed_checks(None, dut, "STS-DSP-1")
    assert set(got) == {f"STS-DSP-10{n}" for n in range(1, 9)}
    ran = {k: v for k, v in got.items() if v != ["SKIP"]}
    assert ran and all(v == [] for v in ran.values()), got


@pytest.mark.parametrize("dut", BOTH)
def test_a_test_display_with_the_wrong_values_fails(dut: str) -> None:
    got = failed_checks("KeyDataSwappedMeter", dut, "STS-DSP-101")
    assert got == {"STS-DSP-101": ["test 3 display"]}


@pytest.mark.parametrize("dut", BOTH)
def test_test_displays_shown_out_of_order_fail(dut: str) -> None:
    got = failed_checks("ReversedTestsMeter", dut, "STS-DSP-101")
    assert set(got["STS-DSP-101"]) == {f"test {n} display" for n in (2, 3, 6, 9)}


def test_an_information_display_without_its_icons_fails() -> None:
    got = failed_checks("DarkIconsTestMeter", "ea11", "STS-DSP-102")
    assert got == {"STS-DSP-102": ["test 1 display"]}


def test_a_credit_display_without_its_unit_icon_fails() -> None:
    got = failed_checks("NoUnitIconMeter", "default", "STS-DSP-105")
    # the scenario's own check, and the twin's comparison of the same icon
    assert set(got["STS-DSP-105"]) == {"annunciator kwh", "side effect: annunciator.kwh"}


class LateAtZeroCreditMeter(SimMeter):
    """Checks its credit only when something else wakes it: it never schedules the moment
    the credit runs out, so it opens late."""

    def _credit_rule(self, events: list[float]) -> None:
        super()._credit_rule(scheduled := [])
        events.extend(t for t in scheduled if t <= self.clock.now())


@pytest.mark.parametrize("dut", BOTH)
def test_a_meter_that_opens_late_at_zero_credit_lets_too_much_energy_through(dut: str) -> None:
    assert failed_checks("LateAtZeroCreditMeter", dut, "STS-LS-101") == {
        "STS-LS-101": ["energy change"]
    }
    assert failed_checks(None, dut, "STS-LS-101") == {"STS-LS-101": []}
