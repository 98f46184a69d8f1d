"""Signing and verifying reports: a PAdES signature pyHanko's own validator accepts, a
development certificate made once and marked, the lab's PKCS#12 or PEM key, a time stamp
from an RFC 3161 authority on 127.0.0.1 (B-T), and a verifier that fails on any changed
byte, on attachments the pages were not made from, and on an untrusted signer.

:func:`make_ca`, :func:`issue` and :func:`write_p12` (a small test PKI) serve the command
line tests too.
"""

from __future__ import annotations

import http.server
import io
import random
import re
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pypdf import PdfReader

from reports import render
from reports.render import load_run, render_pdf
from reports.sign import (
    DEV_CA_FILE,
    DEV_CERT_FILE,
    DEV_KEY_FILE,
    DEV_RETIRED_CA_FILE,
    DEVELOPMENT_OU,
    LabSigner,
    SigningError,
    development_signer,
    is_development,
    load_pem,
    load_pkcs12,
    sign_pdf,
)
from reports.verify import verify_report
from tests.reports.test_render import (
    _accredited,
    copy_run,
    dev_signer,
    meta_for,
    page_texts,
    rewrite_record,
    unsigned_report,
)

# --- a small test PKI -------------------------------------------------------------------------


def make_ca(name: str) -> tuple[Any, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                       critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return key, cert


def issue(
    ca: tuple[Any, x509.Certificate], name: str, *, tsa: bool = False,
    not_after: datetime | None = None, ec_key: bool = False, unit: str | None = None,
) -> tuple[Any, x509.Certificate]:  # fmt: skip
    """A certificate issued by ``ca``: a signer or a time-stamp authority, RSA unless
    ``ec_key`` (EC P-256), its subject's organisational unit ``unit`` if given."""
    ca_key, ca_cert = ca
    key = (
        ec.generate_private_key(ec.SECP256R1()) if ec_key else rsa.generate_private_key(65537, 2048)
    )
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                                 x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example Lab"),
                                 *([x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit)]
                                   if unit else [])]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=2))
        .not_valid_after(not_after or now + timedelta(days=90))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )  # fmt: skip
    if tsa:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, True, False, False, False, False, False, False, False),
            critical=True)  # fmt: skip
    return key, builder.sign(ca_key, hashes.SHA256())


