"""Nothing is lost: a ``stslab certify`` killed mid-run resumes from its journal, runs every
scenario exactly once to a result, and says it was interrupted; a damaged or finished run is
not resumed."""

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
from stslab.journal import Journal, JournalError, read_journal
from stslab.run import journal_path
from stslab.session import Campaign, CampaignConfig, CampaignError
from tests.stslab.test_pack import write_pack

REPO = Path(__file__).resolve().parents[2]
BENCH = "simlab-1"  # a one-bench run's bench
KILL_DEADLINE_S = 90.0  # interpreter start, SimLab start and one scenario on a busy machine

#: A credit token, then a wait on the bench clock (1 s real at speed 4: the kill lands there).
WAITING_SCENARIO = """\
id: T-RES-00{n}
title: Resumable scenario {n}
group: Resume
clauses: ["IEC 62055-41 TransferCredit"]
carrier: port
steps:
  - id: credit
    do: token
    token: {{class: 0, subclass: 0, amount: 0.{n}}}
    expect: {{result: accept}}
  - do: wait
    seconds: 4
"""

QUICK_SCENARIO = """\
id: T-QUICK-00{n}
title: Quick scenario {n}
group: Resume
clauses: ["IEC 62055-41 TransferCredit"]
carrier: port
steps:
  - do: token
    token: {{class: 0, subclass: 0, amount: 0.{n}}}
    expect: {{result: accept}}
"""


def _entries(path: Path) -> list:
    try:
        return read_journal(path)
    except (OSError, JournalError):  # not there yet, or a line half written
        return []


def _inside_a_later_scenario(entries: list) -> bool:
    """The child is in the wait of a scenario after the first (its token is journalled, its
    end is not)."""
    tokens = [e for e in entries if e.kind == "step" and e.data["kind"] == "token"]
    ended = {e.data["id"] for e in entries if e.kind == "scenario_end"}
    return bool(tokens) and tokens[-1].data["scenario"] not in ended | {"T-RES-001"}


def _kill_during_a_later_scenario(pack: Path, out: Path) -> Path:
    """Start ``stslab certify`` in a child; SIGKILL it inside the second (or, on a starved
    machine, the third) scenario."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stslab", "certify", "--pack", str(pack), "--out", str(out),
         "--speed", "4", "--quiet"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + KILL_DEADLINE_S
        while time.monotonic() < deadline:
            assert proc.poll() is None, "certify ended before it could be killed"
            journals = list(out.glob("*/benches/*/journal.jsonl"))
            entries = _entries(journals[0]) if journals else []
            if _inside_a_later_scenario(entries):
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
                return journals[0].parents[2]
            time.sleep(0.05)
        raise AssertionError("certify never reached a later scenario")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def _remove_killed_simlab(run: Path) -> None:
    """The killed child could not remove its SimLab folder (pty links, segment map)."""
    bench = yaml.safe_load((run / "benches" / BENCH / "bench.yaml").read_text())
    folder = Path(bench["instruments"]["keypad"]["address"]).parent
    if folder.name.startswith("stslab-sim-") and folder.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    base = tmp_path_factory.mktemp("resume")
    pack = write_pack(base / "pack", {f"s{n}.yaml": WAITING_SCENARIO.format(n=n)
                                      for n in (1, 2, 3)})  # fmt: skip
    run = _kill_during_a_later_scenario(pack, base / "runs")
    _remove_killed_simlab(run)
    before = read_journal(journal_path(run, BENCH))  # a killed run's journal still verifies
    assert not (run / "record.json").exists()
    started = [e.data["scenario"] for e in before if e.kind == "scenario_start"]
    ended = [e.data["id"] for e in before if e.kind == "scenario_end"]
    (cut,) = [sid for sid in started if sid not in ended]
    code = main(["certify", "--resume", str(run), "--pack", str(pack), "--quiet"])
    record = json.loads((run / "record.json").read_text())
    return {"run": run, "code": code, "before": before, "record": record, "cut": cut,
            "ended": ended, "after": read_journal(journal_path(run, BENCH))}  # fmt: skip


def test_a_killed_run_resumes_to_a_result(killed_and_resumed: dict) -> None:
    assert killed_and_resumed["code"] == 0
    summary = killed_and_resumed["record"]["summary"]
    assert (summary["verdict"], summary["PASS"], summary["planned"]) == ("PASS", 3, 3)
    assert killed_and_resumed["record"]["complete"] is True


def test_every_scenario_is_in_the_record_exactly_once(killed_and_resumed: dict) -> None:
    scenarios = killed_and_resumed["record"]["scenarios"]
    assert [s["id"] for s in scenarios] == ["T-RES-001", "T-RES-002", "T-RES-003"]
    assert all(s["outcome"] == "PASS" for s in scenarios)
    # the interrupted scenario ran again from its start: only the new steps count
    assert [len(s["steps"]) for s in scenarios] == [3, 3, 3]


def test_the_record_says_the_run_was_interrupted(killed_and_resumed: dict) -> None:
    record = killed_and_resumed["record"]
    assert record["interruptions"]
    assert killed_and_resumed["cut"] in ("T-RES-002", "T-RES-003")
    assert any(i.get("during") == killed_and_resumed["cut"] for i in record["interruptions"])
    (resume,) = record["resumes"]
    assert resume["completed"] == killed_and_resumed["ended"]


def test_the_journal_chain_holds_across_the_resume(killed_and_resumed: dict) -> None:
    before, after = killed_and_resumed["before"], killed_and_resumed["after"]
    assert after[: len(before)] == before
    assert [e.seq for e in after] == list(range(len(after)))
    kinds = [e.kind for e in after[len(before) :]]
    assert kinds[:2] == ["resume", "reestablished"]
    assert kinds[-1] == "end"
    assert killed_and_resumed["record"]["journals"][0]["head"] == after[-1].hash


def test_tids_keep_rising_across_the_resume(killed_and_resumed: dict) -> None:
    def tids(entries: list) -> list[int]:
        return [e.data["action"]["token"]["tid"] for e in entries
                if e.kind == "step" and "tid" in e.data["action"].get("token", {})]  # fmt: skip

    before, after = killed_and_resumed["before"], killed_and_resumed["after"]
    old, new = tids(before), tids(after[len(before) :])
    assert old and new
    assert min(new) > max(old)
    assert new == sorted(set(new))


def test_the_meter_was_brought_back_to_its_journalled_state(killed_and_resumed: dict) -> None:
    before = killed_and_resumed["before"]
    entered = [e for e in before if e.kind == "key_change_entry"
               or (e.kind == "step" and e.data["action"].get("digits"))]  # fmt: skip
    (note,) = [e for e in killed_and_resumed["after"] if e.kind == "reestablished"]
    assert note.data["replayed_entries"] == len(entered)
    assert note.data["readout"] == {"krn": 1, "kt": 2, "ti": 1}


# --- a run interrupted through the campaign API (cheaper than a kill) ------------------------


@pytest.fixture(scope="module")
def interrupted_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run that stopped after the first of two scenarios (no end record)."""
    base = tmp_path_factory.mktemp("interrupted")
    pack = write_pack(base / "pack", {f"q{n}.yaml": QUICK_SCENARIO.format(n=n)
                                      for n in (1, 2)})  # fmt: skip
    with Campaign(CampaignConfig(out=base / "runs", pack=pack, speed=2)) as campaign:
        campaign.run_scenario(campaign.pending()[0])
        return campaign.run.directory


