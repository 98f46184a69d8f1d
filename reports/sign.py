"""Signing reports: a PAdES baseline signature (B-B, or B-T with an RFC 3161 time stamp)
with the lab's certificate, or with a local development certificate for demonstrations and
pre-submission reports.

The lab's key comes from a PKCS#12 file or PEM files; its password is asked for only when
the key is encrypted, through a callable (the command line reads an environment variable
or prompts — never an argument). A development certificate is made on first use: a
self-signed CA and a signer certificate whose subject says what it is, so every report and
every verification can tell. Keys are RSA: the report is PDF/A-3b, PDF 1.7, and pyHanko
declares an ECDSA or EdDSA signature as PDF 2.0 (ISO/TS 32002); a key that would do that is
refused with that reason, and signing never raises the report's PDF version.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import secrets
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509 as pyca_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.metadata.model import VENDOR
from pyhanko_certvalidator.registry import SimpleCertificateStore

from reports.render import PDFA_VARIANT, SignerInfo


@contextmanager
def pyhanko_signing() -> Iterator[None]:
    """A block that imports pyHanko's signing and validation modules."""
    with warnings.catch_warnings():
        # pyHanko's CMS module imports cryptography's DSA key types, and cryptography warns on
        # that import that DSA is deprecated. Reports neither make nor accept DSA signatures
        # and only pyHanko can drop the import: the warning would tell a user nothing.
        warnings.filterwarnings("ignore", "DSA is deprecated", CryptographyDeprecationWarning,
                                r"pyhanko\.")  # fmt: skip
        yield


with pyhanko_signing():
    from pyhanko.sign import fields, signers
    from pyhanko.sign.timestamps import HTTPTimeStamper, TimestampRequestError

#: The organisational unit that marks a development certificate (checked by ``verify``).
DEVELOPMENT_OU = "stslab development certificate - not for certification"
DEV_SIGNER_ENV = "STSLAB_DEV_SIGNER_DIR"
PASSWORD_ENV = "STSLAB_SIGNER_PASSWORD"
TSA_ENV = "STSLAB_TSA_URL"
DEV_CA_FILE = "ca.pem"
DEV_CERT_FILE = "signer.pem"
DEV_KEY_FILE = "signer-key.pem"
DEV_RETIRED_CA_FILE = "retired-ca.pem"
DEV_VALIDITY = timedelta(days=2 * 365)
DEV_KEY_BITS = 3072
TSA_TIMEOUT_S = 15
SIGNATURE_FIELD = "LabSignature"

PasswordSource = Callable[[], bytes | None]


class SigningError(Exception):
    """The report cannot be signed (unreadable key, wrong password, expired certificate,
    time-stamp authority unreachable)."""


@dataclass
class LabSigner:
    """A signing key with its certificate and chain, ready for pyHanko."""

    certificate: Any  # asn1crypto.x509.Certificate
    signer: Any  # pyhanko.sign.signers.SimpleSigner
    development: bool
    trust_anchor: Path | None = None  # the development CA, for verifying what it signed

    def info(self) -> SignerInfo:
        cert = self.certificate
        subject = cert.subject.native
        issuer = cert.issuer.native
        return SignerInfo(
            subject=str(subject.get("common_name") or cert.subject.human_friendly),
            organisation=subject.get("organization_name"),
            cert_sha256=hashlib.sha256(cert.dump()).hexdigest(),
            development=self.development,
            issuer=str(issuer.get("common_name") or cert.issuer.human_friendly),
        )


def is_development(certificate: Any) -> bool:
    """True when an (asn1crypto) certificate is a stslab development certificate."""
    ou = certificate.subject.native.get("organizational_unit_name")
    units = ou if isinstance(ou, list) else [ou]
    return DEVELOPMENT_OU in units


def _lab_signer(key: Any, cert: pyca_x509.Certificate, chain: Sequence[pyca_x509.Certificate],
                development: bool = False, anchor: Path | None = None) -> LabSigner:  # fmt: skip
    refused = _refused_key(key)
    if refused:
        raise SigningError(refused)
    now = datetime.now(UTC)
    if cert.not_valid_after_utc < now:
        raise SigningError(
            f"the signing certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        )
    if cert.not_valid_before_utc > now:
        raise SigningError("the signing certificate is not valid yet")
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())  # fmt: skip
    asn1_cert = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    others = [asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
              for c in chain]  # fmt: skip
    signer = signers.SimpleSigner(
        signing_cert=asn1_cert,
        signing_key=asn1_keys.PrivateKeyInfo.load(der),
        cert_registry=SimpleCertificateStore.from_certs([asn1_cert, *others]),
    )
    return LabSigner(asn1_cert, signer, development or is_development(asn1_cert), anchor)


