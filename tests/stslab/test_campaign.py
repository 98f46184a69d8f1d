"""Campaigns against SimLab with small packs of our own: PASS, FAIL with expected vs observed,
a defect caught, a transport fault that is ERROR (and the campaign goes on), a scenario that
does not apply (SKIP, with why), teardown, evidence by hash, and a record that adds up.

Scenarios inject through the optical port: its timing is the line's, not the simulated
clock's, so steps are quick at a low clock speed, which keeps the meter's 3 s result
message on the display long enough for the camera to read it on a busy machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dut.profile import MeterProfile
from simlab.bench import SimBench
from stslab.campaign import Outcome, ScenarioResult, StepResult
from stslab.journal import read_journal
from stslab.scenario import Scenario
from stslab.session import Campaign, CampaignConfig
from tests.stslab.test_pack import CREDIT_SCENARIO, write_pack

SPEED = 2.0
VALIDATED_SPEED = 20.0  # the default campaign speed
PORT_TIMEOUT_S = 2.0

BACK_TO_BACK = """\
id: T-USED-001
title: A token entered twice is refused as Used
group: TID
clauses: ["IEC 62055-41 TID check"]
carrier: port
steps:
  - id: first
    do: token
    token: {class: 0, subclass: 0, amount: 0.2}
    expect: {result: accept, credit: {change: 0.2}}
  - do: token
    token: {class: 0, subclass: 0, amount: 0.2, tid: {same_as: first}}
    expect: {result: used, display: used, credit: {change: 0}}
"""

#: The same, with the first Accept message (3 s) gone from the display before the re-entry.
PASSING = """\
id: T-USED-001
title: A token entered twice is refused as Used
group: TID
clauses: ["IEC 62055-41 TID check"]
carrier: port
steps:
  - id: first
    do: token
    token: {class: 0, subclass: 0, amount: 0.2}
    expect: {result: accept, credit: {change: 0.2}}
  - do: wait
    seconds: 4
  - do: token
    token: {class: 0, subclass: 0, amount: 0.2, tid: {same_as: first}}
    expect: {result: used, display: used, credit: {change: 0}}
"""

WRONG = """\
id: T-WRONG-001
title: An expectation the meter does not meet
group: TransferCredit
clauses: ["IEC 62055-41 TransferCredit"]
carrier: port
steps:
  - do: token
    token: {class: 0, subclass: 0, amount: 0.1}
    expect: {result: accept, credit: {change: 5.0, tolerance: 0.05}}
"""

FAULT = """\
id: T-FAULT-001
title: The port falls silent after the first step
group: TransferCredit
clauses: ["IEC 62055-41 TransferCredit"]
carrier: port
steps:
  - id: first
    do: token
    token: {class: 0, subclass: 0, amount: 0.1}
    expect: {result: accept}
  - id: second
    do: token
    token: {class: 0, subclass: 0, amount: 0.1}
    expect: {result: accept}
"""

AFTER = """\
id: T-AFTER-001
title: The campaign goes on after a fault
group: TransferCredit
clauses: ["IEC 62055-41 TransferCredit"]
carrier: port
steps:
  - do: token
    token: {class: 0, subclass: 0, amount: 0.1}
    expect: {result: accept}
"""

LOAD_ON = """\
id: T-LOAD-001
title: The load is left on at the end
group: LoadSwitch
clauses: ["IEC 62055-41 load switch"]
carrier: port
steps:
  - do: load
    "on": true
    mode: CP
    setpoint: 100
  - do: observe
"""

CARD = """\
id: T-CARD-001
title: A credit token on a magnetic card
group: Carriers
clauses: ["IEC 62055-51 magnetic card"]
applies: {carriers: [card]}
carrier: card
steps:
  - do: token
    token: {class: 0, subclass: 0, amount: 0.1}
    expect: {result: accept}
