"""The SCPI drivers against SimLab's instruments, reached over TCP like real ones."""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from instruments.base import (
    Identity,
    InstrumentError,
    InstrumentGone,
    InstrumentTimeout,
    ProtocolViolation,
    driver_class,
)
from instruments.roles import AcLoad, AcSource, PowerAnalyzer
from instruments.scpi import Chroma61500Source, Chroma63800Load, ScpiDriver, Wt300Analyzer
from simlab.clock import SimClock
from simlab.faults import TransportFaults
from simlab.plant import LoadMode, Plant
from simlab.scpi import Chroma61500, Chroma63800, YokogawaWT310

TIMEOUT_S = 2.0
SHORT_TIMEOUT_S = 0.3


@dataclass
class Bench:
    clock: SimClock
    plant: Plant
    analyser: YokogawaWT310
    source: Chroma61500
    load: Chroma63800


@pytest.fixture
def bench() -> Iterator[Bench]:
    clock = SimClock(speed=1000.0)
    plant = Plant(clock)
    instruments = (
        YokogawaWT310(plant, faults=TransportFaults(seed=1)),
        Chroma61500(plant, faults=TransportFaults(seed=2)),
        Chroma63800(plant, faults=TransportFaults(seed=3)),
    )
    for instrument in instruments:
        instrument.start()
    try:
        yield Bench(clock, plant, *instruments)
    finally:
        for instrument in instruments:
            instrument.stop()


@pytest.fixture
def open_driver() -> Iterator[Callable[..., ScpiDriver]]:
    opened: list[ScpiDriver] = []

    def make(cls: type[ScpiDriver], resource: str, **options: object) -> ScpiDriver:
        options.setdefault("timeout_s", TIMEOUT_S)
        driver = cls(resource, **options)  # type: ignore[arg-type]
        opened.append(driver)
        return driver

    yield make
    for driver in opened:
        driver.close()


def powered(bench: Bench) -> None:
    """230 V / 50 Hz source on, 1000 W constant-power load on, relay closed."""
    plant = bench.plant
    plant.set_source_voltage(230.0)
    plant.set_source_frequency(50.0)
    plant.set_source_output(True)
    plant.set_load(LoadMode.CP, 1000.0)
    plant.set_load_on(True)
    plant.set_relay(True)


def sent(driver: ScpiDriver, since: int = 0) -> list[str]:
    return [e.data for e in driver.transcript.since(since) if e.direction == "tx"]


def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return False


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


# ---- identity and registry -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "name", "role", "instrument", "idn"),
    [
        (Wt300Analyzer, "wt300", "analyzer", "analyser", "YOKOGAWA,WT310,SIMLAB-0001,F1.00"),
        (Chroma61500Source, "chroma61500", "source", "source", "Chroma ATE,61505,SIMLAB-0002,1.00"),
        (Chroma63800Load, "chroma63800", "load", "load", "Chroma ATE,63802,SIMLAB-0003,1.00"),
    ],
)
def test_each_driver_identifies_its_instrument_and_is_registered(
    bench: Bench, open_driver, cls, name: str, role: str, instrument: str, idn: str
) -> None:
    driver = open_driver(cls, getattr(bench, instrument).resource)
    maker, model, serial, firmware = idn.split(",")
    assert driver.identity == Identity(maker, model, serial, firmware, raw=idn)
    assert driver.identify() == driver.identity
    assert driver_class(name) is cls
    assert (cls.name, cls.role) == (name, role)
    sent_lines = sent(driver)
    assert sent_lines[0] == "*IDN?"
    assert all(entry.t > 0 for entry in driver.transcript.entries)


def test_drivers_implement_their_role_interfaces(bench: Bench, open_driver) -> None:
    assert isinstance(open_driver(Wt300Analyzer, bench.analyser.resource), PowerAnalyzer)
    assert isinstance(open_driver(Chroma61500Source, bench.source.resource), AcSource)
    assert isinstance(open_driver(Chroma63800Load, bench.load.resource), AcLoad)


def test_a_driver_refuses_another_model_at_its_address(bench: Bench) -> None:
    with pytest.raises(InstrumentError, match="not a Yokogawa WT300") as raised:
        Wt300Analyzer(bench.source.resource, timeout_s=TIMEOUT_S)
    assert type(raised.value) is InstrumentError
    with pytest.raises(InstrumentError, match="not a Chroma 63800"):
        Chroma63800Load(bench.source.resource, timeout_s=TIMEOUT_S)


