"""Bad input changes nothing and says where it is: every loader, and every command that takes a
DUT profile, a job, a bench file, a scenario file or a pack manifest, answers a broken one with
one line naming the file, the line and the key (exit status 2, no traceback), and leaves no run
folder, no Robot output and no rewritten manifest behind."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from dut.profile import MeterProfile
from stslab.bench import load_bench
from stslab.cli import main
from stslab.job import load_job
from stslab.pack import build_manifest, generate_key, verify_pack
from stslab.scenario import load_scenarios
from stslab.session import load_dut
from tests.stslab.test_pack import CREDIT_SCENARIO

REPO = Path(__file__).resolve().parents[2]
PROFILE = (REPO / "dut" / "profiles" / "meter_default.yaml").read_text()
JOB = (REPO / "examples" / "job.yaml").read_text()
BENCH = (REPO / "examples" / "bench-hardware.yaml").read_text()
RUN_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Broken:
    """A file broken one way: its text, the text on the line the error must name (``None``:
    line 1; a leading ``^``: the line starts with it) and the key path it must name."""

    kind: str  # dut, job, bench, scenario, manifest
    name: str
    text: str
    line_text: str | None
    key: str

    @property
    def id(self) -> str:
        return f"{self.kind}-{self.name}"

    def line(self) -> int:
        if self.line_text is None:
            return 1
        text = self.line_text
        lines = enumerate(self.text.splitlines(), 1)
        if text.startswith("^"):
            found = [n for n, t in lines if t.startswith(text[1:])]
        else:
            found = [n for n, t in lines if text in t]
        assert len(found) == 1, f"{self.line_text!r} is not on exactly one line"
        return found[0]


def _edit(text: str, old: str, new: str) -> str:
    assert text.count(old) >= 1, old
    return text.replace(old, new, 1)


def _manifest_text() -> str:
    return (
        "pack: test-pack\nversion: 1.0.0\ntitle: test pack\nstandards:\n- IEC 62055-41:2018\n"
        "files:\n  a.yaml: " + "ab" * 32 + "\n"
    )


MANIFEST = _manifest_text()

BROKEN = [
    # DUT profiles
    Broken("dut", "syntax", _edit(PROFILE, "  krn: 1\n", "  krn: [1\n"), "krn: [1", "key.krn"),
    Broken("dut", "type", _edit(PROFILE, "  krn: 1\n", "  krn: one\n"), "krn: one", "key.krn"),
    Broken("dut", "unknown", _edit(PROFILE, "  krn: 1\n", "  krn: 1\n  kern: 2\n"), "kern:",
           "key.kern"),
    Broken("dut", "missing", _edit(PROFILE, "  krn: 1\n", ""), "^key:", "key.krn"),
    Broken("dut", "twice", _edit(PROFILE, "  krn: 1\n", "  krn: 1\n  krn: 2\n"), "krn: 2",
           "key.krn"),
    Broken("dut", "pan", _edit(PROFILE, "000000000009", "000000000008"), "pan:", "meter.pan"),
    Broken("dut", "layout", _edit(PROFILE, "layout: lcd_8digit", "layout: lcd_9digit"),
           "layout:", "display.layout"),
    Broken("dut", "key-file", _edit(PROFILE, "vending_key: abababababababab",
                                    "vending_key_file: nowhere.hex"),
           "vending_key_file:", "key.vending_key_file"),
    Broken("dut", "list", "- make\n- model\n", None, "(top level)"),
    # job files
    Broken("job", "syntax", _edit(JOB, 'operator: "A. Tester"', "operator: [A. Tester"),
           "operator:", "operator"),
    Broken("job", "type", _edit(JOB, "receipt_date: 2026-11-16", "receipt_date: yesterday"),
           "receipt_date:", "receipt_date"),
    Broken("job", "unknown", _edit(JOB, 'operator: "A. Tester"\n',
                                   'operator: "A. Tester"\noperater: B\n'),
           "operater:", "operater"),
    Broken("job", "missing", _edit(JOB, 'operator: "A. Tester"\n', ""), None, "operator"),
    Broken("job", "twice", _edit(JOB, 'operator: "A. Tester"\n',
                                 'operator: "A. Tester"\noperator: B\n'),
           "operator: B", "operator"),
    Broken("job", "empty", "", None, "(top level)"),
    # bench files
    Broken("bench", "syntax", _edit(BENCH, "    timeout_s: 10\n", "    timeout_s: [10\n"),
           "timeout_s: [10", "instruments.keypad.timeout_s"),
    Broken("bench", "type", _edit(BENCH, "    timeout_s: 10\n", "    timeout_s: ten\n"),
           "timeout_s: ten", "instruments.keypad.timeout_s"),
    Broken("bench", "unknown", _edit(BENCH, "    timeout_s: 10\n",
                                     "    timeout_s: 10\n    timout_s: 3\n"),
           "timout_s:", "instruments.keypad.timout_s"),
    Broken("bench", "missing", _edit(BENCH, "name: sts-bench-2\n", ""), "bench_version:",
           "name"),
    Broken("bench", "twice", _edit(BENCH, "    timeout_s: 10\n",
                                   "    timeout_s: 10\n    timeout_s: 3  # again\n"),
           "# again", "instruments.keypad.timeout_s"),
    Broken("bench", "driver", _edit(BENCH, "driver: kpr1", "driver: kpr2"), "driver: kpr2",
           "instruments.keypad.driver"),
    Broken("bench", "role", _edit(BENCH, "driver: kpr1", "driver: msr605  # a card writer"),
           "# a card writer", "instruments.keypad.driver"),
    # scenario files (in a pack whose manifest vouches for them)
    Broken("scenario", "syntax", _edit(CREDIT_SCENARIO, "carrier: port", "carrier: [port"),
           "carrier:", "carrier"),
    Broken("scenario", "type", _edit(CREDIT_SCENARIO, "amount: 0.1}", "amount: lots}"),
           "amount: lots", "token.amount"),
    Broken("scenario", "unknown", _edit(CREDIT_SCENARIO, "carrier: port",
                                        "carrier: port\ncarier: port"),
           "carier:", "carier"),
    Broken("scenario", "missing", _edit(CREDIT_SCENARIO, "title: A credit token is accepted\n",
                                        ""), None, "title"),
    Broken("scenario", "twice", _edit(CREDIT_SCENARIO, "carrier: port",
                                      "carrier: port\ncarrier: keypad"),
           "carrier: keypad", "carrier"),
    Broken("scenario", "result", _edit(CREDIT_SCENARIO, "result: accept", "result: Usd"),
           "result: Usd", "expect.result"),
    Broken("scenario", "step-kind", _edit(CREDIT_SCENARIO, "do: token", "do: tokn"),
           "do: tokn", "do"),
    # pack manifests
    Broken("manifest", "syntax", _edit(MANIFEST, "version: 1.0.0", "version: [1.0.0"),
           "version:", "version"),
    Broken("manifest", "type", _edit(MANIFEST, "version: 1.0.0", "version: [1, 0]"),
           "version:", "version"),
    Broken("manifest", "unknown", _edit(MANIFEST, "title: test pack", "titel: test pack"),
           "titel:", "titel"),
    Broken("manifest", "missing", _edit(MANIFEST, "pack: test-pack\n", ""), None, "pack"),
    Broken("manifest", "twice", _edit(MANIFEST, "title: test pack\n",
                                      "title: test pack\ntitle: again\n"),
           "title: again", "title"),
    Broken("manifest", "digest", _edit(MANIFEST, "ab" * 32, "not-a-hash"), "a.yaml:",
           "files.a.yaml"),
    Broken("manifest", "file-name", _edit(MANIFEST, "  a.yaml:", "  ../a.yaml:"), "../a.yaml",
           "files.../a.yaml"),
]  # fmt: skip

KINDS = ("dut", "job", "bench", "scenario", "manifest")


def cases(*kinds: str) -> list[object]:
    return [pytest.param(b, id=b.id) for b in BROKEN if b.kind in kinds]


# --- writing the files ------------------------------------------------------------------------


def write_pack(folder: Path, broken: Broken | None = None) -> Path:
    """A pack of one good scenario file (a.yaml) with a manifest; ``broken`` replaces the
    scenario (the manifest still vouches for it) or the manifest."""
    folder.mkdir(parents=True)
    (folder / "a.yaml").write_text(CREDIT_SCENARIO)
    build_manifest(folder, "test-pack", "1.0.0", ["IEC 62055-41:2018"], "test pack")
    if broken is not None and broken.kind == "scenario":
        (folder / "a.yaml").write_text(broken.text)
        build_manifest(folder, "test-pack", "1.0.0", ["IEC 62055-41:2018"], "test pack")
    elif broken is not None and broken.kind == "manifest":
        (folder / "manifest.yaml").write_text(broken.text)
    return folder


def write_input(tmp_path: Path, broken: Broken) -> tuple[Path, Path]:
    """The broken file where a command takes it: (the path to give, the file to name)."""
    if broken.kind in ("scenario", "manifest"):
        pack = write_pack(tmp_path / "pack", broken)
        return pack, pack / ("a.yaml" if broken.kind == "scenario" else "manifest.yaml")
    path = tmp_path / f"{broken.kind}.yaml"
    path.write_text(broken.text)
    return path, path


def snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every file and folder under ``folder`` with its bytes: what 'changes nothing' compares."""
    return {
        str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(folder.rglob("*"))
    }


