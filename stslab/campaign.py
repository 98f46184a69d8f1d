"""The certification campaign: scenario steps against a meter on a bench, judged.

For each step: mint through the token factory with the DUT's key state and ledger, inject
through the chosen carrier, observe through the drivers, judge each expectation with the
stated decision rule. Outcomes: PASS, FAIL, ERROR (a fault: device, time-out, unreadable
display — never a verdict on the meter), SKIP (does not apply, with the reason). Retries
are recorded. Every step result goes to the journal as it happens.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from dut.profile import MeterProfile
from instruments.base import InstrumentError, ProtocolViolation
from sts.meter import Result
from stslab import uncertainty as gum
from stslab.clock import BenchClock
from stslab.declared import DeclaredError, declared_value, expand, resolve
from stslab.factory import MintError, TokenFactory
from stslab.ledger import HeldSection
from stslab.lockstep import TwinCheck
from stslab.scenario import (
    SHORTEST_HOLD_MS,
    Expect,
    FillStep,
    KeyChangeStep,
    KeysStep,
    LoadStep,
    ObserveStep,
    OperatorStep,
    PowerCycleStep,
    RawStep,
    Scenario,
    SourceStep,
    TestDisplay,
    TokenSpec,
    TokenStep,
    WaitStep,
    parse_result,
)
from stslab.uncertainty import Budget, Decision, DecisionRule, InstrumentCalibration

#: Steps that enter something the meter answers on its display.
#: KCT subclasses in the order a set's sections are numbered (2 for a 64-bit key, 4 for 128).
KCT_SUBCLASSES = (3, 4, 8, 9)
ENTRY_STEPS = frozenset({"token", "key_change", "raw", "keys"})
#: How long the harness has the keypad robot hold each key and wait between keys (ms), unless a
#: keys step says otherwise.
KEY_HOLD_MS, KEY_GAP_MS = 80, 120

DECISION_RULE = gum.rule_statement(DecisionRule.SIMPLE)
#: How old (bench seconds) the last step's closing readout may be to serve as the next step's
#: "before": no action came between, and in 1 s even a 100 A load moves credit by 0.007 kWh,
#: a seventh of the default tolerance.
READOUT_REUSE_S = 1.0
#: The least real time the credit display must stay unchanged to count as the meter being
#: back at rest (a camera sees several frames; a person would watch as long).
CREDIT_DISPLAY_STEADY_REAL_S = 1.0
#: How much longer than its declared time (and tolerance) a display is watched, in the
#: observer's seconds, to see it go (or to see that it stays too long).
DISPLAY_TIME_SLACK_S = 2.0
NOMINAL_SUPPLY_V = 230.0
NOMINAL_FREQUENCY_HZ = 50.0
_NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?")


class Outcome(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    ERROR = "ERROR"
    SKIP = "SKIP"


def worst(outcomes: list[Outcome]) -> Outcome:
    for o in (Outcome.ERROR, Outcome.FAIL, Outcome.PASS):
        if o in outcomes:
            return o
    return Outcome.SKIP


@dataclass
class Check:
    """One expectation judged: what was expected, what was observed, the verdict."""

    name: str
    expected: str
    observed: str
    outcome: Outcome
    unit: str | None = None
    detail: str = ""
    #: The judged value's uncertainty budget (numeric checks).
    uncertainty: dict[str, Any] | None = None
    #: Inside the tolerance but within U of its limit (guarded acceptance): not accepted.
    guard_band: bool = False


@dataclass
class StepResult:
    index: int
    label: str
    kind: str
    outcome: Outcome
    action: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    observations: dict[str, Any] = field(default_factory=dict)
    #: Numeric observation name -> its uncertainty budget.
    measurements: dict[str, dict[str, Any]] = field(default_factory=dict)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    retries: list[str] = field(default_factory=list)
    error: str | None = None
    started: float = 0.0
    duration_s: float = 0.0
    modelled_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ScenarioResult:
    id: str
    title: str
    group: str
    clauses: list[str]
    outcome: Outcome
    skip_reason: str | None = None
    steps: list[StepResult] = field(default_factory=list)
    started: float = 0.0
    duration_s: float = 0.0
    modelled_s: float = 0.0
    source_file: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class StepFault(Exception):
    """A fault inside a step (the step is ERROR)."""


# --- what a DUT declares ---------------------------------------------------------------


def dut_features(profile: MeterProfile) -> set[str]:
    t = profile.tokens
    feats = set()
    if t.key_expiry:
        feats.add("key_expiry")
    if t.supports_mppul:
        feats.add("mppul")
    if t.supports_tariff_rate:
        feats.add("tariff_rate")
    if t.supports_water_meter_factor:
        feats.add("water_meter_factor")
    if profile.keypad.lockout.enabled:
        feats.add("lockout")
    feats.add("kct_4" if profile.key.ea == "11" else "kct_2")
    feats.add("reconnect_" + profile.load_switch.reconnect_on_credit)
    if t.kct_kept_over_power_cycle:
        feats.add("kct_kept")
    return feats


def not_applicable(scenario: Scenario, profile: MeterProfile, carrier: str) -> str | None:
    """Why ``scenario`` does not apply to this DUT (None when it does)."""
    a = scenario.applies
    missing = [c for c in a.carriers if c not in profile.carriers]
    if missing:
        return f"the meter declares no {', '.join(missing)} carrier"
    if carrier not in profile.carriers:
        return f"the meter declares no {carrier} carrier"
    feats = dut_features(profile)
    absent = [f for f in a.features if f not in feats]
    if absent:
        return f"the meter does not declare {', '.join(absent)}"
    present = [f for f in a.absent if f in feats]
    if present:
        return f"applies only to meters without {', '.join(present)}"
    unsupported = [t for t in a.tests if t not in profile.tokens.supported_tests]
    if unsupported:
        return f"class-1 test(s) {unsupported} not declared as supported"
    services = [s for s in a.services if s not in profile.tokens.services]
    if services:
        return f"service register(s) {services} not declared"
    if a.ea and profile.key.ea not in a.ea:
        return f"applies to EA{'/'.join(a.ea)}, the meter uses EA{profile.key.ea}"
    return None


# --- the bench as the runner sees it -----------------------------------------------------


@dataclass
class BenchHandles:
    """The opened drivers by role, the bench clock, and how to ask the operator."""

    drivers: dict[str, Any]
    clock: BenchClock
    simulated: bool = False
    operator: Callable[[str], None] | None = None
    relay: Any = None  # instruments.relay.RelayProbe
    #: What a simulated bench does in the operator's place (e.g. raise_tamper).
    sim_actions: dict[str, Callable[[], None]] = field(default_factory=dict)
    #: Each calibrated instrument's uncertainty statements, by role (from the bench file).
    calibrations: dict[str, InstrumentCalibration] = field(default_factory=dict)
    #: Whether bench time is exact (SimLab's virtual time: no carrier or observer latency).
    exact_time: bool = False
    #: Declared times (profile path, or a prefix of paths) the bench keeps at least this many
    #: real seconds (SimLab's floors on a fast clock): shorter ones cannot be judged here.
    real_floors: dict[str, float] = field(default_factory=dict)

    def get(self, role: str) -> Any:
        driver = self.drivers.get(role)
        if driver is None:
            raise StepFault(f"the bench has no {role} instrument")
        return driver


class DisplayWatch:
    """Reads the display continuously through an action, as a lab's camera records it.

    A meter shows a result for a few seconds; through a slow carrier (the optical port's
    300-baud sign-on, a card presentation) or on a fast simulated clock that is shorter than
    the action itself, so one read after the action can miss it. The watch keeps every
    distinct stable reading with the time it was accepted.
    """

    def __init__(self, display: Any, read_timeout_s: float = 0.5) -> None:
        import threading

        self.display = display
        self.read_timeout_s = read_timeout_s
        self.readings: list[tuple[float, Any]] = []
        self.faults: list[str] = []
        #: The longest time between two completed reads (real s): a change is seen at most
        #: this late, the sampling interval of a time taken from this watch.
        self.poll_s = 0.0
        self._last_done: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="display-watch", daemon=True)

    def start(self) -> DisplayWatch:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                reading = self.display.read(self.read_timeout_s)
            except InstrumentError as exc:
                self.faults.append(str(exc))
                if len(self.faults) > 20:
                    return
                continue
            # A reading counts from when it was accepted: a read begun during typing ends
            # on the first display that stays still, the meter's answer.
            done = time.monotonic()
            if self._last_done is not None:
                self.poll_s = max(self.poll_s, done - self._last_done)
            self._last_done = done
            last = self.readings[-1][1] if self.readings else None
            if last is None or canonical_text(last.text) != canonical_text(reading.text):
                self.readings.append((done, reading))

    def stop(self) -> list[tuple[float, Any]]:
        self._stop.set()
        self._thread.join(timeout=self.read_timeout_s + 2.0)
        return list(self.readings)

    def wait_first(self, timeout_s: float = 3.0) -> None:
        """Block until the first reading (or a fault) is in."""
        deadline = time.monotonic() + timeout_s
        while not (self.readings or self.faults) and time.monotonic() < deadline:
            time.sleep(0.005)

    def since(self, t: float) -> list[Any]:
        return [r for done, r in self.readings if done >= t]

    def wait_change(self, deadline: float) -> None:
        """Let the reading thread work a poll interval (never past ``deadline``)."""
        time.sleep(max(0.0, min(0.01, deadline - time.monotonic())))


def watch_display(display: Any) -> Any:
    """A running watch on ``display``: the reader's own when it has one (SimLab's virtual
    camera records every display change as virtual time passes), else a reading thread."""
    own = getattr(display, "watch", None)
    return own() if callable(own) else DisplayWatch(display).start()


def canonical_text(text: str) -> str:
    """Display text as a seven-segment display can tell it apart (O=0, S=5), trimmed."""
    return " ".join(text.replace("O", "0").replace("S", "5").split())


class Runner:
    """Runs scenarios against one DUT on one bench."""

    def __init__(
        self,
        profile: MeterProfile,
        bench: BenchHandles,
        factory: TokenFactory,
        journal: Any = None,
        on_step: Callable[[Scenario, StepResult], None] | None = None,
        rule: DecisionRule = DecisionRule.SIMPLE,
    ) -> None:
        self.profile = profile
        self.rule = rule
        self.bench = bench
        self.factory = factory
        self.ledger = factory.ledger
        self.journal = journal
        self.on_step = on_step
        self.clock = bench.clock
        reverse: dict[str, list[Result]] = {}
        for code, text in profile.display.vocabulary.items():
            reverse.setdefault(canonical_text(text), []).append(Result(code))
        self._vocabulary = reverse
        self._readout_cache: dict[str, Any] | None = None
        self._segment_map: Any = None
        self._readout_at: float | None = None  # bench time of the cached readout
        self._watch: DisplayWatch | None = None
        self._inject_started: float | None = None
        self._lingering: str | None = None
        self._margin_s = 0.0  # the running scenario's timing margin on this bench
        #: When each step's last entry ended (observer's time), for waits ``since`` it.
        self._entry_ends: dict[str, float] = {}
        #: A ``wait`` with ``since`` placed a probe: the step right after it is the probe
        #: (``_probe_placed`` while it runs), whose carrier must not take longer than planned.
        self._probe_placing: str | None = None
        self._probe_placed: str | None = None
        #: How much longer than their hold and gap the keys of the running step took, and of
        #: each step an entry ended in (a probe's anchor known late moves the probe too).
        self._keys_late = 0.0
        self._entry_late: dict[str, float] = {}
        self._step_label: str | None = None
        self._step_started: float | None = None
        #: When a relay window opens: the step's action, then the end of its last entry; None
        #: outside a scenario step (a Robot keyword's window opens when it is called).
        self._relay_anchor: float | None = None
        #: How long the command that set the anchor took to answer, and which device it was.
        self._anchor_spread: tuple[float, str] = (0.0, "")
        #: (after what, the fault) while the bench may not be at rest (stslab.recovery).
        self.unsettled: tuple[str, str] | None = None
        #: A key change set being entered (new key, rollover) until its step ends: a fault
        #: may cut it short after the meter took it (stslab.recovery asks the meter).
        self.key_change_pending: tuple[Any, bool] | None = None
        #: A key change section entered whose answer was not read yet: after a fault the
        #: meter may keep it (stslab.recovery counts it as held, and drops what is held).
        self.section_in_flight: HeldSection | None = None
        #: The reference twin, in lockstep with the meter: told every action, compared after
        #: every step (stslab.lockstep).
        self.twin = TwinCheck(self)

    # -- scenario ---------------------------------------------------------------------------

    def carrier_for(self, scenario: Scenario) -> str:
        if scenario.carrier != "any":
            return scenario.carrier
        return self.profile.carriers[0]

    def run(self, scenario: Scenario, start_step: int = 0) -> ScenarioResult:
        carrier = self.carrier_for(scenario)
        result = ScenarioResult(
            scenario.id,
            scenario.title,
            scenario.group,
            list(scenario.clauses),
            Outcome.SKIP,
            started=time.time(),
            source_file=scenario.source_file,
        )
        reason = (not_applicable(scenario, self.profile, carrier) or self._not_new(scenario)
                  or self._unjudgeable(scenario))  # fmt: skip
        if reason is not None:
            result.skip_reason = reason
            return result
        if self.unsettled is not None:
            refused = self._back_to_rest()
            if refused is not None:  # no verdict on a bench that is not at rest
                result.steps.append(refused)
                self._emit(scenario, refused)
                result.outcome = Outcome.ERROR
                result.duration_s = refused.duration_s
                return result
        self._margin_s = self._margin(scenario)
        self._probe_placing = None
        self._entry_ends = {}
        self._entry_late = {}
        timed = bool(scenario.timed_values())  # the declared times it places actions at
        try:
            scenario = expand(scenario, self.profile, self._margin(scenario))
        except (DeclaredError, ValueError) as exc:
            result.outcome = Outcome.ERROR
            result.skip_reason = f"cannot take the declared values: {exc}"
            return result
        t0 = time.perf_counter()
        m0 = self.clock.now()
        tids: dict[str, int] = {}
        self.twin.scenario_started(timed=timed)
        if start_step == 0:
            setup = self._setup(scenario, carrier)
            if setup is not None:
                result.steps.append(setup)
                self._emit(scenario, setup)
                if setup.outcome is not Outcome.PASS:
                    result.outcome = Outcome.ERROR
                    result.duration_s = time.perf_counter() - t0
                    self.unsettle(scenario.id, setup.error or "setup ERROR")
                    return result
        for index in range(start_step, len(scenario.steps)):
            step_result = self._run_step(scenario, index, carrier, tids)
            result.steps.append(step_result)
            self._emit(scenario, step_result)
        result.outcome = worst([s.outcome for s in result.steps if s.kind != "setup"])
        result.duration_s = time.perf_counter() - t0
        result.modelled_s = self.clock.now() - m0
        if result.outcome is Outcome.ERROR:
            fault = next(s.error for s in result.steps if s.outcome is Outcome.ERROR)
            self.unsettle(scenario.id, fault or "ERROR")
        return result

    def unsettle(self, after: str, reason: str) -> None:
        """The bench may not be at rest (a fault, an interruption): bring it back before the
        next scenario runs."""
        self.unsettled = (after, reason)

    def _back_to_rest(self) -> StepResult | None:
        """Bring the bench to rest (journalled); None when it is, else the ERROR step that
        stands for the scenario (it is tried again before the next one)."""
        from stslab.recovery import bring_to_rest

        assert self.unsettled is not None
        after, reason = self.unsettled
        rest = bring_to_rest(self, after, reason)
        if self.journal is not None:
            self.journal.append("recovery", rest.to_json())
        if rest.at_rest:
            self.unsettled = None
            return None
        return StepResult(
            -1,
            "back to rest",
            "recovery",
            Outcome.ERROR,
            action={"after": after, "reason": reason, "done": rest.actions},
            observations=dict(rest.observations),
            error=f"the bench is not back at rest after {after}: {rest.problem}",
            started=rest.started,
            duration_s=rest.duration_s,
            modelled_s=rest.modelled_s,
        )

    def _margin(self, scenario: Scenario) -> float:
        """The scenario's timing margin on this bench (exact or real time)."""
        t = scenario.timing
        return t.exact_s if self.bench.exact_time else t.real_s

    def _not_new(self, scenario: Scenario) -> str | None:
        """Why ``scenario``, which needs a meter as its maker shipped it, cannot have one."""
        led = self.ledger
        if not scenario.applies.meter_new:
            return None
        if led.tokens_issued or led.previous_key is not None or led.held_sections:
            return (f"applies only to a meter as received from its maker: its ledger has issued "
                    f"it {led.tokens_issued} token(s) before")  # fmt: skip
        return None

    def _unjudgeable(self, scenario: Scenario) -> str | None:
        """Why the declared times ``scenario`` tests cannot be judged on this bench (None: they
        can): the bench keeps one of them at least a real-time floor, which stretches it, or
        times it no finer than that (a key's hold); or a key hold it asks for is shorter than
        a keypad robot can make."""
        for path in sorted(scenario.timed_values()):
            for key, floor in self.bench.real_floors.items():
                if path != key and not path.startswith(key + "."):
                    continue
                value = declared_value(self.profile, path, 1)
                if isinstance(value, bool) or not isinstance(value, int | float):
                    continue
                in_ms = path.endswith("_ms")  # a hold the meter times, not a time it keeps
                seconds = value / 1000 if in_ms else value
                if self.clock.real(seconds) >= floor - 1e-9:
                    continue
                speed = f"(run at speed {seconds / floor:.3g} or below, or on virtual time)"
                if in_ms:
                    return (
                        f"not judged: the bench times {key} no finer than {floor:g} s real; at "
                        f"clock speed {self.clock.speed:g} the declared {value:g} ms is "
                        f"{self.clock.real(seconds) * 1000:.3g} ms real {speed}"
                    )
                return (
                    f"not judged: the bench keeps {key} at least {floor:g} s real; at clock "
                    f"speed {self.clock.speed:g} the declared {value:g} s would last "
                    f"{floor * self.clock.speed:g} s {speed}"
                )
        for label, hold in scenario.declared_holds():
            try:
                ms = round(resolve(hold, self.profile, self._margin(scenario)))
            except (DeclaredError, ValueError):
                return None  # said when it runs
            if ms < SHORTEST_HOLD_MS:
                return (
                    f"not judged: {label} holds a key {ms} ms (from the declared "
                    f"{hold['declared']}, {declared_value(self.profile, hold['declared']):g} ms); "
                    f"a keypad robot holds a key {SHORTEST_HOLD_MS} ms at least"
                )
        return None

    def _emit(self, scenario: Scenario, step: StepResult) -> None:
        if self.on_step is not None:
            self.on_step(scenario, step)  # stores evidence files, updates progress
        for ev in step.evidence:
            ev.pop("png", None)  # evidence is journalled by hash, never inline
        if self.journal is not None:
            self.journal.append("step", {"scenario": scenario.id, **step.to_json()})

    def _setup(self, scenario: Scenario, carrier: str) -> StepResult | None:
        """Baseline (load off, supply on) and the credit the scenario needs."""
        res = StepResult(-1, "setup", "setup", Outcome.PASS, started=time.time())
        t0 = time.perf_counter()
        try:
            self.twin.ready(res)
            self._baseline()
            if scenario.setup_credit is not None:
                have = self.observe_credit(0)
                need = scenario.setup_credit - (have or Decimal(0))
                res.observations["credit_before"] = str(have)
                if need > 0:
                    spec = TokenSpec.model_validate(
                        {"class": 0, "subclass": 0, "amount": need.quantize(Decimal("0.1"))}
                    )
                    observed = self.enter_token(spec, carrier, res, record_action=True)
                    if observed is not Result.ACCEPT:
                        raise StepFault(f"top-up credit token answered {observed}")
            self._fill_tid_store(scenario, carrier, res)
        except (InstrumentError, StepFault, MintError) as exc:
            res.outcome = Outcome.ERROR
            res.error = str(exc)
            self.twin.lost()
        res.duration_s = time.perf_counter() - t0
        return res

    def _fill_tid_store(self, scenario: Scenario, carrier: str, res: StepResult) -> None:
        """A TID below the store's smallest needs a store holding TIDs above it: after a
        rollover key change cleared the store (every entry zero) there is none until it is
        full again. Fill it with the smallest credit tokens, the first far enough above the
        TIDs issued that the scenario's TID below it exists."""
        steps = getattr(scenario, "steps", ())  # a Robot test's setup brings no steps
        below = [s.token.tid.below_store_min for s in steps
                 if isinstance(s, TokenStep) and s.token.tid.rule == "below_store_min"]  # fmt: skip
        size = self.profile.tokens.tid_store_size
        if not below or self.ledger.store_min(size) - max(below) >= 0:
            return
        first = {"advance_minutes": max(below) + 1}
        for n in range(1, size + 1):
            spec = TokenSpec.model_validate({"class": 0, "subclass": 0, "amount": "0.1",
                                             "tid": first if n == 1 else {}})  # fmt: skip
            observed = self.enter_token(spec, carrier, res)
            if observed is not Result.ACCEPT:
                raise StepFault(f"TID store fill token {n} of {size} answered {observed}")
        res.observations["tid_store_filled"] = size

    def enter_token(
        self, spec: TokenSpec, carrier: str, res: StepResult, record_action: bool = False
    ) -> Result | None:
        """Mint a token outside the scenario's steps (setup, return to rest), enter it, and
        return the meter's answer; an accepted TID goes into the ledger's store."""
        minted = self.factory.mint(spec, {})
        if record_action:
            res.action = {"token": minted.fields, "digits": minted.digits}
        self.inject(minted.digits, carrier, res)
        observed = self.observe_result(res)
        self._record_acceptance(minted.tid, observed)
        return observed

    def _baseline(self) -> None:
        load = self.bench.drivers.get("load")
        if load is not None:
            load.load(False)
            self.twin.feed("load", False, None)
        source = self.bench.drivers.get("source")
        if source is not None:
            source.set_voltage(NOMINAL_SUPPLY_V)
            source.output(True)
            self.twin.feed("supply", True)

    # -- steps ------------------------------------------------------------------------------

    def _run_step(self, scenario: Scenario, index: int, carrier: str, tids: dict) -> StepResult:
        step = scenario.steps[index]
        if self._readout_age() > READOUT_REUSE_S:
            self._acted()
        res = StepResult(
            index, scenario.step_label(index), step.do, Outcome.PASS, started=time.time()
        )
        t0 = time.perf_counter()
        m0 = self.clock.now()
        via = step.via or carrier
        self._step_label = res.label
        self.twin.last_step = index == len(scenario.steps) - 1
        try:
            before = self._before(step.expect)
            with self.action(step, via, res, tids, watch=self._needs_watch(step)):
                if step.expect is not None:
                    self._judge(step.expect, before, res)
        except MintError as exc:
            res.outcome, res.error = Outcome.ERROR, f"cannot mint: {exc}"
        except (InstrumentError, StepFault) as exc:
            res.outcome, res.error = Outcome.ERROR, str(exc)
        except ValueError as exc:  # a driver refused an argument before sending it
            res.outcome, res.error = Outcome.ERROR, f"refused by the driver: {exc}"
        finally:
            self._relay_anchor = None
        if res.outcome is not Outcome.ERROR:
            res.outcome = worst([c.outcome for c in res.checks]) if res.checks else Outcome.PASS
        res.duration_s = time.perf_counter() - t0
        res.modelled_s = self.clock.now() - m0
        return res

    @contextlib.contextmanager
    def action(
        self,
        step: Any,
        via: str,
        res: StepResult,
        tids: dict,
        *,
        watch: bool,
        keep_watching: bool = False,
    ) -> Iterator[None]:
        """Take ``step``'s action and read the meter's answer to each entry; inside the block,
        judge it. Every front end (a scenario step, a Robot keyword) acts through here, so an
        answer is told from a message still lingering from the step before by one rule.

        Readings taken before are stale. With ``watch`` the display is recorded from before
        the action: its first reading is known before the entry begins, so a result message
        left from the step before is not taken for this entry's answer. The relay window
        opens at the action and moves to the end of its last entry; after an entry it stays
        open past the block (a later check on the load switch counts from the entry, as a
        step's own expectation does) until the next action. With ``keep_watching`` the display
        watch of an entry goes on past the block too, until the next action, so a check that
        comes later (a Robot keyword) judges what the display showed after the entry by the
        rule a step's own expectation uses."""
        handler = getattr(self, f"_do_{step.do}")
        self._probe_placed, self._probe_placing = self._probe_placing, None
        self._keys_late = 0.0
        self.twin.ready(res)
        self.stop_watching()
        self._acted()
        self._relay_anchor = None
        self._anchor_spread = (0.0, "")
        if watch:
            self._watch = watch_display(self.bench.get("display"))
            self._watch.wait_first()  # know what the display shows before the entry
        self._inject_started = None
        self._step_started = None
        self._lingering = None
        try:
            self._relay_anchor = self.clock.monotonic()
            acted_at = self.clock.now()
            handler(step, via, res, tids)
            self.twin.step_done(step, acted_at)
            yield
            self.twin.after_step(step, res)  # every observable against the reference twin
        except MintError:
            raise  # nothing reached the meter: the twin is still in step
        except BaseException:
            self.twin.lost()
            raise
        finally:
            if keep_watching and step.do in ENTRY_STEPS and self._watch is not None:
                self._note_watch(res, self._watch)
            else:
                self._finish_watch(res)
            if step.do not in ENTRY_STEPS:
                self._relay_anchor = None

    def stop_watching(self) -> None:
        """End a display watch kept past its entry (the next action, or the campaign, ends)."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.stop()

    def _do_token(self, step: TokenStep, via: str, res: StepResult, tids: dict) -> None:
        minted = self.factory.mint(step.token, tids)
        digits = minted.digits
        if step.corrupt == "typo":
            digits = typo(digits)
        res.action = {
            "token": minted.fields,
            "digits": digits,
            "carrier": via,
            "key": minted.key_fingerprint,
            "corrupted": step.corrupt,
        }
        if minted.tid is not None and step.id is not None:
            tids[step.id] = minted.tid
        self.inject(digits, via, res)
        observed = self._observe_entry(step.expect, res)
        if step.corrupt is None:
            self._record_acceptance(minted.tid, observed)

    def _do_key_change(self, step: KeyChangeStep, via: str, res: StepResult, tids: dict) -> None:
        digits, new_state, _new = self.factory.key_change(step.new_key)
        order = step.order or list(range(1, len(digits) + 1))
        if any(not 1 <= i <= len(digits) for i in order):
            raise StepFault(f"order {order} names sections the set does not have ({len(digits)})")
        res.action = {
            "sections": order,
            # What reached the meter, in order (each is journalled before it is entered too).
            "section_digits": [digits[i - 1] for i in order],
            "carrier": via,
            "new_key": {
                "krn": new_state.krn,
                "kt": new_state.kt,
                "ti": new_state.ti,
                "ken": new_state.ken,
                "ro": step.new_key.ro,
                "base_date": new_state.base_date,
                "fingerprint": new_state.fingerprint,
            },
        }
        answers: list[Result | None] = []
        self.key_change_pending = (new_state, step.new_key.ro)
        for i in order:
            if self.journal is not None:
                # Journalled before it is entered: a kill at any instant after leaves a journal
                # that holds every section the meter may have (a resume replays them to
                # SimLab's meter and lets the ledger follow a key the meter took).
                self.journal.append("key_change_entry", {
                    "step": res.label, "section": i, "digits": digits[i - 1],
                    "new_key": asdict(new_state), "ro": step.new_key.ro})  # fmt: skip
            section = HeldSection(KCT_SUBCLASSES[i - 1], new_state, step.new_key.ro, digits[i - 1])
            self.section_in_flight = section  # until its answer is read (a fault may cut it)
            self.inject(digits[i - 1], via, res)
            answer = self._observe_entry(None, res, judge=False)
            answers.append(answer)
            self.section_in_flight = None
            self._key_section_answered(section, answer)
        self.key_change_pending = None
        res.observations["section_results"] = [a.label if a else None for a in answers]
        if step.expect is not None and step.expect.results is not None:
            for n, (want, got) in enumerate(zip(step.expect.results, answers, strict=False), 1):
                w = parse_result(want)
                res.checks.append(
                    _check(
                        f"result of KCT entry {n}",
                        w.label,
                        got.label if got else "unreadable",
                        w is got,
                    )
                )
        if step.expect is not None and step.expect.result is not None:
            w = parse_result(step.expect.result)
            got = answers[-1]
            res.checks.append(
                _check("result", w.label, got.label if got else "unreadable", w is got)
            )

    def _key_section_answered(self, section: HeldSection, answer: Result | None) -> None:
        """Follow what the meter keeps of key change sets (the ledger's held sections), and
        the key it installs.

        Accept to a section means the set is complete: this section with the latest section
        of each other subclass the meter keeps, whatever set that came from (over a power
        cycle, a lone section, a section of an earlier step or campaign: STS sections carry
        nothing that ties them to one set), so the ledger records the key built from those."""
        held = self.ledger.held()
        needed = (3, 4) if self.factory.current_key.ea.key_bytes == 8 else KCT_SUBCLASSES
        n = section.subclass
        if answer in (Result.KCT1_RECEIVED, Result.KCT2_RECEIVED):
            if all(m in held for m in needed if m != n):
                # With those the set would be complete: the meter kept none of them (a power
                # loss the runner did not cause, a meter that drops them early).
                self.ledger.sections_held([section])
            else:
                self.ledger.keep_section(section)
            return
        if answer is None:  # unread: the meter keeps it or not, from a set the ledger knows not
            self.ledger.keep_section(HeldSection(n, None))
            return
        if answer is Result.KEY_TYPE:
            self.ledger.sections_held([])  # the set was complete, and refused: none kept
            return
        if answer is not Result.ACCEPT:
            return  # not decoded (another key, a typo) or not used: the meter keeps what it had
        held[n] = section
        known = {m: held[m] for m in needed if m in held and held[m].source is not None}
        if len(known) < len(needed):
            # A section the meter took unread: the best guess is this section's own set.
            self.ledger.key_installed(section.source, section.rollover)
            return
        state = self.factory.installed_state({m: h.source for m, h in known.items()})
        self.ledger.key_installed(state, known[3].rollover)  # rollover rides in the first

    def _do_raw(self, step: RawStep, via: str, res: StepResult, tids: dict) -> None:
        if step.digits is not None:
            digits = step.digits
        else:
            sample = self.factory.mint(
                TokenSpec.model_validate({"class": 0, "subclass": 0, "amount": "0.1"}), {}
            ).digits
            digits = {
                "19_digits": sample[1:],
                "21_digits": sample + "7",
                "too_large": str((1 << 66) + int(sample[-6:])),
            }[step.malformed or ""]
        res.action = {"digits": digits, "carrier": via, "malformed": step.malformed}
        self.inject(digits, via, res)
        self._observe_entry(step.expect, res)

    def _do_keys(self, step: KeysStep, via: str, res: StepResult, tids: dict) -> None:
        keypad = self.bench.get("keypad")
        keys: list[str] = []
        for k in step.keys:
            keys += list(k[len("digits:") :]) if k.startswith("digits:") else [k]
        keys = [self._key_name(k) for k in keys]
        keys = keys * int(step.times)  # type: ignore[arg-type]
        res.action = {"keys": keys}
        if not keys:
            res.observations["key_events"] = 0
            return
        given = None if step.hold_ms is None else round(float(step.hold_ms))  # type: ignore[arg-type]
        if given is not None:
            res.action["hold_ms"] = given
        hold, gap = given or KEY_HOLD_MS, step.gap_ms or KEY_GAP_MS
        custom = given is not None or step.gap_ms is not None
        if custom:
            keypad.configure(hold, gap)
        typing_from = self.clock.now()
        typing_real = self.clock.monotonic()
        try:
            events = keypad.type(keys)
        finally:
            if custom:
                keypad.configure(KEY_HOLD_MS, KEY_GAP_MS)
        res.observations["key_events"] = len(events)
        planned = len(keys) * (hold + gap) / 1000
        self._keys_late = max(0.0, self.clock.monotonic() - typing_real - self.clock.real(planned))
        if self._probe_placed is not None:
            self._check_probe_typing(keypad, len(keys), res)
        self._keys_to_twin(keys, typing_from, hold)
        self._acted()
        self._entered()
        self._observe_entry(step.expect, res)

    def _check_probe_typing(self, keypad: Any, count: int, res: StepResult) -> None:
        """A probe placed just inside or past a declared time lands where it was placed only
        if the keys take the time their hold and gap make, here and in the step it counts
        from: a keypad that answers late moves the probe's Enter past where it was put, or
        the start it counts from, so the boundary cannot be judged (ERROR naming the keypad,
        not a verdict on the meter)."""
        anchor = self._probe_placed or ""
        late = self._keys_late + self._entry_late.get(anchor, 0.0)
        res.observations["probe_late_s"] = _bench_s(late, self.clock)
        if late > self.clock.real(self._margin_s):
            where = f"[keypad] {getattr(keypad, 'address', '')}".rstrip()
            raise StepFault(
                f"{where}: the keys took {_bench_s(late, self.clock):g} s more than their hold "
                f"and gap (this probe's {count} and those of {anchor!r}, which it counts from): "
                f"the probe landed past where it was placed"
            )

    def _keys_to_twin(self, keys: list[str], typing_from: float, hold_ms: int) -> None:
        """Each key to the twin at its place in the typing (the robot presses them evenly),
        with how long it was held: an entry time-out counts from the last key, and a token
        typed onto a part-typed entry meets that entry's time-out key by key, not at the end
        of the typing."""
        typing_to = self.clock.now()
        for n, key in enumerate(keys, 1):
            self.twin.feed_at(
                typing_from + (typing_to - typing_from) * n / len(keys), "keys", [key], hold_ms
            )

    def _do_load(self, step: LoadStep, via: str, res: StepResult, tids: dict) -> None:
        load = self.bench.get("load")
        res.action = {"mode": step.mode, "setpoint": step.setpoint, "on": step.on}
        if step.on:
            load.set_mode(step.mode, step.setpoint)
        # A load switch time counts from this command; the load changed while it was answered.
        self._relay_anchor = sent = self.clock.monotonic()
        load.load(step.on)
        where = f"[load] {getattr(load, 'address', '')}".rstrip()
        self._anchor_spread = (self.clock.monotonic() - sent, where)

    def _do_source(self, step: SourceStep, via: str, res: StepResult, tids: dict) -> None:
        source = self.bench.get("source")
        res.action = {"output": step.output, "voltage": step.voltage, "frequency": step.frequency}
        if step.voltage is not None:
            source.set_voltage(step.voltage)
        if step.frequency is not None:
            source.set_frequency(step.frequency)
        if not step.output:
            self.supply_lost()
        source.output(step.output)

    def supply_lost(self) -> None:
        """The supply goes off (before the command, which may be cut short by a fault): a
        meter that does not keep key change sections over a power cycle drops them."""
        if not self.profile.tokens.kct_kept_over_power_cycle:
            self.ledger.sections_held([])

    def _do_wait(self, step: WaitStep, via: str, res: StepResult, tids: dict) -> None:
        res.action = {
            "seconds": step.seconds,
            "energy_wh": step.energy_wh,
            "relay": step.relay,
            "display": step.display,
            "timeout_s": step.timeout_s,
        }
        if step.display is not None:
            res.observations["display"] = self._wait_for_credit_display(step.timeout_s, res)
        elif step.seconds is not None and step.since is not None:
            if step.since not in self._entry_ends:
                raise StepFault(f"step {step.since!r} made no entry to count from")
            gone = self.clock.monotonic() - self._entry_ends[step.since]
            left = self.clock.real(float(step.seconds)) - gone  # type: ignore[arg-type]
            res.observations["since_entry_s"] = _bench_s(gone, self.clock)
            if left < 0:
                # Too late for the probe this wait places: the boundary cannot be judged.
                raise StepFault(f"{_bench_s(gone, self.clock):g} s had passed since "
                                f"{step.since!r}, past the {step.seconds:g} s to wait")  # fmt: skip
            self.clock.pause(left)
            self._probe_placing = step.since
        elif step.seconds is not None:
            self.clock.sleep(float(step.seconds))  # type: ignore[arg-type]
        elif step.energy_wh is not None:
            analyzer = self.bench.get("analyzer")
            analyzer.integration_reset()
            analyzer.integration_start()
            deadline = self.clock.now() + step.timeout_s
            try:
                while True:
                    used = analyzer.energy_wh()
                    if used >= step.energy_wh:
                        res.observations["energy_wh"] = round(used, 3)
                        res.measurements["energy_wh"] = self.measured(
                            "energy", "Wh", round(used, 3), "analyzer",
                            [gum.resolution(Decimal("0.001"), "the recorded energy", "Wh")],
                        ).to_json()  # fmt: skip
                        break
                    if self.clock.now() >= deadline:
                        raise StepFault(
                            f"only {used:.1f} Wh of {step.energy_wh} Wh within {step.timeout_s} s"
                        )
                    self.clock.sleep(min(step.timeout_s / 100, 2.0))
            finally:
                analyzer.integration_stop()
        else:
            probe = self._relay()
            obs = probe.wait(step.relay, self.clock.real(step.timeout_s))
            t, time_budget = self._relay_time(obs, 0.0)
            res.observations["relay"] = obs.state
            res.observations["relay_transition_s"] = t
            res.measurements["relay_transition_s"] = time_budget.to_json()

    def _wait_for_credit_display(self, timeout_s: float, res: StepResult) -> str:
        """Read the display until it shows the credit register's value (to its last digit)
        steadily: unchanged for the declared time of one class-1 test display, and at least
        CREDIT_DISPLAY_STEADY_REAL_S, so a test display that happens to show the same number
        (the cumulative kWh) is not taken for it. The display text; a StepFault naming what
        it showed last when ``timeout_s`` bench seconds pass first."""
        display = self.bench.get("display")
        steady_real_s = max(
            self.clock.real(self.profile.display.test_step_seconds), CREDIT_DISPLAY_STEADY_REAL_S
        )
        deadline = self.clock.now() + timeout_s
        since: float | None = None  # real time the credit was first seen, this run of reads
        last = "nothing readable"
        while True:
            reading = display.read()
            shown = _displayed_number(reading.text)
            if reading.text != last or shown is None:
                since = None
            last = reading.text
            if shown is not None and since is None:
                self._acted()  # the credit now, not the one read before the wait
                credit = self.observe_credit(0, res)
                if credit is None:
                    raise StepFault("waiting for the credit display needs the meter port")
                if abs(shown[0] - credit) <= shown[1]:
                    since = self.clock.monotonic()
            if since is not None and self.clock.monotonic() - since >= steady_real_s:
                res.evidence.append(_frame_evidence(reading))
                return reading.text
            if self.clock.now() >= deadline:
                raise StepFault(
                    f"the display did not return to the credit within {timeout_s:g} s "
                    f"(last shown: {last!r})"
                )
            self.clock.pause(0.02)

    def _do_fill(self, step: FillStep, via: str, res: StepResult, tids: dict) -> None:
        """Transfer tokens until the register holds ``to`` base units exactly."""
        from sts import amount as amounts

        register = step.register_no
        self._acted()
        have = self.observe_credit(register, res)
        if have is None:
            raise StepFault("filling a register needs the meter port (to read the credit)")
        units = amounts.to_base_units(have, register, "credit")
        target = int(step.to)  # type: ignore[arg-type]
        if units > target:
            raise StepFault(f"the register holds {units} base units, more than {target}")
        parts = amounts.split_exact(target - units, register)
        res.action = {"register": register, "to": target, "from": units, "tokens": len(parts)}
        for n, part in enumerate(parts, 1):
            amount = amounts.from_base_units(part, register)
            spec = TokenSpec.model_validate({"class": 0, "subclass": register, "amount": amount})
            minted = self.factory.mint(spec, tids)
            self.inject(minted.digits, via, res)
            observed = self._observe_entry(None, res, judge=False)
            self._record_acceptance(minted.tid, observed)
            if observed is not Result.ACCEPT:
                seen = observed.label if observed else "none"
                res.checks.append(_check(f"fill token {n} of {len(parts)}", "Accept", seen, False))
                return
        self._acted()

    def _do_power_cycle(self, step: PowerCycleStep, via: str, res: StepResult, tids: dict) -> None:
        res.action = {"off_s": step.off_s}
        self.cycle_supply(step.off_s)

    def cycle_supply(self, off_s: float) -> None:
        """The AC source off for ``off_s``, then on again, and the meter's boot."""
        source = self.bench.get("source")
        self.supply_lost()
        source.output(False)
        self.clock.sleep(off_s)
        source.output(True)
        self.clock.sleep(1.0)  # the meter boots

    def _do_operator(self, step: OperatorStep, via: str, res: StepResult, tids: dict) -> None:
        res.action = {"prompt": step.prompt, "sim_action": step.sim_action}
        if self.bench.simulated and step.sim_action is not None:
            action = self.bench.sim_actions.get(step.sim_action)
            if action is None:
                raise StepFault(f"this simulated bench cannot {step.sim_action!r} by itself")
            action()
            res.observations["operator"] = f"simulated bench: {step.sim_action} done"
            return
        if self.bench.operator is not None:
            self.bench.operator(step.prompt)
            res.observations["operator"] = "confirmed"
        elif self.bench.simulated:
            res.observations["operator"] = "simulated bench: acknowledged automatically"
        else:
            raise StepFault("an operator prompt, but no operator interface")

    def _do_observe(self, step: ObserveStep, via: str, res: StepResult, tids: dict) -> None:
        e = step.expect
        if e is not None and (e.display is not None or e.display_text is not None):
            reading = self.read_display(res)
            res.observations["display"] = reading.text

    # -- injection --------------------------------------------------------------------------

    def _key_name(self, key: str) -> str:
        kp = self.profile.keypad
        named = {"ENTER": kp.enter_key, "BACK": kp.backspace_key}
        return named.get(key, key)

    def inject(self, digits: str, via: str, res: StepResult) -> None:
        if self.journal is not None and self.key_change_pending is None:
            # Journalled before it is entered (a key change section has its own record): after
            # a kill at any instant the journal holds every entry the meter may have had.
            self.journal.append("entry", {"step": res.label, "digits": digits, "carrier": via})
        self._acted()
        # Each entry (a key change set has several) has its own window on the display.
        self._inject_started = self.clock.monotonic()
        if self._step_started is None:
            self._step_started = self._inject_started
        self._lingering = None
        if self._watch is not None and self._watch.readings:
            text = canonical_text(self._watch.readings[-1][1].text)
            self._lingering = text if self._vocabulary.get(text) else None
        if via == "keypad":
            keypad = self.bench.get("keypad")
            keys = [*digits, self.profile.keypad.enter_key]
            typing_from = self.clock.now()
            keypad.type(keys)
            self._keys_to_twin(keys, typing_from, KEY_HOLD_MS)
        elif via == "port":
            self.bench.get("port").write_token(digits)
        elif via == "card":
            writer = self.bench.get("card")
            card = self.profile.card
            tracks = {card.token_track: card.prefix + digits + card.suffix}
            writer.write_tracks(tracks)
            presenter = self.bench.drivers.get("presenter")
            if presenter is not None:
                presenter.present()
        else:
            raise StepFault(f"unknown carrier {via!r}")
        if via != "keypad":
            self.twin.feed("enter", digits, via)
        self._entered()

    def _entered(self) -> None:
        """The entry is complete (ENTER released, the port's ACK, the card presented): a
        relay window of this step counts from here."""
        if self._relay_anchor is not None:
            self._relay_anchor = self.clock.monotonic()
        if self._step_label is not None:
            self._entry_ends[self._step_label] = self.clock.monotonic()
            self._entry_late[self._step_label] = self._keys_late

    # -- observation ------------------------------------------------------------------------

    def _retry(self, what: str, res: StepResult, fn: Callable[[], Any], attempts: int = 3) -> Any:
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except ProtocolViolation as exc:
                if attempt == attempts:
                    raise
                res.retries.append(f"{what}: attempt {attempt} failed ({exc}); retried")
        raise AssertionError("unreachable")

    def read_display(self, res: StepResult) -> Any:
        display = self.bench.get("display")
        reading = display.read()
        res.evidence.append(_frame_evidence(reading))
        return reading

    def readout(self, res: StepResult | None = None) -> dict[str, Any]:
        """The port's data readout; one readout serves every observation until the next
        action, and the next step's "before" when it is at most READOUT_REUSE_S old (each
        readout takes a few hundred ms at the standard's line speeds)."""
        if self._readout_cache is None:
            port = self.bench.get("port")
            scratch = res or StepResult(-1, "observe", "observe", Outcome.PASS)
            self._readout_cache = self._retry("readout", scratch, port.readout)
            self._readout_at = self.clock.now()
        return self._readout_cache

    @property
    def has_readout(self) -> bool:
        """Whether a port readout taken since the last action can serve an observation."""
        return self._readout_cache is not None

    @property
    def display_watch(self) -> Any:
        """The display watch running now (None when none is)."""
        return self._watch

    def _readout_age(self) -> float:
        """Bench seconds since the cached readout was taken (infinite when there is none)."""
        if self._readout_at is None:
            return math.inf
        return self.clock.now() - self._readout_at

    def _acted(self) -> None:
        self._readout_cache = None
        self._readout_at = None

    def observe_credit(self, register: int, res: StepResult | None = None) -> Decimal | None:
        if "port" not in self.bench.drivers:
            return None
        regs = self.profile.port.registers
        address = regs.credit if register == 0 else f"{regs.credit.rsplit('.', 1)[0]}.{register}"
        return self._register_decimal(address, "credit", res)

    def _register_decimal(self, address: str, what: str, res: StepResult | None) -> Decimal:
        """The number a register of the port's readout holds (``what``: its name in errors)."""
        reading = self.readout(res).get(address)
        if reading is None:
            raise StepFault(f"the readout has no {what} register {address}")
        try:
            return Decimal(reading.value)
        except InvalidOperation:
            raise StepFault(f"{what} register {address} reads {reading.value!r}") from None

    def observe_result(self, res: StepResult) -> Result | None:
        """The last token's result: from the port register, else from the display."""
        if "port" in self.bench.drivers:
            address = self.profile.port.registers.last_result
            reading = self.readout(res).get(address)
            if reading is None:
                raise StepFault(f"the readout has no result register {address}")
            try:
                code = int(reading.value)
                return Result(code) if code else None
            except ValueError:
                raise StepFault(f"result register {address} reads {reading.value!r}") from None
        reading = self.read_display(res)
        return self.result_from_display(reading.text)

    def result_from_display(self, text: str) -> Result | None:
        matches = self._vocabulary.get(canonical_text(text), [])
        return matches[0] if len(matches) == 1 else None

    def _observe_entry(
        self, expect: Expect | None, res: StepResult, judge: bool = True
    ) -> Result | None:
        """After an entry: the load switch first when the step expects a state or a timing of
        it (its window runs from the entry; a slow readout must not make the probe look late),
        then the display (it shows the answer only for a while; the watch keeps recording
        meanwhile), then the port's register."""
        if judge and expect is not None and expect.relay is not None:
            self._judge_relay(expect, res)
        if judge and expect is not None and expect.relay_timing is not None:
            self._judge_relay_timing(expect, res)
        display_text = None
        if self._watch is not None:
            display_text = self._displayed_result(res)
            res.observations["display"] = display_text
        if "port" in self.bench.drivers:
            observed = self.observe_result(res)
        else:
            observed = self.result_from_display(display_text or "")
        res.observations.setdefault("results", []).append(observed.label if observed else None)
        if judge and expect is not None and expect.result is not None:
            want = parse_result(expect.result)
            res.checks.append(
                _check(
                    "result", want.label, observed.label if observed else "none", want is observed
                )
            )
        return observed

    def _needs_watch(self, step: Any) -> bool:
        if "display" not in self.bench.drivers or step.do not in ENTRY_STEPS:
            return False
        e = step.expect
        wants = e is not None and (e.display or e.display_text or e.display_for
                                   or e.test_displays)  # fmt: skip
        return bool(wants) or "port" not in self.bench.drivers

    def _settle_s(self) -> float:
        """Real seconds to keep watching after an entry: the declared message time plus the
        class-1 test displays (bounded), at least a few camera reads."""
        d = self.profile.display
        tests = len(self.profile.tokens.supported_tests)
        return min(max(0.3, self.clock.real(d.message_seconds + tests * d.test_step_seconds)), 60)

    def _post_entry_readings(self) -> list[Any]:
        """What the display showed after the entry began, once the answer is there.

        A message still lingering from the step before is not the answer: wait for a new
        one (or, if the answer is the same text again, for the declared display time)."""
        assert self._watch is not None
        start = self._inject_started or 0.0
        lingering = self._lingering
        deadline = self.clock.monotonic() + self._settle_s()
        while self.clock.monotonic() < deadline:
            texts = [canonical_text(r.text) for r in self._watch.since(start)]
            if any(self._vocabulary.get(t) and t != lingering for t in texts):
                break
            # A poll interval, or on virtual time until the display can next change.
            self._watch.wait_change(deadline)
        return self._watch.since(start)

    def _post_entry_readings_all(self) -> list[Any]:
        """Everything shown after the entry, waiting the whole declared display time."""
        assert self._watch is not None
        self.clock.pause(self._settle_s())
        return self._watch.since(self._inject_started or 0.0)

    def _displayed_result(self, res: StepResult) -> str | None:
        """The last result message the display showed after the entry began."""
        readings = self._post_entry_readings()
        answers = [r for r in readings if self._vocabulary.get(canonical_text(r.text))]
        fresh = [r for r in answers if canonical_text(r.text) != self._lingering]
        answers = fresh or answers
        if not answers and self._lingering is not None and self._watch is not None:
            # The same message stayed on through the entry (an answer equal to the one
            # before it, through a carrier that does not clear the display).
            before = [r for t, r in self._watch.readings if t < (self._inject_started or 0.0)]
            answers = [r for r in before if canonical_text(r.text) == self._lingering][-1:]
        if not answers:
            faults = self._watch.faults if self._watch else []
            if faults and not readings:
                raise StepFault(f"display unreadable: {faults[-1]}")
            return readings[-1].text if readings else None
        chosen = answers[-1]
        res.evidence.append(_frame_evidence(chosen))
        return chosen.text

    def _finish_watch(self, res: StepResult) -> None:
        watch = self._watch
        if watch is None:
            return
        self.stop_watching()
        self._note_watch(res, watch)

    def _note_watch(self, res: StepResult, watch: Any) -> None:
        """What the display showed from the step's start, into the step's observations."""
        start = self._step_started or 0.0
        res.observations["display_sequence"] = [r.text for r in watch.since(start)]
        if watch.faults:
            res.observations["display_faults"] = len(watch.faults)

    def _record_acceptance(self, tid: int | None, observed: Result | None) -> None:
        if tid is not None and observed is Result.ACCEPT:
            self.ledger.accepted_tid(tid, self.profile.tokens.tid_store_size)

    def _before(self, expect: Expect | None) -> dict[str, Any]:
        before: dict[str, Any] = {}
        if expect is not None and expect.credit is not None and expect.credit.change is not None:
            before["credit"] = self.observe_credit(expect.credit.register_no)
        if expect is not None and expect.unchanged:
            before["readout"] = self._kept_registers(expect.unchanged)
        if expect is not None and expect.energy is not None:
            before["energy"] = self._energy_register()
        return before

    def _energy_register(self, res: StepResult | None = None) -> Decimal:
        """The meter's cumulative energy register (kWh), from the port's readout."""
        if "port" not in self.bench.drivers:
            raise StepFault("no way to read the energy register (the bench has no meter port)")
        return self._register_decimal(self.profile.port.registers.energy_kwh, "energy", res)

    def _kept_registers(self, names: list[str]) -> dict[str, str]:
        """The readout values of the named declared registers (``credit``: every credit
        register the readout shows)."""
        regs = self.profile.port.registers
        values = self.readout()
        prefix = regs.credit.rsplit(".", 1)[0] + "."
        out: dict[str, str] = {}
        for name in names:
            if name == "credit":
                out.update({a: r.value for a, r in values.items() if a.startswith(prefix)})
                continue
            address = getattr(regs, name, None)
            if address is None:
                raise StepFault(f"readout name {name!r} is not a declared register")
            got = values.get(address)
            out[address] = got.value if got is not None else "absent"
        return out

    def _relay(self) -> Any:
        if self.bench.relay is None:
            raise StepFault("the bench has no relay probe (it needs an analyzer)")
        return self.bench.relay

    def _judge(self, expect: Expect, before: dict[str, Any], res: StepResult) -> None:
        judged = any(c.name == "load switch" for c in res.checks)  # after the entry already
        if expect.relay is not None and not judged:
            self._judge_relay(expect, res)  # first: its window runs from the step's action
        if expect.display is not None or expect.display_text is not None:
            if expect.display is not None:
                want = self.profile.display.vocabulary[int(parse_result(expect.display))]
            else:
                want = expect.display_text or ""
            if expect.display is not None:
                seen = res.observations.get("display")
                if seen is None and self._watch is None:
                    seen = self.read_display(res).text
                    res.observations["display"] = seen
                seen = seen or "nothing readable"
                ok = canonical_text(want) == canonical_text(seen)
            elif self._watch is not None:
                # A test display among the ones shown after the entry (class-1 sequences).
                shown = [r.text for r in self._post_entry_readings_all()]
                ok = any(canonical_text(want) == canonical_text(t) for t in shown)
                seen = " / ".join(shown) or "nothing readable"
            else:
                seen = self.read_display(res).text
                res.observations["display"] = seen
                ok = canonical_text(want) == canonical_text(seen)
            res.checks.append(_check("display", want, seen, ok))
        if expect.test_displays is not None:
            self._judge_test_displays(expect.test_displays, res)
        if expect.credit is not None:
            c = expect.credit
            after = self.observe_credit(c.register_no, res)
            if after is None:
                raise StepFault("no way to read credit (the bench has no meter port)")
            res.observations["credit_after"] = str(after)
            unit = "kWh" if c.register_no == 0 else None
            read_after = _register_resolution(after, "the credit register after", unit)
            after_budget = gum.budget("credit", unit or "", after, [read_after])
            res.measurements["credit_after"] = after_budget.to_json()
            if c.change is not None:
                b = before.get("credit")
                change = after - (b or Decimal(0))
                parts = [read_after]
                if b is not None:  # two readings of the register, each quantised
                    read_before = _register_resolution(b, "the credit register before", unit)
                    res.observations.setdefault("credit_before", str(b))
                    res.measurements["credit_before"] = gum.budget(
                        "credit", unit or "", b, [read_before]
                    ).to_json()
                    parts.insert(0, read_before)
                change_budget = gum.budget("credit change", unit or "", change, parts)
                low, high = c.change - c.tolerance, c.change + c.tolerance
                expected = f"{c.change} ± {c.tolerance}"
                res.checks.append(
                    self._numeric("credit change", expected, change, change_budget, low, high, unit)
                )
            if c.at_least is not None:
                low = c.at_least - c.tolerance
                res.checks.append(
                    self._numeric("credit", f"≥ {c.at_least}", after, after_budget, low, None, unit)
                )
            if c.equals is not None:
                low, high = c.equals - c.tolerance, c.equals + c.tolerance
                expected = f"{c.equals} ± {c.tolerance}"
                res.checks.append(
                    self._numeric("credit", expected, after, after_budget, low, high, unit)
                )
        if expect.energy is not None:
            self._judge_energy(expect, before, res)
        if expect.unchanged:
            was = before.get("readout", {})
            now = self._kept_registers(expect.unchanged)
            for address in sorted(set(was) | set(now)):
                a, b = was.get(address, "absent"), now.get(address, "absent")
                res.checks.append(_check(f"{address} kept", a, b, _same_value(a, b)))
        if expect.display_for is not None:
            self._judge_display_for(expect, res)
        timed = any(c.name.startswith("load switch ") for c in res.checks)  # after the entry
        if expect.relay_timing is not None and not timed:
            self._judge_relay_timing(expect, res)
        if expect.readout is not None:
            values = self.readout(res)
            regs = self.profile.port.registers
            for name, wanted in expect.readout.items():
                want = str(wanted)
                address = getattr(regs, name, None)
                if address is None:
                    raise StepFault(f"readout name {name!r} is not a declared register")
                got = values.get(address)
                seen = got.value if got is not None else "absent"
                res.checks.append(_check(f"readout {name}", want, seen, _same_value(want, seen)))
        if expect.annunciators is not None:
            self._judge_annunciators(expect, res)

    def _judge_energy(self, expect: Expect, before: dict[str, Any], res: StepResult) -> None:
        """The energy register's change across the step, with both readings' resolution."""
        e = expect.energy
        assert e is not None
        was, now = before["energy"], self._energy_register(res)
        res.observations["energy_before"], res.observations["energy_after"] = str(was), str(now)
        parts = [_register_resolution(was, "the energy register before", "kWh"),
                 _register_resolution(now, "the energy register after", "kWh")]  # fmt: skip
        change = now - was
        budget = gum.budget("energy change", "kWh", change, parts)
        res.measurements["energy_change"] = budget.to_json()
        low, high = e.change - e.tolerance, e.change + e.tolerance
        res.checks.append(self._numeric("energy change", f"{e.change} ± {e.tolerance}", change,
                                        budget, low, high, "kWh"))  # fmt: skip

    # -- class-1 test displays and annunciators -------------------------------------------------

    def _layout(self) -> Any:
        """The meter model's segment map (its digit cells and annunciators), loaded once."""
        if self._segment_map is None:
            from instruments.segment_map import SegmentMap

            self._segment_map = SegmentMap.load(self.profile.layout_path())
        return self._segment_map

    def _judge_test_displays(self, wanted: list[TestDisplay], res: StepResult) -> None:
        """What each requested class-1 test showed after the result message, in order: the
        displays that followed the message on the watch (a display is one text, however
        its live annunciators changed while it stayed)."""
        if self._watch is None:
            raise StepFault("test displays need the display watch (the bench has no camera)")
        groups = self._test_display_groups(len(wanted))
        values = self._shown_values(wanted, res)
        layout = self._layout()
        for i, want in enumerate(wanted):
            name = f"test {want.test} display"
            expected = _describe_test_display(want, values)
            if i >= len(groups):
                res.checks.append(_check(name, expected, "not shown", False))
                continue
            text, lit = groups[i]
            seen = f"{text} [{', '.join(sorted(lit)) or 'no annunciator'}]"
            ok = set(want.annunciators) <= lit
            if want.all_segments:
                cells = len(layout.digits)
                ok = ok and text.replace(" ", "") == "8." * cells
                ok = ok and set(layout.annunciators) <= lit
            if want.shows:
                numbers = _NUMBERS_IN_TEXT.findall(canonical_text(text))
                ok = ok and len(numbers) == len(want.shows)
                ok = ok and all(_rounds_to(Decimal(n), values[q], want.tolerance)
                                for n, q in zip(numbers, want.shows, strict=False))  # fmt: skip
            res.checks.append(_check(name, expected, seen, ok))

    def _test_display_groups(self, count: int) -> list[tuple[str, frozenset[str]]]:
        """The displays after the result message, once ``count`` of them have come and gone
        (the display after the last has appeared), or by a deadline: the declared times, each
        test display given at least a second more (a bench may keep a display longer than
        declared, as SimLab does on a fast clock)."""
        assert self._watch is not None
        watch, start = self._watch, self._inject_started or 0.0
        step = max(self.clock.real(self.profile.display.test_step_seconds), 1.0)
        deadline = self.clock.monotonic() + self._settle_s() + count * step
        while True:
            groups = _displays_after_message(watch.since(start), self._vocabulary)
            if len(groups) > count or self.clock.monotonic() >= deadline:
                return groups
            watch.wait_change(deadline)

    def _shown_values(self, wanted: list[TestDisplay], res: StepResult) -> dict[str, Decimal]:
        """The value of each quantity a test display is to show: the declared readout
        register, or (``version``) the declared software version text."""
        names = {q for w in wanted for q in w.shows}
        out: dict[str, Decimal] = {}
        if "version" in names:
            found = _NUMBERS_IN_TEXT.findall(self.profile.display.version_text)
            if len(found) != 1:
                raise StepFault("the declared version text holds no single number to look for")
            out["version"] = Decimal(found[0])
        registers = sorted(names - {"version"})
        if not registers:
            return out
        if "port" not in self.bench.drivers:
            raise StepFault("no way to read the values a test shows (the bench has no meter port)")
        readout = self.readout(res)
        for name in registers:
            address = getattr(self.profile.port.registers, name)
            reading = readout.get(address)
            try:
                out[name] = Decimal(reading.value) if reading is not None else Decimal("NaN")
            except InvalidOperation:
                raise StepFault(f"readout register {address} reads {reading.value!r}") from None
            if not out[name].is_finite():
                raise StepFault(f"the readout has no register {address} ({name})")
        return out

    def _judge_annunciators(self, expect: Expect, res: StepResult) -> None:
        """The annunciators lit and dark at the end of the step: a reading of its own, or the
        display watch's last reading when one runs for the step (it owns the camera; it
        records a reading when the text changes)."""
        want = expect.annunciators
        assert want is not None
        unknown = sorted(set(want.lit + want.dark) - set(self._layout().annunciators))
        if unknown:
            raise StepFault(f"the meter's layout has no annunciator {', '.join(unknown)}")
        if self._watch is not None and self._watch.readings:
            reading = self._watch.readings[-1][1]
        else:
            reading = self.read_display(res)
        lit = set(reading.annunciators)
        res.observations["annunciators"] = sorted(lit)
        for name in want.lit:
            res.checks.append(_check(f"annunciator {name}", "lit", "lit" if name in lit
                                     else "dark", name in lit))  # fmt: skip
        for name in want.dark:
            res.checks.append(_check(f"annunciator {name}", "dark", "lit" if name in lit
                                     else "dark", name not in lit))  # fmt: skip

    # -- measurement uncertainty --------------------------------------------------------------

    def measured(
        self, quantity: str, unit: str, value: Any, role: str, parts: list[gum.Component]
    ) -> Budget:
        """The budget of ``value`` of ``quantity`` read through ``role``'s instrument: its
        calibration (from the bench file) with ``parts`` (resolution, sampling interval)."""
        cal = gum.calibration(self.bench.calibrations.get(role), quantity, float(value))
        return gum.budget(quantity, unit, value, [cal, *parts])

    def time_budget(
        self, value_s: float, role: str, interval_s: float, edges: int = 1, watch: str = ""
    ) -> Budget:
        """The budget of a time (bench s) taken from a watch on ``role`` ("display" or
        "analyzer") that samples every ``interval_s`` bench seconds; ``edges`` 2 for a
        duration between two observed changes. The display watch's interval is
        :meth:`display_interval_s`."""
        parts = [gum.sampling(interval_s, watch or f"the {role} watch", edges),
                 gum.resolution(Decimal("0.001"), "the recorded time", "s")]  # fmt: skip
        return self.measured("time", "s", round(value_s, 3), role, parts)

    def display_interval_s(self, watch: Any = None) -> float:
        """The sampling interval of ``watch`` (default: the running display watch) so far, in
        bench seconds (0 on virtual time, where the watch sees every change when it happens)."""
        watch = watch or self._watch
        if watch is None:
            raise StepFault("no display watch is running")
        return round(watch.poll_s * self.clock.speed, 6)

    def _relay_time(self, obs: Any, elapsed_real: float) -> tuple[float, Budget]:
        """A load-switch transition time (bench s, from the window's start) and its budget.

        The first agreeing sample is when the state was seen; it changed after the sample
        before it, or — when the first sample already read it — after the window opened."""
        t = _bench_s(elapsed_real + (obs.transition_s or 0.0), self.clock)
        times = [s.t_s for s in obs.samples]
        i = times.index(obs.transition_s) if obs.transition_s in times else 0
        gap_real = times[i] - times[i - 1] if i > 0 else elapsed_real + (obs.transition_s or 0.0)
        return t, self.time_budget(t, "analyzer", _bench_s(gap_real, self.clock),
                                   watch="the load-switch watch (analyzer samples)")  # fmt: skip

    def _numeric(
        self,
        name: str,
        expected: str,
        measured: Decimal,
        budget: Budget,
        low: Decimal | None,
        high: Decimal | None,
        unit: str | None,
    ) -> Check:
        """A numeric check judged by the job's decision rule, with its budget."""
        decision = gum.decide(self.rule, measured, low, high, budget.expanded)
        guarded = decision is Decision.GUARD_BAND
        outcome = Outcome.PASS if decision is Decision.ACCEPT else Outcome.FAIL
        detail = gum.guard_band_note(budget) if guarded else ""
        return Check(name, expected, str(measured), outcome, unit, detail, budget.to_json(),
                     guarded)  # fmt: skip

    def _watch_budget(self, value_s: float, role: str, interval_s: float, edges: int) -> Budget:
        """The budget of a time taken from a watch. On virtual time the watch reads the bench's
        own clock when the change happens: nothing is measured, so nothing is uncertain."""
        if self.bench.exact_time:
            return gum.budget("time", "s", round(value_s, 6), [])
        return self.time_budget(value_s, role, interval_s, edges)

    def _timed(
        self, name: str, expected: str, value_s: float, budget: Budget, want_s: float, tol: float
    ) -> Check:
        """A time judged against ``want_s`` ± ``tol`` by the job's decision rule."""
        value = Decimal(str(round(value_s, 6)))
        low = Decimal(str(round(want_s - tol, 9)))
        high = Decimal(str(round(want_s + tol, 9)))
        check = self._numeric(name, expected, value, budget, low, high, "s")
        check.observed = f"{value_s:g} s"
        return check

    def _tolerance(self, resolution_s: float) -> float:
        """How far a measured time may be from the declared one: the observer's resolution
        on exact time; on real time the scenario's timing margin as well."""
        margin = 0.0 if self.bench.exact_time else self._margin_s
        return margin + resolution_s + 1e-6

    def _judge_display_for(self, expect: Expect, res: StepResult) -> None:
        """How long a display stayed: from the watch, when it appeared and when the next one
        replaced it (bench seconds)."""
        timing = expect.display_for
        assert timing is not None
        watch = self._watch
        if watch is None:
            raise StepFault("a display time needs the display watch (the bench has no camera)")
        vocab = self.profile.display.vocabulary
        if timing.text is not None:
            want, label = canonical_text(timing.text), repr(timing.text)
        else:
            name = timing.result or timing.after
            code = parse_result(name or "")
            want, label = canonical_text(vocab[int(code)]), code.label
            if timing.after is not None:
                label = f"the display after {label}"
        seconds = float(timing.seconds)  # type: ignore[arg-type]
        tol = self._tolerance(0.0)
        start = self._inject_started or 0.0
        # Observer's time by which the display must have appeared, then gone: the declared
        # time and its tolerance, and a little more to see what came instead.
        allowed = self.clock.real(seconds + tol) + DISPLAY_TIME_SLACK_S
        appear_by = self.clock.monotonic() + allowed
        while True:
            shown = [(t, canonical_text(r.text)) for t, r in watch.readings if t >= start]
            span, appeared = _span(shown, want, timing.after is not None)
            limit = appear_by if appeared is None else appeared + allowed
            if span is not None or self.clock.monotonic() >= limit:
                break
            watch.wait_change(limit)
        expected = f"{seconds:g} s ± {tol:.3g} s"
        if span is None:
            seen = "never shown" if appeared is None else "still shown"
            res.checks.append(Check(f"display time of {label}", expected, seen, Outcome.FAIL,
                                    "s"))  # fmt: skip
            return
        lasted = _bench_s(span[1] - span[0], self.clock)
        res.observations.setdefault("display_times", []).append({"display": label,
                                                                 "seconds": lasted})  # fmt: skip
        budget = self._watch_budget(lasted, "display", self.display_interval_s(watch), 2)
        res.checks.append(self._timed(f"display time of {label}", expected, lasted, budget,
                                      seconds, tol))  # fmt: skip

    def _judge_relay_timing(self, expect: Expect, res: StepResult) -> None:
        """When the load switch reached the state (from the step's action) and how long it
        stayed, from the relay probe (bench seconds). A time the bench did not see to within
        the tolerance (the probe looked late, the analyser answered slowly, the action's own
        command took long) is ERROR, never a verdict."""
        from instruments.relay import RelayTimeout

        timing = expect.relay_timing
        assert timing is not None
        probe = self._relay()
        resolution = _bench_s(getattr(probe, "interval_s", 0.0), self.clock)
        tol = self._tolerance(resolution)
        anchor = self._relay_anchor if self._relay_anchor is not None else self.clock.monotonic()
        spread, device = self._anchor_spread
        if _bench_s(spread, self.clock) > tol:
            raise StepFault(
                f"{device} took {_bench_s(spread, self.clock):.3g} s to answer the step's "
                f"command, more than the timing tolerance ({tol:.3g} s): when the load "
                "switch's time starts is not known"
            )
        want = timing.state
        other = "closed" if want == "open" else "open"
        at_s = None if timing.at_s is None else float(timing.at_s)  # type: ignore[arg-type]
        limit = (at_s + tol) if at_s is not None else timing.within_s
        called = self.clock.monotonic()
        budget = max(0.0, self.clock.real(limit) - (called - anchor))
        was = probe.last_state
        try:
            seen = probe.wait(want, budget)
            reached = called + (seen.transition_s or 0.0)
        except RelayTimeout as exc:
            self._probe_too_slow(probe, exc.observation.samples, tol)
            name = f"load switch {want} at" if at_s is not None else f"load switch {want}"
            expected = f"{at_s:g} s ± {tol:.3g} s" if at_s is not None else f"by {limit:g} s"
            res.checks.append(Check(name, expected, f"not {want} by {limit:.3g} s",
                                    Outcome.FAIL, "s"))  # fmt: skip
            return
        t = _bench_s(reached - anchor, self.clock)
        if was == other and seen.samples[0].state == want and t > tol:
            # It changed before the probe first looked: when is not known, so neither is how
            # long it stayed. No verdict on a time the bench did not see.
            held_up = "; ".join(res.retries)
            raise StepFault(
                f"the load switch was already {want} when the relay probe first looked, "
                f"{t:.3g} s after the action: when it changed is not known"
                + (f" (the step was held up: {held_up})" if held_up else "")
            )
        self._probe_too_slow(probe, seen.samples, tol)
        res.observations["relay_reached_s"] = t
        if at_s is not None:
            budget = self._watch_budget(t, "analyzer", resolution, 1)
            res.checks.append(self._timed(f"load switch {want} at", f"{at_s:g} s ± {tol:.3g} s",
                                          t, budget, at_s, tol))  # fmt: skip
        if timing.for_s is None:
            return
        for_s = float(timing.for_s)  # type: ignore[arg-type]
        called = self.clock.monotonic()
        budget = max(0.0, self.clock.real(for_s + tol) - (called - reached))
        try:
            back = probe.wait(other, budget)
            left = called + (back.transition_s or 0.0)
        except RelayTimeout as exc:
            self._probe_too_slow(probe, exc.observation.samples, tol)
            res.checks.append(
                Check(f"load switch {want} for", f"{for_s:g} s ± {tol:.3g} s",
                      f"still {want} after {for_s + tol:g} s", Outcome.FAIL, "s")
            )  # fmt: skip
            return
        self._probe_too_slow(probe, back.samples, tol)
        lasted = _bench_s(left - reached, self.clock)
        res.observations["relay_stayed_s"] = lasted
        budget = self._watch_budget(lasted, "analyzer", resolution, 2)
        res.checks.append(self._timed(f"load switch {want} for", f"{for_s:g} s ± {tol:.3g} s",
                                      lasted, budget, for_s, tol))  # fmt: skip

    def _probe_too_slow(self, probe: Any, samples: Any, tol: float) -> None:
        """A load switch time needs the analyser's answers well inside the tolerance: a
        sample that took longer leaves the change somewhere in that time (a slow or delayed
        analyser is a bench fault, not the meter's)."""
        slowest = _bench_s(max((x.duration_s for x in samples), default=0.0), self.clock)
        if slowest > tol:
            where = f"[analyzer] {getattr(probe.analyzer, 'address', '')}".rstrip()
            raise StepFault(
                f"{where}: the analyser took {slowest:.3g} s to answer a sample, more than the "
                f"timing tolerance ({tol:.3g} s): when the load switch changed is not known"
            )

    def _judge_relay(self, expect: Expect, res: StepResult) -> None:
        from instruments.relay import RelayTimeout

        assert expect.relay is not None
        probe = self._relay()
        want = expect.relay.state
        # The window counts from the step's action, or the end of its last entry.
        elapsed = 0.0 if self._relay_anchor is None else self.clock.monotonic() - self._relay_anchor
        elapsed = max(0.0, elapsed)
        try:
            obs = probe.wait(want, max(0.0, self.clock.real(expect.relay.within_s) - elapsed))
            t, time_budget = self._relay_time(obs, elapsed)
            res.observations["relay"] = obs.state
            res.observations["relay_transition_s"] = t
            res.measurements["relay_transition_s"] = time_budget.to_json()
            decision = Decision.ACCEPT  # the probe saw the state inside its window
            if self.rule is DecisionRule.GUARDED:
                limit = Decimal(str(expect.relay.within_s))
                decision = gum.decide(self.rule, Decimal(str(t)), None, limit,
                                      time_budget.expanded)  # fmt: skip
                if decision is Decision.REJECT:  # seen in the window, timed past its end
                    decision = Decision.GUARD_BAND
            guarded = decision is Decision.GUARD_BAND
            res.checks.append(
                Check(
                    "load switch",
                    f"{want} within {expect.relay.within_s} s",
                    f"{obs.state} by {t:.2f} s",
                    Outcome.FAIL if guarded else Outcome.PASS,
                    "s",
                    gum.guard_band_note(time_budget) if guarded else "",
                    time_budget.to_json(),
                    guarded,
                )
            )
        except RelayTimeout as exc:
            state = getattr(exc, "last_state", None) or probe.last_state
            res.checks.append(
                Check(
                    "load switch",
                    f"{want} within {expect.relay.within_s} s",
                    f"{state} (not {want} in time)",
                    Outcome.FAIL,
                    "s",
                )
            )


def _register_resolution(value: Decimal, what: str, unit: str | None) -> gum.Component:
    """A register read as digits: one unit of its last digit is its resolution."""
    step = Decimal(1).scaleb(min(0, value.as_tuple().exponent))  # type: ignore[arg-type]
    return gum.resolution(step, what, unit or "")


def _span(
    shown: list[tuple[float, str]], want: str, after: bool
) -> tuple[tuple[float, float] | None, float | None]:
    """From the watch's (time, text) readings: when the wanted display (or, with ``after``, the
    display following it) appeared and when the next one replaced it; and when it appeared."""
    for i, (_t, text) in enumerate(shown):
        if text != want:
            continue
        k = i + 1 if after else i
        if k >= len(shown):
            return None, None
        if k + 1 < len(shown):
            return (shown[k][0], shown[k + 1][0]), shown[k][0]
        return None, shown[k][0]
    return None, None


_NUMBERS_IN_TEXT = re.compile(r"\d+(?:\.\d+)?")


def _displays_after_message(
    readings: list[Any], vocabulary: dict[str, Any]
) -> list[tuple[str, frozenset[str]]]:
    """The displays that followed the first result message: (text, the annunciators lit
    when it appeared), one per change of text. Without a message among ``readings`` (the
    answer was the text already on show, so no change was seen) every reading counts."""
    texts = [canonical_text(r.text) for r in readings]
    first = next((i for i, t in enumerate(texts) if vocabulary.get(t)), 0)
    groups: list[tuple[str, frozenset[str]]] = []
    message = texts[first] if texts and vocabulary.get(texts[first]) else None
    for reading, text in zip(readings[first:], texts[first:], strict=True):
        if not groups and text == message:
            continue
        if groups and groups[-1][0] == text:
            groups[-1] = (text, groups[-1][1] | frozenset(reading.annunciators))
        else:
            groups.append((text, frozenset(reading.annunciators)))
    return groups


def _rounds_to(shown: Decimal, value: Decimal, tolerance: Decimal) -> bool:
    """Whether a number shown with its digits stands for ``value``: within half a unit of its
    last digit, and ``tolerance`` more."""
    exponent = shown.as_tuple().exponent
    half = Decimal(5).scaleb(int(exponent) - 1) if isinstance(exponent, int) else Decimal(0)
    return abs(shown - value) <= half + tolerance


def _describe_test_display(want: TestDisplay, values: dict[str, Decimal]) -> str:
    parts = []
    if want.all_segments:
        parts.append("every segment and annunciator")
    if want.shows:
        shown = ", ".join(f"{q} {values[q]}" for q in want.shows)
        extra = f" (± {want.tolerance})" if want.tolerance else ""
        parts.append(f"shows {shown}{extra}")
    if want.annunciators:
        parts.append(f"with {', '.join(want.annunciators)}")
    return "; ".join(parts) or "a display"


def _check(name: str, expected: str, observed: str, ok: bool) -> Check:
    return Check(name, expected, observed, Outcome.PASS if ok else Outcome.FAIL)


def _same_value(want: str, seen: str) -> bool:
    try:
        return Decimal(want) == Decimal(seen)
    except InvalidOperation:
        return want.strip().upper() == seen.strip().upper()


def _displayed_number(text: str) -> tuple[Decimal, Decimal] | None:
    """The number a display text shows and one unit of its last digit, or None."""
    text = text.strip()
    if _NUMBER.fullmatch(text) is None:
        return None
    value = Decimal(text)
    return value, Decimal(1).scaleb(value.as_tuple().exponent)  # type: ignore[arg-type]


def _bench_s(real_s: float | None, clock: BenchClock) -> float:
    return round((real_s or 0.0) * clock.speed, 3)


def _frame_evidence(reading: Any) -> dict[str, Any]:
    import hashlib

    png = getattr(reading, "frame_png", b"") or b""
    return {
        "kind": "display_frame",
        "sha256": hashlib.sha256(png).hexdigest(),
        "text": reading.text,
        "annunciators": sorted(reading.annunciators),
        "confidence": round(float(reading.confidence), 4),
        "png": png,
    }


def typo(digits: str) -> str:
    """One digit changed, deterministically: the last digit, +1 (or -1 where +1 would make
    the value 2**66 or more). Changing the last digit moves only the lowest bits, so the
    class bits (27-28) and the 20-digit format stay: what is left to catch it is the CRC."""
    from sts.codec import MAX_TOKEN

    last = int(digits[-1])
    for candidate in ((last + 1) % 10, (last - 1) % 10):
        changed = digits[:-1] + str(candidate)
        if int(changed) <= MAX_TOKEN:
            return changed
    raise StepFault("no one-digit typo of this token stays a 20-digit token")
