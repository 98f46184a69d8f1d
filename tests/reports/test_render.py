"""The report's pages carry what ISO/IEC 17025 §7.8 asks of a test report, made from the
record alone: read back from the PDF (text and page images with pypdfium2, attachments and
images with pypdf) and checked item by item against the record of a real SimLab campaign.

The helpers here (:func:`campaign_run`, :func:`page_texts`, :func:`copy_run`) serve the
other report tests too.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any

import pypdfium2 as pdfium
import pytest
from PIL import Image
from pypdf import PdfReader

from reports import charts
from reports.render import (
    PRE_SUBMISSION_BANNER,
    ReportError,
    ReportMeta,
    Run,
    SignerInfo,
    load_run,
    render_html,
    render_pdf,
    report_id,
)
from reports.sign import LabSigner, development_signer
from stslab.pack import build_manifest
from stslab.session import Campaign, CampaignConfig

REPO = Path(__file__).resolve().parents[2]
JOB = REPO / "examples" / "job.yaml"

#: Port entries (timed by the line, quick at any clock speed). Deterministic outcomes: a
#: failing display check with its frame (FAIL), an expectation the reference meter contradicts
#: (ERROR of the pack), a scenario that does not apply (SKIP), a token that cannot be minted
#: (ERROR), a credit depletion and a power limit.
PACK = {
    "a-credit.yaml": """\
scenarios:
  - id: T-CR-001
    title: A credit token is accepted and its display read
    group: Credit
    clauses: ["IEC 62055-41 TransferCredit (REFERENCE §1, §9.5)"]
    carrier: port
    steps:
      - do: token
        token: {class: 0, subclass: 0, amount: 1.5}
        expect: {result: accept, credit: {change: 1.5}}
      - do: observe
        expect: {display_text: "XX.X"}
  - id: T-CR-002
    title: A fresh token expected as Used is an error of the pack
    group: Credit
    clauses: ["IEC 62055-41 TID check: Used (REFERENCE §9.2)"]
    carrier: port
    steps:
      - do: token
        token: {class: 0, subclass: 0, amount: 0.2}
        expect: {result: used}
  - id: T-NA-001
    title: A scenario for meters with MPPUL
    group: Management
    clauses: ["IEC 62055-41 SetMaximumPhasePowerUnbalanceLimit (REFERENCE §1)"]
    applies: {features: [mppul]}
    steps:
      - do: token
        token: {class: 2, subclass: 6, value: 100}
        expect: {result: accept}
  - id: T-ERR-001
    title: A token past the KEN of a key that never expires cannot be minted
    group: Management
    clauses: ["IEC 62055-41 KEN (REFERENCE §5)"]
    carrier: port
    steps:
      - do: token
        token: {class: 0, subclass: 0, amount: 0.1, tid: {past_ken: true}}
        expect: {result: key_expired}
""",
    "b-load.yaml": """\
scenarios:
  - id: T-LS-001
    title: Running out of credit opens the load switch
    group: LoadSwitch
    clauses: ["IEC 62055-41 with no credit the load switch opens (REFERENCE §9.5)"]
    carrier: port
    applies: {features: [reconnect_auto]}
    steps:
      - do: token
        token: {class: 2, subclass: 1, value: 0}
        expect: {result: accept, credit: {equals: 0}, relay: {state: open, within_s: 5}}
      - do: token
        token: {class: 0, subclass: 0, amount: 0.1}
        expect: {result: accept, relay: {state: closed, within_s: 5}}
      - do: load
        mode: CP
        setpoint: 1500
      - do: observe
        expect: {relay: {state: open, within_s: 300}}
      - do: observe
        expect: {credit: {equals: 0}}
      - do: load
        "on": false
      - do: token
        token: {class: 0, subclass: 0, amount: 1.0}
        expect: {result: accept, relay: {state: closed, within_s: 5}}
  - id: T-LS-003
    title: A load above the maximum power limit opens the load switch
    group: LoadSwitch
    clauses: ["IEC 62055-41 SetMaximumPowerLimit (REFERENCE §9.5)"]
    carrier: port
    setup_credit: 5.0
    steps:
      - do: token
        token: {class: 2, subclass: 0, value: 1000}
        expect: {result: accept, readout: {mpl: "1000"}}
      - do: load
        mode: CP
        setpoint: 1500
        expect: {relay: {state: open, within_s: 20}}
      - do: load
        "on": false
      - do: wait
        seconds: 70
      - do: observe
        expect: {relay: {state: closed, within_s: 60}}
      - do: token
        token: {class: 2, subclass: 0, value: 16000}
        expect: {result: accept}
