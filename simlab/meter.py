"""The simulated meter under test: a keypad prepayment meter built on :mod:`sts.meter`.

:class:`SimMeter` adds to the reference token process what a physical meter has: a keypad
entry buffer (digits, backspace, enter, entry time-out) with lockout after repeated rejects,
an LCD driven by a display state machine (credit by default, result messages from the
profile's vocabulary, class-1 test displays), a load switch (zero credit, maximum power
limit with a trip delay, the class-1 load switch test, reconnection per the declared
policy), a tamper flag, credit decremented by metered energy, an optical port and a card
reader, and power cycling that keeps only what non-volatile memory keeps.

Time comes from the bench's :class:`~simlab.clock.SimClock`; energy from the
:class:`~simlab.plant.Plant`. One worker thread wakes at the next event (credit running out,
a trip delay ending, a message expiring …) so depletion is exact at any clock speed.

A lab models one firmware by subclassing :class:`SimMeter` (or its token processor, named by
:attr:`SimMeter.processor_class`) and pointing SimLab at it as ``module:Class``.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar

from dut.profile import MeterProfile
from simlab.lcd import DisplayState, SegmentLayout, encode_text
from simlab.meter_io import DataLine, PortError, WriteResult
from simlab.plant import Plant
from sts.meter import (
    CreditAdded,
    CreditCleared,
    EntryResult,
    KeyInstalled,
    PowerLimitSet,
    ReferenceMeter,
    Result,
    TamperCleared,
    TestRequested,
)
from sts.schema import located

WH_PER_UNIT = 100.0  # one electricity base unit (0.1 kWh) in Wh
_MAX_REAL_WAIT = 0.05  # the worker re-checks at least this often (real seconds)


@dataclass
class _Message:
    state: DisplayState
    until: float


@dataclass
class MeterSnapshot:
    """The side door's view of the meter: its true state, for tests and the simulator only."""

    powered: bool
    relay_closed: bool
    open_reasons: frozenset[str]
    credit: dict[int, int]
    credit_wh: float
    tid_store: list[int]
    krn: int
    kt: int
    ti: int
    sgc: int
    ken: int
    key_fingerprint: str
    mpl: int | None
    mppul: int | None
    tamper: bool
    pending_kcts: tuple[int, ...]
    entry: str
    display: DisplayState
    last_result: Result | None
    lockout_until: float | None
    consecutive_rejects: int
    energy_wh: float
    entries: int
    defects: tuple[str, ...] = field(default_factory=tuple)
    #: a result message or a class-1 test display is on the LCD (not the credit)
    showing_message: bool = False
    tests_pending: int = 0  # class-1 test displays still to come


