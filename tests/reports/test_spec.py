"""The test specification (``stslab pack doc``): the built-in catalogue as the document a lab
hands its customer — every scenario with its clauses, preconditions, steps and tolerances, the
pack's identity on every page, PDF/A-3b with the manifest attached — read back from the PDF."""

from __future__ import annotations

import hashlib
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest

from reports.spec import render_spec_html, render_spec_pdf
from stslab.cli import main
from stslab.pack import read_manifest, trusted_keys, verify_pack
from stslab.session import DEFAULT_PACK, DEV_KEYS, load_pack
from stslab.spec import describe_applies, describe_expect, pack_spec
from tests.stslab.test_pack import CREDIT_SCENARIO, NOT_APPLICABLE_SCENARIO, write_pack


def page_texts(pdf: bytes) -> list[str]:
    document = pdfium.PdfDocument(pdf)
    try:
        return [" ".join(page.get_textpage().get_text_range().split()) for page in document]
    finally:
        document.close()


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The built-in catalogue's specification, written once through the command line."""
    out = tmp_path_factory.mktemp("spec") / "spec.pdf"
    assert main(["pack", "doc", "--out", str(out)]) == 0
    pdf = out.read_bytes()
    return {"pdf": pdf, "pages": page_texts(pdf), "scenarios": load_pack(DEFAULT_PACK),
            "status": verify_pack(DEFAULT_PACK, trusted_keys(DEV_KEYS))}  # fmt: skip


def test_every_page_names_the_pack_its_version_and_hash_and_counts_the_pages(
    catalogue: dict,
) -> None:
    pages, status = catalogue["pages"], catalogue["status"]
    assert len(pages) > 10
    for n, text in enumerate(pages, 1):
        assert f"Test specification {status.pack_id} {status.version}" in text, n
        assert f"manifest SHA-256 {status.manifest_sha256[:16]}" in text, n
        assert f"Page {n} of {len(pages)}" in text
    end = f"End of test specification {status.pack_id} {status.version}"
    assert end in pages[-1] and all(end not in p for p in pages[:-1])


def test_the_pack_is_identified_with_its_standards_signature_and_files(catalogue: dict) -> None:
    text = " ".join(catalogue["pages"])
    status = catalogue["status"]
    assert status.manifest_sha256 in text
    for standard in status.standards:
        assert standard in text
    assert "valid, signed by development (development key)" in text and "untampered" in text
    joined = text.replace(" ", "")  # a hash may wrap in its cell
    for name, digest in status.files.items():
        assert f"{name}{digest}" in joined


def test_every_scenario_is_specified_with_clauses_preconditions_steps_and_tolerances(
    catalogue: dict,
) -> None:
    text = " ".join(catalogue["pages"])
    tolerances = 0
    for s in catalogue["scenarios"]:
        assert f"{s.id} — {s.title}" in text, s.id
        for clause in s.clauses:
            assert clause in text, (s.id, clause)
        applies = describe_applies(s.applies)
        assert (f"when {'; and '.join(applies)}" if applies else "to every meter") in text, s.id
        for step in s.steps:
            for line in describe_expect(step.expect) if getattr(step, "expect", None) else []:
                assert line in text, (s.id, line)
                tolerances += " ± " in line or " within " in line
    assert tolerances > 50
    # One by name: its precondition, its steps and its expectations as a reader sees them.
    assert ("STS-AUTH-004 — A class-1 token with one wrong digit fails the CRC" in text
            and "when the meter supports class-1 test(s) 3" in text)  # fmt: skip
    assert "credit change: 0 ± 0.05 kWh" in text
    # A hold taken from the declaration: the probe below the keypad's shortest press.
    assert "press digits:1, each held 0.5 × the declared keypad.min_hold_ms ms" in text


def test_the_coverage_says_which_clauses_each_scenario_tests(catalogue: dict) -> None:
    text = " ".join(catalogue["pages"])
    assert "Clauses tested" in text and "Declared parameters proven" in text