""",
}

_CACHE: dict[str, Any] = {}


def campaign_run(factory: pytest.TempPathFactory) -> Path:
    """A finished run of :data:`PACK` against SimLab with the example job (made once per
    test session; copy it with :func:`copy_run` before changing anything in it)."""
    if "run" not in _CACHE:
        base = factory.mktemp("report-campaign")
        pack = base / "pack"
        pack.mkdir()
        for name, text in PACK.items():
            (pack / name).write_text(text)
        build_manifest(pack, "test-pack", "2.1.0", ["IEC 62055-41:2018", "IEC 62055-51:2007"],
                       title="report test pack")  # fmt: skip
        config = CampaignConfig(out=base / "runs", pack=pack, speed=100.0, job=str(JOB))
        with Campaign(config) as campaign:
            for scenario in campaign.pending():
                campaign.run_scenario(scenario)
            campaign.finish()
            _CACHE["run"] = campaign.run.directory
    return _CACHE["run"]


def copy_run(factory: pytest.TempPathFactory, tmp: Path) -> Path:
    """A private copy of the campaign run (same record, pack manifest found by its path)."""
    target = tmp / "run"
    shutil.copytree(campaign_run(factory), target)
    return target


def rewrite_record(run_dir: Path, change: Any) -> dict[str, Any]:
    """Apply ``change(record)`` to a run's record.json and return the new record."""
    path = run_dir / "record.json"
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record, indent=1, sort_keys=True))
    return record


def dev_signer(factory: pytest.TempPathFactory) -> LabSigner:
    """A development signer in a session folder (never the user's ~/.stslab)."""
    if "signer" not in _CACHE:
        _CACHE["signer"] = development_signer(factory.mktemp("dev-signer") / "dev")
    return _CACHE["signer"]


def dev_signer_info(factory: pytest.TempPathFactory) -> SignerInfo:
    return dev_signer(factory).info()


def meta_for(record: dict[str, Any], revision: int = 1, **extra: Any) -> ReportMeta:
    return ReportMeta(report_id(record, revision), revision, datetime.now(UTC), **extra)


def page_texts(pdf: bytes) -> list[str]:
    """The text of every page in the order it is drawn (a table row by row, each row cell by
    cell), whitespace collapsed."""
    document = pdfium.PdfDocument(pdf)
    try:
        return [" ".join(page.get_textpage().get_text_range().split()) for page in document]
    finally:
        document.close()


def page_images(pdf: bytes, pages: int, dpi: int = 30) -> list[Image.Image]:
    """The first ``pages`` pages rendered to pictures."""
    document = pdfium.PdfDocument(pdf)
    try:
        return [document[n].render(scale=dpi / 72).to_pil() for n in range(pages)]
    finally:
        document.close()


def unsigned_report(factory: pytest.TempPathFactory) -> tuple[Run, bytes]:
    """The campaign's report rendered once per session (pre-submission, development signer)."""
    if "pdf" not in _CACHE:
        run = load_run(campaign_run(factory))
        _CACHE["pdf"] = (run, render_pdf(run, meta_for(run.record), dev_signer_info(factory)))
    return _CACHE["pdf"]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run, pdf = unsigned_report(tmp_path_factory)
    return {"run": run, "record": run.record, "pdf": pdf, "pages": page_texts(pdf),
            "dir": campaign_run(tmp_path_factory)}  # fmt: skip


# --- every page -----------------------------------------------------------------------------


