"""The record: the one canonical result of a run, built from its journal.

A schema-versioned JSON document (job, lab, DUT, the benches with instrument identities and
calibration and the sample each tested, pack id/version/hash, per-scenario results with the
bench and sample that ran them and per-step observations and evidence hashes, deviations,
interruptions and resumes, each return to rest after a fault, timing, the decision rule and its
false-accept risk, each bench journal's head). Every report (console, PDF, JUnit) is a view of it.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stslab.journal import read_journal
from stslab.run import RunPlan, journal_path
from stslab.uncertainty import DecisionRule, decision_record

RECORD_SCHEMA = "stslab.record/2"


def build_record(run_dir: str | Path) -> dict[str, Any]:
    """The record of a run folder: every bench's journal, gathered in the plan's order."""
    run_dir = Path(run_dir)
    plan = RunPlan.read(run_dir)
    scenarios: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    interruptions: list[dict[str, Any]] = []
    resumes: list[dict[str, Any]] = []
    recoveries: list[dict[str, Any]] = []  # returns to rest after a fault (stslab.recovery)
    deviations: list[str] = []
    benches: list[dict[str, Any]] = []
    starts: list[dict[str, Any]] = []
    ends: list[dict[str, Any]] = []
    cut: dict[str, str] = {}  # scenario id -> bench, for scenarios started without a result
    deviated: dict[str, list[str]] = {}  # a start record's deviation -> the benches with it
    for shard in plan.shards:
        path = journal_path(run_dir, shard.name)
        entries = read_journal(path) if path.exists() else []
        if not entries:
            benches.append({"name": shard.name, "started": False, "finished": False})
            continue
        if entries[0].kind != "start":
            raise ValueError(f"{path}: no start record")
        start = entries[0].data
        starts.append(start)
        sample = start["dut"]["serial"]
        end: dict[str, Any] | None = None
        for e in entries[1:]:
            if e.kind == "scenario_start":
                sid = e.data["scenario"]
                if sid in cut:
                    interruptions.append({"scenario": sid, "bench": cut[sid],
                                          "note": "started again after a resume"})  # fmt: skip
                cut[sid] = shard.name
                scenarios[sid] = {"id": sid, "steps": [], "outcome": None,
                                  "bench": shard.name, "sample": sample}  # fmt: skip
                if sid not in order:
                    order.append(sid)
            elif e.kind == "step":
                sid = e.data["scenario"]
                step = {k: v for k, v in e.data.items() if k != "scenario"}
                scenarios.setdefault(sid, {"id": sid, "steps": [], "outcome": None,
                                           "bench": shard.name, "sample": sample})  # fmt: skip
                scenarios[sid]["steps"].append(step)
            elif e.kind == "scenario_end":
                sid = e.data["id"]
                scenarios[sid].update(e.data)
                cut.pop(sid, None)
            elif e.kind == "resume":
                resumes.append({"bench": shard.name, **e.data})
            elif e.kind == "recovery":
                recoveries.append({"bench": shard.name, **e.data})
            elif e.kind == "reestablished":
                interruptions.append({"bench": shard.name, **e.data.get("interruption", {})})
            elif e.kind == "place_lost":
                interruptions.append({"bench": shard.name, **e.data})
                deviations.append(f"place {e.data['place']}: {e.data['note']}")
            elif e.kind == "end":
                end = e.data
        for d in start.get("deviations", []):
            deviated.setdefault(d, []).append(shard.name)
        if end is not None:
            ends.append(end)
            deviations += end.get("teardown_problems", [])
        else:
            deviations.append(f"bench {shard.name} did not finish (resume the run)")
        d = start["dut"]
        benches.append({
            "name": shard.name, "started": True, "finished": end is not None,
            "bench": start["bench"],
            "sample": {k: d.get(k) for k in ("serial", "pan", "krn", "kt", "ti",
                                             "key_fingerprint")},
            "journal": {"file": path.relative_to(run_dir).as_posix(),
                        "records": len(entries), "head": entries[-1].hash},
        })  # fmt: skip
    if not starts:
        raise ValueError(f"{run_dir}: no bench has a journal")
    deviations[:0] = [d if len(names) == len(starts) else f"bench {', '.join(names)}: {d}"
                      for d, names in deviated.items()]  # fmt: skip
    planned = plan.scenarios
    rank = {sid: i for i, sid in enumerate(planned)}
    order.sort(key=lambda sid: rank.get(sid, len(rank)))
    results = [scenarios[s] for s in order if scenarios[s].get("outcome") is not None]
    unfinished = [s for s in order if scenarios[s].get("outcome") is None]
    counts = Counter(r["outcome"] for r in results)
    not_run = [s for s in planned if s not in scenarios]
    if unfinished:
        deviations.append(f"interrupted scenario(s) without a result: {', '.join(unfinished)}")
    if not_run:
        deviations.append(f"{len(not_run)} planned scenario(s) not run")
    verdict = "PASS"
    if counts.get("ERROR") or unfinished or not_run:
        verdict = "INCOMPLETE"
    if counts.get("FAIL"):
        verdict = "FAIL"
    first = starts[0]
    # Journals from before the job named a rule were judged by simple acceptance.
    decision = first.get("decision_rule") or decision_record(DecisionRule.SIMPLE)
    guard_band = sum(1 for r in results for st in r["steps"] for c in st.get("checks", [])
                     if c.get("guard_band"))  # fmt: skip
    all_ended = all(b["finished"] for b in benches)
    return {
        "schema": RECORD_SCHEMA,
        "run_id": plan.run_id,
        "mode": first["mode"],
        "started": min(s["at"] for s in starts),
        "finished": max(e["at"] for e in ends) if all_ended else None,
        "complete": all_ended and not unfinished and not not_run,
        "record_built": datetime.now(UTC).isoformat(timespec="seconds"),
        "job": first["job"],
        "dut": first["dut"],
        "bench": first["bench"],
        "benches": benches,
        "pack": first["pack"],
        "config": first["config"],
        "decision_rule": decision["statement"],
        "decision": decision,
        "summary": {
            "verdict": verdict,
            "scenarios": len(results),
            "planned": len(planned),
            **{k: counts.get(k, 0) for k in ("PASS", "FAIL", "ERROR", "SKIP")},
            "steps": sum(len(r["steps"]) for r in results),
            "guard_band": guard_band,
            "wall_s": round(sum(r.get("duration_s", 0) for r in results), 3),
            "modelled_s": round(sum(r.get("modelled_s", 0) for r in results), 3),
        },
        "declared_parameters": declared_parameters(first.get("declared_parameters", []), results),
        "deviations": deviations,
        "interruptions": interruptions,
        "resumes": resumes,
        "recoveries": recoveries,
        "scenarios": results,
        "journals": [b["journal"] for b in benches if b["started"]],
    }


def declared_parameters(
    rows: list[dict[str, Any]], results: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each declared parameter with its value, the scenarios that prove it and a verdict:
    FAIL or ERROR when one of them did; PASS when at least one passed; NOT JUDGED when none
    could be judged on this bench (the reason given); NOT RUN; NOT COVERED when no scenario
    of the pack proves it; N/A (with the reason) when the meter does not declare it."""
    by_id = {r["id"]: r for r in results}
    out = []
    for row in rows:
        entry = {k: row.get(k) for k in ("parameter", "meaning", "value", "scenarios")}
        notes: list[str] = []
        if row.get("not_applicable"):
            verdict = "N/A"
            notes.append(row["not_applicable"])
        elif not row.get("scenarios"):
            verdict = "NOT COVERED"
            notes.append("no scenario of the pack proves it on this meter")
        else:
            ran = [by_id[s] for s in row["scenarios"] if s in by_id]
            outcomes = {r["outcome"] for r in ran}
            unjudged = [r for r in ran if r["outcome"] == "SKIP"]
            notes += [f"{r['id']}: {r.get('skip_reason') or 'skipped'}" for r in unjudged]
            if "FAIL" in outcomes:
                verdict = "FAIL"
            elif "ERROR" in outcomes:
                verdict = "ERROR"
            elif "PASS" in outcomes:
                verdict = "PASS"
            elif unjudged:
                verdict = "NOT JUDGED"
            else:
                verdict = "NOT RUN"
        out.append({**entry, "verdict": verdict, "notes": notes})
    return out
