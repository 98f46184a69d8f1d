"""The Robot Framework front end: a Robot suite against SimLab through ``robot.run`` lands in
the campaign journal and record as steps with verdicts (PASS, FAIL with expected and observed,
ERROR for faults through a distinct exception, SKIP with the reason), beside a pack scenario
run through the same runner; a campaign that cannot open stops the run; libdoc renders the
library; the suites in suites/robot are well-formed; ``stslab robot`` runs a suite into a run
folder.

Tokens go through the optical port at a low clock speed, so the meter's 3 s result message is
still on the display when the camera reads it on a busy machine.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import robot
import typer
from robot.api import ExecutionResult
from robot.libdoc import libdoc
from robot.libdocpkg import LibraryDocumentation

from stslab import __version__ as stslab_version
from stslab import robot as stslab_robot
from stslab.cli.errors import ArgumentError
from stslab.cli.robot import robot_command
from stslab.journal import read_journal
from stslab.record import build_record
from stslab.robot.context import _Active
from tests.stslab.test_pack import write_pack

REPO = Path(__file__).resolve().parents[2]
SUITES = REPO / "suites" / "robot"
LIBRARY_FILES = sorted(Path(stslab_robot.__file__).parent.glob("*.py"))  # the core and groups

PACK_SCENARIO = """\
id: RBT-PACK-001
title: A credit token from the pack is accepted
group: Robot
clauses: ["IEC 62055-41 TransferCredit (REFERENCE §1)"]
carrier: port
steps:
  - do: token
    token: {class: 0, subclass: 0, amount: 0.5}
    expect: {result: accept, credit: {change: 0.5}}
"""

# speed=7 in the import: the ${STSLAB_SPEED} variable given to robot.run must win.
SUITE = """\
*** Settings ***
Library           stslab.robot.StsLab    bench=sim    speed=7    carrier=port    seed=3
Suite Setup       Prepare Meter

*** Test Cases ***
A credit token is accepted
    [Tags]    id:RBT-OK-001    group:Robot    clause:IEC 62055-41 TransferCredit (REFERENCE §1)
    Mint And Enter Token    0    0    amount=1.0
    Result Should Be    accept
    Display Should Show    accept
    Credit Change Should Be    1.0
    Register Should Be    kt    2

The same token twice is Used
    [Tags]    id:RBT-OK-002
    # the last test's Accept message times out first, so this one is seen afresh
    Wait Seconds    4
    ${digits} =    Mint Token    0    0    amount=0.2
    Enter Token    ${digits}
    Result Should Be    accept
    Enter Token    ${digits}
    Result Should Be    used
    Credit Change Should Be    0

A wrong expectation is a failure
    [Tags]    id:RBT-FAIL-001
    Mint And Enter Token    0    0    amount=0.1
    Result Should Be    used

Not declared by the meter
    [Tags]    id:RBT-SKIP-001
    Skip Unless Declared    ea=11

A pack scenario through the same runner
    Run Scenario    RBT-PACK-001

A bad argument changes nothing
    [Tags]    id:RBT-ARG-001
    Mint And Enter Token    0    0    amount=0.1    tid=sometime

An undeclared register is a fault
    [Tags]    id:RBT-ERR-001
    Read Register    nonsense

A vanished port is a fault
    [Tags]    id:RBT-ERR-002
    Inject Transport Fault    port    vanished
    Read Register    kt
    [Teardown]    Clear Transport Faults
