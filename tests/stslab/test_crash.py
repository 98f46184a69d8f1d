"""A ``stslab certify`` killed (SIGKILL, through ``STSLAB_CRASH_AT``) at each moment that
matters — half-way through a journal record, right after one, with the DUT ledger in its
scratch file, right after the ledger is replaced, with the report signed but not written,
half-way through writing it — resumes with ``--resume`` to the verdicts an uninterrupted run
gives, its journal verifying and every scenario in the record once. The crash points do
nothing unless asked. ``benchmarks/crash_soak.py`` is the long version (20 random kills)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from stslab.crash import ENV, POINTS
from stslab.journal import read_journal
from stslab.run import journal_path
from stslab.session import DEFAULT_PACK, load_pack

REPO = Path(__file__).resolve().parents[2]
BENCH = "simlab-1"
#: Two credit tokens, a TID store check and a key change, in pack order.
SELECT = ["STS-TC-001", "STS-TC-002", "STS-TID-001", "STS-KC-001"]
RUN_TIMEOUT_S = 300.0


def certify(
    args: list[str], env: dict[str, str], scenarios: list[str] = SELECT
) -> subprocess.CompletedProcess:
    select = [a for sid in scenarios for a in ("--select", sid)]
    return subprocess.run(
        [sys.executable, "-m", "stslab", "certify", *args, *select, "--quiet"],
        env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=REPO,
    )  # fmt: skip


def run_of(out: Path) -> Path:
    (run,) = [p for p in out.iterdir() if (p / "run.json").exists()]
    return run


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    signer = tmp_path_factory.mktemp("dev-signer")
    clean = {k: v for k, v in os.environ.items() if k != ENV}
    return {**clean, "PYTHONPATH": str(REPO), "STSLAB_DEV_SIGNER_DIR": str(signer)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, env: dict[str, str]) -> dict:
    """The uninterrupted run: its verdicts, journal length and TIDs issued."""
    out = tmp_path_factory.mktemp("reference")
    done = certify(["--bench", "virtual", "--out", str(out), "--no-report"], env)
    assert done.returncode == 0, done.stderr
    run = run_of(out)
    record = json.loads((run / "record.json").read_text())
    (ledger,) = (run / "ledger").glob("*.json")
    return {
        "outcomes": {s["id"]: s["outcome"] for s in record["scenarios"]},
        "steps": {s["id"]: len(s["steps"]) for s in record["scenarios"]},
        "records": len(read_journal(journal_path(run, BENCH))),
        "tids": json.loads(ledger.read_text())["tokens_issued"],
    }


def kill(point: str, count: int, out: Path, env: dict, report: bool) -> Path:
    extra = [] if report else ["--no-report"]
    killed = certify(["--bench", "virtual", "--out", str(out), *extra],
                     {**env, ENV: f"{point}:{count}"})  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, f"not killed at {point}:{count}"
    return run_of(out)


def resume(run: Path, env: dict, report: bool) -> None:
    resumed = certify(["--resume", str(run), *([] if report else ["--no-report"])], env)
    assert resumed.returncode == 0, resumed.stderr


def kill_and_resume(point: str, count: int, out: Path, env: dict, report: bool) -> Path:
    run = kill(point, count, out, env, report)
    resume(run, env, report)
    return run


# Where each point is aimed: late in the run, after the key change (a resumed SimLab meter
# must replay it), or at the report (count 1: a run makes one).
AIM = {
    "journal-torn": lambda ref: ref["records"] - 3,  # inside the key change scenario
    "journal-appended": lambda ref: ref["records"] - 1,  # after the last scenario's end
    "ledger-scratch": lambda ref: ref["tids"],  # the last TID issued, not yet saved
    "ledger-saved": lambda ref: ref["tids"] - 1,  # saved, its token not yet entered
    "report-signed": lambda ref: 1,
    "report-torn": lambda ref: 1,
}


@pytest.mark.parametrize("point", POINTS)
def test_a_kill_at_each_point_resumes_to_the_same_verdicts(
    point: str, reference: dict, env: dict, tmp_path: Path
) -> None:
    report = point.startswith("report")
    run = kill_and_resume(point, AIM[point](reference), tmp_path / "runs", env, report)
    record = json.loads((run / "record.json").read_text())
    assert record["complete"] is True
    assert {s["id"]: s["outcome"] for s in record["scenarios"]} == reference["outcomes"]
    assert {s["id"]: len(s["steps"]) for s in record["scenarios"]} == reference["steps"]
    entries = read_journal(journal_path(run, BENCH))  # the whole chain verifies
    ended = Counter(e.data["id"] for e in entries if e.kind == "scenario_end")
    assert set(ended.values()) == {1}
    assert record["journals"][0]["head"] == entries[-1].hash
    assert not [p.name for p in run.rglob(".*") if p.is_file()]  # no half-made file left
    if point == "journal-torn":
        (resume,) = [e for e in entries if e.kind == "resume"]
        assert resume.data["journal_repaired"]["torn_record_bytes"] > 0
    if report:
        (pdf,) = run.glob("report-*.pdf")
        assert pdf.name.endswith("-R1.pdf")
        verify = [sys.executable, "-m", "stslab", "verify", str(pdf)]
        verified = subprocess.run(verify, env=env, capture_output=True, text=True,
                                  timeout=RUN_TIMEOUT_S)  # fmt: skip
        assert verified.returncode == 0, verified.stderr


def test_tids_issued_before_the_kill_are_never_issued_again(
    reference: dict, env: dict, tmp_path: Path
) -> None:
    """Killed with the ledger saved and its token not yet entered: after the resume every
    fresh TID lies above the ledger's highest at the kill, and none is issued twice."""
    run = kill("ledger-saved", reference["tids"] - 1, tmp_path / "runs", env, False)
    (ledger,) = (run / "ledger").glob("*.json")
    at_kill = json.loads(ledger.read_text())
    before = len(read_journal(journal_path(run, BENCH), torn_tail=True))
    resume(run, env, False)
    fresh = {(s.id, i) for s in load_pack(DEFAULT_PACK) for i, step in enumerate(s.steps)
             if step.do == "token" and step.token.tid.rule == "next"}  # fmt: skip
    issued = []
    for n, e in enumerate(read_journal(journal_path(run, BENCH))):
        action = e.data.get("action", {}) if e.kind == "step" else {}
        if "tid" in action.get("token", {}) and (
            e.data["index"] == -1 or (e.data["scenario"], e.data["index"]) in fresh
        ):
            issued.append((n >= before, action["key"], action["token"]["tid"]))
    assert len({(key, tid) for _, key, tid in issued}) == len(issued)
    after = [tid for later, key, tid in issued
             if later and key == at_kill["key"]["fingerprint"]]  # fmt: skip
    assert after and min(after) > at_kill["last_tid"]


