"""JUnit XML from the record, for CI systems: one test suite per clause group, one test
case per scenario. FAIL is a ``failure``, ERROR an ``error`` (a bench fault, not a verdict),
SKIP ``skipped`` with the reason; planned scenarios that never ran are errors too, so an
incomplete campaign never reads as green.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from reports.render import describe_action


def _case_text(scenario: dict[str, Any]) -> str:
    lines = []
    for step in scenario.get("steps", []):
        lines.append(f"[{step.get('outcome')}] {step.get('label')}: {describe_action(step)}")
        for c in step.get("checks", []):
            unit = f" {c['unit']}" if c.get("unit") else ""
            lines.append(f"    {c.get('outcome')} {c.get('name')}: expected {c.get('expected')}"
                         f"{unit}, observed {c.get('observed')}{unit}")  # fmt: skip
        if step.get("error"):
            lines.append(f"    ERROR {step['error']}")
    return "\n".join(lines)


def _failures(scenario: dict[str, Any], outcome: str) -> list[str]:
    out = []
    for step in scenario.get("steps", []):
        if outcome == "ERROR" and step.get("error"):
            out.append(f"{step.get('label')}: {step['error']}")
        for c in step.get("checks", []):
            if c.get("outcome") == outcome:
                out.append(f"{step.get('label')}: {c.get('name')} expected {c.get('expected')}, "
                           f"observed {c.get('observed')}")  # fmt: skip
    return out


def junit_xml(record: dict[str, Any]) -> str:
    """The record as a JUnit XML document (a string, UTF-8 declared)."""
    root = ET.Element("testsuites", name=f"stslab {record.get('run_id', '')}")
    groups: dict[str, list[dict[str, Any]]] = {}
    for scenario in record.get("scenarios", []):
        groups.setdefault(scenario.get("group") or "(no group)", []).append(scenario)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
    pack = record.get("pack", {})
    dut = record.get("dut", {})
    for group, scenarios in groups.items():
        suite = ET.SubElement(root, "testsuite", name=group)
        props = ET.SubElement(suite, "properties")
        for name, value in (("run_id", record.get("run_id")), ("mode", record.get("mode")),
                            ("pack", f"{pack.get('id')} {pack.get('version')}"),
                            ("pack_manifest_sha256", pack.get("manifest_sha256")),
                            ("dut", f"{dut.get('make')} {dut.get('model')} {dut.get('serial')}"),
                            ("firmware", dut.get("firmware"))):  # fmt: skip
            ET.SubElement(props, "property", name=name, value=str(value))
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time": 0.0}
        for s in scenarios:
            seconds = float(s.get("duration_s") or 0.0)
            case = ET.SubElement(suite, "testcase", classname=f"{pack.get('id')}.{group}",
                                 name=f"{s.get('id')} {s.get('title', '')}".strip(),
                                 time=f"{seconds:.3f}")  # fmt: skip
            outcome = s.get("outcome")
            if outcome == "FAIL":
                found = _failures(s, "FAIL")
                el = ET.SubElement(case, "failure", type="FAIL",
                                   message=found[0] if found else "failed")  # fmt: skip
                el.text = "\n".join(found)
                counts["failures"] += 1
            elif outcome == "ERROR":
                found = _failures(s, "ERROR")
                el = ET.SubElement(case, "error", type="ERROR",
                                   message=found[0] if found else "bench fault")  # fmt: skip
                el.text = "\n".join(found)
                counts["errors"] += 1
            elif outcome == "SKIP":
                ET.SubElement(
                    case, "skipped", message=str(s.get("skip_reason") or "not applicable")
                )
                counts["skipped"] += 1
            ET.SubElement(case, "system-out").text = _case_text(s)
            counts["tests"] += 1
            counts["time"] += seconds
        _set_counts(suite, counts)
        for k in totals:
            totals[k] += counts[k]
    summary = record.get("summary", {})
    missing = int(summary.get("planned", 0)) - int(summary.get("scenarios", 0))
    if missing > 0 or record.get("complete") is False:
        suite = ET.SubElement(root, "testsuite", name="campaign")
        case = ET.SubElement(suite, "testcase", classname=f"{pack.get('id')}.campaign",
                             name="campaign complete", time="0.000")  # fmt: skip
        reasons = [d for d in record.get("deviations", []) if "not run" in d or "interrupt" in d]
        message = f"{max(missing, 0)} planned scenario(s) without a result"
        el = ET.SubElement(case, "error", type="INCOMPLETE", message=message)
        el.text = "\n".join(reasons)
        counts = {"tests": 1, "failures": 0, "errors": 1, "skipped": 0, "time": 0.0}
        _set_counts(suite, counts)
        for k in totals:
            totals[k] += counts[k]
    _set_counts(root, totals)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _set_counts(element: ET.Element, counts: dict[str, float]) -> None:
    for key in ("tests", "failures", "errors", "skipped"):
        element.set(key, str(int(counts[key])))
    element.set("time", f"{counts['time']:.3f}")
