"""JUnit XML from the record: it parses, its counts are the record's, failures and errors
say what was expected and observed, and an incomplete campaign is never green."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from reports.junit import junit_xml
from tests.reports.test_render import campaign_run


@pytest.fixture(scope="module")
def record(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return json.loads((campaign_run(tmp_path_factory) / "record.json").read_text())


def test_the_counts_are_the_records(record: dict[str, Any]) -> None:
    root = ET.fromstring(junit_xml(record).encode())
    summary = record["summary"]
    assert root.tag == "testsuites"
    assert int(root.get("tests", "-1")) == summary["scenarios"]
    assert int(root.get("failures", "-1")) == summary["FAIL"]
    assert int(root.get("errors", "-1")) == summary["ERROR"]
    assert int(root.get("skipped", "-1")) == summary["SKIP"]
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == summary["scenarios"]
    for suite in root.findall("testsuite"):
        inner = suite.findall("testcase")
        assert int(suite.get("tests", "-1")) == len(inner)
        assert int(suite.get("failures", "-1")) == sum(c.find("failure") is not None for c in inner)
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props["pack_manifest_sha256"] == record["pack"]["manifest_sha256"]
    groups = {s["group"] for s in record["scenarios"]}
    assert {s.get("name") for s in root.findall("testsuite")} == groups


def test_each_outcome_is_reported_the_way_ci_reads_it(record: dict[str, Any]) -> None:
    root = ET.fromstring(junit_xml(record).encode())
    by_id = {c.get("name", "").split()[0]: c for c in root.iter("testcase")}
    for s in record["scenarios"]:
        case = by_id[s["id"]]
        kinds = {child.tag for child in case} - {"system-out"}
        assert kinds == {"FAIL": {"failure"}, "ERROR": {"error"}, "SKIP": {"skipped"},
                         "PASS": set()}[s["outcome"]], s["id"]  # fmt: skip
    failure = by_id["T-CR-001"].find("failure")
    assert failure is not None
    assert (failure.get("message") or "").startswith("step 2: display expected XX.X, observed ")
    # An expectation the reference meter contradicts is an error of the pack.
    wrong = by_id["T-CR-002"].find("error")
    assert wrong is not None
    assert wrong.get("message") == ("step 1: pack and reference disagree expected result Used, "
                                    "observed the reference meter: Accept")  # fmt: skip
    error = by_id["T-ERR-001"].find("error")
    assert error is not None and "cannot mint" in (error.get("message") or "")
    skipped = by_id["T-NA-001"].find("skipped")
    assert skipped is not None and skipped.get("message") == "the meter does not declare mppul"
    out = by_id["T-LS-003"].findtext("system-out") or ""
    assert "PASS load switch: expected open within 20.0 s" in out


def test_an_incomplete_campaign_is_an_error(record: dict[str, Any]) -> None:
    partial = {**record, "complete": False, "summary": {**record["summary"],
               "planned": record["summary"]["scenarios"] + 2, "verdict": "INCOMPLETE"},
               "deviations": ["2 planned scenario(s) not run"]}  # fmt: skip
    root = ET.fromstring(junit_xml(partial).encode())
    assert int(root.get("errors", "-1")) == record["summary"]["ERROR"] + 1
    case = root.find("./testsuite[@name='campaign']/testcase/error")
    assert case is not None and case.get("message") == "2 planned scenario(s) without a result"
    assert case.text == "2 planned scenario(s) not run"


def test_text_that_would_break_xml_is_escaped(record: dict[str, Any]) -> None:
    hostile = json.loads(json.dumps(record))
    hostile["scenarios"][0]["title"] = 'A <b>"title"</b> & ]]> more'
    root = ET.fromstring(junit_xml(hostile).encode())
    names = [c.get("name") for c in root.iter("testcase")]
    assert f'{hostile["scenarios"][0]["id"]} A <b>"title"</b> & ]]> more' in names


def test_the_report_command_writes_it(tmp_path_factory: pytest.TempPathFactory) -> None:
    # covered end to end in test_cli_report; here the document is a file CI tools accept
    path: Path = tmp_path_factory.mktemp("junit") / "junit.xml"
    path.write_text(junit_xml(json.loads((campaign_run(tmp_path_factory) / "record.json")
                                         .read_text())))  # fmt: skip
    assert ET.parse(path).getroot().tag == "testsuites"
    assert path.read_text().startswith('<?xml version="1.0" encoding="UTF-8"?>')
