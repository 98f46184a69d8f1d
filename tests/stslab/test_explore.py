"""``stslab explore``: random valid steps against the reference twin; a difference is shrunk
and written as a scenario file that reproduces it in a pack."""

from __future__ import annotations

from pathlib import Path

import pytest

from stslab.campaign import Outcome
from stslab.cli import main
from stslab.explore import explore
from stslab.pack import build_manifest
from stslab.scenario import load_scenarios
from stslab.selftest import REFERENCE, explore_matrix
from stslab.session import Campaign, CampaignConfig

MODELS = "tests.stslab.twin_models"


def run_pack(tmp_path: Path, scenario_file: Path, **options: object) -> list:
    pack = tmp_path / f"pack-{len(list(tmp_path.iterdir()))}"
    pack.mkdir()
    (pack / scenario_file.name).write_text(scenario_file.read_text())
    build_manifest(pack, "found", "1.0.0", ["IEC 62055-41:2018"], "found by exploration")
    cfg = CampaignConfig(bench="virtual", out=tmp_path / "runs", pack=pack, **options)  # type: ignore[arg-type]
    with Campaign(cfg) as campaign:
        return [campaign.run_scenario(s) for s in campaign.pending()]


def test_the_reference_meter_shows_no_difference(tmp_path: Path) -> None:
    result = explore(CampaignConfig(bench="virtual"), steps=50, seed_value=3, out=tmp_path)
    assert result.found_after is None and result.differences == []
    assert result.steps_run >= 50
    assert list(tmp_path.iterdir()) == []  # nothing found, nothing written


@pytest.mark.parametrize(
    ("options", "observable"),
    [
        ({"defects": ("accepts-19-digits",)}, "result"),
        ({"model": f"{MODELS}:CardRaisesTamperMeter"}, "tamper"),
    ],
)
def test_a_difference_is_shrunk_into_a_scenario_that_reproduces_it(
    tmp_path: Path, options: dict, observable: str
) -> None:
    config = CampaignConfig(bench="virtual", **options)
    out = tmp_path / "found"
    result = explore(config, steps=400, seed_value=1, out=out)
    assert result.found_after is not None
    assert observable in {d["observable"] for d in result.differences}
    assert result.scenario_file is not None and result.scenario_file.parent == out
    [scenario] = load_scenarios(result.scenario_file)  # a valid scenario, ready for a pack
    assert len(scenario.steps) == len(result.shrunk) <= result.found_after
    assert scenario.steps[-1].expect is not None  # the reference meter's answer, stated
    assert "stslab explore --seed 1" in (scenario.description or "")
    # In a pack: the meter explored FAILs it, the reference meter PASSes it.
    [on_meter] = run_pack(tmp_path, result.scenario_file, **options)
    assert on_meter.outcome is Outcome.FAIL
    [on_reference] = run_pack(tmp_path, result.scenario_file)
    assert on_reference.outcome is Outcome.PASS, [c for s in on_reference.steps for c in s.checks
                                                  if c.outcome is not Outcome.PASS]  # fmt: skip


def test_the_same_seed_explores_the_same_steps() -> None:
    config = CampaignConfig(bench="virtual", defects=("accepts-19-digits",))
    first = explore(config, steps=300, seed_value=5, shrink=False)
    again = explore(config, steps=300, seed_value=5, shrink=False)
    assert first.found_after is not None
    assert (first.found_after, first.differences) == (again.found_after, again.differences)


def test_selftest_explore_reports_steps_to_find_each_defect() -> None:
    rows = explore_matrix(["accepts-19-digits"], steps=100, seed=1, workers=1)
    by_meter = {r.defect: r for r in rows}
    assert set(by_meter) == {REFERENCE, "accepts-19-digits"}
    reference = by_meter[REFERENCE]
    assert reference.ok and reference.found_after is None and reference.steps_run >= 100
    digits = by_meter["accepts-19-digits"]
    assert digits.ok and 1 <= digits.found_after <= 100
    assert digits.first_difference.startswith("side effect:")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (["--steps", "0"], "--steps"),
        (["--defect", "no-such-defect"], "--defect"),
        (["--model", "nowhere:Meter"], "--model"),
        (["--bench", "bench.yaml", "--defect", "accepts-used"], "--defect"),
    ],
)
def test_bad_options_are_one_line_naming_the_option(
    args: list[str], option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["explore", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("stslab: error:") and option in err and "\n" not in err


def test_a_defect_no_test_can_see_on_this_meter_is_not_explored_and_says_why() -> None:
    # The default meter declares key expiry, so enforcing it is right there.
    [row] = explore_matrix(["expiry-when-undeclared"], steps=100, seed=1, workers=1,
                           include_reference=False)  # fmt: skip
    assert row.not_observable is not None and "declares key expiry" in row.not_observable
    assert row.ok and row.steps_run == 0 and row.found_after is None


def test_selftest_explore_prints_why_a_defect_is_not_observable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(["selftest", "--explore", "--no-reference", "--steps", "50", "--workers", "1",
                 "--defect", "expiry-when-undeclared"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "not observable" in out and "defects found by exploration: 0/0" in out