"""


@dataclass
class RobotRun:
    status: int
    tests: dict[str, Any]  # Robot's result per test name
    output: Any  # robot.result.ExecutionResult
    record: dict[str, Any]
    run_dir: Path
    threads_before: int
    threads_after: int

    def scenario(self, sid: str) -> dict[str, Any]:
        return next(s for s in self.record["scenarios"] if s["id"] == sid)


def _run_robot(suite: Path, outputdir: Path, variables: list[str]) -> int:
    return robot.run(
        str(suite),
        outputdir=str(outputdir),
        variable=variables,
        console="none",
        stdout=io.StringIO(),
        stderr=io.StringIO(),
    )


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> RobotRun:
    base = tmp_path_factory.mktemp("robot")
    pack = write_pack(base / "pack", {"robot.yaml": PACK_SCENARIO})
    suite = base / "campaign.robot"
    suite.write_text(SUITE)
    before = threading.active_count()
    status = _run_robot(suite, base / "robot", [f"STSLAB_OUT:{base / 'runs'}",
                        f"STSLAB_PACK:{pack}", "STSLAB_SPEED:2"])  # fmt: skip
    after = threading.active_count()
    output = ExecutionResult(str(base / "robot" / "output.xml"))
    run_dir = Path(output.suite.metadata[stslab_robot.RUN_METADATA])
    record = json.loads((run_dir / "record.json").read_text())
    tests = {t.name: t for t in output.suite.tests}
    return RobotRun(status, tests, output, record, run_dir, before, after)


def test_passing_keywords_are_journalled_steps_with_checks(run: RobotRun) -> None:
    assert run.tests["A credit token is accepted"].status == "PASS"
    scenario = run.scenario("RBT-OK-001")
    assert scenario["outcome"] == "PASS"
    assert scenario["title"] == "A credit token is accepted"
    assert scenario["group"] == "Robot"
    assert scenario["clauses"] == ["IEC 62055-41 TransferCredit (REFERENCE §1)"]
    kinds = [s["kind"] for s in scenario["steps"]]
    assert kinds == ["robot:Mint And Enter Token", "robot:Result Should Be",
                     "robot:Display Should Show", "robot:Credit Change Should Be",
                     "robot:Register Should Be"]  # fmt: skip
    entry = scenario["steps"][0]
    assert entry["action"]["carrier"] == "port"
    assert entry["action"]["token"]["amount"] == "1.0"
    assert entry["evidence"] and entry["evidence"][0]["kind"] == "display_frame"
    checks = [(c["name"], c["expected"], c["observed"], c["outcome"])
              for s in scenario["steps"][1:] for c in s["checks"]]  # fmt: skip
    assert checks[0] == ("result", "Accept", "Accept", "PASS")
    assert checks[1][:2] == ("display", "AccEPt") and checks[1][3] == "PASS"
    assert checks[2][:2] == ("credit change", "1.0 ± 0.05") and checks[2][3] == "PASS"
    assert checks[3] == ("readout kt", "2", "2", "PASS")


def test_a_minted_token_entered_twice_is_used(run: RobotRun) -> None:
    scenario = run.scenario("RBT-OK-002")
    assert scenario["outcome"] == "PASS"
    wait, mint, first, _, second, used, credit = scenario["steps"]
    assert wait["kind"] == "robot:Wait Seconds" and wait["action"]["seconds"] == 4
    assert mint["kind"] == "robot:Mint Token" and mint["action"]["digits"]
    assert first["action"]["digits"] == second["action"]["digits"] == mint["action"]["digits"]
    assert first["action"]["token"]["tid"] == mint["action"]["token"]["tid"]
    assert used["checks"][0]["observed"] == "Used"
    assert credit["checks"][0]["observed"] in ("0", "0.0", "0.000")


def test_a_wrong_expectation_is_fail_with_expected_and_observed(run: RobotRun) -> None:
    test = run.tests["A wrong expectation is a failure"]
    assert test.status == "FAIL"
    assert test.message == "result: expected Used, observed Accept"
    scenario = run.scenario("RBT-FAIL-001")
    assert scenario["outcome"] == "FAIL"
    step = scenario["steps"][-1]
    assert step["outcome"] == "FAIL" and step["error"] is None
    assert step["checks"][0]["outcome"] == "FAIL"


def test_a_fault_is_error_through_its_own_exception(run: RobotRun) -> None:
    for name, sid in (("An undeclared register is a fault", "RBT-ERR-001"),
                      ("A vanished port is a fault", "RBT-ERR-002")):  # fmt: skip
        test = run.tests[name]
        assert test.status == "FAIL"  # Robot has no ERROR status: the exception names it
        assert test.message.startswith("BenchFault: Read Register")
        scenario = run.scenario(sid)
        assert scenario["outcome"] == "ERROR"
        faulty = [s for s in scenario["steps"] if s["outcome"] == "ERROR"]
        assert len(faulty) == 1 and faulty[0]["kind"] == "robot:Read Register"
        assert faulty[0]["checks"] == []
    assert "not a declared register" in run.scenario("RBT-ERR-001")["steps"][0]["error"]
    side_door = run.scenario("RBT-ERR-002")["steps"]
    assert side_door[0]["kind"] == "robot:Inject Transport Fault"
    assert side_door[-1]["kind"] == "robot:Clear Transport Faults"  # the teardown ran
    assert issubclass(stslab_robot.BenchFault, RuntimeError)
    assert not issubclass(stslab_robot.BenchFault, AssertionError)
    assert stslab_robot.BenchFault.ROBOT_CONTINUE_ON_FAILURE is False


def test_a_bad_argument_changes_nothing_and_is_recorded_as_error(run: RobotRun) -> None:
    test = run.tests["A bad argument changes nothing"]
    assert test.status == "FAIL" and "tid 'sometime'" in test.message
    scenario = run.scenario("RBT-ARG-001")
    assert scenario["outcome"] == "ERROR"
    (step,) = scenario["steps"]  # no token was minted or entered
    assert step["kind"] == "robot:test" and "tid 'sometime'" in step["error"]


def test_an_undeclared_feature_skips_with_the_reason(run: RobotRun) -> None:
    assert run.tests["Not declared by the meter"].status == "SKIP"
    scenario = run.scenario("RBT-SKIP-001")
    assert scenario["outcome"] == "SKIP"
    assert scenario["skip_reason"] == "applies to EA11, the meter uses EA07"


def test_a_pack_scenario_runs_through_the_same_runner(run: RobotRun) -> None:
    assert run.tests["A pack scenario through the same runner"].status == "PASS"
    scenario = run.scenario("RBT-PACK-001")
    assert scenario["outcome"] == "PASS"
    assert [s["kind"] for s in scenario["steps"]] == ["setup", "token"]
    ids = [s["id"] for s in run.record["scenarios"]]
    assert "A pack scenario through the same runner" not in ids  # journalled once, as itself


def test_suite_setup_steps_are_a_scenario_of_their_own(run: RobotRun) -> None:
    scenario = run.scenario("Campaign (suite setup)")
    assert scenario["outcome"] == "PASS"
    (step,) = scenario["steps"]
    assert step["kind"] == "robot:Prepare Meter"


def test_each_test_is_tagged_with_its_record_outcome(run: RobotRun) -> None:
    tags = {name: [t for t in test.tags if t.startswith("stslab:")]
            for name, test in run.tests.items()}  # fmt: skip
    assert tags["A credit token is accepted"] == ["stslab:PASS"]
    assert tags["A wrong expectation is a failure"] == ["stslab:FAIL"]
    assert tags["An undeclared register is a fault"] == ["stslab:ERROR"]
    assert tags["Not declared by the meter"] == ["stslab:SKIP"]
    assert tags["A pack scenario through the same runner"] == ["stslab:PASS"]


def test_the_record_adds_up_and_the_journal_verifies(run: RobotRun) -> None:
    record = run.record
    summary = record["summary"]
    assert summary["verdict"] == "FAIL"
    assert (summary["PASS"], summary["FAIL"], summary["ERROR"], summary["SKIP"]) == (4, 1, 3, 1)
    assert summary["steps"] == sum(len(s["steps"]) for s in record["scenarios"])
    assert record["config"]["speed"] == 2.0  # the variable overrides the import's speed=7
    assert record["finished"] is not None and record["complete"] is True
    entries = read_journal(run.run_dir / "benches/simlab-1/journal.jsonl")
    assert entries[-1].kind == "end" and entries[-1].data["teardown_problems"] == []
    rebuilt = build_record(run.run_dir)
    assert rebuilt["scenarios"] == record["scenarios"]
    assert run.status == 4  # Robot counts FAIL and ERROR tests alike as failed


def test_the_bench_is_released_when_the_run_ends(run: RobotRun) -> None:
    assert _Active.context is None
    assert run.threads_after <= run.threads_before
    keypad = run.record["bench"]["instruments"]["keypad"]["address"]
    assert not Path(keypad).parent.exists()  # SimLab stopped and removed its ptys' folder


def test_a_campaign_that_cannot_open_stops_the_run(tmp_path: Path) -> None:
    suite = tmp_path / "broken.robot"
    suite.write_text(
        "*** Settings ***\n"
        "Library    stslab.robot.StsLab    dut=no-such-meter\n\n"
        "*** Test Cases ***\n"
        "First\n    Mint And Enter Token    0    0    amount=1.0\n"
        "Second\n    Mint And Enter Token    0    0    amount=1.0\n"
    )
    status = _run_robot(suite, tmp_path / "robot", [f"STSLAB_OUT:{tmp_path / 'runs'}"])
    assert status == 2
    output = ExecutionResult(str(tmp_path / "robot" / "output.xml"))
    first, second = output.suite.tests
    assert first.message.startswith("CampaignFault: the campaign cannot open")
    assert "no-such-meter" in first.message
    assert second.status == "FAIL" and "fatal error" in second.message
    assert not list(tmp_path.glob("runs/*/record.json"))
    assert _Active.context is None


def test_libdoc_renders_every_keyword_with_its_documentation(tmp_path: Path) -> None:
    html = tmp_path / "stslab.html"
    done = subprocess.run(
        [sys.executable, "-m", "robot.libdoc", "stslab.robot.StsLab", str(html)],
        capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Mint And Enter Token" in html.read_text()
    spec = tmp_path / "stslab.json"
    libdoc("stslab.robot.StsLab", str(spec), format="JSON")
    doc = json.loads(spec.read_text())
    assert doc["scope"] == "GLOBAL"
    names = {k["name"]: k for k in doc["keywords"]}
    for name in ("Open Campaign", "Mint Token", "Enter Token", "Mint And Enter Token",
                 "Enter Key Change", "Press Keys", "Set Load", "Set Source", "Wait Seconds",
                 "Wait For Load Switch", "Wait For Credit Display", "Read Display",
                 "Read Register", "Result Should Be", "Display Should Show",
                 "Credit Change Should Be", "Load Switch Should Be",
                 "Power Cycle Meter", "Run Scenario"):  # fmt: skip
        assert name in names, name
        assert names[name]["doc"].strip(), name
    for listener_method in ("Start Suite", "End Suite", "Start Test", "End Test", "Close"):
        assert listener_method not in names
    amount = next(a for a in names["Mint Token"]["args"] if a["name"] == "amount")
    assert "Decimal" in amount["repr"]


# The library's keywords and their arguments, as libdoc showed them before the keywords were
# split into groups: a keyword lost, renamed or changed in a group is a change for every suite.
KEYWORDS = {
    "Ask Operator": ("prompt: str",),
    "Clear Transport Faults": ("role: str | None = None",),
    "Credit Change Should Be": (
        "change: Decimal",
        "tolerance: Decimal = 0.05",
        "register: int = 0",
    ),
    "Credit Should Be": ("value: Decimal", "tolerance: Decimal = 0.05", "register: int = 0"),
    "Display Should Show": ("result: str | None = None", "text: str | None = None"),
    "Enter Key Change": (
        "krn: int | Literal['next'] = next",
        "ti: int | Literal['same'] = same",
        "kt: int | Literal['same'] = same",
        "base_date: int | Literal['same'] = same",
        "sgc: int | Literal['same'] = same",
        "ken: str = never",
        "ro: bool = False",
        "order: list[int] | None = None",
        "carrier: Literal['keypad', 'port', 'card'] | None = None",
    ),
    "Enter Token": ("digits: str", "carrier: Literal['keypad', 'port', 'card'] | None = None"),
    "Inject Transport Fault": (
        "role: str",
        "fault: Literal['silent', 'vanished', 'drop_rate', 'garble_rate', 'delay_s'] = silent",
        "value: float = 1.0",
    ),
    "Load Switch Should Be": ("state: Literal['open', 'closed']", "within: float = 5.0"),
    "Mint And Enter Token": (
        "token_class: int",
        "subclass: int",
        "amount: Decimal | None = None",
        "value: int | None = None",
        "tests: str | None = None",
        "control: str | None = None",
        "mfr_code: str = 0",
        "tid: str = next",
        "key: Literal['current', 'other_meter', 'other_key', 'previous'] = current",
        "rnd: int | None = None",
        "name: str | None = None",
        "corrupt: Literal['typo'] | None = None",
        "carrier: Literal['keypad', 'port', 'card'] | None = None",
    ),
    "Mint Token": (
        "token_class: int",
        "subclass: int",
        "amount: Decimal | None = None",
        "value: int | None = None",
        "tests: str | None = None",
        "control: str | None = None",
        "mfr_code: str = 0",
        "tid: str = next",
        "key: Literal['current', 'other_meter', 'other_key', 'previous'] = current",
        "rnd: int | None = None",
        "name: str | None = None",
    ),
    "Open Campaign": (
        "bench: str | None = None",
        "dut: str | None = None",
        "job: str | None = None",
        "out: str | None = None",
        "speed: float | None = None",
        "defects: str | None = None",
        "mode: Literal['pre-submission', 'accredited'] | None = None",
        "pack: str | None = None",
        "seed: int | None = None",
        "carrier: Literal['keypad', 'port', 'card'] | None = None",
        "on_fault: Literal['continue', 'stop'] | None = None",
    ),
    "Power Cycle Meter": ("off_s: float = 5.0",),
    "Prepare Meter": (
        "credit: Decimal | None = None",
        "carrier: Literal['keypad', 'port', 'card'] | None = None",
    ),
    "Press Keys": ("*keys: str", "hold_ms: int | None = None", "gap_ms: int | None = None"),
    "Raise Tamper Condition": (),
    "Read Display": (),
    "Read Register": ("name: str",),
    "Register Should Be": ("name: str", "value: str"),
    "Result Should Be": ("expected: str",),
    "Run Scenario": ("scenario_id: str",),
    "Section Results Should Be": ("*expected: str",),
    "Set Load": (
        "setpoint: float = 0.0",
        "mode: Literal['CC', 'CR', 'CP'] = CP",
        "on: bool = True",
    ),
    "Set Source": (
        "output: bool = True",
        "voltage: float | None = None",
        "frequency: float | None = None",
    ),
    "Skip Unless Declared": (
        "carrier: Literal['keypad', 'port', 'card'] | None = None",
        "feature: str | None = None",
        "test: int | None = None",
        "service: int | None = None",
        "ea: Literal['07', '09', '11'] | None = None",
    ),
    "Wait For Credit Display": ("timeout: float = 600.0",),
    "Wait For Energy": ("energy_wh: float", "timeout: float = 600.0"),
    "Wait For Load Switch": ("state: Literal['open', 'closed']", "timeout: float = 600.0"),
    "Wait Seconds": ("seconds: float",),
}


def test_libdoc_documents_every_keyword_with_its_arguments() -> None:
    lib = LibraryDocumentation("stslab.robot.StsLab")
    assert lib.scope == "GLOBAL" and lib.version == stslab_version
    assert "= Verdicts, faults and skips =" in lib.doc
    assert lib.inits and lib.inits[0].doc.strip()
    assert [str(a) for a in lib.inits[0].args][:2] == ["bench: str = sim", "dut: str | None = None"]
    documented = {kw.name: kw for kw in lib.keywords}
    assert set(documented) == set(KEYWORDS)
    for name, args in KEYWORDS.items():
        assert tuple(str(a) for a in documented[name].args) == args, name
        assert documented[name].doc.strip(), name
    long = [(p.name, n) for p in LIBRARY_FILES
            if (n := len(p.read_text().splitlines())) > 450]  # fmt: skip
    assert not long, f"each file of the library should be readable whole: {long}"


def test_the_suites_in_the_repository_are_well_formed(tmp_path: Path) -> None:
    status = robot.run(
        str(SUITES), dryrun=True, outputdir=str(tmp_path), console="none",
        stdout=io.StringIO(), stderr=io.StringIO(),
    )  # fmt: skip
    output = ExecutionResult(str(tmp_path / "output.xml"))
    tests = list(output.suite.all_tests)
    failed = [(t.name, t.message) for t in tests if t.status != "PASS"]
    assert status == 0 and not failed, failed
    ids = []
    for test in tests:
        tags = [str(t) for t in test.tags]
        ident = [t[3:] for t in tags if t.startswith("id:")]
        assert len(ident) == 1 and re.fullmatch(r"STS(-[A-Z0-9]+)+", ident[0]), test.name
        assert any(t.startswith("clause:") for t in tags), test.name
        ids.append(ident[0])
    assert len(ids) == len(set(ids))
    assert len(ids) >= 25
    assert len({i.split("-")[1] for i in ids}) >= 10  # the catalogue's groups covered


def _cli(*args: str) -> int:
    app = typer.Typer(add_completion=False)
    app.command("robot")(robot_command)
    app.command("unused")(lambda: None)  # a second command keeps "robot" a subcommand
    try:
        result = app(args=["robot", *args], standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    return int(result or 0)


def test_stslab_robot_runs_a_suite_into_the_run_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = write_pack(tmp_path / "pack", {"robot.yaml": PACK_SCENARIO})
    suite = tmp_path / "cli.robot"
    suite.write_text(
        "*** Settings ***\nLibrary    stslab.robot.StsLab\n"
        "Suite Setup    Open Campaign    carrier=port\n\n"
        "*** Test Cases ***\nCredit\n    [Tags]    id:RBT-CLI-001\n"
        "    Mint And Enter Token    0    0    amount=0.3\n    Result Should Be    accept\n"
        "    Credit Change Should Be    0.3\n"
        "    ${run} =    Open Campaign    carrier=port\n"
        "    Should Be Equal    ${run}    ${SUITE METADATA}[stslab run]\n"
    )
    code = _cli(str(suite), "--bench", "sim", "--out", str(tmp_path / "runs"), "--pack",
                str(pack), "--speed", "2", "--quiet")  # fmt: skip
    assert code == 0
    (run_dir,) = (tmp_path / "runs").iterdir()  # the staging folder is gone
    for name in (
        "output.xml",
        "log.html",
        "report.html",
        "benches/simlab-1/journal.jsonl",
        "record.json",
    ):
        assert (run_dir / name).exists(), name
    record = json.loads((run_dir / "record.json").read_text())
    assert [s["id"] for s in record["scenarios"]] == ["RBT-CLI-001"]
    assert record["scenarios"][0]["steps"][0]["action"]["carrier"] == "port"
    assert record["config"]["speed"] == 2.0
    printed = "".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "RBT-CLI-001" in printed and "PASS" in printed and run_dir.name in printed


@pytest.mark.parametrize(
    ("args", "param"),
    [
        (["/no/such/suite"], "SUITE"),
        ([str(SUITES), "--mode", "certified"], "--mode"),
        ([str(SUITES), "--speed", "0"], "--speed"),
        ([str(SUITES), "--pack", "/no/such/pack"], "--pack"),
    ],
)
def test_stslab_robot_names_a_bad_argument(args: list[str], param: str) -> None:
    with pytest.raises(ArgumentError) as caught:
        _cli(*args)
    assert caught.value.param == param


TEXT_AFTER_ENTRY = """\
*** Settings ***
Library    stslab.robot.StsLab    bench=virtual    carrier=port

*** Test Cases ***
A test display of the sequence the entry started
    Mint And Enter Token    1    0    tests=all
    Result Should Be    accept
    Display Should Show    text=u 1.42

A test display the sequence never shows
    Mint And Enter Token    1    0    tests=all
    Display Should Show    text=tA 1

A text read now when no entry came before
    Wait Seconds    120
    Display Should Show    text=u 1.42
"""


def test_a_text_check_after_an_entry_judges_what_the_display_showed_after_it(
    tmp_path: Path,
) -> None:
    suite = tmp_path / "text.robot"
    suite.write_text(TEXT_AFTER_ENTRY)
    _run_robot(suite, tmp_path / "robot", [f"STSLAB_OUT:{tmp_path / 'runs'}"])
    tests = {t.name: t for t in ExecutionResult(str(tmp_path / "robot" / "output.xml")).suite.tests}
    # Read when the keyword runs, the display still shows the Accept message: the sequence
    # that follows is judged as a scenario step's display_text is.
    assert tests["A test display of the sequence the entry started"].status == "PASS"
    assert tests["A test display the sequence never shows"].status == "FAIL"
    assert tests["A text read now when no entry came before"].status == "FAIL"
