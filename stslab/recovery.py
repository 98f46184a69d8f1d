"""Back to rest after a fault: the bench and the meter in a known state before a verdict.

A fault cuts a scenario short at any moment: the keypad robot may have pressed half a
token, the meter may still show a message or run a class-1 test sequence, a lockout may have
begun, an instrument may be out of step with its driver. The next scenario must not judge
that state. So after a scenario ERRORs, and when a run resumes after an interruption, the
runner calls :func:`bring_to_rest` before the next scenario: it stops the keypad robot, sees
the card writer answer, sets the bench baseline, cycles the supply when key change sections
may wait in a meter that drops them on a power loss, lets an unfinished entry time out and a
message, a test sequence or a lockout pass until the display shows the credit at rest,
re-reads the port and sees the load switch where the meter says it is, and enters one
accepted token where rejected keypad entries count towards a lockout (the run of rejections
ends), then waits and reads again. What it did and saw is journalled (``recovery``) and
goes into the record; when the bench does not come back, the next scenario is ERROR with
the reason and the runner tries again before the one after.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from instruments.base import InstrumentError
from instruments.relay import RelayTimeout
from sts.meter import Result
from stslab.campaign import Outcome, Runner, StepFault, StepResult
from stslab.scenario import TokenSpec

#: The annunciator a meter lights while its keypad is locked out (SimLab's layouts, and the
#: name a segment map gives it).
LOCKOUT_ANNUNCIATOR = "keypad_lock"
#: Bench seconds added to the declared times before the display must be at rest: a meter's
#: declared times are nominal, and a camera needs a few frames to accept a display.
REST_MARGIN_S = 10.0
#: A driver that lost its port reports the loss once and opens the port again on its next
#: call: an instrument fault gets a second attempt, this long (real seconds) after the first.
REST_ATTEMPTS = 2
REOPEN_PAUSE_S = 1.0
#: The least real time given to the display to come to rest: it must stay on the credit for
#: a second of real time (CREDIT_DISPLAY_STEADY_REAL_S), and on a fast clock the declared
#: times pass in less than that.
REST_REAL_FLOOR_S = 10.0


@dataclass
class Rest:
    """One return to rest: after what, why, what was done and seen; ``problem`` when the
    bench did not come back."""

    after: str  # the scenario that ERRORed, or "interruption"
    reason: str  # the fault as the driver reported it
    actions: list[str] = field(default_factory=list)
    observations: dict[str, Any] = field(default_factory=dict)
    problem: str | None = None
    started: float = 0.0
    duration_s: float = 0.0
    modelled_s: float = 0.0

    @property
    def at_rest(self) -> bool:
        return self.problem is None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "at_rest": self.at_rest}


class NotAtRest(Exception):
    """The bench or the meter did not come back to rest; the message says what was seen."""


def bring_to_rest(runner: Runner, after: str, reason: str) -> Rest:
    """Bring ``runner``'s bench and meter to rest; every part is tried in order and the first
    that fails ends the attempt (what follows it relies on it)."""
    rest = Rest(after, reason, started=time.time())
    t0 = time.perf_counter()
    m0 = runner.clock.now()
    runner.stop_watching()
    runner._acted()
    for attempt in range(1, REST_ATTEMPTS + 1):
        try:
            _stop_keypad(runner, rest)
            _baseline(runner, rest)
            _no_sections_waiting(runner, rest)
            _display_at_rest(runner, rest)
            _port_and_relay(runner, rest)  # the key the ledger mints under is the meter's
            if _rejections_ended(runner, rest):
                _display_at_rest(runner, rest)  # the token's message passes
                _port_and_relay(runner, rest)
            rest.problem = None
        except InstrumentError as exc:
            rest.problem = str(exc)
            if attempt < REST_ATTEMPTS:
                rest.actions.append(f"attempt {attempt}: {exc}; tried again")
                runner.clock.pause(REOPEN_PAUSE_S)
                continue
        except (StepFault, NotAtRest) as exc:
            rest.problem = str(exc)
        except ValueError as exc:  # a driver refused an argument
            rest.problem = f"refused by the driver: {exc}"
        break
    runner._acted()  # what the next scenario reads is its own
    rest.duration_s = round(time.perf_counter() - t0, 3)
    rest.modelled_s = round(runner.clock.now() - m0, 3)
    return rest


def _stop_keypad(runner: Runner, rest: Rest) -> None:
    keypad = runner.bench.drivers.get("keypad")
    if keypad is None:
        return
    keypad.abort()  # actuators released, a press sequence stopped
    keys = keypad.keys()  # the robot answers a command again
    rest.actions.append("keypad robot stopped (ABORT) and answering")
    rest.observations["keypad_keys"] = len(keys)


def _baseline(runner: Runner, rest: Rest) -> None:
    card = runner.bench.drivers.get("card")
    if card is not None:
        card.identify()  # the card writer answers (nothing else here asks it anything)
        rest.actions.append("card writer answering")
    runner._baseline()
    parts = [r for r in ("load", "source") if r in runner.bench.drivers]
    if parts:
        rest.actions.append("baseline: load off, supply on")


def _no_sections_waiting(runner: Runner, rest: Rest) -> None:
    """No key change section waits in the meter for the rest of its set: one would complete
    the next scenario's first section with a key of both. A section whose answer the fault
    cut off counts as kept; a meter that drops sections on a power loss has its supply
    cycled (one that keeps them keeps them: the ledger follows them)."""
    led = runner.ledger
    in_flight, runner.section_in_flight = runner.section_in_flight, None
    if in_flight is not None:
        led.keep_section(in_flight)
    if not led.held_sections or runner.profile.tokens.kct_kept_over_power_cycle:
        return
    if "source" not in runner.bench.drivers:
        raise NotAtRest("key change sections may wait in the meter, and no AC source can "
                        "cycle its supply to drop them")  # fmt: skip
    held = ", ".join(str(h.subclass) for h in led.held_sections)
    runner.cycle_supply(1.0)
    rest.actions.append(f"supply cycled: key change sections (subclass {held}) dropped")


def _rejections_ended(runner: Runner, rest: Rest) -> bool:
    """A meter with a keypad lockout counts rejected entries, and its next lockout grows,
    until a token is accepted: one accepted token ends whatever run the fault left. True
    when one was entered."""
    p = runner.profile
    if not p.keypad.lockout.enabled or "keypad" not in p.carriers:
        return False
    if "keypad" not in runner.bench.drivers or not p.tokens.services:
        return False
    scratch = StepResult(-1, "back to rest", "recovery", Outcome.PASS)
    register = min(p.tokens.services)
    spec = TokenSpec.model_validate({"class": 0, "subclass": register, "amount": "0.1"})
    answer = runner.enter_token(spec, "keypad", scratch)
    if answer is not Result.ACCEPT:
        seen = answer.label if answer is not None else "unreadable"
        raise NotAtRest(f"a credit token to end the run of rejected entries was answered {seen}")
    rest.actions.append("a credit token accepted: the run of rejected keypad entries ended")
    return True


def _rest_budget_s(runner: Runner) -> float:
    """Bench seconds within which a meter left alone shows its credit again: an entry times
    out, a message and every declared class-1 test display pass, the load switch test ends."""
    p = runner.profile
    d = p.display
    declared = (
        p.keypad.entry_timeout_s
        + d.message_seconds
        + len(p.tokens.supported_tests) * d.test_step_seconds
        + p.load_switch.test_open_s
    )
    return max(2 * declared + REST_MARGIN_S, REST_REAL_FLOOR_S * runner.clock.speed)


def _display_at_rest(runner: Runner, rest: Rest) -> None:
    """Wait until the display shows the credit steadily, then until no lockout is lit."""
    drivers = runner.bench.drivers
    budget = _rest_budget_s(runner)
    if "display" not in drivers or "port" not in drivers:
        # No credit to compare the display with: leave the meter alone for the declared times.
        runner.clock.sleep(budget)
        rest.actions.append(f"waited {budget:g} s for the meter to settle")
        if "display" not in drivers:
            return
        rest.observations["display"] = drivers["display"].read().text
    else:
        scratch = StepResult(-1, "back to rest", "recovery", Outcome.PASS)
        try:
            rest.observations["display"] = runner._wait_for_credit_display(budget, scratch)
        except StepFault as exc:
            raise NotAtRest(f"the meter did not come back to rest: {exc}") from None
        rest.actions.append("waited until the display showed the credit steadily")
    lock = runner.profile.keypad.lockout
    if not lock.enabled:
        return
    display = drivers["display"]
    reading = display.read()
    if LOCKOUT_ANNUNCIATOR not in reading.annunciators:
        return
    deadline = runner.clock.now() + lock.max_seconds + REST_MARGIN_S
    rest.actions.append("waited for the keypad lockout to end")
    while LOCKOUT_ANNUNCIATOR in reading.annunciators:
        if runner.clock.now() >= deadline:
            raise NotAtRest(
                f"the keypad is still locked out after {lock.max_seconds + REST_MARGIN_S:g} s"
            )
        runner.clock.sleep(1.0)
        reading = display.read()
    rest.observations["display"] = reading.text


def _port_and_relay(runner: Runner, rest: Rest) -> None:
    """A fresh readout: the meter's key as the ledger has it; the load switch seen where the
    meter's port says it is."""
    if "port" not in runner.bench.drivers:
        return
    runner._acted()  # the readout the display wait took is seconds old: the meter now
    values = runner.readout()
    regs = runner.profile.port.registers
    seen = {name: values[address].value for name, address in
            (("credit", regs.credit), ("relay", regs.relay), ("last_result", regs.last_result))
            if address in values}  # fmt: skip
    rest.observations["readout"] = seen
    rest.actions.append("port read again")
    _key_as_ledger(runner, values, rest)
    reported = str(seen.get("relay", "")).strip().lower()
    if reported == "open" and _has_credit(seen.get("credit")):
        reported = _wait_for_reclose(runner, rest)
    if runner.bench.relay is None or reported not in ("open", "closed"):
        return
    within = runner.profile.load_switch.test_open_s + REST_MARGIN_S
    try:
        obs = runner.bench.relay.wait(reported, runner.clock.real(within))
    except RelayTimeout as exc:
        raise NotAtRest(
            f"the load switch does not read {reported} as the meter's port says: {exc}"
        ) from None
    rest.observations["relay"] = obs.state
    rest.actions.append(f"load switch seen {obs.state}, as the port reports")


