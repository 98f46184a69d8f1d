"""The test specification of a scenario pack as a document: HTML from the report's templates
and style, then PDF/A-3b with the pack manifest attached.

Made from the specification data (``stslab.spec.pack_spec``) alone, as a report is made from
its record: what the lab will test, how, against which tolerances, before any testing.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from reports.render import MANIFEST_NAME, TEMPLATES, _environment, _weasyprint, write_pdfa


def render_spec_html(spec: dict[str, Any], issued: datetime, view: str = "browser") -> str:
    """The specification as one self-contained HTML document (``view`` "browser" or "pdf")."""
    env = _environment()
    return env.get_template("spec.html").render(
        spec=spec,
        pack=spec["pack"],
        view=view,
        css=(TEMPLATES / "report.css").read_text(),
        issued=issued.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        issued_iso=issued.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def render_spec_pdf(spec: dict[str, Any], manifest_bytes: bytes, issued: datetime) -> bytes:
    """The specification as PDF/A-3b with the pack manifest attached (its SHA-256 is the
    pack's identity, stated on every page)."""
    weasyprint = _weasyprint()
    pack = spec["pack"]
    digest = hashlib.sha256(manifest_bytes).hexdigest()
    if digest != pack["manifest_sha256"]:
        raise ValueError("the manifest is not the one the specification was made from")
    when = issued.astimezone(UTC)
    attachment = weasyprint.Attachment(
        string=manifest_bytes, name=MANIFEST_NAME, created=when, modified=when,
        description=f"scenario pack manifest {pack['id']} {pack['version']} (SHA-256 {digest})",
        relationship="Source",
    )  # fmt: skip
    return write_pdfa(render_spec_html(spec, issued, view="pdf"), [attachment])
