"""The run folder: one campaign over one or more benches, each with its own sample.

```
runs/<run id>/
  run.json                      the plan: config, the benches (shards) and their samples,
                                the scenarios selected — written once, before any bench opens
  benches/<bench>/journal.jsonl one hash-chained journal per bench
  benches/<bench>/bench.yaml    SimLab's generated bench file
  ledger/<serial>.json          SimLab samples' DUT ledgers (real meters: ~/.stslab/ledger)
  evidence/                     display frames by SHA-256 (shared: names are hashes)
  record.json, junit.xml, report-*.pdf
```

A run with one bench is the one-shard case of the same layout. A shard is *new* (no
journal yet), *interrupted* (a journal without an end record) or *finished*.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from stslab.atomic import replace_file
from stslab.journal import Entry, JournalError, read_journal

RUN_PLAN = "run.json"
BENCHES = "benches"
JOURNAL = "journal.jsonl"

ShardState = Literal["new", "interrupted", "finished"]


class RunError(Exception):
    """A run folder that cannot be used (no plan, a damaged journal); the message says why."""


@dataclass(frozen=True)
class Shard:
    """One bench of a run and the meter sample on it."""

    name: str  # the folder under benches/, unique in the run
    bench: str  # "sim" / "virtual" (SimLab in-process) or a bench file
    serial: str | None = None  # the sample's serial (None: the DUT profile's)
    pan: str | None = None  # the sample's PAN (None: the DUT profile's)


@dataclass
class RunPlan:
    run_id: str
    created: str
    config: dict[str, Any]
    shards: list[Shard]
    scenarios: list[str] = field(default_factory=list)

    def write(self, directory: Path) -> Path:
        doc = {**asdict(self), "shards": [asdict(s) for s in self.shards]}
        path = directory / RUN_PLAN
        replace_file(path, json.dumps(doc, indent=1).encode())
        return path

    @classmethod
    def read(cls, directory: Path) -> RunPlan:
        path = directory / RUN_PLAN
        try:
            doc = json.loads(path.read_text())
            return cls(run_id=doc["run_id"], created=doc["created"], config=doc["config"],
                       shards=[Shard(**s) for s in doc["shards"]],
                       scenarios=list(doc.get("scenarios", [])))  # fmt: skip
        except FileNotFoundError:
            raise RunError(f"{directory}: not a run folder (no {RUN_PLAN})") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise RunError(f"{path}: not a run plan: {exc}") from None

    def shard(self, name: str) -> Shard:
        for s in self.shards:
            if s.name == name:
                return s
        raise RunError(f"the run has no bench named {name!r}")


def new_run_dir(out: Path) -> tuple[str, Path]:
    """A fresh run id and its folder (with evidence/)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    run_id = f"{stamp}-{secrets.token_hex(3)}"
    directory = out / run_id
    directory.mkdir(parents=True, exist_ok=False)
    (directory / "evidence").mkdir()
    return run_id, directory


def shard_dir(run_dir: Path, name: str) -> Path:
    return run_dir / BENCHES / name


def journal_path(run_dir: Path, name: str) -> Path:
    return shard_dir(run_dir, name) / JOURNAL


def shard_entries(run_dir: Path, name: str) -> list[Entry]:
    """The shard's verified journal (empty if it never started), without a last record the
    process died writing (the journal's writer cuts it off when the bench continues)."""
    path = journal_path(run_dir, name)
    if not path.exists():
        return []
    try:
        return read_journal(path, torn_tail=True)
    except JournalError as exc:
        raise RunError(f"the journal cannot be used: {exc}") from None


def shard_state(entries: list[Entry]) -> ShardState:
    if not entries:
        return "new"
    return "finished" if any(e.kind == "end" for e in entries) else "interrupted"


def shard_states(run_dir: Path, plan: RunPlan) -> dict[str, ShardState]:
    return {s.name: shard_state(shard_entries(run_dir, s.name)) for s in plan.shards}


def ended_scenarios(entries: list[Entry]) -> list[str]:
    """The scenarios a bench's journal ran to a result, in order; a scenario cut short when
    the bench's place was lost (``place_lost`` names it) does not count: it runs again."""
    ended: list[str] = []
    for e in entries:
        if e.kind == "scenario_end" and e.data["id"] not in ended:
            ended.append(e.data["id"])
        elif e.kind == "place_lost" and e.data.get("rerun") in ended:
            ended.remove(e.data["rerun"])
    return ended


def completed_scenarios(run_dir: Path, plan: RunPlan) -> dict[str, str]:
    """Scenario id -> the bench that ran it to a result, over every journal of the run."""
    done: dict[str, str] = {}
    for s in plan.shards:
        for sid in ended_scenarios(shard_entries(run_dir, s.name)):
            done.setdefault(sid, s.name)
    return done


def safe_name(text: str) -> str:
    """A folder name from a bench name."""
    out = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text).strip(".")
    return out or "bench"
