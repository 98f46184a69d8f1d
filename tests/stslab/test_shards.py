"""``stslab certify -n 2``: two SimLab benches, each its own sample, in one run folder; one
record and one report that say which bench and sample ran each scenario; a sequence stays on
one sample in pack order; a worker killed mid-run interrupts only its bench, and a resume
finishes that bench."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from stslab.cli import main
from stslab.journal import read_journal
from stslab.run import journal_path
from tests.stslab.test_pack import write_pack

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 240.0  # two workers' interpreters and SimLabs on a busy machine
BENCHES = ("simlab-1", "simlab-2")

SCENARIO = """\
id: T-{kind}-00{n}
title: {kind} scenario {n}
group: Shards
clauses: ["IEC 62055-41 TransferCredit"]
carrier: port
steps:
  - do: token
    token: {{class: 0, subclass: 0, amount: 0.{n}}}
    expect: {{result: accept, credit: {{change: 0.{n}}}}}
  - do: wait
    seconds: {wait}
"""


def _pack(directory: Path, spread: int, wait: float) -> Path:
    files = {f"a{n}.yaml": SCENARIO.format(kind="A", n=n, wait=wait) for n in range(1, spread + 1)}
    # A file-level sequence: both scenarios on one sample, in this order, last on it.
    files["z.yaml"] = "sequence: last\nscenarios:\n" + "".join(
        "  - " + SCENARIO.format(kind="Z", n=n, wait=wait).replace("\n", "\n    ").rstrip() + "\n"
        for n in (1, 2)
    )
    return write_pack(directory, files)


def _certify(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "stslab", "certify", "--quiet", *args],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip


def _starts(run: Path, bench: str) -> list[str]:
    return [e.data["scenario"] for e in read_journal(journal_path(run, bench))
            if e.kind == "scenario_start"]  # fmt: skip


@pytest.fixture(scope="module")
def sharded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("shards")
    pack = _pack(base / "pack", spread=4, wait=0.4)
    proc = _certify("-n", "2", "--pack", str(pack), "--out", str(base / "runs"), "--speed", "4",
                    "--no-report")  # fmt: skip
    out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, out
    (run,) = (base / "runs").iterdir()
    return run


def test_every_scenario_ran_once_on_one_of_the_benches(sharded: Path) -> None:
    record = json.loads((sharded / "record.json").read_text())
    ids = [s["id"] for s in record["scenarios"]]
    assert ids == ["T-A-001", "T-A-002", "T-A-003", "T-A-004", "T-Z-001", "T-Z-002"]
    assert {s["outcome"] for s in record["scenarios"]} == {"PASS"}
    assert record["summary"]["verdict"] == "PASS" and record["complete"] is True
    ran = {b: _starts(sharded, b) for b in BENCHES}
    assert sorted(ran["simlab-1"] + ran["simlab-2"]) == ids
    assert all(ran.values())  # the work spread over both benches
    for s in record["scenarios"]:
        assert s["id"] in ran[s["bench"]]


def test_each_bench_has_its_own_sample_ledger_and_journal(sharded: Path) -> None:
    record = json.loads((sharded / "record.json").read_text())
    samples = {b["name"]: b["sample"]["serial"] for b in record["benches"]}
    assert set(samples) == set(BENCHES)
    assert len(set(samples.values())) == 2
    for s in record["scenarios"]:
        assert s["sample"] == samples[s["bench"]]
    assert {p.stem for p in (sharded / "ledger").glob("*.json")} == set(samples.values())
    for j in record["journals"]:
        entries = read_journal(sharded / j["file"])  # each chain verifies on its own
        assert (len(entries), entries[-1].hash) == (j["records"], j["head"])
        assert entries[-1].kind == "end"


def test_a_sequence_runs_on_one_sample_in_pack_order_after_the_rest(sharded: Path) -> None:
    (owner,) = [b for b in BENCHES if "T-Z-001" in _starts(sharded, b)]
    assert _starts(sharded, owner)[-2:] == ["T-Z-001", "T-Z-002"]
    other = next(b for b in BENCHES if b != owner)
    assert "T-Z-002" not in _starts(sharded, other)


def test_one_signed_report_names_bench_and_sample_and_verifies(
    sharded: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from reports.render import ReportMeta, load_run, render_html, report_id

    assert main(["report", str(sharded)]) == 0
    (pdf,) = sharded.glob("report-*-R1.pdf")
    capsys.readouterr()
    assert main(["verify", str(pdf)]) == 0
    assert "VALID" in capsys.readouterr().out
    from stslab.cli.report import _check_journal

    run = load_run(sharded)
    note = _check_journal(run.record, sharded)  # what the issued report says of the journals
    assert "2 hash-chained journals, one per bench" in (note or "")
    from datetime import UTC, datetime

    html = render_html(run, ReportMeta(report_id(run.record, 1), 1, datetime.now(UTC)), None)
    for s in run.record["scenarios"]:
        assert f"{s['bench']}, {s['sample']}" in html


# --- one worker killed mid-run ---------------------------------------------------------------


def _kill_one_bench(run_parent: Path, proc: subprocess.Popen) -> tuple[Path, str]:
    """SIGKILL the worker of the first bench seen inside a scenario (its token journalled,
    its end not)."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, "certify ended before a worker could be killed"
        for path in run_parent.glob("*/benches/*/journal.jsonl"):
            try:
                entries = read_journal(path)
            except Exception:  # a line half written: look again
                continue
            steps = [e for e in entries if e.kind == "step" and e.data["kind"] == "token"]
            ended = {e.data["id"] for e in entries if e.kind == "scenario_end"}
            if steps and steps[-1].data["scenario"] not in ended:
                os.kill(entries[0].data["shard"]["process"], signal.SIGKILL)
                return path.parents[2], path.parent.name
        time.sleep(0.05)
    raise AssertionError("no bench reached a scenario")


