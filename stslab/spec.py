"""The test specification of a scenario pack, as plain data.

What a lab hands its customer before testing: the pack (id, version, manifest hash, signature,
standard editions), every scenario with its clauses, when it applies, its steps and what each
expects with its tolerance, the declared parameters it proves, and the coverage matrices
(declared parameter -> scenarios, clause -> scenarios). ``reports.spec`` draws it; like a
report from a record, the document is made from this data alone.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

from stslab.pack import PackStatus
from stslab.scenario import (
    Applicability,
    Expect,
    Scenario,
    TokenSpec,
    parse_result,
)

SPEC_SCHEMA = "stslab.spec/1"
#: The scenario field naming the declared parameters (DUT profile keys) a scenario proves.
PROVES_FIELD = "proves"


def pack_spec(status: PackStatus, scenarios: list[Scenario], software: str) -> dict[str, Any]:
    """The specification of a verified pack (``status``) and its loaded ``scenarios``."""
    items = [scenario_spec(s) for s in scenarios]
    proves: dict[str, list[str]] = {}
    clauses: dict[str, list[str]] = {}
    for s in items:
        for parameter in s["proves"]:
            proves.setdefault(parameter, []).append(s["id"])
        for clause in s["clauses"]:
            clauses.setdefault(clause, []).append(s["id"])
    pack = {
        "id": status.pack_id, "version": status.version, "title": status.title,
        "standards": list(status.standards), "manifest_sha256": status.manifest_sha256,
        "signed": status.signed, "signature_valid": status.signature_valid,
        "signer": status.signer, "signer_fingerprint": status.signer_fingerprint,
        "untampered": status.untampered, "problems": list(status.problems),
        "files": dict(status.files),
    }  # fmt: skip
    return {
        "schema": SPEC_SCHEMA,
        "software": software,
        "pack": pack,
        "groups": _groups(items),
        "scenarios": items,
        "proves_field": PROVES_FIELD,
        "coverage": {
            "parameters": [{"parameter": p, "scenarios": ids} for p, ids in sorted(proves.items())],
            "clauses": [{"clause": c, "scenarios": ids} for c, ids in sorted(clauses.items())],
        },
    }


def _groups(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    order: dict[str, int] = {}
    for s in items:
        order[s["group"]] = order.get(s["group"], 0) + 1
    return [{"group": g, "scenarios": n} for g, n in order.items()]


def scenario_spec(s: Scenario) -> dict[str, Any]:
    proves = getattr(s, PROVES_FIELD, None) or []
    steps = [
        {"number": i, "label": getattr(step, "id", None) or "", "action": describe_step(step),
         "note": getattr(step, "note", None) or "", "via": getattr(step, "via", None),
         "expect": describe_expect(expect) if (expect := getattr(step, "expect", None)) else []}
        for i, step in enumerate(s.steps, 1)
    ]  # fmt: skip
    return {
        "id": s.id,
        "title": s.title,
        "group": s.group,
        "clauses": list(s.clauses),
        "description": s.description,
        "applies": describe_applies(s.applies),
        "carrier": "the meter's first declared carrier" if s.carrier == "any" else s.carrier,
        "setup_credit": None if s.setup_credit is None else f"{s.setup_credit} kWh",
        "sequence": s.sequence,
        "proves": [str(p) for p in proves],
        "file": Path(s.source_file).name,
        "line": s.source_line,
        "steps": steps,
    }


def describe_applies(a: Applicability) -> list[str]:
    """The preconditions of ``applies`` as sentences (empty: every meter)."""
    out = []
    if a.carriers:
        out.append(f"the meter declares the {', '.join(a.carriers)} carrier(s)")
    if a.features:
        out.append(f"the meter declares {', '.join(a.features)}")
    if a.absent:
        out.append(f"the meter does not declare {', '.join(a.absent)}")
    if a.tests:
        out.append(f"the meter supports class-1 test(s) {', '.join(map(str, a.tests))}")
    if a.services:
        out.append(f"the meter declares service register(s) {', '.join(map(str, a.services))}")
    if a.ea:
        out.append(f"the meter uses EA{'/'.join(a.ea)}")
    if a.meter_new:
        out.append("the meter is as its maker shipped it: the harness has given it no token")
    return out


def describe_token(t: TokenSpec) -> str:
    text = f"class {t.token_class} subclass {t.subclass} token"
    if t.amount is not None:
        text += f", amount {t.amount}"
    if t.value is not None:
        text += f", value {t.value}"
    if t.tests is not None:
        text += f", tests {t.tests if t.tests == 'all' else ', '.join(map(str, t.tests))}"
    if t.control is not None:
        text += f", control bits {t.control}"
    if t.mfr_code != 0:
        text += f", MfrCode {t.mfr_code}"
    rule = t.tid.rule
    if rule != "next":
        value = getattr(t.tid, rule)
        text += f", TID {rule.replace('_', ' ')}" + ("" if value is True else f" {value}")
    if t.rnd is not None:
        text += f", RND {t.rnd}"
    if t.key != "current":
        text += f", key: {t.key.replace('_', ' ')}"
    return text


def describe_step(step: Any) -> str:
    """What a step does, in a line."""
    kind = step.do
    if kind == "token":
        text = f"mint and enter a {describe_token(step.token)}"
        return text + (" with a one-digit typo" if step.corrupt == "typo" else "")
    if kind == "key_change":
        k = step.new_key
        changes = [f"{name} {getattr(k, name)}" for name in ("krn", "ti", "kt", "base_date",
                   "sgc", "ken") if getattr(k, name) not in ("same", "never")]  # fmt: skip
        text = "enter a key change token set" + (f" ({', '.join(changes)})" if changes else "")
        if k.ro:
            text += ", rollover"
        return text + (f", sections in the order {step.order}" if step.order else "")
    if kind == "raw":
        return f"enter the digits {step.digits}" if step.digits else f"enter {step.malformed}"
    if kind == "keys":
        text = "press " + " ".join(step.keys)
        if step.hold_ms is not None:
            text += f", each held {describe_count(step.hold_ms)} ms"
        if step.gap_ms is not None:
            text += f", {step.gap_ms} ms apart"
        return text
    if kind == "load":
        if not step.on:
            return "switch the load off"
        return f"switch the load on: {step.mode} {step.setpoint:g}"
    if kind == "source":
        parts = ["supply on" if step.output else "supply off"]
        if step.voltage is not None:
            parts.append(f"{step.voltage:g} V")
        if step.frequency is not None:
            parts.append(f"{step.frequency:g} Hz")
        return ", ".join(parts)
    if kind == "wait":
        if step.seconds is not None:
            since = f" after step {step.since!r}" if getattr(step, "since", None) else ""
            return f"wait {describe_count(step.seconds)} s{since}"
        if step.energy_wh is not None:
            return f"wait for {step.energy_wh:g} Wh (at most {step.timeout_s:g} s)"
        if step.display is not None:
            return f"wait until the display shows the credit (at most {step.timeout_s:g} s)"
        return f"wait until the load switch is {step.relay} (at most {step.timeout_s:g} s)"
    if kind == "power_cycle":
        return f"supply off for {describe_count(step.off_s)} s, then on"
    if kind == "operator":
        return f"operator: {step.prompt}"
    if kind == "observe":
        return "observe"
    if kind == "fill":
        register = "the credit register" if step.register_no == 0 else (
            f"credit register {step.register_no}")  # fmt: skip
        return f"credit {register} up to {describe_count(step.to)} base units, token by token"
    if kind == "repeat":
        inner = ", ".join(str(sub.get("do", "?")) for sub in step.steps)
        if step.each is not None:
            which = "value outside" if step.each.outside else "member of"
            return f"for each {which} the declared {step.each.declared}: {inner}"
        return f"{describe_count(step.times)} times: {inner}"
    return kind


def describe_count(value: Any) -> str:
    """A number, or a value of the meter's declaration with what is added or taken off."""
    declared = getattr(value, "declared", None)
    if declared is None:
        return format(value, "g") if isinstance(value, int | float) else str(value)
    text = f"the declared {declared}"
    if value.times != 1:
        text = f"{value.times:g} × {text}"
    for sign, amount in (("+", value.plus), ("−", value.minus)):
        if amount:
            text += f" {sign} {amount if amount == 'margin' else format(amount, 'g')}"
    return text


