"""``stslab report`` and ``stslab verify``: issue the signed report of a run, and check one.

``report`` renders the record of a run folder to PDF/A-3b, signs it (the lab's PKCS#12 or
PEM key, or a development certificate for pre-submission runs) and writes it beside the
record under a new revision: a signed report is never overwritten, and an amended report
names the one it supersedes and why. ``verify`` exits 0 only for an intact, trusted report
whose attachments match its pages.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from stslab.cli.errors import ArgumentError

if TYPE_CHECKING:
    from reports.sign import LabSigner

PASSWORD_ENV = "STSLAB_SIGNER_PASSWORD"


def _quiet_libraries() -> None:
    # pyHanko logs a traceback for every untrusted chain and WeasyPrint a warning per CSS
    # nicety; the command reports the outcome itself.
    for name in ("pyhanko", "pyhanko_certvalidator", "weasyprint", "fontTools"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def _password() -> bytes | None:
    """The signing key's password: the environment variable, else a prompt on a terminal."""
    value = os.environ.get(PASSWORD_ENV)
    if value is not None:
        return value.encode()
    if sys.stdin.isatty():
        return typer.prompt("password of the signing key", hide_input=True).encode()
    return None


def report(
    run_dir: Annotated[Path, typer.Argument(help="Run folder (with record.json).")],
    out: Annotated[
        Path | None, typer.Option(help="Folder for the report (default: the run folder).")
    ] = None,
    p12: Annotated[
        Path | None, typer.Option("--p12", help="Lab key and certificate (PKCS#12 file).")
    ] = None,
    key: Annotated[Path | None, typer.Option(help="Lab private key (PEM or DER).")] = None,
    cert: Annotated[Path | None, typer.Option(help="Lab certificate (PEM or DER).")] = None,
    chain: Annotated[
        list[Path] | None, typer.Option(help="Intermediate CA certificate (repeatable).")
    ] = None,
    tsa: Annotated[
        str | None,
        typer.Option(
            help="RFC 3161 time-stamp authority URL (makes a PAdES B-T signature).",
            envvar="STSLAB_TSA_URL",
        ),
    ] = None,
    dev_signer_dir: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the development certificate (default ~/.stslab/dev-signer).",
            envvar="STSLAB_DEV_SIGNER_DIR",
        ),
    ] = None,
    pack: Annotated[
        Path | None, typer.Option(help="Pack folder holding the manifest the record names.")
    ] = None,
    reason: Annotated[
        str | None, typer.Option(help="Why this revision amends an issued report.")
    ] = None,
    html: Annotated[bool, typer.Option("--html", help="Also write the HTML view.")] = False,
    junit: Annotated[Path | None, typer.Option(help="Also write JUnit XML to this file.")] = None,
) -> None:
    """Render, sign and write the report of a run (a new revision if one exists)."""
    _quiet_libraries()
    from reports.junit import junit_xml
    from reports.render import (
        ReportError,
        ReportMeta,
        existing_revisions,
        load_run,
        render_html,
        render_pdf,
        report_file_name,
        report_id,
    )
    from reports.sign import SigningError
    from stslab import crash
    from stslab.atomic import create_file, replace_file

    # Typer reads the environment for a command line; a direct caller (certify) gets it here.
    tsa = tsa or os.environ.get("STSLAB_TSA_URL") or None
    try:
        run = load_run(run_dir, pack)
    except ReportError as exc:
        raise ArgumentError("RUN_DIR", str(exc)) from None
    record = run.record
    run.journal_note = _check_journal(record, run_dir)
    target = out or run_dir
    if not target.is_dir():
        raise ArgumentError("--out", f"{target} is not a folder")
    signer = _signer(record["mode"], p12, key, cert, chain or [], dev_signer_dir)
    issued = existing_revisions(target, record["run_id"])
    revision = (issued[-1] + 1) if issued else 1
    supersedes = report_id(record, issued[-1]) if issued else None
    if supersedes and not reason:
        raise ArgumentError("--reason", f"report {supersedes} was issued; an amended report "
                            "needs the reason for the amendment")  # fmt: skip
    meta = ReportMeta(report_id(record, revision), revision, datetime.now(UTC), supersedes,
                      reason if supersedes else None)  # fmt: skip
    from reports.sign import sign_pdf

    try:
        pdf = render_pdf(run, meta, signer.info())
        signed = sign_pdf(pdf, signer, signer_name=record["job"]["signer"]["name"],
                          reason=f"Test report {meta.report_id}",
                          location=record["job"]["lab"].get("address") or "",
                          tsa_url=tsa)  # fmt: skip
    except ReportError as exc:
        raise ArgumentError("RUN_DIR", str(exc)) from None
    except SigningError as exc:
        raise ArgumentError("--tsa" if tsa else "signing", str(exc)) from None
    if junit is not None:
        # Before the report: once the report exists the run is finished, and a process killed
        # after it must leave nothing half written.
        replace_file(junit, junit_xml(record).encode())
    crash.point("report-signed")
    path = target / report_file_name(record["run_id"], revision)
    try:
        create_file(path, signed, torn_point="report-torn")
        if html:
            view = path.with_suffix(".html")
            create_file(view, render_html(run, meta, signer.info()).encode())
    except FileExistsError as exc:
        raise ArgumentError("--out", f"{exc.filename} exists; a report is never overwritten"
                            ) from None  # fmt: skip
    kind = " (development certificate)" if signer.development else ""
    typer.echo(f"wrote {path}: report {meta.report_id}, {record['mode']}, verdict "
               f"{record['summary']['verdict']}; signed by {signer.info().subject}{kind}"
               + (", time-stamped" if tsa else ""))  # fmt: skip
    if supersedes:
        typer.echo(f"supersedes {supersedes}")


