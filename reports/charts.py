"""Report pictures as SVG, drawn from the record: verdicts per clause group, and a timeline
(credit, load, load-switch state) for scenarios that draw a load.

Plain SVG text so the same picture serves the PDF (WeasyPrint draws it) and a browser; no
plotting library. Every number comes from the record; nothing is interpolated except where
the record holds samples, and the timeline says which points were measured.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from html import escape
from typing import Any

OUTCOMES = ("PASS", "FAIL", "ERROR", "SKIP")
COLOURS = {"PASS": "#2e7d32", "FAIL": "#c62828", "ERROR": "#e08a00", "SKIP": "#9e9e9e"}
RELAY_COLOURS = {"closed": "#2e7d32", "open": "#c62828", None: "#e0e0e0"}
FONT = "DejaVu Sans, sans-serif"


def _num(value: float) -> str:
    """A coordinate as SVG wants it: short, no exponent."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, text: str, size: float = 9, anchor: str = "start",
          fill: str = "#222", weight: str = "normal") -> str:  # fmt: skip
    return (f'<text x="{_num(x)}" y="{_num(y)}" font-size="{_num(size)}" '
            f'text-anchor="{anchor}" fill="{fill}" font-weight="{weight}" '
            f'font-family="{FONT}">{escape(text)}</text>')  # fmt: skip


def _rect(x: float, y: float, w: float, h: float, fill: str, stroke: str = "none") -> str:
    return (f'<rect x="{_num(x)}" y="{_num(y)}" width="{_num(max(w, 0))}" '
            f'height="{_num(max(h, 0))}" fill="{fill}" stroke="{stroke}"/>')  # fmt: skip


def _line(x1: float, y1: float, x2: float, y2: float, stroke: str = "#888",
          width: float = 0.6, dash: str | None = None) -> str:  # fmt: skip
    d = f' stroke-dasharray="{dash}"' if dash else ""
    return (f'<line x1="{_num(x1)}" y1="{_num(y1)}" x2="{_num(x2)}" y2="{_num(y2)}" '
            f'stroke="{stroke}" stroke-width="{_num(width)}"{d}/>')  # fmt: skip


def _svg(width: float, height: float, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_num(width)} '
            f'{_num(height)}" width="{_num(width)}" height="{_num(height)}" role="img" '
            f'aria-label="{escape(label)}">' + "".join(body) + "</svg>")  # fmt: skip


# --- verdicts per clause group -------------------------------------------------------------


def group_counts(record: dict[str, Any]) -> dict[str, Counter[str]]:
    """Scenario outcomes per clause group, groups in the order the record first names them."""
    groups: dict[str, Counter[str]] = {}
    for scenario in record.get("scenarios", []):
        groups.setdefault(scenario.get("group") or "(no group)", Counter())[
            scenario["outcome"]
        ] += 1
    return groups


def verdict_chart(record: dict[str, Any]) -> str:
    """A horizontal stacked bar per clause group: how many scenarios passed, failed, erred
    or were skipped."""
    groups = group_counts(record)
    width, label_w, count_w, bar_h, gap, top = 680.0, 130.0, 150.0, 14.0, 6.0, 24.0
    bar_w = width - label_w - count_w - 10
    most = max((sum(c.values()) for c in groups.values()), default=1) or 1
    body = []
    x = label_w
    for outcome in OUTCOMES:
        body.append(_rect(x, 6, 10, 10, COLOURS[outcome]))
        body.append(_text(x + 14, 15, outcome.lower(), 9))
        x += 70
    y = top
    for group, counts in groups.items():
        body.append(_text(label_w - 6, y + bar_h - 3.5, group, 9, "end"))
        x = label_w
        for outcome in OUTCOMES:
            n = counts.get(outcome, 0)
            if not n:
                continue
            w = bar_w * n / most
            body.append(_rect(x, y, w, bar_h, COLOURS[outcome]))
            if w >= 14:
                body.append(_text(x + w / 2, y + bar_h - 3.5, str(n), 8.5, "middle", "#fff",
                                  "bold"))  # fmt: skip
            x += w
        summary = " · ".join(f"{counts[o]} {o.lower()}" for o in OUTCOMES if counts.get(o))
        body.append(_text(label_w + bar_w + 8, y + bar_h - 3.5, summary, 8.5))
        y += bar_h + gap
    if not groups:
        body.append(_text(label_w, y + 10, "no scenario results", 9))
        y += 16
    return _svg(width, y + 4, body, "scenario verdicts per clause group")


# --- the timeline of a scenario that draws a load --------------------------------------------