@pytest.mark.parametrize("spec", ["", "other-point:1", "marker:3"])
def test_a_crash_point_does_nothing_unless_it_is_named_and_reached(spec: str) -> None:
    code = "from stslab import crash\nfor _ in range(2): crash.point('marker')\nprint('alive')"
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, ENV: spec},
                          capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "alive\n")


def test_a_crash_point_kills_at_its_count_without_cleanup() -> None:
    code = ("import atexit\nfrom stslab import crash\natexit.register(print, 'cleaned up')\n"
            "for n in range(3):\n    print(n, flush=True)\n    crash.point('marker')")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], env={**os.environ, ENV: "marker:2"},
                          capture_output=True, text=True, cwd=REPO)  # fmt: skip
    assert done.returncode == -signal.SIGKILL
    assert done.stdout == "0\n1\n"


# -- inside a key change step ---------------------------------------------------------------

#: The key change to KRN 7 is the first step of STS-KC-001: its two sections, each journalled
#: before it is entered, the ledger's update on the last one's Accept, then the step record.
KC = ["STS-KC-001"]
#: The ledger is saved when the run makes it, when the meter keeps the first section, then by
#: the key change.
KC_LEDGER_SAVE = 3


def test_a_kill_at_each_instant_of_a_key_change_resumes_to_a_verified_run(
    env: dict, tmp_path: Path
) -> None:
    """Killed at every instant of a key change step — a section's journal record half
    written or written and not yet entered, the ledger's update in its scratch file or
    saved, the step's record half written or written — the resume rebuilds the meter with
    every section the journal holds, the ledger follows the key when the meter took it, and
    the run completes with the uninterrupted run's verdict; the meter's key is the ledger's."""
    out = tmp_path / "reference"
    assert (
        certify(["--bench", "virtual", "--out", str(out), "--no-report"], env, KC).returncode == 0
    )
    ref = run_of(out)
    ref_entries = read_journal(journal_path(ref, BENCH))
    sections = [e.seq + 1 for e in ref_entries if e.kind == "key_change_entry"]
    (step,) = [e.seq + 1 for e in ref_entries
               if e.kind == "step" and e.data["kind"] == "key_change"]  # fmt: skip
    assert len(sections) == 2 and step == sections[-1] + 1
    instants = [(p, n) for n in (*sections, step) for p in ("journal-torn", "journal-appended")]
    instants += [("ledger-scratch", KC_LEDGER_SAVE), ("ledger-saved", KC_LEDGER_SAVE)]
    followed = []
    for point, count in instants:
        where = tmp_path / f"{point}-{count}"
        killed = certify(["--bench", "virtual", "--out", str(where), "--no-report"],
                         {**env, ENV: f"{point}:{count}"}, KC)  # fmt: skip
        assert killed.returncode == -signal.SIGKILL, f"not killed at {point}:{count}"
        run = run_of(where)
        at_kill = read_journal(journal_path(run, BENCH), torn_tail=True)
        if point.startswith("ledger"):  # the aim: every section journalled, no step record
            assert at_kill[-1].kind == "key_change_entry"
            (ledger,) = (run / "ledger").glob("*.json")
            krn = json.loads(ledger.read_text())["key"]["krn"]
            assert krn == (7 if point == "ledger-saved" else 1), point
        resumed = certify(["--resume", str(run), "--no-report"], env, KC)
        assert resumed.returncode == 0, f"{point}:{count}: {resumed.stderr}"
        record = json.loads((run / "record.json").read_text())
        assert record["complete"] is True
        assert [(s["id"], s["outcome"], len(s["steps"])) for s in record["scenarios"]] == [
            ("STS-KC-001", "PASS", 5)
        ], f"{point}:{count}"
        entries = read_journal(journal_path(run, BENCH))  # the whole chain verifies
        (note,) = [e.data for e in entries if e.kind == "reestablished"]
        assert note["readout"]["krn"] in (1, 7)
        if "ledger" in note:
            followed.append((point, count))
        (ledger,) = (run / "ledger").glob("*.json")
        assert json.loads(ledger.read_text())["key"]["krn"] == 7
    # The meter took the key and the ledger had not: the kill after the last section's
    # journal record, and the one with the ledger's update in its scratch file.
    assert followed == [("journal-appended", sections[-1]), ("ledger-scratch", KC_LEDGER_SAVE)]


