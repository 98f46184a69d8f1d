"""Keywords that drive the bench around the meter: its baseline, the supply and the load,
waits on bench time, a power cycle, and what the operator does by hand."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace
from typing import Any, Literal

from robotlibcore import keyword

from stslab.campaign import Outcome, StepFault, StepResult
from stslab.robot.context import KeywordGroup
from stslab.robot.settings import Carrier, RelayState
from stslab.robot.steps import label_args
from stslab.scenario import LoadStep, OperatorStep, PowerCycleStep, SourceStep, WaitStep


class BenchKeywords(KeywordGroup):
    @keyword("Prepare Meter")
    def prepare_meter(self, credit: Decimal | None = None, carrier: Carrier | None = None) -> None:
        """Brings the bench to its baseline (load off, supply on at nominal voltage) and, with
        ``credit``, tops the meter's electricity credit up to at least that many kWh.

        | Prepare Meter    credit=5.0
        """
        if credit is not None and credit < 0:
            raise ValueError(f"Prepare Meter: credit {credit} is negative")

        def act(res: StepResult) -> None:
            assert self.ctx.campaign is not None
            done = self.ctx.campaign.runner._setup(
                SimpleNamespace(setup_credit=credit),  # type: ignore[arg-type]
                self.ctx.carrier(carrier),
            )
            assert done is not None
            res.action, res.observations = done.action, done.observations
            res.evidence += done.evidence
            if done.outcome is Outcome.ERROR:
                raise StepFault(done.error or "the baseline failed")

        self.ctx.step("Prepare Meter", label_args(credit=credit), act)

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
            label_args(
                setpoint if on else None, mode=mode if on else None, on=None if on else False
            ),
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
            "Set Source", label_args(output=output, voltage=voltage, frequency=frequency), step
        )

    @keyword("Wait Seconds")
    def wait_seconds(self, seconds: float) -> None:
        """Waits ``seconds`` of bench time (SimLab's clock may run faster than real time).

        | Wait Seconds    100
        """
        step = WaitStep(do="wait", seconds=seconds)
        self._bench_step("Wait Seconds", label_args(seconds), step)

    @keyword("Wait For Energy")
    def wait_for_energy(self, energy_wh: float, timeout: float = 600.0) -> None:
        """Waits until the power analyser has integrated ``energy_wh`` on the load side; not
        within ``timeout`` seconds of bench time is a fault.

        | Wait For Energy    50    timeout=120
        """
        step = WaitStep(do="wait", energy_wh=energy_wh, timeout_s=timeout)
        self._bench_step("Wait For Energy", label_args(energy_wh, timeout=timeout), step)

    @keyword("Wait For Load Switch")
    def wait_for_load_switch(self, state: RelayState, timeout: float = 600.0) -> None:
        """Waits until the load switch is ``open`` or ``closed`` (inferred from load-side
        voltage and current); not within ``timeout`` seconds of bench time is a fault. To
        judge the switch, use `Load Switch Should Be`.

        | Wait For Load Switch    open    timeout=200
        """
        step = WaitStep(do="wait", relay=state, timeout_s=timeout)
        self._bench_step("Wait For Load Switch", label_args(state, timeout=timeout), step)

    @keyword("Wait For Credit Display")
    def wait_for_credit_display(self, timeout: float = 600.0) -> None:
        """Waits until the meter is back at its default display: the display steadily shows
        the credit the meter port reads (after a class-1 test sequence or a message); not
        within ``timeout`` seconds of bench time is a fault.

        | Wait For Credit Display    timeout=600
        """
        step = WaitStep(do="wait", display="credit", timeout_s=timeout)
        self._bench_step("Wait For Credit Display", label_args(timeout=timeout), step)

    @keyword("Power Cycle Meter")
    def power_cycle_meter(self, off_s: float = 5.0) -> None:
        """Switches the meter's supply off for ``off_s`` seconds of bench time, on again, and
        lets it boot.

        | Power Cycle Meter    off_s=60
        """
        step = PowerCycleStep(do="power_cycle", off_s=off_s)
        self._bench_step("Power Cycle Meter", label_args(off_s=off_s), step)

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
            self.ctx.perform(step, "", res, entry=False)

        self.ctx.step(kind, detail, act)
