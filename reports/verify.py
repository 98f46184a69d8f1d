"""Verifying a signed report: the signature, that nothing changed since signing, and that
the attached record and pack manifest are the ones the pages were made from.

Checks, each failure named:

* exactly one signature, cryptographically intact, by a certificate that chains to a
  trusted certificate (``--trust``, or this computer's development CA), covering the whole
  file, with nothing appended after it; the unsigned gap holding the signature is exactly
  the signature (no altered padding);
* a B-T signature's time stamp is intact and trusted;
* the attached ``record.json`` and ``manifest.yaml`` have the SHA-256 the pages carry
  (in the signed document information), the record names that manifest, and mode, verdict
  and signer certificate agree with what the pages were rendered for;
* a development certificate never signs an accredited report.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from asn1crypto import parser, pem
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko_certvalidator import ValidationContext

from reports.render import MANIFEST_NAME, META_KEYS, RECORD_NAME
from reports.sign import (
    DEV_CA_FILE,
    DEV_RETIRED_CA_FILE,
    dev_signer_dir,
    is_development,
    pyhanko_signing,
)

with pyhanko_signing():
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko.sign.validation.status import SignatureCoverageLevel

#: Where a PDF's header may start (ISO 32000-1 §7.5.2 allows bytes before it; readers look
#: this far).
PDF_HEADER_WINDOW = 1024


@dataclass
class Verification:
    """What verifying a report found; ``ok`` only when ``problems`` is empty.
    ``not_a_report`` says what the file is when it is no signed report at all (then it is
    also the one problem)."""

    path: str
    problems: list[str] = field(default_factory=list)
    not_a_report: str | None = None
    report_id: str | None = None
    run_id: str | None = None
    mode: str | None = None
    verdict: str | None = None
    signer: str | None = None
    signer_cert_sha256: str | None = None
    authorised_by: str | None = None
    development: bool = False
    signing_time: datetime | None = None
    timestamp: datetime | None = None
    trust_anchor: str | None = None
    record_sha256: str | None = None
    manifest_sha256: str | None = None
    pack: str | None = None
    supersedes: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


def default_trust(dev_dir: Path | None = None) -> list[Path]:
    """The development CA on this computer, if one was ever made, and those it replaced."""
    folder = dev_signer_dir(dev_dir)
    return [p for p in (folder / DEV_CA_FILE, folder / DEV_RETIRED_CA_FILE) if p.exists()]


def verify_report(
    pdf: bytes | str | Path, trust: list[Path] | None = None, dev_dir: Path | None = None
) -> Verification:
    """Verify a signed report against the trusted certificates in ``trust`` (PEM or DER
    files; the local development CA is added). Never raises for a bad report: every problem
    is listed in the result."""
    path = "<bytes>"
    if not isinstance(pdf, bytes):
        path = str(pdf)
        try:
            pdf = Path(pdf).read_bytes()
        except FileNotFoundError:
            return _not_a_report(Verification(path), "no such file")
        except IsADirectoryError:
            return _not_a_report(Verification(path), "a folder, not a file")
        except OSError as exc:
            return _not_a_report(Verification(path), f"cannot read: {exc.strerror or exc}")
    result = Verification(path)
    if not pdf:
        return _not_a_report(result, "an empty file, not a PDF file")
    if b"%PDF-" not in pdf[:PDF_HEADER_WINDOW]:
        return _not_a_report(result, "not a PDF file")
    try:
        roots = _load_anchors([*(trust or []), *default_trust(dev_dir)])
    except (OSError, ValueError) as exc:
        result.problems.append(f"cannot read a trusted certificate: {exc}")
        return result
    try:
        _verify(pdf, roots, result)
    except Exception as exc:  # a damaged file can fail anywhere in a parser; say so, never crash
        result.problems.append(f"the file cannot be read as a signed report: "
                               f"{type(exc).__name__}: {exc}")  # fmt: skip
    return result


def _not_a_report(result: Verification, what: str) -> Verification:
    result.not_a_report = what
    result.problems.append(what)
    return result


def _load_anchors(paths: list[Path]) -> list[Any]:
    roots = []
    for p in paths:
        data = p.read_bytes()
        if pem.detect(data):
            roots += [asn1_x509.Certificate.load(der) for _, _, der in pem.unarmor(data, True)]
        else:
            roots.append(asn1_x509.Certificate.load(data))
    return roots


def _verify(pdf: bytes, roots: list[Any], r: Verification) -> None:
    reader = PdfFileReader(io.BytesIO(pdf), strict=True)
    signatures = reader.embedded_signatures
    if not signatures:
        _not_a_report(r, "a PDF without a signature, not a signed report")
        return
    if len(signatures) != 1:
        r.problems.append(f"{len(signatures)} signatures; a report carries exactly one")
    sig = signatures[-1]
    _check_gap(pdf, sig, r)
    context = ValidationContext(trust_roots=roots, allow_fetching=False)
    try:
        status = validate_pdf_signature(sig, context)
    except SignatureValidationError as exc:
        r.problems.append(f"the signature cannot be validated: {exc}")
        return
    cert = status.signing_cert
    r.signer = str(cert.subject.native.get("common_name") or cert.subject.human_friendly)
    r.signer_cert_sha256 = hashlib.sha256(cert.dump()).hexdigest()
    r.development = is_development(cert)
    r.signing_time = status.signer_reported_dt
    if not status.intact:
        r.problems.append("the document was modified after signing (digest mismatch)")
    elif not status.valid:
        r.problems.append("the signature value does not verify")
    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        coverage = status.coverage.name.lower()
        r.problems.append(f"the signature does not cover the whole file ({coverage}): "
                          "something was added after signing")  # fmt: skip
    if not status.trusted:
        r.problems.append(f"the signer's certificate ({r.signer}) does not chain to a trusted "
                          "certificate: give the lab's CA certificate with --trust")  # fmt: skip
    elif status.validation_path is not None:
        r.trust_anchor = status.validation_path.trust_anchor.authority.name.human_friendly
    _check_cms(sig.signed_data, status.validation_path, "signature", r)
    ts = status.timestamp_validity
    attrs = sig.signer_info["unsigned_attrs"].native or []
    unsigned = [a["type"] for a in attrs]
    if unsigned not in ([], ["signature_time_stamp_token"]):
        r.problems.append(f"the signature carries unexpected unsigned attributes {unsigned}")
    if ts is not None:
        token = sig.signer_info["unsigned_attrs"][0]["values"][0]["content"]
        _check_cms(token, ts.validation_path, "time stamp", r)
        r.timestamp = ts.timestamp
        if not (ts.intact and ts.valid):
            r.problems.append("the signature's time stamp does not verify")
        elif not ts.trusted:
            r.problems.append("the time-stamp authority's certificate does not chain to a "
                              "trusted certificate: give its CA with --trust")  # fmt: skip
    _check_content(reader, r)


def _check_cms(signed_data: Any, path: Any, what: str, r: Verification) -> None:
    """The parts of a CMS signature its own signature does not cover must be exactly what
    stslab writes: versions, the digest algorithm list, and only certificates of the
    validated path (an altered copy of a trusted root would otherwise pass unnoticed)."""
    (signer_info,) = signed_data["signer_infos"]
    if (signed_data["version"].native, signer_info["version"].native) != _versions(signed_data):
        r.problems.append(f"the {what} container's version fields were altered")
    algorithms = [a.dump() for a in signed_data["digest_algorithms"]]
    if algorithms != [signer_info["digest_algorithm"].dump()]:
        r.problems.append(f"the {what} container's digest algorithm list was altered")
    if signed_data["crls"].native:
        r.problems.append(f"the {what} container carries unexpected revocation lists")
    if path is None:
        return  # untrusted: already a problem
    known = {c.dump() for c in path.iter_certs(include_root=True)}
    anchor = getattr(path.trust_anchor, "certificate", None)
    if anchor is not None:
        known.add(anchor.dump())
    for choice in signed_data["certificates"] or []:
        if choice.chosen.dump() not in known:
            r.problems.append(f"the {what} container carries a certificate that is not on "
                              "the validated path (altered or foreign)")  # fmt: skip
            break


def _versions(signed_data: Any) -> tuple[str, str]:
    """The SignedData and SignerInfo versions RFC 5652 §5.1 and §5.3 prescribe for this
    structure (nothing signs them, so they are checked against the rule)."""
    (signer_info,) = signed_data["signer_infos"]
    info_version = "v1" if signer_info["sid"].name == "issuer_and_serial_number" else "v3"
    certs = [c.name for c in signed_data["certificates"] or []]
    if "other" in certs:
        version = "v5"
    elif "v2_attr_cert" in certs:
        version = "v4"
    elif ("v1_attr_cert" in certs or info_version == "v3"
          or signed_data["encap_content_info"]["content_type"].native != "data"):  # fmt: skip
        version = "v3"
    else:
        version = "v1"
    return version, info_version


def _check_gap(pdf: bytes, sig: Any, r: Verification) -> None:
    """The only unsigned bytes are the signature's /Contents: they must hold exactly the
    signature as written (upper-case hex, zero padding), so no byte changes unnoticed."""
    byte_range = [int(v) for v in sig.sig_object["/ByteRange"]]
    if len(byte_range) != 4 or byte_range[0] != 0:
        r.problems.append("the signature's byte range is malformed")
        return
    start, end = byte_range[1], byte_range[2]
    gap = pdf[start:end]
    contents = bytes(sig.sig_object["/Contents"])
    if gap != b"<" + contents.hex().upper().encode() + b">":
        r.problems.append("the unsigned signature container was altered")
        return
    length = _der_length(contents)
    if length is None or any(contents[length:]) or not _exact(contents[:length], 2):
        r.problems.append("the signature container's length or padding was altered")


def _der_length(data: bytes) -> int | None:
    """Length of the DER element at the start of ``data`` (None if it is not one)."""
    if len(data) < 2 or data[0] != 0x30:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n == 0 or n > 4 or len(data) < 2 + n:
        return None
    return 2 + n + int.from_bytes(data[2 : 2 + n], "big")


def _exact(element: bytes, children: int) -> bool:
    """True when the DER element's contents are exactly ``children`` elements (an inflated
    length would take in padding bytes that the element's own parser ignores)."""
    _cls, _method, _tag, _header, inner, _trailer = parser.parse(element, strict=True)
    offset = count = 0
    while offset < len(inner):
        parsed = parser.parse(inner[offset:])
        offset += len(parsed[3]) + len(parsed[4]) + len(parsed[5])
        count += 1
    return count == children and offset == len(inner)


