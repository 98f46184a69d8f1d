"""The meter's load switch as the bench sees it: inferred from load-side voltage and current.

A meter's relay has no wire to the harness; what the bench can measure is the voltage and
current after it (the power analyser on the load side). :class:`RelayProbe` turns those samples
into ``closed``/``open``/``unknown`` the way a careful operator would:

* thresholds relative to the supply voltage: a sample reads *closed* above
  ``closed_above`` x supply, *open* below ``open_below`` x supply with (almost) no current, and
  in between it keeps what the previous sample read (hysteresis, so a sagging supply does not
  make the relay chatter); current without voltage, or no supply at all, reads *unknown*;
* a state is believed after ``agree`` consecutive samples read it, so one glitch never flips it;
* a wait reports the transition time: seconds from the call until the first of the agreeing
  samples (the time a sample was asked for), with every sample kept as evidence;
* optional cross-checks (the display's relay annunciator, the meter port's readout) are asked
  once the state is decided; a disagreement is reported in the result, not raised, because the
  verdict on it belongs to the scenario.

Every wait goes through the injected ``clock`` and ``sleep`` (SimLab's fast clock on a
simulated bench), never through the wall clock directly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from instruments.base import InstrumentError, InstrumentTimeout
from instruments.roles import PowerAnalyzer

RelayState = Literal["closed", "open", "unknown"]
STATES: tuple[RelayState, ...] = ("closed", "open", "unknown")
# What one sample says on its own; "between" means between the thresholds.
Reading = Literal["closed", "open", "between", "unknown"]
CrossCheckFn = Callable[[], "str | bool | None"]


@dataclass(frozen=True)
class RelaySample:
    """One analyser sample and what it says about the relay."""

    t_s: float  # when it was asked for, seconds since the call started (probe clock)
    duration_s: float  # how long the analyser took to answer
    voltage_v: float
    current_a: float
    supply_v: float
    reading: Reading  # this sample alone
    state: RelayState  # after hysteresis (a "between" sample keeps the previous state)


@dataclass(frozen=True)
class CrossCheck:
    """What another observer says about the relay, and whether it agrees with the probe."""

    name: str
    reported: RelayState | None  # None: it could not be read
    agrees: bool | None  # None: it could not be read
    detail: str = ""  # why it could not be read


@dataclass(frozen=True)
class RelayObservation:
    """The probe's conclusion with its evidence."""

    state: RelayState
    transition_s: float | None  # waits only: seconds from the call to the first agreeing sample
    started_s: float  # probe clock when the call started; sample times count from it
    samples: tuple[RelaySample, ...]
    cross_checks: tuple[CrossCheck, ...] = ()

    @property
    def samples_taken(self) -> int:
        return len(self.samples)

    @property
    def disagreements(self) -> tuple[CrossCheck, ...]:
        """Cross-checks that read a different state (unreadable ones are not counted)."""
        return tuple(check for check in self.cross_checks if check.agrees is False)

    @property
    def consistent(self) -> bool:
        """Every cross-check was read and agrees with the probe."""
        return all(check.agrees is True for check in self.cross_checks)


class RelayTimeout(InstrumentTimeout):
    """The relay did not reach the awaited state in time; ``observation`` holds the evidence."""

    def __init__(self, message: str, observation: RelayObservation, **where: str | None) -> None:
        super().__init__(message, **where)
        self.observation = observation


