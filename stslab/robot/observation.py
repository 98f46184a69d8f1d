"""Keywords that read the meter without judging it: its display through the camera, a register
of its port's readout."""

from __future__ import annotations

from robotlibcore import keyword

from stslab.campaign import StepFault, StepResult
from stslab.robot.context import KeywordGroup
from stslab.session import Campaign


class ObservationKeywords(KeywordGroup):
    @keyword("Read Display")
    def read_display(self) -> str:
        """Reads the meter's display through the camera and returns its text (the frame is
        kept as evidence).

        | ${text} =    Read Display
        """
        texts: list[str] = []

        def act(res: StepResult) -> None:
            assert self.ctx.campaign is not None
            reading = self.ctx.campaign.runner.read_display(res)
            res.observations["display"] = reading.text
            texts.append(reading.text)

        self.ctx.step("Read Display", "", act, action=False)
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
            assert self.ctx.campaign is not None
            runner = self.ctx.campaign.runner
            address = _register_address(self.ctx.campaign, name)
            reading = runner.readout(res).get(address)
            if reading is None:
                raise StepFault(f"the readout has no register {name} ({address})")
            res.observations[f"readout {name}"] = reading.value
            values.append(reading.value)

        self.ctx.step("Read Register", name, act, action=False)
        return values[0]


def _register_address(campaign: Campaign, name: str) -> str:
    registers = campaign.profile.port.registers
    if name not in type(registers).model_fields:
        known = ", ".join(type(registers).model_fields)
        raise StepFault(f"{name!r} is not a declared register (the profile declares {known})")
    return str(getattr(registers, name))