def test_every_page_names_the_report_its_page_and_the_page_count(report: dict) -> None:
    pages = report["pages"]
    rid = report_id(report["record"], 1)
    assert len(pages) >= 3
    for n, text in enumerate(pages, 1):
        assert f"Report {rid}" in text, f"page {n} lacks the report id"
        assert f"Page {n} of {len(pages)}" in text
    assert f"End of report {rid}" in pages[-1]
    assert all(f"End of report {rid}" not in p for p in pages[:-1])


def test_a_pre_submission_report_says_so_on_every_page(report: dict) -> None:
    assert report["record"]["mode"] == "pre-submission"
    for n, text in enumerate(report["pages"], 1):
        assert PRE_SUBMISSION_BANNER in text, f"page {n}"
        assert "signed with a development certificate".lower() in text.lower(), f"page {n}"
    assert report["pages"][0].count("Pre-submission test report") >= 1


# --- the items of ISO/IEC 17025 §7.8 --------------------------------------------------------


def test_the_report_carries_lab_customer_item_dates_and_method(report: dict) -> None:
    r, text = report["record"], " ".join(report["pages"])
    job, dut, pack = r["job"], r["dut"], r["pack"]
    expected = [
        job["lab"]["name"], job["lab"]["address"], job["lab"]["accreditation"],
        job["customer"]["name"], job["customer"]["address"], job["reference"],
        job["item"]["identification"], job["item"]["condition"], job["receipt_date"],
        dut["make"], dut["model"], dut["serial"], dut["firmware"], dut["pan"],
        f"KRN {dut['krn']}, KT {dut['kt']}, TI {dut['ti']}", dut["key_fingerprint"],
        pack["id"], f"version {pack['version']}", pack["manifest_sha256"], *pack["standards"],
        r["started"][:10], r["decision_rule"], job["operator"],
        "Temperature 23.0 °C", "relative humidity 45.0 %",
        job["signer"]["name"], job["signer"]["role"],
        "The results relate only to the item tested",
        "shall not be reproduced except in full",
    ]  # fmt: skip
    missing = [e for e in expected if e not in text]
    assert not missing
    assert f"Date of issue {datetime.now(UTC):%Y-%m-%d}" in text


