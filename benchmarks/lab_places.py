"""What a labgrid place costs a campaign, and what a second place buys a queue. Prints
``name=value`` lines; asserts nothing.

Starts a local lab (``stslab lab up --benches 2``: a labgrid coordinator, two SimLab benches,
ser2net and one exporter per bench) and measures, each as a user would run it (a fresh
``stslab certify`` process, start-up included):

* ``first_token_local_s`` / ``first_token_place_s``: from launching ``stslab certify`` to
  the start of the first step that enters a token, with the bench file of SimLab bench
  ``sim-2`` opened directly (its serial ports as local ptys) and with ``--place sim-2``
  (the place acquired, ser2net started by the exporter, the bench built from the place's
  resources, the serial ports reached over RFC 2217); medians of ``--repeat`` runs;
  ``place_overhead_s`` is the difference (goal: under 2 s);
* ``queue_one_place_s`` / ``queue_two_places_s``: wall time of three campaigns started at
  once with ``--reserve … --benches 2`` (each waits for one matching place and takes up to
  two that are free then), matching one place (``name=sim-1``) or both (``simulated=yes``);
  ``queue_speedup`` is their ratio (goal: at least 1.8). Three whole campaigns on one
  place each could only reach 1.5 (two campaign-times against three); a campaign that
  finds both places free runs on both, one bench each.

The campaigns run ``--select`` (repeatable; default ``STS-TC-00 STS-AUTH STS-FMT``: 17
scenarios, 14 of which run on SimLab's meter). A campaign of three scenarios
(``--select STS-TC-00``) splits over two benches two to one at best, which caps what a
second place can give it.
``load_before`` / ``load_after``: the one-minute load average, since on a machine with few
cores shared with other work the two-place queue shares the CPU, which lowers the speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stslab.journal import read_journal
from stslab.lab.local import down, up

#: Credit transfer, authentication and format scenarios (17, 14 of which run on SimLab's
#: meter): a campaign that splits over two benches in about equal halves.
DEFAULT_SELECT = ["STS-TC-00", "STS-AUTH", "STS-FMT"]


def first_token_s(out: Path, launched: float) -> float:
    (journal,) = out.glob("*/benches/*/journal.jsonl")
    starts = [e.data["started"] for e in read_journal(journal)
              if e.kind == "step" and (e.data.get("action") or {}).get("digits")]  # fmt: skip
    return min(starts) - launched


def certify(env: dict, out: Path, *args: str) -> subprocess.Popen:
    argv = [sys.executable, "-m", "stslab", "certify", "--no-report", "-q", "--out", str(out),
            *args]  # fmt: skip
    return subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def queue_s(env: dict, work: Path, label: str, select: list[str], filt: str) -> float:
    """Wall time of the queue; prints each campaign's places and its time after launch."""
    started = time.time()
    procs = [certify(env, work / f"{label}-{k}", "--reserve", filt, "--benches", "2", *select)
             for k in range(3)]  # fmt: skip
    ended: dict[int, float] = {}
    while len(ended) < len(procs):
        for k, p in enumerate(procs):
            if k not in ended and p.poll() is not None:
                ended[k] = time.time() - started
        time.sleep(0.1)
    codes = [p.returncode for p in procs]
    if any(codes):
        raise SystemExit(f"a queued campaign ended with {codes}")
    runs = []
    for k, end in ended.items():
        (record,) = (work / f"{label}-{k}").glob("*/record.json")
        places = "+".join(b["name"] for b in json.loads(record.read_text())["benches"])
        runs.append((end, places))
    print(f"queue_{label}_runs=" + ",".join(f"{p}@{e:.0f}s" for e, p in sorted(runs)))
    return time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--select", action="append",
                        help="scenario ids containing this (repeatable); default: "
                        f"{' '.join(DEFAULT_SELECT)}")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    select = [a for k in args.select or DEFAULT_SELECT for a in ("--select", k)]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="stslab-lab-bench-") as tmp:
        work = Path(tmp)
        state = up(work / "lab", 2)
        env = {**os.environ, "LG_COORDINATOR": state["coordinator"],
               "STSLAB_LEDGER": str(work / "ledger")}  # fmt: skip
        try:
            local, place = [], []
            bench_file = work / "lab" / "sim-2" / "bench.yaml"
            # The same meter both ways, so the same ledger (the one a place campaign keeps).
            local_env = {**env, "STSLAB_LEDGER": str(work / "ledger" / "places" / "sim-2")}
            for k in range(args.repeat):
                for label, extra, into, e in (
                    ("local", ["--bench", str(bench_file)], local, local_env),
                    ("place", ["--place", "sim-2"], place, env),
                ):
                    out = work / f"{label}-{k}"
                    launched = time.time()
                    if certify(e, out, *extra, *select).wait() != 0:
                        raise SystemExit(f"the {label} campaign did not pass")
                    into.append(first_token_s(out, launched))
            one = queue_s(env, work, "one", select, "name=sim-1")
            two = queue_s(env, work, "two", select, "simulated=yes")
        finally:
            down(work / "lab")
    print(f"cpu_count={os.cpu_count()}")
    print(f"load_before={load_before:.2f}")
    print(f"load_after={os.getloadavg()[0]:.2f}")
    print(f"first_token_local_s={statistics.median(local):.2f}")
    print(f"first_token_place_s={statistics.median(place):.2f}")
    print(f"place_overhead_s={statistics.median(place) - statistics.median(local):.2f}")
    print(f"queue_one_place_s={one:.1f}")
    print(f"queue_two_places_s={two:.1f}")
    print(f"queue_speedup={one / two:.2f}")


if __name__ == "__main__":
    main()
