"""The pictures: the verdict chart draws every group with its counts, and the timeline
places load, credit and load-switch states where the record's steps put them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from reports import charts

SVG = "{http://www.w3.org/2000/svg}"


def _step(kind: str, modelled_s: float, action: dict | None = None, **obs: Any) -> dict:
    return {"kind": kind, "modelled_s": modelled_s, "action": action or {},
            "observations": obs, "checks": [], "evidence": []}  # fmt: skip


DEPLETION = {
    "id": "X-1",
    "steps": [
        _step("setup", 0.0, credit_before="0.500"),
        _step(
            "token",
            10.0,
            {"token": {"kind": "TransferCredit"}},
            relay="closed",
            relay_transition_s=0.0,
            credit_after="0.600",
        ),
        _step("load", 0.5, {"mode": "CP", "setpoint": 1200.0, "on": True}),
        _step("observe", 100.0, relay="open", relay_transition_s=99.0),
        _step("load", 0.5, {"mode": "CP", "setpoint": 0.0, "on": False}),
        _step("power_cycle", 20.0, {"off_s": 5.0}),
    ],
}


def test_the_timeline_puts_each_observation_in_its_step() -> None:
    tl = charts.timeline(DEPLETION)
    assert tl.end_s == 131.0
    assert tl.step_starts == [(0.0, 1), (10.0, 2), (10.5, 3), (110.5, 4), (111.0, 5)]
    assert tl.credit == [(0.0, 0.5), (10.0, 0.6)]
    assert tl.power == [(0.0, 0.0), (10.0, 1200.0), (110.5, 0.0)]
    assert tl.relay == [(10.0, "closed"), (110.5, "open")]  # confirmed at the step's end
    assert tl.supply_off == [(111.0, 116.0)]
    assert not tl.credit_sampled and not tl.power_measured


def test_samples_in_the_record_are_drawn_as_measured() -> None:
    sampled = {"id": "X-2", "steps": [
        _step("load", 1.0, {"mode": "CP", "setpoint": 1000.0, "on": True}),
        _step("wait", 60.0, samples=[{"t_s": 0, "credit_kwh": 0.02, "power_w": 998.0,
                                      "relay": "closed"},
                                     {"t_s": 30, "credit_kwh": 0.012, "power_w": 1001.0,
                                      "relay": "closed"},
                                     {"t_s": 59, "credit_kwh": 0.0, "power_w": 0.0,
                                      "relay": "open"}]),
    ]}  # fmt: skip
    assert charts.wants_timeline(sampled)
    tl = charts.timeline(sampled)
    assert tl.credit_sampled and tl.power_measured
    assert tl.credit == [(1.0, 0.02), (31.0, 0.012), (60.0, 0.0)]
    assert tl.relay == [(1.0, "closed"), (60.0, "open")]
    svg = ET.fromstring(charts.timeline_chart(sampled) or "")
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "kWh (samples)" in texts and "W (measured)" in texts


def test_only_scenarios_with_a_load_get_a_timeline() -> None:
    assert charts.wants_timeline(DEPLETION)
    plain = {"id": "X-3", "steps": [_step("token", 5.0, relay="open")]}
    assert not charts.wants_timeline(plain) and charts.timeline_chart(plain) is None
    svg = ET.fromstring(charts.timeline_chart(DEPLETION) or "")
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert {"credit", "load", "load switch", "closed", "open", "supply off"} <= set(texts)
    assert svg.get("aria-label") == "timeline of X-1"


def test_the_verdict_chart_draws_every_group_with_its_counts() -> None:
    record = {"scenarios": [
        {"group": "TID", "outcome": "PASS"}, {"group": "TID", "outcome": "FAIL"},
        {"group": "TID", "outcome": "PASS"}, {"group": "Keypad", "outcome": "SKIP"},
        {"group": "Keypad", "outcome": "ERROR"}, {"group": "<odd & group>", "outcome": "FAIL"},
    ]}  # fmt: skip
    svg = ET.fromstring(charts.verdict_chart(record))  # parses: names are escaped
    texts = [t.text for t in svg.iter(f"{SVG}text")]
    assert "2 pass · 1 fail" in texts
    assert "1 error · 1 skip" in texts
    assert "<odd & group>" in texts
    bars = [r for r in svg.iter(f"{SVG}rect") if r.get("fill") in charts.COLOURS.values()]
    assert len(bars) == 4 + 2 + 2 + 1  # legend + TID + Keypad + odd
    widths = {float(r.get("width", 0)) for r in bars[4:6]}
    assert max(widths) == 2 * min(widths)  # TID: 2 pass, 1 fail


def test_empty_records_still_draw() -> None:
    assert "no scenario results" in charts.verdict_chart({"scenarios": []})
    assert charts.timeline({"steps": []}).end_s == 0.0
