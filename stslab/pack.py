"""Scenario packs: a manifest of every file's SHA-256, signed by the scheme owner.

``manifest.yaml`` names the pack (id, version, the standard editions it tests) and lists
every scenario file with its SHA-256; ``manifest.sig`` is an Ed25519 signature (RFC 8032)
over the manifest's bytes. A pack is *untampered* when every file's hash matches and the
signature verifies with a trusted key. Accredited mode refuses anything else.

The pack's identity in a record is the SHA-256 of its manifest.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import yaml
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from sts.schema import DocumentError, validate

MANIFEST = "manifest.yaml"
SIGNATURE = "manifest.sig"


class PackError(Exception):
    """A pack that cannot be read or does not match its manifest."""


def _file_name(name: str) -> str:
    if not re.fullmatch(r"[^/\\]+\.yaml", name) or name == MANIFEST:
        raise ValueError(f"{name!r} is not the name of a scenario file in the pack folder")
    return name


def _digest(value: str) -> str:
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"{value!r} is not a SHA-256 (64 lower-case hex digits)")
    return value


class Manifest(BaseModel):
    """``manifest.yaml``: every key validated, so a hand edit that breaks it is named."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pack: str = Field(min_length=1)
    version: str = Field(min_length=1)
    title: str = ""
    standards: list[str] = Field(default_factory=list)
    #: Scenario file name (in the pack folder) -> its SHA-256, hex.
    files: dict[Annotated[str, AfterValidator(_file_name)], Annotated[str, AfterValidator(_digest)]]


def read_manifest(directory: Path) -> tuple[Manifest, bytes]:
    """The pack's manifest, validated, and its bytes (what the signature covers)."""
    path = directory / MANIFEST
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PackError(f"{path}: cannot read the manifest: {exc.strerror}") from None
    try:
        return validate(Manifest, raw.decode("utf-8", "replace"), str(path)), raw
    except DocumentError as exc:
        raise PackError(str(exc)) from None


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scenario_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("*.yaml") if p.name != MANIFEST)


def build_manifest(
    directory: Path, pack_id: str, version: str, standards: list[str], title: str = ""
) -> Path:
    """Write ``manifest.yaml`` for the scenario files in ``directory``."""
    files = {p.name: sha256_file(p) for p in scenario_files(directory)}
    if not files:
        raise PackError(f"{directory}: no scenario files")
    doc = {"pack": pack_id, "version": version, "title": title, "standards": standards,
           "files": files}  # fmt: skip
    path = directory / MANIFEST
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    (directory / SIGNATURE).unlink(missing_ok=True)  # an old signature no longer applies
    return path


def sign_pack(directory: Path, private_key_pem: str) -> Path:
    """Sign the manifest with an Ed25519 private key (PEM); writes ``manifest.sig``."""
    key = ECC.import_key(private_key_pem)
    if key.curve != "Ed25519" or not key.has_private():
        raise PackError("the signing key must be an Ed25519 private key")
    _manifest, data = read_manifest(directory)  # only a sound manifest is signed
    signature = eddsa.new(key, "rfc8032").sign(data)
    path = directory / SIGNATURE
    path.write_text(signature.hex() + "\n")
    return path


def key_fingerprint(public_pem: str) -> str:
    key = ECC.import_key(public_pem)
    raw = key.public_key().export_key(format="raw")
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass
class PackStatus:
    """What verifying a pack found."""

    directory: str
    pack_id: str
    version: str
    title: str
    standards: list[str]
    manifest_sha256: str
    files: dict[str, str]
    signed: bool = False
    signature_valid: bool = False
    signer: str | None = None  # the trusted key's name
    signer_fingerprint: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def untampered(self) -> bool:
        return self.signature_valid and not self.problems


def verify_pack(directory: str | Path, trusted: dict[str, str] | None = None) -> PackStatus:
    """Check every file against the manifest and the signature against ``trusted`` keys
    (name -> public key PEM). Problems are listed, never raised, so a pre-submission run
    can record them."""
    directory = Path(directory)
    manifest, raw = read_manifest(directory)
    status = PackStatus(
        directory=str(directory),
        pack_id=manifest.pack,
        version=manifest.version,
        title=manifest.title,
        standards=list(manifest.standards),
        manifest_sha256=hashlib.sha256(raw).hexdigest(),
        files=dict(manifest.files),
    )
    present = {p.name for p in scenario_files(directory)}
    for name, digest in status.files.items():
        path = directory / name
        if not path.exists():
            status.problems.append(f"{name}: listed in the manifest but missing")
        elif sha256_file(path) != digest:
            status.problems.append(f"{name}: does not match its SHA-256 in the manifest")
    for name in sorted(present - set(status.files)):
        status.problems.append(f"{name}: not listed in the manifest")
    sig_path = directory / SIGNATURE
    if sig_path.exists():
        status.signed = True
        try:
            signature = bytes.fromhex(sig_path.read_text().strip())
        except ValueError:
            signature = b""
        for name, pem in (trusted or {}).items():
            try:
                eddsa.new(ECC.import_key(pem), "rfc8032").verify(raw, signature)
            except (ValueError, TypeError):
                continue
            status.signature_valid = True
            status.signer = name
            status.signer_fingerprint = key_fingerprint(pem)
            break
        if not status.signature_valid:
            status.problems.append("manifest signature does not verify with any trusted key")
    else:
        status.problems.append("the pack is not signed")
    return status


def trusted_keys(directory: Path) -> dict[str, str]:
    """Public keys (``*.pub.pem``) in ``directory``, by file name stem."""
    if not directory.is_dir():
        return {}
    return {
        p.name.removesuffix(".pub.pem"): p.read_text() for p in sorted(directory.glob("*.pub.pem"))
    }


def generate_key() -> tuple[str, str]:
    """A new Ed25519 key pair as (private PEM, public PEM)."""
    key = ECC.generate(curve="Ed25519")
    return key.export_key(format="PEM"), key.public_key().export_key(format="PEM")
