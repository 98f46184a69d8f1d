"""Crash soak: ``stslab certify`` killed with SIGKILL at random moments, each run resumed.

One clean campaign first (the reference: its verdicts, steps per scenario, how many journal
records and ledger saves a campaign makes). Then ``--kills`` campaigns, each killed once: at
a crash point (``STSLAB_CRASH_AT``: inside a journal append, a ledger update, the report
signing and writing) reached a random number of times into the campaign, or from outside at
a random moment. Each is resumed with ``stslab certify --resume`` and checked:

* the resume completes: every scenario has the reference's verdict, the record is complete;
* every journal verifies, and the records before the kill are kept as they were;
* no step lost or counted twice: each scenario ended once, with the reference's step count;
* no TID issued twice: fresh TIDs are unique per key over the whole run, and those minted
  after the resume lie above the ledger's highest TID at the kill;
* one signed report, which ``stslab verify`` finds valid; no half-made file left behind.

Prints one line per kill and ``name=value`` figures. Exit status 1 when any kill fails a check.

    python3 benchmarks/crash_soak.py                  # 20 kills on virtual time (~15 min)
    python3 benchmarks/crash_soak.py --bench sim      # on SimLab's real transports
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

from stslab.crash import ENV, POINTS
from stslab.journal import read_journal
from stslab.run import RunPlan, journal_path
from stslab.session import DEFAULT_PACK, load_pack

#: TID rules that take a fresh TID from the ledger (the others reuse one on purpose).
FRESH_RULES = {"next", "at_ken", "past_ken", "advance_minutes"}
#: Kills from outside the process, at a random moment of the campaign.
ANYWHERE = "anywhere"
KILLED = -signal.SIGKILL
RUN_DEADLINE_S = 900.0


def certify(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stslab", "certify", *args, "--quiet"],
                          env=env, capture_output=True, text=True,
                          timeout=RUN_DEADLINE_S)  # fmt: skip


def run_folder(out: Path) -> Path | None:
    found = [p for p in out.glob("*") if (p / "run.json").exists()]
    return found[0] if found else None


def reference(bench: str, work: Path, env: dict[str, str]) -> dict:
    """A clean campaign: its verdicts and the sizes the kills are drawn from."""
    out = work / "reference"
    t0 = time.monotonic()
    done = certify(["--bench", bench, "--out", str(out)], env)
    wall = time.monotonic() - t0
    run = run_folder(out)
    if run is None or done.returncode not in (0, 1, 3):
        sys.exit(f"the reference campaign did not run: {done.stderr.strip()}")
    record = json.loads((run / "record.json").read_text())
    (ledger,) = (run / "ledger").glob("*.json")
    plan = RunPlan.read(run)
    (report,) = run.glob("report-*.pdf")
    first = min(read_journal(journal_path(run, s.name))[0].t for s in plan.shards)
    return {
        "code": done.returncode,
        "outcomes": {s["id"]: s["outcome"] for s in record["scenarios"]},
        "steps": {s["id"]: len(s["steps"]) for s in record["scenarios"]},
        "records": sum(len(read_journal(journal_path(run, s.name))) for s in plan.shards),
        "ledger_saves": json.loads(ledger.read_text())["tokens_issued"],
        "wall_s": wall,
        # From the first journal record to the report on disk: where a kill lands in the run.
        "span_s": report.stat().st_mtime - first,
    }


def fresh_steps() -> set[tuple[str, int]]:
    """(scenario, step index) of the pack's token steps that take a fresh TID."""
    fresh = set()
    for scenario in load_pack(DEFAULT_PACK):
        for index, step in enumerate(scenario.steps):
            if step.do == "token" and step.token.tid.rule in FRESH_RULES:
                fresh.add((scenario.id, index))
    return fresh


