"""How long a certification campaign takes on SimLab, and what the harness adds to the
physics. Prints ``name=value`` lines; asserts nothing.

Runs a scenario pack (default: the shipped catalogue ``suites/sts-core``) through the
campaign API against SimLab's built-in meter at ``--speed`` (the simulated clock's speed),
then reads the figures from the run's record:

* ``campaign_wall_s``: real time from opening the campaign (SimLab start, drivers opened and
  identified) to the record written; ``open_s`` is the opening part alone;
* ``scenarios`` (run, with ``pass``/``fail``/``error``/``skip``, and the ids of any that
  failed or erred: the reference meter should have none), ``steps`` (setup steps
  excluded), ``token_steps`` (steps that inject: ``token``, ``raw``, ``key_change``) and
  ``injected_tokens`` (a key change injects one token per section);
* ``modelled_s``: the bench time the scenarios took (what a real bench would need);
* ``token_overhead_ms`` (and ``token_overhead_ms_<carrier>`` per carrier): the harness's own
  time per injected token beyond the modelled physical time. For every token step,

      overhead = duration_s - (keypresses * (hold + gap) + waits) / speed

  where ``duration_s`` is the step's real duration from the record, ``keypresses`` is the
  digits entered plus ENTER when the carrier is the keypad (none for the port or a card),
  ``hold`` + ``gap`` is the keypad robot's 80 + 120 ms, and ``waits`` is 0 (token steps
  wait for nothing on the bench clock). The figure is the sum of overheads divided by the
  tokens injected; it contains minting, the carrier's protocol (an optical-port write runs
  at the port's line speed in real time), reading the display and the port back, and
  journalling.

Usage: ``python benchmarks/campaign_speed.py [--pack DIR] [--speed N] [--dut NAME]
[--select TEXT]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from stslab.pack import PackError
from stslab.session import DEFAULT_PACK, Campaign, CampaignConfig, CampaignError

#: The keypad robot's hold and gap (KPR/1 defaults, and what the runner restores), in ms.
KEY_HOLD_MS = 80
KEY_GAP_MS = 120
INJECTING = ("token", "raw", "key_change")


def run_campaign(
    pack: Path, speed: float, dut: str | None, select: tuple[str, ...]
) -> tuple[dict[str, Any], float, float]:
    """(record, campaign wall time, opening time) of one campaign on SimLab."""
    with tempfile.TemporaryDirectory(prefix="stslab-campaign-speed-") as out:
        config = CampaignConfig(out=Path(out), pack=pack, speed=speed, dut=dut, select=select)
        started = time.perf_counter()
        with Campaign(config) as campaign:
            opened = time.perf_counter() - started
            for scenario in campaign.pending():
                campaign.run_scenario(scenario)
            record = campaign.finish()
        return record, time.perf_counter() - started, opened


def injections(step: dict[str, Any]) -> tuple[str, int, int]:
    """(carrier, tokens injected, keypad presses) of one step."""
    action = step["action"]
    carrier = str(action.get("carrier") or "?")
    if step["kind"] == "key_change":
        tokens, digits = len(action.get("sections", [])), 20
    else:
        tokens, digits = 1, len(action.get("digits", ""))
    presses = tokens * (digits + 1) if carrier == "keypad" else 0
    return carrier, tokens, presses


def overheads(record: dict[str, Any], speed: float) -> dict[str, tuple[float, int]]:
    """Per carrier (and "all"): (summed overhead in real seconds, tokens injected)."""
    out: dict[str, list[float]] = {}
    for scenario in record["scenarios"]:
        for step in scenario["steps"]:
            if step["kind"] not in INJECTING or not step["action"]:
                continue  # a step that failed before it injected anything
            carrier, tokens, presses = injections(step)
            physical_s = presses * (KEY_HOLD_MS + KEY_GAP_MS) / 1000
            overhead = step["duration_s"] - physical_s / speed
            for key in (carrier, "all"):
                total = out.setdefault(key, [0.0, 0])
                total[0] += overhead
                total[1] += tokens
    return {k: (v[0], int(v[1])) for k, v in out.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pack", type=Path, default=DEFAULT_PACK, help="scenario pack folder")
    parser.add_argument(
        "--speed", type=float, default=CampaignConfig().speed, help="SimLab clock speed"
    )
    parser.add_argument("--dut", default=None, help="SimLab meter profile (built-in name/file)")
    parser.add_argument("--select", action="append", default=[], help="scenario ids containing")
    args, _ = parser.parse_known_args()  # run_all.py passes every script the same arguments
    try:
        record, wall, opened = run_campaign(args.pack, args.speed, args.dut, tuple(args.select))
    except (CampaignError, PackError, ValueError) as exc:  # a pack or scenario that won't load
        print(f"campaign_speed: cannot run {args.pack}: {exc}", file=sys.stderr)
        return 2
    summary = record["summary"]
    steps = [s for sc in record["scenarios"] for s in sc["steps"] if s["kind"] != "setup"]
    token_steps = [s for s in steps if s["kind"] in INJECTING]
    kinds = Counter(s["kind"] for s in token_steps)
    print(f"pack={record['pack']['id']} {record['pack']['version']}")
    print(f"speed={args.speed:g}")
    print(f"campaign_wall_s={wall:.2f}")
    print(f"open_s={opened:.2f}")
    print(f"scenarios={summary['scenarios']}")
    for outcome in ("PASS", "FAIL", "ERROR", "SKIP"):
        print(f"{outcome.lower()}={summary[outcome]}")
    for outcome in ("FAIL", "ERROR"):  # a reference meter should have none: figures are suspect
        ids = [sc["id"] for sc in record["scenarios"] if sc["outcome"] == outcome]
        if ids:
            print(f"{outcome.lower()}_ids={','.join(ids)}")
    print(f"steps={len(steps)}")
    print(f"token_steps={len(token_steps)}")
    for kind in INJECTING:
        print(f"token_steps_{kind}={kinds.get(kind, 0)}")
    print(f"modelled_s={summary['modelled_s']:.1f}")
    per = overheads(record, args.speed)
    all_s, all_n = per.pop("all", (0.0, 0))
    print(f"injected_tokens={all_n}")
    if all_n:
        print(f"token_overhead_ms={1000 * all_s / all_n:.1f}")
    for carrier, (seconds, count) in sorted(per.items()):
        print(f"token_overhead_ms_{carrier}={1000 * seconds / count:.1f}")
        print(f"injected_tokens_{carrier}={count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