def assert_names_the_place(message: str, file: Path, broken: Broken) -> None:
    assert len(message.strip().splitlines()) == 1, f"not one line: {message!r}"
    assert "Traceback" not in message
    assert f"{file}:{broken.line()}: " in message, message
    assert f" {broken.key}: " in message, message


# --- the loaders ------------------------------------------------------------------------------

LOADERS: dict[str, Callable[[Path], object]] = {
    "dut": lambda path: load_dut(str(path)),  # the profile, and the vending key it names
    "job": load_job,
    "bench": load_bench,
    "scenario": load_scenarios,
    "manifest": lambda path: verify_pack(path.parent),
}


@pytest.mark.parametrize("broken", cases(*KINDS))
def test_each_loader_names_the_file_the_line_and_the_key(tmp_path: Path, broken: Broken) -> None:
    given, file = write_input(tmp_path, broken)
    before = snapshot(tmp_path)
    with pytest.raises(Exception) as caught:  # each loader's own error class
        LOADERS[broken.kind](file if broken.kind in ("scenario", "manifest") else given)
    assert_names_the_place(str(caught.value), file, broken)
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", KINDS)
def test_each_loader_names_a_file_that_is_not_there(tmp_path: Path, kind: str) -> None:
    missing = tmp_path / "nowhere" / ("manifest.yaml" if kind == "manifest" else "x.yaml")
    with pytest.raises(Exception) as caught:
        LOADERS[kind](missing)
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert f"{missing}: cannot read" in message, message
    assert "No such file or directory" in message


