"""Proof that the scenario pack has teeth: the kill matrix.

The catalogue runs against SimLab's reference meter (every scenario must PASS or SKIP) and
against each SimLab defect (at least one scenario must FAIL: the defect is *killed*). A run
for a defect stops at its first FAIL. The defects' runs go in parallel through pytest-xdist,
as a sharded campaign's benches do: this module is also the pytest plugin that collects one
test item per defect from a plan file, each run on its own SimLab in a worker.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from stslab.campaign import Outcome
from stslab.session import DEFAULT_PACK, Campaign, CampaignConfig

REFERENCE = "(reference)"
PLAN_FILE = "selftest-plan.json"
ROW = "selftest_row"


@dataclass
class SelftestRow:
    defect: str
    killed_by: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # FAILs of the reference meter
    scenarios_run: int = 0
    wall_s: float = 0.0
    bench: str = "sim"
    #: every scenario's verdict, in the order run
    outcomes: dict[str, str] = field(default_factory=dict)

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
    bench: str = "sim",
    model: str | None = None,
) -> SelftestRow:
    """One SimLab meter through the pack. For a defect, a FAIL counts as a kill only in a
    scenario the reference meter passed (``unreliable`` lists the others)."""
    import time

    row = SelftestRow(defect or REFERENCE, bench=bench)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stslab-selftest-") as out:
        cfg = CampaignConfig(bench=bench, dut=dut, out=Path(out), pack=Path(pack), speed=speed,
                             defects=(defect,) if defect else (), select=select,
                             model=model)  # fmt: skip
        with Campaign(cfg) as campaign:
            for scenario in campaign.pending():
                result = campaign.run_scenario(scenario)
                row.scenarios_run += 1
                row.outcomes[result.id] = result.outcome.value
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
    bench: str = "sim",
    model: str | None = None,
) -> list[SelftestRow]:
    rows: list[SelftestRow] = []
    unreliable: frozenset[str] = frozenset()
    where = {"bench": bench, "model": model}
    if include_reference:
        reference = run_one(None, str(pack), dut, speed, select, stop_at_kill=False, **where)
        rows.append(reference)
        unreliable = frozenset(reference.failures + reference.errors)
    if workers <= 1:
        return rows + [
            run_one(d, str(pack), dut, speed, select, stop_at_kill, unreliable, **where)
            for d in defects
        ]
    plan = {
        "pack": str(pack),
        "dut": dut,
        "speed": speed,
        "select": list(select),
        "stop_at_kill": stop_at_kill,
        "unreliable": sorted(unreliable),
        **where,
    }
    return rows + _run_in_workers(defects, plan, workers)  # fmt: skip


def _run_in_workers(defects: list[str], plan: dict[str, Any], workers: int) -> list[SelftestRow]:
    """One xdist item per defect over ``workers`` processes; rows in the order asked."""
    rows: dict[str, SelftestRow] = {}

    class Gather:
        def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
            defect = report.nodeid.rsplit("::", 1)[-1]
            props = dict(report.user_properties)
            if ROW in props:
                rows[defect] = SelftestRow(**props[ROW])
            elif report.failed and defect not in rows:
                rows[defect] = SelftestRow(defect, errors=[f"the run stopped: {report.when}"])

    with tempfile.TemporaryDirectory(prefix="stslab-selftest-") as tmp:
        path = Path(tmp) / PLAN_FILE
        path.write_text(json.dumps({**plan, "defects": defects}))
        pytest.main([str(path), "-p", "stslab.selftest", "-c", os.devnull, "--rootdir", tmp,
                     "-p", "no:cacheprovider", "-p", "no:terminal", "-p", "no:labgrid", "-n",
                     str(min(workers, len(defects))), "--dist", "load"],
                    plugins=[Gather()])  # fmt: skip
    return [rows.get(d) or SelftestRow(d, errors=["no result"]) for d in defects]


# --- the pytest plugin the workers load -----------------------------------------------------


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.name == PLAN_FILE:
        return KillMatrix.from_parent(parent, path=file_path)
    return None


class KillMatrix(pytest.File):
    def collect(self):  # type: ignore[no-untyped-def]
        plan = json.loads(self.path.read_text())
        for defect in plan["defects"]:
            yield DefectRun.from_parent(self, name=defect, plan=plan)


class DefectRun(pytest.Item):
    """The pack against SimLab's meter with one defect; the row travels in the report."""

    def __init__(self, *, plan: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    def runtest(self) -> None:
        p = self.plan
        row = run_one(self.name, p["pack"], p["dut"], p["speed"], tuple(p["select"]),
                      p["stop_at_kill"], frozenset(p["unreliable"]), bench=p["bench"],
                      model=p["model"])  # fmt: skip
        self.user_properties.append((ROW, asdict(row)))

    def reportinfo(self):  # type: ignore[no-untyped-def]
        return self.path, None, f"defect {self.name}"


@dataclass
class Difference:
    """One scenario whose verdict differs between two benches for one meter."""

    meter: str
    scenario: str
    verdicts: dict[str, str]


def compare(
    benches: tuple[str, ...],
    defects: list[str],
    pack: Path = DEFAULT_PACK,
    dut: str | None = None,
    speed: float = 20.0,
    select: tuple[str, ...] = (),
    workers: int = 2,
    model: str | None = None,
) -> tuple[list[SelftestRow], list[Difference]]:
    """Every scenario on every bench kind, for the reference meter and each defect (no early
    stop): the rows, and each scenario whose verdict is not the same on all of them."""
    rows: list[SelftestRow] = []
    for bench in benches:
        rows += selftest(defects, pack, dut, speed, select, workers, include_reference=True,
                         stop_at_kill=False, bench=bench, model=model)  # fmt: skip
    by_meter: dict[str, dict[str, SelftestRow]] = {}
    for row in rows:
        by_meter.setdefault(row.defect, {})[row.bench] = row
    differences = []
    for meter, per_bench in by_meter.items():
        ids = sorted({i for row in per_bench.values() for i in row.outcomes})
        for scenario in ids:
            verdicts = {b: per_bench[b].outcomes.get(scenario, "not run") for b in benches}
            if len(set(verdicts.values())) > 1:
                differences.append(Difference(meter, scenario, verdicts))
    return rows, differences
