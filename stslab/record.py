"""The record: the one canonical result of a run, built from its journal.

A schema-versioned JSON document (job, lab, DUT, bench with instrument identities and
calibration, pack id/version/hash, per-scenario and per-step results with observations and
evidence hashes, deviations, interruptions and resumes, timing, the decision rule). Every
report (console, PDF, JUnit) is a view of it.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from stslab.campaign import DECISION_RULE
from stslab.journal import read_journal

RECORD_SCHEMA = "stslab.record/1"


def build_record(journal_path: str | Path) -> dict[str, Any]:
    entries = read_journal(journal_path)
    if not entries or entries[0].kind != "start":
        raise ValueError(f"{journal_path}: no start record")
    start = entries[0].data
    scenarios: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    interruptions: list[dict[str, Any]] = []
    resumes: list[dict[str, Any]] = []
    end: dict[str, Any] | None = None
    for e in entries[1:]:
        if e.kind == "scenario_start":
            sid = e.data["scenario"]
            if sid in scenarios and scenarios[sid].get("outcome") is None:
                interruptions.append({"scenario": sid, "note": "started again after a resume"})
            scenarios[sid] = {"id": sid, "steps": [], "outcome": None}
            if sid not in order:
                order.append(sid)
        elif e.kind == "step":
            sid = e.data["scenario"]
            step = {k: v for k, v in e.data.items() if k != "scenario"}
            scenarios.setdefault(sid, {"id": sid, "steps": [], "outcome": None})["steps"].append(
                step
            )
        elif e.kind == "scenario_end":
            sid = e.data["id"]
            scenarios[sid].update(e.data)
        elif e.kind == "resume":
            resumes.append(e.data)
        elif e.kind == "reestablished":
            interruptions.append(e.data.get("interruption", {}))
        elif e.kind == "end":
            end = e.data
    results = [scenarios[s] for s in order if scenarios[s].get("outcome") is not None]
    unfinished = [s for s in order if scenarios[s].get("outcome") is None]
    counts = Counter(r["outcome"] for r in results)
    planned = start.get("scenarios", [])
    not_run = [s for s in planned if s not in scenarios]
    deviations = list(start.get("deviations", []))
    if unfinished:
        deviations.append(f"interrupted scenario(s) without a result: {', '.join(unfinished)}")
    if not_run:
        deviations.append(f"{len(not_run)} planned scenario(s) not run")
    if end is not None:
        deviations += end.get("teardown_problems", [])
    verdict = "PASS"
    if counts.get("ERROR") or unfinished or not_run:
        verdict = "INCOMPLETE"
    if counts.get("FAIL"):
        verdict = "FAIL"
    return {
        "schema": RECORD_SCHEMA,
        "run_id": start["run_id"],
        "mode": start["mode"],
        "started": start["at"],
        "finished": end["at"] if end else None,
        "complete": bool(end and end.get("complete")) and not unfinished,
        "record_built": datetime.now(UTC).isoformat(timespec="seconds"),
        "job": start["job"],
        "dut": start["dut"],
        "bench": start["bench"],
        "pack": start["pack"],
        "config": start["config"],
        "decision_rule": DECISION_RULE,
        "summary": {
            "verdict": verdict,
            "scenarios": len(results),
            "planned": len(planned),
            **{k: counts.get(k, 0) for k in ("PASS", "FAIL", "ERROR", "SKIP")},
            "steps": sum(len(r["steps"]) for r in results),
            "wall_s": round(sum(r.get("duration_s", 0) for r in results), 3),
            "modelled_s": round(sum(r.get("modelled_s", 0) for r in results), 3),
        },
        "deviations": deviations,
        "interruptions": interruptions,
        "resumes": resumes,
        "scenarios": results,
        "journal": {"records": len(entries), "head": entries[-1].hash},
    }
