"""The accredited scenario pack (suites/sts-core) holds together before any meter sees it.

Static checks a scheme owner would make before signing the pack: every file loads, ids are
unique, every scenario cites clauses and a report group, every catalogued SimLab defect is
claimed by some scenario, the literal digits typed by hand are the tokens their notes say
(decoded here from REFERENCE.md alone, not with the project's token engine), the credit
changes expected for accepted amounts follow the round-up rule of REFERENCE §4.1, and each
scenario leaves the shared meter usable for the next one. ``stslab selftest`` then proves
dynamically that every defect makes some scenario FAIL.
"""

from __future__ import annotations

import re
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from simlab.defects import CATALOGUE
from sts.meter import Result
from stslab.scenario import (
    KeyChangeStep,
    KeysStep,
    LoadStep,
    RawStep,
    Scenario,
    TokenStep,
    load_scenarios,
    parse_result,
)

PACK = Path(__file__).resolve().parents[2] / "suites" / "sts-core"
FILES = sorted(p for p in PACK.glob("*.yaml") if p.name != "manifest.yaml")
GROUPS = {
    "TransferCredit", "TID", "Authentication", "Format", "InitiateMeterTest", "Management",
    "KeyChange", "Rollover/KEN", "Amounts", "LoadSwitch", "Keypad", "Carriers", "NonVolatile",
    "Display",
}  # fmt: skip
CATCHES = re.compile(r"catches:\s*([a-z0-9-]+)")
ACCEPTED = {Result.ACCEPT, Result.KCT1_RECEIVED, Result.KCT2_RECEIVED}
#: MPL the pack leaves set: above anything a bench draws.
RESTING_MPL = 16000


def _pack() -> list[Scenario]:
    scenarios: list[Scenario] = []
    for path in FILES:
        scenarios += load_scenarios(path)
    return scenarios


PACK_SCENARIOS = _pack()


def _ids(scenarios: list[Scenario]) -> list[str]:
    return [s.id for s in scenarios]


# --- independent decoding from REFERENCE.md (§2, §3) and amounts (§4.1) ----------------------