def test_a_profile_names_a_built_in_it_does_not_know() -> None:
    with pytest.raises(Exception, match=r"nowhere: no such file, and no built-in meter profile"):
        MeterProfile.load("nowhere")


def test_a_scenario_id_used_twice_in_a_pack_names_both_places(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack")
    (pack / "b.yaml").write_text("# the same scenario again\n" + CREDIT_SCENARIO)
    build_manifest(pack, "test-pack", "1.0.0", [])
    from stslab.session import load_pack

    with pytest.raises(Exception) as caught:
        load_pack(pack)
    message = str(caught.value)
    assert f"{pack / 'b.yaml'}:2: scenario T-CREDIT-001: id: " in message, message
    assert f"{pack / 'a.yaml'}:1" in message


# --- the commands ------------------------------------------------------------------------------


def run_command(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], *, option: str
) -> str:
    """Run ``stslab`` in-process in ``tmp_path``: exit status 2, one line on stderr naming
    ``option``, nothing written anywhere under ``tmp_path``. Returns the line."""
    before = snapshot(tmp_path)
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2, (out, err)
    assert err.startswith("stslab: error: ") and err.count("\n") == 1, err
    assert err.startswith(f"stslab: error: {option}: "), err
    assert snapshot(tmp_path) == before, "the command changed files"
    return err


