"""The reference twin: a compliant meter run beside the meter under test, in lockstep.

:class:`Twin` is :class:`sts.meter.ReferenceMeter` with the DUT profile's declared
parameters and the ledger's key state, plus what the profile declares about the rest of the
meter: the keypad (entry buffer, lockout policy), the result messages, the load switch (zero
credit, maximum power limit with its trip and reconnect times, the class-1 load switch test,
reconnection policy) and credit drawn down by energy. It is fed what the harness does to the
meter (each entry, key, load and supply change, power cycle, tamper) with the bench time it
happened, and the power the analyser measures; asked at a bench time, it answers what a
compliant meter may show then (:class:`~stslab.sideeffect.Allowed` per observable). Pure: no
I/O, no clock.

Declared times are nominal: a meter (or a bench that keeps a short display long enough for a
camera to see) may end a timed state up to ``late_s`` later, and a state that may or may not
have ended is allowed both ways. Where the twin cannot know which way the meter went (a
keypad entry at the end of a lockout, a reject count it did not see), it keeps one candidate
per possibility; :class:`Candidates` keeps the candidates the meter's observations agree with.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from decimal import Decimal

from dut.profile import MeterProfile
from sts.keys import DecoderKey
from sts.meter import (
    CreditAdded,
    CreditCleared,
    EntryResult,
    PowerLimitSet,
    ReferenceMeter,
    Result,
    TestRequested,
)
from stslab.sideeffect import Allowed, Comparison, compare, either, figures_of

WH_PER_UNIT = 100  # one electricity base unit (0.1 kWh)
#: How far (Wh) the twin's credit may be off the meter's at a 0.1 kWh step, beyond what the
#: load draws in its timing slack (energies integrated differently).
STEP_SLACK_WH = 1.0
#: The annunciators the twin predicts (those a layout has are compared).
ANNUNCIATORS = ("relay_open", "credit_low", "tamper", "keypad_lock", "kwh", "currency")
#: Why the display is not compared while the twin cannot know what it shows.
UNKNOWN_VIEW = (
    "a key or an entry came while class-1 test displays showed: what shows until they end "
    "is the meter's own",
    "the twin started again from the meter while its display showed a message or test it "
    "did not see begin",
)
#: At most this many candidates are kept: enough for every lockout length a policy has, times
#: the reject counts and other possibilities a twin started again considers; the meter's next
#: readings prune them. Past it, each candidate keeps its likeliest outcomes first (see
#: :func:`_fair_share`).
MAX_CANDIDATES = 96


@dataclass(frozen=True)
class Range:
    """A bench-time interval in which a timed state may end."""

    start: float
    end: float


@dataclass
class Twin:
    """One candidate compliant meter (see the module docstring)."""

    profile: MeterProfile
    core: ReferenceMeter
    now: float
    late_s: float
    #: how much earlier than the twin has it the meter may have taken a key or an entry (the
    #: twin places keys evenly over the typing and an entry when its carrier answered)
    early_s: float = 0.0
    digits: int = 0  # digit cells of the LCD (an entry shows its last ones); 0: not compared
    powered: bool = True
    credit_lo_wh: float = 0.0  # electricity credit, Wh: a range when a relay state is uncertain
    credit_hi_wh: float = 0.0
    credit_open: bool = False  # opened at zero credit (stays open on a "key" policy)
    power_w: float = 0.0  # what the load draws while the relay is closed
    load_on: bool = False
    tamper_raised: bool = False
    entry: list[str] = field(default_factory=list)
    last_key_at: float | None = None
    last_result: Result | None = None
    message: str | None = None
    message_end: float | None = None
    #: class-1 test displays queued after the message: (control bit, what it shows)
    tests: list[tuple[int, Allowed]] = field(default_factory=list)
    tests_start: float | None = None  # when the first one shows (the message's end)
    tests_end: float | None = None  # when the last one has ended, at the latest
    tests_disturbed: bool = False  # a key or an entry came while they showed
    test_relay: Range | None = None  # when the load switch test has the relay open, at most
    #: started again from the meter while its display showed what the twin did not see begin
    display_unseen_until: float | None = None
    mpl_trip_at: float | None = None  # when the switch opens for the power limit
    #: How much later than mpl_trip_at the trip may come: a load switch test that may hold
    #: the switch open when the load went over the limit puts off the start of the delay.
    mpl_spread: float = 0.0
    mpl_maybe: bool = False  # the load fell below the limit just as it was tripping
    mpl_cycling: bool = False  # still over the limit after a reconnection: trips again
    rejects: int = 0
    lockout_until: float | None = None
    lockout_late: float = 0.0
    lockout_next: float = 0.0
    #: False after a synchronisation: an earlier lockout may have lengthened the next one
    escalation_known: bool = True
    #: lockout lengths the lockout just begun may have instead (escalation not known)
    escalation_forks: list[float] = field(default_factory=list)

    # -- building ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        profile: MeterProfile,
        key: DecoderKey,
        *,
        krn: int,
        kt: int,
        ti: int,
        sgc: int,
        ken: int,
        tid_store: list[int],
        now: float,
        late_s: float,
    ) -> Twin:
        core = ReferenceMeter(key, krn=krn, kt=kt, ti=ti, sgc=sgc, ken=ken,
                              parameters=profile.tokens.parameters())  # fmt: skip
        core.state.tid_store = list(tid_store)
        twin = cls(profile, core, now, late_s)
        twin.lockout_next = profile.keypad.lockout.first_seconds
        return twin

    def fork(self) -> Twin:
        return copy.deepcopy(self)

    def adopt(self, observed: dict[str, str]) -> None:
        """Take what the twin cannot derive from the meter's readout (its credit, tamper flag,
        power limit, last result): the state a campaign finds the meter in."""
        s = self.core.state
        for name, value in observed.items():
            if name == "credit" and 0 in s.credit:
                reading = Decimal(value)
                wh = float(reading) * 1000
                # The readout gives the credit to its last decimal, rounded or cut: the
                # meter's may be up to one unit of that decimal below it.
                unit_wh = 1000 * 10.0 ** min(0, int(reading.as_tuple().exponent))
                self.credit_lo_wh, self.credit_hi_wh = max(0.0, wh - unit_wh), wh
                s.credit[0] = math.ceil(wh / WH_PER_UNIT - 1e-9)
                self.credit_open = wh <= 1e-6
            elif name.startswith("credit."):
                register = int(name.split(".")[1])
                if register in s.credit:
                    scale = 100_000 if register >= 4 else 10
                    s.credit[register] = int(Decimal(value) * scale)
            elif name == "tamper":
                s.tamper = value.strip() == "1"
            elif name == "mpl":
                s.mpl = int(value) or None
            elif name == "result":
                code = int(value)
                self.last_result = Result(code) if code else None

    # -- the passage of time ----------------------------------------------------------------

    def relay_states(self, t: float) -> frozenset[str]:
        """The load switch states a compliant meter may be in at ``t``."""
        if not self.powered:
            return frozenset({"open"})
        states: set[str] = set()
        if self.credit_open or (0 in self.core.state.credit and self.credit_hi_wh <= 1e-6):
            return frozenset({"open"})
        if 0 in self.core.state.credit and self.credit_lo_wh <= 1e-6:
            states.add("open")  # credit runs out somewhere in the power's range
        mpl = self._mpl_states(t)
        test = self._test_states(t)
        if mpl == {"open"} or test == {"open"}:
            return frozenset({"open"})
        states |= mpl | test
        return frozenset(states or {"closed"})

    def _mpl_states(self, t: float) -> set[str]:
        trip = self.mpl_trip_at
        if trip is None or t < trip:
            return {"closed"}
        reconnect = trip + self.profile.load_switch.mpl_reconnect_s
        if self.mpl_cycling or self.mpl_maybe or t < trip + self.mpl_spread + self.late_s:
            return {"open", "closed"}
        if t < reconnect:
            return {"open"}
        return {"open", "closed"}  # reconnecting (and, still over the limit, tripping again)

    def _test_states(self, t: float) -> set[str]:
        r = self.test_relay
        if r is None or t >= r.end:
            return {"closed"}
        if t < r.start - self.early_s:
            return {"closed"}
        return {"open", "closed"}

    def advance(self, t: float) -> None:
        """Bring the twin to bench time ``t``: credit drawn by the load, timers."""
        self._watch_mpl()  # a switch that just closed over the limit starts its trip delay
        while self.now < t:
            step_end = t
            # Credit, in stretches where the relay's possible states do not change.
            for edge in self._edges():
                if self.now < edge < step_end:
                    step_end = edge
            self._consume(step_end - self.now, self.relay_states(self.now))
            self.now = step_end
            self._end_mpl()
            self._watch_mpl()
        if self._entry_timed_out() == {True}:
            self.entry.clear()
        if self.test_relay is not None and self.now >= self.test_relay.end:
            self.test_relay = None
        if self.tests_end is not None and self.now >= self.tests_end:
            self._end_tests()

    def _entry_timed_out(self, t: float | None = None) -> set[bool]:
        """Whether a part-typed entry has been dropped at ``t`` (the time-out may end late)."""
        if not self.entry or self.last_key_at is None:
            return {False}
        t = self.now if t is None else t
        deadline = self.last_key_at + self.profile.keypad.entry_timeout_s
        if t < deadline - self.early_s:
            return {False}
        return {True} if t >= deadline + self.late_s else {True, False}

    def _edges(self) -> list[float]:
        edges = []
        if self.mpl_trip_at is not None:
            trip = self.mpl_trip_at
            back = trip + self.profile.load_switch.mpl_reconnect_s
            edges += [trip, trip + self.late_s, back, back + self.mpl_spread + self.late_s]
        if self.test_relay is not None:
            edges += [self.test_relay.start - self.early_s, self.test_relay.end]
        p = self.power_w
        if p > 0:
            for wh in (self.credit_lo_wh, self.credit_hi_wh):
                if wh > 1e-6:
                    edges.append(self.now + wh * 3600 / p)
        return edges

    def _consume(self, dt: float, states: frozenset[str]) -> None:
        if dt <= 0 or not self.load_on or 0 not in self.core.state.credit:
            return
        wh = self.power_w * dt / 3600
        if "closed" in states:
            self.credit_lo_wh = max(0.0, self.credit_lo_wh - wh)
        if states == {"closed"}:
            self.credit_hi_wh = max(0.0, self.credit_hi_wh - wh)
        if self.credit_hi_wh <= 1e-6 and self.opens_at_zero():
            self.credit_open = True
        self._sync_register()

    def opens_at_zero(self) -> bool:
        return True

    def _sync_register(self) -> None:
        s = self.core.state
        if 0 in s.credit:
            s.credit[0] = math.ceil(self.credit_hi_wh / WH_PER_UNIT - 1e-9)

    def started_over_limit(self) -> None:
        """Started again over the limit since a moment the twin did not see: the switch may
        trip from now until a trip delay from now."""
        if self.mpl_trip_at is None and self._over_limit():
            self.mpl_trip_at, self.mpl_maybe = self.now, True

    def _over_limit(self) -> bool:
        """The load draws more than the limit through the switch (none flows while the
        switch is open for want of credit)."""
        mpl = self.core.state.mpl
        flowing = self.powered and self.load_on and not self.credit_open
        return mpl is not None and flowing and self.power_w > mpl

    def _watch_mpl(self) -> None:
        """Start, keep or end the power limit's trip as the load and the limit change."""
        over = self._over_limit()
        trip = self.mpl_trip_at
        ls = self.profile.load_switch
        # A trip whose reconnection delay has run out may still be kept for the late window
        # (the meter may reconnect a little late): a load over the limit now starts a new one.
        ended = trip is not None and not self.mpl_cycling and self.now >= trip + ls.mpl_reconnect_s
        if over and ended and self.mpl_maybe:
            # When it tripped is not known, so neither is when it reconnected and trips
            # again: either way while the load stays over the limit.
            self.mpl_cycling = True
            return
        if trip is None or (over and ended):
            states = self.relay_states(self.now)
            if over and "closed" in states:
                self.mpl_trip_at = self.now + ls.mpl_trip_delay_s
                self.mpl_maybe = self.mpl_maybe or ended  # the old one may only now be ending
                self.mpl_spread = 0.0
                test = self.test_relay
                if test is not None and test.start - self.early_s < self.mpl_trip_at:
                    # A load switch test may open the switch before the delay ends: no load
                    # flows then, and the delay starts again when the test closes it.
                    self.mpl_spread = max(0.0, test.end + ls.mpl_trip_delay_s - self.mpl_trip_at)
                    self.mpl_maybe = True
            return
        if over:
            return
        if self.mpl_cycling and self.now >= trip:
            # Under the limit again (a lower load, a higher limit) after trips and reconnections
            # at moments the twin does not know: the last trip may have come just now, so the
            # switch may stay open until a reconnection delay from now.
            self.mpl_trip_at, self.mpl_maybe, self.mpl_cycling = self.now, True, False
            return
        if self.now < trip:  # under the limit again before the delay ran out
            self.mpl_trip_at = None
            self.mpl_cycling = False
        elif self.now < trip + self.mpl_spread + self.late_s:
            self.mpl_maybe = True

    def _end_mpl(self) -> None:
        """After the reconnection delay: closed again, or (still over the limit) cycling."""
        trip = self.mpl_trip_at
        if trip is None or not self.powered:
            return  # a meter without supply keeps its trip: it is still open when power returns
        done = trip + self.mpl_spread + self.profile.load_switch.mpl_reconnect_s + self.late_s
        if self.now >= done:
            if self._over_limit():
                self.mpl_cycling = True
            else:
                self.mpl_trip_at, self.mpl_maybe, self.mpl_cycling = None, False, False

    # -- what the harness does ----------------------------------------------------------------

    def enter(self, t: float, digits: str, carrier: str) -> list[Twin]:
        """A token entry (all its keys on the keypad, the port's write, a card). Returns the
        candidates it leaves (more than this one where the meter may have gone either way)."""
        self.advance(t)
        if not self.powered:
            return [self]
        if carrier == "keypad":  # digits already in the entry buffer come first
            return self.keys(t, [*digits, self.profile.keypad.enter_key])
        return self._process_either(digits, carrier)

    def keys(self, t: float, keys: list[str], hold_ms: float | None = None) -> list[Twin]:
        """Keys pressed one after the other on the keypad (ENTER ends an entry), each held
        ``hold_ms`` (None: long enough); a press shorter than the declared shortest one is not
        registered."""
        self.advance(t)
        if hold_ms is not None and hold_ms < self.profile.keypad.min_hold_ms:
            return [self]
        twins = [self]
        kp = self.profile.keypad
        for key in keys:
            nxt: list[Twin] = []
            for twin in twins:
                if not twin.powered:
                    nxt.append(twin)
                    continue
                if twin._entry_timed_out() == {True, False}:
                    # The key came just as the entry's time-out ended: the meter may have
                    # dropped the entry first, or not.
                    dropped = twin.fork()
                    dropped.entry.clear()
                    twins.append(dropped)  # pressed in its turn, after this one
                twin.last_key_at = t
                twin._key_pressed()
                if key == kp.backspace_key:
                    if twin.entry:
                        twin.entry.pop()
                    nxt.append(twin)
                elif key == kp.enter_key:
                    digits = "".join(twin.entry)
                    twin.entry.clear()
                    if not digits:
                        twin._reconnect_by_key()
                        nxt.append(twin)
                    else:
                        nxt += twin._keypad_enter(digits)
                else:
                    if key.isdigit():
                        twin.entry.append(key)
                    nxt.append(twin)
            twins = nxt
        return twins

    def _key_pressed(self) -> None:
        """A key press ends the message on show (class-1 test displays go on, but what shows
        while they do is then the meter's own)."""
        if self.tests:
            self.tests_disturbed = True
        if (
            self.message is not None
            and self.message_end is not None
            and self.now < (self.message_end + self.late_s)
        ):
            self.message = None
            self.message_end = None

    def _keypad_enter(self, digits: str) -> list[Twin]:
        state = self._lockout_state()
        if state == {"locked"}:
            self._locked_out()
            return [self]
        if state == {"locked", "free"}:
            other = self.fork()
            other._locked_out()
            # Taken: the lockout has ended, whenever it did; later entries find it over too.
            self.lockout_until = None
            taken = self._process_either(digits, "keypad")
            forks = self._lockout_forks()
            return [*taken, other, *forks]
        taken = self._process_either(digits, "keypad")
        return [*taken, *self._lockout_forks()]

    def _process_either(self, digits: str, carrier: str) -> list[Twin]:
        """The entry processed; where the credit drawn down is just at a 0.1 kWh step (the
        twin's energy and times are the analyser's and its own reckoning, a fraction of a Wh
        off the meter's), also with the register one unit lower, kept if the answer differs
        (a credit token at the declared limit)."""
        lower = self._register_one_lower()
        self._process(digits, carrier)
        if lower is None:
            return [self]
        lower._process(digits, carrier)
        return [self] if lower.last_result == self.last_result else [self, lower]

    def _register_one_lower(self) -> Twin | None:
        s = self.core.state
        if 0 not in s.credit or not self.load_on or self.power_w <= 0:
            return None
        slack_wh = STEP_SLACK_WH + self.power_w * (self.early_s + self.late_s) / 3600
        lower = math.ceil((self.credit_lo_wh - slack_wh) / WH_PER_UNIT - 1e-9)
        if not 0 <= lower < s.credit[0]:
            return None
        other = self.fork()
        other.core.state.credit[0] = lower
        other.credit_lo_wh = other.credit_hi_wh = min(self.credit_lo_wh, lower * WH_PER_UNIT)
        return other

    def _lockout_forks(self) -> list[Twin]:
        """One candidate for each other length the lockout just begun may have."""
        forks = []
        for length in self.escalation_forks:
            other = self.fork()
            other.escalation_forks = []
            other._lock_for(length)
            forks.append(other)
        self.escalation_forks = []
        return forks

    def _lock_for(self, length: float) -> None:
        policy = self.profile.keypad.lockout
        self.lockout_until = self.now + length
        self.lockout_late = self.late_s
        self.lockout_next = min(length * policy.factor, policy.max_seconds)

    def _lockout_lengths(self) -> list[float]:
        """Every length a lockout of this policy can have: first, first x factor, … max."""
        policy = self.profile.keypad.lockout
        lengths = [policy.first_seconds]
        while policy.factor > 1 and lengths[-1] < policy.max_seconds and len(lengths) < 32:
            lengths.append(min(lengths[-1] * policy.factor, policy.max_seconds))
        return lengths

    def _lockout_state(self) -> set[str]:
        until = self.lockout_until
        if until is None or self.now >= until + self.lockout_late:
            return {"free"}
        if self.now < until - self.early_s:
            return {"locked"}
        return {"locked", "free"}

    def _locked_out(self) -> None:
        self.last_result = Result.LOCKOUT
        self._show(Result.LOCKOUT)

    def _reconnect_by_key(self) -> None:
        if self.credit_open and self.credit_lo_wh > 1e-6:
            self.credit_open = False

    def _process(self, digits: str, carrier: str) -> None:
        if self.tests:  # a new message comes between the test displays
            self.tests_disturbed = True
        result = self.core.enter(digits)
        self.last_result = result.result
        for effect in result.effects:
            self._apply(effect)
        if carrier == "keypad":
            self._count_for_lockout(result)
        self._show(result.result)
        if self.tests and self.tests_end is not None and self.message_end is not None:
            # The test displays left go on after this message, at the latest.
            d = self.profile.display
            left = self.message_end + self.late_s
            left += len(self.tests) * (d.test_step_seconds + self.late_s)
            self.tests_end = max(self.tests_end, left)
        r = self.test_relay
        if r is not None and self.message_end is not None and self.now < r.start + self.late_s:
            # The load switch test had not begun (or only just): it begins after this message,
            # at the latest; surely not begun, not before it either.
            ls = self.profile.load_switch
            end = self.message_end + ls.test_open_s + 3 * self.late_s
            start = r.start if self.now >= r.start - self.early_s else self.message_end
            self.test_relay = Range(start, max(r.end, end))
        if result.effects and isinstance(result.effects[0], TestRequested):
            self._queue_tests(result.effects[0])
        self._watch_mpl()

    def _apply(self, effect: object) -> None:
        s = self.core.state
        if isinstance(effect, CreditAdded) and effect.register == 0:
            self.credit_lo_wh += effect.amount * WH_PER_UNIT
            self.credit_hi_wh += effect.amount * WH_PER_UNIT
            self._sync_register()
            if self.profile.load_switch.reconnect_on_credit == "auto":
                self.credit_open = False
        elif isinstance(effect, CreditCleared) and 0 in effect.registers:
            self.credit_lo_wh = self.credit_hi_wh = 0.0
            s.credit[0] = 0
            self.credit_open = True
        elif isinstance(effect, PowerLimitSet):
            self._watch_mpl()

    def _count_for_lockout(self, result: EntryResult) -> None:
        policy = self.profile.keypad.lockout
        if result.result.accepted:
            self.rejects = 0
            self.lockout_next = policy.first_seconds
            self.escalation_known = True
            return
        self.rejects += 1
        if policy.enabled and self.rejects >= policy.after_rejects:
            if not self.escalation_known:
                # Lockouts the twin did not see may have lengthened this one: a candidate for
                # each length the policy has (the meter's lock annunciator picks).
                self.escalation_forks = [n for n in self._lockout_lengths()
                                         if n != self.lockout_next]  # fmt: skip
                self.escalation_known = True
            self._lock_for(self.lockout_next)
            self.rejects = 0

    def _show(self, result: Result) -> None:
        self.message = self.profile.display.vocabulary[int(result)]
        self.message_end = self.now + self.profile.display.message_seconds

    def _queue_tests(self, request: TestRequested) -> None:
        d, ls = self.profile.display, self.profile.load_switch
        assert self.message_end is not None
        # Each display may start late by up to late_s after the one before.
        earlier = len(self.tests)
        self.tests += [(bit, self._test_shows(bit)) for bit in request.tests]
        n = len(self.tests)
        self.tests_start = self.message_end
        self.tests_end = self.message_end + n * (d.test_step_seconds + self.late_s) + self.late_s
        if 0 in request.tests:
            # The load switch test comes first of its request, after the message, and after
            # the displays an earlier request may still have queued (the twin does not count
            # them off one by one: from none to all of them).
            start = self.message_end
            last = start + earlier * (d.test_step_seconds + self.late_s)
            test = Range(start, last + ls.test_open_s + 2 * self.late_s)
            if self.test_relay is not None:  # an earlier test may still hold the switch open
                test = Range(min(self.test_relay.start, test.start),
                             max(self.test_relay.end, test.end))  # fmt: skip
            self.test_relay = test

    def load(self, t: float, on: bool, power_w: float | None) -> None:
        self.advance(t)
        was_over = self._over_limit()
        self.load_on = on
        if power_w is not None:
            self.power_w = power_w
        trip = self.mpl_trip_at
        left_limit = was_over and not self._over_limit()
        if left_limit and self.mpl_maybe and trip is not None and t >= trip:
            # Over the limit until now with a trip whose moment the twin does not know: it may
            # have come just now, so the switch may stay open until a reconnection delay from
            # now (a cycling trip leaving the limit is _watch_mpl's, whatever ends it).
            self.mpl_trip_at, self.mpl_cycling = t, False
        self._watch_mpl()

    def measured_power(self, t: float, power_w: float) -> None:
        """The analyser's power while the relay is closed: what the load draws."""
        self.advance(t)
        if self.load_on and power_w > 0:
            self.power_w = power_w

    def supply(self, t: float, on: bool) -> None:
        self.advance(t)
        if on and not self.powered:
            self.powered = True
            self._watch_mpl()
        elif not on and self.powered:
            self.powered = False
            self.entry.clear()
            self.message = self.message_end = None
            # The test displays are lost; a load switch test already open keeps its time.
            self._end_tests()
            if self.mpl_trip_at is not None and self.now < self.mpl_trip_at:
                self.mpl_trip_at = None  # a trip still counting down starts again; one that
                self.mpl_cycling = False  # happened keeps its reconnection delay
            self.core.power_cycle()

    def tamper(self, t: float) -> None:
        self.advance(t)
        self.core.set_tamper()

    # -- what it predicts ---------------------------------------------------------------------

    def predict(self, t: float, tolerance_kwh: Decimal) -> dict[str, Allowed]:
        """What a compliant meter may show at ``t`` for each observable."""
        self.advance(t)
        s = self.core.state
        out: dict[str, Allowed] = {}
        if not self.powered:
            return {"relay": Allowed.exactly("open")}
        out["result"] = Allowed.exactly(f"{int(self.last_result or 0):02d}")
        for register, units in s.credit.items():
            if register == 0:
                lo = Decimal(str(round(self.credit_lo_wh / 1000, 4)))
                hi = Decimal(str(round(self.credit_hi_wh / 1000, 4)))
                shown = f"{lo:.3f}" if lo == hi else f"{lo:.3f} to {hi:.3f}"
                out["credit"] = Allowed.between(lo - tolerance_kwh, hi + tolerance_kwh,
                                                f"{shown} ± {tolerance_kwh} kWh")  # fmt: skip
            else:
                scale = 100_000 if register >= 4 else 10
                value = Decimal(units) / scale
                out[f"credit.{register}"] = Allowed.between(value, value, str(value))
        out["krn"] = Allowed.exactly(str(s.krn))
        out["kt"] = Allowed.exactly(str(s.kt))
        out["ti"] = Allowed.exactly(f"{s.ti:02d}")
        out["ken"] = Allowed.exactly(str(s.ken))
        out["mpl"] = Allowed.exactly("0" if s.mpl is None else str(s.mpl))
        out["tamper"] = Allowed.exactly(str(int(s.tamper)))
        relay = self.relay_states(t)
        out["relay"] = Allowed.exactly(*sorted(relay))
        out.update(self._display(t, relay))
        return out

    def _display(self, t: float, relay: frozenset[str]) -> dict[str, Allowed]:
        """The display's text and annunciators: what any of the views it may show at ``t``
        allows (a timed view may end a little late)."""
        live = self._live_annunciators(relay)
        views = [self._view(view, live) for view in self._views(t)]
        out = views[0]
        for view in views[1:]:
            out = {name: either(a, view[name]) for name, a in out.items()}
        return out

    def _live_annunciators(self, relay: frozenset[str]) -> dict[str, Allowed]:
        both = Allowed.exactly("on", "off")
        out: dict[str, Allowed] = {}
        if 0 in self.core.state.credit:
            low = self.profile.display.credit_low_threshold * WH_PER_UNIT
            lo_low, hi_low = self.credit_lo_wh < low, self.credit_hi_wh < low
            out["credit_low"] = Allowed.exactly(_on(lo_low)) if lo_low == hi_low else both
        else:
            out["credit_low"] = Allowed.not_known("the credit-low threshold is declared in "
                                                  "kWh; this meter keeps no electricity "
                                                  "credit")  # fmt: skip
        out["tamper"] = Allowed.exactly(_on(self.core.state.tamper))
        out["relay_open"] = Allowed.exactly(_on(relay == {"open"})) if len(relay) == 1 else both
        lock = self._lockout_state()
        out["keypad_lock"] = Allowed.exactly(_on(lock == {"locked"})) if len(lock) == 1 else both
        return out

    def _views(self, t: float) -> list[tuple[str, int]]:
        """What the display may show at ``t``: ("message" | "entry" | "rest", 0), ("test",
        index into the queued test displays) or ("unknown", index into ``UNKNOWN_VIEW``)."""
        late = self.late_s
        message_on = self.message is not None and self.message_end is not None
        if self.display_unseen_until is not None and t < self.display_unseen_until:
            return [("unknown", 1)]
        # At rest: a part-typed entry, or the credit once it has timed out (or both).
        rest = [("rest", 0) if dropped else ("entry", 0) for dropped in
                sorted(self._entry_timed_out(t))]  # fmt: skip
        if self.tests and self.tests_start is not None:
            if self.tests_disturbed:
                return [("unknown", 0)]
            step = self.profile.display.test_step_seconds
            start = self.tests_start - self.early_s
            views = [("message", 0)] if message_on and t < start + late + self.early_s else []
            for i in range(len(self.tests)):
                # Display i starts no earlier than declared and ends at most late_s later
                # than declared after each display before it.
                if start + i * step <= t < start + late + (i + 1) * (step + late):
                    views.append(("test", i))
            if t >= start + len(self.tests) * step:
                views += rest
            return views or rest
        if message_on and self.message_end is not None and t < self.message_end - self.early_s:
            return [("message", 0)]
        if message_on and self.message_end is not None and t < self.message_end + late:
            return [("message", 0), *rest]
        return rest

    def _view(self, view: tuple[str, int], live: dict[str, Allowed]) -> dict[str, Allowed]:
        kind, index = view
        off = Allowed.exactly("off")
        units = {"kwh": off, "currency": off}  # a unit is lit with a quantity in it
        text: Allowed
        if kind == "unknown":
            unknown = Allowed.not_known(UNKNOWN_VIEW[index])
            return {"display": unknown, **{f"annunciator.{n}": unknown for n in ANNUNCIATORS}}
        if kind == "message":
            text = Allowed.exactly(self.message or "")
        elif kind == "test":
            bit, text = self.tests[index]
            if bit == 1:  # the information display: every segment and annunciator lit
                on = Allowed.exactly("on")
                return {"display": text, **{f"annunciator.{n}": on for n in ANNUNCIATORS}}
            if bit == 2:
                units["kwh"] = Allowed.exactly("on")
        elif kind == "entry" and self.entry:
            text = (Allowed.exactly("".join(self.entry[-self.digits :])) if self.digits else
                    Allowed.not_known("the LCD layout's digit cells are not known"))  # fmt: skip
        else:
            text, units = self._credit_view()
        return {"display": text, **{f"annunciator.{n}": a for n, a in (live | units).items()}}

    def _credit_view(self) -> tuple[Allowed, dict[str, Allowed]]:
        """The display at rest: the credit (electricity first, else the lowest register)."""
        credit = self.core.state.credit
        on, off = Allowed.exactly("on"), Allowed.exactly("off")
        if 0 in credit:
            # The credit display shows 0.1 kWh steps: one step of the last digit, as a
            # wait for the credit display judges it.
            lo = Decimal(str(round(self.credit_lo_wh / 1000, 4))) - Decimal("0.1")
            hi = Decimal(str(round(self.credit_hi_wh / 1000, 4)))
            shown = f"the credit, {max(lo, Decimal(0)):.1f} to {hi:.1f} kWh"
            return Allowed.between(lo, hi, shown), {"kwh": on, "currency": off}
        register = min(credit, default=None)
        if register is not None and register >= 4:
            value = Decimal(credit[register]) / 100_000
            cent = Decimal("0.01")
            shown = f"the credit, {value:.2f}"
            return Allowed.between(value - cent, value + cent, shown), {"kwh": off, "currency": on}
        why = "the meter's credit display of a water, gas or time register is its own"
        unknown = Allowed.not_known(why)
        return unknown, {"kwh": unknown, "currency": unknown}

    def _test_shows(self, bit: int) -> Allowed:
        """What the class-1 test display for ``bit`` shows: its wording is the meter's own,
        its figures (REFERENCE §9.4) are the meter's state as the test was asked for."""
        s = self.core.state
        if bit == 1:
            if not self.digits:
                return Allowed.not_known("the LCD layout's digit cells are not known")
            return Allowed.exactly("8." * self.digits)
        figures: dict[int, tuple[tuple[str, ...], str]] = {
            2: (("*",), "the cumulative energy"),
            3: ((str(s.krn), str(s.kt)), f"KRN {s.krn} and KT {s.kt}"),
            4: ((str(s.ti),), f"TI {s.ti:02d}"),
            6: ((str(s.mpl),) if s.mpl is not None else (), f"the power limit {s.mpl or 'none'}"),
            7: ((str(int(s.tamper)),), f"the tamper status {int(s.tamper)}"),
            8: (("*",), "the instantaneous power"),
            9: (figures_of(self.profile.display.version_text),
                f"the software version {self.profile.display.version_text}"),
            10: ((str(s.mppul),) if s.mppul is not None else (),
                 f"the phase power unbalance limit {s.mppul or 'none'}"),
        }  # fmt: skip
        if bit not in figures:
            what = {0: "the load switch test (its relay is compared)", 5: "the token reader test"}
            return Allowed.not_known(f"the text of {what.get(bit, f'test {bit}')} is the "
                                     "meter's own")  # fmt: skip
        shows, what = figures[bit]
        if self.digits and any(len(f.replace(".", "")) > self.digits for f in shows):
            return Allowed.not_known(f"{what} has more digits than the LCD has cells")
        return Allowed.showing(shows, f"a test display showing {what}")

    def _end_tests(self) -> None:
        self.tests = []
        self.tests_start = self.tests_end = None
        self.tests_disturbed = False


