"""Exploration: random valid campaigns against the reference twin (``stslab explore``).

A hypothesis ``RuleBasedStateMachine`` draws scenario steps (tokens of every kind with good
and bad TIDs, keys and CRCs, key changes, power cycles, load changes, waits, keypad edits,
each through a carrier the meter declares) and runs each on the bench through the campaign
runner, so the reference twin compares every observable after every step
(:mod:`stslab.lockstep`). Each run starts a fresh bench (SimLab) or a fresh twin (a bench
file). A difference is shrunk by hypothesis to the shortest sequence that still shows it and
written out as a scenario file: the steps, and on the last one the expectations the reference
meter gives, so the scenario catches the difference with or without the twin.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, Phase, Verbosity, seed, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, get_state_machine_test, rule
from pydantic import TypeAdapter

from stslab.campaign import Outcome, StepResult
from stslab.declared import expand
from stslab.scenario import Scenario, Step, parse_result
from stslab.session import Campaign, CampaignConfig

#: Steps per run: long enough to build state (a key change, then tokens under it).
STEPS_PER_RUN = 50
_STEP = TypeAdapter(Step)

_AMOUNTS = ("0.1", "0.5", "1.0", "5.0", "25.5", "120.0", "2000.0", "50000.0", "1638300.0")
_LIMITS = (0, 500, 1000, 16000)
_LOADS = (200.0, 1000.0, 1500.0)
_WAITS = (1.0, 5.0, 30.0, 120.0, 600.0)


class DifferenceFound(AssertionError):
    """The meter differs from the reference twin after the last of ``steps``."""

    def __init__(self, steps: list[dict[str, Any]], differences: list[dict[str, str]]) -> None:
        super().__init__("; ".join(d["sentence"] for d in differences))
        self.steps = steps
        self.differences = differences


@dataclass
class Exploration:
    """What an exploration did and found."""

    steps_run: int = 0
    runs: int = 0
    wall_s: float = 0.0
    #: steps run (over every run) until the first difference; None when none was found
    found_after: int | None = None
    shrunk: list[dict[str, Any]] = field(default_factory=list)
    differences: list[dict[str, str]] = field(default_factory=list)
    scenario_file: Path | None = None

    @property
    def steps_per_s(self) -> float:
        return self.steps_run / self.wall_s if self.wall_s else 0.0


def explore(
    config: CampaignConfig,
    *,
    steps: int = 1000,
    seed_value: int = 0,
    out: Path | None = None,
    shrink: bool = True,
    progress: Callable[[Exploration], None] | None = None,
) -> Exploration:
    """Run up to ``steps`` random steps against the twin; a difference, shrunk, is written
    to ``out`` as a scenario file (when ``out`` is given)."""
    result = Exploration()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="stslab-explore-") as scratch:
        machine = _machine(config, Path(scratch), result, progress, seed_value)
        # Rounds until the budget is spent or a difference is found: hypothesis decides how
        # long each run is, so one round may stop short of the budget.
        for round_no in range(1000):
            left = steps - result.steps_run
            if left <= 0 or result.found_after is not None:
                break
            per_run = min(STEPS_PER_RUN, left)
            test = get_state_machine_test(
                machine,
                settings=settings(
                    max_examples=max(1, math.ceil(left / per_run)),
                    stateful_step_count=per_run,
                    deadline=None,
                    database=None,
                    derandomize=False,
                    report_multiple_bugs=False,
                    suppress_health_check=list(HealthCheck),
                    verbosity=Verbosity.quiet,
                    phases=[Phase.generate, Phase.shrink] if shrink else [Phase.generate],
                    print_blob=False,
                ),
            )
            try:
                seed(seed_value * 1000 + round_no)(test)()
            except DifferenceFound as found:
                result.shrunk = found.steps
                result.differences = found.differences
    result.wall_s = time.perf_counter() - t0
    if result.shrunk and out is not None:
        result.scenario_file = write_scenario(result, out, seed_value, config)
    return result


class _Prepared(Campaign):
    """A campaign whose inputs (profile, job, pack) are read once for all of an exploration's
    runs: they do not change between runs, and each run opens a fresh bench."""

    inputs: dict[str, Any] | None = None
    _KEPT = ("profile", "job", "pack_scenarios", "scenarios", "pack", "deviations")

    def prepare(self) -> Campaign:
        if self.inputs is not None:
            for name, value in self.inputs.items():
                setattr(self, name, list(value) if isinstance(value, list) else value)
            return self
        super().prepare()
        type(self).inputs = {name: getattr(self, name) for name in self._KEPT}
        return self


def _machine(
    config: CampaignConfig,
    scratch: Path,
    result: Exploration,
    progress: Callable[[Exploration], None] | None,
    seed_value: int,
) -> type[RuleBasedStateMachine]:
    prepared = type("PreparedCampaign", (_Prepared,), {"inputs": None})

    class MeterAgainstTwin(RuleBasedStateMachine):
        """One run: a fresh bench, random steps, the twin after each."""

        def __init__(self) -> None:
            super().__init__()
            # The token factory's random digits follow the seed too: the same seed, the same
            # digits, so hypothesis sees the same meter answers when it replays a sequence.
            seed_ = config.seed if config.seed is not None else seed_value
            cfg = CampaignConfig(**{**config.__dict__, "out": scratch, "seed": seed_})
            self.campaign = prepared(cfg).open()
            self.runner = self.campaign.runner
            self.runner.journal = None  # an exploration is not a certification: no journal
            self.campaign.ledger.path = None  # nor is its sample's ledger kept
            self.profile = self.campaign.profile
            self.steps: list[dict[str, Any]] = []
            self.models: list[Any] = []
            self.tids: dict[str, int] = {}
            self.carrier = self.profile.carriers[0]
            setup = self.runner._setup(_scenario([], None), self.carrier)
            if setup is not None and setup.outcome is not Outcome.PASS:
                raise RuntimeError(f"the bench did not start: {setup.error}")
            result.runs += 1

        def teardown(self) -> None:
            self.campaign.close()

        @rule(data=st.data())
        def act(self, data: st.DataObject) -> None:
            step = draw_step(data.draw, self.profile, self.runner.ledger, self.steps)
            self.steps.append(step)
            # A repeat or a fill to a declared value runs as the steps it makes on this meter.
            made = expand(_scenario([_STEP.validate_python(step)], None), self.profile, 0.0)
            found = []
            for model in made.steps:
                self.models.append(model)
                scenario = _scenario(self.models, None)
                res: StepResult = self.runner._run_step(scenario, len(self.models) - 1,
                                                        self.carrier, self.tids)  # fmt: skip
                found = [c for c in res.checks if c.name.startswith("side effect:")]
                if found:
                    break
            result.steps_run += 1
            if progress is not None:
                progress(result)
            if found:
                if result.found_after is None:
                    result.found_after = result.steps_run
                raise DifferenceFound(list(self.steps), [
                    {"observable": c.name.split(":", 1)[1].strip(), "expected": c.expected,
                     "observed": c.observed, "sentence": c.detail} for c in found
                ])  # fmt: skip

    return MeterAgainstTwin


def _scenario(models: list[Any], setup_credit: Decimal | None) -> Scenario:
    return Scenario.model_construct(id="EXPLORE-RUN", title="exploration", clauses=["-"],
                                    group="Exploration", steps=list(models),
                                    setup_credit=setup_credit, carrier="any")  # fmt: skip


# --- the steps ------------------------------------------------------------------------------


_KINDS = (
    "token",
    "token",
    "token",
    "token",
    "key_change",
    "raw",
    "power_cycle",
    "load_on",
    "load_off",
    "wait",
    "tamper",
    "keys",
    "fill",
)
_TOKENS = ("credit", "credit", "credit", "mpl", "clear_credit", "clear_tamper", "test", "tariff")


def draw_step(
    draw: Callable[[Any], Any], profile: Any, ledger: Any, earlier: list[dict[str, Any]]
) -> dict[str, Any]:
    """One valid scenario step for this meter, as the YAML a pack would hold (``draw`` is a
    hypothesis ``data.draw``)."""
    carriers = list(profile.carriers)
    pick = st.sampled_from
    kinds = [k for k in _KINDS if k != "keys" or "keypad" in carriers]
    kind = draw(pick(kinds))
    via = {"via": draw(pick(carriers))} if len(carriers) > 1 else {}
    if kind == "token":
        return _token(draw, profile, ledger, earlier, via)
    if kind == "key_change":
        sections = list(range(1, (4 if profile.key.ea == "11" else 2) + 1))
        ken = draw(pick(("never", "never", 0, 1)))
        new = {"kt": draw(pick(("same", "same", 0, 1, 2, 3))), "ro": draw(st.booleans()),
               "ken": ken if ken == "never" else {"relative": ken}}  # fmt: skip
        order = draw(pick((sections, sections, [1], [2, 1])))
        return {"do": "key_change", "new_key": new, "order": list(order), **via}
    if kind == "raw":
        return {"do": "raw", "malformed": draw(pick(("19_digits", "21_digits", "too_large"))),
                **via}  # fmt: skip
    if kind == "power_cycle":
        return {"do": "power_cycle", "off_s": draw(pick((1.0, 5.0)))}
    if kind == "load_on":
        return {"do": "load", "on": True, "mode": "CP", "setpoint": draw(pick(_LOADS))}
    if kind == "load_off":
        return {"do": "load", "on": False}
    if kind == "wait":
        return {"do": "wait", "seconds": draw(pick(_WAITS))}
    if kind == "tamper":
        return {"do": "operator", "prompt": "Open the terminal cover",
                "sim_action": "raise_tamper"}  # fmt: skip
    if kind == "fill":
        # Up to a declared limit: the TID store full of this run's tokens, or the credit
        # register at (or one unit below) its limit, where the boundary rules act.
        if draw(st.booleans()):
            token = {"do": "token", "token": {"class": 0, "subclass": 0, "amount": Decimal("0.1")},
                     **via}  # fmt: skip
            return {"do": "repeat", "times": {"declared": "tokens.tid_store_size"},
                    "steps": [token]}  # fmt: skip
        to = {"declared": "tokens.credit_limit", "minus": draw(pick((0, 1)))}
        return {"do": "fill", "to": to, **via}
    keys = draw(st.lists(pick(("1", "2", "7", "0", "BACK", "ENTER")), min_size=1, max_size=6))
    step: dict[str, Any] = {"do": "keys", "keys": keys}
    if draw(st.booleans()):
        step["gap_ms"] = draw(pick((40, 80, 150)))
    return step


def _token(
    draw: Callable[[Any], Any],
    profile: Any,
    ledger: Any,
    earlier: list[dict[str, Any]],
    via: dict[str, str],
) -> dict[str, Any]:
    pick = st.sampled_from
    kind = draw(pick(_TOKENS))
    if kind == "credit":
        # Mostly electricity; also every other declared service and one the meter does not
        # keep (Function).
        services = sorted(profile.tokens.services)
        undeclared = next(s for s in range(8) if s not in services)
        subclass = draw(pick([0, 0, 0, *services, undeclared]))
        spec: dict[str, Any] = {"class": 0, "subclass": subclass,
                                "amount": Decimal(draw(pick(_AMOUNTS)))}  # fmt: skip
    elif kind == "mpl":
        spec = {"class": 2, "subclass": 0, "value": draw(pick(_LIMITS))}
    elif kind == "clear_credit":
        spec = {"class": 2, "subclass": 1, "value": draw(pick((0, 0xFFFF, 1)))}
    elif kind == "clear_tamper":
        spec = {"class": 2, "subclass": 5, "value": 0}
    elif kind == "tariff":
        spec = {"class": 2, "subclass": 2, "value": draw(st.integers(0, 500))}
    else:
        tests = draw(pick(("all", [0], [1, 2], [5], [7], [3, 4], [10], [9, 6])))
        spec = {"class": 1, "subclass": 0, "tests": tests,
                "mfr_code": draw(pick((0, 0, "own", "other")))}  # fmt: skip
    if spec["class"] != 1:
        ids = [s["id"] for s in earlier
               if s.get("do") == "token" and s["token"]["class"] != 1]  # fmt: skip
        rules = ["next", "next", "next", "below_store_min", "at_store_min", "key"]
        rules += ["same_as"] if ids else []
        rules += ["past_ken"] if ledger.key.ken != 255 else []
        rule_ = draw(pick(rules))
        if rule_ == "same_as":
            spec["tid"] = {"same_as": draw(pick(ids))}
        elif rule_ == "below_store_min":
            spec["tid"] = {"below_store_min": draw(pick((1, 2, 3)))}
        elif rule_ == "at_store_min":
            spec["tid"] = {"at_store_min": True}
        elif rule_ == "past_ken":
            spec["tid"] = {"past_ken": True}
        elif rule_ == "key":
            keys = ["other_key", "other_meter"] + (["previous"] if ledger.previous_key else [])
            spec["key"] = draw(pick(keys))
    step: dict[str, Any] = {"do": "token", "id": f"t{len(earlier) + 1}", "token": spec, **via}
    if draw(pick(range(10))) == 0:
        step["corrupt"] = "typo"
    return step


# --- the scenario file ------------------------------------------------------------------------


def write_scenario(result: Exploration, out: Path, seed_value: int, config: CampaignConfig) -> Path:
    """The shrunk sequence as a scenario file, with the reference meter's expectations on the
    step that showed the difference."""
    diffs = result.differences
    steps = [dict(s) for s in result.shrunk]
    expect = _expect_from(diffs, steps[-1])
    if expect:
        steps[-1]["expect"] = expect
    sid = f"EXPLORE-{seed_value}-{len(steps)}"
    doc = {
        "id": sid,
        "title": f"Found by exploration: {diffs[0]['sentence'].removeprefix('side effect: ')}"
        if diffs else "Found by exploration",
        "clauses": ["Reference meter process (sts.meter) as run by the twin: "
                    + ", ".join(sorted({d["observable"] for d in diffs}))],
        "group": "Exploration",
        "description": "\n".join(
            [f"stslab explore --seed {seed_value} found this after {result.found_after} "
             f"steps on {config.bench}" + (f" with {config.model}" if config.model else "")
             + (f" and {', '.join(config.defects)}" if config.defects else "")
             + f"; shrunk to {len(steps)} step(s)."]
            + [d["sentence"] for d in diffs]),
        "steps": steps,
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{sid.lower()}.yaml"
    text = yaml.safe_dump(_plain(doc), sort_keys=False, allow_unicode=True, width=96)
    path.write_text(f"# Written by stslab explore (seed {seed_value}).\n{text}")
    return path


def _expect_from(diffs: list[dict[str, str]], last: dict[str, Any]) -> dict[str, Any]:
    """Expectations the scenario format can state for the observables that differed."""
    expect: dict[str, Any] = {}
    readout: dict[str, str] = {}
    for d in diffs:
        name, want = d["observable"], d["expected"]
        if " or " in want:
            continue  # the reference allows either: nothing single to expect
        if name in ("krn", "kt", "ti", "ken", "mpl", "tamper"):
            readout[name] = want
        elif name == "result":
            code = int(want)
            if code and last.get("do") in ("token", "raw", "keys"):
                expect["result"] = parse_result(code).name.lower()
            else:
                readout["last_result"] = want
        elif name == "relay" and want in ("open", "closed"):
            expect["relay"] = {"state": want, "within_s": 5}
        elif name == "credit" and "±" in want and " to " not in want:
            expect["credit"] = {"equals": Decimal(want.split()[0])}
        elif name == "display" and not want.startswith("the credit"):
            expect["display_text"] = want
    if readout:
        expect["readout"] = readout
    return expect


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value) if value != value.to_integral() else int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