OPTIONS = {"dut": "--dut", "job": "--job", "bench": "--bench", "scenario": "--pack",
           "manifest": "--pack"}  # fmt: skip


def campaign_args(tmp_path: Path, broken: Broken) -> list[str]:
    given, _file = write_input(tmp_path, broken)
    pack = given if broken.kind in ("scenario", "manifest") else write_pack(tmp_path / "good")
    args = ["--out", str(tmp_path / "runs"), "--pack", str(pack)]
    if broken.kind in ("dut", "job", "bench"):
        args += [OPTIONS[broken.kind], str(given)]
    return args


@pytest.mark.parametrize("broken", cases(*KINDS))
def test_certify_refuses_a_broken_file_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], broken: Broken
) -> None:
    args = ["certify", "--quiet", *campaign_args(tmp_path, broken)]
    err = run_command(capsys, tmp_path, args, option=OPTIONS[broken.kind])
    assert_names_the_place(err, write_input_file(tmp_path, broken), broken)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("broken", cases(*KINDS))
def test_robot_refuses_a_broken_file_before_robot_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], broken: Broken
) -> None:
    args = ["robot", "--quiet", *campaign_args(tmp_path, broken)]
    err = run_command(capsys, tmp_path, args, option=OPTIONS[broken.kind])
    assert_names_the_place(err, write_input_file(tmp_path, broken), broken)
    assert not (tmp_path / "runs").exists()  # no Robot staging folder either


@pytest.mark.parametrize("broken", cases("dut", "scenario", "manifest"))
def test_selftest_refuses_a_broken_file_once_not_per_worker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], broken: Broken
) -> None:
    given, file = write_input(tmp_path, broken)
    option = OPTIONS[broken.kind]
    args = ["selftest", "--workers", "2", "--defect", "accepts-used", option, str(given)]
    if broken.kind == "dut":
        args += ["--pack", str(write_pack(tmp_path / "good"))]
    err = run_command(capsys, tmp_path, args, option=option)
    assert_names_the_place(err, file, broken)


@pytest.mark.parametrize("broken", cases("dut"))
def test_sim_refuses_a_broken_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], broken: Broken
) -> None:
    given, file = write_input(tmp_path, broken)
    bench_out = tmp_path / "bench.yaml"
    args = ["sim", "--profile", str(given), "--duration", "0", "--bench-out", str(bench_out)]
    err = run_command(capsys, tmp_path, args, option="--profile")
    assert_names_the_place(err, file, broken)


@pytest.mark.parametrize("broken", cases("bench"))
def test_bench_check_refuses_a_broken_bench_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], broken: Broken
) -> None:
    given, file = write_input(tmp_path, broken)
    err = run_command(capsys, tmp_path, ["bench", "check", str(given)], option="BENCH")
    assert_names_the_place(err, file, broken)


@pytest.fixture(scope="module")
def owner_pem(tmp_path_factory: pytest.TempPathFactory) -> Path:
    private, _public = generate_key()
    path = tmp_path_factory.mktemp("owner") / "owner.pem"
    path.write_text(private)
    return path


#: ``pack manifest`` writes a new manifest without reading the old one: scenarios only.
PACK_COMMANDS = [
    pytest.param(command, b, id=f"{command}-{b.id}")
    for command in ("manifest", "sign", "verify")
    for b in BROKEN
    if b.kind == "scenario" or (b.kind == "manifest" and command != "manifest")
]