@dataclass
class Timeline:
    """What the record says happened over a scenario, on the bench clock (seconds from the
    scenario's start)."""

    end_s: float
    step_starts: list[tuple[float, int]] = field(default_factory=list)  # (t, step number)
    credit: list[tuple[float, float]] = field(default_factory=list)  # kWh, measured points
    credit_sampled: bool = False  # True when the credit points are periodic samples
    power: list[tuple[float, float]] = field(default_factory=list)  # W from t onwards
    power_measured: bool = False  # True when power comes from analyser samples
    relay: list[tuple[float, str]] = field(default_factory=list)  # state from t onwards
    supply_off: list[tuple[float, float]] = field(default_factory=list)  # (from, to)


def wants_timeline(scenario: dict[str, Any]) -> bool:
    """Depletion and power-limit scenarios: those that switch a load on (or carry samples)."""
    for step in scenario.get("steps", []):
        if step.get("kind") == "load" and step.get("action", {}).get("on"):
            return True
        if step.get("observations", {}).get("samples"):
            return True
    return False


def _decimal(value: Any) -> float | None:
    try:
        number = float(Decimal(str(value)))
    except (InvalidOperation, ValueError):
        return None
    return number if math.isfinite(number) else None


def timeline(scenario: dict[str, Any]) -> Timeline:
    """The scenario's steps laid end to end on the bench clock (each step lasts its
    ``modelled_s``), with the credit, load and load-switch observations placed in them.

    A load-switch state is drawn from the end of the step whose observation confirmed it:
    the record says how long the probe waited, not when on the bench clock it began.
    Steps may carry ``observations.samples``: ``[{"t_s", "credit_kwh", "power_w", "relay"}]``
    with ``t_s`` from the step's start; those are drawn as measured.
    """
    t = 0.0
    tl = Timeline(end_s=0.0)
    relay: list[tuple[float, str]] = []
    number = 0
    steps = scenario.get("steps", [])
    if steps and steps[0].get("kind") == "setup":
        tl.power.append((0.0, 0.0))  # the setup's baseline switches the load off
    for step in steps:
        t0 = t
        t1 = t0 + max(float(step.get("modelled_s") or 0.0), 0.0)
        kind = step.get("kind")
        action = step.get("action") or {}
        obs = step.get("observations") or {}
        if kind != "setup":
            number += 1
            tl.step_starts.append((t0, number))
        if (v := _decimal(obs.get("credit_before"))) is not None:
            tl.credit.append((t0, v))
        if kind == "load":
            on = bool(action.get("on"))
            mode = str(action.get("mode", "")).upper()
            watts = _decimal(action.get("setpoint")) if on and mode == "CP" else None
            tl.power.append((t0, (watts or 0.0) if on else 0.0))
        if kind == "power_cycle":
            tl.supply_off.append((t0, min(t1, t0 + float(action.get("off_s") or 0.0))))
        if kind == "source" and action.get("output") is False:
            tl.supply_off.append((t0, t1))
        for sample in obs.get("samples") or []:
            ts = t0 + float(sample.get("t_s", 0.0))
            if (v := _decimal(sample.get("credit_kwh"))) is not None:
                tl.credit.append((ts, v))
                tl.credit_sampled = True
            if (v := _decimal(sample.get("power_w"))) is not None:
                tl.power.append((ts, v))
                tl.power_measured = True
            if sample.get("relay") in ("open", "closed"):
                relay.append((ts, sample["relay"]))
        if obs.get("relay") in ("open", "closed"):
            relay.append((t1, obs["relay"]))
        if (v := _decimal(obs.get("credit_after"))) is not None:
            tl.credit.append((t1, v))
        t = t1
    tl.end_s = t
    by_time = lambda point: point[0]  # noqa: E731 - stable: same-time entries keep their order
    tl.credit.sort(key=by_time)
    tl.power.sort(key=by_time)
    relay.sort(key=by_time)
    for when, state in relay:  # keep changes only
        if not tl.relay or tl.relay[-1][1] != state:
            tl.relay.append((when, state))
    return tl


