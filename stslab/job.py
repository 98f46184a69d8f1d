"""The job file: who the work is for, what item, who tests and signs.

ISO/IEC 17025 §7.8 asks a report to name the customer, the item and its condition, the
receipt and test dates, the lab and the authorising signer, and the decision rule agreed with
the customer (§7.1.3): they come from here.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sts.identity import Pan
from sts.schema import DocumentError, read_text, validate
from stslab.uncertainty import DecisionRule


class JobError(DocumentError):
    """A job file that does not load (file, line and key are in the message)."""


class _M(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Party(_M):
    name: str = Field(min_length=1)
    address: str = ""


class Lab(_M):
    name: str = Field(min_length=1)
    address: str = ""
    accreditation: str | None = None  # accreditation body and number


class Signer(_M):
    name: str = Field(min_length=1)
    role: str = Field(min_length=1)


class Item(_M):
    identification: str = Field(min_length=1)
    condition: str = "as received, no visible damage"


class Environment(_M):
    temperature_c: float | None = None
    humidity_pct: float | None = Field(default=None, ge=0, le=100)
    notes: str | None = None


class Sample(_M):
    """The meter sample on one bench, when several benches test samples of one model."""

    serial: str = Field(min_length=1)
    pan: str | None = None  # the sample's own PAN (default: the DUT profile's)

    @field_validator("pan", mode="before")
    @classmethod
    def _pan(cls, v: object) -> str | None:
        return None if v is None else Pan.parse(str(v)).digits


class Job(_M):
    job_version: int = 1
    reference: str = Field(min_length=1, description="The lab's job or order number.")
    customer: Party
    lab: Lab
    item: Item
    receipt_date: date
    operator: str = Field(min_length=1)
    signer: Signer
    environment: Environment = Environment()
    #: How numeric results are judged against their tolerance (ILAC-G8): ``simple``
    #: acceptance, or ``guarded`` acceptance with a guard band equal to the expanded
    #: uncertainty U.
    decision_rule: DecisionRule = DecisionRule.SIMPLE
    #: Bench name -> the sample on it (SimLab benches are named simlab-1, simlab-2, ...).
    samples: dict[str, Sample] = {}


def load_job(path: str | Path) -> Job:
    try:
        return validate(Job, read_text(path, "job file"), str(path))
    except DocumentError as exc:
        raise JobError(str(exc)) from None


def demo_job() -> Job:
    """The job used when none is given (demonstration and pre-submission runs)."""
    return Job(
        reference="DEMO-0001",
        customer=Party(name="Demonstration customer", address="—"),
        lab=Lab(name="stslab demonstration lab", address="127.0.0.1"),
        item=Item(identification="SimLab simulated meter", condition="simulated"),
        receipt_date=date.today(),
        operator="stslab",
        signer=Signer(name="Demonstration signer", role="Technical manager (demonstration)"),
    )
