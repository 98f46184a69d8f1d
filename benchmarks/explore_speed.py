"""Exploration against the reference twin on SimLab's virtual time. Prints ``name=value``
lines; asserts nothing.

* ``explore_steps_per_s``: random steps per second run and compared with the twin (the
  reference meter, one process, no shrinking; opening a fresh bench per run included);
* ``found_<defect>``: for each SimLab defect, the steps until the first difference from the
  twin, or ``not_found`` within ``--defect-steps`` (default 5000);
* ``reference_differences`` over ``reference_steps`` (default 100 000, as
  ``--reference-seeds`` runs of equal length with seeds ``--seed``, ``--seed`` + 1, …): a
  correct meter must show none;
* a defect no test can see on this meter: ``found_<defect>=not_observable`` and why.

The meters run ``--workers`` at a time, one process each (default 2).
"""

from __future__ import annotations

import argparse
import sys
import time

from simlab.defects import CATALOGUE
from stslab.selftest import explore_matrix


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defect-steps", type=int, default=5000)
    parser.add_argument("--reference-steps", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference-seeds", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dut", default=None)
    parser.add_argument("--defect", action="append", help="only these defects")
    args = parser.parse_args()
    t0 = time.perf_counter()
    per_seed = -(-args.reference_steps // args.reference_seeds)
    runs = [explore_matrix([], args.dut, per_seed, args.seed + n, workers=1)[0]
            for n in range(args.reference_seeds)]  # fmt: skip
    steps = sum(r.steps_run for r in runs)
    print(f"explore_steps_per_s={steps / sum(r.wall_s for r in runs):.1f}")
    print(f"reference_steps={steps} (seeds {args.seed}..{args.seed + len(runs) - 1})")
    print(f"reference_differences={sum(not r.ok for r in runs)}")
    for n, r in enumerate(runs):
        if not r.ok:
            print(f"  seed {args.seed + n}: after {r.found_after} steps: {r.first_difference}")
    defects = args.defect or [d.name for d in CATALOGUE]
    rows = explore_matrix(defects, args.dut, args.defect_steps, args.seed, workers=args.workers,
                          include_reference=False)  # fmt: skip
    for row in rows:
        if row.not_observable is not None:
            print(f"found_{row.defect}=not_observable ({row.not_observable})")
        else:
            print(f"found_{row.defect}={row.found_after if row.ok else 'not_found'}")
    explored = [row for row in rows if row.not_observable is None]
    found = sum(row.ok for row in explored)
    print(
        f"defects_found={found}/{len(explored)} within {args.defect_steps} steps "
        f"({len(rows) - len(explored)} not observable on this meter)"
    )
    print(f"wall_s={time.perf_counter() - t0:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