def pem(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def write_p12(path: Path, key: Any, cert: x509.Certificate, ca: x509.Certificate,
              password: bytes | None) -> Path:  # fmt: skip
    enc = (serialization.BestAvailableEncryption(password) if password
           else serialization.NoEncryption())  # fmt: skip
    path.write_bytes(pkcs12.serialize_key_and_certificates(b"lab", key, cert, [ca], enc))
    return path


@pytest.fixture(scope="module")
def lab_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("lab-pki")
    ca = make_ca("Example Lab CA")
    key, cert = issue(ca, "B. Signatory")
    p12 = write_p12(base / "lab.p12", key, cert, ca[1], b"s3cret")
    return {"ca": ca, "key": key, "cert": cert, "ca_pem": pem(ca[1], base / "ca.pem"),
            "p12": p12, "dir": base}  # fmt: skip


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    run, pdf = unsigned_report(tmp_path_factory)
    signer = dev_signer(tmp_path_factory)
    data = sign_pdf(pdf, signer, signer_name="B. Signatory", reason="test report",
                    location="Pretoria")  # fmt: skip
    assert signer.trust_anchor is not None
    return {"run": run, "pdf": data, "signer": signer, "dev_dir": signer.trust_anchor.parent}


# --- the development certificate ----------------------------------------------------------


def test_the_development_certificate_is_made_once_and_says_what_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "dev"
    first = development_signer(folder)
    assert sorted(p.name for p in folder.iterdir()) == sorted([DEV_CA_FILE, DEV_CERT_FILE,
                                                               DEV_KEY_FILE])  # fmt: skip
    assert stat.S_IMODE((folder / DEV_KEY_FILE).stat().st_mode) == 0o600
    assert first.development and is_development(first.certificate)
    assert first.certificate.public_key.algorithm == "rsa"  # keeps the report PDF/A-3b
    assert first.certificate.subject.native["organizational_unit_name"] == DEVELOPMENT_OU
    assert first.info().development
    again = development_signer(folder)
    assert again.info().cert_sha256 == first.info().cert_sha256
    # the CA's private key is not kept: only the CA certificate, for verifying
    assert b"PRIVATE KEY" not in (folder / DEV_CA_FILE).read_bytes()


def test_two_first_uses_at_once_make_one_certificate(tmp_path: Path) -> None:
    folder = tmp_path / "dev"
    results: list[str] = []
    errors: list[BaseException] = []

    def use() -> None:
        try:
            results.append(development_signer(folder).info().cert_sha256)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=use, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors and len(results) == 4 and len(set(results)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev"]  # no scratch folder left


def test_the_dev_signer_folder_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STSLAB_DEV_SIGNER_DIR", str(tmp_path / "env-dev"))
    development_signer()
    assert (tmp_path / "env-dev" / DEV_CERT_FILE).exists()


def test_an_older_ec_development_certificate_is_replaced_and_what_it_signed_still_verifies(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    # The folder an older stslab made (EC P-256), and a report it signed (then PDF 2.0).
    folder = tmp_path / "dev"
    folder.mkdir()
    ca = make_ca("stslab development CA 0ld")
    key, cert = issue(ca, "stslab development signer 0ld", ec_key=True, unit=DEVELOPMENT_OU)
    pem(ca[1], folder / DEV_CA_FILE)
    pem(cert, folder / DEV_CERT_FILE)
    (folder / DEV_KEY_FILE).write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))  # fmt: skip
    old = _by_hand(key, cert, development=True)
    run = unsigned_report(tmp_path_factory)[0]
    out = io.BytesIO()
    signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(render_pdf(run, meta_for(run.record),
                                                                    old.info()))),
                     signers.PdfSignatureMetadata(field_name="LabSignature",
                                                  subfilter=fields.SigSeedSubFilter.PADES,
                                                  md_algorithm="sha256"),
                     signer=old.signer, output=out)  # fmt: skip
    old_report = out.getvalue()
    assert verify_report(old_report, dev_dir=folder).ok

    renewed = development_signer(folder)
    assert renewed.certificate.public_key.algorithm == "rsa" and renewed.development
    assert renewed.info().cert_sha256 != old.info().cert_sha256
    assert stat.S_IMODE((folder / DEV_KEY_FILE).stat().st_mode) == 0o600
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [DEV_CA_FILE, DEV_CERT_FILE, DEV_KEY_FILE, DEV_RETIRED_CA_FILE])  # fmt: skip
    v = verify_report(old_report, dev_dir=folder)  # the retired CA is still trusted
    assert v.ok, v.problems
    assert v.signer == "stslab development signer 0ld" and v.development
    assert development_signer(folder).info().cert_sha256 == renewed.info().cert_sha256


# --- the signature ----------------------------------------------------------------------------


def test_pyhanko_validates_the_signature_on_its_own(signed: dict[str, Any]) -> None:
    from pyhanko.keys import load_cert_from_pemder
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.status import ModificationLevel, SignatureCoverageLevel
    from pyhanko_certvalidator import ValidationContext

    reader = PdfFileReader(io.BytesIO(signed["pdf"]))
    (sig,) = reader.embedded_signatures
    assert str(sig.sig_object["/SubFilter"]) == "/ETSI.CAdES.detached"  # PAdES
    anchor = load_cert_from_pemder(str(signed["dev_dir"] / DEV_CA_FILE))
    status = validate_pdf_signature(sig, ValidationContext(trust_roots=[anchor]))
    assert status.intact and status.valid and status.trusted and status.bottom_line
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert status.modification_level == ModificationLevel.NONE
    from pyhanko.sign.fields import MDPPerm

    assert status.docmdp_ok
    assert sig.docmdp_level == MDPPerm.NO_CHANGES  # a certification signature
    assert abs(status.signer_reported_dt - datetime.now(UTC)) < timedelta(minutes=10)
    fingerprint = signed["signer"].info().cert_sha256
    assert fingerprint in " ".join(page_texts(signed["pdf"])).replace(" ", "")


#: The PDF version each PDF/A part is built on (ISO 19005-1 to -4).
PDFA_PDF_VERSION = {"1": (1, 4), "2": (1, 7), "3": (1, 7), "4": (2, 0)}
#: Annotation flags (ISO 32000-1 §12.5.3): PDF/A wants Print set and these clear.
PRINT, HIDDEN_FLAGS = 4, 1 | 2 | 32  # Invisible, Hidden, NoView