def _refused_key(key: Any) -> str | None:
    """Why a report cannot be signed with this key (None: it can); see the module's text."""
    if isinstance(key, rsa.RSAPrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        kind = f"an EC key ({key.curve.name}), which signs ECDSA"
    else:
        kind = f"a {type(key).__name__.removesuffix('PrivateKey').lstrip('_')} key"
    return (f"the signing key is {kind}: reports are signed with an RSA key, because the "
            "report is PDF/A-3b (PDF 1.7) and an ECDSA or EdDSA signature makes it PDF 2.0 "
            "(ISO/TS 32002)")  # fmt: skip


def _no_password() -> bytes | None:
    return None


def load_pkcs12(
    path: Path, password: PasswordSource = _no_password, chain: Sequence[Path] = ()
) -> LabSigner:
    """The lab's key and certificate from a PKCS#12 (.p12/.pfx) file; ``password`` is
    called only if the file is encrypted."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, None)
    except ValueError:
        try:
            key, cert, extra = pkcs12.load_key_and_certificates(data, password())
        except ValueError:
            raise SigningError(f"{path}: not a PKCS#12 file, or the password is wrong") from None
    if key is None or cert is None:
        raise SigningError(f"{path}: the PKCS#12 file holds no key and certificate pair")
    return _lab_signer(key, cert, [*extra, *_read_certs(chain)])


def load_pem(
    key_path: Path, cert_path: Path, password: PasswordSource = _no_password,
    chain: Sequence[Path] = (),
) -> LabSigner:  # fmt: skip
    """The lab's key (PEM or DER, PKCS#8 or traditional) and certificate (PEM or DER)."""
    try:
        key_data = key_path.read_bytes()
    except OSError as exc:
        raise SigningError(f"{key_path}: cannot read: {exc.strerror or exc}") from None
    key = _load_key(key_data, None, key_path, password)
    certs = _read_certs([cert_path])
    if not certs:
        raise SigningError(f"{cert_path}: no certificate")
    return _lab_signer(key, certs[0], [*certs[1:], *_read_certs(chain)])


def _load_key(data: bytes, pw: bytes | None, where: Path, password: PasswordSource) -> Any:
    loader = (serialization.load_pem_private_key if b"-----BEGIN" in data
              else serialization.load_der_private_key)  # fmt: skip
    try:
        return loader(data, pw)
    except TypeError:  # encrypted, and no password given yet
        if pw is not None:
            raise SigningError(f"{where}: the key cannot be decrypted") from None
        given = password()
        if not given:
            raise SigningError(f"{where}: the key is encrypted; set {PASSWORD_ENV} "
                               "or run where a password can be asked for") from None  # fmt: skip
        return _load_key(data, given, where, password)
    except ValueError:
        raise SigningError(f"{where}: not a private key, or the password is wrong") from None


def _read_certs(paths: Sequence[Path]) -> list[pyca_x509.Certificate]:
    out = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise SigningError(f"{path}: cannot read: {exc.strerror or exc}") from None
        try:
            if b"-----BEGIN" in data:
                out += pyca_x509.load_pem_x509_certificates(data)
            else:
                out.append(pyca_x509.load_der_x509_certificate(data))
        except ValueError:
            raise SigningError(f"{path}: not a certificate (PEM or DER)") from None
    return out


# --- the development certificate ----------------------------------------------------------


def dev_signer_dir(directory: Path | None = None) -> Path:
    """Where the development certificate lives: ``directory``, else $STSLAB_DEV_SIGNER_DIR,
    else ~/.stslab/dev-signer."""
    if directory is not None:
        return Path(directory)
    env = os.environ.get(DEV_SIGNER_ENV)
    return Path(env) if env else Path.home() / ".stslab" / "dev-signer"


def development_signer(directory: Path | None = None) -> LabSigner:
    """The local development signer, made on first use (a self-signed CA, whose key is
    thrown away once it has issued the signer certificate, and the signer's key and
    certificate; the key file is readable by its owner only). One made by an older stslab
    with a key reports are no longer signed with (EC) is replaced; its CA certificate is kept
    as retired and stays trusted, so the reports it signed still verify on this computer."""
    folder = dev_signer_dir(directory)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one process at a time makes, renews or reads it
        if not (folder / DEV_CERT_FILE).exists():
            _create_dev_signer(folder)
        key = _load_key((folder / DEV_KEY_FILE).read_bytes(), None, folder / DEV_KEY_FILE,
                        _no_password)  # fmt: skip
        if _refused_key(key) is not None:
            _create_dev_signer(folder, retire=True)
            key = _load_key((folder / DEV_KEY_FILE).read_bytes(), None, folder / DEV_KEY_FILE,
                            _no_password)  # fmt: skip
        (cert,) = _read_certs([folder / DEV_CERT_FILE])
        ca = _read_certs([folder / DEV_CA_FILE])
    finally:
        os.close(lock)
    try:
        return _lab_signer(key, cert, ca, development=True, anchor=folder / DEV_CA_FILE)
    except SigningError as exc:
        raise SigningError(f"{folder}: {exc}; move the folder away to make a new "
                           "development certificate") from None  # fmt: skip


def _name(common_name: str) -> pyca_x509.Name:
    return pyca_x509.Name([
        pyca_x509.NameAttribute(NameOID.ORGANIZATION_NAME, "stslab"),
        pyca_x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEVELOPMENT_OU),
        pyca_x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])  # fmt: skip