"""

PACK = {"1-used.yaml": PASSING, "2-wrong.yaml": WRONG, "3-fault.yaml": FAULT,
        "4-after.yaml": AFTER, "5-load.yaml": LOAD_ON}  # fmt: skip


@dataclass
class Run:
    """What one campaign left behind, for the tests to look at."""

    results: dict[str, ScenarioResult]
    record: dict[str, Any]
    directory: Path
    plant: Any = None
    pressed: frozenset[str] = frozenset()
    steps_seen: list[tuple[str, str]] = field(default_factory=list)


def _run_all(campaign: Campaign, between: Any = None) -> dict[str, ScenarioResult]:
    results = {}
    for scenario in campaign.pending():
        results[scenario.id] = campaign.run_scenario(scenario)
        if between is not None:
            between(scenario)
    return results


def _short_port_timeout(document: Any) -> Any:
    """SimLab's bench file with a 2 s port timeout (a silent port costs less waiting)."""

    def short(self: SimBench, profile_path: str | None = None) -> dict[str, Any]:
        doc = document(self, profile_path)
        doc["instruments"]["port"]["timeout_s"] = PORT_TIMEOUT_S
        return doc

    return short


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The pack above against SimLab's reference meter, the port falling silent during
    T-FAULT-001 (set from the step callback) and healed before the next scenario."""
    base = tmp_path_factory.mktemp("campaign")
    pack = write_pack(base / "pack", PACK)
    seen: list[tuple[str, str]] = []
    campaign = Campaign(CampaignConfig(out=base / "runs", pack=pack, speed=SPEED))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SimBench, "bench_document", _short_port_timeout(SimBench.bench_document))
        campaign.open()
    with contextlib.closing(campaign):

        def on_step(scenario: Scenario, step: StepResult) -> None:
            seen.append((scenario.id, step.label))
            if scenario.id == "T-FAULT-001" and step.label == "first":
                campaign._sim.fault("port").silent = True

        def heal(scenario: Scenario) -> None:
            campaign._sim.fault("port").clear()

        campaign.on_step = on_step
        results = _run_all(campaign, heal)
        sim = campaign._sim
        record = campaign.finish()
        # teardown has run; the bench is still up, so SimLab's side door shows the truth
        plant = sim.plant.state()
        pressed = sim.keypad_robot.pressed
        directory = campaign.run.directory
    return Run(results, record, directory, plant, pressed, seen)


def test_a_scenario_the_meter_meets_passes(run: Run) -> None:
    result = run.results["T-USED-001"]
    assert result.outcome is Outcome.PASS
    setup, first, wait, second = result.steps
    assert setup.kind == "setup" and setup.outcome is Outcome.PASS
    assert wait.kind == "wait" and wait.outcome is Outcome.PASS
    # The expectations the scenario writes, then the reference twin's side-effect check.
    assert [c.name for c in first.checks] == ["result", "credit change", "side effects"]
    assert all(c.outcome is Outcome.PASS for c in first.checks + second.checks)
    assert [(c.name, c.expected) for c in second.checks] == [
        ("result", "Used"),
        ("display", "USEd"),
        ("credit change", "0 ± 0.05"),
        ("side effects", "as the reference meter"),
    ]
    assert first.action["token"]["tid"] == second.action["token"]["tid"]
    assert first.action["carrier"] == "port"


def test_a_wrong_expectation_fails_showing_expected_and_observed(run: Run) -> None:
    result = run.results["T-WRONG-001"]
    assert result.outcome is Outcome.FAIL
    step = result.steps[-1]
    assert step.outcome is Outcome.FAIL
    assert step.error is None
    checks = {c.name: c for c in step.checks}
    assert (checks["result"].expected, checks["result"].observed) == ("Accept", "Accept")
    assert checks["result"].outcome is Outcome.PASS
    credit = checks["credit change"]
    assert credit.expected == "5.0 ± 0.05"
    assert credit.observed in ("0.1", "0.100")
    assert credit.unit == "kWh"
    assert credit.outcome is Outcome.FAIL


def test_a_transport_fault_is_an_error_not_a_failure(run: Run) -> None:
    result = run.results["T-FAULT-001"]
    assert result.outcome is Outcome.ERROR
    _setup, first, second = result.steps
    assert first.outcome is Outcome.PASS
    assert second.outcome is Outcome.ERROR
    assert second.checks == []  # no verdict on the meter
    assert "port" in second.error
    assert f"within {PORT_TIMEOUT_S}" in second.error  # the call timed out, not hung


def test_the_campaign_goes_on_after_a_fault(run: Run) -> None:
    assert run.results["T-AFTER-001"].outcome is Outcome.PASS
    assert [sid for sid, label in run.steps_seen if label == "setup"] == list(run.results)


def test_teardown_switches_the_load_and_source_off_and_releases_the_keys(run: Run) -> None:
    assert run.results["T-LOAD-001"].outcome is Outcome.PASS
    assert run.plant.load_on is False
    assert run.plant.source_on is False
    assert run.pressed == frozenset()


def test_evidence_frames_are_files_named_by_their_hash(run: Run) -> None:
    step = run.results["T-USED-001"].steps[-1]
    (frame,) = step.evidence
    assert frame["kind"] == "display_frame"
    assert "png" not in frame
    path = run.directory / frame["file"]
    assert path.name == f"{frame['sha256']}.png"
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG")
    assert hashlib.sha256(data).hexdigest() == frame["sha256"]
    recorded = next(s for s in run.record["scenarios"] if s["id"] == "T-USED-001")
    assert recorded["steps"][-1]["evidence"][0]["sha256"] == frame["sha256"]


def test_the_journal_holds_evidence_by_hash_only(run: Run) -> None:
    text = (run.directory / "benches/simlab-1/journal.jsonl").read_text()
    assert '"png"' not in text
    assert "iVBORw0KGgo" not in text  # a base64 PNG header
    frames = [
        ev
        for e in read_journal(run.directory / "benches/simlab-1/journal.jsonl")
        if e.kind == "step"
        for ev in e.data["evidence"]
    ]
    assert frames and all(set(ev) >= {"sha256", "file", "text"} for ev in frames)


def test_the_record_adds_up(run: Run) -> None:
    record = run.record
    assert json.loads((run.directory / "record.json").read_text()) == record
    summary = record["summary"]
    outcomes = Counter(s["outcome"] for s in record["scenarios"])
    assert {k: summary[k] for k in ("PASS", "FAIL", "ERROR", "SKIP")} == {
        k: outcomes.get(k, 0) for k in ("PASS", "FAIL", "ERROR", "SKIP")
    }
    assert (summary["PASS"], summary["FAIL"], summary["ERROR"]) == (3, 1, 1)
    assert summary["scenarios"] == summary["planned"] == len(PACK)
    assert summary["steps"] == sum(len(s["steps"]) for s in record["scenarios"])
    assert summary["verdict"] == "FAIL"
    assert [s["id"] for s in record["scenarios"]] == list(run.results)
    assert [s["outcome"] for s in record["scenarios"]] == [
        r.outcome.value for r in run.results.values()
    ]
    entries = read_journal(run.directory / "benches/simlab-1/journal.jsonl")
    assert record["journals"] == [{"file": "benches/simlab-1/journal.jsonl",
                                   "records": len(entries), "head": entries[-1].hash}]  # fmt: skip
    assert [(s["bench"], s["sample"]) for s in record["scenarios"]] == [
        ("simlab-1", record["dut"]["serial"])
    ] * len(PACK)
    assert record["complete"] is True
    assert record["interruptions"] == []
    assert record["bench"]["simulated"] is True
    assert set(record["bench"]["instruments"]) >= {"port", "display", "load", "source"}


def test_the_record_never_holds_the_vending_key(run: Run) -> None:
    text = (run.directory / "record.json").read_text() + (
        run.directory / "benches/simlab-1/journal.jsonl"
    ).read_text()
    assert "abababababababab" not in text.lower()
    assert run.record["dut"]["key_fingerprint"]


def test_a_meter_whose_pan_carries_a_wrong_check_digit_is_tested_and_the_record_says_so(
    tmp_path: Path, run: Run
) -> None:
    sample = "600727123456789012"  # its check digit 2 should be 4, its DRN's 1 should be 3
    text = Path(MeterProfile.builtin("default").source).read_text()
    text = text.replace('  pan: "600727000000000009"',
                        f'  pan: "{sample}"\n  pan_check_digit: relaxed')  # fmt: skip
    profile = tmp_path / "sample.yaml"
    profile.write_text(text)
    pack = write_pack(tmp_path / "pack", {"credit.yaml": CREDIT_SCENARIO})
    config = CampaignConfig(out=tmp_path / "runs", pack=pack, speed=SPEED, dut=str(profile))
    with Campaign(config) as campaign:
        (result,) = _run_all(campaign).values()
        record = campaign.finish()
    # The meter (SimLab, keyed from the same 18 digits) takes the tokens minted for it.
    assert result.outcome is Outcome.PASS, result
    assert record["dut"]["pan"] == sample
    assert record["dut"]["pan_check_digit"] == (
        "relaxed (PAN check digit 2, expected 4; DRN check digit 1, expected 3)"
    )
    assert "pan_check_digit" not in run.record["dut"]  # a sound PAN: nothing to say


def test_a_meter_defect_makes_the_scenario_that_tests_it_fail(tmp_path: Path) -> None:
    # The result register alone tells: no display expectation, so no display watch.
    pack = write_pack(tmp_path / "pack", {"1-used.yaml": PASSING.replace("display: used, ", "")})
    config = CampaignConfig(out=tmp_path / "runs", pack=pack, speed=SPEED,
                            defects=("accepts-used",))  # fmt: skip
    with Campaign(config) as campaign:
        (result,) = _run_all(campaign).values()
    assert result.outcome is Outcome.FAIL
    step = result.steps[-1]
    check = step.checks[0]
    assert (check.name, check.expected, check.observed) == ("result", "Used", "Accept")
    assert check.outcome is Outcome.FAIL


def test_a_scenario_that_does_not_apply_is_skipped_with_the_reason(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", {"card.yaml": CARD, "load.yaml": LOAD_ON})
    config = CampaignConfig(out=tmp_path / "runs", pack=pack, speed=SPEED, dut="ea11")
    campaign = Campaign(config)
    with pytest.raises(RuntimeError, match="operator stopped"), campaign:
        results = _run_all(campaign)
        sim = campaign._sim
        assert sim.plant.state().load_on is True
        raise RuntimeError("operator stopped the run")
    # teardown ran on the way out, even though the run ended in an exception
    assert sim.plant.state().load_on is False
    assert sim.plant.state().source_on is False
    card = results["T-CARD-001"]
    assert card.outcome is Outcome.SKIP
    assert card.skip_reason == "the meter declares no card carrier"
    assert card.steps == []
    entries = read_journal(campaign.run.directory / "benches/simlab-1/journal.jsonl")
    (end,) = [e for e in entries if e.kind == "scenario_end" and e.data["id"] == "T-CARD-001"]
    assert end.data["outcome"] == "SKIP"
    assert end.data["skip_reason"] == "the meter declares no card carrier"


def test_a_completed_scenario_is_not_run_twice(tmp_path: Path) -> None:
    from stslab.session import CampaignError

    pack = write_pack(tmp_path / "pack", {"card.yaml": CARD})
    with Campaign(CampaignConfig(out=tmp_path / "runs", pack=pack, dut="ea11")) as campaign:
        (scenario,) = campaign.pending()
        campaign.run_scenario(scenario)
        assert campaign.pending() == []
        with pytest.raises(CampaignError, match="already completed"):
            campaign.run_scenario(scenario)


def test_the_previous_entrys_message_is_not_taken_for_this_entrys_answer(
    tmp_path: Path,
) -> None:
    # Two entries 1 s apart on a 2x clock: the first Accept (3 s on the meter's clock) is
    # still shown when the second entry starts; the second entry's answer is Used.
    pack = write_pack(tmp_path / "pack", {"1-used.yaml": BACK_TO_BACK})
    with Campaign(CampaignConfig(out=tmp_path / "runs", pack=pack, speed=2.0)) as campaign:
        (result,) = _run_all(campaign).values()
    display = next(c for c in result.steps[-1].checks if c.name == "display")
    assert display.observed in ("USEd", "U5Ed"), display
    assert result.outcome is Outcome.PASS


def test_opening_a_campaign_twice_leaves_no_bench_running(tmp_path: Path) -> None:
    # ``with campaign:`` after ``campaign.open()`` is an easy mistake; it must not leave a
    # SimLab (threads, ptys, TCP listeners) running behind the campaign's back.
    from stslab.session import CampaignError

    pack = write_pack(tmp_path / "pack", {"card.yaml": CARD})
    campaign = Campaign(CampaignConfig(out=tmp_path / "runs", pack=pack))
    campaign.open()
    first = campaign._sim
    try:
        with contextlib.suppress(CampaignError):  # refusing is fine; a second bench is not
            campaign.open()
    finally:
        campaign.close()
    assert not first.running


THREE_CREDITS = """\
id: T-READOUT-001
title: Credit changes across steps, one of them after a wait
group: TransferCredit
clauses: ["IEC 62055-41 TransferCredit"]
carrier: port
steps:
  - do: token
    token: {class: 0, subclass: 0, amount: 0.2}
    expect: {result: accept, credit: {change: 0.2}}
  - do: token
    token: {class: 0, subclass: 0, amount: 0.3}
    expect: {result: accept, credit: {change: 0.3}}
  - do: wait
    seconds: 3
  - do: token
    token: {class: 0, subclass: 0, amount: 0.4}
    expect: {result: accept, credit: {change: 0.4}}