def test_a_pan_taken_with_a_wrong_check_digit_is_stated_with_the_item(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    run_dir = copy_run(tmp_path_factory, tmp_path)
    sound = load_run(run_dir)
    assert "PAN check digit" not in render_html(sound, meta_for(sound.record), None)
    note = "relaxed (PAN check digit 2, expected 4; DRN check digit 1, expected 3)"

    def sample(record: dict[str, Any]) -> None:  # what the session records for such a meter
        record["dut"].update(pan="600727123456789012", pan_check_digit=note)

    record = rewrite_record(run_dir, sample)
    html = render_html(load_run(run_dir), meta_for(record), None)
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
    assert (f"PAN 600727123456789012 PAN check digit {note}: the meter's PAN is used as given, "
            "its keys derived from these 18 digits") in text  # fmt: skip


def test_instruments_are_named_with_identity_and_calibration_status(report: dict) -> None:
    text = " ".join(report["pages"])
    for role, inst in report["record"]["bench"]["instruments"].items():
        assert inst["identity"].split()[0] in text, role
        assert inst["calibration_status"] in text
        if inst["calibration"]:
            assert inst["calibration"]["certificate"] in text
            assert inst["calibration"]["due"] in text


def test_every_scenario_shows_clauses_expectations_observations_and_verdicts(
    report: dict,
) -> None:
    text = " ".join(report["pages"])
    checks = 0
    for s in report["record"]["scenarios"]:
        assert f"{s['id']} — {s['title']} {s['outcome']}" in text
        for clause in s["clauses"]:
            assert clause in text
        if s["outcome"] == "SKIP":
            assert f"Not applicable: {s['skip_reason']}" in text
        for step in s["steps"]:
            if step["error"]:
                assert f"ERROR: {step['error']}" in text
            for c in step["checks"]:
                unit = " kWh" if c["unit"] == "kWh" else ""  # numeric values carry their unit
                observed = c["observed"] + unit
                if c.get("uncertainty"):  # a measured value: value ± U unit
                    u = f" ± {c['uncertainty']['U']}"
                    observed = (c["observed"].replace(" s", u + " s") if c["unit"] == "s"
                                else c["observed"] + u + unit)  # fmt: skip
                cells = [c["name"], c["expected"] + unit, observed, c["outcome"]]
                row = " ".join(cells)  # the row's cells one after the other
                assert row in text, cells
                checks += 1
    assert checks >= 15


def test_the_report_lists_each_declared_parameter_with_its_verdict(report: dict) -> None:
    text = " ".join(" ".join(page.split()) for page in report["pages"])
    assert "Declared parameters verified" in text
    rows = report["record"]["declared_parameters"]
    assert len(rows) >= 20
    packed = "".join(text.split())  # a long name may wrap in its column
    for row in rows:
        assert row["parameter"] in packed
    # this small pack proves none of them: each says so, none is a plain PASS
    assert {r["verdict"] for r in rows} <= {"NOT COVERED", "N/A"}
    assert "NOT COVERED" in text and "no scenario of the pack proves it" in text


def test_observations_carry_their_units(report: dict) -> None:
    text = " ".join(report["pages"])
    # Each measured value with its expanded uncertainty: two readings of a 0.001 kWh register.
    assert "credit change 1.5 ± 0.05 kWh 1.500 ± 0.00082 kWh PASS" in text
    assert re.search(r"load switch open within 20\.0 s open by \d+\.\d\d ± [\d.]+ s PASS", text)
    assert "credit before: 1.000 kWh" in text  # the setup's top-up reading (no budget: not judged)


def test_no_key_material_reaches_the_report(report: dict) -> None:
    from sts.dkga import Dkga, KeyAttributes, derive_decoder_key
    from sts.identity import Pan

    vending = "abababababababab"  # the default SimLab meter's (public) vending key
    attrs = KeyAttributes(pan=Pan.parse(report["record"]["dut"]["pan"]), sgc=123456, ti=1,
                          krn=1, kt=2)  # fmt: skip
    decoder = derive_decoder_key(bytes.fromhex(vending), Dkga.DKGA02, attrs).value.hex()
    run: Run = report["run"]
    haystacks = [" ".join(report["pages"]).lower(), run.record_bytes.decode().lower(),
                 render_html(run, meta_for(run.record), None).lower()]  # fmt: skip
    for hay in haystacks:
        assert vending not in hay
        assert decoder not in hay
    assert report["record"]["dut"]["key_fingerprint"] in haystacks[0]


# --- attachments and PDF/A ------------------------------------------------------------------


def test_the_record_and_the_manifest_are_attached_byte_for_byte(report: dict) -> None:
    attached = PdfReader(io.BytesIO(report["pdf"])).attachments
    assert sorted(attached) == ["manifest.yaml", "record.json"]
    assert attached["record.json"] == [(report["dir"] / "record.json").read_bytes()]
    pack = Path(report["record"]["config"]["pack"])
    assert attached["manifest.yaml"] == [(pack / "manifest.yaml").read_bytes()]


def test_the_attachments_are_pdfa3_associated_files(report: dict) -> None:
    from pyhanko.pdf_utils.reader import PdfFileReader

    root = PdfFileReader(io.BytesIO(report["pdf"])).root
    found = {}
    for spec in root["/AF"]:
        spec = spec.get_object()
        found[str(spec["/UF"])] = str(spec["/AFRelationship"])
        stream = spec["/EF"]["/F"].get_object()
        assert str(stream["/Subtype"]) in ("/application/json", "/application/yaml",
                                           "/application/x-yaml", "/text/yaml",
                                           "/application/octet-stream")  # fmt: skip
    assert found == {"record.json": "/Data", "manifest.yaml": "/Source"}
    xmp = root["/Metadata"].get_object().data.decode()
    assert 'pdfaid:part="3"' in xmp and 'pdfaid:conformance="B"' in xmp
    (intent,) = root["/OutputIntents"]
    assert str(intent.get_object()["/S"]) == "/GTS_PDFA1"


def test_the_pages_state_the_hashes_that_bind_them_to_the_attachments(report: dict) -> None:
    run: Run = report["run"]
    text = " ".join(report["pages"])
    assert f"SHA-256 {run.record_sha256}" in text
    assert f"SHA-256 {run.manifest_sha256}" in text
    assert (
        run.record_sha256
        == hashlib.sha256((report["dir"] / "record.json").read_bytes()).hexdigest()
    )


# --- pictures -------------------------------------------------------------------------------


def test_display_frames_that_decided_a_display_check_are_embedded_by_hash(report: dict) -> None:
    text = " ".join(report["pages"])
    decided = set()
    for s in report["record"]["scenarios"]:
        for step in s["steps"]:
            for c in step["checks"]:
                if c["name"] != "display":
                    continue
                frames = [e for e in step["evidence"] if e["kind"] == "display_frame"]
                assert frames, step
                # the last frame showing what was observed decides (the display may change
                # between two reads)
                shown = [f for f in frames if f["text"] == c["observed"]] or frames
                decided.add(shown[-1]["sha256"])
    assert decided
    joined = text.replace(" ", "")  # a hash wraps inside a thumbnail's caption
    for digest in decided:
        assert f"SHA-256{digest}" in joined
    assert text.count("decided the display check") == len(decided)
    sizes = [image.image.size for page in PdfReader(io.BytesIO(report["pdf"])).pages
             for image in page.images]  # fmt: skip
    assert len(sizes) >= len(decided)
    assert set(sizes) == {(640, 240)}  # the camera's frames, as taken


def test_an_evidence_frame_that_does_not_match_its_hash_is_refused(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    run_dir = copy_run(tmp_path_factory, tmp_path)
    frame = sorted((run_dir / "evidence").glob("*.png"))[0]
    frame.write_bytes(frame.read_bytes()[:-1] + b"\x00")
    with pytest.raises(ReportError, match=rf"evidence .*{frame.name}: SHA-256 [0-9a-f]{{64}} is "
                                          rf"not the record's {frame.stem}"):  # fmt: skip
        load_run(run_dir)
    frame.unlink()
    with pytest.raises(ReportError, match=rf"evidence .*{frame.name}: cannot read"):
        load_run(run_dir)


def test_load_scenarios_get_a_timeline_and_no_other(report: dict) -> None:
    text = " ".join(report["pages"])
    for s in report["record"]["scenarios"]:
        has_load = any(st["kind"] == "load" for st in s["steps"])
        assert charts.wants_timeline(s) is has_load
        assert (f"Timeline of {s['id']} on the bench clock" in text) is has_load
    (depletion,) = [s for s in report["record"]["scenarios"] if s["id"] == "T-LS-001"]
    tl = charts.timeline(depletion)
    assert [state for _, state in tl.relay] == ["open", "closed", "open", "closed"]
    assert 1500.0 in [w for _, w in tl.power] and tl.power[-1][1] == 0.0
    assert tl.end_s == pytest.approx(sum(st["modelled_s"] for st in depletion["steps"]))
    opened = tl.relay[2][0]
    loaded = next(t for t, w in tl.power if w == 1500.0)
    assert loaded < opened <= tl.end_s  # the switch opened while the load ran


def test_the_verdict_chart_counts_what_the_record_counts(report: dict) -> None:
    record = report["record"]
    groups = charts.group_counts(record)
    assert sum(sum(c.values()) for c in groups.values()) == record["summary"]["scenarios"]
    for outcome in charts.OUTCOMES:
        assert sum(c[outcome] for c in groups.values()) == record["summary"][outcome]
    text = " ".join(report["pages"])
    assert "Figure 1. Scenario verdicts per clause group." in text
    for group, counts in groups.items():
        summary = " · ".join(f"{counts[o]} {o.lower()}" for o in charts.OUTCOMES if counts[o])
        assert f"{group} " in text and summary in text


def test_the_first_pages_render_to_images(report: dict) -> None:
    for im in page_images(report["pdf"], 2):
        assert im.height / im.width == pytest.approx(297 / 210, rel=0.02)  # A4
        gray = im.convert("L")
        assert gray.getextrema()[0] < 80  # there is dark ink on the page


# --- modes and what the record says ---------------------------------------------------------


def _accredited(record: dict[str, Any]) -> None:
    record["mode"] = "accredited"
    record["bench"]["simulated"] = False
    record["pack"]["untampered"] = True


LAB_SIGNER = SignerInfo("B. Signatory", "Example STS Test Laboratory", "ab" * 32, False,
                        "Example Lab CA")  # fmt: skip


def test_an_accredited_report_has_no_pre_submission_marks(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    # The lab's name goes into every page header through the style sheet: a hostile one
    # must show up literally and change nothing else.
    run_dir = copy_run(tmp_path_factory, tmp_path)
    evil = 'Lab "X"; } @page { @top-left { content: "forged" } } </style><script>x()</script>'

    def change(record: dict[str, Any]) -> None:
        _accredited(record)
        record["job"]["lab"]["name"] = evil

    record = rewrite_record(run_dir, change)
    run = load_run(run_dir)
    assert "<script>" not in render_html(run, meta_for(record), LAB_SIGNER)
    pages = page_texts(render_pdf(run, meta_for(record), LAB_SIGNER))
    text = " ".join(pages)
    assert "PRE-SUBMISSION" not in text.upper()
    assert "development certificate" not in text
    assert "Certification test report — STS prepayment electricity meter" in pages[0]
    name = evil.replace(" ", "")
    for n, page in enumerate(pages, 1):
        assert f"Report {report_id(record, 1)}" in page and f"Page {n} of {len(pages)}" in page
        squeezed = page.replace(" ", "")
        assert name in squeezed  # the header of every page
        assert squeezed.count("forged") == squeezed.count(name)


@pytest.mark.parametrize(
    ("change", "signer", "reason"),
    [
        (lambda r: None, LAB_SIGNER, "the bench was simulated"),
        (lambda r: r["pack"].update(untampered=False), LAB_SIGNER, "pack was not verified"),
        (lambda r: r["bench"]["instruments"]["analyzer"].update(
            calibration_status="calibration overdue"), LAB_SIGNER,
         "instrument analyzer: calibration overdue"),
        (lambda r: None, None, "development certificate"),
    ],
)  # fmt: skip
def test_an_accredited_report_needs_a_real_bench_a_sound_pack_and_the_lab_certificate(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, change: Any,
    signer: SignerInfo | None, reason: str,
) -> None:  # fmt: skip
    run_dir = copy_run(tmp_path_factory, tmp_path)

    def both(record: dict[str, Any]) -> None:
        _accredited(record)
        if "simulated" in reason:
            record["bench"]["simulated"] = True
        change(record)

    record = rewrite_record(run_dir, both)
    run = load_run(run_dir)
    with pytest.raises(ReportError, match=reason):
        render_html(run, meta_for(record), signer or dev_signer_info(tmp_path_factory))


def test_deviations_interruptions_and_resumes_are_reported(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    run_dir = copy_run(tmp_path_factory, tmp_path)

    def interrupted(record: dict[str, Any]) -> None:
        record["deviations"] = ["instrument analyzer: calibration due 2026-01-01 (overdue)"]
        record["interruptions"] = [{"at": "2026-11-20T10:00:00+00:00", "during": "T-LS-001",
                                    "resumed_at": "2026-11-20T10:05:00+00:00"}]  # fmt: skip
        record["resumes"] = [{"at": "2026-11-20T10:05:00+00:00", "completed": ["T-CR-001"]}]
        record["complete"] = False

    record = rewrite_record(run_dir, interrupted)
    text = " ".join(page_texts(render_pdf(load_run(run_dir), meta_for(record),
                                          dev_signer_info(tmp_path_factory))))  # fmt: skip
    assert "The campaign is incomplete." in text
    assert "Deviation: instrument analyzer: calibration due 2026-01-01 (overdue)" in text
    assert ("Interruption during scenario T-LS-001, last journal record 2026-11-20T10:00:00+00:00; "
            "resumed 2026-11-20T10:05:00+00:00") in text  # fmt: skip
    assert (
        "Resumed at 2026-11-20T10:05:00+00:00 with 1 scenario(s) already complete (T-CR-001)"
        in text
    )
    assert "without deviation" not in text


def test_an_amended_report_names_what_it_supersedes_and_why(report: dict) -> None:
    run: Run = report["run"]
    old = report_id(run.record, 1)
    meta = meta_for(run.record, 2, supersedes=old, amendment_reason="customer address corrected")
    html = render_html(run, meta, None)
    text = " ".join(re.sub(r"<[^>]+>", " ", html).split())
    pattern = rf"This report \(revision 2\) supersedes report {old}\s*, which is withdrawn\."
    assert re.search(pattern, text)
    assert "Reason for the amendment: customer address corrected" in text


def test_the_browser_view_is_self_contained(report: dict) -> None:
    run: Run = report["run"]
    html = render_html(run, meta_for(run.record), None)
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)=["']?(https?:|file:|//)""", html)
    assert html.count('src="data:image/png;base64,') >= 1
    assert PRE_SUBMISSION_BANNER in html
    assert "The signed PDF is the report." in html


# --- what cannot make a report --------------------------------------------------------------


def test_a_run_without_a_usable_record_or_manifest_is_refused(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    run_dir = copy_run(tmp_path_factory, tmp_path)
    record_path = run_dir / "record.json"
    good = record_path.read_bytes()
    record_path.unlink()
    with pytest.raises(ReportError, match=r"no record .*stslab certify --resume"):
        load_run(run_dir)
    record_path.write_bytes(b"{not json")
    with pytest.raises(ReportError, match="not JSON"):
        load_run(run_dir)
    record_path.write_text(json.dumps({"schema": "other/1"}))
    with pytest.raises(ReportError, match="not a stslab record"):
        load_run(run_dir)
    record = json.loads(good)
    record["pack"]["manifest_sha256"] = "0" * 64
    record_path.write_text(json.dumps(record))
    with pytest.raises(ReportError, match=f"no pack manifest with SHA-256 {'0' * 64}.*--pack"):
        load_run(run_dir)


def test_the_manifest_is_found_in_the_run_folder_or_rebuilt_when_the_pack_moved(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    run_dir = copy_run(tmp_path_factory, tmp_path)
    pack = Path(json.loads((run_dir / "record.json").read_text())["config"]["pack"])
    manifest = (pack / "manifest.yaml").read_bytes()
    rewrite_record(run_dir, lambda r: r["config"].update(pack=str(tmp_path / "gone")))
    run = load_run(run_dir)  # rebuilt from the record: byte-identical or refused
    assert run.manifest_bytes == manifest
    assert run.manifest_source.startswith("rebuilt from the record")
    (run_dir / "manifest.yaml").write_bytes(manifest)
    assert load_run(run_dir).manifest_source == str(run_dir / "manifest.yaml")


def test_reports_read_records_and_import_nothing_of_the_harness_or_the_bench(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Rendering too (WeasyPrint imported, a PDF made), not only importing the modules.
    run_dir = campaign_run(tmp_path_factory)
    code = textwrap.dedent("""\
        import sys
        from datetime import UTC, datetime
        import reports.charts, reports.junit, reports.sign, reports.verify
        from reports.render import ReportMeta, load_run, render_pdf
        render_pdf(load_run(sys.argv[1]), ReportMeta("STS-x-R1", 1, datetime.now(UTC)), None)
        above = ("simlab", "instruments", "stslab", "fixtures")
        bad = sorted(m for m in sys.modules if m.split(".")[0] in above)
        print(bad)
        sys.exit(1 if bad else 0)
    """)
    done = subprocess.run([sys.executable, "-c", code, str(run_dir)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("action", "described"),
    [
        ({"seconds": 45}, "wait 45 s"),
        ({"energy_wh": 100, "timeout_s": 600}, "wait for 100 Wh (at most 600 s)"),
        ({"relay": "open", "timeout_s": 60}, "wait until the load switch is open (at most 60 s)"),
        (
            {"display": "credit", "timeout_s": 600},
            "wait until the display shows the credit (at most 600 s)",
        ),
    ],
)
def test_every_kind_of_wait_is_described_as_what_it_waited_for(
    action: dict[str, Any], described: str
) -> None:
    from reports.render import describe_action

    full = {"seconds": None, "energy_wh": None, "relay": None, "display": None, **action}
    assert describe_action({"kind": "wait", "action": full}) == described


# --- measurement uncertainty and the decision rule ------------------------------------------


def test_the_report_states_the_decision_rule_the_risk_and_the_uncertainty_budgets(
    report: dict,
) -> None:
    text = " ".join(report["pages"])
    assert "Simple acceptance (ILAC-G8:09/2019 §4.2.1, no guard band)" in text
    assert "Risk of a false accept: not limited by the rule" in text
    # SimLab's certificates state their uncertainties, shown with the instruments.
    assert "U (k = 2): voltage 0.05 % + 0.02 V; current 0.05 % + 0.5 mA" in text
    # The uncertainty table: the budget of the largest U per quantity, component by component.
    assert "Measurement uncertainty" in text
    assert re.search(r"credit change \d+ 0\.00082 kWh resolution of the credit register before: "
                     r"0\.001 kWh, rectangular", text)  # fmt: skip
    assert "calibration of the analyzer (SIMLAB-ANALYZER): U = 5 ms (k = 2), normal" in text
    assert "sampling interval of the load-switch watch (analyzer samples)" in text


def test_a_result_in_the_guard_band_is_reported_as_such(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from stslab.uncertainty import DecisionRule, decision_record

    run_dir = copy_run(tmp_path_factory, tmp_path)

    def guarded(record: dict[str, Any]) -> None:
        # What a guarded run records for a credit change inside its tolerance but within U.
        record["decision"] = decision_record(DecisionRule.GUARDED)
        record["decision_rule"] = record["decision"]["statement"]
        scenario = next(s for s in record["scenarios"] if s["id"] == "T-CR-001")
        step = next(st for st in scenario["steps"] if st["kind"] == "token")
        check = next(c for c in step["checks"] if c["name"] == "credit change")
        check.update(
            outcome="FAIL",
            guard_band=True,
            detail="inside the tolerance but within U = 0.00082 kWh of its limit",
        )
        record["summary"]["guard_band"] = 1  # fmt: skip

    record = rewrite_record(run_dir, guarded)
    text = " ".join(page_texts(render_pdf(load_run(run_dir), meta_for(record), None)))
    assert "Guarded acceptance (ILAC-G8:09/2019 §4.2.2, guard band w = U)" in text
    assert "at most about 2.5 %" in text
    assert "1 result(s) inside the tolerance but within their expanded uncertainty" in text
    assert re.search(r"1\.500 ± 0\.00082 kWh \(inside the tolerance but within U = 0\.00082 kWh "
                     r"of its limit\) FAIL guard band", text)  # fmt: skip


def test_the_side_effect_table_groups_what_was_not_compared_by_why() -> None:
    from reports.render import side_effect_rows

    why = "a key came while class-1 test displays showed"
    step = {
        "kind": "token",
        "checks": [],
        "observations": {
            "twin": {
                "compared": ["result", "krn"],
                "not_compared": {"display": why, "annunciator.kwh": why, "mpl": "firmware 2"},
            }
        },
    }
    [row] = side_effect_rows({"steps": [step]})
    assert row["compared"] == 2
    assert row["not_compared"] == f"annunciator.kwh, display ({why}); mpl (firmware 2)"