def test_opening_an_address_where_nothing_listens_is_instrument_gone() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(InstrumentGone, match="refused"):
        Chroma61500Source(f"TCPIP::127.0.0.1::{port}::SOCKET", timeout_s=TIMEOUT_S)


def test_bad_options_are_refused_before_connecting(bench: Bench) -> None:
    with pytest.raises(ValueError, match="read_termination"):
        Chroma61500Source(bench.source.resource, read_termination="")
    with pytest.raises(ValueError, match="element"):
        Wt300Analyzer(bench.analyser.resource, element=4)
    with pytest.raises(ValueError, match="update_rate_s"):
        Wt300Analyzer(bench.analyser.resource, update_rate_s=0.3)
    with pytest.raises(TypeError):
        Chroma61500Source(bench.source.resource, baud=9600)  # type: ignore[call-arg]


def test_an_invalid_resource_name_is_an_instrument_error() -> None:
    with pytest.raises(InstrumentError, match="invalid VISA resource"):
        Chroma61500Source("NOT::A::RESOURCE", timeout_s=TIMEOUT_S)


# ---- configure and measure -----------------------------------------------------------------


def test_source_sets_voltage_frequency_output_and_measures(bench: Bench, open_driver) -> None:
    source = open_driver(Chroma61500Source, bench.source.resource)
    source.set_voltage(230)
    source.set_frequency(50.0)
    source.output(True)
    state = bench.plant.state()
    assert (state.voltage_setpoint_v, state.frequency_hz, state.source_on) == (230.0, 50.0, True)
    bench.plant.set_load(LoadMode.CR, 230.0)
    bench.plant.set_load_on(True)
    reading = source.measure()
    assert reading.voltage_v == pytest.approx(230.0)
    assert reading.current_a == pytest.approx(1.0)
    assert reading.power_w == pytest.approx(230.0)
    assert reading.frequency_hz == pytest.approx(50.0)
    source.output(False)
    assert not bench.plant.state().source_on
    assert source.measure().frequency_hz is None
    lines = sent(source)
    for command in ("VOLT:AC 230", "FREQ 50", "OUTP ON", "OUTP OFF"):
        index = lines.index(command)
        # Ordering matters for these: each waits for completion, then the error queue.
        assert lines[index + 1 : index + 3] == ["*OPC?", ":SYSTem:ERRor?"]


@pytest.mark.parametrize(
    ("mode", "setpoint", "plant_mode", "wire"),
    [
        ("CC", 2.5, LoadMode.CC, ["CURR:STAT:L1 2.5", "MODE CURR"]),
        ("cr", 115.0, LoadMode.CR, ["RES:STAT:L1 115", "MODE RES"]),
        ("CP", 460.0, LoadMode.CP, ["POW:STAT:L1 460", "MODE POW"]),
    ],
)
def test_load_modes_map_to_the_63800_names(
    bench: Bench, open_driver, mode: str, setpoint: float, plant_mode: LoadMode, wire: list[str]
) -> None:
    powered(bench)
    load = open_driver(Chroma63800Load, bench.load.resource)
    mark = load.transcript.mark()
    load.set_mode(mode, setpoint)
    load.load(True)
    state = bench.plant.state()
    assert (state.load_mode, state.load_setpoint, state.load_on) == (plant_mode, setpoint, True)
    commands = [line for line in sent(load, mark) if not line.endswith("?")]
    assert commands == [*wire, "LOAD ON"]
    reading = load.measure()
    assert reading.voltage_v == pytest.approx(230.0)
    assert reading.power_w == pytest.approx(state.load_power_w, rel=1e-3)
    assert reading.frequency_hz == pytest.approx(50.0)
    load.load(False)
    assert not bench.plant.state().load_on


def test_analyzer_samples_load_side_u_i_p_and_frequency(bench: Bench, open_driver) -> None:
    powered(bench)
    analyzer = open_driver(Wt300Analyzer, bench.analyser.resource)
    sample = analyzer.sample()
    assert sample.voltage_v == pytest.approx(230.0)
    assert sample.current_a == pytest.approx(1000.0 / 230.0, rel=1e-4)
    assert sample.power_w == pytest.approx(1000.0)
    assert sample.frequency_hz == pytest.approx(50.0)
    bench.plant.set_relay(False)
    open_sample = analyzer.sample()
    assert (open_sample.voltage_v, open_sample.current_a, open_sample.power_w) == (0.0, 0.0, 0.0)
    assert open_sample.frequency_hz is None  # the instrument reports NAN without a signal