def _on(flag: bool) -> str:
    return "on" if flag else "off"


def _fair_share(outcomes: list[list[Twin]], cap: int) -> list[Twin]:
    """The outcomes of every candidate, at most ``cap`` of them: past it each candidate keeps
    its first outcomes (the entry taken, then locked out, then the lockout lengths it may
    have) before any keeps a later one, so no earlier possibility is lost to the many forks
    of one."""
    ranked = [(rank, n) for n, out in enumerate(outcomes) for rank in range(len(out))]
    if len(ranked) > cap:
        ranked = sorted(sorted(ranked)[:cap], key=lambda rn: (rn[1], rn[0]))
    return [outcomes[n][rank] for rank, n in ranked]


# --- candidates in lockstep ----------------------------------------------------------------


class Candidates:
    """The twin's candidates, fed together, kept by what the meter shows."""

    def __init__(self, twin: Twin) -> None:
        self.candidates = [twin]

    def feed(self, fn: str, *args: object) -> None:
        outcomes: list[list[Twin]] = []
        for twin in self.candidates:
            out = getattr(twin, fn)(*args)
            outcomes.append(out if isinstance(out, list) else [twin])
        self.candidates = _fair_share(outcomes, MAX_CANDIDATES)

    def compare(
        self,
        t_first: float,
        t_last: float,
        observed: dict[str, str],
        *,
        tolerance_kwh: Decimal,
        off: dict[str, str],
        before: dict[str, str],
        cause: str,
    ) -> Comparison:
        """The meter (read from ``t_first`` to ``t_last``) against each candidate; the
        candidates with the fewest differences stay (a meter that agrees with one possibility
        has taken that one)."""
        scored = []
        for twin in self.candidates:
            allowed = twin.predict(t_first, tolerance_kwh)
            later = twin.predict(t_last, tolerance_kwh)
            # Known at both ends of the reading: either; unknown at one end: not compared.
            allowed = {n: either(a, later[n]) for n, a in allowed.items() if n in later}
            scored.append((compare(allowed, observed, off=off, before=before, cause=cause), twin))
        fewest = min(len(c.differences) for c, _ in scored)
        kept = [(c, tw) for c, tw in scored if len(c.differences) == fewest]
        self.candidates = [tw for _, tw in kept]
        return kept[0][0]

    def power(self, t: float, power_w: float) -> None:
        for twin in self.candidates:
            twin.measured_power(t, power_w)

    @property
    def first(self) -> Twin:
        return self.candidates[0]
