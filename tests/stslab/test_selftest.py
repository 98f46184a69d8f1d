"""The kill matrix on a small pack: the reference meter passes, a defect the pack tests is
killed (and its run stops there), a defect it does not test survives and is reported as
SURVIVED by ``stslab selftest``."""

from __future__ import annotations

from pathlib import Path

import pytest

from stslab.cli import main
from stslab.selftest import REFERENCE, SelftestRow, selftest
from tests.stslab.test_pack import CREDIT_SCENARIO, write_pack

USED_SCENARIO = """\
id: T-USED-001
title: A token entered twice is refused as Used
group: TID
clauses: ["IEC 62055-41 TID check"]
carrier: port
steps:
  - id: first
    do: token
    token: {class: 0, subclass: 0, amount: 0.2}
    expect: {result: accept}
  - do: token
    token: {class: 0, subclass: 0, amount: 0.2, tid: {same_as: first}}
    expect: {result: used}
"""

#: Caught by the Used scenario / tested by nothing in this pack.
KILLED, SURVIVOR = "accepts-used", "mpl-not-enforced"


@pytest.fixture(scope="module")
def rows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, SelftestRow]:
    pack = write_pack(tmp_path_factory.mktemp("selftest") / "pack",
                      {"1-used.yaml": USED_SCENARIO, "2-credit.yaml": CREDIT_SCENARIO})  # fmt: skip
    # two workers: the defects' runs go through pytest-xdist
    result = selftest([KILLED, SURVIVOR], pack, speed=2.0, workers=2)
    return {row.defect: row for row in result}


def test_rows_come_in_order_reference_first(rows: dict[str, SelftestRow]) -> None:
    assert list(rows) == [REFERENCE, KILLED, SURVIVOR]


def test_the_reference_meter_passes_every_scenario(rows: dict[str, SelftestRow]) -> None:
    reference = rows[REFERENCE]
    assert reference.ok
    assert (reference.failures, reference.errors) == ([], [])
    assert reference.scenarios_run == 2


def test_a_defect_the_pack_tests_is_killed_and_its_run_stops(
    rows: dict[str, SelftestRow],
) -> None:
    row = rows[KILLED]
    assert row.ok
    assert row.killed_by == ["T-USED-001"]
    assert row.scenarios_run == 1  # stopped at the first kill
    assert row.errors == []


def test_a_defect_the_pack_does_not_test_survives(rows: dict[str, SelftestRow]) -> None:
    row = rows[SURVIVOR]
    assert not row.ok
    assert row.killed_by == []
    assert row.scenarios_run == 2


def test_one_worker_gives_the_same_rows_in_process(
    rows: dict[str, SelftestRow], tmp_path: Path
) -> None:
    pack = write_pack(tmp_path / "pack", {"1-used.yaml": USED_SCENARIO,
                                          "2-credit.yaml": CREDIT_SCENARIO})  # fmt: skip
    (row,) = selftest([KILLED], pack, speed=2.0, workers=1, include_reference=False)
    assert (row.killed_by, row.scenarios_run) == (rows[KILLED].killed_by, 1)


def test_a_reference_meter_that_fails_is_not_ok() -> None:
    assert not SelftestRow(REFERENCE, failures=["T-X-001"]).ok
    assert not SelftestRow(REFERENCE, errors=["T-X-001"]).ok
    assert SelftestRow(REFERENCE).ok


def test_the_cli_prints_the_kill_matrix_and_fails_on_a_survivor(
    rows: dict[str, SelftestRow], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    asked: dict = {}

    def recorded(
        defects: list[str], pack: Path, *args: object, **kwargs: object
    ) -> list[SelftestRow]:
        asked.update(defects=defects, pack=pack, args=args, kwargs=kwargs)
        return list(rows.values())

    monkeypatch.setattr("stslab.selftest.selftest", recorded)
    monkeypatch.setenv("COLUMNS", "200")
    pack = write_pack(tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO})  # checked before the run
    code = main(["selftest", "--pack", str(pack), "--defect", KILLED, "--defect", SURVIVOR,
                 "--workers", "1", "--speed", "2"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert asked["defects"] == [KILLED, SURVIVOR]
    assert asked["pack"] == pack
    lines = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") > 3}
    assert "all pass" in lines[REFERENCE]
    assert "killed" in lines[KILLED] and "T-USED-001" in lines[KILLED]
    assert "SURVIVED" in lines[SURVIVOR]
    assert "defects killed: 1/2" in out
    assert f"selftest failed: {SURVIVOR}" in out


@pytest.mark.parametrize(
    ("args", "named"), [(["--defect", "no-such-defect"], "--defect"), (["--workers", "0"],
                                                                        "--workers")]
)  # fmt: skip
def test_the_cli_refuses_bad_arguments(
    capsys: pytest.CaptureFixture[str], args: list[str], named: str
) -> None:
    assert main(["selftest", *args]) == 2
    assert named in capsys.readouterr().err
