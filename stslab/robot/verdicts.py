"""Keywords that judge the meter with the campaign's decision rule: its answer to the last
entry, its display, its credit, its load switch, its registers. A check that does not hold
fails with an ``AssertionError``: the step is FAIL."""

from __future__ import annotations

from decimal import Decimal

from robotlibcore import keyword

from stslab.campaign import StepFault, StepResult
from stslab.robot.context import KeywordGroup
from stslab.robot.settings import RelayState
from stslab.robot.steps import check, label_args
from stslab.scenario import CreditExpectation, Expect, RelayExpectation, parse_result


class VerdictKeywords(KeywordGroup):
    @keyword("Result Should Be")
    def result_should_be(self, expected: str) -> None:
        """Judges the meter's answer to the last entry: a result name such as ``accept``,
        ``used``, ``old``, ``crc``, ``format``, ``mfr_code``, ``key_type``, ``ddtk``,
        ``kct1_received`` (the names of the scenario format) or a result code.

        | Result Should Be    used
        """
        want = parse_result(int(expected) if expected.strip().isdigit() else expected)

        def act(res: StepResult) -> None:
            last = self.ctx.require_entry()
            res.observations["result_of"] = last.label
            res.checks.append(
                check("result", want.label, last.result or "none", last.result == want.label)
            )

        self.ctx.step("Result Should Be", expected, act, action=False)

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
            last = self.ctx.require_entry()
            if last.sections is None:
                raise StepFault(f"the last entry ({last.label}) was not a key change")
            res.observations["result_of"] = last.label
            for n, want in enumerate(wants, 1):
                got = last.sections[n - 1] if n <= len(last.sections) else "not entered"
                res.checks.append(
                    check(
                        f"result of KCT entry {n}",
                        want.label,
                        got or "unreadable",
                        got == want.label,
                    )
                )

        self.ctx.step("Section Results Should Be", " ".join(expected), act, action=False)

    @keyword("Display Should Show")
    def display_should_show(self, result: str | None = None, text: str | None = None) -> None:
        """Judges the display: the meter's text for ``result`` (through the profile's display
        vocabulary) or a literal ``text``, compared as a seven-segment display shows them.
        A result is judged on the answer the display showed to the last entry (read now when
        there was none). A literal text is looked for among everything the display showed after
        the last entry (a class-1 test sequence: the declared message and test display times
        are waited out), as a scenario step's ``display_text`` is; read now when no entry came
        since the last action.

        | Display Should Show    accept
        | Display Should Show    text=tA 1
        """
        if (result is None) == (text is None):
            raise ValueError("Display Should Show: give result or text (one of them)")
        expect = Expect(display=result) if result is not None else Expect(display_text=text)

        def act(res: StepResult) -> None:
            assert self.ctx.campaign is not None
            last = self.ctx.last
            if last is not None and last.display is not None:
                res.observations["display"] = last.display
                res.observations["display_of"] = last.label
            self.ctx.campaign.runner._judge(expect, {}, res)

        self.ctx.step("Display Should Show", result or f"text={text}", act, action=False)

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
            assert self.ctx.campaign is not None
            if register not in self.ctx.credit_before:
                raise StepFault(f"no credit reading of register {register} before the last action")
            before = {"credit": self.ctx.credit_before[register]}
            self.ctx.campaign.runner._judge(Expect(credit=credit), before, res)

        self.ctx.step(
            "Credit Change Should Be",
            label_args(change, tolerance=tolerance, register=register or None),
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
            assert self.ctx.campaign is not None
            self.ctx.campaign.runner._judge(Expect(credit=credit), {}, res)

        self.ctx.step(
            "Credit Should Be",
            label_args(value, tolerance=tolerance, register=register or None),
            act,
            action=False,
        )

    @keyword("Load Switch Should Be")
    def load_switch_should_be(self, state: RelayState, within: float = 5.0) -> None:
        """Judges the load switch: ``open`` or ``closed`` within ``within`` seconds of bench
        time (inferred from load-side voltage and current, with hysteresis). The window counts
        from the end of the last entry when no action came since, else from this call.

        | Load Switch Should Be    open    within=60
        """
        expect = Expect(relay=RelayExpectation(state=state, within_s=within))

        def act(res: StepResult) -> None:
            assert self.ctx.campaign is not None
            self.ctx.campaign.runner._judge(expect, {}, res)

        self.ctx.step("Load Switch Should Be", label_args(state, within=within), act, action=False)

    @keyword("Register Should Be")
    def register_should_be(self, name: str, value: str) -> None:
        """Judges a declared register of the meter port's readout (numbers compare as
        numbers). A name the profile does not declare is a fault.

        | Register Should Be    kt    2
        | Register Should Be    mpl    16000
        """

        def act(res: StepResult) -> None:
            assert self.ctx.campaign is not None
            self.ctx.campaign.runner._judge(Expect(readout={name: value}), {}, res)

        self.ctx.step("Register Should Be", f"{name} {value}", act, action=False)
