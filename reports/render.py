"""The certification report as a view of the record: HTML from Jinja2 templates, then
PDF/A-3b with the record and the scenario pack manifest attached (WeasyPrint).

What goes on the pages is what ISO/IEC 17025 §7.8 asks of a test report; every value comes
from the record (``record.json``) or from the report's own identity (id, revision, issue
date, signer). Evidence frames are embedded only after their SHA-256 matches the record.
Nothing here talks to a bench.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from reports import charts

TEMPLATES = Path(__file__).parent / "templates"
#: The report's PDF/A part and conformance level: PDF/A-3 is PDF 1.7, and the signature must
#: keep it there (see ``reports.sign``).
PDFA_VARIANT = "pdf/a-3b"
RECORD_NAME = "record.json"
MANIFEST_NAME = "manifest.yaml"
PRE_SUBMISSION_BANNER = "PRE-SUBMISSION — NOT A CERTIFICATION REPORT"
DEVELOPMENT_NOTICE = "signed with a development certificate"
EVIDENCE_SCHEME = "evidence"
REPORT_FILE = re.compile(r"^report-(?P<run>.+)-R(?P<rev>\d+)\.pdf$")
#: PDF document-information keys the verifier reads back (WeasyPrint writes a meta name in
#: lower case, letters and digits only).
META_KEYS = {
    "report_id": "stslabreportid",
    "record_sha256": "stslabrecordsha256",
    "manifest_sha256": "stslabmanifestsha256",
    "mode": "stslabmode",
    "verdict": "stslabverdict",
    "signer_cert_sha256": "stslabsignercertsha256",
    "development_signer": "stslabdevelopmentsigner",
    "supersedes": "stslabsupersedes",
}
#: Names whose values never reach a page, whatever a future record carries.
SECRET_NAMES = re.compile(r"(password|secret|private|vending_key|decoder_key|key_data)", re.I)


class ReportError(Exception):
    """A report cannot be made from this run (the message says what and where)."""


@dataclass(frozen=True)
class SignerInfo:
    """The certificate that will sign the report, as the pages name it."""

    subject: str
    organisation: str | None
    cert_sha256: str
    development: bool
    issuer: str = ""


@dataclass(frozen=True)
class ReportMeta:
    """The report's own identity: id, revision, issue time, what it supersedes and why."""

    report_id: str
    revision: int
    issued: datetime
    supersedes: str | None = None
    amendment_reason: str | None = None


@dataclass
class Run:
    """Everything a report is made from: the record's bytes, the pack manifest's bytes, the
    evidence frames the record references (verified against their SHA-256) and, from the
    issuer, what its check of the run's journal found (a sentence; None when it checked
    none, and the report then gives the record's own journal head)."""

    record_bytes: bytes
    record: dict[str, Any]
    manifest_bytes: bytes
    manifest_source: str
    evidence: dict[str, bytes] = field(default_factory=dict)
    journal_note: str | None = None

    @property
    def record_sha256(self) -> str:
        return hashlib.sha256(self.record_bytes).hexdigest()

    @property
    def manifest_sha256(self) -> str:
        return hashlib.sha256(self.manifest_bytes).hexdigest()


# --- reading a run ------------------------------------------------------------------------


def load_run(run_dir: str | Path, pack_dir: str | Path | None = None) -> Run:
    """Read ``record.json`` of a run folder, find the pack manifest the record names (by its
    SHA-256) and load every evidence frame the record references.

    Raises :class:`ReportError` when the record is missing or unreadable, the manifest
    cannot be found, or an evidence file is missing or does not match its hash.
    """
    run_dir = Path(run_dir)
    path = run_dir / RECORD_NAME
    try:
        record_bytes = path.read_bytes()
    except FileNotFoundError:
        raise ReportError(f"{path}: no record (a run that has not finished has none; "
                          "finish it with `stslab certify --resume`)") from None  # fmt: skip
    except OSError as exc:
        raise ReportError(f"{path}: cannot read the record: {exc}") from None
    record = parse_record(record_bytes, str(path))
    manifest, source = find_manifest(record, run_dir, pack_dir)
    evidence = load_evidence(record, run_dir)
    return Run(record_bytes, record, manifest, source, evidence)