def kill_once(bench: str, out: Path, env: dict[str, str], how: str, ref: dict,
              rng: random.Random) -> tuple[Path | None, str]:  # fmt: skip
    """One campaign killed as ``how`` says; its run folder and where the kill landed."""
    args = ["--bench", bench, "--out", str(out)]
    if how != ANYWHERE:
        count = {"journal": ref["records"], "ledger": ref["ledger_saves"]}.get(how.split("-")[0])
        at = f"{how}:{rng.randint(1, count) if count else 1}"
        done = certify(args, {**env, ENV: at})
        return run_folder(out), at if done.returncode == KILLED else f"{at} (not reached)"
    proc = subprocess.Popen([sys.executable, "-m", "stslab", "certify", *args, "--quiet"],
                            env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        while proc.poll() is None and not list(out.glob("*/benches/*/journal.jsonl")):
            time.sleep(0.01)
        delay = rng.uniform(0, ref["span_s"])
        t0 = time.monotonic()
        while proc.poll() is None and time.monotonic() - t0 < delay:
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    run = run_folder(out)
    where = f"{ANYWHERE} at +{delay:.1f} s"
    # A kill that lands once the report is on disk finds a finished run: nothing to resume.
    ended = proc.returncode != KILLED or (run is not None and any(run.glob("report-*.pdf")))
    return run, f"{where} (ended first)" if ended else where


def remove_killed_simlab(run: Path) -> None:
    """A killed process cannot remove its wire SimLab's folder (pty links, segment map)."""
    for bench in run.glob("benches/*/bench.yaml"):
        keypad = yaml.safe_load(bench.read_text())["instruments"].get("keypad", {})
        folder = Path(str(keypad.get("address", ""))).parent
        if folder.name.startswith("stslab-sim-") and folder.parent == Path(tempfile.gettempdir()):
            shutil.rmtree(folder, ignore_errors=True)


def ledger_at_kill(run: Path) -> dict:
    (path,) = (run / "ledger").glob("*.json")
    return json.loads(path.read_text())


def check(run: Path, ref: dict, fresh: set, before: dict, ledger: dict, env: dict) -> list[str]:
    """What went wrong with a resumed run (empty: nothing)."""
    problems = []
    record = json.loads((run / "record.json").read_text())
    outcomes = {s["id"]: s["outcome"] for s in record["scenarios"]}
    if not record["complete"] or outcomes != ref["outcomes"]:
        differ = sorted(k for k in ref["outcomes"] if outcomes.get(k) != ref["outcomes"][k])
        problems.append(
            f"verdicts differ from the reference: {', '.join(differ[:5])}"
            f"{' …' if len(differ) > 5 else ''} (complete={record['complete']})"
        )
    steps = Counter(s["id"] for s in record["scenarios"])
    if any(n > 1 for n in steps.values()):
        problems.append("a scenario is in the record twice")
    counted = {s["id"]: len(s["steps"]) for s in record["scenarios"]}
    if counted != ref["steps"]:
        differ = sorted(k for k in ref["steps"] if counted.get(k) != ref["steps"][k])
        problems.append(f"step counts differ: {', '.join(differ[:5])}")
    # TIDs per key and per rollover: a key change with RO = 1 clears the meter's TID store,
    # and TIDs start again (under a key that may derive the same as before).
    issued: Counter[tuple[int, str, int]] = Counter()
    for shard in RunPlan.read(run).shards:
        try:
            entries = read_journal(journal_path(run, shard.name))
        except Exception as exc:
            problems.append(f"journal: {exc}")
            continue
        kept = before.get(shard.name, [])
        if [e.hash for e in entries[: len(kept)]] != [e.hash for e in kept]:
            problems.append(f"{shard.name}: records before the kill changed")
        ends = Counter(e.data["id"] for e in entries if e.kind == "scenario_end")
        if any(n > 1 for n in ends.values()):
            problems.append(f"{shard.name}: a scenario ended twice")
        rollovers = rolled_since_kill = 0
        for n, e in enumerate(entries):
            if e.kind != "step":
                continue
            action = e.data.get("action", {})
            if action.get("new_key", {}).get("ro"):
                rollovers += 1
                rolled_since_kill += n >= len(kept)
            tid = action.get("token", {}).get("tid")
            if tid is None or action.get("corrupted"):
                continue
            if e.data["index"] == -1 or (e.data["scenario"], e.data["index"]) in fresh:
                issued[(rollovers, action.get("key"), tid)] += 1
                if (
                    n >= len(kept)
                    and not rolled_since_kill
                    and action.get("key") == ledger["key"]["fingerprint"]
                    and ledger["last_tid"] is not None
                    and tid <= ledger["last_tid"]
                ):
                    problems.append(
                        f"TID {tid} minted after the resume, at or below the ledger's "
                        f"{ledger['last_tid']} at the kill"
                    )
    twice = [k for k, n in issued.items() if n > 1]
    if twice:
        problems.append(f"TIDs issued twice: {twice[:3]}")
    reports = sorted(run.glob("report-*.pdf"))
    if len(reports) != 1:
        problems.append(f"{len(reports)} reports")
    for pdf in reports:
        done = subprocess.run([sys.executable, "-m", "stslab", "verify", str(pdf)], env=env,
                              capture_output=True, text=True)  # fmt: skip
        if done.returncode != 0:
            problems.append(f"{pdf.name} does not verify: {done.stderr.strip()}")
    left = [p.name for p in run.rglob(".*") if p.is_file()]
    if left:
        problems.append(f"half-made files left: {', '.join(left)}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", choices=("virtual", "sim"), default="virtual")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders here")
    opts = parser.parse_args()
    seed = opts.seed if opts.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    work = opts.keep or Path(tempfile.mkdtemp(prefix="stslab-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != ENV}
    env["STSLAB_DEV_SIGNER_DIR"] = str(work / "dev-signer")
    print(f"bench={opts.bench}\nseed={seed}\nwork={work}")
    ref = reference(opts.bench, work, env)
    print(f"reference_wall_s={ref['wall_s']:.1f}\nreference_journal_records={ref['records']}\n"
          f"reference_tids_issued={ref['ledger_saves']}\n"
          f"reference_verdicts={dict(Counter(ref['outcomes'].values()))}")  # fmt: skip
    fresh = fresh_steps()
    kinds = [*POINTS, ANYWHERE]
    passed, resume_s, torn = 0, [], 0
    for k in range(opts.kills):
        how = kinds[k % len(kinds)]
        out = work / f"kill-{k + 1:02d}"
        run, where = kill_once(opts.bench, out, env, how, ref, rng)
        for retry in range(3):  # a run faster than the reference can end before its kill
            if how != ANYWHERE or "(ended first)" not in where:
                break
            out = work / f"kill-{k + 1:02d}-{retry + 2}"
            run, where = kill_once(opts.bench, out, env, how, ref, rng)
        if run is None or "(" in where:
            print(f"kill {k + 1:2d}/{opts.kills} {where}: FAILED (not killed inside the run)")
            continue
        plan = RunPlan.read(run)
        before = {s.name: read_journal(journal_path(run, s.name), torn_tail=True)
                  for s in plan.shards if journal_path(run, s.name).exists()}  # fmt: skip
        torn += sum(1 for s in plan.shards if journal_path(run, s.name).exists()
                    and not journal_path(run, s.name).read_bytes().endswith(b"\n"))  # fmt: skip
        ledger = ledger_at_kill(run)
        remove_killed_simlab(run)
        t0 = time.monotonic()
        done = certify(["--resume", str(run)], env)
        resume_s.append(time.monotonic() - t0)
        problems = (
            []
            if done.returncode == ref["code"]
            else [f"resume exit status {done.returncode}: {done.stderr.strip()[-300:]}"]
        )
        if (run / "record.json").exists():
            problems += check(run, ref, fresh, before, ledger, env)
        else:
            problems.append("no record after the resume")
        records = sum(len(v) for v in before.values())
        status = "ok" if not problems else "FAILED: " + "; ".join(problems)
        print(
            f"kill {k + 1:2d}/{opts.kills} {where:28} journal records at the kill {records:4d}"
            f"  resume {resume_s[-1]:5.1f} s  {status}",
            flush=True,
        )
        passed += not problems
    print(f"kills={opts.kills}\nresumed_and_verified={passed}\n"
          f"torn_journal_records_cut={torn}\n"
          f"mean_resume_s={sum(resume_s) / max(1, len(resume_s)):.1f}\n"
          f"crash_soak={passed}/{opts.kills}")  # fmt: skip
    return 0 if passed == opts.kills else 1


if __name__ == "__main__":
    sys.exit(main())
