"""``stslab pack``: build, sign and verify scenario pack manifests; write the pack's test
specification; print the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from stslab.cli.errors import ArgumentError

app = typer.Typer(help="Scenario packs: manifest, signature, test specification, schema.",
                  no_args_is_help=True, rich_markup_mode=None)  # fmt: skip


@app.command("manifest")
def manifest(
    directory: Annotated[Path, typer.Argument(help="The pack folder.")],
    pack_id: Annotated[str, typer.Option("--id", help="Pack id, e.g. sts-core.")],
    version: Annotated[str, typer.Option(help="Pack version.")],
    standard: Annotated[
        list[str] | None, typer.Option(help="A standard edition the pack tests (repeatable).")
    ] = None,
    title: Annotated[str, typer.Option(help="Pack title.")] = "",
) -> None:
    """Write manifest.yaml (SHA-256 of every scenario file); removes an old signature."""
    from stslab.pack import PackError, build_manifest

    if not directory.is_dir():
        raise ArgumentError("DIRECTORY", f"{directory} is not a folder")
    _scenarios_load(directory)  # every scenario must load before a manifest vouches for it
    try:
        path = build_manifest(directory, pack_id, version, list(standard or ()), title)
    except PackError as exc:
        raise ArgumentError("DIRECTORY", str(exc)) from None
    typer.echo(f"wrote {path}")


@app.command("sign")
def sign(
    directory: Annotated[Path, typer.Argument(help="The pack folder.")],
    key: Annotated[Path, typer.Option(help="Ed25519 private key (PEM) of the scheme owner.")],
) -> None:
    """Sign the pack's manifest (writes manifest.sig)."""
    from stslab.pack import PackError, read_manifest, sign_pack

    try:
        read_manifest(directory)
    except PackError as exc:
        raise ArgumentError("DIRECTORY", str(exc)) from None
    _scenarios_load(directory)  # a signature vouches for scenarios that load
    try:
        pem = key.read_text()
    except OSError as exc:
        raise ArgumentError("--key", f"{key}: cannot read: {exc.strerror}") from None
    try:
        path = sign_pack(directory, pem)
    except (PackError, ValueError) as exc:
        raise ArgumentError("--key", f"{key}: {exc}") from None
    typer.echo(f"wrote {path}")


@app.command("verify")
def verify(
    directory: Annotated[Path, typer.Argument(help="The pack folder.")],
    key: Annotated[
        list[Path] | None, typer.Option(help="Trusted public key (PEM), repeatable.")
    ] = None,
) -> None:
    """Check every file against the manifest and the signature against the trusted keys."""
    from stslab.pack import PackError, verify_pack

    trusted = {}
    for p in key or ():
        try:
            trusted[p.name] = p.read_text()
        except OSError as exc:
            raise ArgumentError("--key", f"{p}: cannot read: {exc.strerror}") from None
    try:
        status = verify_pack(directory, trusted)
    except PackError as exc:
        raise ArgumentError("DIRECTORY", str(exc)) from None
    _scenarios_load(directory)  # an intact pack whose scenarios do not load is no use either
    typer.echo(f"pack {status.pack_id} {status.version}  manifest sha256 {status.manifest_sha256}")
    verdict = f"valid ({status.signer})" if status.signature_valid else "NOT valid"
    typer.echo(f"signature: {verdict}")
    for problem in status.problems:
        typer.echo(f"problem: {problem}")
    if not status.untampered:
        raise typer.Exit(1)


def _scenarios_load(directory: Path) -> None:
    from stslab.session import CampaignError, load_pack

    try:
        load_pack(directory)
    except CampaignError as exc:
        raise ArgumentError("DIRECTORY", str(exc)) from None


@app.command("doc")
def doc(
    directory: Annotated[
        Path | None, typer.Argument(help="The pack folder (default: the built-in catalogue).")
    ] = None,
    out: Annotated[Path, typer.Option(help="Where to write it: a .pdf (PDF/A) or .html file.")] = (
        Path("spec.pdf")
    ),
    key: Annotated[
        list[Path] | None, typer.Option(help="Trusted public key (PEM), repeatable.")
    ] = None,
) -> None:
    """Write the pack's test specification: pack id, version and hash, standards, every
    scenario with clauses, preconditions, steps and expectations with tolerances, the declared
    parameters each proves, and the coverage matrices."""
    from datetime import UTC, datetime

    from stslab.pack import PackError, read_manifest, trusted_keys, verify_pack
    from stslab.session import DEFAULT_PACK, DEV_KEYS
    from stslab.spec import pack_spec

    directory = directory or DEFAULT_PACK
    suffix = out.suffix.lower()
    if suffix not in (".pdf", ".html"):
        raise ArgumentError("--out", f"{out}: give a .pdf or .html file")
    if not out.parent.is_dir():
        raise ArgumentError("--out", f"{out.parent} is not a folder")
    trusted = {f"{k} (development key)": v for k, v in trusted_keys(DEV_KEYS).items()}
    for p in key or ():
        try:
            trusted[p.name.removesuffix(".pub.pem")] = p.read_text()
        except OSError as exc:
            raise ArgumentError("--key", f"{p}: cannot read: {exc.strerror}") from None
    if not directory.is_dir():
        raise ArgumentError("DIRECTORY", f"{directory} is not a folder")
    try:
        status = verify_pack(directory, trusted)
        _manifest, manifest_bytes = read_manifest(directory)
    except PackError as exc:
        raise ArgumentError("DIRECTORY", str(exc)) from None
    from stslab.session import CampaignError, load_pack

    try:
        scenarios = load_pack(directory)
    except CampaignError as exc:
        raise ArgumentError("DIRECTORY", str(exc)) from None
    spec = pack_spec(status, scenarios, f"stslab {_version()}")
    issued = datetime.now(UTC)
    if suffix == ".pdf":
        from reports.spec import render_spec_pdf

        data = render_spec_pdf(spec, manifest_bytes, issued)
    else:
        from reports.spec import render_spec_html

        data = render_spec_html(spec, issued).encode()
    from stslab.atomic import replace_file

    replace_file(out, data)
    typer.echo(f"wrote {out} ({len(scenarios)} scenarios, pack {status.pack_id} "
               f"{status.version}, manifest sha256 {status.manifest_sha256[:16]})")  # fmt: skip
    for problem in status.problems:
        typer.echo(f"problem: {problem}")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("stslab")
    except metadata.PackageNotFoundError:
        return "(version unknown: not installed)"


@app.command("keygen")
def keygen(
    private: Annotated[Path, typer.Argument(help="Where to write the private key (PEM).")],
) -> None:
    """Create an Ed25519 key pair for signing packs (PRIVATE.pem and PRIVATE.pub.pem)."""
    from stslab.pack import generate_key

    if private.exists():
        raise ArgumentError("PRIVATE", f"{private} exists; not overwritten")
    priv, pub = generate_key()
    private.write_text(priv)
    private.chmod(0o600)
    public = private.with_name(private.name.removesuffix(".pem") + ".pub.pem")
    public.write_text(pub)
    typer.echo(f"wrote {private} and {public}")


@app.command("schema")
def schema() -> None:
    """Print the JSON schema of the scenario format."""
    from stslab.scenario import json_schema

    typer.echo(json_schema())