def parse_record(data: bytes, where: str) -> dict[str, Any]:
    """The record as a dict; a clear error for anything that is not a stslab record."""
    try:
        record = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ReportError(f"{where}: not JSON: {exc}") from None
    if not isinstance(record, dict) or not str(record.get("schema", "")).startswith(
        "stslab.record/"
    ):
        raise ReportError(f"{where}: not a stslab record (no 'schema': 'stslab.record/…')")
    missing = [k for k in ("run_id", "mode", "job", "dut", "bench", "pack", "summary",
                           "scenarios", "decision_rule") if k not in record]  # fmt: skip
    if missing:
        raise ReportError(f"{where}: the record has no {', '.join(missing)}")
    wrong = [
        k for k in ("job", "dut", "bench", "pack", "summary") if not isinstance(record[k], dict)
    ]
    if wrong or not isinstance(record["scenarios"], list):
        raise ReportError(f"{where}: malformed record ({', '.join(wrong) or 'scenarios'})")
    if record["mode"] not in ("accredited", "pre-submission"):
        raise ReportError(f"{where}: mode {record['mode']!r} is not accredited or pre-submission")
    return record


def find_manifest(
    record: dict[str, Any], run_dir: Path, pack_dir: str | Path | None = None
) -> tuple[bytes, str]:
    """The exact bytes of the pack manifest the record names by SHA-256.

    Looked for in ``pack_dir``, the run folder, and the pack folder the run used; failing
    those, the manifest is rebuilt from the record's pack entry the way ``stslab pack
    manifest`` writes it, and used only if its SHA-256 matches.
    """
    want = record["pack"].get("manifest_sha256")
    places = []
    if pack_dir is not None:
        places.append(Path(pack_dir) / MANIFEST_NAME)
    places.append(run_dir / MANIFEST_NAME)
    if record.get("config", {}).get("pack"):
        places.append(Path(record["config"]["pack"]) / MANIFEST_NAME)
    for place in places:
        try:
            data = place.read_bytes()
        except OSError:
            continue
        if hashlib.sha256(data).hexdigest() == want:
            return data, str(place)
    pack = record["pack"]
    doc = {"pack": pack.get("id"), "version": pack.get("version"), "title": pack.get("title"),
           "standards": pack.get("standards"), "files": pack.get("files")}  # fmt: skip
    rebuilt = yaml.safe_dump(doc, sort_keys=False).encode()
    if hashlib.sha256(rebuilt).hexdigest() == want:
        return rebuilt, "rebuilt from the record (byte-identical)"
    tried = ", ".join(str(p) for p in places)
    raise ReportError(f"no pack manifest with SHA-256 {want} (tried {tried}); "
                      "give the pack folder the run used with --pack")  # fmt: skip


