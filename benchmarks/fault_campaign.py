"""Faults never turn into verdicts: the catalogue with a transport fault in every other
scenario, over every role and every fault kind. Prints a table and ``name=value`` lines.

Each faulted scenario gets one transport fault (:mod:`simlab.faults`) on one role for the
whole scenario, cleared after it; the faults rotate so that consecutive faulted scenarios
hit different roles and every (fault kind, role) pair comes round. Kinds: ``silent`` (the
device answers nothing), ``garbled`` (bits flipped, ``--garble`` per byte), ``dropped``
(bytes lost, ``--drop`` per byte), ``delayed`` (``--delay`` s before every reply),
``vanished`` (the port or socket is gone). Roles: the seven instruments with a transport
(keypad robot, optical port, card writer, camera, power analyser, AC source, AC load).

Per kind and role: scenarios faulted, their ERROR / PASS / FAIL / SKIP, hangs (a scenario
running longer than ``--hang-after`` real seconds) and the longest time a fault took to
surface (the first ERROR step's duration: real seconds on ``sim``, bench seconds on
``virtual``). Then the scenarios right after a faulted one, the returns to rest, ERRORs that
do not name the faulted role, and a clean run right after on the same bench and meter (the
catalogue again; the only ERRORs expected there are tokens the factory refuses to mint for a
meter whose TID store has moved on).

Goals: ``fault_fail=0`` (no FAIL in a campaign with faults: the reference meter passes the
catalogue), ``hangs=0``, ``unnamed_errors=0``, ``clean_fail=0`` and ``clean_bench_errors=0``.

Usage: ``python benchmarks/fault_campaign.py [--bench virtual|sim] [--passes N] [--speed N]
[--every K] [--select TEXT] [--garble P] [--drop P] [--delay S] [--hang-after S] [--seed N]``.
``--bench virtual`` (default) runs in seconds per pass; ``--bench sim`` (wire SimLab) takes a
few minutes per pass. Each pass is a fresh campaign; the rotation starts further on in each,
so a fault meets other scenarios.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stslab.campaign import Outcome, ScenarioResult
from stslab.journal import read_journal
from stslab.run import journal_path
from stslab.session import Campaign, CampaignConfig

ROLES = ("keypad", "port", "card", "display", "analyzer", "source", "load")
KINDS = ("silent", "garbled", "dropped", "delayed", "vanished")
MINT_REFUSAL = "cannot mint:"


@dataclass
class Tally:
    outcomes: Counter = field(default_factory=Counter)
    hangs: int = 0
    surface_s: float = 0.0

    def add(self, result: ScenarioResult, hung: bool, surface_s: float | None) -> None:
        self.outcomes[result.outcome.value] += 1
        self.hangs += hung
        if surface_s is not None:
            self.surface_s = max(self.surface_s, surface_s)


def set_fault(sim: Any, kind: str, role: str, args: argparse.Namespace) -> None:
    fault = sim.fault(role)
    if kind == "silent":
        fault.silent = True
    elif kind == "garbled":
        fault.garble_rate = args.garble
    elif kind == "dropped":
        fault.drop_rate = args.drop
    elif kind == "delayed":
        fault.delay_s = args.delay
    else:
        fault.vanished = True


class Watchdog:
    """Notes a scenario that runs past ``limit_s``; past three times that, dumps every
    thread's stack and ends the benchmark (a hang must not hang the benchmark)."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self._started: float | None = None
        self._what = ""
        self._lock = threading.Lock()
        threading.Thread(target=self._watch, daemon=True).start()

    def start(self, what: str) -> None:
        with self._lock:
            self._started, self._what = time.monotonic(), what

    def stop(self) -> bool:
        """Whether the scenario that ends now ran past the limit."""
        with self._lock:
            started, self._started = self._started, None
        return started is not None and time.monotonic() - started > self.limit_s

    def _watch(self) -> None:
        while True:
            time.sleep(1.0)
            with self._lock:
                started, what = self._started, self._what
            if started is not None and time.monotonic() - started > 3 * self.limit_s:
                print(f"HANG: {what} has run {3 * self.limit_s:g} s; stacks:", flush=True)
                faulthandler.dump_traceback(all_threads=True)
                os._exit(2)


