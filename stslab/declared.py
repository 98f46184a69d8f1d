"""The meter's declared parameters, as the catalogue proves them.

Each entry of :data:`PARAMETERS` is one thing a DUT profile declares that a scenario can
test at its boundary (a count, a time, a set, a policy). A scenario names what it proves
(``proves:``) and may take its numbers from the declaration (``{declared: path}``), so one
scenario tests every meter at that meter's own limit. :func:`coverage` answers, for one
profile, which scenarios prove each parameter; ``stslab selftest --coverage`` prints it and
the record carries it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dut.profile import MeterProfile

Reason = Callable[[MeterProfile], str | None]


def _always(_profile: MeterProfile) -> str | None:
    return None


def _keypad(profile: MeterProfile) -> str | None:
    return None if "keypad" in profile.carriers else "the meter declares no keypad carrier"


def _lockout(profile: MeterProfile) -> str | None:
    if not profile.keypad.lockout.enabled:
        return "the meter declares no keypad lockout"
    return _keypad(profile)


def _currency(profile: MeterProfile) -> str | None:
    if any(s >= 4 for s in profile.tokens.services):
        return None
    return "the meter declares no currency register (services 4-7)"


def _load_switch_test(profile: MeterProfile) -> str | None:
    if 0 in profile.tokens.supported_tests:
        return None
    return "the meter declares no class-1 load switch test (test 0)"


@dataclass(frozen=True)
class Parameter:
    """One declared parameter: where it is in the profile, what it means, when it applies."""

    path: str
    meaning: str
    kind: str  # count, time, set, policy, flag
    unit: str = ""
    not_applicable: Reason = _always

    def value(self, profile: MeterProfile) -> Any:
        return declared_value(profile, self.path)


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("tokens.tid_store_size", "TIDs the store holds", "count", "TIDs"),
    Parameter("tokens.credit_limit", "largest credit of a unit register", "count", "base units"),
    Parameter("tokens.currency_credit_limit", "largest credit of a currency register", "count",
              "10^-5 units", _currency),
    Parameter("tokens.services", "credit registers kept", "set"),
    Parameter("tokens.supported_tests", "class-1 tests supported", "set"),
    Parameter("tokens.mfr_code", "own MfrCode (0 and own accepted, others refused)", "set"),
    Parameter("tokens.kt_changes", "key type changes allowed and refused", "set"),
    Parameter("tokens.key_expiry", "whether the key expiry number is kept", "flag"),
    Parameter("tokens.supports_mppul", "phase power unbalance limit supported", "flag"),
    Parameter("tokens.supports_tariff_rate", "tariff rate supported", "flag"),
    Parameter("tokens.supports_water_meter_factor", "water meter factor supported", "flag"),
    Parameter("tokens.kct_kept_over_power_cycle", "partial key change set kept over a power cycle",
              "flag"),
    Parameter("keypad.entry_timeout_s", "entry time-out", "time", "s", _keypad),
    Parameter("keypad.min_hold_ms", "shortest key press the keypad registers", "time", "ms",
              _keypad),
    Parameter("keypad.lockout.after_rejects", "rejections before a lockout", "count", "entries",
              _lockout),
    Parameter("keypad.lockout.first_seconds", "first lockout", "time", "s", _lockout),
    Parameter("keypad.lockout.factor", "lockout growth factor", "count", "", _lockout),
    Parameter("keypad.lockout.max_seconds", "longest lockout", "time", "s", _lockout),
    Parameter("display.message_seconds", "result message display time", "time", "s"),
    Parameter("display.test_step_seconds", "class-1 test display time", "time", "s"),
    Parameter("display.credit_low_threshold", "credit below which the low-credit icon lights",
              "count", "base units"),
    Parameter("load_switch.mpl_trip_delay_s", "maximum power limit trip delay", "time", "s"),
    Parameter("load_switch.mpl_reconnect_s", "reconnection after a power limit trip", "time",
              "s"),
    Parameter("load_switch.test_open_s", "load switch test open time", "time", "s",
              _load_switch_test),
    Parameter("load_switch.reconnect_on_credit", "reconnection policy when credit returns",
              "policy"),
)  # fmt: skip

BY_PATH = {p.path: p for p in PARAMETERS}

#: Values a scenario may take from the profile without proving them (the meter's key data),
#: and values derived from the declaration.
VALUES = frozenset(
    {
        *BY_PATH,
        "key.kt",
        "key.krn",
        "key.ti",
        "key.ken",
        "keypad.lockout.nth_seconds",
        "keypad.lockout.lockouts_to_max",
    }
)

#: Declared sets a repeat may go through member by member.
SETS = frozenset(
    {"tokens.services", "tokens.supported_tests", "tokens.kt_changes", "tokens.mfr_code"}
)


class DeclaredError(ValueError):
    """A declared value a profile cannot give (a path it does not have)."""


def declared_value(profile: MeterProfile, path: str, n: int | None = None) -> Any:
    """The profile's value at ``path`` (dotted); ``keypad.lockout.nth_seconds`` takes ``n``:
    the length of the n-th lockout in a row (1-based), as the policy grows it."""
    policy = profile.keypad.lockout
    if path == "keypad.lockout.nth_seconds":
        k = max(1, n or 1)
        return min(policy.first_seconds * policy.factor ** (k - 1), policy.max_seconds)
    if path == "keypad.lockout.lockouts_to_max":
        if policy.factor <= 1 or policy.first_seconds >= policy.max_seconds:
            return 1
        return 1 + math.ceil(math.log(policy.max_seconds / policy.first_seconds, policy.factor))
    value: Any = profile
    for part in path.split("."):
        if not hasattr(value, part):
            raise DeclaredError(f"the profile has no {path}")
        value = getattr(value, part)
    return value


def members(profile: MeterProfile, path: str, among: list[int] | None, outside: bool) -> list[int]:
    """The members of a declared set (or, with ``outside``, the values of ``among`` that are not
    members). For ``tokens.kt_changes``: the key types the meter's own key type may change to;
    for ``tokens.mfr_code``: 0 and the meter's own code."""
    t = profile.tokens
    if path == "tokens.kt_changes":
        inside = sorted(t.kt_changes.get(profile.key.kt, ()))
    elif path == "tokens.mfr_code":
        inside = sorted({0, t.mfr_code})
    else:
        inside = sorted(set(declared_value(profile, path)))
    if not outside:
        return inside
    return [m for m in (among or []) if m not in inside]