def display_frames(record: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Every display-frame evidence entry in the record."""
    for scenario in record.get("scenarios", []):
        for step in scenario.get("steps", []):
            for ev in step.get("evidence", []):
                if ev.get("kind") == "display_frame":
                    yield ev


def load_evidence(record: dict[str, Any], run_dir: Path) -> dict[str, bytes]:
    """The PNG of every referenced frame, by SHA-256, each checked against its hash."""
    out: dict[str, bytes] = {}
    root = run_dir.resolve()
    for ev in display_frames(record):
        name, digest = ev.get("file"), str(ev.get("sha256", ""))
        if not name or digest in out:
            continue
        path = (run_dir / name).resolve()
        if root not in path.parents:
            raise ReportError(f"evidence {name!r} points outside the run folder")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ReportError(f"evidence {path}: cannot read: {exc.strerror or exc}") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise ReportError(f"evidence {path}: SHA-256 {actual} is not the record's {digest}")
        out[digest] = data
    return out


# --- report identity ----------------------------------------------------------------------


def report_file_name(run_id: str, revision: int) -> str:
    return f"report-{run_id}-R{revision}.pdf"


def report_id(record: dict[str, Any], revision: int) -> str:
    """Unique per run and revision: the run id is unique, the revision counts amendments."""
    return f"STS-{record['run_id']}-R{revision}"


def existing_revisions(directory: Path, run_id: str) -> list[int]:
    """Revisions of this run's report already issued into ``directory``."""
    found = []
    for path in directory.glob(f"report-{run_id}-R*.pdf"):
        m = REPORT_FILE.match(path.name)
        if m and m["run"] == run_id:
            found.append(int(m["rev"]))
    return sorted(found)


# --- the view the templates draw ----------------------------------------------------------


_NUMERIC = re.compile(r"^[-+≥≤<>]?\s*\d")


def _unit(text: str, unit: str | None) -> str:
    """A numeric value with its unit ("0.500" -> "0.500 kWh"); words are left alone."""
    if not unit or text.endswith(f" {unit}") or not _NUMERIC.match(text):
        return text
    return f"{text} {unit}"


_LAST_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?=[^0-9]*$)")


def with_uncertainty(text: str, unit: str | None, budget: dict[str, Any] | None) -> str:
    """An observed value as ``value ± U unit`` when the record has its budget ("10.000" ->
    "10.000 ± 0.00082 kWh", "open by 3.00 s" -> "open by 3.00 ± 0.12 s")."""
    unit = unit or (budget or {}).get("unit") or None
    if not budget or budget.get("U") is None:
        return _unit(text, unit)
    match = _LAST_NUMBER.search(text)
    if match is None or not _same_number(match.group(), budget.get("value")):
        return f"{_unit(text, unit)} (U = {budget['U']}{' ' + unit if unit else ''})"
    marked = f"{text[: match.end()]} ± {budget['U']}{text[match.end() :]}"
    return _unit(marked, unit)


def _same_number(shown: str, value: Any) -> bool:
    """Whether ``shown`` is ``value`` to as many decimals as it shows (a time shown 3.00)."""
    decimals = len(shown.split(".", 1)[1]) if "." in shown else 0
    try:
        return round(float(value), decimals) == float(shown)
    except (TypeError, ValueError):
        return False


def _safe_items(mapping: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in mapping.items() if not SECRET_NAMES.search(k)]


