"""A bench file as a labgrid place and back, without any process: the exporter configuration
names each device by the labgrid resource that fits it, the place's tags carry the bench's
name, identities and calibration due dates, and a client rebuilds the bench with addresses it
can reach, the bench file's calibration records intact."""

from __future__ import annotations

import json
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
import yaml

from stslab.bench import load_bench, parse_bench
from stslab.lab.coordinator import lease_comment, lease_expired
from stslab.lab.hold import parse_filters
from stslab.lab.place import (
    BENCH_RESOURCE,
    PlaceError,
    bench_from_place,
    calibration_problems,
    exporter_config,
    exporter_yaml,
    place_tags,
)

DUE = date.today() + timedelta(days=200)


def bench_text(keypad: str = "/dev/ttyUSB0", due: date = DUE) -> str:
    cal = {"certificate": "CAL-1", "date": (due - timedelta(days=365)).isoformat(),
           "due": due.isoformat()}  # fmt: skip
    doc = {
        "name": "Bench A",
        "location": "room 2",
        "instruments": {
            "keypad": {
                "driver": "kpr1",
                "address": keypad,
                "calibration": cal,
                "options": {"baudrate": 9600},
            },
            "presenter": {"driver": "automatic", "address": "simlab:auto"},
            "display": {
                "driver": "camera-segment",
                "address": "http://127.0.0.1:8080/snap.png",
                "options": {"segment_map": "map.yaml"},
                "calibration": cal,
            },
            "analyzer": {
                "driver": "wt300",
                "address": "TCPIP::localhost::5025::SOCKET",
                "read_termination": "\n",
                "calibration": cal,
            },
        },
    }
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture
def bench(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "map.yaml").write_text("segments: {}\n")
    path = tmp_path / "bench.yaml"
    path.write_text(bench_text())
    return load_bench(path)


def test_each_device_is_published_as_the_labgrid_resource_that_fits_it(bench) -> None:
    group = exporter_config(bench, "bench-a", "lab-pc-1")["bench-a"]
    assert group["keypad"] == {"cls": "RawSerialPort", "port": "/dev/ttyUSB0", "speed": 9600}
    # Loopback addresses are published under the name clients reach the bench computer by.
    assert group["analyzer"] == {"cls": "PyVISADevice", "type": "TCPIP",
                                 "url": "lab-pc-1::5025::SOCKET"}  # fmt: skip
    assert group["display"] == {"cls": "HTTPVideoStream", "url": "http://lab-pc-1:8080/snap.png"}
    assert "presenter" not in group  # no device behind an automatic presenter
    assert group["location"] == "room 2"
    published = json.loads(group[BENCH_RESOURCE]["bench"])
    assert published["instruments"]["keypad"]["calibration"]["certificate"] == "CAL-1"
    assert json.loads(group[BENCH_RESOURCE]["files"]) == {"display.segment_map": "segments: {}\n"}


def test_the_exporter_file_has_no_line_a_template_would_take_for_a_statement(bench) -> None:
    text = exporter_yaml(exporter_config(bench, "bench-a", "lab-pc-1"))
    assert not [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert yaml.safe_load(text)["bench-a"]["keypad"]["cls"] == "RawSerialPort"


def test_a_serial_device_that_is_not_under_dev_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bench.yaml"
    path.write_text(bench_text(keypad=str(tmp_path / "not-a-tty")))
    (tmp_path / "map.yaml").write_text("segments: {}\n")
    with pytest.raises(PlaceError, match=r"keypad: .*not a device under /dev"):
        exporter_config(load_bench(path), "bench-a", "lab-pc-1")


def test_tags_name_the_bench_identities_and_calibration_due_dates(bench) -> None:
    tags = place_tags(bench, {"analyzer": "YOKOGAWA WT310 s/n 91K0001 fw 1.02"}, {"room": "2"})
    assert tags["bench"] == "bench_a"
    assert tags["simulated"] == "no"
    assert tags["analyzer_id"] == "yokogawa_wt310_s_n_91k0001_fw_1_02"
    assert tags["keypad_cal_due"] == DUE.isoformat().replace("-", "_")
    assert tags["room"] == "2"
    assert "presenter_cal_due" not in tags


def test_a_client_rebuilds_the_bench_from_the_acquired_resources(bench, tmp_path: Path) -> None:
    group = exporter_config(bench, "bench-a", "lab-pc-1")["bench-a"]
    # What the coordinator shows a client once the place is acquired: ser2net's port.
    resources = {
        "keypad": ("NetworkSerialPort", {"host": "lab-pc-1", "port": 40001, "speed": 9600}),
        "display": ("HTTPVideoStream", {"url": group["display"]["url"]}),
        "analyzer": ("PyVISADevice", {"type": "TCPIP", "url": group["analyzer"]["url"]}),
        BENCH_RESOURCE: (group[BENCH_RESOURCE]["cls"],
                         {k: v for k, v in group[BENCH_RESOURCE].items() if k != "cls"}),
    }  # fmt: skip
    client = tmp_path / "client"
    client.mkdir()
    doc = bench_from_place("bench-a", resources, client)
    inst = doc["instruments"]
    assert inst["keypad"]["address"] == "rfc2217://lab-pc-1:40001?ign_set_control"
    assert inst["analyzer"]["address"] == "TCPIP::lab-pc-1::5025::SOCKET"
    assert inst["display"]["address"] == "http://lab-pc-1:8080/snap.png"
    assert inst["presenter"]["address"] == "simlab:auto"
    assert Path(inst["display"]["options"]["segment_map"]).read_text() == "segments: {}\n"
    rebuilt = parse_bench(yaml.safe_dump(doc), "<place>")
    assert rebuilt.instruments["keypad"].calibration == bench.instruments["keypad"].calibration


def test_a_place_without_a_resource_for_a_device_role_is_refused(bench, tmp_path) -> None:
    group = exporter_config(bench, "bench-a", "lab-pc-1")["bench-a"]
    resources = {BENCH_RESOURCE: ("StslabBench", {k: v for k, v in group[BENCH_RESOURCE].items()
                                                  if k != "cls"})}  # fmt: skip
    with pytest.raises(PlaceError, match="publishes no resource for analyzer"):
        bench_from_place("bench-a", resources, tmp_path)
    with pytest.raises(PlaceError, match="no stslab resource"):
        bench_from_place("bench-a", {}, tmp_path)


def test_calibration_problems_of_a_published_bench(tmp_path: Path) -> None:
    overdue = parse_bench(bench_text(due=date.today() - timedelta(days=1)))
    document = overdue.model_dump(mode="json", exclude={"source_file"})
    problems = calibration_problems(document, date.today())
    assert any(p.startswith("keypad: calibration CAL-1 was due") for p in problems)


def test_filters_and_leases() -> None:
    assert parse_filters(["bench=a", "room=2"]) == {"bench": "a", "room": "2"}
    from stslab.lab.coordinator import LabError

    with pytest.raises(LabError, match="'room' is not KEY=VALUE"):
        parse_filters(["room"])
    now = time.time()
    assert lease_expired(lease_comment("pc:1", now - 1), now) is True
    assert lease_expired(lease_comment("pc:1", now + 30), now) is False
    assert lease_expired("bench under repair", now) is None
