"""What a person watching ``stslab certify`` sees while it runs.

The display follows the journals in the run folder: every bench's process writes and fsyncs
its journal as steps happen, so the same view serves one bench in this process and N benches
in pytest-xdist workers. In a terminal: a live table, per bench the scenario and step
running, counts, elapsed time and an estimate of what is left (refreshed four times a
second). Without one (CI logs): a line per finished scenario.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

OUTCOMES = ("PASS", "FAIL", "ERROR", "SKIP")
POLL_S = 0.25


@dataclass
class BenchView:
    name: str
    sample: str = ""
    scenario: str | None = None
    step: str = ""
    state: str = "waiting"  # waiting, running, idle, finished, stopped
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    started: float | None = None
    ended: float | None = None
    offset: int = 0  # bytes of the journal read so far


class RunView:
    """The run's progress, read from its journals."""

    def __init__(self, run_dir: Path, on_finished: Any = None) -> None:
        from stslab.estimate import modelled_seconds
        from stslab.run import (
            RunPlan,
            completed_scenarios,
            journal_path,
            shard_entries,
            shard_state,
        )
        from stslab.session import load_pack

        self.run_dir = run_dir
        plan = RunPlan.read(run_dir)
        self.planned = list(plan.scenarios)
        done_before = completed_scenarios(run_dir, plan)
        pack = {s.id: s for s in load_pack(Path(plan.config["pack"]))}
        self.scenarios = {sid: pack[sid] for sid in self.planned if sid in pack}
        self.estimates = {sid: modelled_seconds(s) for sid, s in self.scenarios.items()}
        self.todo_s = sum(v for k, v in self.estimates.items() if k not in done_before)
        self.done_s = 0.0
        self.done = len([s for s in self.planned if s in done_before])
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.benches = {s.name: BenchView(s.name, s.serial or "") for s in plan.shards}
        self._paths = {s.name: journal_path(run_dir, s.name) for s in plan.shards}
        # Journals of a resumed run: only what is appended from now on is news.
        for name, path in self._paths.items():
            if path.exists():
                self.benches[name].offset = path.stat().st_size
                if shard_state(shard_entries(run_dir, name)) == "finished":
                    self.benches[name].state = "finished"
        self.on_finished = on_finished
        self.started = time.monotonic()
        self.lock = threading.Lock()

    @property
    def total(self) -> int:
        return len(self.planned)

    def poll(self) -> None:
        for name, path in self._paths.items():
            bench = self.benches[name]
            try:
                with open(path, "rb") as fh:
                    fh.seek(bench.offset)
                    data = fh.read()
            except FileNotFoundError:
                continue
            # Only whole lines: a record being written is read on the next poll.
            whole = data[: data.rfind(b"\n") + 1]
            bench.offset += len(whole)
            for raw in whole.splitlines():
                try:
                    rec = json.loads(raw)
                except ValueError:
                    continue
                with self.lock:
                    self._apply(bench, rec["kind"], rec["data"])

    def _apply(self, bench: BenchView, kind: str, data: dict[str, Any]) -> None:
        now = time.monotonic()
        if kind in ("start", "resume"):
            bench.state, bench.started = "idle", now
            if kind == "start":
                bench.sample = data.get("dut", {}).get("serial", bench.sample)
        elif kind == "scenario_start":
            bench.state, bench.scenario = "running", data["scenario"]
            bench.step = self._step_text(bench.scenario, 0)
        elif kind == "step" and data.get("index", -1) >= 0:
            bench.step = self._step_text(data["scenario"], data["index"] + 1)
        elif kind == "scenario_end":
            outcome = data.get("outcome", "ERROR")
            bench.counts[outcome] = bench.counts.get(outcome, 0) + 1
            self.counts[outcome] = self.counts.get(outcome, 0) + 1
            self.done += 1
            self.done_s += self.estimates.get(data["id"], 0.0)
            bench.state, bench.scenario, bench.step = "idle", None, ""
            if self.on_finished is not None:
                self.on_finished(data["id"], outcome, bench.name, data.get("duration_s", 0.0))
        elif kind == "end":
            bench.state, bench.scenario, bench.step = "finished", None, ""
            bench.ended = now

    def _step_text(self, sid: str, index: int) -> str:
        scenario = self.scenarios.get(sid)
        if scenario is None:
            return ""
        n = len(scenario.steps)
        if index >= n:
            return f"step {n}/{n} done"
        label = scenario.step_label(index)
        return f"step {index + 1}/{n}" + ("" if label.startswith("step ") else f" {label}")

    def stopped(self, name: str) -> None:
        """A bench's process ended without finishing (its shard waits for a resume)."""
        with self.lock:
            bench = self.benches.get(name)
            if bench is not None and bench.state != "finished":
                bench.state, bench.step = "stopped", "interrupted: resume the run"

    def left(self) -> str:
        elapsed = time.monotonic() - self.started
        if self.done_s <= 0:
            return "?"
        return _clock(elapsed * max(0.0, self.todo_s - self.done_s) / self.done_s)

    def render(self) -> Group:
        with self.lock:
            c = self.counts
            head = Text.assemble(
                ("certify ", "bold"),
                f"{self.done}/{self.total} scenarios · ",
                (f"pass {c['PASS']}", "green"), " ", (f"fail {c['FAIL']}", "red"), " ",
                (f"error {c['ERROR']}", "yellow"), f" skip {c['SKIP']} · elapsed ",
                _clock(time.monotonic() - self.started), f" · left ≈ {self.left()}",
            )  # fmt: skip
            table = Table("bench", "sample", "running", "pass", "fail", "error", "skip",
                          "elapsed", box=None, pad_edge=False)  # fmt: skip
            for b in self.benches.values():
                running = f"{b.scenario} {b.step}" if b.scenario else b.step or b.state
                since = _clock((b.ended or time.monotonic()) - b.started) if b.started else "-"
                table.add_row(b.name, b.sample, running, *(str(b.counts[o]) for o in OUTCOMES),
                              since)  # fmt: skip
            return Group(head, table)


class Follower:
    """Polls the run's journals on a thread; shows a live table or prints lines."""

    def __init__(self, run_dir: Path, console: Console, lines: TextIO | None) -> None:
        self.lines = lines
        self.view = RunView(run_dir, on_finished=self._line if lines is not None else None)
        self.live: Live | None = None
        if lines is None:
            self.live = Live(console=console, get_renderable=self.view.render,
                             refresh_per_second=4, transient=True)  # fmt: skip
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stslab-progress", daemon=True)

    def start(self) -> Follower:
        if self.lines is not None:
            print(f"certify: {self.view.total} scenarios planned, run folder "
                  f"{self.view.run_dir}", file=self.lines, flush=True)  # fmt: skip
        if self.live is not None:
            self.live.start()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self.view.poll()

    def _line(self, sid: str, outcome: str, bench: str, duration_s: float) -> None:
        assert self.lines is not None
        print(f"{sid} {outcome} {bench} {duration_s:.1f} s ({self.view.done}/{self.view.total})",
              file=self.lines, flush=True)  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.view.poll()  # the last records
        if self.live is not None:
            self.live.stop()


def _clock(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"