def describe_expect(e: Expect) -> list[str]:
    """What a step expects, each with its tolerance, a line each. Expectation kinds this
    function does not know by name are still listed, with their fields."""
    out = []
    known = {"result", "results", "display", "display_text", "credit", "relay", "readout",
             "test_displays", "annunciators", "energy"}  # fmt: skip
    if e.result is not None:
        out.append(f"result: {parse_result(e.result).label}")
    if e.results is not None:
        out.append("key change entries answered: "
                   + ", ".join(parse_result(r).label for r in e.results))  # fmt: skip
    if e.display is not None:
        out.append(f"display: the {parse_result(e.display).label} message")
    if e.display_text is not None:
        out.append(f"display shows \u201c{e.display_text}\u201d")
    if e.credit is not None:
        c = e.credit
        unit = " kWh" if c.register_no == 0 else ""
        register = "credit" if c.register_no == 0 else f"credit register {c.register_no}"
        if c.change is not None:
            out.append(f"{register} change: {c.change} ± {c.tolerance}{unit}")
        if c.at_least is not None:
            out.append(f"{register} at least {c.at_least}{unit} (tolerance {c.tolerance}{unit})")
        if c.equals is not None:
            out.append(f"{register}: {c.equals} ± {c.tolerance}{unit}")
    if e.energy is not None:
        out.append(f"energy register change: {e.energy.change} ± {e.energy.tolerance} kWh")
    if e.relay is not None:
        out.append(f"load switch {e.relay.state} within {e.relay.within_s:g} s")
    for name, value in (e.readout or {}).items():
        out.append(f"readout {name}: {describe_count(value)}")
    for n, d in enumerate(e.test_displays or (), 1):
        parts = []
        if d.all_segments:
            parts.append("every segment and annunciator lit")
        if d.shows:
            tol = f" (± {d.tolerance:g})" if d.tolerance else ""
            parts.append(f"shows {', '.join(d.shows)}{tol}")
        if d.annunciators:
            parts.append(f"with {', '.join(d.annunciators)} lit")
        out.append(f"test display {n} (test {d.test}): {'; '.join(parts) or 'shown'}")
    if e.annunciators is not None:
        a = e.annunciators
        lit = f"lit: {', '.join(a.lit)}" if a.lit else ""
        dark = f"dark: {', '.join(a.dark)}" if a.dark else ""
        out.append(f"annunciators {'; '.join(x for x in (lit, dark) if x)}")
    for name, value in e.model_dump(exclude_none=True, by_alias=True).items():
        if name not in known:
            out.append(f"{name.replace('_', ' ')}: {_plain(value)}")
    return out


def _plain(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_plain(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, Decimal | float):
        return f"{value:g}"
    return str(value)
