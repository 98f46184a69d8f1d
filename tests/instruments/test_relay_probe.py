"""RelayProbe reading SimLab's plant through the WT300 driver over TCP."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from instruments.base import InstrumentGone, InstrumentTimeout
from instruments.relay import RelayProbe, RelayTimeout
from instruments.roles import PowerSample
from instruments.scpi import Chroma61500Source, Wt300Analyzer
from simlab.clock import SimClock
from simlab.plant import LoadMode, Plant
from simlab.scpi import Chroma61500, YokogawaWT310

TIMEOUT_S = 2.0
INTERVAL_S = 0.5


class StepClock:
    """Simulated seconds that pass only when the probe sleeps; scheduled changes happen on
    the way, so a test decides to the sample when the plant changes."""

    def __init__(self) -> None:
        self.t = 0.0
        self._events: list[tuple[float, Callable[[], None]]] = []

    def now(self) -> float:
        return self.t

    def at(self, when: float, action: Callable[[], None]) -> None:
        self._events.append((when, action))
        self._events.sort(key=lambda event: event[0])

    def sleep(self, seconds: float) -> None:
        target = self.t + seconds
        while self._events and self._events[0][0] <= target:
            when, action = self._events.pop(0)
            self.t = max(self.t, when)
            action()
        self.t = target


@dataclass
class Bench:
    clock: StepClock
    plant: Plant
    analyser: YokogawaWT310
    analyzer: Wt300Analyzer

    def probe(self, **options: object) -> RelayProbe:
        options.setdefault("interval_s", INTERVAL_S)
        return RelayProbe(
            self.analyzer,
            230.0,
            clock=self.clock.now,
            sleep=self.clock.sleep,
            **options,  # type: ignore[arg-type]
        )


def power_up(plant: Plant) -> None:
    plant.set_source_voltage(230.0)
    plant.set_source_frequency(50.0)
    plant.set_source_output(True)
    plant.set_load(LoadMode.CP, 1000.0)
    plant.set_load_on(True)
    plant.set_relay(True)


@pytest.fixture
def bench() -> Iterator[Bench]:
    clock = StepClock()
    plant = Plant(clock)
    power_up(plant)
    with YokogawaWT310(plant) as analyser:
        analyzer = Wt300Analyzer(analyser.resource, timeout_s=TIMEOUT_S)
        try:
            yield Bench(clock, plant, analyser, analyzer)
        finally:
            analyzer.close()


def relay(plant: Plant, closed: bool) -> Callable[[], None]:
    return lambda: plant.set_relay(closed)


# ---- state ---------------------------------------------------------------------------------


def test_the_state_follows_the_relay(bench: Bench) -> None:
    probe = bench.probe()
    assert probe.last_state == "unknown"
    observation = probe.observe()
    assert observation.state == "closed"
    assert observation.samples_taken == 3
    assert [s.reading for s in observation.samples] == ["closed"] * 3
    assert observation.samples[0].voltage_v == pytest.approx(230.0)
    bench.plant.set_relay(False)
    assert probe.state() == "open"
    bench.plant.set_relay(True)
    assert probe.state() == "closed"


def test_waits_report_the_transition_time_to_the_sample(bench: Bench) -> None:
    probe = bench.probe()
    assert probe.state() == "closed"
    start = bench.clock.now()
    bench.clock.at(start + 3.0, relay(bench.plant, False))
    assert probe.wait_for("open", 10.0) == pytest.approx(3.0)
    start = bench.clock.now()
    bench.clock.at(start + 2.2, relay(bench.plant, True))
    observation = probe.wait("closed", 10.0)
    # The relay closed between two samples: the first that sees it is the next one.
    assert observation.transition_s == pytest.approx(2.5)
    assert 2.2 <= observation.transition_s < 2.2 + INTERVAL_S
    first = [s.t_s for s in observation.samples].index(observation.transition_s)
    assert [s.state for s in observation.samples[first:]] == ["closed"] * 3
    assert all(s.state == "open" for s in observation.samples[:first])
    notes = [e.data for e in bench.analyzer.transcript.entries if e.direction == "note"]
    assert any("relay probe: closed after 2.500 s" in note for note in notes)


def test_an_already_reached_state_is_confirmed_at_once(bench: Bench) -> None:
    probe = bench.probe()
    observation = probe.wait("closed", 5.0)
    assert observation.transition_s == 0.0
    assert observation.samples_taken == 3


def test_a_transition_seen_in_time_is_confirmed_after_the_deadline(bench: Bench) -> None:
    probe = bench.probe()
    bench.clock.at(2.0, relay(bench.plant, False))
    assert probe.wait_for("open", 2.0) == pytest.approx(2.0)
    assert bench.clock.now() == pytest.approx(3.0)  # two confirming samples after it


def test_a_voltage_between_the_thresholds_keeps_the_last_state(bench: Bench) -> None:
    plant = bench.plant
    probe = bench.probe()
    assert probe.state() == "closed"
    plant.set_source_voltage(115.0)  # 50 % of the supply: neither closed nor open
    observation = probe.observe()
    assert [s.reading for s in observation.samples] == ["between"] * 3
    assert observation.state == "closed"
    plant.set_relay(False)
    assert probe.state() == "open"
    plant.set_relay(True)  # closed again, but the load side reads only 115 V
    assert probe.state() == "open"
    plant.set_source_voltage(230.0)
    assert probe.state() == "closed"
    plant.set_source_voltage(115.0)
    assert bench.probe().state() == "unknown"  # a new probe has no last state to keep


def test_thresholds_are_relative_to_the_supply_voltage(bench: Bench) -> None:
    bench.plant.set_source_voltage(115.0)
    assert bench.probe().state() == "unknown"  # 50 % of a 230 V supply
    probe = RelayProbe(bench.analyzer, 120.0, clock=bench.clock.now, sleep=bench.clock.sleep)
    assert probe.state() == "closed"  # 96 % of a 120 V supply


def test_a_single_glitch_does_not_flip_the_state(bench: Bench) -> None:
    probe = bench.probe()
    assert probe.state() == "closed"
    start = bench.clock.now()
    # Open for one sample only (sampled at +1.0, closed again before +1.5) ...
    bench.clock.at(start + 1.0, relay(bench.plant, False))
    bench.clock.at(start + 1.25, relay(bench.plant, True))
    # ... and for two samples (agree is 3).
    bench.clock.at(start + 3.0, relay(bench.plant, False))
    bench.clock.at(start + 3.75, relay(bench.plant, True))
    with pytest.raises(RelayTimeout) as raised:
        probe.wait("open", 5.0)
    readings = [s.reading for s in raised.value.observation.samples]
    assert readings.count("open") == 3
    assert probe.last_state == "closed"
    assert raised.value.observation.state == "closed"


def test_n_agreeing_samples_are_required(bench: Bench) -> None:
    probe = bench.probe(agree=5)
    bench.clock.at(1.0, relay(bench.plant, False))
    observation = probe.wait("open", 10.0)
    assert observation.transition_s == pytest.approx(1.0)
    assert [s.reading for s in observation.samples].count("open") == 5


def test_a_wait_times_out_when_nothing_changes(bench: Bench) -> None:
    probe = bench.probe()
    with pytest.raises(InstrumentTimeout, match="did not read open within 2 s") as raised:
        probe.wait_for("open", 2.0)
    assert isinstance(raised.value, RelayTimeout)
    observation = raised.value.observation
    assert [s.t_s for s in observation.samples] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert observation.state == "closed"
    assert observation.transition_s is None


def test_a_silent_analyzer_is_a_timeout_not_a_state(bench: Bench) -> None:
    bench.analyzer.close()
    analyzer = Wt300Analyzer(bench.analyser.resource, timeout_s=0.3)
    try:
        probe = RelayProbe(analyzer, 230.0, clock=bench.clock.now, sleep=bench.clock.sleep)
        bench.analyser.faults.silent = True
        with pytest.raises(InstrumentTimeout) as raised:
            probe.state()
        assert not isinstance(raised.value, RelayTimeout)
    finally:
        analyzer.close()


# ---- supply and cross-checks ---------------------------------------------------------------


def test_supply_read_from_the_source_and_no_supply_reads_unknown(bench: Bench) -> None:
    with (
        Chroma61500(bench.plant) as instrument,
        Chroma61500Source(instrument.resource, timeout_s=TIMEOUT_S) as source,
    ):
        probe = RelayProbe(
            bench.analyzer,
            lambda: source.measure().voltage_v,
            clock=bench.clock.now,
            sleep=bench.clock.sleep,
        )
        assert probe.state() == "closed"
        assert probe.observe().samples[0].supply_v == pytest.approx(230.0)
        source.output(False)
        observation = probe.observe()
        assert observation.state == "unknown"
        assert [s.reading for s in observation.samples] == ["unknown"] * 3


def test_cross_checks_are_reported_with_their_disagreements(bench: Bench) -> None:
    def camera_gone() -> str:
        raise InstrumentGone("no frames")

    probe = bench.probe(
        cross_checks={
            "display": lambda: "closed",  # an annunciator stuck on
            "port": lambda: bench.plant.state().relay_closed,
            "camera": camera_gone,
        }
    )
    bench.clock.at(1.0, relay(bench.plant, False))
    observation = probe.wait("open", 5.0)
    checks = {check.name: check for check in observation.cross_checks}
    assert (checks["display"].reported, checks["display"].agrees) == ("closed", False)
    assert (checks["port"].reported, checks["port"].agrees) == ("open", True)
    assert checks["camera"].agrees is None and "no frames" in checks["camera"].detail
    assert [check.name for check in observation.disagreements] == ["display"]
    assert not observation.consistent
    bench.plant.set_relay(True)
    assert bench.probe(cross_checks={"port": lambda: "closed"}).observe().consistent


def test_fast_simulated_clock_brackets_the_real_transition() -> None:
    clock = SimClock(speed=20.0)
    plant = Plant(clock)
    power_up(plant)
    changed: dict[str, float] = {}

    def open_relay() -> None:
        changed["before"] = clock.now()
        plant.set_relay(False)
        changed["after"] = clock.now()

    with (
        YokogawaWT310(plant) as analyser,
        Wt300Analyzer(analyser.resource, timeout_s=TIMEOUT_S) as analyzer,
    ):
        probe = RelayProbe(analyzer, 230.0, interval_s=0.2, clock=clock.now, sleep=clock.sleep)
        timer = threading.Timer(0.1, open_relay)  # about 2 simulated seconds from now
        timer.start()
        try:
            observation = probe.wait("open", 60.0)
        finally:
            timer.join()
    samples = observation.samples
    first = [s.t_s for s in samples].index(observation.transition_s)
    assert first >= 1 and samples[first - 1].state == "closed"
    # The last sample that saw it closed was asked for before the change; the first that saw
    # it open was answered after it.
    assert samples[first - 1].t_s <= changed["after"] - observation.started_s
    before = changed["before"] - observation.started_s
    assert before <= samples[first].t_s + samples[first].duration_s


# ---- what the analyser cannot show ---------------------------------------------------------


class ScriptedAnalyzer:
    """Readings the plant cannot produce (current without voltage: a wiring fault)."""

    def __init__(self, readings: list[tuple[float, float]]) -> None:
        self.readings = list(readings)

    def sample(self) -> PowerSample:
        volts, amps = self.readings.pop(0)
        return PowerSample(volts, amps, volts * amps)


def test_current_without_voltage_is_not_an_open_relay() -> None:
    clock = StepClock()
    analyzer = ScriptedAnalyzer([(0.0, 5.0)] * 3 + [(0.0, 0.01)] * 3)
    probe = RelayProbe(analyzer, 230.0, clock=clock.now, sleep=clock.sleep)  # type: ignore[arg-type]
    assert probe.state() == "unknown"
    assert probe.state() == "open"  # a few mA is within open_max_current_a


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"closed_above": 0.2, "open_below": 0.8}, "thresholds"),
        ({"open_below": 0.0}, "thresholds"),
        ({"agree": 0}, "agree"),
        ({"interval_s": 0.0}, "interval_s"),
        ({"open_max_current_a": -1.0}, "open_max_current_a"),
    ],
)
def test_bad_probe_settings_are_refused(options: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RelayProbe(ScriptedAnalyzer([]), 230.0, **options)  # type: ignore[arg-type]


def test_bad_supply_and_state_names_are_refused(bench: Bench) -> None:
    with pytest.raises(ValueError, match="supply_v"):
        RelayProbe(bench.analyzer, 0.0)
    with pytest.raises(ValueError, match="state"):
        bench.probe().wait_for("ajar", 1.0)  # type: ignore[arg-type]