def _has_credit(value: Any) -> bool:
    try:
        return Decimal(str(value)) > 0
    except (InvalidOperation, ValueError):
        return False


def _wait_for_reclose(runner: Runner, rest: Rest) -> str:
    """Open with credit left: a power-limit trip the fault cut into (its load is off now)
    recloses after the declared reconnection time; the next scenario must not judge a
    switch still waiting for it. Returns the state the port reports at the end (a meter that
    recloses only on its enter key stays open, and the scenarios that need it closed press
    it)."""
    ls = runner.profile.load_switch
    regs = runner.profile.port.registers
    deadline = runner.clock.now() + ls.mpl_reconnect_s + ls.test_open_s + REST_MARGIN_S
    reported = "open"
    while reported == "open" and runner.clock.now() < deadline:
        runner.clock.sleep(1.0)
        runner._acted()
        values = runner.readout()
        reported = str(values[regs.relay].value if regs.relay in values else "").strip().lower()
    if reported == "closed":
        rest.actions.append("waited for the load switch to close again (credit left)")
        rest.observations["readout"]["relay"] = values[regs.relay].value
    return reported


def _key_as_ledger(runner: Runner, values: dict[str, Any], rest: Rest) -> None:
    meter, followed = key_as_ledger(runner, values)
    if meter:
        rest.observations["key"] = meter
    if followed:
        rest.actions.append(followed)