def describe_action(step: dict[str, Any]) -> str:
    """What the step did, in a line (never key material: keys appear by fingerprint)."""
    a = step.get("action") or {}
    kind = step.get("kind")
    if kind in ("token", "setup") and "token" in a:
        t = a["token"]
        parts = [str(t.get("kind", "token"))]
        if t.get("amount") is not None:
            parts.append(f"{t['amount']} {t.get('unit', '')}".strip())
        for name, label in (("watts", "W"), ("register", "register"), ("value", "value")):
            if t.get(name) is not None:
                parts.append(f"{t[name]} {label}" if name == "watts" else f"{label} {t[name]}")
        if t.get("tid") is not None:
            parts.append(f"TID {t['tid']}")
        text = ", ".join(parts)
        if kind == "setup":
            text = f"top-up {text}"
        if a.get("carrier"):
            text += f" via {a['carrier']}"
        if a.get("digits"):
            text += f": {a['digits']}"
        if a.get("key"):
            text += f" (key {a['key']})"
        if a.get("corrupted"):
            text += f" — deliberately corrupted ({a['corrupted']})"
        return text
    if kind == "setup":
        return "baseline: load off, supply on"
    if kind == "recovery":
        return f"bring the bench back to rest after {a.get('after', 'a fault')}"
    if kind in ("token", "raw", "key_change") and not a:
        return f"{kind.replace('_', ' ')} (nothing was entered: see the error)"
    if kind == "key_change":
        nk = a.get("new_key", {})
        sections = ", ".join(str(s) for s in a.get("sections", []))
        text = f"key change set, sections {sections} via {a.get('carrier', '?')}"
        attrs = [f"{k.upper()} {nk[k]}" for k in ("krn", "kt", "ti", "ken") if k in nk]
        if nk.get("base_date") is not None:
            attrs.append(f"base date {nk['base_date']}")
        if nk.get("ro"):
            attrs.append("rollover")
        if nk.get("fingerprint"):
            attrs.append(f"key {nk['fingerprint']}")
        return text + (" → " + ", ".join(attrs) if attrs else "")
    if kind == "raw":
        text = f"raw entry {a.get('digits', '')} via {a.get('carrier', '?')}"
        return text + (f" ({a['malformed']})" if a.get("malformed") else "")
    if kind == "keys":
        return "keys " + " ".join(str(k) for k in a.get("keys", []))
    if kind == "load":
        if not a.get("on"):
            return "load off"
        unit = {"CP": "W", "CC": "A", "CR": "Ω"}.get(str(a.get("mode", "")).upper(), "")
        return f"load on, {a.get('mode', '')} {a.get('setpoint', '')} {unit}".rstrip()
    if kind == "source":
        if not a.get("output"):
            return "supply off"
        extra = [f"{a[k]} {u}" for k, u in (("voltage", "V"), ("frequency", "Hz")) if a.get(k)]
        return "supply on" + (", " + ", ".join(extra) if extra else "")
    if kind == "wait":
        if a.get("seconds") is not None:
            return f"wait {a['seconds']} s"
        if a.get("energy_wh") is not None:
            return f"wait for {a['energy_wh']} Wh (at most {a.get('timeout_s')} s)"
        if a.get("display") == "credit":
            return f"wait until the display shows the credit (at most {a.get('timeout_s')} s)"
        return f"wait until the load switch is {a.get('relay')} (at most {a.get('timeout_s')} s)"
    if kind == "power_cycle":
        return f"supply off for {a.get('off_s')} s, then on"
    if kind == "operator":
        return f"operator: {a.get('prompt', '')}"
    if kind == "observe":
        return "observe"
    return ", ".join(f"{k} {v}" for k, v in _safe_items(a)) or str(kind)


_OBSERVATION_LABELS = {
    "energy_wh": ("energy used", "Wh"),
    "credit_before": ("credit before", "kWh"),
    "credit_after": ("credit after", "kWh"),
    "relay": ("load switch", None),
    "relay_transition_s": ("load switch state seen by", "s"),
    "display": ("display", None),
    "results": ("result", None),
    "section_results": ("results per section", None),
    "key_events": ("key events", None),
    "operator": ("operator", None),
}


def describe_observations(
    obs: dict[str, Any], measurements: dict[str, Any] | None = None
) -> list[str]:
    """The step's observations as short labelled lines with units (``value ± U unit`` where
    the record has the observation's uncertainty budget)."""
    lines = []
    budgets = measurements or {}
    for key, value in _safe_items(obs):
        if key == "samples":
            lines.append(f"{len(value)} samples (see the timeline)")
            continue
        if key == "twin":
            continue  # the side-effect section of the scenario shows it
        label, unit = _OBSERVATION_LABELS.get(key, (key.replace("_", " "), None))
        if isinstance(value, list):
            value = ", ".join("—" if v is None else str(v) for v in value)
        lines.append(f"{label}: {with_uncertainty(str(value), unit, budgets.get(key))}")
    return lines


