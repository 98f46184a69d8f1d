"""A Robot test (or a suite's setup or teardown) as the campaign journals it, the meter's
answer to the last entry, and a step as a label and the Robot log show it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from stslab.campaign import Check, Outcome, StepResult


@dataclass
class RobotScenario:
    """A Robot test (or a suite's setup or teardown) as the campaign journals it."""

    id: str
    title: str
    group: str
    clauses: list[str]
    source_file: str = ""
    declared: bool = False  # carries an id: tag
    steps: list[StepResult] = field(default_factory=list)
    tids: dict[str, int] = field(default_factory=dict)
    begun: bool = False
    started: float = 0.0
    perf0: float = 0.0
    modelled0: float = 0.0
    skip_reason: str | None = None
    pack_outcomes: list[Outcome] = field(default_factory=list)

    @classmethod
    def of_test(cls, test: Any) -> RobotScenario:
        tags = [str(t) for t in test.tags]
        ident = _tag_value(tags, "id")
        clauses = [t.split(":", 1)[1].strip() for t in tags if t.lower().startswith("clause:")]
        return cls(
            id=ident or test.name,
            title=test.name,
            group=_tag_value(tags, "group") or test.parent.name,
            clauses=clauses,
            source_file=str(test.source or ""),
            declared=ident is not None,
        )


def _tag_value(tags: list[str], name: str) -> str | None:
    for tag in tags:
        key, sep, value = tag.partition(":")
        if sep and key.strip().lower() == name and value.strip():
            return value.strip()
    return None


@dataclass
class LastEntry:
    """What the meter answered to the last entry (valid until the next action)."""

    label: str
    result: str | None  # the result's label, None when nothing was recognised
    display: str | None  # the display text read right after the entry
    sections: list[str | None] | None = None  # per key change section


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def check(name: str, expected: str, observed: str, ok: bool) -> Check:
    return Check(name, expected, observed, Outcome.PASS if ok else Outcome.FAIL)


def failed_checks(step: StepResult) -> str:
    return "; ".join(_check_text(c) for c in step.checks if c.outcome is Outcome.FAIL)


def _check_text(c: Check) -> str:
    unit = f" {c.unit}" if c.unit and c.unit != "s" else ""
    return f"{c.name}: expected {c.expected}{unit}, observed {c.observed}"


def step_text(target: RobotScenario, step: StepResult) -> str:
    """The step as the Robot log shows it: outcome, checks, fault, what was observed."""
    lines = [f"{target.id} step {step.index}: {step.outcome.value}"]
    lines += [f"{_check_text(c)}: {c.outcome.value}" for c in step.checks]
    if step.error:
        lines.append(f"fault: {step.error}")
    for name, value in step.observations.items():
        lines.append(f"observed {name}: {value}")
    lines += step.retries
    return "\n".join(lines)


def label_args(*positional: Any, **named: Any) -> str:
    """A keyword's arguments as a step label shows them (the ones given)."""
    parts = [str(p) for p in positional if p is not None]
    parts += [f"{k}={v}" for k, v in named.items() if v not in _DEFAULT_WORDS]
    return " ".join(parts)


# Argument values a step label leaves out: they are the defaults.
_DEFAULT_WORDS = (None, False, "next", "current", "same", "never")