def key_as_ledger(runner: Runner, values: dict[str, Any]) -> tuple[dict[str, int], str | None]:
    """The meter's key (KRN, KT, TI in the readout ``values``) must be the one the ledger
    mints under. A key change cut short (by a fault, or a kill the run resumed from) after
    the meter took it is entered in the ledger; any other difference raises
    :class:`NotAtRest` (every token would be misjudged). Returns the meter's key (empty when
    the readout has none) and what was done to the ledger, if anything."""
    regs = runner.profile.port.registers
    try:
        meter = {
            name: int(values[address].value)
            for name, address in (("krn", regs.krn), ("kt", regs.kt), ("ti", regs.ti))
            if address in values
        }
    except ValueError as exc:  # fmt: skip
        raise NotAtRest(f"the readout's key registers are unreadable: {exc}") from None
    if not meter:
        return meter, None
    pending, runner.key_change_pending = runner.key_change_pending, None
    ledger = {name: getattr(runner.ledger.key, name) for name in meter}
    if meter == ledger:
        return meter, None
    if pending is not None and {name: getattr(pending[0], name) for name in meter} == meter:
        runner.ledger.key_installed(*pending)
        return meter, (f"the key change cut short had been taken by the meter: the ledger "
                       f"follows it ({_key_text(meter)})")  # fmt: skip
    raise NotAtRest(f"the meter's key ({_key_text(meter)}) is not the ledger's "
                    f"({_key_text(ledger)})")  # fmt: skip


def _key_text(key: dict[str, int]) -> str:
    return ", ".join(f"{name.upper()} {value}" for name, value in key.items())
