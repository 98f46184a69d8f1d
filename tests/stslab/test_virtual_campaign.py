"""Campaigns on SimLab's virtual time: the same engine, journal, record and evidence as on a
wire bench, verdicts equal to wire SimLab's, the meter model named (accredited mode refuses
it as it refuses wire SimLab: tests/stslab/test_pack.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from stslab.campaign import Outcome
from stslab.cli import main
from stslab.selftest import compare
from stslab.session import Campaign, CampaignConfig

REPO = Path(__file__).resolve().parents[2]
MODEL = "tests.simlab.meter_models:NoTamperClearMeter"


def test_the_whole_catalogue_passes_on_virtual_time_with_evidence(tmp_path: Path) -> None:
    cfg = CampaignConfig(bench="virtual", out=tmp_path)
    with Campaign(cfg) as campaign:
        results = [campaign.run_scenario(s) for s in campaign.pending()]
        record = campaign.finish()
        run_dir = campaign.run.directory
    outcomes = {r.outcome for r in results}
    assert outcomes <= {Outcome.PASS, Outcome.SKIP}, [
        (r.id, r.outcome) for r in results if r.outcome not in (Outcome.PASS, Outcome.SKIP)
    ]
    assert sum(r.outcome is Outcome.PASS for r in results) >= 70
    bench = record["bench"]
    assert bench["name"] == "SimLab on virtual time" and bench["simulated"] is True
    assert bench["simlab"]["time"] == "virtual"
    # Display expectations were decided on camera frames, kept by hash.
    frames = [
        ev
        for s in record["scenarios"]
        for step in s["steps"]
        for ev in step["evidence"]
        if ev["kind"] == "display_frame"
    ]
    assert len(frames) > 30
    for ev in frames[:10]:
        assert (run_dir / ev["file"]).read_bytes().startswith(b"\x89PNG")
    # Modelled time is the meter's: it passed though the run took seconds.
    assert record["summary"]["modelled_s"] > 1000


def test_verdicts_on_virtual_time_equal_wire_simlab_on_a_sample() -> None:
    select = ("STS-TID-001", "STS-TID-003", "STS-MGT-006", "STS-LS-001", "STS-KP-002")
    rows, differences = compare(
        ("sim", "virtual"), ["accepts-used", "old-off-by-one"], select=select, workers=2
    )
    assert differences == []
    assert len(rows) == 6  # the reference meter and two defects, on both benches
    for row in rows:
        assert len(row.outcomes) == 5
    killed = {r.defect: [i for i, o in r.outcomes.items() if o == "FAIL"] for r in rows}
    assert killed["accepts-used"] and killed["old-off-by-one"]


def test_a_meter_model_runs_on_virtual_time_and_the_record_names_it(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    code = main(["certify", "--bench", "virtual", "--model", MODEL, "-k", "STS-MGT-006",
                 "--out", str(out), "--quiet", "--no-report"])  # fmt: skip
    assert code == 1  # that firmware answers ClearTamper with a Function error
    (run,) = out.iterdir()
    record = json.loads((run / "record.json").read_text())
    assert record["bench"]["simlab"]["model"] == MODEL
    assert [s["outcome"] for s in record["scenarios"]] == ["FAIL"]


def test_pytest_runs_the_pack_on_virtual_time(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(REPO / "suites" / "sts-core"), "--bench", "virtual",
         "-k", "STS-TID", "--out", str(out), "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "9 passed" in proc.stdout


def test_several_virtual_benches_share_one_run(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    code = main(["certify", "--bench", "virtual", "-n", "2", "-k", "STS-TID", "-k", "STS-RO",
                 "--out", str(out), "--quiet", "--no-report"])  # fmt: skip
    assert code == 0
    (run,) = out.iterdir()
    record = json.loads((run / "record.json").read_text())
    assert len(record["benches"]) == 2
    ran_on = {s["bench"] for s in record["scenarios"]}
    assert len(ran_on) == 2  # both benches had work
    assert {s["outcome"] for s in record["scenarios"]} == {"PASS"}
    assert len(record["scenarios"]) == 10
