"""Measurement uncertainty (GUM) and the decision rule (ILAC-G8) for numeric observations.

Each numeric observation (a credit register, an energy, a time from a watch) gets a budget:
its standard uncertainty components, combined as the root sum of squares and expanded with
k = 2. The components are what the bench knows: the instrument's calibration (the expanded
uncertainty its certificate states, with the certificate's coverage factor), the resolution
of the register or display read (rectangular), and for a time the sampling interval of the
watch that saw it (rectangular). A limit is then judged by the decision rule the job file
names: simple acceptance, or guarded acceptance with a guard band equal to U.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal
from enum import StrEnum
from typing import Any

#: Coverage factor of every budget (about 95 % coverage for a normal distribution).
K = 2
#: The quantities a calibration certificate states an uncertainty for: base unit, and the
#: units a bench file may use for it (factor to the base unit).
QUANTITIES: dict[str, tuple[str, dict[str, Decimal]]] = {
    "voltage": ("V", {"V": Decimal(1), "mV": Decimal("0.001")}),
    "current": ("A", {"A": Decimal(1), "mA": Decimal("0.001")}),
    "power": ("W", {"W": Decimal(1), "kW": Decimal(1000)}),
    "energy": ("Wh", {"Wh": Decimal(1), "kWh": Decimal(1000)}),
    "time": ("s", {"s": Decimal(1), "ms": Decimal("0.001")}),
}
#: What the runner reads from each measuring role: in accredited mode the role's calibration
#: must state the uncertainty of each (credit is a digital register of the meter itself).
READS: dict[str, tuple[str, ...]] = {
    "analyzer": ("energy", "time"),  # integrated energy; load-switch times from its samples
    "display": ("time",),  # when a text appeared or went, from the camera's frames
}
_TERM = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(%|[A-Za-z]+)\s*$")


class DecisionRule(StrEnum):
    """How a measured value is judged against a tolerance (ILAC-G8:09/2019)."""

    SIMPLE = "simple"  # §4.2.1: accepted inside the tolerance, no guard band
    GUARDED = "guarded"  # §4.2.2: accepted only further than U inside the tolerance


RULE_STATEMENTS: dict[DecisionRule, str] = {
    DecisionRule.SIMPLE: (
        "Simple acceptance (ILAC-G8:09/2019 §4.2.1, no guard band): a step PASSES when every "
        "observation equals its expectation — result codes and display texts exactly, numeric "
        "values within the stated tolerance; a state change within the stated time. Each "
        "numeric result is stated with its expanded uncertainty U (k = 2). A device fault or "
        "unreadable observation is ERROR, never PASS or FAIL."
    ),
    DecisionRule.GUARDED: (
        "Guarded acceptance (ILAC-G8:09/2019 §4.2.2, guard band w = U): a numeric result PASSES "
        "only when it lies inside the tolerance by more than its expanded uncertainty U "
        "(k = 2); a result inside the tolerance but within U of a limit is in the guard band "
        "and is not accepted (reported FAIL, marked \u201cguard band\u201d); result codes and "
        "display texts must match exactly. A device fault or unreadable observation is ERROR, "
        "never PASS or FAIL."
    ),
}
RISK_STATEMENTS: dict[DecisionRule, str] = {
    DecisionRule.SIMPLE: (
        "Risk of a false accept: not limited by the rule. A result accepted close to a limit "
        "may have a probability of up to 50 % that the true value lies outside the tolerance; "
        "each result's U is stated so the reader can judge how close it came."
    ),
    DecisionRule.GUARDED: (
        "Risk of a false accept: for each accepted result, the probability that the true value "
        "lies outside the tolerance is at most about 2.5 % (one-sided, normal distribution, "
        "k = 2); the price is a higher risk of rejecting a conforming item (false reject) for "
        "results in the guard band."
    ),
}


def rule_statement(rule: DecisionRule) -> str:
    return RULE_STATEMENTS[rule]


def decision_record(rule: DecisionRule) -> dict[str, str]:
    """The decision rule as the record states it: its name, what it says, the risk."""
    return {"rule": rule.value, "statement": RULE_STATEMENTS[rule],
            "false_accept_risk": RISK_STATEMENTS[rule]}  # fmt: skip


# --- what a calibration certificate states -------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """One quantity's expanded uncertainty as a certificate states it: a part relative to the
    reading plus an absolute part, e.g. ``0.1 % + 0.3 W``."""

    text: str
    relative: Decimal  # fraction of the reading
    absolute: Decimal  # in the quantity's base unit

    @classmethod
    def parse(cls, quantity: str, text: str) -> Statement:
        _base, units = QUANTITIES[quantity]
        relative = absolute = Decimal(0)
        for term in str(text).split("+"):
            m = _TERM.match(term)
            if m is None:
                raise ValueError(
                    f"{text!r} is not an uncertainty: give '<number> %' of the reading and/or "
                    f"'<number> <unit>' ({', '.join(units)}), joined by '+'"
                )
            number, unit = Decimal(m.group(1)), m.group(2)
            if unit == "%":
                relative += number / 100
            elif unit in units:
                absolute += number * units[unit]
            else:
                raise ValueError(f"{unit!r} is not a unit of {quantity} ({', '.join(units)}, %)")
        return cls(str(text).strip(), relative, absolute)

    def expanded(self, value: float) -> float:
        return float(self.relative) * abs(value) + float(self.absolute)


@dataclass(frozen=True)
class InstrumentCalibration:
    """What one instrument's calibration record says about its uncertainty."""

    role: str
    certificate: str
    k: float = 2.0
    statements: dict[str, Statement] = field(default_factory=dict)


