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
    #: why the defect changes nothing observable on this meter profile (it is not run)
    not_observable: str | None = None

    @property
    def ok(self) -> bool:
        if self.not_observable is not None:
            return True
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
    from dut.profile import MeterProfile
    from simlab.defects import BY_NAME

    rows: list[SelftestRow] = []
    unreliable: frozenset[str] = frozenset()
    where = {"bench": bench, "model": model}
    profile = MeterProfile.load(dut)
    hidden = {d: why for d in defects if d in BY_NAME
              and (why := BY_NAME[d].unobservable(profile)) is not None}  # fmt: skip
    defects = [d for d in defects if d not in hidden]
    unseen = [SelftestRow(d, bench=bench, not_observable=why) for d, why in hidden.items()]
    if include_reference:
        reference = run_one(None, str(pack), dut, speed, select, stop_at_kill=False, **where)
        rows.append(reference)
        unreliable = frozenset(reference.failures + reference.errors)
    if workers <= 1 or not defects:
        runs = [run_one(d, str(pack), dut, speed, select, stop_at_kill, unreliable, **where)
                for d in defects]  # fmt: skip
        return rows + runs + unseen
    plan = {
        "pack": str(pack),
        "dut": dut,
        "speed": speed,
        "select": list(select),
        "stop_at_kill": stop_at_kill,
        "unreliable": sorted(unreliable),
        **where,
    }
    return rows + _run_in_workers(defects, plan, workers) + unseen  # fmt: skip


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


# --- exploration against every defect ------------------------------------------------------


@dataclass
class ExploreRow:
    """One SimLab meter explored: how many steps until the first difference (None: none)."""

    defect: str
    found_after: int | None
    steps_run: int
    wall_s: float
    first_difference: str = ""
    #: why no test can see this defect on a meter of this profile (not explored)
    not_observable: str | None = None

    @property
    def ok(self) -> bool:
        if self.not_observable is not None:
            return True
        if self.defect == REFERENCE:
            return self.found_after is None
        return self.found_after is not None


def explore_one(defect: str | None, dut: str | None, steps: int, seed: int, bench: str = "virtual",
                model: str | None = None) -> ExploreRow:  # fmt: skip
    """Explore one SimLab meter until its first difference from the twin (not shrunk)."""
    from stslab.explore import explore

    config = CampaignConfig(bench=bench, dut=dut, model=model,
                            defects=(defect,) if defect else ())  # fmt: skip
    result = explore(config, steps=steps, seed_value=seed, shrink=False)
    first = result.differences[0]["sentence"] if result.differences else ""
    return ExploreRow(defect or REFERENCE, result.found_after,
                      result.found_after or result.steps_run, result.wall_s, first)  # fmt: skip


def explore_matrix(
    defects: list[str],
    dut: str | None = None,
    steps: int = 5000,
    seed: int = 0,
    bench: str = "virtual",
    model: str | None = None,
    workers: int = 2,
    include_reference: bool = True,
) -> list[ExploreRow]:
    """The reference meter and each defect explored for up to ``steps`` steps, ``workers``
    meters at a time (one process each); rows in the order asked. A defect no test can see
    on this meter (the catalogue says why) is not explored: its row says why."""
    from concurrent.futures import ProcessPoolExecutor

    from dut.profile import MeterProfile
    from simlab.defects import BY_NAME

    profile = MeterProfile.load(dut)
    hidden = {d: why for d in defects if d in BY_NAME
              and (why := BY_NAME[d].unobservable(profile)) is not None}  # fmt: skip
    meters: list[str | None] = ([None] if include_reference else []) + [
        d for d in defects if d not in hidden
    ]
    args = [(m, dut, steps, seed, bench, model) for m in meters]
    if workers <= 1:
        rows = [explore_one(*a) for a in args]
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(explore_one, *a) for a in args]
            rows = [f.result() for f in futures]
    by_name = {r.defect: r for r in rows}
    unseen = {d: ExploreRow(d, None, 0, 0.0, not_observable=why) for d, why in hidden.items()}
    ordered = [by_name[REFERENCE]] if include_reference else []
    return ordered + [by_name.get(d) or unseen[d] for d in defects]