def describe_uncertainty(stated: Any) -> str | None:
    """A calibration record's uncertainty statements in a line ("U (k = 2): energy 0.1 %")."""
    if not stated:
        return None
    if not isinstance(stated, dict):  # a record from before the statements had a form
        return str(stated)
    order = ("voltage", "current", "power", "energy", "time")  # as a certificate lists them
    ranked = sorted(stated, key=lambda q: (order.index(q) if q in order else len(order), q))
    parts = [f"{q} {stated[q]}" for q in ranked if q != "k" and stated[q]]
    return f"U (k = {stated.get('k', 2):g}): {'; '.join(parts)}" if parts else None


def uncertainty_summary(record: dict[str, Any]) -> list[dict[str, Any]]:
    """Per quantity: how many results, the range of U, and the budget of the largest U (its
    components, and what the bench did not state) — the report's uncertainty table."""
    by_quantity: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for scenario in record.get("scenarios", []):
        for step in scenario.get("steps", []):
            budgets = list((step.get("measurements") or {}).values())
            budgets += [c["uncertainty"] for c in step.get("checks", []) if c.get("uncertainty")]
            # A check on a reading shares the reading's budget: count it once.
            unique = {json.dumps(b, sort_keys=True): b for b in budgets if isinstance(b, dict)}
            for b in unique.values():
                if b.get("U") is not None:
                    by_quantity.setdefault((b.get("quantity", ""), b.get("unit", "")), []).append(b)
    rows = []
    for (quantity, unit), budgets in sorted(by_quantity.items()):
        values = [float(b["U"]) for b in budgets]
        largest = max(budgets, key=lambda b: float(b["U"]))
        rows.append({
            "quantity": quantity, "unit": unit, "count": len(budgets),
            "low": min(budgets, key=lambda b: float(b["U"]))["U"], "high": largest["U"],
            "same": min(values) == max(values), "k": largest.get("k", 2),
            "components": largest.get("components", []),
            "missing": sorted({m for b in budgets for m in b.get("missing", [])}),
        })  # fmt: skip
    return rows


def _decisive(frames: list[dict[str, Any]], observed: str) -> dict[str, Any] | None:
    """The frame a display check was decided on: the last one that read what was observed."""
    matching = [f for f in frames if f.get("text") == observed]
    if matching:
        return matching[-1]
    return frames[-1] if frames else None


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _plain_setup(step: dict[str, Any]) -> bool:
    """A setup step that only set the baseline (load off, supply on) and passed."""
    return (step.get("kind") == "setup" and step.get("outcome") == "PASS" and not step.get("action")
            and not step.get("checks") and not step.get("observations"))  # fmt: skip


