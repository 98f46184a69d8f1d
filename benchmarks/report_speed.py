"""How long the report of a full campaign takes to render and sign, and how big it is.
Prints ``name=value`` lines; asserts nothing.

Takes the record of a run folder (``--run DIR``), or first runs the scenario pack (default:
the shipped catalogue ``suites/sts-core``) against SimLab through the campaign API; the
campaign's own time is printed apart and is not part of the figures:

* ``load_s``: reading the record, finding the pack manifest, checking the journal and every
  evidence frame's SHA-256;
* ``render_s``: HTML from the templates and PDF/A-3b from WeasyPrint (layout, drawing,
  font subsetting), with the record and manifest attached;
* ``sign_s``: the PAdES B-B signature with a development certificate;
* ``report_s``: ``load_s + render_s + sign_s`` (what ``stslab report`` spends past start-up);
* ``verify_s``: ``stslab verify``'s checks of the signed file;
* ``pages``, ``pdf_bytes``, ``scenarios``, ``steps``, ``frames`` (evidence frames embedded).

Each figure is the fastest of ``--repeat`` rounds (default 1).

Usage: ``python benchmarks/report_speed.py [--run DIR] [--pack DIR] [--speed N]
[--select TEXT] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from reports.render import ReportError, ReportMeta, load_run, render_pdf, report_id
from reports.sign import development_signer, sign_pdf
from reports.verify import verify_report
from stslab.pack import PackError
from stslab.session import DEFAULT_PACK, Campaign, CampaignConfig, CampaignError


def campaign(pack: Path, speed: float, select: tuple[str, ...], out: Path) -> tuple[Path, float]:
    """Run the pack on SimLab; (run folder, wall seconds)."""
    started = time.perf_counter()
    with Campaign(CampaignConfig(out=out, pack=pack, speed=speed, select=select)) as c:
        for scenario in c.pending():
            c.run_scenario(scenario)
        c.finish()
        return c.run.directory, time.perf_counter() - started


def pages(pdf: bytes) -> int:
    from pyhanko.pdf_utils.reader import PdfFileReader

    return int(PdfFileReader(io.BytesIO(pdf)).root["/Pages"]["/Count"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="run folder with record.json")
    parser.add_argument("--pack", type=Path, default=DEFAULT_PACK, help="scenario pack folder")
    parser.add_argument("--speed", type=float, default=CampaignConfig().speed)
    parser.add_argument("--select", action="append", default=[], help="scenario ids containing")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (the fastest is printed)")
    args, _ = parser.parse_known_args()  # run_all.py passes every script the same arguments
    with tempfile.TemporaryDirectory(prefix="stslab-report-speed-") as scratch:
        run_dir = args.run
        if run_dir is None:
            try:
                run_dir, wall = campaign(args.pack, args.speed, tuple(args.select),
                                         Path(scratch) / "runs")  # fmt: skip
            except (CampaignError, PackError, ValueError) as exc:  # a pack that will not load
                print(f"report_speed: cannot run {args.pack}: {exc}", file=sys.stderr)
                return 2
            print(f"campaign_wall_s={wall:.1f}")
        signer = development_signer(Path(scratch) / "dev-signer")
        best: dict[str, float] = {}
        for _ in range(max(args.repeat, 1)):
            t0 = time.perf_counter()
            try:
                run = load_run(run_dir)
            except ReportError as exc:
                print(f"report_speed: {exc}", file=sys.stderr)
                return 2
            t1 = time.perf_counter()
            meta = ReportMeta(report_id(run.record, 1), 1, datetime.now(UTC))
            pdf = render_pdf(run, meta, signer.info())
            t2 = time.perf_counter()
            signed = sign_pdf(pdf, signer, signer_name="benchmark", reason="benchmark")
            t3 = time.perf_counter()
            verification = verify_report(signed, dev_dir=Path(scratch) / "dev-signer")
            t4 = time.perf_counter()
            if not verification.ok:
                print(f"report_speed: the report does not verify: {verification.problems}",
                      file=sys.stderr)  # fmt: skip
                return 1
            for name, value in (("load_s", t1 - t0), ("render_s", t2 - t1),
                                ("sign_s", t3 - t2), ("report_s", t3 - t0),
                                ("verify_s", t4 - t3)):  # fmt: skip
                best[name] = min(best.get(name, value), value)
    record = run.record
    print(f"scenarios={record['summary']['scenarios']}")
    print(f"steps={record['summary']['steps']}")
    print(f"frames={len(run.evidence)}")
    print(f"pages={pages(signed)}")
    print(f"pdf_bytes={len(signed)}")
    for name in ("load_s", "render_s", "sign_s", "report_s", "verify_s"):
        print(f"{name}={best[name]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
