"""Proof that the scenario pack has teeth: the kill matrix.

The catalogue runs against SimLab's reference meter (every scenario must PASS or SKIP) and
against each SimLab defect (at least one scenario must FAIL: the defect is *killed*). A run
for a defect stops at its first FAIL. Runs go in parallel worker processes, one SimLab
each.
"""

from __future__ import annotations

import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from stslab.campaign import Outcome
from stslab.session import DEFAULT_PACK, Campaign, CampaignConfig

REFERENCE = "(reference)"


@dataclass
class SelftestRow:
    defect: str
    killed_by: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # FAILs of the reference meter
    scenarios_run: int = 0
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        if self.defect == REFERENCE:
            return not self.failures and not self.errors
        return bool(self.killed_by)


def run_one(
    defect: str | None,
    pack: str,
    dut: str | None,
    speed: float,
    select: tuple[str, ...],
    stop_at_kill: bool,
    unreliable: frozenset[str] = frozenset(),
) -> SelftestRow:
    """One SimLab meter through the pack. For a defect, a FAIL counts as a kill only in a
    scenario the reference meter passed (``unreliable`` lists the others)."""
    import time

    row = SelftestRow(defect or REFERENCE)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stslab-selftest-") as out:
        cfg = CampaignConfig(bench="sim", dut=dut, out=Path(out), pack=Path(pack), speed=speed,
                             defects=(defect,) if defect else (), select=select)  # fmt: skip
        with Campaign(cfg) as campaign:
            for scenario in campaign.pending():
                result = campaign.run_scenario(scenario)
                row.scenarios_run += 1
                if result.outcome is Outcome.FAIL and result.id in unreliable:
                    row.errors.append(f"{result.id} (fails on the reference meter too)")
                elif result.outcome is Outcome.FAIL:
                    if defect is None:
                        row.failures.append(result.id)
                    else:
                        row.killed_by.append(result.id)
                        if stop_at_kill:
                            break
                elif result.outcome is Outcome.ERROR:
                    row.errors.append(result.id)
    row.wall_s = time.perf_counter() - t0
    return row


def selftest(
    defects: list[str],
    pack: Path = DEFAULT_PACK,
    dut: str | None = None,
    speed: float = 20.0,
    select: tuple[str, ...] = (),
    workers: int = 2,
    include_reference: bool = True,
    stop_at_kill: bool = True,
) -> list[SelftestRow]:
    rows: list[SelftestRow] = []
    unreliable: frozenset[str] = frozenset()
    if include_reference:
        reference = run_one(None, str(pack), dut, speed, select, stop_at_kill=False)
        rows.append(reference)
        unreliable = frozenset(reference.failures + reference.errors)
    if workers <= 1:
        return rows + [
            run_one(d, str(pack), dut, speed, select, stop_at_kill, unreliable) for d in defects
        ]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(run_one, d, str(pack), dut, speed, select, stop_at_kill, unreliable)
            for d in defects
        ]
        return rows + [f.result() for f in futures]