class SimMeter:
    """A simulated STS keypad meter on a simulated plant.

    It implements :class:`simlab.meter_io.MeterKeypad`, ``MeterOpticalPort`` and
    ``MeterCardReader``, through which SimLab's keypad robot, optical port and card presenter
    reach it.
    """

    #: The token process; a firmware model may name a subclass of ReferenceMeter here.
    processor_class: type[ReferenceMeter] = ReferenceMeter
    #: On a fast clock, what a person (or a camera, or a keypad robot) must be able to see or
    #: do keeps at least this much REAL time, by the declared time it stretches (a profile
    #: path; ``keypad.lockout`` for the whole policy): a result message, a test display, the
    #: entry time-out, a keypad lockout, the load switch test (its probe needs ~50 ms). At
    #: speed 1 these floors never apply; above it they stretch the declared times (in
    #: simulated seconds) so real-time observers keep up.
    REAL_FLOORS_S: ClassVar[Mapping[str, float]] = MappingProxyType({
        "display.message_seconds": 0.5,
        "display.test_step_seconds": 0.5,
        "keypad.entry_timeout_s": 0.5,
        "keypad.lockout": 1.5,
        "load_switch.test_open_s": 0.5,
        # Not a time the meter keeps but one it measures: a key's hold, timed by its thread
        # in real time; it cannot tell holds apart finer than this at any clock speed.
        "keypad.min_hold_ms": 0.02,
    })  # fmt: skip

    def keeps(self, path: str) -> float:
        """The time or count the meter acts on for the declared parameter ``path`` (a dotted
        profile path): the declaration itself. A firmware model (or a defect) that keeps
        another value overrides this."""
        value: object = self.profile
        for part in path.split("."):
            value = getattr(value, part)
        return float(value)  # type: ignore[arg-type]

    def real_floors(self) -> dict[str, float]:
        """The declared times this meter keeps at least some real seconds, whatever the
        clock's speed (:attr:`REAL_FLOORS_S`)."""
        return dict(self.REAL_FLOORS_S)

    def __init__(
        self,
        profile: MeterProfile,
        plant: Plant,
        *,
        defects: Iterable[str] = (),
        layout: SegmentLayout | None = None,
    ) -> None:
        from simlab.defects import apply_defects

        self.profile = profile
        self.plant = plant
        self.clock = plant.clock
        self.layout = layout or SegmentLayout.from_yaml(profile.layout_path())
        self._check_vocabulary()
        self.defects = tuple(defects)
        processor = apply_defects(self.processor_class, self.defects)
        k = profile.key
        self.core: ReferenceMeter = processor(
            profile.decoder_key(),
            krn=k.krn,
            kt=k.kt,
            ti=k.ti,
            sgc=k.sgc,
            ken=k.ken,
            parameters=profile.tokens.parameters(),
            manufacture_tid=profile.tokens.manufacture_tid,
        )
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._stop = False
        self._thread: threading.Thread | None = None
        self._listeners: list[Callable[[EntryResult, str], None]] = []
        # Volatile (lost on power loss)
        self._entry: list[str] = []
        self._last_key_at: float | None = None
        self._last_key_up_at: float | None = None
        self._held: dict[str, float] = {}
        self._message: _Message | None = None
        self._tests: list[tuple[DisplayState, float, Callable[[], None] | None]] = []
        self._test_until: float | None = None
        # Kept by the meter
        self._powered = False
        self._open_reasons: set[str] = set()
        self._mpl_over_since: float | None = None
        self._mpl_tripped_at: float | None = None
        self._test_open_until: float | None = None
        self._wh_used_in_unit = 0.0  # energy drawn from the current 0.1 kWh credit unit
        self._last_energy = plant.energy_wh()
        self._last_result: Result | None = None
        self._rejects = 0
        self._lockout_until: float | None = None
        self._lockout_next = self.keeps("keypad.lockout.first_seconds")
        self._entries = 0
        self._powered = plant.meter_supplied()
        self._relay_applied: bool | None = None
        self._update_locked(self.clock.now())

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stop = False
            self._thread = threading.Thread(target=self._run, name="simlab-meter", daemon=True)
            self._unsubscribe = self.plant.subscribe(lambda _state: self._poke())
            self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread = self._thread
            self._thread = None
            self._stop = True
            self._wake.notify_all()
        if thread is not None:
            self._unsubscribe()
            thread.join(timeout=5)

    def __enter__(self) -> SimMeter:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def advance(self, now: float) -> tuple[float | None, DisplayState]:
        """Bring the meter to ``now`` without its worker thread (virtual time drives it):
        when its next event is due, and what the LCD shows."""
        with self._lock:
            due = self._update_locked(now)
            return due, self._display_locked()

    def on_entry(self, callback: Callable[[EntryResult, str], None]) -> None:
        """Call ``callback(result, carrier)`` after every token entry (for transcripts)."""
        self._listeners.append(callback)

    def _poke(self) -> None:
        with self._lock:
            self._wake.notify_all()

    def _run(self) -> None:
        with self._lock:
            while not self._stop:
                now = self.clock.now()
                next_at = self._update_locked(now)
                wait = _MAX_REAL_WAIT
                if next_at is not None:
                    wait = min(wait, max(0.0, self.clock.to_real(next_at - now)))
                self._wake.wait(timeout=max(wait, 0.0005))

    # -- the passage of time --------------------------------------------------------------

    def _update_locked(self, now: float) -> float | None:
        """Bring the meter up to ``now``; returns when something next happens (sim s)."""
        supplied = self.plant.meter_supplied()
        if supplied != self._powered:
            if supplied:
                self._power_up(now)
            else:
                self._power_down()
        self._account_energy()
        if not self._powered:
            return None
        events: list[float] = []
        was_closed = self._relay_applied
        self._credit_rule(events)
        self._mpl_rule(now, events)
        if self._test_open_until is not None:
            if now >= self._test_open_until:
                self._test_open_until = None
                self._open_reasons.discard("test")
            else:
                events.append(self._test_open_until)
        self._apply_relay()
        if self._relay_applied and not was_closed:
            # Just closed: the load flows through the meter only now, so the power limit
            # starts watching it now (not at whatever event comes next).
            self._mpl_rule(now, events)
        if self._entry and self._last_key_at is not None:
            deadline = self._last_key_at + self._lasting("keypad.entry_timeout_s")
            if now >= deadline:
                self._entry.clear()
            else:
                events.append(deadline)
        if self._message is not None:
            if now >= self._message.until:
                self._message = None
            else:
                events.append(self._message.until)
        self._advance_tests(now, events)
        if self._lockout_until is not None:
            if now >= self._lockout_until:
                self._lockout_until = None
            else:
                events.append(self._lockout_until)
        return min(events) if events else None

    def _account_energy(self) -> None:
        energy = self.plant.energy_wh()
        used = max(0.0, energy - self._last_energy)
        self._last_energy = energy
        if not used:
            return
        self._wh_used_in_unit += used
        whole = int(self._wh_used_in_unit // WH_PER_UNIT)
        if whole:
            self.core.consume(0, whole)
            self._wh_used_in_unit -= whole * WH_PER_UNIT
        if self.core.state.credit[0] == 0:  # ran dry: nothing more to take from
            self._wh_used_in_unit = 0.0

    def credit_wh(self) -> float:
        """Electricity credit left, in Wh (finer than the 0.1 kWh register)."""
        units = self.core.state.credit[0]
        return max(0.0, units * WH_PER_UNIT - self._wh_used_in_unit)

    def _credit_rule(self, events: list[float]) -> None:
        left = self.credit_wh()
        if left <= 1e-9:
            if self.opens_at_zero_credit():
                self._open_reasons.add("credit")
            return
        if (
            "credit" in self._open_reasons
            and self.profile.load_switch.reconnect_on_credit == "auto"
        ):
            self._open_reasons.discard("credit")
        dt = self.plant.time_to_energy(left)
        if dt is not None and "credit" not in self._open_reasons:
            events.append(self.clock.now() + dt)

    def _at_least_real(self, seconds: float, declared: str) -> float:
        """``seconds`` of simulated time, stretched to last at least the real floor of the
        declared time ``declared`` (:attr:`REAL_FLOORS_S`; virtual time has none)."""
        floor = self.clock.floor(self.REAL_FLOORS_S[declared])  # pragma: no mutate
        return max(seconds, floor)

    def _lasting(self, declared: str) -> float:
        """How long the meter keeps the declared time ``declared`` (its own value of it,
        stretched to its real floor)."""
        return self._at_least_real(self.keeps(declared), declared)

    def opens_at_zero_credit(self) -> bool:
        return True

    def enforces_power_limit(self) -> bool:
        return True

    def _mpl_rule(self, now: float, events: list[float]) -> None:
        mpl = self.core.state.mpl
        reconnect_s = self.keeps("load_switch.mpl_reconnect_s")
        trip_delay_s = self.keeps("load_switch.mpl_trip_delay_s")
        if self._mpl_tripped_at is not None:
            if now >= self._mpl_tripped_at + reconnect_s:
                self._mpl_tripped_at = None
                self._open_reasons.discard("mpl")
            else:
                events.append(self._mpl_tripped_at + reconnect_s)
                return
        if mpl is None or not self.enforces_power_limit():
            self._mpl_over_since = None
            return
        if self.relay_closed and self.plant.meter_power_w() > mpl:
            if self._mpl_over_since is None:
                self._mpl_over_since = now
            if now >= self._mpl_over_since + trip_delay_s:
                self._open_reasons.add("mpl")
                self._mpl_tripped_at = now
                self._mpl_over_since = None
                events.append(now + reconnect_s)
            else:
                events.append(self._mpl_over_since + trip_delay_s)
        else:
            self._mpl_over_since = None

    @property
    def relay_closed(self) -> bool:
        return self._powered and not self._open_reasons

    def _apply_relay(self) -> None:
        closed = self.relay_closed
        if closed != self._relay_applied:  # a change of circuit only when it changes
            self._relay_applied = closed
            self.plant.set_relay(closed)

    # -- power ----------------------------------------------------------------------------

    def _power_down(self) -> None:
        self._powered = False
        self._entry.clear()
        self._held.clear()
        self._message = None
        self._tests.clear()
        self._test_until = None
        self._mpl_over_since = None
        self.core.power_cycle()
        self.plant.set_relay(False)
        self._relay_applied = False  # so power-up closes it again when nothing holds it open

    def _power_up(self, now: float) -> None:
        self._powered = True
        self._last_energy = self.plant.energy_wh()
        self.lose_on_power_cycle()

    def lose_on_power_cycle(self) -> None:
        """What a power cycle loses beyond volatile state (nothing, for a compliant meter)."""

    def power_cycle(self) -> None:
        """Side door: the meter loses and regains its supply (non-volatile state is kept)."""
        with self._lock:
            self._power_down()
            self._power_up(self.clock.now())
            self._update_locked(self.clock.now())
            self._wake.notify_all()

    # -- keypad (MeterKeypad) ------------------------------------------------------------

    @property
    def keys(self) -> tuple[str, ...]:
        return self.profile.keypad.keys

    def key_down(self, key: str) -> None:
        if key not in self.keys:
            raise ValueError(f"the keypad has no key {key!r}")
        with self._lock:
            self._held[key] = self.clock.now()

    def key_up(self, key: str) -> None:
        with self._lock:
            pressed_at = self._held.pop(key, None)
            now = self.clock.now()
            if pressed_at is None or not self._powered:
                return
            if (now - pressed_at) * 1000 < self.keeps("keypad.min_hold_ms"):
                return  # too short to register (debounce)
            gap_ms = None
            if self._last_key_up_at is not None:
                gap_ms = (pressed_at - self._last_key_up_at) * 1000
            self._last_key_up_at = now
            if self.drops_key(key, gap_ms):
                return
            self._keypress(key, now)
            self._wake.notify_all()

    def drops_key(self, key: str, gap_ms: float | None) -> bool:
        """Whether the keypad misses this press (a compliant keypad never does)."""
        return False

    def _keypress(self, key: str, now: float) -> None:
        kp = self.profile.keypad
        self._last_key_at = now
        self._message = None
        if key == kp.backspace_key:
            if self._entry:
                self._entry.pop()
            return
        if key == kp.enter_key:
            digits = "".join(self._entry)
            self._entry.clear()
            if not digits:
                self._reconnect_by_key()
                return
            if self._lockout_until is not None and now < self._lockout_until:
                self._last_result = Result.LOCKOUT
                self._show_result(EntryResult(Result.LOCKOUT))
                return
            self._process(digits, "keypad")
            return
        if key.isdigit():
            self._entry.append(key)

    def _reconnect_by_key(self) -> None:
        if "credit" in self._open_reasons and self.credit_wh() > 0:
            self._open_reasons.discard("credit")
            self._apply_relay()

    # -- token entry ----------------------------------------------------------------------

    def enter_token(self, digits: str, carrier: str = "direct") -> EntryResult:
        """Side door and carriers: process one entry as the meter would."""
        with self._lock:
            return self._process(digits, carrier)

    def _process(self, digits: str, carrier: str) -> EntryResult:
        self._update_locked(self.clock.now())
        self._entries += 1  # pragma: no mutate (the state dump's count, not a meter rule)
        result = self.core.enter(digits)
        self._last_result = result.result
        for effect in result.effects:
            self._apply_effect(effect)
        if carrier == "keypad":
            self._count_for_lockout(result)
        self._show_result(result)
        self._update_locked(self.clock.now())
        self._wake.notify_all()
        for callback in list(self._listeners):  # pragma: no mutate (transcripts' hooks)
            callback(result, carrier)  # pragma: no mutate
        return result

    def _count_for_lockout(self, result: EntryResult) -> None:
        policy = self.profile.keypad.lockout
        if result.result.accepted:
            self._rejects = 0
            self._lockout_next = self.keeps("keypad.lockout.first_seconds")
            return
        self._rejects += 1
        if policy.enabled and self._rejects >= self.keeps("keypad.lockout.after_rejects"):
            self._lockout_until = self.clock.now() + self._at_least_real(
                self._lockout_next, "keypad.lockout"
            )
            self._lockout_next = min(self._lockout_next * self.keeps("keypad.lockout.factor"),
                                     self.keeps("keypad.lockout.max_seconds"))  # fmt: skip
            self._rejects = 0

    def _apply_effect(self, effect: object) -> None:
        if isinstance(effect, CreditAdded | CreditCleared):
            if isinstance(effect, CreditCleared) and 0 in effect.registers:
                self._wh_used_in_unit = 0.0
        elif isinstance(effect, PowerLimitSet):
            self._mpl_over_since = None
        elif isinstance(effect, TamperCleared | KeyInstalled):
            pass
        elif isinstance(effect, TestRequested):
            self._queue_tests(effect)

    def display_text_for(self, result: EntryResult) -> str:
        return self.profile.display.vocabulary[int(result.result)]

    def _show_result(self, result: EntryResult) -> None:
        text = self.display_text_for(result)
        until = self.clock.now() + self._lasting("display.message_seconds")
        self._message = _Message(DisplayState(text), until)
        if self._tests:
            self._test_until = until  # tests start once the result has been shown

    # -- class-1 tests ----------------------------------------------------------------------

    def _queue_tests(self, request: TestRequested) -> None:
        step = self.keeps("display.test_step_seconds")
        for bit in request.tests:
            state, action = self._test_display(bit)
            self._tests.append((state, step, action))

    def _test_display(self, bit: int) -> tuple[DisplayState, Callable[[], None] | None]:
        """What class-1 test ``bit`` shows (the live annunciators are added when it shows)
        and what it does."""
        s = self.core.state
        if bit == 0:
            text = "LS tESt" if self.layout.digit_count >= 7 else "LStESt"  # fits 6 cells
            return DisplayState(text), self._start_load_switch_test
        if bit == 1:
            n = self.layout.digit_count
            return DisplayState("8." * n, frozenset(self.layout.annunciators)), None
        if bit == 2:
            kwh = self.plant.energy_wh() / 1000
            return DisplayState(self._fit(f"{kwh:.1f}"), frozenset({"kwh"})), None
        if bit == 3:
            return DisplayState(f"r{s.krn} t{s.kt}"), None
        if bit == 4:
            return DisplayState(f"ti {s.ti:02d}"), None
        if bit == 5:
            return DisplayState("cArd"), None
        if bit == 6:
            text = "P ----" if s.mpl is None else self._fit(f"P {s.mpl}")
            return DisplayState(text), None
        if bit == 7:
            return DisplayState(f"tA {int(s.tamper)}"), None
        if bit == 8:
            return DisplayState(self._fit(f"i {self.plant.meter_power_w():.0f}")), None
        if bit == 9:
            return DisplayState(self._fit(f"u {self.profile.display.version_text}")), None
        if bit == 10:
            text = "PU ----" if s.mppul is None else self._fit(f"PU {s.mppul}")
            return DisplayState(text), None
        return DisplayState(self._fit(f"t {bit}")), None

    def _start_load_switch_test(self) -> None:
        self._open_reasons.add("test")
        self._test_open_until = self.clock.now() + self._lasting("load_switch.test_open_s")
        self._apply_relay()

    def _advance_tests(self, now: float, events: list[float]) -> None:
        if not self._tests:
            return
        # Queued tests always follow a result message, which set when they start.
        if now < self._test_until:
            events.append(self._test_until)
            return
        state, seconds, action = self._tests.pop(0)
        self._test_until = now + self._at_least_real(seconds, "display.test_step_seconds")
        self._message = _Message(state, self._test_until)
        if action is not None:
            action()
        events.append(self._test_until)

    # -- display --------------------------------------------------------------------------

    def _fit(self, text: str) -> str:
        """Right-most characters that fit the LCD (a dot shares its digit's cell)."""
        n = self.layout.digit_count
        while len(text.replace(".", "")) > n:
            text = text[1:]
        return text

    def _annunciators(self) -> frozenset[str]:
        ann = set()
        if not self.relay_closed:
            ann.add("relay_open")
        low = self.profile.display.credit_low_threshold * WH_PER_UNIT
        if self.credit_wh() < low:
            ann.add("credit_low")
        if self.core.state.tamper:
            ann.add("tamper")
        if self._lockout_until is not None and self.clock.now() < self._lockout_until:
            ann.add("keypad_lock")
        return frozenset(ann)

    def display_state(self) -> DisplayState:
        """What the LCD shows now (what the camera renders)."""
        with self._lock:
            self._update_locked(self.clock.now())
            return self._display_locked()

    def _display_locked(self) -> DisplayState:
        if not self._powered:
            return DisplayState("", frozenset())
        ann = self._annunciators()
        if self._message is not None:
            msg = self._message.state
            return DisplayState(msg.text, msg.annunciators | ann)
        if self._entry:
            n = self.layout.digit_count
            return DisplayState("".join(self._entry[-n:]), ann)
        return self._credit_display(ann)

    def _credit_display(self, ann: frozenset[str]) -> DisplayState:
        """The electricity credit (a DUT profile always declares register 0)."""
        tenths = int(self.credit_wh() // WH_PER_UNIT)
        return DisplayState(self._fit(f"{tenths // 10}.{tenths % 10}"), ann | {"kwh"})

    def _check_vocabulary(self) -> None:
        n = self.layout.digit_count
        for code, text in self.profile.display.vocabulary.items():
            try:
                encode_text(text, n)
            except ValueError as exc:
                where = located(self.profile.source, ("display", "vocabulary", code))
                raise ValueError(
                    f"{where}: {text!r} cannot be shown on layout {self.layout.name!r}: {exc}"
                ) from None

    # -- optical port (MeterOpticalPort) ------------------------------------------------------

    @property
    def device_address(self) -> str:
        return self.profile.port.device_address

    def identification(self) -> str:
        p = self.profile
        ident = "".join(ch for ch in p.meter.model.split()[0] if ch.isalnum() or ch in "-_.")
        return f"{p.port.manufacturer_flag}{p.port.baud_char}{ident[:16]}"

    def readout(self) -> list[DataLine]:
        with self._lock:
            self._update_locked(self.clock.now())
            s = self.core.state
            p = self.profile
            r = p.port.registers
            lines = [
                DataLine(r.serial, p.meter.serial),
                DataLine("0.0.0", p.meter.pan),
                DataLine("0.2.0", p.meter.firmware),
                DataLine(r.energy_kwh, f"{self.plant.energy_wh() / 1000:010.3f}", "kWh"),
            ]
            for register, value in sorted(s.credit.items()):
                if register == 0:
                    lines.append(DataLine(r.credit, f"{self.credit_wh() / 1000:010.3f}", "kWh"))
                elif register < 4:
                    lines.append(DataLine(f"C.50.{register}", f"{value / 10:09.1f}", "m3"
                                          if register in (1, 2) else "min"))  # fmt: skip
                else:
                    lines.append(DataLine(f"C.50.{register}", f"{value / 100_000:.5f}"))
            reasons = ",".join(sorted(self._open_reasons)) or "none"
            lines += [
                DataLine(r.relay, "CLOSED" if self.relay_closed else "OPEN"),
                DataLine("C.52.1", reasons),
                DataLine(r.last_result, f"{int(self._last_result or 0):02d}"),
                DataLine(r.krn, str(s.krn)),
                DataLine(r.kt, str(s.kt)),
                DataLine(r.ti, f"{s.ti:02d}"),
                DataLine(r.ken, str(s.ken)),
                DataLine(r.mpl, "0" if s.mpl is None else str(s.mpl), "W"),
                DataLine(r.tamper, str(int(s.tamper))),
            ]
            if p.tokens.supports_mppul:
                lines.append(DataLine(r.mppul, "0" if s.mppul is None else str(s.mppul), "W"))
            return lines

    def check_password(self, password: str) -> bool:
        return password == self.profile.port.password

    def write_register(self, address: str, value: str, password: str | None) -> WriteResult:
        register = self.profile.port.token_register
        if password is None or not self.check_password(password):
            return WriteResult.error(PortError.PASSWORD)
        if register is None or address != register:
            return WriteResult.error(PortError.NOT_WRITABLE)
        if "port" not in self.profile.carriers:
            return WriteResult.error(PortError.CARRIER_DISABLED)
        self.enter_token(value, "port")
        return WriteResult.ack()

    # -- card reader (MeterCardReader) ------------------------------------------------------

    def insert_card(self, tracks: dict[int, str]) -> None:
        """A card in the reader: the token is wherever the (provisional) card profile says."""
        try:
            digits = self.profile.card.card_profile().token_from(tracks)
        except ValueError:
            digits = tracks.get(self.profile.card.token_track, "")
        with self._lock:
            if not self.powered:
                return  # a reader without supply reads nothing
            self.enter_token(digits, "card")

    # -- side door --------------------------------------------------------------------------

    @property
    def powered(self) -> bool:
        """Whether the meter has supply now (it answers on no carrier without)."""
        with self._lock:
            self._update_locked(self.clock.now())
            return self._powered

    def set_tamper(self) -> None:
        with self._lock:
            self.core.set_tamper()

    def snapshot(self) -> MeterSnapshot:
        with self._lock:
            self._update_locked(self.clock.now())
            s = self.core.state
            return MeterSnapshot(
                powered=self._powered,
                relay_closed=self.relay_closed,
                open_reasons=frozenset(self._open_reasons),
                credit=dict(s.credit),
                credit_wh=self.credit_wh(),
                tid_store=list(s.tid_store),
                krn=s.krn,
                kt=s.kt,
                ti=s.ti,
                sgc=s.sgc,
                ken=s.ken,
                key_fingerprint=s.key.fingerprint,
                mpl=s.mpl,
                mppul=s.mppul,
                tamper=s.tamper,
                pending_kcts=tuple(sorted(s.pending_kcts)),
                entry="".join(self._entry),
                display=self.display_state(),
                last_result=self._last_result,
                lockout_until=self._lockout_until,
                consecutive_rejects=self._rejects,
                energy_wh=self.plant.energy_wh(),
                entries=self._entries,
                defects=self.defects,
                showing_message=self._message is not None,
                tests_pending=len(self._tests),
            )


def create_meter(
    profile: MeterProfile,
    plant: Plant,
    *,
    model: type[SimMeter] | None = None,
    defects: Iterable[str] = (),
    layout: SegmentLayout | None = None,
) -> SimMeter:
    """A meter of ``model`` (default :class:`SimMeter`) with ``defects`` applied."""
    from simlab.defects import device_class

    cls = device_class(model or SimMeter, defects)
    return cls(profile, plant, defects=defects, layout=layout)


def load_model(spec: str) -> type[SimMeter]:
    """A meter model class from ``module:Class`` (a SimMeter subclass)."""
    module_name, _, class_name = spec.partition(":")
    if not module_name or not class_name:
        raise ValueError(f"model {spec!r} is not of the form module:Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"model {spec!r}: cannot import {module_name}: {exc}") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not issubclass(cls, SimMeter):
        raise ValueError(f"model {spec!r}: {class_name} is not a simlab.meter.SimMeter subclass")
    return cls