def _name_tree(node: Any) -> dict[str, Any]:
    """A PDF name tree as a dict (name -> value)."""
    out: dict[str, Any] = {}
    names = node.get("/Names")
    if names is not None:
        for i in range(0, len(names) - 1, 2):
            out[str(names[i])] = names[i + 1]
    for kid in node.get("/Kids", []):
        out.update(_name_tree(kid.get_object()))
    return out


def attachments(reader: Any) -> dict[str, tuple[bytes, str | None]]:
    """Embedded files by name: (bytes, AFRelationship). Only files listed as the
    document's associated files (PDF/A-3) count."""
    root = reader.root
    tree = root.get("/Names", {}).get("/EmbeddedFiles")
    if tree is None:
        return {}
    af_names = set()
    for spec in root.get("/AF", []):
        spec = spec.get_object()
        af_names.add(str(spec.get("/UF", spec.get("/F", ""))))
    out: dict[str, tuple[bytes, str | None]] = {}
    for name, spec in _name_tree(tree.get_object()).items():
        spec = spec.get_object()
        filename = str(spec.get("/UF", spec.get("/F", name)))
        if filename not in af_names:
            continue
        stream = spec["/EF"]["/F"].get_object()
        rel = spec.get("/AFRelationship")
        out[filename] = (stream.data, str(rel).lstrip("/") if rel is not None else None)
    return out