def _check_journal(record: dict[str, Any], run_dir: Path) -> str | None:
    """Check the record against the run's journals, one per bench (each chain intact, same
    head and length): the sentence the report gives about them, or None when the run folder
    has none."""
    from stslab.journal import JournalError, read_journal

    listed = record.get("journals")
    if listed is None:  # a one-journal record (schema 1)
        listed = [{"file": "journal.jsonl", **record.get("journal", {})}]
    checked = []
    for j in listed:
        path = run_dir / str(j.get("file", ""))
        if not path.is_file() or run_dir.resolve() not in path.resolve().parents:
            continue
        try:
            entries = read_journal(path)
        except JournalError as exc:
            raise ArgumentError("RUN_DIR", f"the journal does not verify: {exc}") from None
        if not entries or entries[-1].hash != j.get("head") or len(entries) != j.get("records"):
            raise ArgumentError("RUN_DIR", f"{run_dir / 'record.json'} does not match {path} "
                                "(the journal has records the record does not)")  # fmt: skip
        checked.append(j)
    if not checked:
        return None
    if len(checked) == 1:
        j = checked[0]
        return f"{j['records']} hash-chained journal records, head {j['head']}, checked at issue"
    heads = "; ".join(f"{j['file']}: {j['records']} records, head {j['head']}" for j in checked)
    return f"{len(checked)} hash-chained journals, one per bench ({heads}), checked at issue"


def _signer(mode: str, p12: Path | None, key: Path | None, cert: Path | None,
            chain: list[Path], dev_dir: Path | None) -> LabSigner:  # fmt: skip
    from reports.sign import SigningError, development_signer, load_pem, load_pkcs12

    try:
        if p12 is not None:
            if key is not None or cert is not None:
                raise ArgumentError("--p12", "give either --p12 or --key and --cert, not both")
            return load_pkcs12(p12, _password, chain)
        if key is not None or cert is not None:
            if key is None or cert is None:
                raise ArgumentError("--key" if key is None else "--cert",
                                    "--key and --cert go together")  # fmt: skip
            return load_pem(key, cert, _password, chain)
        if mode == "accredited":
            raise ArgumentError("--p12", "an accredited report is signed with the lab's "
                                "certificate (--p12, or --key and --cert)")  # fmt: skip
        return development_signer(dev_dir)
    except SigningError as exc:
        param = "--p12" if p12 else "--key" if key else "--dev-signer-dir"
        raise ArgumentError(param, str(exc)) from None


def verify(
    report_pdf: Annotated[Path, typer.Argument(metavar="REPORT", help="Signed report (PDF).")],
    trust: Annotated[
        list[Path] | None,
        typer.Option(
            help="Trusted CA certificate, PEM or DER (repeatable); this computer's "
            "development CA is always trusted."
        ),
    ] = None,
    dev_signer_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of the development certificate.", envvar="STSLAB_DEV_SIGNER_DIR"),
    ] = None,
) -> None:
    """Check a report's signature, that it is unchanged since signing, and that the attached
    record and pack manifest are the ones its pages show. Exit 0 valid, 1 not, 2 when the
    file is no signed report at all."""
    _quiet_libraries()
    from reports.verify import verify_report

    for t in trust or ():
        if not t.is_file():
            raise ArgumentError("--trust", f"{t} is not a file")
    v = verify_report(report_pdf, list(trust or ()), dev_signer_dir)
    if v.not_a_report:
        raise ArgumentError("REPORT", f"{report_pdf}: {v.not_a_report}")
    supersedes = f" (supersedes {v.supersedes})" if v.supersedes else ""
    rows = [
        ("report", (v.report_id or "?") + supersedes),
        ("verdict", v.verdict or "?"),
        ("mode", v.mode or "?"),
        ("signer", (v.signer or "?") + (" (development certificate)" if v.development else "")),
        ("authorised by", v.authorised_by or "?"),
        ("signing time", v.signing_time.isoformat() if v.signing_time else "?"),
        ("time stamp", v.timestamp.isoformat() if v.timestamp else "none (PAdES B-B)"),
        ("trust anchor", v.trust_anchor or "none"),
        ("record sha256", v.record_sha256 or "?"),
        ("pack", f"{v.pack or '?'}, manifest sha256 {v.manifest_sha256 or '?'}"),
    ]  # fmt: skip
    for name, value in rows:
        typer.echo(f"{name + ':':15} {value}")
    if v.ok:
        typer.echo("VALID: signature intact and trusted, the whole file signed, "
                   "attachments match the pages")  # fmt: skip
        return
    typer.echo("INVALID", err=True)
    for problem in v.problems:
        typer.echo(f"stslab: verify: {problem}", err=True)
    raise typer.Exit(1)
