"""A bench as a labgrid place: the exporter configuration that publishes it, the place's tags,
and the bench a client builds back from the place's resources.

Each role with a device becomes one labgrid resource in a group named after the place:
a serial device (a ``/dev`` path) a ``RawSerialPort`` that the exporter serves through
ser2net (the client sees a ``NetworkSerialPort`` and reaches it as ``rfc2217://``), an SCPI
instrument (``TCPIP::host::port::SOCKET``) a ``PyVISADevice``, the camera an
``HTTPVideoStream``. One more resource, ``stslab``, carries the bench file itself (drivers,
timeouts, terminations, calibration records, segment maps), so the client keeps the bench
file as the source of truth and runs the calibration gate as it does for a local file.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import yaml

if TYPE_CHECKING:  # a campaign takes its place before it loads the bench machinery
    from stslab.bench import Bench, CheckResult

#: The resource (name and class) that carries the bench file.
BENCH_RESOURCE = "stslab"
BENCH_CLASS = "StslabBench"
#: Options whose value is a file on the bench computer, sent along by content.
FILE_OPTIONS = ("segment_map",)
LOOPBACK = ("127.0.0.1", "localhost", "::1", "0.0.0.0")
DEFAULT_BAUD = 115200


class PlaceError(Exception):
    """A bench that cannot be published, or a place whose resources do not make a bench."""


def tag_value(text: str) -> str:
    """A labgrid tag value: lower-case letters, digits and underscores."""
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "none"


def place_tags(
    bench: Bench, identities: dict[str, str] | None = None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """The place's tags: the bench's name, simulated or not, each instrument's identity (as
    it answered when the exporter started) and calibration due date, and ``extra``."""
    tags = {"bench": tag_value(bench.name), "simulated": "yes" if bench.simulated else "no"}
    for role, inst in bench.instruments.items():
        if identities and identities.get(role):
            tags[f"{role}_id"] = tag_value(identities[role])
        if inst.calibration is not None:
            tags[f"{role}_cal_due"] = tag_value(inst.calibration.due.isoformat())
    tags.update(extra or {})
    return tags


def identities_of(results: list[CheckResult]) -> dict[str, str]:
    """Role -> identity text, from ``stslab.bench.check_bench`` (devices that answered)."""
    return {r.role: str(r.identity) for r in results if r.identity is not None}


def exporter_config(bench: Bench, name: str, host: str) -> dict[str, Any]:
    """The labgrid exporter configuration (as data) that publishes ``bench`` as place
    ``name``; loopback addresses are published as ``host`` (the name clients reach)."""
    base = Path(bench.source_file).parent if bench.source_file != "<memory>" else Path.cwd()
    group: dict[str, Any] = {}
    if bench.location:
        group["location"] = bench.location
    for role, inst in bench.instruments.items():
        resource = _resource(role, inst.address, inst.options, host)
        if resource is not None:
            group[role] = resource
    document = bench.model_dump(mode="json", exclude={"source_file"})
    files: dict[str, str] = {}
    for role, inst in bench.instruments.items():
        for key in FILE_OPTIONS:
            value = inst.options.get(key)
            if isinstance(value, str) and not value.startswith(("http:", "https:")):
                path = Path(value) if Path(value).is_absolute() else base / value
                try:
                    files[f"{role}.{key}"] = path.read_text()
                except OSError as exc:
                    raise PlaceError(f"{bench.source_file}: instruments.{role}.options.{key}: "
                                     f"cannot read {path}: {exc.strerror}") from None  # fmt: skip
    group[BENCH_RESOURCE] = {
        "cls": BENCH_CLASS,
        "bench": json.dumps(document, sort_keys=True),
        "files": json.dumps(files, sort_keys=True),
    }
    return {name: group}


def _resource(role: str, address: str, options: dict[str, Any], host: str) -> dict | None:
    if address.upper().startswith("TCPIP"):
        parts = address.split("::")
        if len(parts) != 4 or parts[3].upper() != "SOCKET":
            raise PlaceError(f"{role}: {address!r} is not a TCPIP::host::port::SOCKET resource")
        return {"cls": "PyVISADevice", "type": "TCPIP",
                "url": f"{_public(parts[1], host)}::{parts[2]}::SOCKET"}  # fmt: skip
    if address.startswith(("http://", "https://")):
        parts = urlsplit(address)
        netloc = parts.netloc.replace(parts.hostname or "", _public(parts.hostname or "", host))
        return {"cls": "HTTPVideoStream", "url": urlunsplit(parts._replace(netloc=netloc))}
    if address.startswith(("rfc2217://", "socket://")):
        parts = urlsplit(address)
        return {"cls": "NetworkSerialPort", "host": _public(parts.hostname or "", host),
                "port": parts.port, "protocol": "rfc2217" if parts.scheme == "rfc2217" else "raw",
                "speed": int(options.get("baudrate", DEFAULT_BAUD))}  # fmt: skip
    if address.startswith("/") or os.path.sep in address:
        device = os.path.realpath(address)  # SimLab's links point at /dev/pts/N
        if not device.startswith("/dev/"):
            raise PlaceError(f"{role}: {address} is not a device under /dev (ser2net serves "
                             "only serial devices)")  # fmt: skip
        return {"cls": "RawSerialPort", "port": device,
                "speed": int(options.get("baudrate", DEFAULT_BAUD))}  # fmt: skip
    return None  # no device behind it (an operator presenter, SimLab's automatic one)


def _public(hostname: str, host: str) -> str:
    return host if hostname in LOOPBACK else hostname


def exporter_yaml(config: dict[str, Any]) -> str:
    # No comment lines: labgrid reads the file as a Jinja2 template where "#" starts a
    # statement; one line per value, so no wrapped JSON line starts with "#" either.
    return yaml.safe_dump(config, sort_keys=False, width=1 << 30)


def bench_from_place(
    place: str, resources: dict[str, tuple[str, dict[str, Any]]], directory: Path
) -> dict[str, Any]:
    """The bench file (as data) of an acquired place: the bench file the exporter published,
    each role's address replaced by where the client reaches its resource. ``resources``:
    resource name -> (class, parameters) as the coordinator gives them. Files the bench
    refers to (segment maps) are written into ``directory``."""
    if BENCH_RESOURCE not in resources:
        raise PlaceError(f"place {place}: no {BENCH_RESOURCE} resource (is the exporter an "
                         "stslab lab export?)")  # fmt: skip
    params = resources[BENCH_RESOURCE][1]
    document = json.loads(params["bench"])
    files = json.loads(params.get("files") or "{}")
    for role, inst in document["instruments"].items():
        if role in resources:
            inst["address"] = _address(place, role, *resources[role])
        elif _resource(role, inst["address"], inst.get("options") or {}, "x") is not None:
            raise PlaceError(f"place {place}: the exporter publishes no resource for {role}")
        for key in FILE_OPTIONS:
            text = files.get(f"{role}.{key}")
            if text is not None:
                path = directory / f"{place}-{role}-{key.replace('_', '-')}.yaml"
                path.write_text(text)
                inst["options"][key] = str(path)
    return document


def _address(place: str, role: str, cls: str, params: dict[str, Any]) -> str:
    if cls == "NetworkSerialPort":
        if not params.get("port"):
            raise PlaceError(f"place {place}: {role}: ser2net has no port yet")
        if params.get("protocol", "rfc2217") != "rfc2217":
            return f"socket://{params['host']}:{params['port']}"
        # ser2net on a pty does not answer every SET_CONTROL (flow control lines)
        return f"rfc2217://{params['host']}:{params['port']}?ign_set_control"
    if cls == "PyVISADevice":
        return f"{params['type']}::{params['url']}"
    if cls == "HTTPVideoStream":
        return str(params["url"])
    raise PlaceError(f"place {place}: {role}: resource class {cls} is not one stslab uses")


def calibration_problems(document: dict[str, Any], today: date) -> list[str]:
    """The published bench's calibration deviations (the client's gate, before acquiring)."""
    from stslab.bench import parse_bench

    text = yaml.safe_dump({k: v for k, v in document.items() if k != "place"}, sort_keys=False)
    return parse_bench(text, "<place>").deviations(today)
