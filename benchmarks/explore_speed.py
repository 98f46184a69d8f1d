"""Exploration against the reference twin on SimLab's virtual time. Prints ``name=value``
lines; asserts nothing.

* ``explore_steps_per_s``: random steps per second run and compared with the twin (the
  reference meter, one process, no shrinking; opening a fresh bench per run included);
* ``found_<defect>``: for each SimLab defect, the steps until the first difference from the
  twin, or ``not_found`` within ``--defect-steps`` (default 5000);
* ``reference_differences`` over ``reference_steps`` (default 100 000): a correct meter
  must show none.

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
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dut", default=None)
    parser.add_argument("--defect", action="append", help="only these defects")
    args = parser.parse_args()
    t0 = time.perf_counter()
    [reference] = explore_matrix([], args.dut, args.reference_steps, args.seed, workers=1)
    print(f"explore_steps_per_s={reference.steps_run / reference.wall_s:.1f}")
    print(f"reference_steps={reference.steps_run}")
    print(f"reference_differences={0 if reference.ok else 1}"
          + ("" if reference.ok else f" (after {reference.found_after} steps: "
             f"{reference.first_difference})"))  # fmt: skip
    defects = args.defect or [d.name for d in CATALOGUE]
    rows = explore_matrix(defects, args.dut, args.defect_steps, args.seed, workers=args.workers,
                          include_reference=False)  # fmt: skip
    for row in rows:
        print(f"found_{row.defect}={row.found_after if row.ok else 'not_found'}")
    found = sum(row.ok for row in rows)
    print(f"defects_found={found}/{len(rows)} within {args.defect_steps} steps")
    print(f"wall_s={time.perf_counter() - t0:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