class RelayProbe:
    """Relay state from a load-side :class:`instruments.roles.PowerAnalyzer`.

    ``supply_v`` is the supply voltage the thresholds are relative to: a number (the nominal
    voltage the source is set to) or a function read at every sample (the source's
    measurement). ``interval_s`` should not be shorter than the analyser's update interval, or
    consecutive samples repeat one reading. ``cross_checks`` maps a name to a function returning
    ``"closed"``/``"open"`` (or True for closed, False for open, None for unknown); it may raise
    :class:`InstrumentError`, which is reported as unreadable.
    """

    def __init__(
        self,
        analyzer: PowerAnalyzer,
        supply_v: float | Callable[[], float],
        *,
        closed_above: float = 0.8,
        open_below: float = 0.2,
        open_max_current_a: float = 0.05,
        agree: int = 3,
        interval_s: float = 0.1,
        min_supply_v: float = 1.0,
        cross_checks: Mapping[str, CrossCheckFn] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not 0 < open_below < closed_above:
            raise ValueError(
                f"thresholds must satisfy 0 < open_below < closed_above, got "
                f"open_below={open_below!r}, closed_above={closed_above!r}"
            )
        if isinstance(agree, bool) or not isinstance(agree, int) or agree < 1:
            raise ValueError(f"agree must be a positive integer, got {agree!r}")
        if not interval_s > 0:
            raise ValueError(f"interval_s must be positive, got {interval_s!r}")
        if not open_max_current_a >= 0:
            raise ValueError(f"open_max_current_a must be >= 0, got {open_max_current_a!r}")
        if not min_supply_v > 0:
            raise ValueError(f"min_supply_v must be positive, got {min_supply_v!r}")
        if not callable(supply_v) and not (
            isinstance(supply_v, int | float) and supply_v >= min_supply_v
        ):
            raise ValueError(f"supply_v must be >= {min_supply_v:g} V, got {supply_v!r}")
        self.analyzer = analyzer
        self.supply_v = supply_v
        self.closed_above = closed_above
        self.open_below = open_below
        self.open_max_current_a = open_max_current_a
        self.agree = agree
        self.interval_s = interval_s
        self.min_supply_v = min_supply_v
        self.cross_checks = dict(cross_checks or {})
        self.clock = clock
        self.sleep = sleep
        self._trigger: RelayState = "unknown"  # hysteresis memory, sample to sample
        self._state: RelayState = "unknown"  # the last state ``agree`` samples confirmed

    @property
    def last_state(self) -> RelayState:
        """The state the last observation or wait confirmed (no device call)."""
        return self._state

    def state(self) -> RelayState:
        """Take ``agree`` samples; the relay state they confirm (else the last confirmed one)."""
        return self.observe().state

    def observe(self) -> RelayObservation:
        """Take ``agree`` samples, decide, ask the cross-checks."""
        t0 = self.clock()
        samples: list[RelaySample] = []
        for index in range(self.agree):
            if index:
                self.sleep(self.interval_s)
            samples.append(self._take(t0))
        if all(sample.state == samples[0].state for sample in samples):
            self._state = samples[0].state
        self._note(f"relay probe: {self._state} ({len(samples)} samples)")
        return RelayObservation(self._state, None, t0, tuple(samples), self._cross_check())

    def wait_for(self, state: RelayState, timeout_s: float) -> float:
        """Wait until the relay reads ``state``; seconds from the call to the first agreeing
        sample, which must come within ``timeout_s`` (the samples confirming it may follow).
        Raises :class:`RelayTimeout` (an InstrumentTimeout) when it does not."""
        transition = self.wait(state, timeout_s).transition_s
        assert transition is not None
        return transition

    def wait(self, state: RelayState, timeout_s: float) -> RelayObservation:
        """Like :meth:`wait_for`, returning the whole observation with cross-checks."""
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}, got {state!r}")
        if not timeout_s >= 0:
            raise ValueError(f"timeout_s must be >= 0, got {timeout_s!r}")
        t0 = self.clock()
        # The clock bounds the wait; the count also does, should a clock not advance.
        most = math.ceil(timeout_s / self.interval_s) + self.agree + 2
        samples: list[RelaySample] = []
        run_state: RelayState | None = None
        run_start = 0
        while True:
            sample = self._take(t0)
            samples.append(sample)
            if sample.state != run_state:
                run_state, run_start = sample.state, len(samples) - 1
            if len(samples) - run_start >= self.agree:
                self._state = sample.state
                if sample.state == state:
                    transition = samples[run_start].t_s
                    self._note(
                        f"relay probe: {state} after {transition:.3f} s ({len(samples)} samples)"
                    )
                    return RelayObservation(
                        state, transition, t0, tuple(samples), self._cross_check()
                    )
            elapsed = self.clock() - t0
            # A transition seen in time may be confirmed by samples after the deadline.
            confirming = run_state == state
            if (elapsed >= timeout_s and not confirming) or len(samples) >= most:
                break
            self.sleep(self.interval_s if confirming else min(self.interval_s, timeout_s - elapsed))
        observation = RelayObservation(self._state, None, t0, tuple(samples))
        last = samples[-1]
        message = (
            f"the relay did not read {state} within {timeout_s:g} s ({len(samples)} samples; "
            f"last U={last.voltage_v:g} V I={last.current_a:g} A reads {last.state}, "
            f"confirmed state {self._state})"
        )
        self._note(f"relay probe: {message}")
        raise RelayTimeout(
            message,
            observation,
            role="relay_probe",
            address=getattr(self.analyzer, "address", None),
        )

    # ---- internals -----------------------------------------------------------------------

    def _take(self, t0: float) -> RelaySample:
        asked = self.clock()
        reading = self.analyzer.sample()
        took = self.clock() - asked
        supply = float(self.supply_v()) if callable(self.supply_v) else float(self.supply_v)
        verdict = self._classify(reading.voltage_v, reading.current_a, supply)
        if verdict != "between":
            self._trigger = verdict
        return RelaySample(
            asked - t0,
            took,
            reading.voltage_v,
            reading.current_a,
            supply,
            verdict,
            self._trigger,
        )

    def _classify(self, volts: float, amps: float, supply: float) -> Reading:
        if not (math.isfinite(supply) and supply >= self.min_supply_v):
            return "unknown"  # without supply the load side says nothing about the relay
        if volts > self.closed_above * supply:
            return "closed"
        if volts < self.open_below * supply:
            # Current without voltage is no open relay: a wiring or measurement fault.
            return "open" if abs(amps) <= self.open_max_current_a else "unknown"
        return "between"

    def _cross_check(self) -> tuple[CrossCheck, ...]:
        results = []
        for name, check in self.cross_checks.items():
            try:
                reported = _as_state(check())
            except InstrumentError as exc:
                results.append(CrossCheck(name, None, None, str(exc)))
                continue
            agrees = None if reported is None or reported == "unknown" else reported == self._state
            results.append(CrossCheck(name, reported, agrees))
            if agrees is False:
                self._note(f"relay probe: {name} reads {reported}, the probe {self._state}")
        return tuple(results)

    def _note(self, text: str) -> None:
        transcript = getattr(self.analyzer, "transcript", None)
        if transcript is not None:
            transcript.note(text)


def _as_state(value: object) -> RelayState | None:
    """A cross-check's answer as a state: True/"closed", False/"open", None/"unknown"."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "closed" if value else "open"
    if isinstance(value, str) and value.lower() in STATES:
        return value.lower()  # type: ignore[return-value]
    raise ValueError(f"a relay cross-check must return 'closed', 'open', a bool or None: {value!r}")