def test_the_specification_is_pdfa3_with_the_manifest_attached(catalogue: dict) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    root = PdfFileReader(io.BytesIO(catalogue["pdf"])).root
    xmp = root["/Metadata"].get_object().data.decode()
    assert 'pdfaid:part="3"' in xmp and 'pdfaid:conformance="B"' in xmp
    (intent,) = root["/OutputIntents"]
    assert str(intent.get_object()["/S"]) == "/GTS_PDFA1"
    files = [s.get_object() for s in root["/AF"]]  # WeasyPrint lists one file spec twice
    assert {str(f["/UF"]) for f in files} == {"manifest.yaml"}
    spec = files[0]
    assert str(spec["/UF"]) == "manifest.yaml" and str(spec["/AFRelationship"]) == "/Source"
    attached = spec["/EF"]["/F"].get_object().data
    _manifest, raw = read_manifest(DEFAULT_PACK)
    assert attached == raw
    assert hashlib.sha256(attached).hexdigest() == catalogue["status"].manifest_sha256


# --- the declared parameters a scenario proves ----------------------------------------------


def _small_spec(tmp_path: Path, proves: dict[str, list[str]]) -> tuple[dict, bytes]:
    pack = write_pack(
        tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO, "b.yaml": NOT_APPLICABLE_SCENARIO}
    )
    scenarios = [s.model_copy(update={"proves": proves[s.id]}) if s.id in proves else s
                 for s in load_pack(pack)]  # fmt: skip
    _manifest, raw = read_manifest(pack)
    return pack_spec(verify_pack(pack, {}), scenarios, "stslab test"), raw


def test_the_declared_parameters_each_scenario_proves_make_the_coverage_matrix(
    tmp_path: Path,
) -> None:
    spec, raw = _small_spec(tmp_path, {"T-CREDIT-001": ["tid_store_size", "credit_limit"],
                                       "T-SKIP-001": ["supported_tests"]})  # fmt: skip
    assert spec["coverage"]["parameters"] == [
        {"parameter": "credit_limit", "scenarios": ["T-CREDIT-001"]},
        {"parameter": "supported_tests", "scenarios": ["T-SKIP-001"]},
        {"parameter": "tid_store_size", "scenarios": ["T-CREDIT-001"]},
    ]
    text = " ".join(page_texts(render_spec_pdf(spec, raw, datetime.now(UTC))))
    assert "Declared parameter Scenarios that prove it credit_limit T-CREDIT-001" in text
    assert "Proves tid_store_size, credit_limit" in text
    assert "unsigned; not verified untampered" in text  # the pack's state, stated


def test_without_a_proves_list_the_matrix_says_so(tmp_path: Path) -> None:
    spec, _raw = _small_spec(tmp_path, {})
    html = render_spec_html(spec, datetime.now(UTC))
    assert "No scenario of this pack names the declared parameters it proves" in html
    assert "<script" not in html and "http://" not in html  # self-contained


def test_a_manifest_other_than_the_specified_one_is_refused(tmp_path: Path) -> None:
    spec, raw = _small_spec(tmp_path, {})
    with pytest.raises(ValueError, match="not the one the specification was made from"):
        render_spec_pdf(spec, raw + b"\n", datetime.now(UTC))


# --- the command line -----------------------------------------------------------------------


def test_pack_doc_writes_html_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pack = write_pack(tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO})
    out = tmp_path / "spec.html"
    assert main(["pack", "doc", str(pack), "--out", str(out)]) == 0
    html = out.read_text()
    assert "T-CREDIT-001 — A credit token is accepted" in html
    assert "credit change: 0.1 ± 0.05 kWh" in html
    assert "wrote" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--out", "spec.txt"], "--out: spec.txt: give a .pdf or .html file"),
        (["no-such-pack", "--out", "spec.pdf"], "DIRECTORY: no-such-pack is not a folder"),
        (["--out", "absent/spec.pdf"], "--out: absent is not a folder"),
    ],
)
def test_pack_doc_refuses_bad_arguments_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    args: list[str], says: str,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert main(["pack", "doc", *args]) == 2
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_pack_doc_names_a_scenario_that_does_not_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pack = write_pack(tmp_path / "pack", {"a.yaml": CREDIT_SCENARIO})
    (pack / "a.yaml").write_text(CREDIT_SCENARIO.replace("group:", "grope:"))
    out = tmp_path / "spec.pdf"
    assert main(["pack", "doc", str(pack), "--out", str(out)]) == 2
    assert "a.yaml" in capsys.readouterr().err
    assert not out.exists()
