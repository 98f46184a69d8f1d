"""Side effects: what the meter shows against what the reference twin allows, observable by
observable. Pure: observations in, differences out. The campaign runner and ``stslab
explore`` both judge through :func:`compare`.

An observable is named as a lab reads it (``credit``, ``tamper``, ``relay``,
``annunciator.keypad_lock`` …). The twin allows a set of exact values or a numeric range
(tolerance and timing already included): a value it cannot tell on this step (a message
that may just have ended, a load switch in its trip window) is allowed both ways.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from dut.profile import TWIN_OBSERVABLES, MeterProfile

#: Every observable the twin can predict, in the order a report lists them (the names a
#: DUT profile's ``twin.not_compared`` may use).
OBSERVABLES = TWIN_OBSERVABLES

#: How a difference is told in a sentence: what the observable is.
_WHAT = {
    "result": "the last token result",
    "credit": "the credit",
    "krn": "the key revision number (KRN)",
    "kt": "the key type (KT)",
    "ti": "the tariff index (TI)",
    "ken": "the key expiry number (KEN)",
    "mpl": "the maximum power limit",
    "tamper": "the tamper flag",
    "relay": "the load switch",
    "display": "the display",
}


def twin_declaration(profile: MeterProfile) -> dict[str, object]:
    """What the twin compares for this meter and what the profile turns off (with why)."""
    off = dict(profile.twin.not_compared)
    return {"compared": [n for n in OBSERVABLES if n not in off], "not_compared": off}


def describe_observable(name: str) -> str:
    if name.startswith("annunciator."):
        return f"the {name.split('.', 1)[1]} annunciator"
    if name.startswith("credit."):
        return f"credit register {name.split('.', 1)[1]}"
    return _WHAT.get(name, name)


def known(name: str) -> bool:
    """Whether ``name`` is an observable the twin predicts (a credit register ``credit.N``
    counts with ``credit``)."""
    return name in OBSERVABLES or name.startswith("credit.")


@dataclass(frozen=True)
class Allowed:
    """What the twin allows for one observable: exact values, a numeric range, or texts
    whose figures are given (a class-1 test display: the wording is the meter's own, the
    figures the standard's). ``unknown`` says why it cannot be compared at this moment."""

    values: frozenset[str] = frozenset()
    low: Decimal | None = None
    high: Decimal | None = None
    #: the value the twin holds, as a report shows it
    shown: str = ""
    #: each a text's numbers in order (``*``: any one number)
    figures: frozenset[tuple[str, ...]] = frozenset()
    unknown: str = ""

    @classmethod
    def exactly(cls, *values: str) -> Allowed:
        return cls(frozenset(canonical(v) for v in values), shown=" or ".join(values))

    @classmethod
    def between(cls, low: Decimal, high: Decimal, shown: str) -> Allowed:
        return cls(low=low, high=high, shown=shown)

    @classmethod
    def showing(cls, figures: tuple[str, ...], shown: str) -> Allowed:
        """A text that shows ``figures`` (and no other number), in whatever words."""
        return cls(figures=frozenset({tuple(_number(f) for f in figures)}), shown=shown)

    @classmethod
    def not_known(cls, why: str) -> Allowed:
        return cls(unknown=why, shown="not compared")

    def admits(self, observed: str) -> bool:
        if self.unknown or canonical(observed) in self.values:
            return True
        if self.figures and _figures_match(self.figures, figures_of(observed)):
            return True
        if self.low is None or self.high is None:
            return False
        try:
            return self.low <= Decimal(observed) <= self.high
        except InvalidOperation:
            return False


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def figures_of(text: str) -> tuple[str, ...]:
    """The numbers a display text shows, in order, by value (``"ti 01"`` -> ``("1",)``)."""
    return tuple(_number(n) for n in _NUMBER.findall(text))


def _number(text: str) -> str:
    return text if text == "*" else str(Decimal(text).normalize())


def _figures_match(options: frozenset[tuple[str, ...]], seen: tuple[str, ...]) -> bool:
    return any(len(o) == len(seen) and all(w in ("*", s) for w, s in zip(o, seen, strict=True))
               for o in options)  # fmt: skip


def canonical(value: str) -> str:
    """A value as the comparison sees it: display look-alikes (O/0, S/5), case and spacing
    folded, numbers by value."""
    text = " ".join(str(value).replace("O", "0").replace("S", "5").split()).upper()
    try:
        return str(Decimal(text).normalize())
    except InvalidOperation:
        return text


def either(a: Allowed, b: Allowed) -> Allowed:
    """What is allowed at one moment or the other (an observation taken over a while)."""
    if a == b:
        return a
    if a.unknown or b.unknown:
        return a if a.unknown else b
    lows = [x for x in (a.low, b.low) if x is not None]
    highs = [x for x in (a.high, b.high) if x is not None]
    shown = " or ".join(dict.fromkeys([*a.shown.split(" or "), *b.shown.split(" or ")]))
    return Allowed(a.values | b.values, min(lows) if lows else None,
                   max(highs) if highs else None, shown, a.figures | b.figures)  # fmt: skip


@dataclass(frozen=True)
class Difference:
    """One observable where the meter is not what the reference meter would be."""

    observable: str
    expected: str  # what the twin holds
    observed: str
    sentence: str


@dataclass
class Comparison:
    """One step compared: which observables were, which were not (and why), differences."""

    compared: list[str] = field(default_factory=list)
    not_compared: dict[str, str] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)


def compare(
    allowed: Mapping[str, Allowed],
    observed: Mapping[str, str],
    *,
    off: Mapping[str, str] | None = None,
    before: Mapping[str, str] | None = None,
    cause: str = "",
) -> Comparison:
    """Each observable read against the twin. ``off``: observables the DUT profile turns off
    (name -> why); ``before``: the values read after the previous step, so a difference can
    say what changed; ``cause``: the step's action, for the sentence."""
    off = off or {}
    before = before or {}
    out = Comparison()
    for name in sorted(set(allowed) | set(observed), key=_rank):
        if _is_off(name, off):
            out.not_compared[name] = _is_off(name, off) or ""
            continue
        if name not in observed:
            continue  # the bench cannot read it on this step
        if name not in allowed:
            continue
        if allowed[name].unknown:  # the twin cannot tell at this moment: the record says why
            out.not_compared[name] = allowed[name].unknown
            continue
        out.compared.append(name)
        want, seen = allowed[name], observed[name]
        if want.admits(seen):
            continue
        out.differences.append(
            Difference(name, want.shown, seen, _sentence(name, want.shown, seen, before, cause))
        )
    return out


def _is_off(name: str, off: Mapping[str, str]) -> str | None:
    if name in off:
        return off[name]
    if name.startswith("credit.") and "credit" in off:
        return off["credit"]
    return None


def _rank(name: str) -> tuple[int, str]:
    base = "credit" if name.startswith("credit.") else name
    return (OBSERVABLES.index(base) if base in OBSERVABLES else len(OBSERVABLES), name)


def _sentence(name: str, want: str, seen: str, before: Mapping[str, str], cause: str) -> str:
    what = describe_observable(name)
    on = f" on {cause}" if cause else ""
    was = before.get(name)
    if was is not None and canonical(was) != canonical(seen):
        return f"side effect: {what} went from {was} to {seen}{on}; the reference meter has {want}"
    return f"side effect: {what} is {seen}{on}; the reference meter has {want}"