def _remove_killed_simlab(run: Path, bench: str) -> None:
    """The killed worker could not remove its SimLab folder (pty links, segment map)."""
    doc = yaml.safe_load((run / "benches" / bench / "bench.yaml").read_text())
    folder = Path(doc["instruments"]["keypad"]["address"]).parent
    if folder.name.startswith("stslab-sim-") and folder.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def crashed_and_resumed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("crash")
    pack = _pack(base / "pack", spread=4, wait=4)  # 1 s real per wait at speed 4
    proc = _certify("-n", "2", "--pack", str(pack), "--out", str(base / "runs"), "--speed", "4",
                    "--no-report")  # fmt: skip
    try:
        run, killed = _kill_one_bench(base / "runs", proc)
        out, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    _remove_killed_simlab(run, killed)
    survivor = next(b for b in BENCHES if b != killed)
    first = json.loads((run / "record.json").read_text())
    survivor_journal = journal_path(run, survivor).read_bytes()
    killed_before = read_journal(journal_path(run, killed))
    code = main(["certify", "--resume", str(run), "--quiet", "--no-report"])
    return {"run": run, "killed": killed, "survivor": survivor, "code": proc.returncode,
            "out": out, "first": first, "resume_code": code, "killed_before": killed_before,
            "survivor_journal": survivor_journal,
            "record": json.loads((run / "record.json").read_text())}  # fmt: skip


def test_a_killed_worker_interrupts_only_its_bench(crashed_and_resumed: dict) -> None:
    c = crashed_and_resumed
    assert c["code"] == 3, c["out"]  # incomplete
    first = c["first"]
    state = {b["name"]: b["finished"] for b in first["benches"]}
    assert state == {c["killed"]: False, c["survivor"]: True}
    assert f"bench {c['killed']} did not finish (resume the run)" in first["deviations"]
    assert first["summary"]["verdict"] == "INCOMPLETE"
    # the survivor went on with the work no bench had taken yet
    ran_on_survivor = {s["id"] for s in first["scenarios"] if s["bench"] == c["survivor"]}
    assert len(ran_on_survivor) >= 3


def test_the_resume_finishes_the_killed_bench_only(crashed_and_resumed: dict) -> None:
    c = crashed_and_resumed
    assert c["resume_code"] == 0
    record = c["record"]
    ids = [s["id"] for s in record["scenarios"]]
    assert ids == ["T-A-001", "T-A-002", "T-A-003", "T-A-004", "T-Z-001", "T-Z-002"]
    assert {s["outcome"] for s in record["scenarios"]} == {"PASS"}
    assert record["complete"] is True and record["summary"]["verdict"] == "PASS"
    assert journal_path(c["run"], c["survivor"]).read_bytes() == c["survivor_journal"]
    after = read_journal(journal_path(c["run"], c["killed"]))
    assert after[: len(c["killed_before"])] == c["killed_before"]  # the chain continues
    assert [e.kind for e in after[len(c["killed_before"]) :]][:2] == ["resume", "reestablished"]


def test_the_record_says_which_bench_was_interrupted(crashed_and_resumed: dict) -> None:
    c = crashed_and_resumed
    record = c["record"]
    cut = [e.data["scenario"] for e in c["killed_before"] if e.kind == "scenario_start"][-1]
    assert any(i.get("bench") == c["killed"] and i.get("during") == cut
               for i in record["interruptions"])  # fmt: skip
    assert [r["bench"] for r in record["resumes"]] == [c["killed"]]
    (resumed,) = [s for s in record["scenarios"] if s["id"] == cut]
    assert resumed["bench"] == c["killed"]