def test_analyzer_programs_its_items_so_panel_settings_do_not_matter(
    bench: Bench, open_driver
) -> None:
    powered(bench)
    # Someone left the analyser in float format with other items on display.
    bench.analyser.execute(":NUM:FORM FLO;:NUM:NORM:ITEM1 S;ITEM3 LAMB;:NUM:NORM:NUMB 10")
    analyzer = open_driver(Wt300Analyzer, bench.analyser.resource)
    assert analyzer.sample().power_w == pytest.approx(1000.0)
    assert ":NUMeric:FORMat ASCii" in sent(analyzer)


def test_analyzer_over_range_is_an_error_not_a_number(bench: Bench, open_driver) -> None:
    powered(bench)
    analyzer = open_driver(Wt300Analyzer, bench.analyser.resource)
    bench.analyser.execute(":VOLT:RANG 15")  # 230 V on the 15 V range reads INF
    with pytest.raises(InstrumentError, match="U: over range"):
        analyzer.sample()


def test_analyzer_integrates_energy_between_start_and_stop(bench: Bench, open_driver) -> None:
    powered(bench)
    clock = bench.clock
    analyzer = open_driver(Wt300Analyzer, bench.analyser.resource)
    analyzer.integration_reset()
    assert analyzer.integration_state() == "reset"
    assert analyzer.energy_wh() == 0.0
    before_start = clock.now()
    analyzer.integration_start()
    after_start = clock.now()
    assert analyzer.integration_state() == "running"
    time.sleep(0.05)
    before_stop = clock.now()
    analyzer.integration_stop()
    after_stop = clock.now()
    energy = analyzer.energy_wh()
    # 1000 W for at least (before_stop - after_start) and at most (after_stop - before_start).
    assert 1000.0 * (before_stop - after_start) / 3600 <= energy
    assert energy <= 1000.0 * (after_stop - before_start) / 3600 * (1 + 1e-5)
    assert analyzer.integration_state() == "stopped"
    time.sleep(0.02)
    assert analyzer.energy_wh() == energy  # stopped: nothing more is counted
    analyzer.integration_reset()
    assert analyzer.energy_wh() == 0.0


def test_integration_in_the_wrong_state_names_the_command_and_error(
    bench: Bench, open_driver
) -> None:
    analyzer = open_driver(Wt300Analyzer, bench.analyser.resource)
    analyzer.integration_reset()
    analyzer.integration_start()
    with pytest.raises(InstrumentError, match=r"':INTEGrate:STARt'.*-221") as raised:
        analyzer.integration_start()
    assert type(raised.value) is InstrumentError
    analyzer.integration_stop()


def test_analyzer_element_the_instrument_lacks_is_refused_by_it(bench: Bench) -> None:
    with pytest.raises(InstrumentError, match=r"ITEM1 U,2.*-222"):
        Wt300Analyzer(bench.analyser.resource, element=2, timeout_s=TIMEOUT_S)


def test_analyzer_update_rate_is_set_on_connect(bench: Bench, open_driver) -> None:
    analyzer = open_driver(Wt300Analyzer, bench.analyser.resource, update_rate_s=0.1)
    assert ":RATE 100MS" in sent(analyzer)
    assert float(analyzer.query(":RATE?")) == pytest.approx(0.1)


# ---- arguments and instrument errors -------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "instrument", "call", "argument"),
    [
        (Chroma61500Source, "source", lambda d: d.set_voltage(301), "volts"),
        (Chroma61500Source, "source", lambda d: d.set_voltage(-1), "volts"),
        (Chroma61500Source, "source", lambda d: d.set_voltage(math.nan), "volts"),
        (Chroma61500Source, "source", lambda d: d.set_voltage("230"), "volts"),
        (Chroma61500Source, "source", lambda d: d.set_frequency(10), "hertz"),
        (Chroma61500Source, "source", lambda d: d.output(1), "on"),
        (Chroma63800Load, "load", lambda d: d.set_mode("CV", 10), "mode"),
        (Chroma63800Load, "load", lambda d: d.set_mode("CC", 18.5), "setpoint"),
        (Chroma63800Load, "load", lambda d: d.set_mode("CP", 1801), "setpoint"),
        (Chroma63800Load, "load", lambda d: d.set_mode("CR", 0), "setpoint"),
        (Chroma63800Load, "load", lambda d: d.load("on"), "on"),
    ],
)
def test_arguments_are_range_checked_before_anything_is_sent(
    bench: Bench, open_driver, cls, instrument: str, call, argument: str
) -> None:
    driver = open_driver(cls, getattr(bench, instrument).resource)
    mark = driver.transcript.mark()
    with pytest.raises(ValueError, match=argument):
        call(driver)
    assert sent(driver, mark) == []


