"""Every declared parameter proven at its boundary: the coverage of the catalogue on both
built-in profiles, declared values and repeats in scenarios, timing expectations judged on
virtual time, declared times a fast wire bench cannot judge, and the record's section."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dut.profile import MeterProfile
from stslab.campaign import Outcome
from stslab.cli import main
from stslab.declared import BY_PATH, PARAMETERS, coverage, expand
from stslab.scenario import ScenarioError, TokenStep, parse_scenarios
from stslab.session import DEFAULT_PACK, Campaign, CampaignConfig, load_pack
from tests.stslab.test_pack import CREDIT_SCENARIO, write_pack

PROFILES = ("default", "ea11")


@pytest.fixture(scope="module")
def catalogue() -> list[Any]:
    return load_pack(DEFAULT_PACK)


@pytest.mark.parametrize("name", PROFILES)
def test_every_declared_parameter_of_a_builtin_profile_is_proven_or_not_applicable(
    catalogue: list[Any], name: str
) -> None:
    rows = coverage(catalogue, MeterProfile.builtin(name))
    assert [r.parameter for r in rows] == [p.path for p in PARAMETERS]
    unproven = [r.parameter for r in rows if not r.covered]
    assert unproven == []


def test_what_one_builtin_profile_cannot_show_the_other_does(catalogue: list[Any]) -> None:
    rows = {n: coverage(catalogue, MeterProfile.builtin(n)) for n in PROFILES}
    for i, p in enumerate(PARAMETERS):
        applicable = [n for n in PROFILES if rows[n][i].not_applicable is None]
        assert applicable, f"{p.path} applies to neither built-in profile"
    default = {r.parameter: r for r in rows["default"]}
    assert default["tokens.currency_credit_limit"].not_applicable is not None
    assert "STS-DCL-CRD-002" in rows["ea11"][2].scenarios


def test_coverage_fails_when_a_declared_parameter_has_no_scenario(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    pack = write_pack(tmp_path / "pack", {"1-credit.yaml": CREDIT_SCENARIO})
    assert main(["selftest", "--coverage", "--pack", str(pack)]) == 1
    out = capsys.readouterr().out
    assert "tokens.tid_store_size" in out and "NONE" in out
    assert "coverage failed" in out
    assert main(["selftest", "--coverage", "--dut", "ea11"]) == 0
    out = capsys.readouterr().out
    assert "STS-DCL-TID-001" in out and "declared parameters proven: 25/25" in out


REPEATS = """\
id: T-DCL-001
title: Declared values and repeats
group: TID
clauses: ["IEC 62055-41 TID"]
proves: [tokens.services]
steps:
  - do: repeat
    times: {declared: tokens.tid_store_size, minus: 1}
    steps:
      - do: token
        token: {class: 0, subclass: 0, amount: 0.1}
  - do: repeat
    each: {declared: tokens.services, outside: true, among: [0, 1, 2, 3, 4]}
    steps:
      - id: probe
        do: token
        token: {class: 0, subclass: $member, amount: 0.1}
      - do: wait
        seconds: {declared: display.message_seconds, plus: margin}
        since: probe