#: A register filled to one unit below its limit over several tokens (a ``fill`` step), then
#: a check that the TID store holds exactly what the ledger says.
FILL = ["STS-DCL-CRD-001", "STS-DCL-NV-001"]


def _killed_and_resumed(
    env: dict, tmp_path: Path, ids: list[str], kill_at: Callable[[list], int]
) -> tuple[list[tuple[str, str]], list]:
    """A reference run of ``ids``; the same run killed right after the journal record
    ``kill_at`` picks from the reference's journal (counted from 1), resumed, and ending with
    the reference's verdicts. Returns those verdicts and the resumed run's journal."""
    out = tmp_path / "reference"
    args = ["--bench", "virtual", "--no-report"]
    assert certify([*args, "--out", str(out)], env, ids).returncode == 0
    ref = run_of(out)
    ref_record = json.loads((ref / "record.json").read_text())
    verdicts = [(s["id"], s["outcome"]) for s in ref_record["scenarios"]]
    count = kill_at(read_journal(journal_path(ref, BENCH)))
    where = tmp_path / "killed"
    killed = certify([*args, "--out", str(where)], {**env, ENV: f"journal-appended:{count}"},
                     ids)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL
    run = run_of(where)
    resumed = certify(["--resume", str(run), "--no-report"], env, ids)
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((run / "record.json").read_text())
    assert [(s["id"], s["outcome"]) for s in record["scenarios"]] == verdicts
    return verdicts, read_journal(journal_path(run, BENCH))