def _usage(**flags: bool) -> pyca_x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return pyca_x509.KeyUsage(**{n: flags.get(n, False) for n in names})  # fmt: skip


def _create_dev_signer(folder: Path, retire: bool = False) -> None:
    """Write a new development CA and signer into ``folder`` (the caller holds its lock);
    ``retire`` keeps the CA certificate it replaces, so what that CA signed stays trusted."""
    now = datetime.now(UTC) - timedelta(minutes=5)
    tag = secrets.token_hex(4)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name(f"stslab development CA {tag}")
    ca = (
        pyca_x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(pyca_x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + DEV_VALIDITY + timedelta(days=30))
        .add_extension(pyca_x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(pyca_x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = rsa.generate_private_key(65537, DEV_KEY_BITS)  # RSA: see _refused_key
    cert = (
        pyca_x509.CertificateBuilder()
        .subject_name(_name(f"stslab development signer {tag}")).issuer_name(ca_name)
        .public_key(key.public_key()).serial_number(pyca_x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + DEV_VALIDITY)
        .add_extension(pyca_x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True, content_commitment=True), critical=True)
        .add_extension(pyca_x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_key.public_key()), critical=False)
        .add_extension(pyca_x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    pem = serialization.Encoding.PEM
    if retire:
        _write(folder / DEV_RETIRED_CA_FILE, _read_or_empty(folder / DEV_RETIRED_CA_FILE)
               + (folder / DEV_CA_FILE).read_bytes())  # fmt: skip
    _write(folder / DEV_CA_FILE, ca.public_bytes(pem))
    private = key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())  # fmt: skip
    _write(folder / DEV_KEY_FILE, private, mode=0o600)
    _write(folder / DEV_CERT_FILE, cert.public_bytes(pem))  # last: a complete signer is there


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


def _write(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` whole (a reader never sees half a file) with ``mode`` from the start."""
    scratch = path.with_name(f".{path.name}.new")
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        os.fchmod(f.fileno(), mode)
        f.write(data)
    os.replace(scratch, path)


# --- signing --------------------------------------------------------------------------------


def sign_pdf(
    pdf: bytes,
    signer: LabSigner,
    *,
    signer_name: str,
    reason: str,
    location: str = "",
    tsa_url: str | None = None,
    timestamper: Any = None,
) -> bytes:
    """The PDF with a PAdES signature appended as an incremental update: B-B, or B-T when a
    time-stamp authority (``tsa_url``, or a ready ``timestamper``) is given. The signature
    certifies the document (no later changes permitted)."""
    if timestamper is None and tsa_url:
        timestamper = HTTPTimeStamper(tsa_url, timeout=TSA_TIMEOUT_S)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    # The information dictionary's producer must equal the XMP one pyHanko writes (PDF/A).
    info = writer.trailer["/Info"]
    info["/Producer"] = generic.TextStringObject(VENDOR)
    writer.update_container(info)
    # WeasyPrint lists each associated file twice in the catalogue's /AF; once is right.
    associated = writer.root.get("/AF")
    if associated is not None:
        refs = [associated.raw_get(i) for i in range(len(associated))]
        unique = list({(r.idnum, r.generation): r for r in refs}.values())
        if len(unique) != len(associated):
            writer.root["/AF"] = generic.ArrayObject(unique)
            writer.update_root()
    meta = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
        name=signer_name,
        reason=reason,
        location=location or None,
        certify=True,
        docmdp_permissions=fields.MDPPerm.NO_CHANGES,
    )
    out = io.BytesIO()
    try:
        signers.sign_pdf(writer, meta, signer=signer.signer, timestamper=timestamper, output=out)
    except TimestampRequestError as exc:
        raise SigningError(f"the time-stamp authority did not answer: {exc}") from None
    if writer.output_version > writer.prev.input_version:
        # The PDF/A part fixes the PDF version: a signature that raises it breaks the PDF/A.
        raised, kept = (".".join(map(str, v)) for v in (writer.output_version,
                                                         writer.prev.input_version))  # fmt: skip
        variant = PDFA_VARIANT.replace("pdf/a", "PDF/A")
        raise SigningError(f"this signature would make the report PDF {raised}, and a "
                           f"{variant} report is PDF {kept}")  # fmt: skip
    return out.getvalue()
