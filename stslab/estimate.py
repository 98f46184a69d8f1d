"""Modelled (physical) time of scenario steps, for progress and time-left estimates."""

from __future__ import annotations

from typing import Any

from stslab.scenario import (
    _FLAT,
    Declared,
    KeyChangeStep,
    KeysStep,
    PowerCycleStep,
    RawStep,
    RepeatStep,
    Scenario,
    TokenStep,
    WaitStep,
)

#: Default keypad robot timing: hold + gap per key (s), and a result message (s).
KEY_S = 0.2
MESSAGE_S = 3.0
#: A value taken from the meter's declaration, unknown until the campaign knows the meter:
#: rounds of a repeat, seconds of a wait.
DECLARED_GUESS = 10.0


def _number(value: Any) -> float:
    return DECLARED_GUESS if isinstance(value, Declared) else float(value or 0)


def modelled_seconds(scenario: Scenario) -> float:
    return _steps_seconds(scenario.steps)


def _steps_seconds(steps: list[Any]) -> float:
    total = 0.0
    for step in steps:
        if isinstance(step, RepeatStep):
            inner = [_FLAT.validate_python(_placeholders(raw)) for raw in step.steps]
            rounds = DECLARED_GUESS if step.each is not None else _number(step.times)
            total += rounds * _steps_seconds(inner)
            continue
        if isinstance(step, TokenStep | RawStep):
            total += 21 * KEY_S + MESSAGE_S
        elif isinstance(step, KeyChangeStep):
            total += len(step.order or [1, 2]) * (21 * KEY_S + MESSAGE_S)
        elif isinstance(step, KeysStep):
            total += len(step.keys) * KEY_S * _number(step.times)
        elif isinstance(step, WaitStep):
            total += _number(step.seconds) or step.timeout_s / 4
        elif isinstance(step, PowerCycleStep):
            total += step.off_s + 1
        if step.expect is not None and step.expect.relay is not None:
            total += step.expect.relay.within_s / 2
    return total


def _placeholders(raw: Any) -> Any:
    from stslab.scenario import substitute

    return substitute(raw, {"index": 1, "member": 0}, lambda _path: 1)