@dataclass
class CoverageRow:
    """One declared parameter of one profile: its value and the scenarios that prove it."""

    parameter: str
    meaning: str
    value: str
    scenarios: list[str] = field(default_factory=list)
    #: why the parameter does not apply to this meter (None: it applies)
    not_applicable: str | None = None

    @property
    def covered(self) -> bool:
        return self.not_applicable is not None or bool(self.scenarios)

    def to_json(self) -> dict[str, Any]:
        return {
            "parameter": self.parameter,
            "meaning": self.meaning,
            "value": self.value,
            "scenarios": list(self.scenarios),
            "not_applicable": self.not_applicable,
        }


def shown(value: Any, unit: str = "") -> str:
    """A declared value as the record and the report show it."""
    if isinstance(value, dict):
        text = "; ".join(f"{k}→{','.join(map(str, v))}" for k, v in sorted(value.items()))
    elif isinstance(value, list | tuple):
        text = ", ".join(map(str, value))
    elif isinstance(value, float) and value.is_integer():
        text = str(int(value))
    else:
        text = str(value)
    return f"{text} {unit}".strip() if unit and unit != "base units" else text


def coverage(scenarios: list[Any], profile: MeterProfile) -> list[CoverageRow]:
    """Every declared parameter of ``profile`` with the scenarios that prove it on this meter
    (a scenario that does not apply to the meter proves nothing on it)."""
    from stslab.campaign import not_applicable

    rows = []
    for p in PARAMETERS:
        reason = p.not_applicable(profile)
        proving = []
        if reason is None:
            for s in scenarios:
                if p.path not in s.proves:
                    continue
                carrier = s.carrier if s.carrier != "any" else profile.carriers[0]
                if not_applicable(s, profile, carrier) is None:
                    proving.append(s.id)
        rows.append(CoverageRow(p.path, p.meaning, shown(p.value(profile), p.unit), proving,
                                reason))  # fmt: skip
    return rows