"""


def test_a_fresh_closing_readout_serves_as_the_next_steps_before(
    tmp_path: Path,
) -> None:
    pack = write_pack(tmp_path / "pack", {"1-credit.yaml": THREE_CREDITS})
    readouts_by_step: list[tuple[str, int]] = []
    with Campaign(CampaignConfig(out=tmp_path / "runs", pack=pack, speed=SPEED)) as campaign:
        port = campaign.drivers["port"]
        taken = [0]
        real_readout = port.readout

        def counted() -> Any:
            taken[0] += 1
            return real_readout()

        port.readout = counted

        def on_step(scenario: Scenario, step: StepResult) -> None:
            readouts_by_step.append((step.kind, taken[0]))
            taken[0] = 0

        campaign.on_step = on_step
        (result,) = _run_all(campaign).values()
    assert result.outcome is Outcome.PASS, [c for s in result.steps for c in s.checks]
    kinds = [kind for kind, _ in readouts_by_step]
    counts = dict(enumerate(n for _, n in readouts_by_step))
    first = kinds.index("token")
    second, wait, third = first + 1, first + 2, first + 3
    assert kinds[first : third + 1] == ["token", "token", "wait", "token"]
    assert counts[second] == 1  # the first token's closing readout was its "before"
    # The reference twin reads the meter after every step: the wait's closing readout is
    # fresh, so it serves as the third token's "before" too.
    assert counts[wait] == 1
    assert counts[third] == 1


def test_a_simlab_clock_above_the_validated_speed_is_a_recorded_deviation(
    tmp_path: Path, run: Run
) -> None:
    from stslab.session import VALIDATED_SIM_SPEED

    assert not any("clock speed" in d for d in run.record["deviations"])  # speed 2
    pack = write_pack(tmp_path / "pack", {"1-credit.yaml": WRONG})
    fast = CampaignConfig(out=tmp_path / "runs", pack=pack, speed=VALIDATED_SIM_SPEED * 2)
    with Campaign(fast) as campaign:
        record = campaign.finish()
    (deviation,) = [d for d in record["deviations"] if "clock speed" in d]
    assert f"clock speed {VALIDATED_SIM_SPEED * 2:g} is above {VALIDATED_SIM_SPEED:g}" in deviation


KWH_TEST_THEN_REST = """\
id: T-REST-001
title: After the cumulative kWh test display the meter is back at its credit
group: InitiateMeterTest
clauses: ["IEC 62055-41 InitiateMeterTest"]
carrier: port
steps:
  - do: token
    token: {class: 1, subclass: 0, tests: [2]}
    expect: {result: accept}
  - do: wait
    display: credit
    timeout_s: 300