def crc_field(value: int, nbits: int = 56) -> int:
    """CRC-16/MODBUS over ``value`` as big-endian bytes, byte-swapped (REFERENCE §3)."""
    reg = 0xFFFF
    for byte in value.to_bytes(nbits // 8, "big"):
        reg ^= byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return (reg & 0xFF) << 8 | reg >> 8


def decode_class1(digits: str) -> tuple[int, int, int, bool]:
    """(subclass, control, mfr_code, crc_ok) of a class-1 token; AssertionError otherwise."""
    assert len(digits) == 20 and digits.isdigit(), f"{digits!r} is not 20 digits"
    t = int(digits)
    assert t < 1 << 66, f"{digits} is not below 2^66"
    token_class = (t >> 28 & 1) << 1 | (t >> 27 & 1)
    assert token_class == 1, f"{digits} is class {token_class}, not 1"
    block = t & ((1 << 64) - 1)
    block = (block & ~(0b11 << 27)) | (t >> 65 & 1) << 28 | (t >> 64 & 1) << 27
    subclass = block >> 60
    if subclass == 0:
        control, mfr = block >> 24 & ((1 << 36) - 1), block >> 16 & 0xFF
    else:
        control, mfr = block >> 32 & ((1 << 28) - 1), block >> 16 & 0xFFFF
    crc_ok = crc_field(token_class << 48 | block >> 16) == block & 0xFFFF
    return subclass, control, mfr, crc_ok


def carried_units(t: int) -> int:
    """The base units a token carries when asked for ``t`` (REFERENCE §4.1, rounded up)."""
    for e in range(4):
        offset = sum(2**14 * 10 ** (n - 1) for n in range(1, e + 1))
        m = max(0, -(-(t - offset) // 10**e))
        if m < 2**14:
            return m * 10**e + offset
    raise ValueError(f"{t} base units cannot be carried")


def test_the_independent_crc_reproduces_the_reference_example() -> None:
    assert crc_field(0x00B19EB230100) == 0xC207


def test_the_independent_amount_rule_reproduces_the_reference_table() -> None:
    assert carried_units(16383) == 16383
    assert carried_units(16385) == 16394
    assert [carried_units(t) for t in (180214, 180215, 180223)] == [180214, 180224, 180224]
    assert carried_units(18201624) == 18201624
    with pytest.raises(ValueError):
        carried_units(18201625)


# --- the pack as a whole -----------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_every_file_loads_and_holds_scenarios(path: Path) -> None:
    scenarios = load_scenarios(path)
    assert scenarios, f"{path.name} holds no scenarios"
    assert all(s.source_file == str(path) for s in scenarios)


def test_the_pack_has_at_least_sixty_scenarios() -> None:
    assert len(PACK_SCENARIOS) >= 60


def test_scenario_ids_are_unique_across_the_pack() -> None:
    twice = [i for i, n in Counter(_ids(PACK_SCENARIOS)).items() if n > 1]
    assert not twice, f"ids used more than once: {twice}"


@pytest.mark.parametrize("scenario", PACK_SCENARIOS, ids=_ids(PACK_SCENARIOS))
def test_every_scenario_cites_clauses_and_a_report_group(scenario: Scenario) -> None:
    assert scenario.clauses and all(c.strip() for c in scenario.clauses)
    assert all("IEC 6205" in c or "REFERENCE" in c for c in scenario.clauses)
    assert any("IEC 62055" in c for c in scenario.clauses), f"{scenario.id} cites no STS part"
    assert scenario.group in GROUPS, f"{scenario.id}: unknown group {scenario.group!r}"
    assert scenario.title.strip()


def test_every_catalogued_defect_is_claimed_by_a_scenario() -> None:
    claimed = {name for s in PACK_SCENARIOS for name in CATCHES.findall(s.description or "")}
    missing = sorted(d.name for d in CATALOGUE if d.name not in claimed)
    assert not missing, f"no scenario says it catches: {missing}"


def test_every_claimed_defect_exists() -> None:
    known = {d.name for d in CATALOGUE}
    for s in PACK_SCENARIOS:
        unknown = [n for n in CATCHES.findall(s.description or "") if n not in known]
        assert not unknown, f"{s.id} claims unknown defect(s) {unknown}"


def test_a_claimed_defect_is_caught_by_an_expectation_that_can_fail() -> None:
    # A scenario claiming a defect must expect something of the meter (a result, a display
    # text, credit, relay or readout): a scenario without expectations never FAILs.
    for s in PACK_SCENARIOS:
        if CATCHES.search(s.description or ""):
            assert any(getattr(step, "expect", None) is not None
                       or any("expect" in raw for raw in getattr(step, "steps", ()))
                       for step in s.steps), s.id  # fmt: skip


@pytest.mark.parametrize("scenario", PACK_SCENARIOS, ids=_ids(PACK_SCENARIOS))
def test_a_scenario_that_presses_keys_requires_a_keypad(scenario: Scenario) -> None:
    # Otherwise a meter without a keypad would get an ERROR instead of a SKIP.
    if any(isinstance(step, KeysStep) for step in scenario.steps):
        assert "keypad" in scenario.applies.carriers, scenario.id


# --- literal digits --------------------------------------------------------------------------


def _typed(step: KeysStep, carried: str = "") -> tuple[list[str], bool]:
    """The entries a keys step makes (digits before each Enter, after ``carried`` digits an
    earlier step left part-typed) and whether digits are left over."""
    entries, current = [], list(carried)
    for key in step.keys:
        if key.startswith("digits:"):
            current += list(key[len("digits:") :])
        elif key == "BACK":
            if current:
                current.pop()
        elif key == "ENTER":
            entries.append("".join(current))
            current = []
    return entries, bool(current)


def _literal_entries(scenario: Scenario) -> list[tuple[str, Result | None]]:
    """(digits, expected result) of every literal entry in the scenario, typed or raw."""
    out: list[tuple[str, Result | None]] = []
    carried = ""  # digits typed without Enter, still on the keypad (within its time-out)
    for step in scenario.steps:
        expect = getattr(step, "expect", None)
        want = parse_result(expect.result) if expect and expect.result else None
        if isinstance(step, RawStep) and step.digits is not None:
            out.append((step.digits, want))
        elif isinstance(step, KeysStep):
            entries, left = _typed(step, carried)
            carried = (
                "".join(k[len("digits:") :] for k in step.keys) if left and not entries else ""
            )
            for n, digits in enumerate(entries):
                out.append((digits, want if n == len(entries) - 1 else None))
    return out


def test_literal_entries_expected_to_be_accepted_are_valid_class1_tokens() -> None:
    checked = 0
    for s in PACK_SCENARIOS:
        for digits, want in _literal_entries(s):
            if want is not Result.ACCEPT:
                continue
            _subclass, control, mfr, crc_ok = decode_class1(digits)
            assert crc_ok, f"{s.id}: {digits} fails its CRC"
            assert mfr == 0, f"{s.id}: {digits} carries MfrCode {mfr}, not 0"
            tests = [b for b in range(36) if control >> b & 1]
            assert set(tests) <= set(s.applies.tests), (
                f"{s.id}: {digits} runs test(s) {tests}; applies.tests must require them"
            )
            checked += 1
    assert checked >= 5


def test_the_class1_literal_with_a_wrong_last_digit_still_says_class_1() -> None:
    # STS-AUTH-004 expects a CRC error: the class bits must be unchanged by the typo.
    (s,) = [s for s in PACK_SCENARIOS if s.id == "STS-AUTH-004"]
    (bad, want_bad), (good, want_good) = _literal_entries(s)
    assert want_bad is Result.CRC and want_good is Result.ACCEPT
    assert int(bad) - int(good) == 1
    assert decode_class1(bad)[3] is False and decode_class1(good)[3] is True


def test_the_19_digit_literal_is_a_valid_token_without_its_leading_zero() -> None:
    (s,) = [s for s in PACK_SCENARIOS if s.id == "STS-FMT-002"]
    (short, want_short), (full, want_full) = _literal_entries(s)
    assert len(short) == 19 and want_short is Result.FORMAT
    assert full == "0" + short and want_full is Result.ACCEPT
    assert decode_class1(full)[3]


def test_the_entry_timeout_scenario_splits_one_valid_token() -> None:
    (s,) = [s for s in PACK_SCENARIOS if s.id == "STS-KP-002"]
    keys = [step for step in s.steps if isinstance(step, KeysStep)]
    first, leftover = _typed(keys[0])
    rest, _ = _typed(keys[1])
    assert first == [] and leftover
    head = "".join(k[len("digits:") :] for k in keys[0].keys)
    assert len(head) + len(rest[0]) == 20 and decode_class1(head + rest[0])[3]


# --- amounts ---------------------------------------------------------------------------------


def test_expected_credit_for_accepted_electricity_tokens_is_the_amount_rounded_up() -> None:
    checked = 0
    for s in PACK_SCENARIOS:
        for step in s.steps:
            if not (isinstance(step, TokenStep) and step.expect and step.expect.credit):
                continue
            t = step.token
            credit = step.expect.credit
            if t.token_class != 0 or t.subclass != 0 or credit.change is None:
                continue
            if parse_result(step.expect.result or "accept") is not Result.ACCEPT:
                assert credit.change == 0, f"{s.id}: a refused token must add nothing"
                continue
            assert t.amount is not None
            units = carried_units(int(t.amount * 10))
            assert t.amount * 10 == int(t.amount * 10), f"{s.id}: {t.amount} is finer than 0.1"
            assert credit.change == Decimal(units) / 10, (
                f"{s.id}: {t.amount} kWh carries {Decimal(units) / 10} kWh"
            )
            checked += 1
    assert checked >= 20


def test_every_exponent_boundary_is_exercised() -> None:
    amounts = {
        int(step.token.amount * 10)
        for s in PACK_SCENARIOS
        if s.group == "Amounts"
        for step in s.steps
        if isinstance(step, TokenStep) and step.token.token_class == 0 and step.token.amount
    }
    boundaries = {16383, 16384, 180214, 180215, 180224, 1818524, 1818525, 1818624, 18201624}
    assert boundaries <= amounts, f"missing: {sorted(boundaries - amounts)}"


# --- the shared meter is left usable ---------------------------------------------------------


def _rejected(result: Result | None) -> bool:
    return result is not None and result not in ACCEPTED


def _step_results(step: object) -> list[Result]:
    expect = getattr(step, "expect", None)
    if expect is None:
        return []
    if isinstance(step, KeyChangeStep):
        listed = [parse_result(r) for r in expect.results or ()]
        return listed + ([parse_result(expect.result)] if expect.result is not None else [])
    return [parse_result(expect.result)] if expect.result is not None else []


@pytest.mark.parametrize("scenario", PACK_SCENARIOS, ids=_ids(PACK_SCENARIOS))
def test_no_scenario_runs_into_a_keypad_lockout_by_accident(scenario: Scenario) -> None:
    # Meters lock the keypad after a few rejected entries in a row (declared: three or more).
    # Outside the lockout scenario, at most two rejections come in a row, and a scenario that
    # expects a rejection ends with an accepted entry.
    if "lockout" in scenario.applies.features:
        return
    results = [r for step in scenario.steps for r in _step_results(step)]
    run = longest = 0
    for r in results:
        run = run + 1 if _rejected(r) else 0
        longest = max(longest, run)
    assert longest <= 2, f"{scenario.id}: {longest} rejections in a row"
    if any(_rejected(r) for r in results):
        assert results[-1] in ACCEPTED, f"{scenario.id} ends on a rejection"


@pytest.mark.parametrize("scenario", PACK_SCENARIOS, ids=_ids(PACK_SCENARIOS))
def test_a_scenario_leaves_the_load_off(scenario: Scenario) -> None:
    loads = [step for step in scenario.steps if isinstance(step, LoadStep)]
    if loads:
        assert loads[-1].on is False, f"{scenario.id} leaves the load on"


@pytest.mark.parametrize("scenario", PACK_SCENARIOS, ids=_ids(PACK_SCENARIOS))
def test_a_scenario_leaves_the_resting_power_limit(scenario: Scenario) -> None:
    limits = [
        step.token.value
        for step in scenario.steps
        if isinstance(step, TokenStep)
        and step.token.token_class == 2
        and step.token.subclass == 0
        and step.token.key == "current"
        and step.token.tid.rule == "next"
        and step.expect is not None
        and parse_result(step.expect.result or "accept") is Result.ACCEPT
    ]
    if limits:
        assert limits[-1] == RESTING_MPL, f"{scenario.id} leaves an MPL of {limits[-1]} W"


@pytest.mark.parametrize("scenario", PACK_SCENARIOS, ids=_ids(PACK_SCENARIOS))
def test_a_scenario_leaves_a_unique_key_that_never_expires(scenario: Scenario) -> None:
    installed = [
        step.new_key
        for step in scenario.steps
        if isinstance(step, KeyChangeStep)
        and (step.order is None or len(step.order) >= 2)
        and Result.ACCEPT in _step_results(step)
    ]
    if installed:
        last = installed[-1]
        assert last.kt in ("same", 2), f"{scenario.id} leaves key type {last.kt}"
        assert last.ken == "never", f"{scenario.id} leaves a key that expires"


def test_nothing_asks_for_an_old_tid_after_the_rollover() -> None:
    # After an RO key change the meter's store is empty: no TID is below it until it fills.
    seen_rollover = False
    for s in PACK_SCENARIOS:
        for step in s.steps:
            if isinstance(step, KeyChangeStep) and step.new_key.ro:
                seen_rollover = True
            if isinstance(step, TokenStep) and step.token.tid.rule == "below_store_min":
                assert not seen_rollover, f"{s.id} asks for an Old TID after the rollover"
    assert seen_rollover