def test_load_ratings_follow_the_identified_model(bench: Bench, open_driver) -> None:
    load = open_driver(Chroma63800Load, bench.load.resource)
    assert load.rating == (18.0, 1800.0)  # the simulated unit is a 63802
    load.set_mode("CC", 18.0)
    assert bench.plant.state().load_setpoint == 18.0


def test_an_instrument_error_names_the_command_and_the_scpi_error(
    bench: Bench, open_driver
) -> None:
    source = open_driver(Chroma61500Source, bench.source.resource)
    source.command("VOLT:RANG 150")
    with pytest.raises(InstrumentError) as raised:
        source.set_voltage(200)  # within the series' 300 V, above this range
    assert type(raised.value) is InstrumentError
    assert "'VOLT:AC 200'" in str(raised.value)
    assert '-222,"Data out of range' in str(raised.value)
    assert raised.value.role == "source" and raised.value.address == bench.source.resource
    assert bench.plant.state().voltage_setpoint_v == 0.0
    source.set_voltage(120)  # the queue was drained: the next command is judged on its own
    assert bench.plant.state().voltage_setpoint_v == 120.0


def test_the_load_leaves_the_resistance_range_to_the_instrument(bench: Bench, open_driver) -> None:
    load = open_driver(Chroma63800Load, bench.load.resource)
    with pytest.raises(InstrumentError, match=r"'RES:STAT:L1 0.5'.*-222"):
        load.set_mode("CR", 0.5)
    assert bench.plant.state().load_mode is LoadMode.CC  # the mode was not switched


def test_command_refuses_a_query_and_errors_drains_the_queue(bench: Bench, open_driver) -> None:
    source = open_driver(Chroma61500Source, bench.source.resource)
    with pytest.raises(ValueError, match="query"):
        source.command("VOLT?")
    bench.source.execute("FOO 1;:BAR 2")  # a command error discards the rest of the line
    bench.source.execute("BAZ")
    assert [code for code, _ in source.errors()] == [-113, -113]
    assert source.errors() == []


# ---- transport faults ----------------------------------------------------------------------


def test_a_silent_instrument_times_out_and_works_again_once_it_answers(
    bench: Bench, open_driver
) -> None:
    source = open_driver(Chroma61500Source, bench.source.resource, timeout_s=SHORT_TIMEOUT_S)
    bench.source.faults.silent = True
    with pytest.raises(InstrumentTimeout):
        source.set_voltage(100)
    with pytest.raises(InstrumentTimeout):
        source.measure()
    assert bench.plant.state().voltage_setpoint_v == 0.0  # silent: read, never executed
    bench.source.faults.clear()
    source.set_voltage(100)
    assert source.measure().voltage_v == 0.0  # output still off
    assert bench.plant.state().voltage_setpoint_v == 100.0
    assert any("timeout" in e.data for e in source.transcript.entries if e.direction == "note")


def test_a_late_reply_is_never_taken_as_the_answer_to_the_next_query(
    bench: Bench, open_driver
) -> None:
    source = open_driver(Chroma61500Source, bench.source.resource, timeout_s=SHORT_TIMEOUT_S)
    source.set_voltage(100)
    bench.source.faults.delay_s = 2 * SHORT_TIMEOUT_S
    with pytest.raises(InstrumentTimeout):
        source.query("VOLT?")  # its reply, "100.00", arrives late
    bench.source.faults.clear()
    time.sleep(2 * SHORT_TIMEOUT_S)  # by now the late reply has been sent
    source.set_voltage(200)
    assert source.query("VOLT?") == "200.00"
    source.set_frequency(60)
    assert source.query("FREQ?") == "60.00"


def test_a_delayed_instrument_within_the_timeout_still_answers(bench: Bench, open_driver) -> None:
    source = open_driver(Chroma61500Source, bench.source.resource, timeout_s=TIMEOUT_S)
    bench.source.faults.delay_s = 0.05
    source.set_voltage(50)
    assert source.query("VOLT?") == "50.00"


@pytest.mark.parametrize(
    "fault", [{"drop_rate": 1.0}, {"garble_rate": 1.0}], ids=["drop-all", "garble-all"]
)
def test_a_reply_that_never_ends_times_out_then_works_after_clear(
    bench: Bench, open_driver, fault: dict[str, float]
) -> None:
    powered(bench)
    analyzer = open_driver(Wt300Analyzer, bench.analyser.resource, timeout_s=SHORT_TIMEOUT_S)
    for name, value in fault.items():
        setattr(bench.analyser.faults, name, value)
    with pytest.raises((InstrumentTimeout, ProtocolViolation)):
        analyzer.sample()
    bench.analyser.faults.clear()
    assert analyzer.sample().power_w == pytest.approx(1000.0)