"""


def test_waiting_for_the_credit_display_outlasts_a_test_display_showing_the_same_number(
    tmp_path: Path,
) -> None:
    # A fresh meter has no credit and has metered no energy: the cumulative kWh test shows
    # "0.0", the same number as the credit display. The wait must not end on it.
    pack = write_pack(tmp_path / "pack", {"1-rest.yaml": KWH_TEST_THEN_REST})
    config = CampaignConfig(out=tmp_path / "runs", pack=pack, speed=VALIDATED_SPEED)
    at_rest: list[tuple[bool, int]] = []
    with Campaign(config) as campaign:
        assert campaign._sim is not None
        sim = campaign._sim

        def on_step(scenario: Scenario, step: StepResult) -> None:
            if step.kind == "wait":
                snap = sim.true_state()
                at_rest.append((snap.showing_message, snap.tests_pending))

        campaign.on_step = on_step
        (result,) = _run_all(campaign).values()
    wait = result.steps[-1]
    assert result.outcome is Outcome.PASS, wait.error
    assert wait.observations["display"] == "0.0"
    assert at_rest == [(False, 0)]  # no message, no test display left: the credit


def test_waiting_for_the_credit_display_past_its_time_out_is_an_error(tmp_path: Path) -> None:
    short = KWH_TEST_THEN_REST.replace("timeout_s: 300", "timeout_s: 1")  # 50 ms real
    pack = write_pack(tmp_path / "pack", {"1-rest.yaml": short})
    config = CampaignConfig(out=tmp_path / "runs", pack=pack, speed=VALIDATED_SPEED)
    with Campaign(config) as campaign:
        (result,) = _run_all(campaign).values()
    wait = result.steps[-1]
    assert wait.outcome is Outcome.ERROR
    assert "did not return to the credit within 1 s" in (wait.error or "")


class _ProbeThatSeesIt:
    """A relay probe that sees the awaited state ``after_s`` real seconds into its wait."""

    def __init__(self, after_s: float) -> None:
        self.after_s = after_s
        self.timeouts: list[float] = []
        self.last_state = "closed"

    def wait(self, state: str, timeout_s: float) -> Any:
        from instruments.relay import RelayObservation, RelayTimeout

        self.timeouts.append(timeout_s)
        if self.after_s > timeout_s:
            seen = RelayObservation("closed", None, 0.0, ())  # type: ignore[arg-type]
            raise RelayTimeout(f"not {state} within {timeout_s:.3f} s", seen)
        return RelayObservation(state, self.after_s, 0.0, ())  # type: ignore[arg-type]


def _judge_relay_after(probe: _ProbeThatSeesIt, entered_s_ago: float | None) -> StepResult:
    import time
    from types import SimpleNamespace

    from stslab.campaign import Runner
    from stslab.clock import BenchClock
    from stslab.scenario import Expect
    from stslab.uncertainty import DecisionRule

    runner = Runner.__new__(Runner)  # only what judging the relay uses
    runner.bench = SimpleNamespace(relay=probe, calibrations={})
    runner.rule = DecisionRule.SIMPLE
    runner.clock = BenchClock(10.0)
    runner._relay_anchor = None if entered_s_ago is None else time.monotonic() - entered_s_ago
    runner._relay_judged = False
    res = StepResult(1, "1", "token", Outcome.PASS)
    expect = Expect.model_validate({"relay": {"state": "open", "within_s": 5}})  # 0.5 s real
    runner._judge_relay(expect, res)
    return res


def test_a_relay_window_counts_from_the_entry_not_from_the_observations_after_it() -> None:
    probe = _ProbeThatSeesIt(after_s=0.05)
    (check,) = _judge_relay_after(probe, entered_s_ago=0.3).checks
    assert 0.1 < probe.timeouts[0] <= 0.2  # what is left of the window 0.3 s after the entry
    assert check.outcome is Outcome.PASS
    seen_by = float(check.observed.split(" by ")[1].split()[0])
    assert 3.5 <= seen_by < 4.5  # (0.3 s before the wait + 0.05 s into it) x speed 10
    late = _ProbeThatSeesIt(after_s=0.25)  # within 0.5 s of the wait, not of the entry
    assert _judge_relay_after(late, entered_s_ago=0.3).checks[0].outcome is Outcome.FAIL


def test_outside_a_scenario_step_a_relay_window_opens_when_it_is_asked_for() -> None:
    probe = _ProbeThatSeesIt(after_s=0.25)  # a Robot keyword: no step, no entry to count from
    assert _judge_relay_after(probe, entered_s_ago=None).checks[0].outcome is Outcome.PASS
    assert probe.timeouts == [0.5]
