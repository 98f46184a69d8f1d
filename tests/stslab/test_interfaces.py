"""The three ways into a campaign give one verdict per scenario: ``stslab certify`` (the YAML
catalogue), ``pytest suites/sts-core`` (the same catalogue as test items) and ``stslab robot``
(the Robot suites, each test tagged with the scenario id it implements). Each passes the whole
catalogue on the reference meter, so a false FAIL in any of them fails here; on a defective
meter they fail the same scenarios. On SimLab's virtual time (seconds per catalogue), plus the
Robot scenarios whose answer follows a message still on the display, on wire SimLab."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import robot
from robot.api import ExecutionResult

from stslab.cli import main

REPO = Path(__file__).resolve().parents[2]
ROBOT_SUITES = REPO / "suites" / "robot"
#: Robot scenarios whose answer must be told from the message of the entry just before.
LINGERING = ("STS-TID-002", "STS-TID-005", "STS-CAR-007", "STS-KC-006")
DEFECTS = ("accepts-used", "old-off-by-one")

Outcomes = dict[str, str]


def robot_scenario_ids(tmp_path: Path) -> list[str]:
    """The scenario ids of the Robot suites, from their ``id:`` tags (a dry run)."""
    robot.run(
        str(ROBOT_SUITES), dryrun=True, outputdir=str(tmp_path), console="none",
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    suite = ExecutionResult(str(tmp_path / "output.xml")).suite
    return [str(t)[3:] for test in suite.all_tests for t in test.tags if str(t).startswith("id:")]


def _outcomes(out: Path) -> tuple[str, Outcomes]:
    (run,) = out.iterdir()
    record = json.loads((run / "record.json").read_text())
    return record["summary"]["verdict"], {s["id"]: s["outcome"] for s in record["scenarios"]}


def _judged(code: int, out: Path) -> Outcomes:
    """The outcomes of the run in ``out``, once its exit status agrees with its verdict."""
    verdict, outcomes = _outcomes(out)
    assert code == {"PASS": 0, "FAIL": 1}.get(verdict), (code, verdict)
    return outcomes


def _defects(defect: str | None) -> list[str]:
    return ["--defect", defect] if defect else []


def run_certify(out: Path, defect: str | None = None, select: Sequence[str] = ()) -> Outcomes:
    args = ["certify", "--bench", "virtual", "--out", str(out), "--quiet", "--no-report"]
    for ident in select:
        args += ["-k", ident]
    return _judged(main(args + _defects(defect)), out)


def run_pytest(out: Path, defect: str | None = None, select: Sequence[str] = ()) -> Outcomes:
    args = [sys.executable, "-m", "pytest", str(REPO / "suites" / "sts-core"), "-q",
            "--bench", "virtual", "--out", str(out), "-p", "no:cacheprovider"]  # fmt: skip
    args += _defects(defect)
    for ident in select:
        args += ["--select", ident]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(args, cwd=out.parent, env=env, capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 1: a scenario failed
    return _judged(proc.returncode, out)


def run_robot(out: Path, defect: str | None = None, *tags: str, bench: str = "virtual") -> Outcomes:
    args = ["robot", "--bench", bench, "--out", str(out), "--quiet", *_defects(defect)]
    for tag in tags:
        args += ["-i", tag]
    return _judged(main(args), out)


@pytest.fixture(scope="module")
def covered(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    ids = robot_scenario_ids(tmp_path_factory.mktemp("dryrun"))
    assert len(ids) == len(set(ids)) >= 40
    return ids


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcomes]:
    """Each interface over everything it has, on the reference meter."""
    base = tmp_path_factory.mktemp("reference")
    return {
        "certify": run_certify(base / "certify"),
        "pytest": run_pytest(base / "pytest"),
        "robot": run_robot(base / "robot"),
    }


def _not_passed(outcomes: Outcomes) -> list[tuple[str, str]]:
    return [(i, o) for i, o in outcomes.items() if o not in ("PASS", "SKIP")]


@pytest.mark.parametrize("interface", ["certify", "pytest", "robot"])
def test_each_interface_passes_everything_on_the_reference_meter(
    reference: dict[str, Outcomes], covered: list[str], interface: str
) -> None:
    outcomes = reference[interface]
    assert _not_passed(outcomes) == []
    if interface == "robot":
        assert sorted(outcomes) == sorted(covered)
    else:
        assert len(outcomes) >= 90 and set(covered) <= set(outcomes)
    assert sum(o == "PASS" for o in outcomes.values()) >= len(outcomes) * 0.8


def test_the_interfaces_agree_on_the_reference_meter(
    reference: dict[str, Outcomes], covered: list[str]
) -> None:
    assert reference["certify"] == reference["pytest"]
    disagree = [
        (i, reference["certify"][i], reference["robot"][i])
        for i in covered
        if reference["certify"][i] != reference["robot"][i]
    ]
    assert disagree == []


@pytest.mark.parametrize("defect", DEFECTS)
def test_the_interfaces_fail_the_same_scenarios_on_a_defective_meter(
    tmp_path: Path, covered: list[str], defect: str
) -> None:
    by = {
        "certify": run_certify(tmp_path / "certify", defect, covered),
        "pytest": run_pytest(tmp_path / "pytest", defect, covered),
        "robot": run_robot(tmp_path / "robot", defect),
    }
    for name, outcomes in by.items():
        assert sorted(outcomes) == sorted(covered), name
    table = {i: (by["certify"][i], by["pytest"][i], by["robot"][i]) for i in covered}
    disagree = {i: row for i, row in table.items() if len(set(row)) > 1}
    assert disagree == {}
    killed = [i for i, row in table.items() if row[0] == "FAIL"]
    assert killed  # the Robot suites catch the defect, as the catalogue does


def test_robot_on_wire_simlab_tells_the_answer_from_the_message_before(tmp_path: Path) -> None:
    # At clock speed 2 the result message of the entry before (3 s) is still on the display
    # when the next entry begins: the answer judged must be the new entry's.
    out = tmp_path / "runs"
    args = ["robot", "--bench", "sim", "--speed", "2", "--out", str(out), "--quiet"]
    for ident in LINGERING:
        args += ["-i", f"id:{ident}"]
    code = main(args)
    verdict, outcomes = _outcomes(out)
    assert (code, verdict) == (0, "PASS"), outcomes
    assert outcomes == dict.fromkeys(LINGERING, "PASS")
