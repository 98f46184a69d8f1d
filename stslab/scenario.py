"""Conformance scenarios: the YAML format, its schema, and the loader.

A scenario tests one behaviour of IEC 62055-41/-51 with steps (mint and inject a token,
enter raw digits, press keys, set the load or source, wait, power cycle, ask the operator)
and expectations written from the standard: the result, what the display shows (through the
meter profile's vocabulary), the credit change, the load switch, readout values. The
reference meter is never the oracle.

Loading validates everything; an error names the file, the scenario id, the step and the
line. The JSON schema of the format is :func:`json_schema` (``stslab scenarios schema``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from sts.meter import Result
from sts.schema import DocumentError, key_name, read_text
from stslab.declared import BY_PATH, SETS, VALUES

SCENARIO_VERSION = 1
Carrier = Literal["keypad", "port", "card"]

RESULT_NAMES: dict[str, Result] = {r.name.lower(): r for r in Result}


class ScenarioError(DocumentError):
    """A scenario file that does not load (file, scenario id, step and line are named)."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Declared(_Model):
    """A number taken from the meter's declaration: ``{declared: keypad.entry_timeout_s,
    minus: margin}``. ``plus``/``minus`` are seconds (or units), or ``margin``: the
    scenario's timing margin on the bench it runs on; ``times`` scales first. ``n`` picks the
    n-th of a derived series (``keypad.lockout.nth_seconds``)."""

    declared: str
    plus: float | Literal["margin"] = 0.0
    minus: float | Literal["margin"] = 0.0
    times: float = 1.0
    n: int | None = Field(default=None, ge=1)

    @field_validator("declared")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in VALUES:
            raise ValueError(f"{v!r} is not a declared value ({', '.join(sorted(VALUES))})")
        return v


def _number_kind(value: Any) -> str:
    return "declared_value" if isinstance(value, dict | Declared) else "number"


#: Seconds (or a count): a positive number, or a value of the meter's declaration. Told apart
#: by shape, so a wrong number gets one error, not one per kind.
Number = Annotated[
    Annotated[Annotated[float, Field(gt=0)], Tag("number")]
    | Annotated[Declared, Tag("declared_value")],
    Discriminator(_number_kind),
]
#: A count (or base units): a whole number from 0, or a value of the meter's declaration.
Count = Annotated[
    Annotated[Annotated[int, Field(ge=0)], Tag("number")]
    | Annotated[Declared, Tag("declared_value")],
    Discriminator(_number_kind),
]

#: The shortest hold (and gap) a keypad robot makes, ms (KPR/1's ``CFG HOLD`` range starts here).
SHORTEST_HOLD_MS = 20
#: A key's hold, ms: a whole number the robot can make, or a value of the meter's declaration
#: (rounded to the ms when the step runs; a scenario whose hold falls below what the robot can
#: make is not judged, and the record says why).
HoldMs = Annotated[
    Annotated[Annotated[int, Field(ge=SHORTEST_HOLD_MS)], Tag("number")]
    | Annotated[Declared, Tag("declared_value")],
    Discriminator(_number_kind),
]

#: A register value a readout must show: text or a number, or a value of the declaration.
ReadoutValue = Annotated[
    Annotated[str | int, Tag("number")] | Annotated[Declared, Tag("declared_value")],
    Discriminator(_number_kind),
]


# --- what to mint ------------------------------------------------------------------------


class TidSpec(_Model):
    """Which TID a token gets, relative to the DUT ledger (never the wall clock).

    Exactly one of: ``next`` (the next free TID, the default), ``same_as`` (the TID of an
    earlier step's token), ``below_store_min`` (that many below the smallest TID the meter's
    store holds), ``at_store_min`` (that smallest TID itself), ``at_ken`` (the largest TID
    the key's KEN still allows), ``past_ken`` (the smallest TID past the KEN),
    ``advance_minutes`` (that many minutes after the last TID), ``absolute``.
    """

    next: bool | None = None
    same_as: str | None = None
    below_store_min: int | None = Field(default=None, ge=1)
    at_store_min: bool | None = None
    at_ken: bool | None = None
    past_ken: bool | None = None
    advance_minutes: int | None = Field(default=None, ge=1)
    absolute: int | None = Field(default=None, ge=0, lt=1 << 24)

    @model_validator(mode="after")
    def _one(self) -> TidSpec:
        given = [k for k, v in self.model_dump().items() if v not in (None, False)]
        if len(given) > 1:
            raise ValueError(f"give one TID rule, not {', '.join(given)}")
        return self

    @property
    def rule(self) -> str:
        for k, v in self.model_dump().items():
            if v not in (None, False):
                return k
        return "next"