@pytest.mark.parametrize(
    "fault", [{"garble_rate": 0.03}, {"drop_rate": 0.03}], ids=["garble", "drop"]
)
def test_damaged_replies_are_violations_or_timeouts_never_other_errors(
    bench: Bench, open_driver, fault: dict[str, float]
) -> None:
    powered(bench)
    analyzer = open_driver(Wt300Analyzer, bench.analyser.resource, timeout_s=SHORT_TIMEOUT_S)
    for name, value in fault.items():
        setattr(bench.analyser.faults, name, value)
    outcomes: list[type[Exception] | None] = []
    for _ in range(12):
        try:
            analyzer.sample()
            outcomes.append(None)
        except (ProtocolViolation, InstrumentTimeout) as exc:
            outcomes.append(type(exc))
    assert ProtocolViolation in outcomes
    bench.analyser.faults.clear()
    sample = analyzer.sample()
    assert (sample.voltage_v, sample.power_w) == (pytest.approx(230.0), pytest.approx(1000.0))


def test_a_vanished_instrument_is_gone_then_works_again_on_the_same_driver(
    bench: Bench, open_driver
) -> None:
    powered(bench)
    analyzer = open_driver(Wt300Analyzer, bench.analyser.resource, timeout_s=SHORT_TIMEOUT_S)
    port = bench.analyser.port
    assert analyzer.sample().voltage_v == pytest.approx(230.0)
    bench.analyser.faults.vanished = True
    assert wait_until(lambda: not accepts(port))
    with pytest.raises(InstrumentGone):
        analyzer.sample()
    with pytest.raises(InstrumentGone, match="refused"):
        analyzer.sample()  # reconnecting while it is still gone
    bench.analyser.faults.clear()
    assert wait_until(lambda: accepts(port))
    assert analyzer.sample().voltage_v == pytest.approx(230.0)
    assert analyzer.identify() == analyzer.identity


def test_after_a_restart_the_driver_restores_the_settings_its_readings_need(
    bench: Bench, open_driver
) -> None:
    powered(bench)
    analyzer = open_driver(Wt300Analyzer, bench.analyser.resource, timeout_s=SHORT_TIMEOUT_S)
    port = bench.analyser.port
    bench.analyser.stop()  # switched off ...
    with pytest.raises(InstrumentGone):
        analyzer.sample()
    restarted = YokogawaWT310(bench.plant, port=port).start()  # ... and on, at its defaults
    try:
        restarted.execute(":NUM:NORM:ITEM1 S;ITEM2 Q;ITEM3 LAMB")  # and someone at the panel
        sample = analyzer.sample()
        assert (sample.voltage_v, sample.power_w) == (pytest.approx(230.0), pytest.approx(1e3))
    finally:
        restarted.stop()


def test_another_instrument_behind_the_address_is_refused_after_reconnecting(
    bench: Bench, open_driver
) -> None:
    analyzer = open_driver(Wt300Analyzer, bench.analyser.resource, timeout_s=SHORT_TIMEOUT_S)
    port = bench.analyser.port
    bench.analyser.stop()
    with pytest.raises(InstrumentGone):
        analyzer.sample()
    other = YokogawaWT310(bench.plant, serial="OTHER-9", port=port).start()
    try:
        with pytest.raises(InstrumentError, match="another instrument answers"):
            analyzer.sample()
    finally:
        other.stop()


# ---- life cycle ----------------------------------------------------------------------------


def test_close_is_idempotent_and_a_closed_driver_refuses_calls(bench: Bench) -> None:
    with Chroma61500Source(bench.source.resource, timeout_s=TIMEOUT_S) as source:
        source.set_voltage(10)
    source.close()
    with pytest.raises(InstrumentError, match="closed"):
        source.measure()


def test_opening_and_closing_many_times_leaks_no_sockets_or_threads(bench: Bench) -> None:
    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    Chroma63800Load(bench.load.resource, timeout_s=TIMEOUT_S).close()  # warm up imports
    before_fds, before_threads = fds(), threading.active_count()
    for _ in range(50):
        load = Chroma63800Load(bench.load.resource, timeout_s=TIMEOUT_S)
        load.measure()
        load.close()
    # The simulated instrument closes its side of each connection on its own thread.
    assert wait_until(lambda: fds() <= before_fds), (fds(), before_fds)
    assert wait_until(lambda: threading.active_count() <= before_threads)
