"""The scenario loader: valid files load (a list file and a single-scenario file), and every
mistake names the file, the scenario id, the step number and the line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from sts.meter import Result
from stslab.scenario import (
    KeyChangeStep,
    ObserveStep,
    RawStep,
    ScenarioError,
    TokenStep,
    WaitStep,
    load_scenarios,
    parse_result,
)

LIST_FILE = """\
# two scenarios in one file
scenarios:
  - id: T-LOAD-001
    title: Used after Accept
    group: TID
    clauses: ["IEC 62055-41 TID"]
    description: a credit token twice
    applies: {carriers: [port], features: [key_expiry], ea: ["07"]}
    carrier: port
    setup_credit: 2.5
    steps:
      - id: first
        do: token
        token: {class: 0, subclass: 0, amount: 1.5, rnd: 3}
        expect: {result: accept, credit: {change: 1.5, tolerance: 0.01}}
      - do: token
        via: keypad
        token: {class: 0, subclass: 0, amount: 1.5, tid: {same_as: first}}
        expect: {result: used, display: used}
      - do: wait
        seconds: 2
  - id: T-LOAD-002
    title: Other steps
    group: KeyChange
    clauses: ["IEC 62055-41 key change", "REFERENCE §8"]
    steps:
      - do: key_change
        new_key: {krn: next, ken: {relative: 1}}
        order: [2, 1]
        expect: {results: [kct1_received, accept]}
      - do: raw
        malformed: 19_digits
        expect: {result: format}
      - do: observe
        expect: {display_text: "0.0"}
"""

SINGLE_FILE = """\
id: T-ONE-001
title: One scenario, no list
group: Management
clauses: ["IEC 62055-41 class 2"]
steps:
  - do: token
    token: {class: 2, subclass: 0, value: 16000, tid: {advance_minutes: 5}}
    expect: {result: accept}