"""


def test_repeats_unroll_to_the_meters_own_declaration() -> None:
    (scenario,) = parse_scenarios(REPEATS, "repeats.yaml")
    for name, store, outside in (("default", 20, [1, 2, 3, 4]), ("ea11", 50, [1, 2, 3])):
        run = expand(scenario, MeterProfile.builtin(name), margin=0.5)
        tokens = [s for s in run.steps if isinstance(s, TokenStep)]
        assert len(tokens) == store - 1 + len(outside)
        assert [t.token.subclass for t in tokens[store - 1 :]] == outside
        waits = [s for s in run.steps if s.do == "wait"]
        message = MeterProfile.builtin(name).display.message_seconds
        assert {w.seconds for w in waits} == {message + 0.5}
        # a wait counts from the probe of its own round
        assert [w.since for w in waits] == [f"step 2.{k}.probe" for k in range(1, len(outside) + 1)]


def test_a_declared_value_the_profile_does_not_have_is_refused_with_its_line() -> None:
    text = REPEATS.replace("tokens.tid_store_size", "tokens.tid_store")
    with pytest.raises(ScenarioError) as err:
        parse_scenarios(text, "bad.yaml")
    message = str(err.value)
    assert message.startswith("bad.yaml:") and "T-DCL-001" in message
    assert "'tokens.tid_store' is not a declared value" in message
    with pytest.raises(ScenarioError, match=r"proves.*not declared parameters"):
        parse_scenarios(REPEATS.replace("[tokens.services]", "[tokens.colour]"), "bad.yaml")


# --- on SimLab ------------------------------------------------------------------------------


def _run(tmp_path: Path, **config: Any) -> tuple[list[Any], dict[str, Any]]:
    cfg = CampaignConfig(out=tmp_path, **{"bench": "virtual", **config})
    with Campaign(cfg) as campaign:
        results = [campaign.run_scenario(s) for s in campaign.pending()]
        record = campaign.finish()
    assert record is not None
    return results, record


@pytest.fixture(scope="module")
def catalogue_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The whole catalogue on the reference meter on virtual time, for both profiles."""
    return {n: _run(tmp_path_factory.mktemp(n), dut=n) for n in PROFILES}


@pytest.mark.parametrize("name", PROFILES)
def test_the_catalogue_passes_on_both_builtin_profiles_and_the_record_says_what_it_proved(
    catalogue_runs: dict[str, Any], name: str
) -> None:
    results, record = catalogue_runs[name]
    bad = [(r.id, r.outcome) for r in results if r.outcome not in (Outcome.PASS, Outcome.SKIP)]
    assert bad == []
    section = {d["parameter"]: d for d in record["declared_parameters"]}
    assert list(section) == list(BY_PATH)
    assert {d["verdict"] for d in section.values()} <= {"PASS", "N/A"}
    store = section["tokens.tid_store_size"]
    assert store["value"] == f"{MeterProfile.builtin(name).tokens.tid_store_size} TIDs"
    assert "STS-DCL-TID-001" in store["scenarios"]


def test_every_declared_parameter_passes_on_one_builtin_profile_or_the_other(
    catalogue_runs: dict[str, Any],
) -> None:
    passed = {d["parameter"] for _results, record in catalogue_runs.values()
              for d in record["declared_parameters"] if d["verdict"] == "PASS"}  # fmt: skip
    assert passed == set(BY_PATH)
    _results, default = catalogue_runs["default"]
    na = {d["parameter"]: d for d in default["declared_parameters"] if d["verdict"] == "N/A"}
    assert "no currency register" in na["tokens.currency_credit_limit"]["notes"][0]


def test_a_message_kept_a_second_too_long_fails_with_the_time_it_stayed(tmp_path: Path) -> None:
    results, _record = _run(tmp_path, select=("STS-DCL-DSP-001",), defects=("message-too-long",))
    (result,) = results
    assert result.outcome is Outcome.FAIL
    timing = [c for s in result.steps for c in s.checks if c.name.startswith("display time")]
    assert timing[0].outcome is Outcome.FAIL
    assert timing[0].expected.startswith("3 s") and timing[0].observed == "4 s"


def test_a_power_limit_trip_two_seconds_late_fails_with_when_it_came(tmp_path: Path) -> None:
    results, _record = _run(tmp_path, select=("STS-DCL-LS-001",), defects=("mpl-trips-late",))
    (result,) = results
    checks = {c.name: c for s in result.steps for c in s.checks}
    late = checks["load switch open at"]
    assert late.outcome is Outcome.FAIL
    assert late.expected == "5 s ± 0.1 s" and late.observed == "not open by 5.1 s"


