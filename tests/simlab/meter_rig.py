"""A simulated meter on a hand-stepped clock, for deterministic meter and defect tests.

The meter's worker thread is not started: the meter brings itself up to the clock's time
whenever it is observed (display, snapshot, readout, a key press), so a test that steps the
clock and looks at the meter sees exactly what a running meter shows at that moment. Tokens
are minted with :mod:`sts` under the profile's factory key.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from pathlib import Path

from dut.profile import MeterProfile
from simlab.lcd import SegmentLayout
from simlab.meter import MeterSnapshot, SimMeter, create_meter
from simlab.plant import LoadMode, LoadRating, Plant
from sts.dkga import Dkga, derive_decoder_key
from sts.keys import DecoderKey
from sts.meter import Result
from sts.tokens import InitiateMeterTest, Token, TransferCredit, encode
from sts.vending import KEN_NEVER_EXPIRES, NewKey, encode_key_change

#: First TID the rig issues: after the built-in profiles' manufacture TID (5 000 000).
FIRST_TID = 6_000_000
HOLD_S = 0.08  # a key press as the keypad robot makes it by default
GAP_S = 0.12


class SteppedClock:
    """Simulated time that moves only when the test says so (the SimClock interface)."""

    speed = 1.0

    def __init__(self) -> None:
        self._now = 0.0

    def now(self) -> float:
        return self._now

    def to_real(self, sim_seconds: float) -> float:
        return max(0.0, sim_seconds)

    def floor(self, real_s: float) -> float:
        return max(0.0, real_s) * self.speed

    def advance(self, seconds: float) -> None:
        self._now += seconds


@functools.cache
def builtin_profile(name: str = "default") -> MeterProfile:
    """A built-in meter profile, parsed once per test session."""
    return MeterProfile.builtin(name)


@functools.cache
def _layout(path: str) -> SegmentLayout:
    return SegmentLayout.from_yaml(path)


def layout_of(profile: MeterProfile) -> SegmentLayout:
    """The profile's LCD layout, parsed once per file."""
    return _layout(str(Path(profile.layout_path()).resolve()))


class MeterRig:
    """One simulated meter, its plant (230 V source on, load off) and a token minter."""

    def __init__(
        self,
        profile: MeterProfile | None = None,
        *,
        defects: Iterable[str] = (),
        model: type[SimMeter] | None = None,
    ) -> None:
        self.profile = profile or builtin_profile("default")
        self.clock = SteppedClock()
        rated = self.profile.rated_current_a
        self.plant = Plant(
            self.clock, load_rating=LoadRating(max_current_a=rated, max_power_w=rated * 250)
        )
        self.plant.set_source_frequency(50.0)
        self.plant.set_source_voltage(230.0)
        self.plant.set_source_output(True)
        self.meter = create_meter(
            self.profile,
            self.plant,
            model=model,
            defects=tuple(defects),
            layout=layout_of(self.profile),
        )
        self.key: DecoderKey = self.profile.decoder_key()
        self._tid = FIRST_TID

    # -- tokens -----------------------------------------------------------------------------

    def next_tid(self) -> int:
        """A TID above every one issued so far."""
        self._tid += 1
        return self._tid

    def mint(self, token: Token, key: DecoderKey | None = None) -> str:
        """20 digits of ``token`` under ``key`` (default: the meter's current key)."""
        return encode(token, key or self.key)

    def credit(self, units: int, *, register: int = 0, tid: int | None = None) -> str:
        """A TransferCredit token for ``units`` base units (0.1 kWh for electricity)."""
        tid = self.next_tid() if tid is None else tid
        return self.mint(TransferCredit(register, tid, units))

    def meter_test(self, *bits: int, mfr_code: int = 0, subclass: int | None = None) -> str:
        """A class-1 InitiateMeterTest token for control ``bits`` (none: test 0, all bits)."""
        if subclass is None:
            subclass = 0 if self.profile.tokens.mfr_code_digits == 2 else 1
        width = 36 if subclass == 0 else 28
        control = sum(1 << b for b in bits) if bits else (1 << width) - 1
        return encode(InitiateMeterTest(subclass, control, mfr_code), None)

    def new_key(
        self,
        *,
        krn: int = 2,
        kt: int | None = None,
        ti: int | None = None,
        sgc: int | None = None,
        ken: int = KEN_NEVER_EXPIRES,
        ro: bool = False,
    ) -> NewKey:
        """A key to change to, derived from the profile's vending key with new attributes."""
        k = self.profile.key
        changed = k.model_copy(
            update={
                "krn": krn,
                "kt": k.kt if kt is None else kt,
                "ti": k.ti if ti is None else ti,
                "sgc": k.sgc if sgc is None else sgc,
            }
        )
        vending_key = k.vending_key_bytes(Path(self.profile.source).parent)
        key = derive_decoder_key(
            vending_key, Dkga(int(k.dkga)), changed.attributes(self.profile.meter.pan)
        )
        wide = key.ea.key_bytes == 16
        return NewKey(
            key, changed.krn, changed.kt, changed.ti, ken, ro, changed.sgc if wide else None
        )

    def key_change(self, new: NewKey) -> tuple[str, ...]:
        """The key change token set for ``new``, under the meter's current key."""
        return encode_key_change(new, self.key)

    def enter(self, digits: str, carrier: str = "direct") -> Result:
        """Enter one token through the meter's side door; the meter's result."""
        return self.meter.enter_token(digits, carrier).result

    # -- keypad -----------------------------------------------------------------------------

    def press(self, key: str, hold_s: float = HOLD_S, gap_s: float = GAP_S) -> None:
        """One key press: down, held ``hold_s``, up, then ``gap_s`` before the next."""
        self.meter.key_down(key)
        self.clock.advance(hold_s)
        self.meter.key_up(key)
        self.clock.advance(gap_s)

    def type(self, *words: str, hold_s: float = HOLD_S, gap_s: float = GAP_S) -> None:
        """Key names and digit runs, as KPR/1's TYPE takes them: ``type("1234", "ENTER")``."""
        for word in words:
            keys = list(word) if word.isdigit() else [word]
            for key in keys:
                self.press(key, hold_s, gap_s)

    # -- plant and observation --------------------------------------------------------------

    def load(self, watts: float) -> None:
        """A constant-power load of ``watts`` on the meter's output (0: load off)."""
        if watts:
            self.plant.set_load(LoadMode.CP, watts)
        self.plant.set_load_on(bool(watts))
        self.settle()

    def supply(self, on: bool) -> None:
        """Switch the AC source feeding the meter."""
        self.plant.set_source_output(on)
        self.settle()

    def settle(self) -> MeterSnapshot:
        """The meter's state now, after it has seen what its own last move did to the plant
        (a running meter is told of every plant change at once)."""
        self.meter.snapshot()
        return self.meter.snapshot()

    def advance(self, seconds: float) -> MeterSnapshot:
        """Let ``seconds`` of simulated time pass; the meter's state at the end."""
        self.clock.advance(seconds)
        return self.settle()

    def state(self) -> MeterSnapshot:
        return self.meter.snapshot()

    def text(self) -> str:
        """What the LCD's digit cells show now."""
        return self.meter.display_state().text

    def annunciators(self) -> frozenset[str]:
        return self.meter.display_state().annunciators

    def vocabulary(self, result: Result) -> str:
        """The profile's display text for ``result``."""
        return self.profile.display.vocabulary[int(result)]