@pytest.mark.parametrize(("command", "broken"), PACK_COMMANDS)
def test_pack_commands_refuse_a_broken_pack_and_write_nothing(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    owner_pem: Path,
    command: str,
    broken: Broken,
) -> None:
    pack, file = write_input(tmp_path, broken)
    extra = {"manifest": ["--id", "p", "--version", "2"], "sign": ["--key", str(owner_pem)],
             "verify": []}[command]  # fmt: skip
    err = run_command(capsys, tmp_path, ["pack", command, str(pack), *extra], option="DIRECTORY")
    assert_names_the_place(err, file, broken)


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["certify", "--quiet", "--dut"], "--dut"),
        (["certify", "--quiet", "--job"], "--job"),
        (["certify", "--quiet", "--bench"], "--bench"),
        (["certify", "--quiet", "--pack-key"], "--pack-key"),
        (["robot", "--quiet", "--job"], "--job"),
        (["selftest", "--dut"], "--dut"),
        (["sim", "--duration", "0", "--profile"], "--profile"),
        (["bench", "check"], "BENCH"),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join(v),
)
def test_a_file_that_is_not_there_is_named(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str], option: str
) -> None:
    missing = tmp_path / "nowhere.yaml"
    args = [*command, str(missing)]
    if command[0] in ("certify", "robot"):
        args += ["--out", str(tmp_path / "runs"), "--pack", str(write_pack(tmp_path / "good"))]
    err = run_command(capsys, tmp_path, args, option=option)
    assert f"{missing}: cannot read" in err


@pytest.mark.parametrize("command", [["certify", "--quiet"], ["robot", "--quiet"], ["selftest"]])
def test_a_folder_without_a_manifest_is_not_a_pack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "a.yaml").write_text(CREDIT_SCENARIO)
    args = [*command, "--pack", str(folder)]
    if command[0] != "selftest":
        args += ["--out", str(tmp_path / "runs")]
    err = run_command(capsys, tmp_path, args, option="--pack")
    assert "has no manifest.yaml" in err and str(folder) in err


def test_certify_refuses_an_unknown_defect_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["certify", "--quiet", "--out", str(tmp_path / "runs"), "--defect", "no-such-defect",
            "--pack", str(write_pack(tmp_path / "good"))]  # fmt: skip
    err = run_command(capsys, tmp_path, args, option="--defect")
    assert "no-such-defect" in err


def write_input_file(tmp_path: Path, broken: Broken) -> Path:
    """Where :func:`write_input` put the broken file (it is written once per test)."""
    if broken.kind in ("scenario", "manifest"):
        return tmp_path / "pack" / ("a.yaml" if broken.kind == "scenario" else "manifest.yaml")
    return tmp_path / f"{broken.kind}.yaml"


# --- plain pytest on a pack ---------------------------------------------------------------------

#: Through pytest directly: one breakage of each file it reads (each run is a process).
PYTEST_CASES = ["scenario-result", "scenario-syntax", "manifest-unknown", "dut-type",
                "job-missing", "bench-twice"]  # fmt: skip


@pytest.mark.parametrize("case", PYTEST_CASES)
def test_pytest_on_a_pack_names_the_place_and_starts_no_campaign(tmp_path: Path, case: str) -> None:
    (broken,) = [b for b in BROKEN if b.id == case]
    given, file = write_input(tmp_path, broken)
    if broken.kind in ("scenario", "manifest"):
        pack, options = given, ["--bench", "sim"]
    else:
        pack = write_pack(tmp_path / "good")
        # --bench repeats (one per bench): a broken bench file is the only bench
        options = [] if broken.kind == "bench" else ["--bench", "sim"]
        options += [OPTIONS[broken.kind], str(given)]
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "400"}
    before = snapshot(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(pack), *options, "--speed", "2",
         "--out", str(tmp_path / "runs"), "-p", "no:cacheprovider"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.USAGE_ERROR), text
    lines = [line for line in text.splitlines() if f"{file}:{broken.line()}: " in line]
    assert lines, text
    assert f" {broken.key}: " in lines[0], lines[0]
    assert "Traceback" not in text
    assert not (tmp_path / "runs").exists()
    assert snapshot(tmp_path) == before


def test_pytest_on_a_folder_without_a_manifest_says_it_is_not_a_pack(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "a.yaml").write_text(CREDIT_SCENARIO)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(folder), "--bench", "sim", "--out",
         str(tmp_path / "runs"), "-p", "no:cacheprovider"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"{folder} has no manifest.yaml" in proc.stderr
    assert not (tmp_path / "runs").exists()
