"""Fuzzed inputs, the long run: the fuzzing tests under hypothesis's ``fuzz`` profile.

Every loader (scenario files, pack manifests, DUT profiles, bench files, job files) and every
driver's reply parser (KPR/1, IEC 62056-21, MSR605, SCPI, camera frames, the framers) gets
``--cases`` generated inputs per test; a failure is a loader or parser that let out anything
but its documented error, named no place, or hung. Prints the cases run per test and in all.

    python3 benchmarks/fuzz_inputs.py                 # 1000 cases per test
    python3 benchmarks/fuzz_inputs.py --cases 5000
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = ["tests/stslab/test_fuzz_loaders.py", "tests/instruments/test_fuzz_replies.py"]
#: hypothesis's statistics: the test's name, then per phase "- N passing, M failing, and K
#: invalid test cases".
_TEST = re.compile(r"^(tests/\S+::\S+):\s*$")
_CASES = re.compile(r"- (\d+) passing, (\d+) failing, and (\d+) invalid")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="cases per test")
    opts = parser.parse_args()
    env = {**os.environ, "STSLAB_FUZZ_EXAMPLES": str(opts.cases)}
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *TESTS,
         "--hypothesis-profile", "fuzz", "--hypothesis-show-statistics"],
        cwd=REPO, env=env, capture_output=True, text=True,
    )  # fmt: skip
    wall = time.monotonic() - t0
    cases: dict[str, list[int]] = {}  # test -> [passing, failing], over its phases
    test = None
    for line in done.stdout.splitlines():
        if m := _TEST.match(line.strip()):
            test = m[1].split("::")[-1]
            cases[test] = [0, 0]
        elif (m := _CASES.search(line)) and test is not None:
            cases[test][0] += int(m[1])
            cases[test][1] += int(m[2])
    for name, (passing, failed) in cases.items():
        print(f"cases[{name}]={passing + failed}")
    total = sum(p + f for p, f in cases.values())
    failing = sum(f for _, f in cases.values())
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    print(f"cases_per_test={opts.cases}\ncases_total={total}\nfailing_cases={failing}\n"
          f"wall_s={wall:.0f}\npytest={summary}")  # fmt: skip
    if done.returncode != 0:
        print(done.stdout[-4000:], file=sys.stderr)
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
