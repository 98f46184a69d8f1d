"""``stslab report`` issues a signed report beside the record (a new revision, never an
overwrite; an amendment names what it supersedes and why) and ``stslab verify`` says VALID
or lists what is wrong, with exit statuses a script can rely on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reports.sign import sign_pdf
from stslab.cli import main
from tests.reports.test_render import (
    _accredited,
    copy_run,
    dev_signer,
    page_texts,
    rewrite_record,
    unsigned_report,
)
from tests.reports.test_sign_verify import issue, make_ca, pem, write_p12


@pytest.fixture
def run_dir(tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> Path:
    return copy_run(tmp_path_factory, tmp_path)


@pytest.fixture
def dev_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "dev-signer"
    monkeypatch.setenv("STSLAB_DEV_SIGNER_DIR", str(folder))
    monkeypatch.delenv("STSLAB_SIGNER_PASSWORD", raising=False)
    monkeypatch.delenv("STSLAB_TSA_URL", raising=False)
    return folder


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_report_then_verify(
    run_dir: Path, dev_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = json.loads((run_dir / "record.json").read_text())
    junit = tmp_path / "junit.xml"
    code, out, err = _run(["report", str(run_dir), "--html", "--junit", str(junit)], capsys)
    assert code == 0, err
    pdf = run_dir / f"report-{record['run_id']}-R1.pdf"
    assert out.startswith(f"wrote {pdf}: report STS-{record['run_id']}-R1, pre-submission, "
                          f"verdict {record['summary']['verdict']}; signed by stslab development "
                          "signer")  # fmt: skip
    assert "(development certificate)" in out
    assert (dev_dir / "ca.pem").exists()
    html = pdf.with_suffix(".html").read_text()
    assert f"Report STS-{record['run_id']}-R1" in html
    (journal,) = record["journals"]
    assert (f"Journal {journal['records']} hash-chained journal records, head {journal['head']}, "
            "checked at issue.") in " ".join(page_texts(pdf.read_bytes()))  # fmt: skip
    assert int(ET.parse(junit).getroot().get("tests", "0")) == record["summary"]["scenarios"]

    code, out, err = _run(["verify", str(pdf)], capsys)
    assert code == 0, err
    lines = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    assert lines["verdict"].strip() == record["summary"]["verdict"]
    assert lines["mode"].strip() == "pre-submission"
    assert lines["signer"].strip().endswith("(development certificate)")
    assert lines["authorised by"].strip() == "B. Signatory, Technical signatory"
    assert lines["signing time"].strip().startswith("20")
    assert lines["time stamp"].strip() == "none (PAdES B-B)"
    assert out.splitlines()[-1].startswith("VALID")


def test_a_signed_report_is_never_overwritten_and_an_amendment_says_why(
    run_dir: Path, dev_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = json.loads((run_dir / "record.json").read_text())["run_id"]
    assert _run(["report", str(run_dir)], capsys)[0] == 0
    first = (run_dir / f"report-{run_id}-R1.pdf").read_bytes()
    code, _out, err = _run(["report", str(run_dir)], capsys)
    assert code == 2
    assert err == (f"stslab: error: --reason: report STS-{run_id}-R1 was issued; an amended "
                   "report needs the reason for the amendment\n")  # fmt: skip
    code, out, err = _run(["report", str(run_dir), "--reason", "customer address corrected"],
                          capsys)  # fmt: skip
    assert code == 0, err
    assert f"supersedes STS-{run_id}-R1" in out
    assert (run_dir / f"report-{run_id}-R1.pdf").read_bytes() == first
    second = run_dir / f"report-{run_id}-R2.pdf"
    text = " ".join(page_texts(second.read_bytes()))
    assert (
        f"This report (revision 2) supersedes report STS-{run_id}-R1, which is withdrawn." in text
    )
    assert "Reason for the amendment: customer address corrected" in text
    code, out, _err = _run(["verify", str(second)], capsys)
    assert code == 0 and f"(supersedes STS-{run_id}-R1)" in out


def test_verify_exits_1_and_says_why(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("STSLAB_DEV_SIGNER_DIR", str(tmp_path / "this-computer"))
    signer = dev_signer(tmp_path_factory)
    pdf = sign_pdf(unsigned_report(tmp_path_factory)[1], signer, signer_name="x", reason="x")
    assert signer.trust_anchor is not None
    dev = ["--dev-signer-dir", str(signer.trust_anchor.parent)]
    good = tmp_path / "good.pdf"
    good.write_bytes(pdf)
    assert _run(["verify", str(good), *dev], capsys)[0] == 0
    damaged = bytearray(pdf)
    damaged[len(damaged) // 2] ^= 0x01
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(bytes(damaged))
    code, _out, err = _run(["verify", str(bad), *dev], capsys)
    assert code == 1
    assert err.splitlines()[0] == "INVALID"
    assert len(err.splitlines()) >= 2
    assert all(line.startswith("stslab: verify: ") for line in err.splitlines()[1:])
    code, _out, err = _run(["verify", str(good)], capsys)  # another computer's development CA
    assert code == 1 and "does not chain to a trusted certificate" in err


@pytest.mark.parametrize(
    ("name", "content", "what"),
    [
        ("report.txt", b"Report STS-1-R1: PASS\n", "not a PDF file"),
        ("report.pdf", b"", "an empty file, not a PDF file"),
        ("report.pdf", "unsigned", "a PDF without a signature, not a signed report"),
        ("report.pdf", None, "no such file"),
        ("reports", "folder", "a folder, not a file"),
    ],
)
def test_verify_says_in_one_line_what_a_file_that_is_no_signed_report_is(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, dev_dir: Path,
    capsys: pytest.CaptureFixture[str], name: str, content: bytes | str | None, what: str,
) -> None:  # fmt: skip
    path = tmp_path / name
    if content == "unsigned":
        path.write_bytes(unsigned_report(tmp_path_factory)[1])
    elif content == "folder":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    code, out, err = _run(["verify", str(path)], capsys)
    assert (code, out, err) == (2, "", f"stslab: error: REPORT: {path}: {what}\n")


def test_an_accredited_report_needs_the_lab_certificate_and_its_password_from_the_environment(
    run_dir: Path, dev_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    rewrite_record(run_dir, _accredited)
    code, _out, err = _run(["report", str(run_dir)], capsys)
    assert code == 2
    assert err.startswith("stslab: error: --p12: an accredited report is signed with the lab's")
    ca = make_ca("Example Lab CA")
    key, cert = issue(ca, "B. Signatory")
    p12 = write_p12(tmp_path / "lab.p12", key, cert, ca[1], b"pw-from-env")
    monkeypatch.setenv("STSLAB_SIGNER_PASSWORD", "wrong")
    code, _out, err = _run(["report", str(run_dir), "--p12", str(p12)], capsys)
    assert (code, err.count("\n")) == (2, 1)
    assert "the password is wrong" in err
    monkeypatch.setenv("STSLAB_SIGNER_PASSWORD", "pw-from-env")
    code, out, err = _run(["report", str(run_dir), "--p12", str(p12)], capsys)
    assert code == 0, err
    assert "accredited" in out and "signed by B. Signatory" in out
    (pdf,) = run_dir.glob("report-*-R1.pdf")
    ca_pem = pem(ca[1], tmp_path / "ca.pem")
    code, out, _err = _run(["verify", str(pdf), "--trust", str(ca_pem)], capsys)
    assert code == 0 and "mode:           accredited" in out
    assert _run(["verify", str(pdf)], capsys)[0] == 1  # the lab's CA is not trusted by default
    assert "PRE-SUBMISSION" not in " ".join(page_texts(pdf.read_bytes()))


def test_a_record_its_journal_does_not_bear_out_makes_no_report(
    run_dir: Path, dev_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record_json = json.loads((run_dir / "record.json").read_text())
    journal = run_dir / record_json["journals"][0]["file"]
    good = journal.read_bytes()
    lines = good.splitlines(keepends=True)
    edited = json.loads(lines[2])
    edited["data"]["forged"] = True  # an edited record: its hash no longer matches
    lines[2] = json.dumps(edited, separators=(",", ":")).encode() + b"\n"
    journal.write_bytes(b"".join(lines))
    code, _out, err = _run(["report", str(run_dir)], capsys)
    assert (code, err) == (2, f"stslab: error: RUN_DIR: the journal does not verify: {journal}:3: "
                              "record altered (hash does not match)\n")  # fmt: skip
    journal.write_bytes(good)
    rewrite_record(run_dir, lambda r: r["journals"][0].update(head="f" * 64))
    code, _out, err = _run(["report", str(run_dir)], capsys)
    record = run_dir / "record.json"
    assert (code, err) == (2, f"stslab: error: RUN_DIR: {record} does not match {journal} "
                              "(the journal has records the record does not)\n")  # fmt: skip
    assert not list(run_dir.glob("report-*"))


def _console(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``stslab ARGS`` as a user runs it, with every warning Python would show (``-W default``
    also shows the deprecation and resource warnings hidden by default)."""
    return subprocess.run([sys.executable, "-W", "default", "-m", "stslab", *args], env=env,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def test_report_and_verify_print_no_library_warnings(run_dir: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHONWARNINGS", "STSLAB_"))}
    env["STSLAB_DEV_SIGNER_DIR"] = str(tmp_path / "dev-signer")
    done = _console("report", str(run_dir), env=env)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    (pdf,) = run_dir.glob("report-*-R1.pdf")
    done = _console("verify", str(pdf), env=env)
    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert done.stdout.splitlines()[-1].startswith("VALID")


def test_no_password_can_be_given_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = _run(["report", "--help"], capsys)
    assert code == 0 and "--p12" in out
    assert "password" not in out.lower().replace("stslab_signer_password", "")


def test_bad_arguments_are_one_line_naming_the_argument(
    run_dir: Path, dev_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cases: list[tuple[list[str], str]] = [
        (["report", str(tmp_path / "nowhere")], "stslab: error: RUN_DIR: "),
        (["report", str(run_dir), "--key", str(tmp_path / "k.pem")], "stslab: error: --cert: "),
        (["report", str(run_dir), "--out", str(tmp_path / "no-dir")], "stslab: error: --out: "),
        (["report", str(run_dir), "--p12", str(tmp_path / "none.p12")], "stslab: error: --p12: "),
    ]
    for argv, prefix in cases:
        code, _out, err = _run(argv, capsys)
        assert code == 2 and err.startswith(prefix) and err.count("\n") == 1, (argv, err)
    assert not list(run_dir.glob("report-*"))
