"""Meter models with one plausible side effect each, loaded as ``module:Class``.

Each passes the scenario catalogue (every expectation a scenario writes still holds); the
damage is elsewhere in the meter's state, where only the reference twin looks.
"""

from __future__ import annotations

from collections.abc import Callable

from simlab.lcd import DisplayState
from simlab.meter import SimMeter
from sts.meter import Effect, ReferenceMeter, Result
from sts.tokens import ClearTamperCondition, Token


class ClearTamperDropsLimitProcess(ReferenceMeter):
    """ClearTamperCondition also drops the maximum power limit (one rule leaking into
    another: both live in one block of non-volatile memory the firmware rewrites)."""

    def execute(self, token: Token) -> tuple[Result, tuple[Effect, ...], str]:
        result = super().execute(token)
        if isinstance(token, ClearTamperCondition) and result[0] is Result.ACCEPT:
            self.state.mpl = None
        return result


class ClearTamperDropsLimitMeter(SimMeter):
    processor_class = ClearTamperDropsLimitProcess


class CardRaisesTamperMeter(SimMeter):
    """A card in the reader sets the tamper flag (the reader's switch shares the terminal
    cover's input): a carrier leaking into a register."""

    def insert_card(self, tracks: dict[int, str]) -> None:
        super().insert_card(tracks)
        with self._lock:
            if self._powered:
                self.core.set_tamper()


class BootShowsFactoryKeyMeter(SimMeter):
    """After a power cycle the port shows the key revision the meter left the factory with
    (the boot code reads it from the factory block): the key itself is kept."""

    def lose_on_power_cycle(self) -> None:
        self.core.state.krn = self.profile.key.krn


class TestDisplaySwapsKrnKtMeter(SimMeter):
    """The KRN and KT test display shows the key type where the revision belongs and the
    revision where the key type belongs (the result of that test is still Accept)."""

    def _test_display(self, bit: int) -> tuple[DisplayState, Callable[[], None] | None]:
        state, action = super()._test_display(bit)
        if bit == 3:
            s = self.core.state
            return DisplayState(f"r{s.kt} t{s.krn}", state.annunciators), action
        return state, action


class MessageLightsKwhMeter(SimMeter):
    """A result message keeps the kWh unit lit, as if the credit were still on show."""

    def _display_locked(self) -> DisplayState:
        state = super()._display_locked()
        if self._message is not None and 0 in self.core.state.credit:
            return DisplayState(state.text, state.annunciators | {"kwh"})
        return state