def scenario_view(
    scenario: dict[str, Any], evidence: dict[str, bytes], inline: bool = True
) -> dict[str, Any]:
    """A scenario as the results table draws it: one row per check, steps numbered."""
    steps = []
    number = 0
    for step in scenario.get("steps", []):
        if _plain_setup(step):
            continue  # the baseline every scenario starts from; the report says so once
        if step.get("kind") in ("setup", "recovery"):
            label = step["kind"]
        else:
            number += 1
            label = str(number)
        frames = []
        for ev in step.get("evidence", []):  # a frame read twice is shown once
            if ev.get("kind") == "display_frame" and all(ev.get("sha256") != f.get("sha256")
                                                         for f in frames):  # fmt: skip
                frames.append(ev)
        decided: set[str] = set()
        checks = []
        for check in step.get("checks", []):
            row = {
                "name": check.get("name", ""),
                "expected": _unit(str(check.get("expected", "")), check.get("unit")),
                "observed": with_uncertainty(
                    str(check.get("observed", "")), check.get("unit"), check.get("uncertainty")
                ),
                "outcome": check.get("outcome", ""),
                "guard_band": bool(check.get("guard_band")),
                "detail": check.get("detail", ""),
                "frame": None,
            }
            if check.get("name") == "display" and frames:
                frame = _decisive(frames, str(check.get("observed", "")))
                if frame is not None:
                    decided.add(frame["sha256"])
                    row["frame"] = frame["sha256"]
            checks.append(row)
        thumbs = []
        for ev in frames:
            png = evidence.get(ev.get("sha256", ""))
            thumbs.append({
                "sha256": ev.get("sha256", ""),
                "text": ev.get("text", ""),
                "confidence": ev.get("confidence"),
                "annunciators": ", ".join(ev.get("annunciators", [])),
                "src": None if not png else _data_uri("image/png", png) if inline
                else f"{EVIDENCE_SCHEME}:{ev['sha256']}",
                "decided": ev.get("sha256") in decided,
            })  # fmt: skip
        steps.append({
            "number": label,
            "label": step.get("label", ""),
            "kind": step.get("kind", ""),
            "action": describe_action(step),
            "outcome": step.get("outcome", ""),
            "checks": checks,
            "observations": describe_observations(step.get("observations") or {},
                                                  step.get("measurements")),
            "error": step.get("error"),
            "retries": step.get("retries", []),
            "frames": thumbs,
            "modelled_s": step.get("modelled_s", 0.0),
        })  # fmt: skip
    return {
        "side_effects": side_effect_rows(scenario),
        "id": scenario.get("id", ""),
        "title": scenario.get("title", ""),
        "group": scenario.get("group", ""),
        "clauses": scenario.get("clauses", []),
        "outcome": scenario.get("outcome", ""),
        "skip_reason": scenario.get("skip_reason"),
        "bench": scenario.get("bench"),
        "sample": scenario.get("sample"),
        "source_file": Path(str(scenario.get("source_file", ""))).name,
        "modelled_s": scenario.get("modelled_s", 0.0),
        "steps": steps,
        "timeline": charts.timeline_chart(scenario),
    }


def side_effect_rows(scenario: dict[str, Any]) -> list[dict[str, Any]]:
    """Per step, what the reference twin compared, what not (and why), and each difference."""
    rows = []
    number = 0
    for step in scenario.get("steps", []):
        if step.get("kind") == "setup":
            continue
        number += 1
        twin = (step.get("observations") or {}).get("twin")
        if not isinstance(twin, dict):
            continue
        rows.append({
            "number": str(number),
            "compared": len(twin.get("compared", [])),
            "not_compared": _not_compared(twin.get("not_compared") or {}),
            "differences": [c.get("detail") or c.get("name", "") for c in step.get("checks", [])
                            if str(c.get("name", "")).startswith("side effect:")],
            "synchronised": bool(twin.get("synchronised")),
        })  # fmt: skip
    return rows


def _not_compared(off: dict[str, str]) -> str:
    """Observables not compared, grouped by why ("display, annunciator.kwh (why)")."""
    by_why: dict[str, list[str]] = {}
    for name, why in sorted(off.items()):
        by_why.setdefault(why, []).append(name)
    return "; ".join(f"{', '.join(names)} ({why})" for why, names in by_why.items())


def _date(iso: str | None) -> str:
    if not iso:
        return "—"
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return str(iso)


def accredited_problems(record: dict[str, Any], signer: SignerInfo | None) -> list[str]:
    """Why this record cannot make an accredited report (empty when it can)."""
    problems = []
    pack = record["pack"]
    if not pack.get("untampered"):
        problems.append("the scenario pack was not verified untampered")
    for name, bench in _benches(record):
        if bench.get("simulated"):
            problems.append("the bench was simulated (SimLab)")
        for role, inst in bench.get("instruments", {}).items():
            status = inst.get("calibration_status")
            if status not in ("in calibration", "not required"):
                problems.append(f"instrument {name}{role}: {status}")
    if signer is not None and signer.development:
        problems.append("the signing certificate is a development certificate, "
                        "not the lab's")  # fmt: skip
    return problems


