"""The bench file: which instrument plays each role, where it is, and its calibration.

One schema serves hardware benches and SimLab's generated bench. Every key of the YAML is a
field here (unknown keys are errors), driver names resolve through the driver registry, and
each error names the file, the line and the key path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from instruments.base import Driver, Identity, InstrumentError, driver_class
from sts.schema import DocumentError, line_of, parse_yaml_text, read_text, validate
from stslab.uncertainty import QUANTITIES, READS, InstrumentCalibration, Statement

Role = Literal["keypad", "port", "card", "presenter", "display", "analyzer", "source", "load"]
ROLES: tuple[str, ...] = ("keypad", "port", "card", "presenter", "display", "analyzer",
                          "source", "load")  # fmt: skip


class BenchError(DocumentError):
    """A bench file that does not load (file, line and key are in the message)."""


class CalibrationUncertainty(BaseModel):
    """The expanded uncertainty per quantity, as the calibration certificate states it: a part
    relative to the reading and/or an absolute part (``0.1 % + 0.3 W``), with the
    certificate's coverage factor ``k``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    k: float = Field(default=2.0, gt=0, le=10)
    voltage: str | None = None
    current: str | None = None
    power: str | None = None
    energy: str | None = None
    time: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            raise ValueError(
                "give the expanded uncertainty per quantity and the coverage factor, e.g. "
                f"{{k: 2, energy: 0.1 %, time: 5 ms}} (quantities: {', '.join(QUANTITIES)})"
            )
        return data

    @field_validator(*QUANTITIES)
    @classmethod
    def _statement(cls, text: str | None, info: Any) -> str | None:
        if text is not None:
            Statement.parse(info.field_name, text)
        return text

    def statements(self) -> dict[str, Statement]:
        return {q: Statement.parse(q, t) for q in QUANTITIES if (t := getattr(self, q))}


class Calibration(BaseModel):
    """An instrument's calibration record."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    certificate: str = Field(min_length=1)
    date: date
    due: date
    lab: str | None = None
    uncertainty: CalibrationUncertainty | None = None
    note: str | None = None

    @model_validator(mode="after")
    def _order(self) -> Calibration:
        if self.due < self.date:
            raise ValueError("due is before the calibration date")
        return self


class CalibrationStatus(StrEnum):
    VALID = "in calibration"
    OVERDUE = "overdue"
    MISSING = "no record"
    NOT_REQUIRED = "not required"


class Instrument(BaseModel):
    """One role's instrument: driver, address, timeouts, terminations, calibration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    driver: str
    address: str = Field(min_length=1)
    timeout_s: float = Field(default=2.0, gt=0, le=600)
    read_termination: str | None = None
    write_termination: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    calibration: Calibration | None = None

    @field_validator("driver")
    @classmethod
    def _known(cls, name: str) -> str:
        try:
            driver_class(name)
        except KeyError as exc:
            raise ValueError(exc.args[0]) from None
        return name

    def calibration_status(self, today: date, role: str) -> CalibrationStatus:
        if role == "presenter":
            return CalibrationStatus.NOT_REQUIRED
        if self.calibration is None:
            return CalibrationStatus.MISSING
        if self.calibration.due < today:
            return CalibrationStatus.OVERDUE
        return CalibrationStatus.VALID


class Place(BaseModel):
    """Where a bench built from a labgrid place came from (written by stslab, recorded)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    coordinator: str
    exporter: str
    host: str
    reservation: str | None = None


class Bench(BaseModel):
    """A whole bench file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bench_version: Literal[1] = 1
    name: str
    simulated: bool = False
    clock_speed: float = Field(default=1.0, gt=0)
    dut_profile: str | None = None
    location: str | None = None
    place: Place | None = None
    instruments: dict[Role, Instrument]
    source_file: str = Field(default="<memory>", exclude=True)

    def deviations(self, today: date) -> list[str]:
        """Calibration problems, one sentence each (empty when every instrument is fine)."""
        out = []
        for role, inst in self.instruments.items():
            status = inst.calibration_status(today, role)
            if status is CalibrationStatus.OVERDUE:
                assert inst.calibration is not None
                out.append(
                    f"{role}: calibration {inst.calibration.certificate} was due "
                    f"{inst.calibration.due.isoformat()}"
                )
            elif status is CalibrationStatus.MISSING:
                out.append(f"{role}: no calibration record")
        return out

    def calibrations(self) -> dict[str, InstrumentCalibration]:
        """Each calibrated instrument's uncertainty statements, by role."""
        out = {}
        for role, inst in self.instruments.items():
            cal = inst.calibration
            if cal is not None:
                unc = cal.uncertainty
                out[role] = InstrumentCalibration(
                    role, cal.certificate, unc.k if unc else 2.0, unc.statements() if unc else {}
                )
        return out

    def uncertainty_gaps(self) -> list[str]:
        """What accredited mode misses: every quantity the runner reads from a measuring
        instrument needs its calibration uncertainty. One line each, naming file, line, key."""
        root = None
        if self.source_file != "<memory>":
            with suppress(OSError, DocumentError):
                _data, root = parse_yaml_text(Path(self.source_file).read_text(), self.source_file)
        out = []
        for role, quantities in READS.items():
            inst = self.instruments.get(role)
            if inst is None:
                continue
            unc = inst.calibration.uncertainty if inst.calibration else None
            absent = [q for q in quantities if unc is None or getattr(unc, q) is None]
            if absent:
                key = ("instruments", role, "calibration", "uncertainty")
                line = line_of(root, key) if root is not None else None
                where = f"{self.source_file}:{line}" if line else self.source_file
                need = ", ".join(absent)
                out.append(f"{where}: {'.'.join(key)}: accredited mode needs the calibration "
                           f"uncertainty of {need} (with the certificate's k)")  # fmt: skip
        return out


