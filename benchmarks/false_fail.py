"""False FAILs: the catalogue on the reference meter through a noisy camera.

Runs the whole catalogue (default: ``suites/sts-core``) ``--runs`` times (default 20) on
SimLab's virtual-time bench with the camera's noise preset ``--noise`` (default ``medium``),
each run with its own seed (``--first-seed``, then the next ones): the seed sets the camera's
perspective, its sensor noise and the harness's random choices. The reference meter keeps
every rule, so any FAIL or ERROR is a false one: the display reader or a watch misjudged
what the meter did.

Prints one line per run (``run=<seed> pass= fail= error= skip=`` and the ids of any
scenario that failed or erred) and the totals ``runs``, ``false_fail``, ``false_error``.

Usage: ``python benchmarks/false_fail.py [--runs N] [--noise PRESET] [--first-seed N]
[--dut NAME] [--pack DIR]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from stslab.session import DEFAULT_PACK, Campaign, CampaignConfig


def run(noise: str, seed: int, dut: str | None, pack: Path) -> dict[str, str]:
    """Each scenario's outcome in one catalogue run."""
    outcomes: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="stslab-false-fail-") as out:
        config = CampaignConfig(bench="virtual", dut=dut, out=Path(out), pack=pack,
                                noise=noise, seed=seed)  # fmt: skip
        with Campaign(config) as campaign:
            for scenario in campaign.pending():
                outcomes[scenario.id] = campaign.run_scenario(scenario).outcome.value
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="catalogue runs")
    parser.add_argument("--noise", default="medium", help="camera noise preset")
    parser.add_argument("--first-seed", type=int, default=1, help="seed of the first run")
    parser.add_argument("--dut", default=None, help="SimLab meter profile (built-in name/file)")
    parser.add_argument("--pack", type=Path, default=DEFAULT_PACK, help="scenario pack folder")
    args, _ = parser.parse_known_args()  # run_all.py passes every script the same arguments
    totals: Counter[str] = Counter()
    started = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.runs):
        outcomes = run(args.noise, seed, args.dut, args.pack)
        counts = Counter(outcomes.values())
        totals.update(counts)
        line = " ".join(f"{k.lower()}={counts[k]}" for k in ("PASS", "FAIL", "ERROR", "SKIP"))
        wrong = [f"{k}:{v}" for k, v in outcomes.items() if v in ("FAIL", "ERROR")]
        print(f"run={seed} {line}" + (f" wrong={','.join(wrong)}" if wrong else ""), flush=True)
    print(
        f"runs={args.runs} (noise {args.noise}, seeds {args.first_seed}.."
        f"{args.first_seed + args.runs - 1}, {time.perf_counter() - started:.0f} s)"
    )
    print(f"false_fail={totals['FAIL']}")
    print(f"false_error={totals['ERROR']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