def test_a_declared_time_a_fast_wire_bench_stretches_is_not_judged_and_the_record_says_why(
    tmp_path: Path,
) -> None:
    results, record = _run(tmp_path, bench="sim", speed=20.0, select=("STS-DCL-DSP",))
    assert [r.outcome for r in results] == [Outcome.SKIP, Outcome.SKIP]
    reason = results[0].skip_reason or ""
    assert reason.startswith("not judged:") and "display.message_seconds" in reason
    section = {d["parameter"]: d for d in record["declared_parameters"]}
    message = section["display.message_seconds"]
    assert message["verdict"] == "NOT JUDGED"
    assert any("not judged" in n for n in message["notes"])
    assert section["tokens.tid_store_size"]["verdict"] == "NOT RUN"


def test_a_key_hold_shorter_than_a_robot_can_make_is_not_judged_and_the_record_says_why(
    tmp_path: Path,
) -> None:
    # The keypad's declared 20 ms: half of it is a press no keypad robot can make.
    source = Path(MeterProfile.builtin("default").source).read_text()
    assert "  min_hold_ms: 50" in source
    profile = tmp_path / "short-hold.yaml"
    profile.write_text(source.replace("  min_hold_ms: 50", "  min_hold_ms: 20"))
    results, record = _run(tmp_path / "run", dut=str(profile), select=("STS-DCL-KP-002",))
    (result,) = results
    assert result.outcome is Outcome.SKIP
    assert result.skip_reason == (
        "not judged: step 2 holds a key 10 ms (from the declared keypad.min_hold_ms, 20 ms); "
        "a keypad robot holds a key 20 ms at least"
    )
    section = {d["parameter"]: d for d in record["declared_parameters"]}
    assert section["keypad.min_hold_ms"]["verdict"] == "NOT JUDGED"


def test_a_key_hold_on_a_fast_wire_bench_is_not_judged_and_the_record_says_why(
    tmp_path: Path,
) -> None:
    results, _record = _run(tmp_path, bench="sim", speed=20.0, select=("STS-DCL-KP-002",))
    (result,) = results
    assert result.outcome is Outcome.SKIP
    assert result.skip_reason == (
        "not judged: the bench times keypad.min_hold_ms no finer than 0.02 s real; at clock "
        "speed 20 the declared 50 ms is 2.5 ms real (run at speed 2.5 or below, or on virtual "
        "time)"
    )


def test_a_keypad_that_registers_presses_too_short_fails_the_hold_probe(tmp_path: Path) -> None:
    results, _record = _run(
        tmp_path, select=("STS-DCL-KP-002",), defects=("short-press-registered",)
    )
    (result,) = results
    assert result.outcome is Outcome.FAIL
    failed = [c for s in result.steps for c in s.checks if c.outcome is Outcome.FAIL]
    assert failed and failed[0].name == "display" and failed[0].expected == "23"


@pytest.mark.parametrize(("name", "kept"), [("default", "STS-DCL-KCT-003"),
                                            ("ea11", "STS-DCL-KCT-004")])  # fmt: skip
def test_a_meter_declaring_it_keeps_a_partial_key_change_set_passes_the_kept_scenario(
    tmp_path: Path, name: str, kept: str
) -> None:
    source = Path(MeterProfile.builtin(name).source).read_text()
    profile = tmp_path / f"{name}-kept.yaml"
    profile.write_text(source.replace("tokens:\n", "tokens:\n  kct_kept_over_power_cycle: true\n"))
    results, record = _run(tmp_path / "run", dut=str(profile), select=("STS-DCL-KCT",))
    outcomes = {r.id: r.outcome for r in results}
    assert outcomes[kept] is Outcome.PASS
    assert Outcome.FAIL not in outcomes.values()
    section = {d["parameter"]: d for d in record["declared_parameters"]}
    assert section["tokens.kct_kept_over_power_cycle"]["value"] == "True"
    assert section["tokens.kct_kept_over_power_cycle"]["verdict"] == "PASS"