def _version(name: Any) -> tuple[int, int]:
    major, minor = str(name).lstrip("/").split(".")
    return int(major), int(minor)


def _id_bytes(value: Any) -> bytes:
    return value.original_bytes if hasattr(value, "original_bytes") else bytes(value)


def _fonts(resources: Any) -> list[Any]:
    """Every font a page's resources use, in form XObjects too."""
    found = [font.get_object() for font in (resources.get("/Font") or {}).values()]
    for xobject in (resources.get("/XObject") or {}).values():
        xobject = xobject.get_object()
        if xobject.get("/Subtype") == "/Form" and "/Resources" in xobject:
            found += _fonts(xobject["/Resources"].get_object())
    return found


def test_the_signed_report_is_still_pdfa_3b(
    signed: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """What PDF/A-3b asks that can be checked without a PDF/A validator, on the signed file
    (the signature is an incremental update that must not undo any of it)."""
    pdf = signed["pdf"]
    reader = PdfReader(io.BytesIO(pdf))
    root = reader.trailer["/Root"]
    xmp = root["/Metadata"].get_object().get_data().decode()
    part = re.search(r'pdfaid:part(?:="|>)(\d)', xmp)
    conformance = re.search(r'pdfaid:conformance(?:="|>)([A-Za-z])', xmp)
    assert part and conformance and (part[1], conformance[1]) == ("3", "B")
    # The PDF version: header, catalogue and every declared extension within PDF/A-3's 1.7.
    allowed = PDFA_PDF_VERSION[part[1]]
    header = re.match(rb"%PDF-(\d\.\d)", pdf)
    assert header and _version(header[1].decode()) == allowed
    if "/Version" in root:
        assert _version(root["/Version"]) == allowed
    for prefix, extensions in (root.get("/Extensions") or {}).items():
        for ext in extensions if isinstance(extensions, list) else [extensions]:
            assert _version(ext.get_object()["/BaseVersion"]) <= allowed, prefix
    # Information dictionary and XMP agree on the producer pyHanko wrote.
    producer = re.search(r'pdf:Producer="([^"]*)"', xmp) or re.search(
        r"<pdf:Producer>([^<]*)</pdf:Producer>", xmp)  # fmt: skip
    assert producer and str(reader.trailer["/Info"]["/Producer"]) == producer[1]
    (intent,) = root["/OutputIntents"]
    intent = intent.get_object()
    assert intent["/S"] == "/GTS_PDFA1" and "/DestOutputProfile" in intent
    # Every font on every page embedded (Type 3 glyphs are drawn by the page itself).
    descriptors = 0
    for n, page in enumerate(reader.pages, 1):
        for font in _fonts(page["/Resources"].get_object()):
            if font["/Subtype"] == "/Type3":
                continue
            if font["/Subtype"] == "/Type0":
                font = font["/DescendantFonts"][0].get_object()
            descriptor = font["/FontDescriptor"].get_object()
            assert {"/FontFile", "/FontFile2", "/FontFile3"} & set(descriptor), (n, font)
            descriptors += 1
        for annotation in page.get("/Annots") or []:  # the signature's widget among them
            flags = int(annotation.get_object().get("/F", 0))
            assert flags & PRINT and not flags & HIDDEN_FLAGS, (n, flags)
    assert descriptors >= len(reader.pages)
    # Each embedded file is an associated file of the document, with its relationship.
    related = {}
    for spec in root["/AF"]:
        spec = spec.get_object()
        related[str(spec["/UF"])] = spec["/AFRelationship"]
    assert related == {"record.json": "/Data", "manifest.yaml": "/Source"}
    embedded = root["/Names"]["/EmbeddedFiles"]["/Names"][::2]
    assert sorted(embedded) == sorted(related)
    # The document keeps its identity across the update; nothing is encrypted.
    unsigned = PdfReader(io.BytesIO(unsigned_report(tmp_path_factory)[1]))
    first_id = _id_bytes(reader.trailer["/ID"][0])
    assert first_id and first_id == _id_bytes(unsigned.trailer["/ID"][0])
    assert "/Encrypt" not in reader.trailer and "/Encrypt" not in unsigned.trailer


def test_verify_accepts_the_signed_report(signed: dict[str, Any]) -> None:
    v = verify_report(signed["pdf"], dev_dir=signed["dev_dir"])
    assert v.ok, v.problems
    record = signed["run"].record
    assert (v.mode, v.verdict, v.run_id) == (record["mode"], record["summary"]["verdict"],
                                             record["run_id"])  # fmt: skip
    assert v.report_id == f"STS-{record['run_id']}-R1"
    assert v.development and v.signer and v.signer.startswith("stslab development signer")
    assert v.signing_time is not None and v.timestamp is None
    assert v.record_sha256 == signed["run"].record_sha256
    assert v.manifest_sha256 == record["pack"]["manifest_sha256"]


def test_verify_refuses_a_signer_it_does_not_trust(signed: dict[str, Any], tmp_path: Path) -> None:
    v = verify_report(signed["pdf"], dev_dir=tmp_path / "elsewhere")
    assert not v.ok
    assert any("does not chain to a trusted certificate" in p for p in v.problems)


def _signature_gap(pdf: bytes) -> tuple[int, int]:
    m = list(re.finditer(rb"/ByteRange \[0 (\d+) (\d+) (\d+)\]", pdf))[-1]
    return int(m.group(1)), int(m.group(2))


def test_any_changed_byte_fails_verification(signed: dict[str, Any]) -> None:
    pdf = signed["pdf"]
    start, end = _signature_gap(pdf)
    der_end = start + 1 + len(pdf[start + 1 : end - 1].rstrip(b"0"))
    byte_range = pdf.rindex(b"/ByteRange")
    attachment = pdf.index(b"/EmbeddedFile")
    rng = random.Random(20261123)
    positions = {
        0, 7, len(pdf) // 3, attachment + 40, byte_range + 12, byte_range + 16,
        start - 1, start, start + 1, start + 2, start + 9, (start + der_end) // 2, der_end - 1,
        der_end, der_end + 1, end - 2, end - 1, end, len(pdf) - 10, len(pdf) - 1,
        *(rng.randrange(len(pdf)) for _ in range(16)),  # anywhere
        *(rng.randrange(start + 1, der_end) for _ in range(10)),  # the signature itself
        *(rng.randrange(der_end, end - 1) for _ in range(4)),  # its zero padding
    }  # fmt: skip
    survived = []
    for pos in sorted(positions):
        for mask in (0x01, 0x20, 0xFF):
            damaged = bytearray(pdf)
            damaged[pos] ^= mask
            if verify_report(bytes(damaged), dev_dir=signed["dev_dir"]).ok:
                survived.append((pos, mask))
    assert not survived, f"changes verification missed: {survived}"


def test_anything_added_after_signing_fails_verification(signed: dict[str, Any]) -> None:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    for tail in (b"\n", b"%comment\n", b"xref\n0 0\ntrailer<<>>\n%%EOF\n"):
        v = verify_report(signed["pdf"] + tail, dev_dir=signed["dev_dir"])
        assert not v.ok
    writer = IncrementalPdfFileWriter(io.BytesIO(signed["pdf"]))
    info = writer.trailer["/Info"]
    info["/stslabverdict"] = generic.TextStringObject("PASS")
    writer.update_container(info)
    out = io.BytesIO()
    writer.write(out)
    v = verify_report(out.getvalue(), dev_dir=signed["dev_dir"])
    assert not v.ok
    assert any("does not cover the whole file" in p for p in v.problems)
    assert not verify_report(signed["pdf"][:-100], dev_dir=signed["dev_dir"]).ok


# --- the binding between pages, attachments and signer ----------------------------------------


def test_a_record_other_than_the_one_the_pages_show_fails(
    signed: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    run = signed["run"]
    original = render.metadata_values

    def lying(*args: Any) -> dict[str, str]:
        values = original(*args)
        values["record_sha256"] = "0" * 64
        return values

    monkeypatch.setattr(render, "metadata_values", lying)
    pdf = render_pdf(run, meta_for(run.record), signed["signer"].info())
    data = sign_pdf(pdf, signed["signer"], signer_name="x", reason="x")
    v = verify_report(data, dev_dir=signed["dev_dir"])
    assert [p for p in v.problems if "attached record" in p] == [
        f"the attached record (SHA-256 {run.record_sha256}) is not the one the pages were made "
        f"from ({'0' * 64})"
    ]


# --- the lab's certificate --------------------------------------------------------------------


def test_an_accredited_report_signed_with_the_lab_pkcs12_verifies_against_the_lab_ca(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, lab_pki: dict,
    signed: dict[str, Any],
) -> None:  # fmt: skip
    asked: list[int] = []

    def password() -> bytes:
        asked.append(1)
        return b"s3cret"

    lab = load_pkcs12(lab_pki["p12"], password)
    assert asked == [1] and not lab.development
    run_dir = copy_run(tmp_path_factory, tmp_path)
    record = rewrite_record(run_dir, _accredited)
    pdf = render_pdf(load_run(run_dir), meta_for(record), lab.info())
    data = sign_pdf(pdf, lab, signer_name="B. Signatory", reason="Test report")
    v = verify_report(data, [lab_pki["ca_pem"]], dev_dir=tmp_path / "none")
    assert v.ok, v.problems
    assert (v.mode, v.development, v.signer) == ("accredited", False, "B. Signatory")
    assert v.trust_anchor and "Example Lab CA" in v.trust_anchor
    assert not verify_report(data, [], dev_dir=tmp_path / "none").ok
    # The same pages signed with the development certificate: another signer than the pages
    # name, and a development certificate on an accredited report.
    forged = sign_pdf(pdf, signed["signer"], signer_name="x", reason="x")
    v = verify_report(forged, [lab_pki["ca_pem"]], dev_dir=signed["dev_dir"])
    assert "the pages name another signing certificate than the one that signed" in v.problems
    assert "an accredited report signed with a development certificate" in v.problems


def test_key_files_open_with_a_password_only_when_encrypted(lab_pki: dict, tmp_path: Path) -> None:
    plain = write_p12(tmp_path / "plain.p12", lab_pki["key"], lab_pki["cert"], lab_pki["ca"][1],
                      None)  # fmt: skip

    def never() -> bytes:
        raise AssertionError("asked for a password of an unencrypted file")

    assert load_pkcs12(plain, never).info().subject == "B. Signatory"
    with pytest.raises(SigningError, match="not a PKCS#12 file, or the password is wrong"):
        load_pkcs12(lab_pki["p12"], lambda: b"wrong")
    key_pem = tmp_path / "key.pem"
    key_pem.write_bytes(lab_pki["key"].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"pem-pass")))  # fmt: skip
    cert_pem = pem(lab_pki["cert"], tmp_path / "cert.pem")
    lab = load_pem(key_pem, cert_pem, lambda: b"pem-pass", [lab_pki["ca_pem"]])
    assert lab.info().cert_sha256 == load_pkcs12(plain).info().cert_sha256
    with pytest.raises(SigningError, match="STSLAB_SIGNER_PASSWORD"):
        load_pem(key_pem, cert_pem, lambda: None)
    with pytest.raises(SigningError, match="not a private key, or the password is wrong"):
        load_pem(key_pem, cert_pem, lambda: b"nope")
    with pytest.raises(SigningError, match="not a certificate"):
        load_pem(key_pem, key_pem, lambda: b"pem-pass")