def first_error(result: ScenarioResult) -> Any:
    return next((s for s in result.steps if s.outcome is Outcome.ERROR), None)


def run_pass(number: int, args: argparse.Namespace, out: Path, report: dict) -> None:
    config = CampaignConfig(bench=args.bench, out=out, speed=args.speed, seed=args.seed,
                            select=tuple(args.select or ()))  # fmt: skip
    watchdog = report["watchdog"]
    pairs = [(kind, role) for kind in KINDS for role in ROLES]
    # Roles turn fastest, so consecutive faults hit different instruments.
    rotation = [(KINDS[(k // len(ROLES)) % len(KINDS)], ROLES[k % len(ROLES)])
                for k in range(len(pairs))]  # fmt: skip
    k = number * 11  # each pass starts further on in the rotation
    with Campaign(config) as campaign:
        sim = campaign._sim
        after_fault = False
        for index, scenario in enumerate(campaign.pending()):
            faulted = index % args.every == args.every - 1
            kind = role = None
            if faulted:
                kind, role = rotation[k % len(rotation)]
                k += 1
                set_fault(sim, kind, role, args)
            watchdog.start(f"{scenario.id} ({kind} {role})" if faulted else scenario.id)
            result = campaign.run_scenario(scenario)
            hung = watchdog.stop()
            sim.fault(role).clear() if role else None
            report["hangs"] += hung
            err = first_error(result)
            if faulted:
                bench_time = args.bench == "virtual"
                surface = None if err is None else err.modelled_s if bench_time else err.duration_s
                report["by_pair"][(kind, role)].add(result, hung, surface)
                if err is not None and f"[{role}]" not in (err.error or ""):
                    report["unnamed"].append(f"{scenario.id} ({kind} {role}): {err.error}")
            elif after_fault:
                report["after"].add(result, hung, None)
            else:
                report["unfaulted"].add(result, hung, None)
            if result.outcome is Outcome.FAIL:
                report["fails"].append(f"{scenario.id} ({kind} {role})" if faulted
                                       else f"{scenario.id} (no fault)")  # fmt: skip
            after_fault = faulted and result.outcome is Outcome.ERROR
        path = journal_path(campaign.run.directory, campaign.shard.name)
        for e in read_journal(path):
            if e.kind == "recovery":
                report["recoveries"].append(e.data)
        # A clean run right after, on the same bench and meter (journal detached: the run
        # above is complete; this one is measured, not recorded).
        campaign.runner.journal = None
        for scenario in campaign.scenarios:
            watchdog.start(f"clean {scenario.id}")
            result = campaign.runner.run(scenario)
            report["hangs"] += watchdog.stop()
            report["clean"][result.outcome.value] += 1
            err = first_error(result)
            if result.outcome is Outcome.FAIL:
                report["clean_fails"].append(scenario.id)
            if err is not None and not (err.error or "").startswith(MINT_REFUSAL):
                report["clean_bench_errors"].append(f"{scenario.id}: {err.error}")
        campaign.finish()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", choices=("virtual", "sim"), default="virtual")
    parser.add_argument("--passes", type=int, default=None,
                        help="campaigns (default: 3 on virtual, 1 on sim)")  # fmt: skip
    parser.add_argument("--speed", type=float, default=20.0)
    parser.add_argument("--every", type=int, default=2)
    parser.add_argument("--select", action="append")
    parser.add_argument("--garble", type=float, default=0.005)
    parser.add_argument("--drop", type=float, default=0.005)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--hang-after", type=float, default=180.0)
    parser.add_argument("--seed", type=int, default=1)
    args, _ = parser.parse_known_args()  # run_all.py passes its own arguments on
    passes = args.passes or (3 if args.bench == "virtual" else 1)
    report: dict[str, Any] = {
        "watchdog": Watchdog(args.hang_after), "by_pair": defaultdict(Tally), "after": Tally(),
        "unfaulted": Tally(), "hangs": 0, "fails": [], "unnamed": [], "recoveries": [],
        "clean": Counter(), "clean_fails": [], "clean_bench_errors": [],
    }  # fmt: skip
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stslab-faults-") as tmp:
        for number in range(passes):
            run_pass(number, args, Path(tmp), report)
    wall = time.perf_counter() - t0
    unit = "bench s" if args.bench == "virtual" else "s"
    print(f"fault campaign on {args.bench}: {passes} pass(es), a fault in every "
          f"{args.every}th scenario; garble {args.garble}/byte, drop {args.drop}/byte, "
          f"delay {args.delay} s")  # fmt: skip
    print(f"{'kind':<9} {'role':<9} {'scen':>4} {'ERROR':>5} {'PASS':>4} {'FAIL':>4} "
          f"{'SKIP':>4} {'hang':>4}  longest to surface ({unit})")  # fmt: skip
    totals = Tally()
    for kind in KINDS:
        for role in ROLES:
            t = report["by_pair"].get((kind, role), Tally())
            o = t.outcomes
            totals.outcomes.update(o)
            totals.hangs += t.hangs
            totals.surface_s = max(totals.surface_s, t.surface_s)
            print(f"{kind:<9} {role:<9} {sum(o.values()):>4} {o['ERROR']:>5} {o['PASS']:>4} "
                  f"{o['FAIL']:>4} {o['SKIP']:>4} {t.hangs:>4}  {t.surface_s:.1f}")  # fmt: skip
    for label, t in (("all faults", totals), ("right after an ERROR", report["after"]),
                     ("other, no fault", report["unfaulted"])):  # fmt: skip
        o = t.outcomes
        print(f"{label:<19} {sum(o.values()):>4} {o['ERROR']:>5} {o['PASS']:>4} {o['FAIL']:>4} "
              f"{o['SKIP']:>4} {t.hangs:>4}")  # fmt: skip
    rests = report["recoveries"]
    not_at_rest = [r for r in rests if not r["at_rest"]]
    longest_rest = max((r["duration_s"] for r in rests), default=0.0)
    for line in report["fails"]:
        print(f"FAIL: {line}")
    for line in report["unnamed"][:10]:
        print(f"ERROR not naming the faulted role: {line}")
    for r in not_at_rest[:10]:
        print(f"not at rest after {r['after']}: {r['problem']}")
    for line in report["clean_fails"]:
        print(f"clean run FAIL: {line}")
    for line in report["clean_bench_errors"][:10]:
        print(f"clean run ERROR: {line}")
    c = report["clean"]
    figures = {
        "bench": args.bench, "passes": passes, "wall_s": round(wall, 1),
        "faulted_scenarios": sum(totals.outcomes.values()),
        "fault_error": totals.outcomes["ERROR"], "fault_pass": totals.outcomes["PASS"],
        "fault_fail": len(report["fails"]), "hangs": report["hangs"],
        "unnamed_errors": len(report["unnamed"]),
        f"longest_surface_{'bench_s' if args.bench == 'virtual' else 's'}":
            round(totals.surface_s, 2),
        "recoveries": len(rests), "not_at_rest": len(not_at_rest),
        "longest_recovery_s": round(longest_rest, 2),
        "after_error_pass": report["after"].outcomes["PASS"],
        "after_error_fail": report["after"].outcomes["FAIL"],
        "after_error_error": report["after"].outcomes["ERROR"],
        "clean_pass": c["PASS"], "clean_fail": c["FAIL"], "clean_error": c["ERROR"],
        "clean_skip": c["SKIP"], "clean_bench_errors": len(report["clean_bench_errors"]),
    }  # fmt: skip
    for name, value in figures.items():
        print(f"{name}={value}")
    goals = (figures["fault_fail"], figures["hangs"], figures["unnamed_errors"],
             figures["clean_fail"], figures["clean_bench_errors"])  # fmt: skip
    return 0 if not any(goals) else 1


if __name__ == "__main__":
    sys.exit(main())