"""


def test_a_list_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(LIST_FILE)
    first, second = load_scenarios(path)
    assert (first.id, second.id) == ("T-LOAD-001", "T-LOAD-002")
    assert first.source_file == str(path)
    assert first.carrier == "port"
    assert first.setup_credit == Decimal("2.5")
    assert first.applies.carriers == ["port"] and first.applies.ea == ["07"]
    one, two, three = first.steps
    assert isinstance(one, TokenStep) and isinstance(two, TokenStep)
    assert isinstance(three, WaitStep) and three.seconds == 2
    assert one.token.amount == Decimal("1.5") and one.token.rnd == 3
    assert one.token.tid.rule == "next"
    assert two.token.tid.rule == "same_as" and two.token.tid.same_as == "first"
    assert two.via == "keypad"
    assert parse_result(two.expect.result) is Result.USED
    assert one.expect.credit.tolerance == Decimal("0.01")
    assert first.step_label(0) == "first" and first.step_label(1) == "step 2"
    kc, raw, observe = second.steps
    assert isinstance(kc, KeyChangeStep) and kc.order == [2, 1]
    assert kc.new_key.ken == {"relative": 1}
    assert isinstance(raw, RawStep) and raw.malformed == "19_digits"
    assert isinstance(observe, ObserveStep)


def test_a_single_scenario_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(SINGLE_FILE)
    (scenario,) = load_scenarios(path)
    assert scenario.id == "T-ONE-001"
    assert scenario.source_file == str(path)
    step = scenario.steps[0]
    assert isinstance(step, TokenStep)
    assert (step.token.token_class, step.token.value) == (2, 16000)
    assert step.token.tid.rule == "advance_minutes"


# --- mistakes -------------------------------------------------------------------------------

#: A scenario with a mistake; "# <-" marks the line the error must name. The good first step
#: makes the bad one step 2.
BAD_SCENARIO = """\
id: {id}
title: the one with the mistake
group: G
clauses: ["c"]{applies}
steps:
  - id: first
    do: token
    token: {{class: 0, subclass: 0, amount: 1.0}}
{step}
"""

STEP_CASES = {
    "unknown key": (
        [
            "  - do: token",
            "    token: {class: 0, subclass: 0, amount: 1.0}",
            "    expect: {result: accept, colour: red}  # <-",
        ],
        "expect.colour: unknown key",
    ),
    "wrong type": (
        [
            "  - do: token",
            "    token: {class: 0, subclass: 0, amount: 1.0}",
            "    expect: {relay: {state: open, within_s: soon}}  # <-",
        ],
        "expect.relay.within_s: Input should be a valid number",
    ),
    "bad step kind": (
        ["  - do: dance  # <-", "    expect: {result: accept}"],
        "'dance'",
    ),
    "same_as names no earlier step": (
        [
            "  - do: token",
            "    token: {class: 0, subclass: 0, amount: 1.0, tid: {same_as: later}}  # <-",
            "  - id: later",
            "    do: observe",
        ],
        "'later' names no earlier step",
    ),
    "class 0 without amount": (
        ["  - do: token", "    token: {class: 0, subclass: 0}  # <-"],
        "a class 0 token needs amount",
    ),
    "reserved class 0 subclass": (
        ["  - do: token", "    token: {class: 0, subclass: 9, amount: 1.0}  # <-"],
        "class 0 subclass 9 is reserved",
    ),
    "reserved class 2 subclass": (
        ["  - do: token", "    token: {class: 2, subclass: 10, value: 1}  # <-"],
        "class 2 subclass 10 is reserved",
    ),
    "bad result name": (
        [
            "  - do: token",
            "    token: {class: 0, subclass: 0, amount: 1.0}",
            "    expect: {result: acceptable}  # <-",
        ],
        "'acceptable' is not a result",
    ),
    "two TID rules": (
        [
            "  - do: token",
            "    token: {class: 0, subclass: 0, amount: 1, tid: {next: true, absolute: 5}}  # <-",
        ],
        "give one TID rule",
    ),
    "raw needs digits or malformed": (
        ["  - do: raw  # <-", "    digits: '123'", "    malformed: 19_digits"],
        "give digits or malformed",
    ),
}

SCENARIO_CASES = {
    "bad id pattern": ("t_bad_1", "", "id: String should match pattern"),
    "unknown feature": (
        "T-BAD-001",
        "\napplies: {features: [teleport]}  # <-",
        "unknown feature(s) ['teleport']",
    ),
}


def _as_list_item(text: str) -> str:
    lines = text.splitlines()
    return "\n".join(["  - " + lines[0], *("    " + line for line in lines[1:])])


def _files(tmp_path: Path, bad: str) -> list[tuple[Path, int]]:
    """The bad scenario alone in a file, and second in a list file, each with the marked line
    (1-based) the error must name."""
    good = "id: T-GOOD-001\ntitle: fine\ngroup: G\nclauses: [c]\nsteps:\n  - do: observe"
    single = tmp_path / "single.yaml"
    single.write_text(bad)
    listed = tmp_path / "listed.yaml"
    listed.write_text("scenarios:\n" + _as_list_item(good) + "\n" + _as_list_item(bad) + "\n")
    out = []
    for path in (single, listed):
        lines = path.read_text().splitlines()
        marked = [n for n, line in enumerate(lines, 1) if line.rstrip().endswith("# <-")]
        if not marked:  # the mistake is in the id: its own line
            marked = [n for n, line in enumerate(lines, 1) if "t_bad_1" in line]
        out.append((path, marked[0]))
    return out


@pytest.mark.parametrize("case", list(STEP_CASES))
def test_a_step_mistake_names_file_scenario_step_and_line(tmp_path: Path, case: str) -> None:
    step, reason = STEP_CASES[case]
    bad = BAD_SCENARIO.format(id="T-BAD-001", applies="", step="\n".join(step))
    for path, line in _files(tmp_path, bad):
        with pytest.raises(ScenarioError) as info:
            load_scenarios(path)
        message = str(info.value)
        assert f"{path}:{line}: " in message, message
        assert "scenario T-BAD-001 step 2" in message, message
        assert reason in message, message


@pytest.mark.parametrize("case", list(SCENARIO_CASES))
def test_a_scenario_mistake_names_file_scenario_and_line(tmp_path: Path, case: str) -> None:
    sid, applies, reason = SCENARIO_CASES[case]
    step = "  - do: observe"
    bad = BAD_SCENARIO.format(id=sid, applies=applies, step=step)
    for path, line in _files(tmp_path, bad):
        with pytest.raises(ScenarioError) as info:
            load_scenarios(path)
        message = str(info.value)
        assert f"{path}:{line}: scenario {sid}: " in message, message
        assert reason in message, message


def test_a_missing_required_key_is_named(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(SINGLE_FILE.replace('clauses: ["IEC 62055-41 class 2"]\n', ""))
    with pytest.raises(ScenarioError) as info:
        load_scenarios(path)
    assert f"{path}:1: scenario T-ONE-001: clauses: Field required" in str(info.value)


def test_every_mistake_in_a_file_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(
        LIST_FILE.replace("seconds: 2", "seconds: -2").replace("19_digits", "18_digits")
    )
    with pytest.raises(ScenarioError) as info:
        load_scenarios(path)
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{path}:21: scenario T-LOAD-001 step 3: seconds:")
    assert lines[1].startswith(f"{path}:32: scenario T-LOAD-002 step 2: malformed:")


def test_a_duplicated_step_id_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(SINGLE_FILE + "  - id: s\n    do: observe\n  - id: s\n    do: observe\n")
    with pytest.raises(ScenarioError) as info:
        load_scenarios(path)
    assert f"{path}:11: scenario T-ONE-001 step 3: " in str(info.value)
    assert "'s' is used twice" in str(info.value)


def test_text_that_is_not_yaml_is_a_scenario_error_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("id: T-X-001\ntitle: [unclosed\ngroup: G\n")
    with pytest.raises(ScenarioError) as info:
        load_scenarios(path)
    assert f"{path}:" in str(info.value)
    assert "not valid YAML" in str(info.value)


def test_a_file_that_is_a_bare_list_says_what_is_wrong(tmp_path: Path) -> None:
    path = tmp_path / "bare.yaml"
    path.write_text("- id: T-X-001\n  title: x\n")
    with pytest.raises(ScenarioError) as info:
        load_scenarios(path)
    message = str(info.value)
    assert f"{path}:" in message
    assert "dictionary" in message or "mapping" in message, message


@pytest.mark.parametrize("value", [True, False])
def test_a_load_steps_on_key_may_be_written_unquoted(tmp_path: Path, value: bool) -> None:
    # YAML 1.1 reads a bare ``on`` as the boolean true; the documented key must still work.
    path = tmp_path / "load.yaml"
    path.write_text(SINGLE_FILE + f"  - do: load\n    on: {str(value).lower()}\n")
    step = load_scenarios(path)[0].steps[1]
    assert step.do == "load"
    assert step.on is value


DISPLAY_FILE = """\
id: T-DSP-001
title: What the test displays and icons show
group: Display
clauses: ["IEC 62055-41 class 1"]
steps:
  - do: token
    token: {class: 1, subclass: 0, tests: [3, 1]}
    expect:
      test_displays:
        - {test: 3, shows: [krn, kt]}
        - {test: 1, all_segments: true, annunciators: [kwh]}
      annunciators: {lit: [kwh], dark: [keypad_lock]}