def test_an_expired_lab_certificate_does_not_sign(lab_pki: dict, tmp_path: Path) -> None:
    key, cert = issue(lab_pki["ca"], "Old Signatory",
                      not_after=datetime.now(UTC) - timedelta(days=1))  # fmt: skip
    p12 = write_p12(tmp_path / "old.p12", key, cert, lab_pki["ca"][1], None)
    with pytest.raises(SigningError, match="expired on"):
        load_pkcs12(p12)


def _by_hand(key: Any, cert: x509.Certificate, development: bool = False) -> LabSigner:
    """A signer for any key, made without the checks of :mod:`reports.sign`."""
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.signers import SimpleSigner
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    asn1_cert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    simple = SimpleSigner(asn1_cert, asn1_keys.PrivateKeyInfo.load(der),
                          SimpleCertificateStore.from_certs([asn1_cert]))  # fmt: skip
    return LabSigner(asn1_cert, simple, development)


def test_a_lab_ec_key_is_refused_with_the_reason(lab_pki: dict, tmp_path: Path) -> None:
    key, cert = issue(lab_pki["ca"], "EC Signatory", ec_key=True)
    p12 = write_p12(tmp_path / "ec.p12", key, cert, lab_pki["ca"][1], None)
    with pytest.raises(SigningError) as refused:
        load_pkcs12(p12)
    assert str(refused.value) == (
        "the signing key is an EC key (secp256r1), which signs ECDSA: reports are signed with "
        "an RSA key, because the report is PDF/A-3b (PDF 1.7) and an ECDSA or EdDSA signature "
        "makes it PDF 2.0 (ISO/TS 32002)"
    )
    key_pem = tmp_path / "ec-key.pem"
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                          serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))  # fmt: skip
    with pytest.raises(SigningError, match="reports are signed with an RSA key"):
        load_pem(key_pem, pem(cert, tmp_path / "ec-cert.pem"))