# --- budgets -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Component:
    """One standard-uncertainty contribution: what it is, how it was evaluated, its value."""

    source: str  # what contributes, e.g. "calibration of the analyzer (CAL-2026-1187)"
    basis: str  # the stated figure, e.g. "U = 0.1 % (k = 2)" or "0.01 kWh"
    distribution: str  # "normal" or "rectangular"
    divisor: float
    u: float  # standard uncertainty, in the budget's unit

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "basis": self.basis, "distribution": self.distribution,
                "divisor": round(self.divisor, 6), "u": _sig(self.u, 4)}  # fmt: skip


@dataclass(frozen=True)
class Budget:
    """An observation's uncertainty budget (GUM): components combined root-sum-square."""

    quantity: str
    unit: str
    value: str  # as observed
    components: tuple[Component, ...]
    #: What should have contributed but the bench did not state (pre-submission only).
    missing: tuple[str, ...] = ()
    k: int = K

    @property
    def combined(self) -> float:
        return math.sqrt(sum(c.u * c.u for c in self.components))

    @property
    def expanded(self) -> Decimal:
        """U = k·u_c, rounded up to two significant digits (GUM 7.2.6)."""
        return round_up(self.k * self.combined)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "quantity": self.quantity, "unit": self.unit, "value": self.value, "k": self.k,
            "u_c": _sig(self.combined, 4), "U": str(self.expanded),
            "components": [c.to_json() for c in self.components],
        }  # fmt: skip
        if self.missing:
            out["missing"] = list(self.missing)
        return out


def round_up(x: float) -> Decimal:
    """``x`` rounded up to two significant digits (0 stays 0)."""
    if x <= 0:
        return Decimal(0)
    exponent = math.floor(math.log10(x)) - 1
    rounded = Decimal(repr(x)).quantize(Decimal(1).scaleb(exponent), rounding=ROUND_UP)
    return Decimal(format(rounded, "f"))


def _sig(x: float, digits: int) -> float:
    return float(f"{x:.{digits}g}") if x else 0.0


def resolution(step: Decimal | float, what: str, unit: str) -> Component:
    """A reading quantised to ``step``: the true value is within ±step/2 (rectangular)."""
    step = float(step)
    return Component(f"resolution of {what}", f"{_num(step)} {unit}", "rectangular",
                     2 * math.sqrt(3), step / (2 * math.sqrt(3)))  # fmt: skip


def sampling(interval: float, what: str, edges: int = 1) -> Component:
    """A time taken from a watch that samples every ``interval`` seconds.

    One edge (the first sample that saw the change; not corrected): the change happened within
    the interval before it, half-width ``interval``. Two edges (a duration between two
    observed changes, both late by the same kind of delay): the difference of two
    rectangulars of width ``interval``."""
    divisor = math.sqrt(3) if edges == 1 else math.sqrt(6)
    return Component(f"sampling interval of {what}" + (" (two edges)" if edges == 2 else ""),
                     f"{_num(interval)} s", "rectangular", divisor,
                     interval / divisor)  # fmt: skip


def calibration(cal: InstrumentCalibration | None, quantity: str, value: float) -> Component | str:
    """The calibration component of ``quantity`` read from ``cal``'s instrument at ``value``,
    or a sentence saying why there is none (the budget lists it as missing)."""
    if cal is None:
        return "calibration uncertainty of the instrument (no calibration record)"
    statement = cal.statements.get(quantity)
    if statement is None:
        return (f"calibration uncertainty of {quantity} of the {cal.role} "
                f"({cal.certificate} states none)")  # fmt: skip
    expanded = statement.expanded(value)
    return Component(f"calibration of the {cal.role} ({cal.certificate})",
                     f"U = {statement.text} (k = {cal.k:g})", "normal", cal.k,
                     expanded / cal.k)  # fmt: skip


def budget(quantity: str, unit: str, value: Any, parts: list[Component | str | None]) -> Budget:
    """A budget from its parts: components, sentences naming what is missing, or None."""
    components = tuple(p for p in parts if isinstance(p, Component))
    missing = tuple(p for p in parts if isinstance(p, str))
    return Budget(quantity, unit, str(value), components, missing)


def _num(x: float) -> str:
    return f"{x:.6g}"


# --- the decision ---------------------------------------------------------------------------


class Decision(StrEnum):
    ACCEPT = "accept"
    REJECT = "reject"
    GUARD_BAND = "guard band"  # inside the tolerance, within U of a limit (guarded rule)


def decide(
    rule: DecisionRule,
    measured: Decimal,
    low: Decimal | None,
    high: Decimal | None,
    expanded: Decimal,
) -> Decision:
    """Judge ``measured`` against the tolerance interval [low, high] (either side open)."""
    inside = (low is None or measured >= low) and (high is None or measured <= high)
    if not inside:
        return Decision.REJECT
    if rule is DecisionRule.SIMPLE:
        return Decision.ACCEPT
    clear = (low is None or measured > low + expanded) and (
        high is None or measured < high - expanded
    )
    return Decision.ACCEPT if clear else Decision.GUARD_BAND


def guard_band_note(budget_: Budget) -> str:
    return (f"inside the tolerance but within U = {budget_.expanded} {budget_.unit} of its "
            "limit: not accepted under guarded acceptance (guard band)")  # fmt: skip
