"""Measurement uncertainty and the decision rule: budgets combine as GUM says, certificates'
statements parse or are named, and the job's decision rule decides a result near its limit —
on a campaign, not only on paper."""

from __future__ import annotations

import math
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from stslab.campaign import Outcome
from stslab.job import JobError, load_job
from stslab.session import Campaign, CampaignConfig
from stslab.uncertainty import (
    Decision,
    DecisionRule,
    InstrumentCalibration,
    Statement,
    budget,
    calibration,
    decide,
    resolution,
    round_up,
    sampling,
)
from tests.stslab.test_pack import CREDIT_SCENARIO, write_pack

REPO = Path(__file__).resolve().parents[2]

# --- budgets --------------------------------------------------------------------------------


def test_a_certificate_statement_is_relative_plus_absolute() -> None:
    s = Statement.parse("energy", "0.1 % + 0.01 kWh")
    assert s.relative == Decimal("0.001") and s.absolute == Decimal(10)  # in Wh
    assert s.expanded(2000.0) == pytest.approx(12.0)
    assert Statement.parse("time", "5 ms").expanded(100.0) == pytest.approx(0.005)


@pytest.mark.parametrize(
    ("quantity", "text", "says"),
    [
        ("energy", "0.1 % of reading", "is not an uncertainty"),
        ("voltage", "0.2 A", "'A' is not a unit of voltage"),
        ("time", "", "is not an uncertainty"),
    ],
)
def test_a_statement_that_is_not_one_is_refused(quantity: str, text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        Statement.parse(quantity, text)


def test_components_combine_root_sum_square_and_expand_with_k_2() -> None:
    cal = InstrumentCalibration("analyzer", "CAL-1", 2.0, {"time": Statement.parse("time", "6 ms")})
    parts = [calibration(cal, "time", 1.0), sampling(0.1, "the watch"),
             resolution(Decimal("0.001"), "the recorded time", "s")]  # fmt: skip
    b = budget("time", "s", 1.0, parts)
    us = [c.u for c in b.components]
    assert us[0] == pytest.approx(0.003)  # 6 ms at k = 2
    assert us[1] == pytest.approx(0.1 / math.sqrt(3))  # one uncorrected edge
    assert us[2] == pytest.approx(0.001 / math.sqrt(12))  # ± half a digit
    assert b.combined == pytest.approx(math.sqrt(sum(u * u for u in us)))
    assert b.expanded == round_up(2 * b.combined) == Decimal("0.12")
    doc = b.to_json()
    assert doc["U"] == "0.12" and doc["k"] == 2 and len(doc["components"]) == 3
    assert doc["components"][0]["basis"] == "U = 6 ms (k = 2)"


def test_a_duration_between_two_edges_has_the_smaller_sampling_component() -> None:
    assert sampling(0.1, "w", edges=2).u == pytest.approx(0.1 / math.sqrt(6))


def test_what_the_bench_does_not_state_is_listed_as_missing() -> None:
    cal = InstrumentCalibration("display", "CAM-1", 2.0, {})
    b = budget("time", "s", 2.5, [calibration(cal, "time", 2.5), calibration(None, "time", 1)])
    assert b.components == ()
    assert b.to_json()["missing"] == [
        "calibration uncertainty of time of the display (CAM-1 states none)",
        "calibration uncertainty of the instrument (no calibration record)",
    ]


@pytest.mark.parametrize(
    ("x", "rounded"),
    [(0.0057735, "0.0058"), (0.12, "0.12"), (12.3, "13"), (123.4, "130"), (0.0, "0")],
)
def test_u_is_rounded_up_to_two_significant_digits(x: float, rounded: str) -> None:
    assert str(round_up(x)) == rounded


# --- the decision rule ----------------------------------------------------------------------

LOW, HIGH, U = Decimal("9.95"), Decimal("10.05"), Decimal("0.02")


@pytest.mark.parametrize(
    ("measured", "simple", "guarded"),
    [
        ("10.00", Decision.ACCEPT, Decision.ACCEPT),
        ("10.02", Decision.ACCEPT, Decision.ACCEPT),
        ("10.03", Decision.ACCEPT, Decision.GUARD_BAND),  # on the acceptance limit: not clear
        ("10.04", Decision.ACCEPT, Decision.GUARD_BAND),
        ("10.05", Decision.ACCEPT, Decision.GUARD_BAND),  # on the limit
        ("9.96", Decision.ACCEPT, Decision.GUARD_BAND),
        ("10.06", Decision.REJECT, Decision.REJECT),
        ("9.94", Decision.REJECT, Decision.REJECT),
    ],
)
def test_guarded_acceptance_keeps_u_away_from_each_limit(
    measured: str, simple: Decision, guarded: Decision
) -> None:
    m = Decimal(measured)
    assert decide(DecisionRule.SIMPLE, m, LOW, HIGH, U) is simple
    assert decide(DecisionRule.GUARDED, m, LOW, HIGH, U) is guarded


def test_a_one_sided_limit_has_one_guard_band() -> None:
    assert decide(DecisionRule.GUARDED, Decimal("4.99"), None, Decimal(5), U) is (
        Decision.GUARD_BAND
    )
    assert decide(DecisionRule.GUARDED, Decimal("-100"), None, Decimal(5), U) is Decision.ACCEPT


# --- the job file ---------------------------------------------------------------------------


def _job(tmp_path: Path, rule: str) -> Path:
    text = (REPO / "examples" / "job.yaml").read_text()
    path = tmp_path / "job.yaml"
    path.write_text(text.replace("decision_rule: simple", f"decision_rule: {rule}"))
    return path


def test_the_job_file_names_the_decision_rule(tmp_path: Path) -> None:
    assert load_job(REPO / "examples" / "job.yaml").decision_rule is DecisionRule.SIMPLE
    assert load_job(_job(tmp_path, "guarded")).decision_rule is DecisionRule.GUARDED
    path = _job(tmp_path, "lenient")
    line = path.read_text().splitlines().index("decision_rule: lenient") + 1
    with pytest.raises(
        JobError, match=rf"job\.yaml:{line}: decision_rule: .*'simple' or 'guarded'"
    ):
        load_job(path)


# --- on a campaign --------------------------------------------------------------------------

#: A credit change judged with a tolerance smaller than the register's own resolution allows:
#: the value is right, but the measurement cannot show it is inside by more than U.
TIGHT = CREDIT_SCENARIO.replace("T-CREDIT-001", "T-CREDIT-TIGHT").replace(
    "credit: {change: 0.1}", "credit: {change: 0.1, tolerance: 0.0005}"
)


def _run(tmp_path: Path, rule: str) -> dict:
    pack = write_pack(tmp_path / f"pack-{rule}", {"a.yaml": CREDIT_SCENARIO, "b.yaml": TIGHT})
    config = CampaignConfig(bench="virtual", out=tmp_path / f"runs-{rule}", pack=pack,
                            job=str(_job(tmp_path, rule)))  # fmt: skip
    with Campaign(config) as campaign:
        for scenario in campaign.pending():
            campaign.run_scenario(scenario)
        record = campaign.finish()
    assert record is not None
    return record


def _credit_check(record: dict, scenario: str) -> dict:
    (s,) = [s for s in record["scenarios"] if s["id"] == scenario]
    (check,) = [c for st in s["steps"] for c in st["checks"] if c["name"] == "credit change"]
    return check


def test_the_decision_rule_of_the_job_decides_a_result_within_u_of_its_limit(
    tmp_path: Path,
) -> None:
    simple, guarded = _run(tmp_path, "simple"), _run(tmp_path, "guarded")
    # The meter and the readings are the same; the rule makes the difference.
    for record in (simple, guarded):
        check = _credit_check(record, "T-CREDIT-TIGHT")
        assert check["observed"] == "0.100"
        budget_ = check["uncertainty"]
        assert budget_["unit"] == "kWh" and budget_["U"] == "0.00082"  # two 0.001 kWh readings
        assert [c["distribution"] for c in budget_["components"]] == ["rectangular"] * 2
    assert _credit_check(simple, "T-CREDIT-TIGHT")["outcome"] == Outcome.PASS
    tight = _credit_check(guarded, "T-CREDIT-TIGHT")
    assert tight["outcome"] == Outcome.FAIL and tight["guard_band"] is True
    assert "within U = 0.00082 kWh of its limit" in tight["detail"]
    # A tolerance wider than U by far passes under either rule.
    assert _credit_check(guarded, "T-CREDIT-001")["outcome"] == Outcome.PASS
    assert simple["summary"]["guard_band"] == 0 and simple["summary"]["verdict"] == "PASS"
    assert guarded["summary"]["guard_band"] == 1 and guarded["summary"]["verdict"] == "FAIL"
    assert simple["decision"]["rule"] == "simple" and guarded["decision"]["rule"] == "guarded"
    assert (
        "§4.2.2" in guarded["decision_rule"] and "2.5 %" in guarded["decision"]["false_accept_risk"]
    )
    # Each reading's budget is kept beside the observation.
    (step,) = [st for s in guarded["scenarios"] for st in s["steps"] if st["kind"] == "token"
               and s["id"] == "T-CREDIT-001"]  # fmt: skip
    assert set(step["measurements"]) == {"credit_before", "credit_after"}


def test_a_time_from_the_display_watch_carries_the_cameras_calibration_and_its_sampling(
    tmp_path: Path,
) -> None:
    from types import SimpleNamespace

    from stslab.campaign import DisplayWatch, Runner
    from stslab.clock import BenchClock

    class Display:  # answers at once; the watch notes the longest gap between its reads
        reads = 0
        enough = threading.Event()

        def read(self, timeout_s: float) -> object:
            self.reads += 1
            if self.reads >= 3:
                self.enough.set()
            return SimpleNamespace(text="12.3")

    display = Display()
    watch = DisplayWatch(display).start()
    assert display.enough.wait(5.0)
    watch.stop()
    assert watch.poll_s > 0
    cal = InstrumentCalibration("display", "CAM-1", 2.0, {"time": Statement.parse("time", "20 ms")})
    runner = Runner.__new__(Runner)  # only what a time budget uses
    runner.bench = SimpleNamespace(calibrations={"display": cal})
    runner.clock = BenchClock(10.0)
    runner._watch = None
    interval = runner.display_interval_s(watch)
    assert interval == round(watch.poll_s * 10.0, 6)  # bench seconds at speed 10
    b = runner.time_budget(4.0, "display", interval, edges=2)
    sources = [c.source for c in b.components]
    assert sources == ["calibration of the display (CAM-1)",
                       "sampling interval of the display watch (two edges)",
                       "resolution of the recorded time"]  # fmt: skip
    assert b.components[0].u == pytest.approx(0.01)
    assert b.components[1].u == pytest.approx(interval / math.sqrt(6))