def _benches(record: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(prefix, bench record) per bench that ran; the prefix names the bench when several."""
    ran = [b for b in record.get("benches", []) if b.get("started")]
    if len(ran) <= 1:
        return [("", record["bench"])]
    return [(f"{b['name']}: ", b["bench"]) for b in ran]


def build_context(
    run: Run, meta: ReportMeta, signer: SignerInfo | None, view: str = "pdf"
) -> dict[str, Any]:
    """Everything the templates draw."""
    record = run.record
    pre = record["mode"] != "accredited"
    if not pre:
        problems = accredited_problems(record, signer)
        if problems:
            raise ReportError("this record cannot make an accredited report: " +
                              "; ".join(problems))  # fmt: skip
    job = record["job"]
    instruments = []
    for name, bench in _benches(record):
        for role, inst in sorted(bench.get("instruments", {}).items()):
            cal = inst.get("calibration") or {}
            instruments.append({"role": name + role, **{k: inst.get(k) for k in
                                                        ("driver", "address", "identity")},
                                "certificate": cal.get("certificate"),
                                "calibrated": cal.get("date"), "due": cal.get("due"),
                                "cal_lab": cal.get("lab"),
                                "uncertainty": describe_uncertainty(cal.get("uncertainty")),
                                "note": cal.get("note"),
                                "status": inst.get("calibration_status")})  # fmt: skip
    # A browser view carries its frames inline; the PDF renderer fetches them by hash.
    scenarios = [scenario_view(s, run.evidence, inline=view != "pdf") for s in record["scenarios"]]
    return {
        "view": view,
        "record": record,
        "job": job,
        "dut": record["dut"],
        "pack": record["pack"],
        "bench": record["bench"],
        "benches": [b for b in record.get("benches", []) if b.get("started")],
        "summary": record["summary"],
        "meta": meta,
        "signer": signer,
        "pre_submission": pre,
        "banner": PRE_SUBMISSION_BANNER if pre else None,
        "development_notice": DEVELOPMENT_NOTICE if signer and signer.development else None,
        "title": ("Pre-submission test report" if pre else "Certification test report")
        + " — STS prepayment electricity meter",
        "record_sha256": run.record_sha256,
        "manifest_sha256": run.manifest_sha256,
        "manifest_source": run.manifest_source,
        "journal_note": run.journal_note,
        "instruments": instruments,
        "recoveries": record.get("recoveries", []),  # records before recovery have none
        "decision": record.get("decision") or {},
        "uncertainty": uncertainty_summary(record),
        "scenarios": scenarios,
        "verdict_chart": charts.verdict_chart(record),
        "groups": charts.group_counts(record),
        "started": _date(record.get("started")),
        "finished": _date(record.get("finished")),
        "issued": meta.issued.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "issued_iso": meta.issued.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "software": f"stslab {_version()}",
        "meta_keys": META_KEYS,
        "meta_values": metadata_values(run, meta, signer),
    }


def _version() -> str:
    """The installed stslab's version (read from its distribution: reports import nothing of
    the harness)."""
    try:
        return metadata.version("stslab")
    except metadata.PackageNotFoundError:
        return "(version unknown: not installed)"


def metadata_values(run: Run, meta: ReportMeta, signer: SignerInfo | None) -> dict[str, str]:
    """The document-information entries that bind the pages to the attachments and signer."""
    return {
        "report_id": meta.report_id,
        "record_sha256": run.record_sha256,
        "manifest_sha256": run.manifest_sha256,
        "mode": run.record["mode"],
        "verdict": str(run.record["summary"].get("verdict", "")),
        "signer_cert_sha256": signer.cert_sha256 if signer else "",
        "development_signer": "yes" if signer and signer.development else "no",
        "supersedes": meta.supersedes or "",
    }


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["short"] = lambda h, n=16: (h or "")[:n]
    env.filters["css_string"] = css_string
    return env


def css_string(text: str) -> Markup:
    """``text`` as a quoted CSS string that nothing in it can break out of (for the page
    margin boxes, which take their text from the style sheet)."""
    safe = "".join(c if c.isalnum() or c in " .,:;-_/()·—+" else f"\\{ord(c):x} " for c in text)
    return Markup(f'"{safe}"')


def render_html(
    run: Run, meta: ReportMeta, signer: SignerInfo | None, view: str = "browser"
) -> str:
    """The report as one self-contained HTML document (``view`` "browser" or "pdf")."""
    env = _environment()
    context = build_context(run, meta, signer, view)
    context["css"] = (TEMPLATES / "report.css").read_text()
    return env.get_template("report.html").render(**context)


def render_pdf(run: Run, meta: ReportMeta, signer: SignerInfo | None) -> bytes:
    """The report as PDF/A-3b, the record and the manifest attached as associated files."""
    weasyprint = _weasyprint()
    html = render_html(run, meta, signer, view="pdf")
    issued = meta.issued.astimezone(UTC)
    attachments = [
        weasyprint.Attachment(string=run.record_bytes, name=RECORD_NAME,
                              description=f"stslab record of run {run.record['run_id']} "
                                          f"(SHA-256 {run.record_sha256})",
                              created=issued, modified=issued, relationship="Data"),
        weasyprint.Attachment(string=run.manifest_bytes, name=MANIFEST_NAME,
                              description=f"scenario pack manifest {run.record['pack'].get('id')} "
                                          f"{run.record['pack'].get('version')} "
                                          f"(SHA-256 {run.manifest_sha256})",
                              created=issued, modified=issued, relationship="Source"),
    ]  # fmt: skip
    return write_pdfa(html, attachments, _evidence_fetcher(run.evidence))


def _weasyprint() -> Any:
    with warnings.catch_warnings():
        # Without the HarfBuzz-Subset library WeasyPrint subsets the embedded fonts with
        # fontTools (the fonts are embedded all the same) and says at import that a future
        # version will need the library: nothing a user of a report can act on.
        warnings.filterwarnings("ignore", "HarfBuzz-Subset will be required", DeprecationWarning,
                                r"weasyprint\.")  # fmt: skip
        import weasyprint
    return weasyprint


def write_pdfa(html: str, attachments: list[Any], url_fetcher: Any = None) -> bytes:
    """``html`` as PDF/A-3b with ``attachments`` (WeasyPrint attachments) as associated files;
    every document stslab issues is written here, so all share one PDF/A setting."""
    weasyprint = _weasyprint()
    if url_fetcher is None:  # nothing to fetch: never reach a network or a disk
        from weasyprint.urls import URLFetcher

        url_fetcher = URLFetcher(allowed_protocols={"data"}, fail_on_errors=True)
    document = weasyprint.HTML(string=html, url_fetcher=url_fetcher)
    with warnings.catch_warnings():
        # WeasyPrint opens its sRGB profile (the PDF/A output intent) and leaves the file to
        # the garbage collector; the bytes are read, only the warning would reach the console.
        warnings.filterwarnings("ignore", r"unclosed file .*sRGB2014\.icc", ResourceWarning)
        return document.write_pdf(pdf_variant=PDFA_VARIANT, custom_metadata=True,
                                  attachments=attachments, uncompressed_pdf=False)  # fmt: skip


def _evidence_fetcher(evidence: dict[str, bytes]) -> Any:
    """A URL fetcher that serves verified evidence frames by hash and nothing else: the
    report never reaches a network or a disk while it renders."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class EvidenceFetcher(URLFetcher):
        def fetch(self, url: str, headers: Any = None) -> Any:
            scheme, _, digest = url.partition(":")
            if scheme == EVIDENCE_SCHEME and digest in evidence:
                return URLFetcherResponse(url, body=evidence[digest],
                                          headers={"Content-Type": "image/png"})  # fmt: skip
            return super().fetch(url, headers)

    return EvidenceFetcher(allowed_protocols={"data"}, fail_on_errors=True)