def test_a_signature_that_would_raise_the_pdf_version_is_not_written(
    tmp_path_factory: pytest.TempPathFactory, lab_pki: dict
) -> None:
    # An ECDSA signer put together by hand, past the key check: signing itself refuses.
    ec_signer = _by_hand(*issue(lab_pki["ca"], "EC Signatory", ec_key=True))
    with pytest.raises(SigningError, match=r"would make the report PDF 2\.0, and a PDF/A-3b "
                                           r"report is PDF 1\.7"):  # fmt: skip
        sign_pdf(unsigned_report(tmp_path_factory)[1], ec_signer, signer_name="x", reason="x")


# --- B-T: a time stamp from an RFC 3161 authority ---------------------------------------------


class _Tsa:
    """An RFC 3161 time-stamp authority on 127.0.0.1 (pyHanko's test responder behind HTTP)."""

    def __init__(self, ca: tuple[Any, x509.Certificate]) -> None:
        from asn1crypto import keys as asn1_keys
        from asn1crypto import tsp
        from asn1crypto import x509 as asn1_x509
        from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper

        key, cert = issue(ca, "Example TSA", tsa=True)
        stamper = DummyTimeStamper(
            tsa_cert=asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
            tsa_key=asn1_keys.PrivateKeyInfo.load(key.private_bytes(
                serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption())),
        )  # fmt: skip
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                reply = stamper.request_tsa_response(tsp.TimeStampReq.load(body)).dump()
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/tsa"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def test_a_b_t_signature_carries_a_trusted_time_stamp(
    tmp_path_factory: pytest.TempPathFactory, signed: dict[str, Any], tmp_path: Path
) -> None:
    tsa_ca = make_ca("Example TSA root")
    tsa_ca_pem = pem(tsa_ca[1], tmp_path / "tsa-ca.pem")
    tsa = _Tsa(tsa_ca)
    try:
        pdf = unsigned_report(tmp_path_factory)[1]
        data = sign_pdf(pdf, signed["signer"], signer_name="x", reason="x", tsa_url=tsa.url)
    finally:
        tsa.close()
    assert tsa.requests >= 1  # pyHanko asks once more to size the signature
    v = verify_report(data, [tsa_ca_pem], dev_dir=signed["dev_dir"])
    assert v.ok, v.problems
    assert v.timestamp is not None and abs(v.timestamp - datetime.now(UTC)) < timedelta(minutes=10)
    untrusted = verify_report(data, [], dev_dir=signed["dev_dir"])
    assert any("time-stamp authority" in p for p in untrusted.problems)
    start, _end = _signature_gap(data)
    for offset in (200, 1500, 2500):  # inside the CMS, where the time-stamp token lives
        damaged = bytearray(data)
        damaged[start + 1 + offset] ^= 0x01
        assert not verify_report(bytes(damaged), [tsa_ca_pem], dev_dir=signed["dev_dir"]).ok


def test_an_unreachable_time_stamp_authority_is_a_signing_error(
    tmp_path_factory: pytest.TempPathFactory, signed: dict[str, Any]
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pdf = unsigned_report(tmp_path_factory)[1]
    with pytest.raises(SigningError, match="time-stamp authority did not answer"):
        sign_pdf(pdf, signed["signer"], signer_name="x", reason="x",
                 tsa_url=f"http://127.0.0.1:{port}/tsa")  # fmt: skip


def test_the_signer_key_never_reaches_the_report(signed: dict[str, Any]) -> None:
    key = (signed["dev_dir"] / DEV_KEY_FILE).read_bytes()
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    numbers = load_pem_private_key(key, None).private_numbers()
    assert isinstance(numbers, rsa.RSAPrivateNumbers)
    for secret in (numbers.d, numbers.p, numbers.q):
        raw = secret.to_bytes((secret.bit_length() + 7) // 8, "big")
        assert raw not in signed["pdf"]
        assert raw.hex().encode() not in signed["pdf"].lower()