def _ticks(high: float, count: int = 5) -> list[float]:
    """Round axis ticks from 0 to at least ``high``."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    n = math.ceil(high / step - 1e-9)
    return [i * step for i in range(n + 1)]


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e5 else f"{value:.3g}"


def timeline_chart(scenario: dict[str, Any]) -> str | None:
    """Three panels on one time axis: credit (kWh), load (W), load-switch state. None when
    the scenario draws no load."""
    if not wants_timeline(scenario):
        return None
    tl = timeline(scenario)
    width, left, right = 680.0, 92.0, 14.0
    plot_w = width - left - right
    span = tl.end_s if tl.end_s > 0 else 1.0
    xticks = [t for t in _ticks(span, 8) if t <= span + 1e-9]

    def x(t: float) -> float:
        return left + plot_w * min(max(t, 0.0), span) / span

    body: list[str] = []
    top = 16.0
    # step boundaries, numbered as in the results table
    body.append(_text(4, top - 4, "step", 8, "start", "#555"))
    last_label = -1e9
    for t0, number in tl.step_starts:
        body.append(_line(x(t0), top, x(t0), top + 196, "#ccc", 0.5, "2,2"))
        if x(t0) - last_label >= 10:
            body.append(_text(x(t0) + 1.5, top - 4, str(number), 7.5, "start", "#555"))
            last_label = x(t0)

    def panel(y: float, h: float, title: str, unit: str, points: list[tuple[float, float]],
              stepwise: bool, markers: bool) -> None:  # fmt: skip
        body.append(_rect(left, y, plot_w, h, "#fafafa", "#bbb"))
        body.append(_text(4, y + 10, title, 8.5, weight="bold"))
        body.append(_text(4, y + 21, unit, 7.5, fill="#555"))
        high = max((v for _, v in points), default=0.0)
        yticks = _ticks(high * 1.05 if high > 0 else 1.0, 3)
        ytop = yticks[-1] or 1.0

        def yy(v: float) -> float:
            return y + h - h * max(v, 0.0) / ytop

        for tick in yticks:
            body.append(_line(left - 3, yy(tick), left, yy(tick), "#888"))
            body.append(_text(left - 5, yy(tick) + 3, _fmt(tick), 7.5, "end", "#555"))
        if not points:
            body.append(_text(left + 6, y + h / 2 + 3, "not observed in this scenario", 8,
                              fill="#777"))  # fmt: skip
            return
        if stepwise:
            path = [f"M{_num(x(points[0][0]))},{_num(yy(points[0][1]))}"]
            for (_, v_prev), (t_next, v_next) in itertools.pairwise(points):
                path.append(f"L{_num(x(t_next))},{_num(yy(v_prev))}")
                path.append(f"L{_num(x(t_next))},{_num(yy(v_next))}")
            path.append(f"L{_num(x(tl.end_s))},{_num(yy(points[-1][1]))}")
            body.append(f'<path d="{" ".join(path)}" fill="none" stroke="#1565c0" '
                        f'stroke-width="1.4"/>')  # fmt: skip
        elif len(points) > 1 and not markers:
            d = " ".join(f"{'M' if i == 0 else 'L'}{_num(x(t))},{_num(yy(v))}"
                         for i, (t, v) in enumerate(points))  # fmt: skip
            body.append(f'<path d="{d}" fill="none" stroke="#1565c0" stroke-width="1.4"/>')
        if markers:
            for t, v in points:
                body.append(f'<circle cx="{_num(x(t))}" cy="{_num(yy(v))}" r="2.6" '
                            f'fill="#1565c0"/>')  # fmt: skip

    panel(top, 62, "credit", "kWh" + (" (samples)" if tl.credit_sampled else " (readings)"),
          tl.credit, stepwise=False, markers=not tl.credit_sampled)  # fmt: skip
    panel(top + 72, 62, "load", "W" + (" (measured)" if tl.power_measured else " (set)"),
          tl.power, stepwise=not tl.power_measured, markers=False)  # fmt: skip
    # load-switch state band
    y, h = top + 144, 22.0
    body.append(_text(4, y + 14, "load switch", 8.5, weight="bold"))
    body.append(_rect(left, y, plot_w, h, RELAY_COLOURS[None], "#bbb"))
    for i, (t_from, state) in enumerate(tl.relay):
        t_to = tl.relay[i + 1][0] if i + 1 < len(tl.relay) else tl.end_s
        body.append(_rect(x(t_from), y, x(t_to) - x(t_from), h, RELAY_COLOURS[state]))
        if x(t_to) - x(t_from) > 34:
            body.append(_text((x(t_from) + x(t_to)) / 2, y + 14.5, state, 8, "middle", "#fff",
                              "bold"))  # fmt: skip
    for t_from, t_to in tl.supply_off:
        body.append(_rect(x(t_from), y + h + 3, x(t_to) - x(t_from), 4, "#555"))
    # time axis
    axis_y = y + h + 12
    body.append(_line(left, axis_y, left + plot_w, axis_y, "#888"))
    for tick in xticks:
        body.append(_line(x(tick), axis_y, x(tick), axis_y + 3, "#888"))
        body.append(_text(x(tick), axis_y + 12, _fmt(tick), 7.5, "middle", "#555"))
    body.append(_text(left + plot_w, axis_y + 24, "bench time from the scenario start (s)", 8,
                      "end", "#555"))  # fmt: skip
    legend = [(RELAY_COLOURS["closed"], "closed"), (RELAY_COLOURS["open"], "open"),
              (RELAY_COLOURS[None], "not yet observed")]  # fmt: skip
    lx = left
    for colour, label in legend:
        body.append(_rect(lx, axis_y + 17, 9, 9, colour))
        body.append(_text(lx + 12, axis_y + 25, label, 8))
        lx += 16 + 6 * len(label)
    if tl.supply_off:
        body.append(_rect(lx, axis_y + 20, 12, 4, "#555"))
        body.append(_text(lx + 15, axis_y + 25, "supply off", 8))
    return _svg(width, axis_y + 30, body, f"timeline of {scenario.get('id', '')}")