def _scenario_end(scenario: str) -> Callable[[list], int]:
    """The count of ``scenario``'s end record in a journal."""

    def count(entries: list) -> int:
        (end,) = [e.seq + 1 for e in entries
                  if e.kind == "scenario_end" and e.data["id"] == scenario]  # fmt: skip
        return end

    return count


def test_a_kill_inside_a_fill_step_resumes_with_every_token_the_meter_had(
    env: dict, tmp_path: Path
) -> None:
    """Every entry is journalled before it is entered, so a kill between two tokens of a fill
    leaves a journal that holds each one the meter took: the resumed SimLab meter has the same
    TID store as the ledger, and the run completes with the uninterrupted run's verdicts."""
    fill: list = []  # the fill's own entries: the records right before its step record

    def in_the_fill(entries: list) -> int:
        at = next(i for i, e in enumerate(entries)
                  if e.kind == "step" and e.data["kind"] == "fill")  # fmt: skip
        label = entries[at].data["label"]
        for e in reversed(entries[:at]):
            if e.kind != "entry" or e.data["step"] != label:
                break
            fill.append(e)
        fill.reverse()
        assert len(fill) >= 3, "the fill step enters several tokens"
        return fill[len(fill) // 2].seq + 1  # the journal's records are counted from 1

    _, after = _killed_and_resumed(env, tmp_path, FILL, in_the_fill)
    (note,) = [e.data for e in after if e.kind == "reestablished"]
    assert note["replayed_entries"] >= len(fill) // 2 + 1


#: A partial key change set dropped over a power cycle, then a scenario after it.
PARTIAL_KC = ["STS-DCL-KCT-001", "STS-DCL-NV-001"]


def test_a_resumed_meter_loses_a_partial_key_change_set_with_its_supply_as_before(
    env: dict, tmp_path: Path
) -> None:
    """STS-DCL-KCT-001 enters the first section of a key change set, cycles the supply (the
    meter drops the section), enters the second alone. A SimLab meter rebuilt from the
    entries alone would put the two sections together and take the new key; a kill any time
    after it made the resume refuse ("the meter's key (KRN 2 …) is not the ledger's (KRN 1
    …)"). The resume replays the power cycles between the entries too."""
    verdicts, after = _killed_and_resumed(
        env, tmp_path, PARTIAL_KC, _scenario_end("STS-DCL-KCT-001")
    )
    assert verdicts == [("STS-DCL-KCT-001", "PASS"), ("STS-DCL-NV-001", "PASS")]
    (note,) = [e.data for e in after if e.kind == "reestablished"]
    assert note["replayed_supply_losses"] == 2
    assert note["readout"]["krn"] == 1  # the key the meter kept, the ledger's


#: Class-1 test tokens (every test, the load switch test), then a scenario after them.
TESTS_THEN_CREDIT = ["STS-C1-001", "STS-C1-002", "STS-NV-001"]


def test_a_resumed_meter_does_not_run_the_test_sequences_of_before_again(
    env: dict, tmp_path: Path
) -> None:
    """Class-1 test tokens change nothing a meter keeps; a SimLab meter rebuilt by replaying
    them ran their displays and load switch tests again after the resume, long after the
    real ones ended, and the return to rest saw the switch open in the port's readout and
    closed on the load side (a soak kill after STS-MUT-006 left STS-KEN-001 ERROR)."""
    _, after = _killed_and_resumed(env, tmp_path, TESTS_THEN_CREDIT, _scenario_end("STS-C1-002"))
    (note,) = [e.data for e in after if e.kind == "reestablished"]
    assert note["test_tokens_not_replayed"] >= 2
    (rest,) = [e.data for e in after if e.kind == "recovery"]
    assert rest["at_rest"] is True
    assert rest["observations"]["readout"]["relay"] == "CLOSED"
