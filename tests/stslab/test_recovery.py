"""Back to rest after a fault: a scenario that ERRORs on a bench fault leaves the meter in a
state no verdict may judge (half a token typed, a message, a test sequence); the runner
brings bench and meter back to rest before the next scenario, journals what it did and saw,
and makes the next scenario ERROR while the bench does not come back.

The known case: STS-C1-017 ERRORs on a keypad robot line spoilt in the middle of the token;
STS-C1-018, which has no fault at all, must PASS after it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from reports.render import ReportMeta, load_run, render_html, report_id
from stslab.campaign import Outcome, ScenarioResult
from stslab.journal import read_journal
from stslab.run import journal_path
from stslab.session import Campaign, CampaignConfig

MIDDLE = 7  # keys of the token pressed before the robot's lines are spoilt


def _spoil_keypad_after(sim: Any, keys: int, **fault: Any) -> None:
    """Set the keypad robot's transport ``fault`` once ``keys`` more keys were pressed: the
    driver meets it in the middle of the entry, as a garbled line on a bench does.
    ``one_line=True``: the robot's next line alone is garbled (its answer to the ABORT that
    follows arrives whole)."""
    key_up = sim.meter.key_up
    pressed = [0]
    faults = sim.fault("keypad")

    def garble_one(data: bytes) -> bytes:
        del faults.apply  # back to the class's own
        return data.replace(b"EVT", b"E\x16T", 1)

    def counting(key: str) -> None:
        key_up(key)
        pressed[0] += 1
        if pressed[0] == keys:
            for name, value in fault.items():
                if name == "one_line":
                    faults.apply = garble_one
                else:
                    setattr(faults, name, value)

    sim.meter.key_up = counting


def _run(campaign: Campaign, faulty: dict[str, dict], healed_after: set[str]) -> dict:
    """Run the campaign's scenarios; ``faulty`` spoils the keypad in the middle of a
    scenario's first entry; the fault is cleared after the scenarios in ``healed_after``."""
    sim = campaign._sim
    results: dict[str, ScenarioResult] = {}
    entries: dict[str, str] = {}
    original = sim.meter.key_up
    for scenario in campaign.pending():
        if scenario.id in faulty:
            _spoil_keypad_after(sim, MIDDLE, **faulty[scenario.id])
        results[scenario.id] = campaign.run_scenario(scenario)
        sim.meter.key_up = original
        entries[scenario.id] = sim.true_state().entry  # side door: what the meter holds
        if scenario.id in healed_after:
            sim.fault("keypad").clear()
    return {"results": results, "entries": entries}


def _recoveries(campaign: Campaign) -> list[dict]:
    path = journal_path(campaign.run.directory, campaign.shard.name)
    return [e.data for e in read_journal(path) if e.kind == "recovery"]


def _config(tmp_path: Path, bench: str, *ids: str) -> CampaignConfig:
    return CampaignConfig(bench=bench, out=tmp_path, select=ids)


def _cut_then_next(
    tmp_path: Path, ids: tuple[str, str], keys: int, peek: Callable[[Any], Any]
) -> tuple[ScenarioResult, Any, ScenarioResult, dict, Any]:
    """The first of ``ids`` with the robot's lines spoilt after ``keys`` keys (the fault
    cleared after it), then the second after its return to rest, on virtual time. Returns
    the cut scenario, what ``peek`` saw of the meter between them, the second scenario, the
    return to rest and the campaign's ledger."""
    with Campaign(_config(tmp_path, "virtual", *ids)) as campaign:
        sim = campaign._sim
        cut_scenario, after_scenario = campaign.pending()
        _spoil_keypad_after(sim, keys, garble_rate=1.0)
        cut = campaign.run_scenario(cut_scenario)
        sim.fault("keypad").clear()
        seen = peek(sim)
        after = campaign.run_scenario(after_scenario)
        (rest,) = _recoveries(campaign)
    return cut, seen, after, rest, campaign.ledger