@pytest.fixture
def interrupted(interrupted_once: Path, tmp_path: Path) -> Path:
    """A copy of the interrupted run for one test to resume or damage."""
    run = tmp_path / "runs" / interrupted_once.name
    shutil.copytree(interrupted_once, run)
    return run


def _finish(run: Path) -> None:
    """Mark the run finished, as ``Campaign.finish`` does."""
    with Journal(journal_path(run, BENCH)) as journal:
        journal.append("end", {"at": "2026-01-01T00:00:00+00:00", "teardown_problems": [],
                               "complete": False})  # fmt: skip


def _pack_of(run: Path) -> Path:
    return Path(read_journal(journal_path(run, BENCH))[0].data["config"]["pack"])


def test_a_resume_takes_the_pack_from_the_run(
    interrupted: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["certify", "--resume", str(interrupted), "--quiet"])
    assert code == 0, capsys.readouterr().err
    record = json.loads((interrupted / "record.json").read_text())
    assert [s["id"] for s in record["scenarios"]] == ["T-QUICK-001", "T-QUICK-002"]


def test_a_resume_of_a_damaged_journal_is_refused(interrupted: Path) -> None:
    path = journal_path(interrupted, BENCH)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"setup"', b'"setuq"')
    path.write_bytes(b"".join(lines))
    damaged = path.read_bytes()
    with pytest.raises(CampaignError) as info:
        Campaign(CampaignConfig(), resume=interrupted).open()
    assert str(info.value).startswith("the journal cannot be used: ")
    assert f"{path}:3: record altered" in str(info.value)
    assert path.read_bytes() == damaged


def test_a_resume_of_a_finished_run_is_refused(interrupted: Path) -> None:
    _finish(interrupted)
    finished = (journal_path(interrupted, BENCH)).read_bytes()
    with pytest.raises(CampaignError, match="the run already finished"):
        Campaign(CampaignConfig(), resume=interrupted).open()
    assert (journal_path(interrupted, BENCH)).read_bytes() == finished


def test_a_resume_without_a_start_record_is_refused(interrupted: Path) -> None:
    path = journal_path(interrupted, BENCH)
    path.unlink()
    with Journal(path) as journal:
        journal.append("step", {"scenario": "T-QUICK-001"})
    with pytest.raises(CampaignError, match="no start record"):
        Campaign(CampaignConfig(), resume=interrupted).open()


def test_a_bench_killed_before_its_first_record_starts_over(interrupted: Path) -> None:
    # Killed between creating the journal and writing its start record (or half-way through
    # writing it): the bench had not started.
    journal_path(interrupted, BENCH).write_bytes(b'{"seq":0,"t":17')
    with Campaign(CampaignConfig(), resume=interrupted) as campaign:
        assert not campaign.resuming
        assert [s.id for s in campaign.pending()] == ["T-QUICK-001", "T-QUICK-002"]
    assert [e.kind for e in read_journal(journal_path(interrupted, BENCH))] == ["start"]


def test_a_folder_that_is_not_a_run_is_not_resumed(tmp_path: Path) -> None:
    with pytest.raises(CampaignError, match="not a run folder"):
        Campaign(CampaignConfig(), resume=tmp_path).open()


@pytest.mark.parametrize("damage", ["edit", "finish"])
def test_certify_says_why_it_will_not_resume(
    interrupted: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    path = journal_path(interrupted, BENCH)
    pack = _pack_of(interrupted)
    if damage == "edit":
        path.write_bytes(path.read_bytes().replace(b'"setup"', b'"setuq"', 1))
        reason = "record altered"
    else:
        _finish(interrupted)
        run_id = json.loads((interrupted / "run.json").read_text())["run_id"]
        (interrupted / f"report-{run_id}-R1.pdf").write_bytes(b"%PDF-")  # the report issued
        reason = "already finished (report R1 issued)"
    before = path.read_bytes()
    code = main(["certify", "--resume", str(interrupted), "--pack", str(pack), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert reason in err
    assert path.read_bytes() == before