"""


def test_test_displays_and_annunciators_load(tmp_path: Path) -> None:
    path = tmp_path / "display.yaml"
    path.write_text(DISPLAY_FILE)
    (scenario,) = load_scenarios(path)
    expect = scenario.steps[0].expect
    assert expect is not None and expect.test_displays is not None
    assert [(d.test, d.shows, d.all_segments) for d in expect.test_displays] == [
        (3, ["krn", "kt"], False),
        (1, [], True),
    ]
    assert expect.annunciators is not None
    assert (expect.annunciators.lit, expect.annunciators.dark) == (["kwh"], ["keypad_lock"])


@pytest.mark.parametrize(
    ("change", "line", "says"),
    [
        ("dark: [keypad_lock]", 12, "kwh: both lit and dark"),
        ("shows: [krn, kt]", 10, "shows.1: Input should be"),
    ],
)
def test_a_wrong_display_expectation_names_its_line_and_key(
    tmp_path: Path, change: str, line: int, says: str
) -> None:
    wrong = {"dark: [keypad_lock]": "dark: [keypad_lock, kwh]",
             "shows: [krn, kt]": "shows: [krn, colour]"}[change]  # fmt: skip
    path = tmp_path / "display.yaml"
    path.write_text(DISPLAY_FILE.replace(change, wrong))
    with pytest.raises(ScenarioError) as info:
        load_scenarios(path)
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert message.startswith(f"{path}:{line}: scenario T-DSP-001 step 1: ")
    assert says in message
