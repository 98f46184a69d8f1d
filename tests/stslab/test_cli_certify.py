"""``stslab certify`` end to end on SimLab with small packs: exit codes (0 PASS, 1 FAIL,
3 incomplete, 2 bad arguments), the summary table and the run folder; and the same pack run
by pytest directly through the plugin, with node ids ``file::SCENARIO-ID``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from stslab.cli import main
from tests.stslab.test_pack import CREDIT_SCENARIO, write_pack

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT_S = 120.0  # a hung child is killed; a normal run takes a few seconds

WRONG_SCENARIO = """\
id: T-WRONG-001
title: The meter is expected to credit more than the token carries
group: TransferCredit
clauses: ["IEC 62055-41 TransferCredit"]
carrier: port
steps:
  - do: token
    token: {class: 0, subclass: 0, amount: 0.1}
    expect: {result: accept, credit: {change: 5.0}}
"""

#: The DUT's key never expires, so "the last TID before the KEN" cannot be minted: ERROR.
UNMINTABLE_SCENARIO = """\
id: T-MINT-001
title: A token the factory cannot mint
group: Rollover/KEN
clauses: ["IEC 62055-41 KEN"]
carrier: port
steps:
  - do: token
    token: {class: 0, subclass: 0, amount: 0.1, tid: {at_ken: true}}
    expect: {result: accept}
"""


def certify(tmp_path: Path, *args: str) -> tuple[int, Path]:
    out = tmp_path / "runs"
    code = main(["certify", "--out", str(out), "--speed", "2", "--quiet", *args])
    return code, out


def only_run(out: Path) -> Path:
    (run,) = out.iterdir()
    return run


def test_a_passing_campaign_exits_0_and_leaves_a_complete_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # -k leaves the failing scenario out: the campaign runs (and plans) only the other.
    pack = write_pack(tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO, "b.yaml": WRONG_SCENARIO})
    code, out = certify(tmp_path, "--pack", str(pack), "-k", "CREDIT")
    printed = capsys.readouterr().out
    assert code == 0
    run = only_run(out)
    assert {p.name for p in run.iterdir()} >= {"record.json", "run.json", "benches", "evidence",
                                               "ledger"}  # fmt: skip
    assert {p.name for p in (run / "benches" / "simlab-1").iterdir()} == {"journal.jsonl",
                                                                          "bench.yaml"}  # fmt: skip
    assert (run / "evidence").is_dir()
    assert list((run / "ledger").glob("*.json"))
    record = json.loads((run / "record.json").read_text())
    assert record["summary"]["verdict"] == "PASS"
    assert [s["id"] for s in record["scenarios"]] == ["T-CREDIT-001"]
    assert (record["summary"]["PASS"], record["summary"]["planned"]) == (1, 1)
    assert "T-CREDIT-001" in printed
    assert "T-WRONG-001" not in printed
    assert "PASS — 1 scenarios: 1 pass, 0 fail, 0 error, 0 skip" in printed
    assert "deviation: scenario pack: the pack is not signed" in printed
    assert str(run) in printed.replace("\n", "")


def test_a_failing_campaign_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = write_pack(tmp_path / "pack", {"b.yaml": WRONG_SCENARIO})
    code, out = certify(tmp_path, "--pack", str(pack))
    printed = capsys.readouterr().out
    assert code == 1
    record = json.loads((only_run(out) / "record.json").read_text())
    assert record["summary"]["verdict"] == "FAIL"
    assert record["summary"]["FAIL"] == 1
    assert "FAIL — 1 scenarios: 0 pass, 1 fail" in printed


def test_a_campaign_with_a_fault_is_incomplete_and_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = write_pack(tmp_path / "pack", {"a.yaml": UNMINTABLE_SCENARIO})
    code, out = certify(tmp_path, "--pack", str(pack))
    capsys.readouterr()
    assert code == 3
    record = json.loads((only_run(out) / "record.json").read_text())
    assert record["summary"]["verdict"] == "INCOMPLETE"
    step = record["scenarios"][0]["steps"][-1]
    assert step["outcome"] == "ERROR"
    assert step["error"].startswith("cannot mint:")


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--mode", "certified"], "--mode"),
        (["--pack", "{tmp}/no-pack"], "--pack"),
        (["--resume", "{tmp}/no-run"], "--resume"),
        (["--speed", "fast"], "--speed"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], named: str
) -> None:
    pack = write_pack(tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO})
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    code, out = certify(tmp_path, "--pack", str(pack), *args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("stslab: error: ")
    assert named in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_a_refused_accredited_campaign_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = write_pack(tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO})
    code, _out = certify(tmp_path, "--pack", str(pack), "--mode", "accredited")
    err = capsys.readouterr().err
    assert code == 2
    assert "accredited mode refuses this scenario pack" in err
    assert "the pack is not signed" in err


def test_pytest_runs_a_pack_directly_with_stable_node_ids(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO, "b.yaml": WRONG_SCENARIO})
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(pack), "--bench", "sim", "--speed", "2",
         "--out", str(out), "-p", "no:cacheprovider", "-rA", "-v"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text  # one scenario fails
    assert "pack/a.yaml::T-CREDIT-001 PASSED" in text
    assert "pack/b.yaml::T-WRONG-001 FAILED" in text
    assert "credit change: expected 5.0 ± 0.05, observed 0.1" in text
    record = json.loads((only_run(out) / "record.json").read_text())
    assert [(s["id"], s["outcome"]) for s in record["scenarios"]] == [
        ("T-CREDIT-001", "PASS"),
        ("T-WRONG-001", "FAIL"),
    ]


def test_an_accredited_bench_without_an_uncertainty_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    repo = Path(__file__).resolve().parents[2]
    doc = yaml.safe_load((repo / "examples" / "bench-hardware.yaml").read_text())
    del doc["instruments"]["display"]["calibration"]["uncertainty"]
    bench = tmp_path / "bench.yaml"
    bench.write_text(yaml.safe_dump(doc, sort_keys=False))
    key = repo / "suites" / "keys" / "development.pub.pem"
    code, out = certify(tmp_path, "--bench", str(bench), "--mode", "accredited",
                        "--pack-key", str(key))  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert f"--bench: {bench}:" in err
    assert (
        "instruments.display.calibration.uncertainty: accredited mode needs the calibration "
        "uncertainty of time"
    ) in err
    assert not out.exists()