@pytest.fixture(scope="module")
def garbled_on_virtual(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("recovery")
    with Campaign(_config(tmp, "virtual", "STS-C1-017", "STS-C1-018")) as campaign:
        out = _run(campaign, {"STS-C1-017": {"garble_rate": 1.0}}, {"STS-C1-017"})
        out["recoveries"] = _recoveries(campaign)
        out["record"] = campaign.finish()
        out["run"] = campaign.run.directory
    return out


def test_a_fault_in_the_middle_of_an_entry_is_error_and_leaves_digits_behind(
    garbled_on_virtual: dict,
) -> None:
    c17 = garbled_on_virtual["results"]["STS-C1-017"]
    assert c17.outcome is Outcome.ERROR
    assert "[keypad]" in c17.steps[-1].error
    assert c17.steps[-1].checks == []  # no verdict on the meter
    assert len(garbled_on_virtual["entries"]["STS-C1-017"]) == MIDDLE


def test_the_scenario_after_the_fault_judges_a_meter_at_rest(garbled_on_virtual: dict) -> None:
    c18 = garbled_on_virtual["results"]["STS-C1-018"]
    assert c18.outcome is Outcome.PASS, [(s.label, s.error, s.checks) for s in c18.steps]
    assert garbled_on_virtual["entries"]["STS-C1-018"] == ""


def test_the_return_to_rest_is_journalled_with_what_it_did_and_saw(
    garbled_on_virtual: dict,
) -> None:
    (rest,) = garbled_on_virtual["recoveries"]
    assert rest["after"] == "STS-C1-017" and rest["at_rest"] is True
    assert "[keypad]" in rest["reason"]
    assert rest["actions"][0].startswith("keypad robot stopped")
    assert "waited until the display showed the credit steadily" in rest["actions"]
    observed = rest["observations"]
    # The credit (the 0.1 kWh of the token that ended the run of rejections), not the digits
    # left behind.
    assert observed["display"] == "0.1"
    assert observed["relay"] == observed["readout"]["relay"].lower()
    # The meter's entry time-out passed before the display came back to the credit.
    assert rest["modelled_s"] >= 30


def test_the_record_and_the_report_show_the_return_to_rest(garbled_on_virtual: dict) -> None:
    (rest,) = garbled_on_virtual["record"]["recoveries"]
    assert rest["bench"] == "simlab-1" and rest["after"] == "STS-C1-017"
    record = garbled_on_virtual["record"]
    meta = ReportMeta(report_id(record, 1), 1, datetime.now(UTC))
    html = render_html(load_run(garbled_on_virtual["run"]), meta, None)
    assert "Back to rest after faults" in html
    assert "After STS-C1-017" in html and "at rest in" in html


def test_a_bench_that_does_not_come_back_gives_error_until_it_does(tmp_path: Path) -> None:
    ids = ("STS-C1-016", "STS-C1-017", "STS-C1-018")
    with Campaign(_config(tmp_path, "virtual", *ids)) as campaign:
        # The robot falls silent in C1-016 and stays silent through C1-017's return to rest.
        out = _run(campaign, {"STS-C1-016": {"silent": True}}, {"STS-C1-017"})
        recoveries = _recoveries(campaign)
    results = out["results"]
    assert results["STS-C1-016"].outcome is Outcome.ERROR
    refused = results["STS-C1-017"]
    assert refused.outcome is Outcome.ERROR
    (step,) = refused.steps  # nothing of the scenario ran
    assert step.kind == "recovery" and step.checks == []
    assert "not back at rest after STS-C1-016" in step.error and "[keypad]" in step.error
    assert results["STS-C1-018"].outcome is Outcome.PASS
    assert [(r["after"], r["at_rest"]) for r in recoveries] == [
        ("STS-C1-016", False),
        ("STS-C1-016", True),
    ]


def test_a_resumed_run_comes_back_to_rest_before_its_next_scenario(tmp_path: Path) -> None:
    ids = ("STS-C1-017", "STS-C1-018")
    with Campaign(_config(tmp_path, "virtual", *ids)) as first:
        first.run_scenario(first.pending()[0])
        run_dir = first.run.directory  # closed without an end record: interrupted
    with Campaign(CampaignConfig(), resume=run_dir) as resumed:
        (result,) = [resumed.run_scenario(s) for s in resumed.pending()]
        record = resumed.finish()
    assert result.outcome is Outcome.PASS
    (rest,) = record["recoveries"]
    assert rest["after"] == "interruption" and rest["at_rest"] is True


def test_the_known_case_on_the_wire_bench(tmp_path: Path) -> None:
    """The same on wire SimLab: one robot line garbled on the pty in the middle of the token
    (the driver ABORTs the robot, which stops with digits entered)."""
    with Campaign(_config(tmp_path, "sim", "STS-C1-017", "STS-C1-018")) as campaign:
        out = _run(campaign, {"STS-C1-017": {"one_line": True}}, {"STS-C1-017"})
        (rest,) = _recoveries(campaign)
    results = out["results"]
    assert results["STS-C1-017"].outcome is Outcome.ERROR
    assert "[keypad]" in results["STS-C1-017"].steps[-1].error
    assert out["entries"]["STS-C1-017"] != ""  # digits left in the meter
    assert results["STS-C1-018"].outcome is Outcome.PASS
    assert rest["at_rest"] is True and rest["observations"]["display"] == "0.1"  # its token


def test_a_key_change_cut_short_after_the_meter_took_it_is_followed_by_the_ledger(
    tmp_path: Path,
) -> None:
    """The robot's line is spoilt after the last key of the set's second section: the meter
    installed the new key, the step is ERROR, and the ledger must mint under the new key."""
    last_key_of_the_set = 2 * 21  # two sections of 20 digits and ENTER
    cut, installed, after, rest, ledger = _cut_then_next(
        tmp_path, ("STS-KC-001", "STS-KC-002"), last_key_of_the_set,
        lambda sim: sim.true_state().krn,
    )  # fmt: skip
    ledger_krn = ledger.key.krn
    assert cut.outcome is Outcome.ERROR and "[keypad]" in cut.steps[-1].error
    assert installed == 7  # the meter took the set before the fault surfaced
    assert rest["at_rest"] is True and rest["observations"]["key"]["krn"] == 7
    assert any("the ledger follows it (KRN 7" in a for a in rest["actions"])
    assert after.outcome is Outcome.PASS, [(s.label, s.error, s.checks) for s in after.steps]
    assert ledger_krn == 8  # KC-002's key change to the next KRN, under the key the meter has


def test_a_meter_whose_key_is_not_the_ledgers_is_not_at_rest(tmp_path: Path) -> None:
    ids = ("STS-C1-017", "STS-C1-018")
    with Campaign(_config(tmp_path, "virtual", *ids)) as campaign:
        first, second = campaign.pending()
        campaign._sim.fault("port").silent = True
        campaign.run_scenario(first)  # C1-017 goes by keypad; its readout meets the fault
        campaign._sim.fault("port").clear()
        campaign._sim.meter.core.state.krn = 5  # side door: a key the harness never sent
        refused = campaign.run_scenario(second)
    assert refused.outcome is Outcome.ERROR
    assert (
        "the meter's key (KRN 5, KT 2, TI 1) is not the ledger's (KRN 1" in refused.steps[0].error
    )


def _spoil_readouts_after(sim: Any, keys: int, readouts: int) -> None:
    """Spoil the next ``readouts`` port readouts once ``keys`` keys were pressed (the
    driver's readout retries meet them), then let the port answer whole again."""
    key_up = sim.meter.key_up
    pressed = [0]
    spoilt = [0]
    faults = sim.fault("port")

    def garble_readouts(data: bytes) -> bytes:
        if len(data) < 64 or spoilt[0] >= readouts:  # sign-on lines and token writes go whole
            return data
        spoilt[0] += 1
        return b"\xff" + data[1:]

    def counting(key: str) -> None:
        key_up(key)
        pressed[0] += 1
        if pressed[0] == keys:
            faults.apply = garble_readouts
            faults.garble_rate = 1e-9  # the port's transport is faulty from here on

    sim.meter.key_up = counting


def test_readouts_retried_after_an_entry_do_not_shorten_a_timed_load_switch_test(
    tmp_path: Path,
) -> None:
    """STS-DCL-LS-002 in a fault campaign: the port's readouts after the class-1 token came
    back spoilt twice; the third answered. The load switch opens a few seconds after the
    entry and stays open for the declared time: the probe must time it from the entry, not
    from after the retried readouts (which made it FAIL: "open for 3.7 s")."""
    with Campaign(_config(tmp_path, "virtual", "STS-DCL-LS-002")) as campaign:
        sim = campaign._sim
        _spoil_readouts_after(sim, 21 + 1 + 21, readouts=2)  # setup's credit, ENTER, the token
        (scenario,) = campaign.pending()
        result = campaign.run_scenario(scenario)
    token = result.steps[2]
    assert len(token.retries) == 2 and all("[port]" in r for r in token.retries)
    assert result.outcome is Outcome.PASS, [(s.label, s.error, s.checks) for s in result.steps]
    (stayed,) = [c for c in token.checks if c.name == "load switch open for"]
    assert stayed.outcome is Outcome.PASS


def test_an_old_tid_is_tested_again_after_a_rollover_cleared_the_store(tmp_path: Path) -> None:
    """A second campaign on a meter whose TID store a rollover key change cleared (STS-RO-001
    ends the catalogue): the store holds zeros, so no TID lies below it. The scenarios that
    need one (STS-TID-003, -004) fill the store first instead of ending in ERROR ("cannot
    mint: no TID below the store minimum")."""
    ids = ("STS-TID-003", "STS-TID-004", "STS-RO-001")
    with Campaign(_config(tmp_path, "virtual", *ids)) as campaign:
        old, far, rollover = campaign.pending()
        assert campaign.runner.run(rollover).outcome is Outcome.PASS
        assert campaign.ledger.store_min(20) == 0  # cleared by the rollover
        results = [campaign.runner.run(old), campaign.runner.run(far)]
        store = sorted(campaign._sim.meter.core.state.tid_store)
    for result in results:
        assert result.outcome is Outcome.PASS, [(s.label, s.error) for s in result.steps]
        assert result.steps[0].observations["tid_store_filled"] == 20
    assert store[0] > 100_000  # the meter's store holds TIDs a TID far below can be minted under


@pytest.mark.parametrize(
    ("scenario", "role"),
    [("STS-DCL-LS-002", "analyzer"), ("STS-DCL-LS-001", "analyzer"), ("STS-DCL-LS-001", "load")],
)
def test_a_slow_instrument_makes_a_load_switch_time_error_not_fail(
    tmp_path: Path, scenario: str, role: str
) -> None:
    """Every reply of the analyser (or the load's answer to the step's command) a second
    late: the switch's time is then known only to within that second, ten times the
    tolerance. The step is ERROR naming the instrument, not a FAIL ("not open by 5.1 s",
    "still open after 5.1 s") the meter never earned."""
    with Campaign(_config(tmp_path, "virtual", scenario)) as campaign:
        campaign._sim.fault(role).delay_s = 1.0
        (pending,) = campaign.pending()
        result = campaign.run_scenario(pending)
    assert result.outcome is Outcome.ERROR, [(s.label, s.checks) for s in result.steps]
    (step,) = [s for s in result.steps if s.outcome is Outcome.ERROR]
    assert f"[{role}]" in step.error and "when the load switch" in step.error
    assert not any(c.outcome is Outcome.FAIL for s in result.steps for c in s.checks)


def test_a_power_limit_trip_a_fault_cut_into_is_waited_out_before_the_next_scenario(
    tmp_path: Path,
) -> None:
    """STS-DCL-LS-001 ERRORs on a slow analyser with its 1500 W load over a 1000 W limit: the
    meter trips, the load goes off in the return to rest, and the switch recloses only after
    the declared reconnection time (60 s). STS-DCL-LS-002 right after expects it closed
    within 5 s: the return to rest waits for it (a fault campaign saw it FAIL)."""
    with Campaign(_config(tmp_path, "virtual", "STS-DCL-LS-001", "STS-DCL-LS-002")) as campaign:
        trip, after = campaign.pending()
        campaign._sim.fault("analyzer").delay_s = 1.0
        cut = campaign.run_scenario(trip)
        campaign._sim.fault("analyzer").clear()
        result = campaign.run_scenario(after)
        (rest,) = _recoveries(campaign)
    assert cut.outcome is Outcome.ERROR
    assert any("[analyzer]" in (s.error or "") for s in cut.steps)
    assert rest["at_rest"] is True
    assert "waited for the load switch to close again (credit left)" in rest["actions"]
    assert result.outcome is Outcome.PASS, [(s.label, s.error, s.checks) for s in result.steps]


def test_a_key_change_section_a_fault_left_waiting_is_dropped_before_the_next_scenario(
    tmp_path: Path,
) -> None:
    """The robot's line is spoilt after the first section and its ENTER: the meter keeps
    that section, waiting for the rest of its set, and the step is ERROR. A section left
    waiting would complete the next scenario's first section with a key of both, so the
    return to rest cycles the supply (the meter does not keep sections over a power loss)."""
    first_section = 21  # 20 digits and ENTER
    cut, waiting, after, rest, _ = _cut_then_next(
        tmp_path, ("STS-KC-001", "STS-KC-006"), first_section,
        lambda sim: sorted(sim.meter.core.state.pending_kcts),  # side door
    )  # fmt: skip
    assert cut.outcome is Outcome.ERROR and waiting == [3]
    assert any(a.startswith("supply cycled: key change sections") for a in rest["actions"])
    assert after.outcome is Outcome.PASS, [(s.label, s.error, s.checks) for s in after.steps]


def test_a_run_of_rejected_entries_a_fault_cut_is_ended_before_the_next_scenario(
    tmp_path: Path,
) -> None:
    """Two rejected keypad entries, then the robot's line is spoilt: the meter has counted
    them towards its lockout. The return to rest enters one accepted token, which ends the
    run, so the next scenario's lockouts come after exactly the declared count."""
    two_rejected_entries = 4  # a digit and ENTER, twice
    cut, counted, after, rest, _ = _cut_then_next(
        tmp_path, ("STS-DCL-LCK-001", "STS-DCL-LCK-002"), two_rejected_entries,
        lambda sim: sim.meter._rejects,  # side door
    )  # fmt: skip
    assert cut.outcome is Outcome.ERROR and counted >= 2
    assert "a credit token accepted: the run of rejected keypad entries ended" in rest["actions"]
    assert after.outcome is Outcome.PASS, [(s.label, s.error, s.checks) for s in after.steps]


@pytest.mark.parametrize("scenario", ["STS-DCL-LCK-002", "STS-DCL-KP-001"])
def test_a_keypad_answering_late_leaves_a_timed_probe_unjudged_not_failed(
    tmp_path: Path, scenario: str
) -> None:
    # Each keypad event half a second late: the probe's Enter (and the start it counts from)
    # lands seconds past where the wait put it, which is the keypad's fault, not the meter's.
    with Campaign(_config(tmp_path, "virtual", scenario)) as campaign:
        campaign._sim.fault("keypad").delay_s = 0.5
        (result,) = [campaign.run_scenario(s) for s in campaign.pending()]
    assert result.outcome is Outcome.ERROR
    first = next(s for s in result.steps if s.outcome is not Outcome.PASS)
    assert first.outcome is Outcome.ERROR  # no FAIL before it: the probe is not judged
    assert first.error is not None and first.error.startswith("[keypad] virtual://")
    assert "the probe landed past where it was placed" in first.error