class TokenSpec(_Model):
    """A token to mint with the DUT's current key (unless ``key`` says otherwise)."""

    token_class: Literal[0, 1, 2] = Field(alias="class")
    subclass: int = Field(ge=0, le=15)
    amount: Decimal | None = None  # class 0, in the service's unit
    value: int | None = Field(default=None, ge=0, le=0xFFFF)  # class 2
    tests: list[int] | Literal["all"] | None = None  # class 1: control bits, or all (test 0)
    control: str | None = None  # class 1: control bits as hex
    mfr_code: int | Literal["own", "other"] = 0
    tid: TidSpec = TidSpec()
    rnd: int | None = Field(default=None, ge=0, le=15)
    #: Key: the DUT's current key; "other_meter" (same key data, another PAN);
    #: "other_key" (the DUT's PAN, another KRN); "previous" (the key before the last change).
    key: Literal["current", "other_meter", "other_key", "previous"] = "current"

    @model_validator(mode="after")
    def _fields(self) -> TokenSpec:
        c, s = self.token_class, self.subclass
        if c == 0:
            if s > 7:
                raise ValueError(f"class 0 subclass {s} is reserved (0-7)")
            if self.amount is None:
                raise ValueError("a class 0 token needs amount")
        elif c == 1:
            if s not in (0, 1):
                raise ValueError("class 1 subclasses are 0 and 1")
            if (self.tests is None) == (self.control is None):
                raise ValueError("a class 1 token needs tests or control (one of them)")
        else:
            if s in (3, 4, 8, 9):
                raise ValueError("key change tokens are a key_change step")
            if s not in (0, 1, 2, 5, 6, 7):
                raise ValueError(f"class 2 subclass {s} is reserved")
            if self.value is None:
                raise ValueError("a class 2 token needs value")
        return self


class NewKeySpec(_Model):
    """The key a key change installs: attributes relative to the current key."""

    krn: int | Literal["next"] = "next"
    ti: int | Literal["same"] = "same"
    kt: int | Literal["same"] = "same"
    base_date: Literal[1993, 2014, 2035] | Literal["same"] = "same"
    sgc: int | Literal["same"] = "same"
    #: Key expiry number: an absolute value, or relative to the next TID's KEN unit.
    ken: int | Literal["never"] | dict[str, int] = "never"
    ro: bool = False


# --- expectations ------------------------------------------------------------------------


class CreditExpectation(_Model):
    """The change of a credit register across the step, in the service's unit."""

    register_no: int = Field(default=0, ge=0, le=7, alias="register")
    change: Decimal | None = None
    at_least: Decimal | None = None
    equals: Decimal | None = None  # the register's value after the step
    tolerance: Decimal = Decimal("0.05")


class EnergyExpectation(_Model):
    """The change of the meter's cumulative energy register (kWh) across the step: the
    energy it let through."""

    change: Decimal
    tolerance: Decimal = Field(default=Decimal("0.005"), ge=0)


class RelayExpectation(_Model):
    state: Literal["open", "closed"]
    within_s: float = Field(default=5.0, gt=0)