# --- a scenario's steps for one meter -----------------------------------------------------


def resolve(ref: dict[str, Any], profile: MeterProfile, margin: float) -> float:
    """The number a ``{declared: …}`` mapping stands for on ``profile``."""
    value = declared_value(profile, ref["declared"], ref.get("n"))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DeclaredError(f"{ref['declared']} is not a number ({value!r})")

    def amount(v: Any) -> float:
        return margin if v == "margin" else float(v or 0)

    scaled = float(value) * float(ref.get("times", 1.0))
    return scaled + amount(ref.get("plus")) - amount(ref.get("minus"))


def _resolved(raw: Any, profile: MeterProfile, margin: float) -> Any:
    if isinstance(raw, dict):
        if isinstance(raw.get("declared"), str) and "outside" not in raw:
            number = resolve(raw, profile, margin)
            return int(number) if number.is_integer() else number
        return {k: _resolved(v, profile, margin) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_resolved(v, profile, margin) for v in raw]
    return raw


def _has_ref(raw: Any) -> bool:
    if isinstance(raw, dict):
        return isinstance(raw.get("declared"), str) or any(_has_ref(v) for v in raw.values())
    if isinstance(raw, list):
        return any(_has_ref(v) for v in raw)
    return False


def _relabel(raw: dict[str, Any], labels: dict[str, str]) -> None:
    """Point ``since`` and ``tid.same_as`` at the same round's step."""
    if raw.get("since") in labels:
        raw["since"] = labels[raw["since"]]
    tid = (raw.get("token") or {}).get("tid") or {}
    if tid.get("same_as") in labels:
        tid["same_as"] = labels[tid["same_as"]]


def expand(scenario: Any, profile: MeterProfile, margin: float) -> Any:
    """``scenario`` as it runs on ``profile``: repeats unrolled, declared values in place
    (``margin``: the scenario's timing margin on this bench). Steps a repeat makes are
    labelled ``<repeat>.<round>.<step>``."""
    from stslab.scenario import _FLAT, RepeatStep, substitute

    def value_of(path: str) -> Any:
        return declared_value(profile, path)

    steps: list[Any] = []
    for i, step in enumerate(scenario.steps):
        if not isinstance(step, RepeatStep):
            raw = step.model_dump(by_alias=True)
            steps.append(_FLAT.validate_python(_resolved(raw, profile, margin))
                         if _has_ref(raw) else step)  # fmt: skip
            continue
        if step.each is not None:
            e = step.each
            rounds = [{"index": k, "member": m} for k, m in
                      enumerate(members(profile, e.declared, e.among, e.outside), 1)]  # fmt: skip
        else:
            times = step.times
            if isinstance(times, int):
                count: float = times
            else:
                assert times is not None
                count = resolve(times.model_dump(), profile, margin)
            rounds = [{"index": k, "member": k} for k in range(1, int(count) + 1)]
        name = step.id or f"step {i + 1}"
        for variables in rounds:
            labels: dict[str, str] = {}  # a step id in the body -> its label in this round
            for j, raw in enumerate(step.steps, 1):
                done = _resolved(substitute(raw, variables, value_of), profile, margin)
                _relabel(done, labels)
                made = _FLAT.validate_python(done)
                label = f"{name}.{variables['index']}.{made.id or j}"
                if made.id is not None:
                    labels[made.id] = label
                steps.append(made.model_copy(update={"id": label}))
    return scenario.model_copy(update={"steps": steps})