def load_bench(path: str | Path) -> Bench:
    """Load and validate a bench file."""
    try:
        text = read_text(path, "bench file")
    except DocumentError as exc:
        raise BenchError(str(exc)) from None
    return parse_bench(text, str(path))


def parse_bench(text: str, source: str = "<memory>") -> Bench:
    try:
        bench = validate(Bench, text, source, extra={"source_file": source})
    except DocumentError as exc:
        raise BenchError(str(exc)) from None
    _check_roles(bench, text, source)
    return bench


def _check_roles(bench: Bench, text: str, source: str) -> None:
    """Each driver must be one for the role it is named under."""
    problems = []
    _data, root = parse_yaml_text(text, source)
    for role, inst in bench.instruments.items():
        cls = driver_class(inst.driver)
        if cls.role and cls.role != role:
            line = line_of(root, ("instruments", role, "driver"))
            problems.append(
                f"{source}:{line}: instruments.{role}.driver: {inst.driver!r} is a {cls.role} "
                f"driver, not a {role} driver"
            )
    if problems:
        raise BenchError("\n".join(problems))


def open_instrument(
    role: str, inst: Instrument, base: Path | None = None, extra: dict[str, Any] | None = None
) -> Driver:
    """The driver for one role, opened. ``extra``: options the DUT adds (port password …)."""
    cls = driver_class(inst.driver)
    options = {**inst.options, **(extra or {})}
    if inst.read_termination is not None:
        options["read_termination"] = inst.read_termination
    if inst.write_termination is not None:
        options["write_termination"] = inst.write_termination
    if base is not None:
        for key in ("segment_map",):
            value = options.get(key)
            if isinstance(value, str) and not value.startswith(("/", "http:", "https:")):
                options[key] = str(base / value)
    return cls(inst.address, timeout_s=inst.timeout_s, **options)


@contextmanager
def opened(
    bench: Bench,
    roles: tuple[str, ...] | None = None,
    extra: dict[str, dict[str, Any]] | None = None,
    parallel: bool = False,
) -> Iterator[dict[str, Driver]]:
    """Open the bench's drivers (``parallel``: all at once, for ports that take network round
    trips to open, as RFC 2217 ones do); every one opened is closed on the way out, whatever
    happens."""
    base = Path(bench.source_file).parent if bench.source_file != "<memory>" else None
    wanted = [(role, inst) for role, inst in bench.instruments.items()
              if roles is None or role in roles]  # fmt: skip
    drivers: dict[str, Driver] = {}
    try:
        if parallel:
            with ThreadPoolExecutor(max_workers=max(1, len(wanted))) as pool:
                futures = {role: pool.submit(open_instrument, role, inst, base,
                                             (extra or {}).get(role))
                           for role, inst in wanted}  # fmt: skip
            failures = []
            for role, future in futures.items():
                try:
                    drivers[role] = future.result()
                except Exception as exc:  # the others opened are closed below
                    failures.append(exc)
            if failures:
                raise failures[0]
        else:
            for role, inst in wanted:
                drivers[role] = open_instrument(role, inst, base, (extra or {}).get(role))
        yield drivers
    finally:
        for driver in reversed(list(drivers.values())):
            with suppress(Exception):  # teardown must reach every driver
                driver.close()


@dataclass(frozen=True)
class CheckResult:
    role: str
    driver: str
    address: str
    identity: Identity | None
    calibration: str
    seconds: float
    error: str | None

    @property
    def ok(self) -> bool:
        return self.error is None


def check_bench(bench: Bench, today: date | None = None) -> list[CheckResult]:
    """Open and identify every instrument, one at a time; never raises for a device fault."""
    today = today or date.today()
    base = Path(bench.source_file).parent if bench.source_file != "<memory>" else None
    results = []
    for role, inst in bench.instruments.items():
        status = inst.calibration_status(today, role)
        cal = status.value
        if inst.calibration is not None and status is not CalibrationStatus.NOT_REQUIRED:
            cal = f"{status.value} ({inst.calibration.certificate}, due {inst.calibration.due})"
        started = time.perf_counter()
        identity = None
        error = None
        driver = None
        try:
            driver = open_instrument(role, inst, base)
            identity = driver.identify()
        except InstrumentError as exc:
            error = str(exc)
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        finally:
            if driver is not None:
                try:
                    driver.close()
                except Exception as exc:  # report, keep going
                    error = error or f"close failed: {exc}"
        results.append(
            CheckResult(
                role, inst.driver, inst.address, identity, cal, time.perf_counter() - started, error
            )
        )
    return results
