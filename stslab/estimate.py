"""Modelled (physical) time of scenario steps, for progress and time-left estimates."""

from __future__ import annotations

from stslab.scenario import (
    KeyChangeStep,
    KeysStep,
    PowerCycleStep,
    RawStep,
    Scenario,
    TokenStep,
    WaitStep,
)

#: Default keypad robot timing: hold + gap per key (s), and a result message (s).
KEY_S = 0.2
MESSAGE_S = 3.0


def modelled_seconds(scenario: Scenario) -> float:
    total = 0.0
    for step in scenario.steps:
        if isinstance(step, TokenStep | RawStep):
            total += 21 * KEY_S + MESSAGE_S
        elif isinstance(step, KeyChangeStep):
            total += len(step.order or [1, 2]) * (21 * KEY_S + MESSAGE_S)
        elif isinstance(step, KeysStep):
            total += len(step.keys) * KEY_S
        elif isinstance(step, WaitStep):
            total += step.seconds or step.timeout_s / 4
        elif isinstance(step, PowerCycleStep):
            total += step.off_s + 1
        if step.expect is not None and step.expect.relay is not None:
            total += step.expect.relay.within_s / 2
    return total