class DisplayTiming(_Model):
    """How long a display stayed, judged from the display watch: from when it appeared to
    when the next display replaced it. Name it by a result (``result``), by its text
    (``text``), or as the display that followed a result's message (``after``)."""

    result: str | None = None
    text: str | None = None
    after: str | None = None
    seconds: Number

    @model_validator(mode="after")
    def _one(self) -> DisplayTiming:
        given = [n for n in ("result", "text", "after") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("name the display by exactly one of result, text, after")
        for name in ("result", "after"):
            if getattr(self, name) is not None:
                parse_result(getattr(self, name))
        return self


class RelayTiming(_Model):
    """When the load switch reached ``state`` (``at_s`` after the step's action) and how
    long it stayed in it (``for_s``), judged from the relay probe within the scenario's
    timing tolerance. Without ``at_s`` the state must come within ``within_s``."""

    state: Literal["open", "closed"]
    at_s: Number | None = None
    for_s: Number | None = None
    within_s: float = Field(default=60.0, gt=0)


#: What a class-1 test display can be asked to show, and where the harness finds the value:
#: a declared readout register (``krn`` … ``energy_kwh``) or the declaration (``version``).
ShownValue = Literal["krn", "kt", "ti", "mpl", "mppul", "tamper", "energy_kwh", "version"]


class TestDisplay(_Model):
    """One class-1 test's display, in the order the meter shows the requested tests after
    the result message. ``shows``: the numbers on it, left to right, each the value of a
    quantity the harness reads elsewhere (the letters around them are the manufacturer's);
    a shown number stands for a value that rounds to it, within ``tolerance`` more.
    ``all_segments``: every digit segment and every annunciator of the layout lit (the
    information display test). ``annunciators``: icons lit while it shows."""

    __test__ = False  # not a pytest class

    test: int = Field(ge=0, le=15)
    shows: list[ShownValue] = []
    all_segments: bool = False
    annunciators: list[str] = []
    tolerance: Decimal = Field(default=Decimal(0), ge=0)


class AnnunciatorExpectation(_Model):
    """Annunciators (the layout's icon names) ``lit`` and ``dark`` on the display at the end
    of the step."""

    lit: list[str] = []
    dark: list[str] = []

    @model_validator(mode="after")
    def _disjoint(self) -> AnnunciatorExpectation:
        both = sorted(set(self.lit) & set(self.dark))
        if both:
            raise ValueError(f"{', '.join(both)}: both lit and dark")
        if not self.lit and not self.dark:
            raise ValueError("name at least one annunciator lit or dark")
        return self


class Expect(_Model):
    """What the standard says must be observed after a step."""

    result: str | int | None = None
    display: str | None = None  # a result name (via the vocabulary) or {text}
    display_text: str | None = None
    credit: CreditExpectation | None = None
    energy: EnergyExpectation | None = None
    relay: RelayExpectation | None = None
    #: Declared register name -> value (a value of the meter's declaration: ``{declared: …}``).
    readout: dict[str, ReadoutValue] | None = None
    #: Each listed key change section is answered as waiting for the rest, then Accept.
    results: list[str | int] | None = None
    display_for: DisplayTiming | None = None
    relay_timing: RelayTiming | None = None
    #: Declared readout registers (``credit``: every credit register) that must read the
    #: same after the step as before it (what a power cycle must keep).
    unchanged: list[str] | None = None
    #: What each requested class-1 test shows after the result message, in order.
    test_displays: list[TestDisplay] | None = None
    annunciators: AnnunciatorExpectation | None = None

    @field_validator("result", "display")
    @classmethod
    def _result_name(cls, v: str | int | None) -> str | int | None:
        if v is None:
            return v
        parse_result(v)
        return v

    @field_validator("results")
    @classmethod
    def _names(cls, v: list[str | int] | None) -> list[str | int] | None:
        for item in v or ():
            parse_result(item)
        return v


def parse_result(value: str | int) -> Result:
    if isinstance(value, int):
        try:
            return Result(value)
        except ValueError:
            raise ValueError(f"{value} is not a result code (1-16)") from None
    key = value.strip().lower().replace(" ", "_").replace("-", "_")
    if key not in RESULT_NAMES:
        raise ValueError(f"{value!r} is not a result ({', '.join(RESULT_NAMES)})")
    return RESULT_NAMES[key]


# --- steps -------------------------------------------------------------------------------


class _Step(_Model):
    id: str | None = None
    note: str | None = None
    expect: Expect | None = None
    via: Carrier | None = None


class TokenStep(_Step):
    do: Literal["token"]
    token: TokenSpec
    corrupt: Literal["typo"] | None = None


class KeyChangeStep(_Step):
    do: Literal["key_change"]
    new_key: NewKeySpec = NewKeySpec()
    #: Which KCT sections to enter, in order (1-based): [1, 2], [2, 1], [1] …
    order: list[int] | None = None


class RawStep(_Step):
    """Enter digits that may not be a token: literal digits or a named malformation."""

    do: Literal["raw"]
    digits: str | None = None
    malformed: Literal["19_digits", "21_digits", "too_large"] | None = None

    @model_validator(mode="after")
    def _one(self) -> RawStep:
        if (self.digits is None) == (self.malformed is None):
            raise ValueError("give digits or malformed (one of them)")
        return self


class KeysStep(_Step):
    """Press keypad keys (names from the DUT's keypad layout, or "digits:<run>")."""

    do: Literal["keys"]
    keys: list[str]
    #: The keys are typed this many times over (0: none), as one action answered once.
    times: Count = 1
    #: How long the robot holds each key (ms): a number, or a value of the declaration
    #: (``{declared: keypad.min_hold_ms, times: 0.5}``: a press too short to register).
    hold_ms: HoldMs | None = None
    gap_ms: int | None = Field(default=None, ge=SHORTEST_HOLD_MS)


class LoadStep(_Step):
    do: Literal["load"]
    on: bool = True
    mode: Literal["CC", "CR", "CP"] = "CP"
    setpoint: float = Field(default=0.0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _bare_on(cls, data: Any) -> Any:
        # YAML 1.1 reads a bare ``on:`` key as the boolean true.
        if isinstance(data, dict) and True in data and "on" not in data:
            return {("on" if k is True else k): v for k, v in data.items()}
        return data


class SourceStep(_Step):
    do: Literal["source"]
    output: bool = True
    voltage: float | None = Field(default=None, ge=0, le=300)
    frequency: float | None = Field(default=None, ge=45, le=65)


class WaitStep(_Step):
    """Wait (simulated or real time): a duration, an amount of energy, or a state.

    ``display: credit`` waits until the meter is back at its default display (a message or
    a test sequence has ended): the display steadily shows the number the port's credit
    register holds, to the display's last digit."""

    do: Literal["wait"]
    seconds: Number | None = None
    energy_wh: float | None = Field(default=None, gt=0)
    relay: Literal["open", "closed"] | None = None
    display: Literal["credit"] | None = None
    timeout_s: float = Field(default=600.0, gt=0)
    #: ``seconds`` count from the end of that earlier step's last entry (its Enter, the
    #: port's acknowledgement, the card presented), not from now: a boundary probe placed
    #: against a declared time that started there.
    since: str | None = None

    @model_validator(mode="after")
    def _one(self) -> WaitStep:
        kinds = ("seconds", "energy_wh", "relay", "display")
        given = [n for n in kinds if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("a wait needs exactly one of seconds, energy_wh, relay, display")
        if self.since is not None and self.seconds is None:
            raise ValueError("since goes with seconds")
        return self


class PowerCycleStep(_Step):
    do: Literal["power_cycle"]
    off_s: float = Field(default=5.0, gt=0)


class OperatorStep(_Step):
    """Ask the operator to do something by hand (open the terminal cover …). On SimLab,
    ``sim_action`` names what the simulated bench does in the operator's place."""

    do: Literal["operator"]
    prompt: str
    sim_action: Literal["raise_tamper"] | None = None


class ObserveStep(_Step):
    """No action: only the expectations."""

    do: Literal["observe"]


class FillStep(_Step):
    """Credit a register up to ``to`` base units (a declared limit, say) in as many transfer
    tokens as the amount needs, each exactly representable; each must be accepted."""

    do: Literal["fill"]
    register_no: int = Field(default=0, ge=0, le=7, alias="register")
    to: Count


class EachMember(_Model):
    """The members of a declared set (``outside``: the values of ``among`` that are not)."""

    declared: str
    outside: bool = False
    among: list[int] | None = None

    @model_validator(mode="after")
    def _set(self) -> EachMember:
        if self.declared not in SETS:
            raise ValueError(f"{self.declared!r} is not a declared set ({', '.join(sorted(SETS))})")
        if self.outside and not self.among:
            raise ValueError("outside needs among: the values to go through")
        return self


FlatStep = Annotated[
    TokenStep
    | KeyChangeStep
    | RawStep
    | KeysStep
    | LoadStep
    | SourceStep
    | WaitStep
    | PowerCycleStep
    | OperatorStep
    | ObserveStep
    | FillStep,
    Field(discriminator="do"),
]
_FLAT: TypeAdapter[Any] = TypeAdapter(FlatStep)


class RepeatStep(_Model):
    """Steps run ``times`` times (a number or a declared value, 0 allowed), or once for
    each member of a declared set (``each``). Inside, ``$index`` is the round (from 1),
    ``$member`` the member, and ``$<declared value>`` (``$key.kt``) a value of the meter's
    declaration; a repeat holds no repeat."""

    do: Literal["repeat"]
    id: str | None = None
    note: str | None = None
    times: Count | None = None
    each: EachMember | None = None
    steps: list[dict[str, Any]] = Field(min_length=1)

    @model_validator(mode="after")
    def _rounds(self) -> RepeatStep:
        if (self.times is None) == (self.each is None):
            raise ValueError("a repeat needs times or each (one of them)")
        for i, raw in enumerate(self.steps, 1):
            if isinstance(raw, dict) and raw.get("do") == "repeat":
                raise ValueError(f"steps {i}: a repeat holds no repeat")
            try:
                _FLAT.validate_python(substitute(raw, {"index": 1, "member": 0}, _placeholder))
            except Exception as exc:  # pydantic's ValidationError, named by its first error
                errors = getattr(exc, "errors", None)
                first = errors()[0] if callable(errors) else {"loc": (), "msg": str(exc)}
                where = ".".join(str(p) for p in first["loc"] if not _internal(p))
                msg = str(first["msg"]).removeprefix("Value error, ")
                text = f"steps {i}: {where}: {msg}" if where else f"steps {i}: {msg}"
                raise ValueError(text) from None
        return self


def _placeholder(_path: str) -> Any:
    return 1


def substitute(raw: Any, variables: dict[str, Any], declared: Any) -> Any:
    """``raw`` with ``$index``/``$member`` and ``$<declared value>`` strings replaced."""
    if isinstance(raw, dict):
        return {k: substitute(v, variables, declared) for k, v in raw.items()}
    if isinstance(raw, list):
        return [substitute(v, variables, declared) for v in raw]
    if isinstance(raw, str) and raw.startswith("$"):
        name = raw[1:]
        if name in variables:
            return variables[name]
        if name in VALUES:
            return declared(name)
        raise ValueError(f"{raw!r} is not $index, $member or a declared value")
    return raw


Step = Annotated[FlatStep | RepeatStep, Field(discriminator="do")]


STEP_KINDS = frozenset(
    {"token", "key_change", "raw", "keys", "load", "source", "wait", "power_cycle", "operator",
     "observe", "fill", "repeat"}
)  # fmt: skip


class Applicability(_Model):
    """What the DUT must have declared for the scenario to apply (else SKIP, with why)."""

    carriers: list[Carrier] = Field(default_factory=list)
    features: list[str] = Field(default_factory=list)
    #: Features the meter must NOT declare (e.g. the Function error where MPPUL is absent).
    absent: list[str] = Field(default_factory=list)
    tests: list[int] = Field(default_factory=list)  # class-1 tests the meter supports
    services: list[int] = Field(default_factory=list)
    ea: list[Literal["07", "09", "11"]] = Field(default_factory=list)
    #: Only a meter as its maker shipped it: the harness has issued it no token and changed
    #: nothing of its key (its ledger says so); on any other meter the scenario is a SKIP.
    meter_new: bool = False


FEATURES = frozenset(
    {
        "key_expiry",
        "mppul",
        "tariff_rate",
        "water_meter_factor",
        "lockout",
        "kct_2",
        "kct_4",
        "reconnect_auto",
        "reconnect_key",
        "kct_kept",
    }
)


class TimingMargin(_Model):
    """How close to a declared time the scenario probes and measures: ``exact_s`` on a bench
    whose time is exact (SimLab's virtual time), ``real_s`` on a bench running in real time
    (wire SimLab, hardware), where the carriers' and observers' latencies add up."""

    exact_s: float = Field(default=0.5, gt=0)
    real_s: float = Field(default=2.0, gt=0)


class Scenario(_Model):
    scenario_version: Literal[1] = 1
    id: str = Field(pattern=r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$")
    title: str
    clauses: list[str] = Field(min_length=1)
    group: str
    description: str | None = None
    applies: Applicability = Applicability()
    carrier: Carrier | Literal["any"] = "any"
    #: Credit (electricity, kWh) the meter must hold before the steps; topped up if short.
    setup_credit: Decimal | None = None
    #: Scenarios with the same sequence depend on the state the earlier ones leave: they run
    #: on one sample, one after the other, in pack order (never spread over benches).
    sequence: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    steps: list[Step] = Field(min_length=1)
    #: Declared parameters (dut profile paths) the scenario tests at their boundary.
    proves: list[str] = Field(default_factory=list)
    timing: TimingMargin = TimingMargin()
    source_file: SkipJsonSchema[str] = Field(default="<memory>", exclude=True)
    source_line: SkipJsonSchema[int] = Field(default=1, exclude=True)  # of the id

    @field_validator("applies")
    @classmethod
    def _features(cls, v: Applicability) -> Applicability:
        unknown = sorted((set(v.features) | set(v.absent)) - FEATURES)
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; known: {sorted(FEATURES)}")
        return v

    @field_validator("proves")
    @classmethod
    def _proves(cls, v: list[str]) -> list[str]:
        unknown = [p for p in v if p not in BY_PATH]
        if unknown:
            raise ValueError(f"{unknown} are not declared parameters ({', '.join(BY_PATH)})")
        return v

    @model_validator(mode="after")
    def _step_ids(self) -> Scenario:
        seen: set[str] = set()
        for i, step in enumerate(self.steps, 1):
            if step.id is not None:
                if step.id in seen:
                    raise ValueError(f"step {i}: id: {step.id!r} is used twice")
                seen.add(step.id)
            same_as = step.token.tid.same_as if isinstance(step, TokenStep) else None
            if same_as is not None and same_as not in seen:
                raise ValueError(f"step {i}: token.tid.same_as: {same_as!r} names no earlier step")
            since = step.since if isinstance(step, WaitStep) else None
            if since is not None and since not in seen:
                raise ValueError(f"step {i}: since: {since!r} names no earlier step")
        return self

    def _raw_steps(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every step as written, a repeat's steps in its place, each with its label."""

        def walk(raws: list[Any], where: str) -> Iterator[tuple[str, dict[str, Any]]]:
            for i, raw in enumerate(raws, 1):
                if not isinstance(raw, dict):
                    continue
                label = f"{where}step {raw.get('id') or i}"
                if raw.get("do") == "repeat":
                    yield from walk(raw.get("steps") or [], f"{label}: ")
                else:
                    yield label, raw

        return walk(self.model_dump(mode="json", by_alias=True)["steps"], "")

    def timed_values(self) -> set[str]:
        """The declared values the scenario times against: a wait ``since`` an entry (a probe
        placed just inside or just past a declared time), a key's declared hold and the
        timing expectations."""
        found: set[str] = set()

        def refs(raw: Any) -> None:
            if isinstance(raw, dict):
                if isinstance(raw.get("declared"), str):
                    found.add(raw["declared"])
                for v in raw.values():
                    refs(v)
            elif isinstance(raw, list):
                for v in raw:
                    refs(v)

        for _label, raw in self._raw_steps():
            if raw.get("do") == "wait" and raw.get("since"):
                refs(raw.get("seconds"))
            if raw.get("do") == "keys":
                refs(raw.get("hold_ms"))
            expect = raw.get("expect") or {}
            refs(expect.get("display_for"))
            refs(expect.get("relay_timing"))
        return found

    def declared_holds(self) -> list[tuple[str, dict[str, Any]]]:
        """Each keys step's hold taken from the declaration (its label, the declared value as
        written), repeats' steps included."""
        return [(label, raw["hold_ms"]) for label, raw in self._raw_steps()
                if raw.get("do") == "keys" and isinstance(raw.get("hold_ms"), dict)]  # fmt: skip

    def step_label(self, index: int) -> str:
        step = self.steps[index]
        return step.id or f"step {index + 1}"


class ScenarioFile(_Model):
    """A scenario file holds one scenario or a list under ``scenarios``; a file-level
    ``sequence`` puts every scenario of the file in that sequence."""

    sequence: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    scenarios: list[Scenario]

    @model_validator(mode="after")
    def _one_sequence(self) -> ScenarioFile:
        for s in self.scenarios:
            if self.sequence and s.sequence and s.sequence != self.sequence:
                raise ValueError(f"scenario {s.id} has sequence {s.sequence!r}; the file's is "
                                 f"{self.sequence!r}")  # fmt: skip
        return self


def load_scenarios(path: str | Path) -> list[Scenario]:
    """Every scenario in one YAML file, validated."""
    try:
        text = read_text(path, "scenario file")
    except DocumentError as exc:
        raise ScenarioError(str(exc)) from None
    return parse_scenarios(text, str(path))


def parse_scenarios(text: str, source: str) -> list[Scenario]:
    from pydantic import ValidationError

    from sts.schema import line_of, not_a_mapping, parse_yaml_text

    try:
        data, first_root = parse_yaml_text(text, source)
    except DocumentError as exc:
        raise ScenarioError(str(exc)) from None
    if not isinstance(data, dict):
        raise ScenarioError(not_a_mapping(data, first_root, source))
    wrapped = "scenarios" in data
    body = text if wrapped else _indent_as_list(text)
    data, root = parse_yaml_text(body, source)
    try:
        doc = ScenarioFile.model_validate(data if isinstance(data, dict) else {})
    except ValidationError as exc:
        raise ScenarioError(_explain(exc, root, source, data, 0 if wrapped else 1)) from None
    shift = 0 if wrapped else 1
    return [
        s.model_copy(update={"source_file": source,
                             "source_line": max(1, (line_of(root, ("scenarios", i, "id")) or 1)
                                                - shift),
                             "sequence": s.sequence or doc.sequence})
        for i, s in enumerate(doc.scenarios)
    ]  # fmt: skip


def _indent_as_list(text: str) -> str:
    # A single-scenario file is read as a one-item list (line numbers shift by one).
    return "scenarios:\n- " + "\n  ".join(text.splitlines()) + "\n"


_STEP_MESSAGE = re.compile(r"step (\d+): ([\w.]+): (.*)", re.DOTALL)


def _internal(part: Any) -> bool:
    # pydantic's own steps in an error location: a validator function, a mapping key's name.
    return isinstance(part, str) and (
        part.startswith("function-") or part in ("[key]", "number", "declared_value")
    )


def _explain(exc: Any, root: Any, source: str, data: Any, shift: int) -> str:
    """Each error as ``file:line: scenario <id> step <n>: key.path: message``."""
    from sts.schema import line_of

    items = data.get("scenarios") if isinstance(data, dict) else None
    out = []
    for err in exc.errors():
        loc = [p for p in err["loc"] if not _internal(p)]
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        msg = msg.removeprefix("Value error, ")
        if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
            # The step kind: name the ``do`` key itself, and the kinds there are.
            kinds = ", ".join(sorted(STEP_KINDS))
            tag = (err.get("ctx") or {}).get("tag")
            loc = [*loc, "do"]
            msg = f"{tag!r} is not a step kind ({kinds})" if tag else f"missing: one of {kinds}"
        where, key, line_loc = "", list(loc), list(loc)
        if len(loc) >= 2 and loc[0] == "scenarios" and isinstance(loc[1], int):
            index = loc[1]
            item = items[index] if isinstance(items, list) and index < len(items) else None
            sid = item.get("id") if isinstance(item, dict) else None
            where = f"scenario {sid if sid is not None else '(no id)'}"
            key = loc[2:]
            step_msg = _STEP_MESSAGE.match(msg) if not key else None
            if len(key) >= 2 and key[0] == "steps" and isinstance(key[1], int):
                step = key[1]
                steps = item.get("steps") if isinstance(item, dict) else None
                entry = steps[step] if isinstance(steps, list) and step < len(steps) else None
                key = key[2:]
                if key and isinstance(entry, dict) and key[0] == entry.get("do"):
                    key = key[1:]  # the step union's tag, not a key of the file
                where += f" step {step + 1}"
                line_loc = ["scenarios", index, "steps", step, *key]
            elif step_msg is not None:  # a scenario-level rule about one step
                step = int(step_msg.group(1))
                key = step_msg.group(2).split(".")
                msg = step_msg.group(3)
                where += f" step {step}"
                line_loc = ["scenarios", index, "steps", step - 1, *key]
        line = line_of(root, tuple(line_loc))
        head = f"{source}:{max(1, line - shift)}" if line else source
        parts = [head, where, ".".join(key_name(p) for p in key), msg]
        out.append(": ".join(p for p in parts if p))
    return "\n".join(out)


def json_schema() -> str:
    """The published JSON schema of a scenario."""
    return json.dumps(Scenario.model_json_schema(by_alias=True), indent=2)
