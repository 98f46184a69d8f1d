"""The reference twin on the bench: fed what the runner does, compared after every step.

The runner tells a :class:`TwinCheck` each thing it does to the meter (an entry, keys, a
load or supply change, a power cycle, a tamper) as it does it; after each step the check
reads every observable the bench can read (the port's registers, the display with its
annunciators, the load switch from the analyser) and judges them against the twin
(:mod:`stslab.twin`) through :func:`stslab.sideeffect.compare`. A difference is a FAIL check
of its own kind on the step ("side effect: …"); an explicit expectation the twin
contradicts is an ERROR ("pack and reference disagree"): a defect of the pack, not of the
meter. The twin starts from the ledger's key state and TID store and what the meter's
readout shows (credit, tamper, limit); after a step that ended in ERROR it starts again the
same way, since it no longer knows what reached the meter.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from instruments.base import InstrumentError
from sts.meter import Result
from stslab.scenario import CreditExpectation, parse_result
from stslab.sideeffect import Allowed, Comparison
from stslab.twin import ANNUNCIATORS, Candidates, Twin

#: How much later than declared a timed state (a message, a lockout, the load switch test)
#: may end, in real seconds: a bench keeps a short display long enough for a camera to see.
LATE_REAL_S = 1.5
#: How much earlier a meter may have taken a key than the twin places it (the keys of a typing
#: are placed evenly over it; a press registers on its release, a gap before the next).
EARLY_REAL_S = 0.3
#: The credit tolerance a scenario's expectation gets when it states none.
CREDIT_TOLERANCE_KWH: Decimal = CreditExpectation.model_fields["tolerance"].default


@dataclass
class Observed:
    """What the bench read after a step, and from when to when (bench seconds)."""

    values: dict[str, str]
    t_first: float
    t_last: float


class TwinCheck:
    """The runner's twin: one per runner, in lockstep over its campaign."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.profile = runner.profile
        self.clock = runner.clock
        self.off = dict(self.profile.twin.not_compared)
        self.late_s = LATE_REAL_S * self.clock.speed
        self.candidates: Candidates | None = None
        self.inputs: list[tuple[float, str, tuple[Any, ...]]] = []
        self.before: dict[str, str] = {}
        self.synchronised: dict[str, str] | None = None
        self.load: tuple[bool, float] = (False, 0.0)  # what the harness set the load to
        self.supply = True
        #: whether an expectation the twin contradicts is a defect of the pack (see lost)
        self.judges_pack = True
        #: The part-typed entry (keys, when the last came) the twin had when it was lost.
        self.typed_before: tuple[list[str], float] | None = None
        self.timed = False
        self.stepped = False
        #: whether the step being run is its scenario's last (a timed scenario's full compare)
        self.last_step = True
        self.annunciators, self.digits = _layout(self.profile.layout_path())

    # -- fed by the runner --------------------------------------------------------------------

    def feed(self, kind: str, *args: Any) -> None:
        """Something done to the meter now (bench time): kind is a Twin method name."""
        self.feed_at(self.clock.now(), kind, *args)

    def feed_at(self, t: float, kind: str, *args: Any) -> None:
        self.inputs.append((t, kind, args))
        if kind == "load":  # the bench's own state: a twin started again keeps it
            self.load = (bool(args[0]), args[1] if args[1] is not None else self.load[1])
        elif kind == "supply":
            self.supply = bool(args[0])

    def step_done(self, step: Any, acted_at: float) -> None:
        """What a step that is not an entry did to the meter (entries feed themselves)."""
        kind = step.do
        if kind == "load":
            self.feed("load", step.on, _load_power(step.mode, step.setpoint) if step.on else None)
        elif kind == "source":
            self.feed("supply", step.output)
        elif kind == "power_cycle":
            self.feed_at(acted_at, "supply", False)
            self.feed_at(acted_at + step.off_s, "supply", True)
        elif kind == "operator" and step.sim_action == "raise_tamper":
            self.feed("tamper")

    def lost(self) -> None:
        """A step ended in ERROR (what reached the meter is not known) or the meter went its
        own way: start again from the meter. Until the next scenario the twin then follows a
        meter that differed, and no longer judges the pack's expectations."""
        if self.candidates is not None:
            # A part-typed entry the twin knew: the readout cannot show it, nor the display
            # while a message covers it, so a twin started again may have to keep it.
            typed = [(list(t.entry), t.last_key_at) for t in self.candidates.candidates
                     if t.entry and t.last_key_at is not None]  # fmt: skip
            self.typed_before = typed[0] if typed else None
        self.candidates = None
        self.inputs.clear()
        self.judges_pack = False

    def scenario_started(self, timed: bool = False) -> None:
        """A new scenario: its expectations are judged against the twin again. A ``timed``
        scenario places its actions at declared times: the twin then reads the port only
        after a step that read it anyway, since a readout of its own takes bench time
        (seconds at the standard's line speeds) and would move the next action."""
        self.judges_pack = True
        self.timed = timed
        self.stepped = False

    def ready(self, res: Any) -> None:
        """Before the runner acts: a twin that has not started starts from the meter."""
        if self.candidates is not None:
            return
        if self.timed and self.stepped:
            # Starting again reads the meter, which takes bench time a timed scenario has not
            # got between its steps: the twin starts again with the next scenario.
            return
        self.inputs.clear()
        led = self.runner.ledger
        size = self.profile.tokens.tid_store_size
        store = led.accepted[-size:]
        store = [led.store_floor] * (size - len(store)) + store
        k = led.key
        now = self.clock.now()
        twin = Twin.create(self.profile, self.runner.factory.current_key, krn=k.krn, kt=k.kt,
                           ti=k.ti, sgc=k.sgc, ken=k.ken, tid_store=store, now=now,
                           late_s=self.late_s)  # fmt: skip
        # KCT sections the meter said it keeps (no readout shows them) wait in the twin too.
        held = [h.digits for h in self.runner.ledger.held_sections if h.source is not None]
        for section in held:
            twin.core.enter(section)
        twin.digits = self.digits
        twin.early_s = EARLY_REAL_S * self.clock.speed
        twin.escalation_known = False
        twin.load_on, twin.power_w = self.load
        twin.powered = self.supply
        seen = self.observe(res, twin_powered=self.supply)
        twin.adopt(seen.values)
        if seen.values.get("relay") == "open" and not twin.credit_open:
            # Open for a reason the twin did not see (a power-limit trip): either way until
            # a reconnection delay has passed.
            twin.mpl_trip_at, twin.mpl_cycling = now, True
        if seen.values.get("annunciator.keypad_lock") == "on":
            twin.lockout_until = now
            twin.lockout_late = self.profile.keypad.lockout.max_seconds
        rest = twin.predict(now, CREDIT_TOLERANCE_KWH)
        rest_ok = {n for n, v in seen.values.items() if n in rest and rest[n].admits(v)}
        if any(n not in rest_ok for n in seen.values
               if n in rest and (n == "display" or n.startswith("annunciator."))):  # fmt: skip
            # A message, test display or part-typed entry the twin did not see begin: the
            # display is not compared until whichever it is must have ended.
            p = self.profile
            tests = len(p.tokens.supported_tests) + 1
            shown = p.display.message_seconds + tests * (p.display.test_step_seconds + self.late_s)
            twin.display_unseen_until = now + self.late_s + max(shown, p.keypad.entry_timeout_s)
        bases = [twin]
        if held and not self.profile.tokens.kct_kept_over_power_cycle:
            # A power loss the twin did not see may have dropped them.
            dropped = twin.fork()
            dropped.core.state.pending_kcts = {}
            bases.append(dropped)
        if seen.values.get("mpl") == "0":
            # The readout shows 0 for no limit and for a limit of 0 W (which trips on any
            # load): one candidate each, the load switch picks.
            zero = twin.fork()
            zero.core.state.mpl = 0
            bases.append(zero)
        # The meter may have seen rejected keypad entries the twin did not: one candidate for
        # each count it may have reached.
        for base in bases:
            base.started_over_limit()
        shown = seen.values.get("display", "")
        if shown.isdigit() and len(shown) < self.digits and "display" not in rest_ok:
            # A part-typed entry the twin did not see typed (it shows whole, fewer digits than
            # the cells): a candidate with it, one where it has just timed out.
            for base in list(bases):
                typed = base.fork()
                typed.entry, typed.last_key_at = list(shown), now
                bases.append(typed)
        elif self.typed_before is not None and "display" not in rest_ok:
            # The display covers it (a message, a test display): the entry the twin knew may
            # still wait for its time-out (a candidate with it, one without).
            keys, at = self.typed_before
            if now < at + self.profile.keypad.entry_timeout_s + self.late_s:
                for base in list(bases):
                    typed = base.fork()
                    typed.entry, typed.last_key_at = list(keys), at
                    bases.append(typed)
        self.typed_before = None
        candidates = list(bases)
        for count in range(1, self.profile.keypad.lockout.after_rejects):
            for base in bases:
                other = base.fork()
                other.rejects = count
                candidates.append(other)
        self.candidates = Candidates(candidates[0])
        self.candidates.candidates = candidates
        self.synchronised = {k: v for k, v in seen.values.items()
                             if k in ("credit", "tamper", "mpl", "result")}  # fmt: skip
        self.before = dict(seen.values)

    # -- after a step -------------------------------------------------------------------------

    def after_step(self, step: Any, res: Any) -> None:
        """Compare every observable with the twin; the checks go on ``res``."""
        from stslab.campaign import Check, Outcome

        self.stepped = True
        cands = self.candidates
        if cands is None:
            return
        for t, kind, args in sorted(self.inputs, key=lambda item: item[0]):
            cands.feed(kind, t, *args)
        self.inputs.clear()
        powered = any(tw.powered for tw in cands.candidates)
        # Between the steps of a timed scenario the twin takes no reading of its own (each
        # takes bench time and would move the next action off its declared time): it compares
        # what the step read anyway, and everything after the last step (its state carries
        # over, so a difference is still seen, only later).
        quiet = self.timed and not self.last_step
        seen = self.observe(res, twin_powered=powered, quiet=quiet)
        # The pack is judged against every candidate before the meter's readings pick among
        # them: a twin that follows the meter must not then blame the pack for it.
        disagreements = self._disagreements(step, res)
        if any(c.outcome is Outcome.FAIL for c in res.checks):
            # The meter failed an expectation: the twin now follows a meter that went its own
            # way, and until the next scenario it no longer judges the pack.
            self.judges_pack = False
        comparison = self._compare(seen, cause=_cause(step))
        note: dict[str, Any] = {
            "compared": comparison.compared,
            "not_compared": comparison.not_compared,
            "differences": len(comparison.differences),
            "read": seen.values,
        }
        if quiet:
            note["quiet"] = ("only what the step read was compared: the scenario places its "
                             "actions at declared times; all is compared after its last "
                             "step")  # fmt: skip
        if self.synchronised is not None:
            note["synchronised"] = self.synchronised
            self.synchronised = None
        res.observations["twin"] = note
        for d in comparison.differences:  # the registers read are in the step's "twin"
            res.checks.append(Check(f"side effect: {d.observable}", d.expected, d.observed,
                                    Outcome.FAIL, detail=d.sentence))  # fmt: skip
        if not comparison.differences:
            n = len(comparison.compared)
            res.checks.append(Check("side effects", "as the reference meter",
                                    f"{n} observables the same", Outcome.PASS))  # fmt: skip
        res.checks += disagreements
        if comparison.differences:
            # The meter went its own way: the twin starts again from what it shows (and the
            # ledger the harness keeps by its answers), so one side effect is reported once,
            # on the step that caused it, and later steps are judged from there.
            self.lost()
        self.before = dict(seen.values)

    def _compare(self, seen: Observed, cause: str) -> Comparison:
        assert self.candidates is not None
        return self.candidates.compare(seen.t_first, seen.t_last, seen.values,
                                       tolerance_kwh=CREDIT_TOLERANCE_KWH, off=self.off,
                                       before=self.before, cause=cause)  # fmt: skip

    def _disagreements(self, step: Any, res: Any) -> list[Any]:
        """Explicit expectations of the step that the twin contradicts (a pack defect)."""
        from stslab.campaign import Check, Outcome

        expect = getattr(step, "expect", None)
        if expect is None or self.candidates is None or not self.judges_pack:
            return []
        out = []
        # An expectation disagrees with the reference only when no candidate admits it.
        per_twin = [{(n, w): got for n, w, got in self._wants(step, expect, tw)}
                    for tw in self.candidates.candidates]  # fmt: skip
        for (name, want), got in per_twin[0].items():
            if got is None or name in self.off:
                continue
            others = [allowed.get((name, want)) for allowed in per_twin]
            if any(a is None or a.admits(want) for a in others):
                continue
            # The name and the two cells say it all: the scenario is wrong, not the meter.
            out.append(Check("pack and reference disagree", f"{name} {_label(name, want)}",
                             f"the reference meter: {_label(name, got.shown)}",
                             Outcome.ERROR))  # fmt: skip
        return out

    def _wants(self, step: Any, expect: Any, twin: Twin) -> list[tuple[str, str, Allowed | None]]:
        """The step's explicit expectations, each with what ``twin`` allows for it."""
        allowed = twin.predict(twin.now, CREDIT_TOLERANCE_KWH)
        wants: list[tuple[str, str, Allowed | None]] = []
        if expect.result is not None and step.do in ("token", "raw", "keys", "key_change"):
            want = parse_result(expect.result)
            wants.append(("result", f"{int(want):02d}", allowed.get("result")))
        for name, value in (expect.readout or {}).items():
            key = "result" if name == "last_result" else name
            if key in allowed and key != "relay":
                wants.append((key, value, allowed.get(key)))
        if expect.credit is not None and expect.credit.equals is not None:
            c = expect.credit
            key = "credit" if c.register_no == 0 else f"credit.{c.register_no}"
            got = allowed.get(key)
            if got is not None and got.low is not None and got.high is not None:
                got = Allowed.between(got.low - c.tolerance, got.high + c.tolerance, got.shown)
            wants.append((key, str(c.equals), got))
        return wants

    # -- reading the bench ----------------------------------------------------------------------

    def observe(self, res: Any, *, twin_powered: bool, quiet: bool = False) -> Observed:
        """Every observable the bench can read now (a meter without supply has no port)."""
        runner = self.runner
        drivers = runner.bench.drivers
        values: dict[str, str] = {}
        # From the step's last action on: a readout taken during the step counts from there.
        t_first = t_last = self.clock.now()
        if self.candidates is not None:
            t_first = min(t_first, min(tw.now for tw in self.candidates.candidates))
        if twin_powered and "port" in drivers and (not quiet or runner.has_readout):
            try:
                readout = runner.readout(res)
            except InstrumentError:
                readout = None
            if readout is not None:
                values.update(self._registers(readout))
        watch = runner.display_watch  # a running watch owns the camera: take its last reading
        if twin_powered and "display" in drivers and (not quiet or watch is not None):
            try:
                reading = (watch.readings[-1][1] if watch is not None and watch.readings
                           else drivers["display"].read())  # fmt: skip
            except InstrumentError:
                reading = None
            if reading is not None:
                values.update(self._display(reading))
        if runner.bench.relay is not None and not quiet:
            try:
                values["relay"] = runner.bench.relay.observe().state
                if values["relay"] == "unknown":
                    del values["relay"]
                power = drivers["analyzer"].sample().power_w
                if self.candidates is not None and values.get("relay") == "closed":
                    self.candidates.power(self.clock.now(), power)
            except (InstrumentError, KeyError):
                values.pop("relay", None)
        t_last = self.clock.now()
        return Observed(values, t_first, t_last)

    def _registers(self, readout: dict[str, Any]) -> dict[str, str]:
        regs = self.profile.port.registers
        out: dict[str, str] = {}
        for name, address in (("result", regs.last_result), ("krn", regs.krn),
                              ("kt", regs.kt), ("ti", regs.ti), ("ken", regs.ken),
                              ("mpl", regs.mpl), ("tamper", regs.tamper),
                              ("credit", regs.credit)):  # fmt: skip
            reading = readout.get(address)
            if reading is not None:
                out[name] = reading.value
        stem = regs.credit.rsplit(".", 1)[0]
        for register in self.profile.tokens.services:
            reading = readout.get(f"{stem}.{register}")
            if register and reading is not None:
                out[f"credit.{register}"] = reading.value
        if "analyzer" not in self.runner.bench.drivers:
            relay = readout.get(regs.relay)
            if relay is not None:
                out["relay"] = relay.value.strip().lower()
        return out

    def _display(self, reading: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in ANNUNCIATORS:
            if name in self.annunciators:
                out[f"annunciator.{name}"] = "on" if name in reading.annunciators else "off"
        out["display"] = reading.text.strip()
        return out


def _load_power(mode: str, setpoint: float) -> float:
    """The power a load set so draws at the nominal supply (the analyser corrects it)."""
    from stslab.campaign import NOMINAL_SUPPLY_V

    if mode == "CC":
        return setpoint * NOMINAL_SUPPLY_V
    if mode == "CR":
        return NOMINAL_SUPPLY_V**2 / setpoint if setpoint else 0.0
    return setpoint


@functools.lru_cache(maxsize=16)
def _layout(path: Path) -> tuple[frozenset[str], int]:
    """The layout's annunciators and digit cells (none known: nothing of them compared)."""
    try:
        data = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError):
        return frozenset(), 0
    data = data if isinstance(data, dict) else {}
    return frozenset(data.get("annunciators") or {}), len(data.get("digits") or ())


def _label(name: str, value: str) -> str:
    if name != "result":
        return value
    try:
        return Result(int(value.split()[0])).label
    except (ValueError, IndexError):
        return value


def _cause(step: Any) -> str:
    kind = getattr(step, "do", "")
    token = getattr(step, "token", None)
    if kind == "token" and token is not None:
        names = {(0, 0): "TransferCredit", (2, 0): "SetMaximumPowerLimit",
                 (2, 1): "ClearCredit", (2, 5): "ClearTamperCondition",
                 (1, 0): "InitiateMeterTest", (1, 1): "InitiateMeterTest"}  # fmt: skip
        return names.get((token.token_class, token.subclass),
                         f"a class {token.token_class} token")  # fmt: skip
    return {"key_change": "a key change", "raw": "an entry", "keys": "keypad keys",
            "load": "a load change", "source": "a supply change", "wait": "a wait",
            "power_cycle": "a power cycle", "operator": "an operator action",
            "observe": "an observation"}.get(kind, kind)  # fmt: skip