def _check_content(reader: Any, r: Verification) -> None:
    info = reader.trailer["/Info"]
    meta = {k: str(info.get("/" + key, "")) for k, key in META_KEYS.items()}
    r.report_id = meta["report_id"] or None
    r.supersedes = meta["supersedes"] or None
    files = attachments(reader)
    if RECORD_NAME not in files:
        r.problems.append(f"no {RECORD_NAME} attached as an associated file")
        return
    if MANIFEST_NAME not in files:
        r.problems.append(f"no {MANIFEST_NAME} attached as an associated file")
    record_bytes = files[RECORD_NAME][0]
    r.record_sha256 = hashlib.sha256(record_bytes).hexdigest()
    if r.record_sha256 != meta["record_sha256"]:
        stated = meta["record_sha256"] or "none stated"
        r.problems.append(f"the attached record (SHA-256 {r.record_sha256}) is not the one the "
                          f"pages were made from ({stated})")  # fmt: skip
    try:
        record = json.loads(record_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError):
        r.problems.append("the attached record is not JSON")
        return
    r.run_id = record.get("run_id")
    r.mode = record.get("mode")
    r.verdict = (record.get("summary") or {}).get("verdict")
    signer = (record.get("job") or {}).get("signer") or {}
    r.authorised_by = ", ".join(str(v) for v in (signer.get("name"), signer.get("role")) if v)
    pack = record.get("pack") or {}
    r.pack = f"{pack.get('id')} {pack.get('version')}"
    for what, key, value in (("mode", "mode", r.mode), ("verdict", "verdict", r.verdict)):
        if meta[key] != str(value):
            r.problems.append(f"the pages state {what} {meta[key]!r}, the record {value!r}")
    if r.report_id is None or not r.report_id.startswith(f"STS-{r.run_id}-R"):
        r.problems.append(f"report id {r.report_id!r} does not belong to run {r.run_id}")
    if meta["signer_cert_sha256"] != r.signer_cert_sha256:
        r.problems.append("the pages name another signing certificate than the one that signed")
    if (meta["development_signer"] == "yes") != r.development:
        r.problems.append("the pages and the signing certificate disagree on whether it is a "
                          "development certificate")  # fmt: skip
    if r.development and r.mode == "accredited":
        r.problems.append("an accredited report signed with a development certificate")
    if MANIFEST_NAME in files:
        manifest = files[MANIFEST_NAME][0]
        r.manifest_sha256 = hashlib.sha256(manifest).hexdigest()
        if r.manifest_sha256 != meta["manifest_sha256"]:
            r.problems.append("the attached pack manifest is not the one the pages were made from")
        if r.manifest_sha256 != pack.get("manifest_sha256"):
            r.problems.append("the attached pack manifest is not the one the record names")
        try:
            doc = yaml.safe_load(manifest)
        except yaml.YAMLError:
            doc = None
        if not isinstance(doc, dict) or (doc.get("pack"), str(doc.get("version")),
                                         doc.get("files")) != (pack.get("id"),
                                                               str(pack.get("version")),
                                                               pack.get("files")):  # fmt: skip
            r.problems.append("the attached pack manifest does not list the pack the record names")
