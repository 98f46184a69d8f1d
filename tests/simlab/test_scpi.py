"""The simulated SCPI instruments, reached like real ones: pyvisa (pyvisa-py) over TCP."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import pyvisa
from pyvisa.errors import VisaIOError
from pyvisa.resources import MessageBasedResource

from simlab.clock import SimClock
from simlab.plant import LoadMode, Plant
from simlab.scpi import Chroma61500, Chroma63800, ScpiInstrument, YokogawaWT310
from simlab.scpi.server import ERROR_QUEUE_SIZE, nr3, parse_number

TIMEOUT_MS = 2000
SHORT_TIMEOUT_MS = 300


class ManualClock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


@dataclass
class Bench:
    clock: SimClock
    plant: Plant
    analyser: YokogawaWT310
    source: Chroma61500
    load: Chroma63800


@pytest.fixture(scope="module")
def rm() -> Iterator[pyvisa.ResourceManager]:
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


@pytest.fixture
def bench() -> Iterator[Bench]:
    clock = SimClock(speed=1000.0)
    plant = Plant(clock)
    instruments = (YokogawaWT310(plant), Chroma61500(plant), Chroma63800(plant))
    for instrument in instruments:
        instrument.start()
    try:
        yield Bench(clock, plant, *instruments)
    finally:
        for instrument in instruments:
            instrument.stop()


@pytest.fixture
def connect(rm: pyvisa.ResourceManager) -> Iterator:
    opened: list[MessageBasedResource] = []

    def open_instrument(
        instrument: ScpiInstrument, timeout_ms: int = TIMEOUT_MS
    ) -> MessageBasedResource:
        resource = rm.open_resource(
            instrument.resource,
            read_termination="\n",
            write_termination="\n",
            timeout=timeout_ms,
        )
        assert isinstance(resource, MessageBasedResource)
        opened.append(resource)
        return resource

    yield open_instrument
    for resource in opened:
        with contextlib.suppress(Exception):
            resource.close()


def next_error(resource: MessageBasedResource) -> tuple[int, str]:
    code, _, message = resource.query("SYST:ERR?").partition(",")
    return int(code), message


def power_up(bench: Bench, connect) -> tuple:
    """230 V source on, 1000 W constant-power load on, relay closed."""
    source, load, analyser = connect(bench.source), connect(bench.load), connect(bench.analyser)
    source.write("SOUR:VOLT 230;:SOUR:FREQ 50;:OUTP ON")
    load.write("MODE CP;:POW:STAT:L1 1000;:LOAD ON")
    # A write is not ordered against other connections: wait until both have executed it.
    assert source.query("*OPC?") == load.query("*OPC?") == "1"
    bench.plant.set_relay(True)
    return source, load, analyser


# ---- identity and measurements -------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("analyser", "YOKOGAWA,WT310,SIMLAB-0001,F1.00"),
        ("source", "Chroma ATE,61505,SIMLAB-0002,1.00"),
        ("load", "Chroma ATE,63802,SIMLAB-0003,1.00"),
    ],
)
def test_each_instrument_identifies_itself_as_simulated(
    bench: Bench, connect, name: str, expected: str
) -> None:
    instrument = getattr(bench, name)
    assert instrument.resource == f"TCPIP::127.0.0.1::{instrument.port}::SOCKET"
    assert connect(instrument).query("*IDN?") == expected


def test_analyser_reads_the_load_side_and_sees_the_relay_open(bench: Bench, connect) -> None:
    source, load, analyser = power_up(bench, connect)
    analyser.write(":NUM:NORM:NUM 3;:NUM:NORM:ITEM1 U,1;ITEM2 I,1;ITEM3 P,1")
    u, i, p = (float(x) for x in analyser.query(":NUM:NORM:VAL?").split(","))
    assert u == pytest.approx(230.0, rel=1e-4)
    assert i == pytest.approx(4.3478, rel=1e-4)
    assert p == pytest.approx(1000.0, rel=1e-4)
    assert [float(x) for x in load.query("MEAS:VOLT?;CURR?;POW?").split(";")] == pytest.approx(
        [230.0, 4.3478, 1000.0], rel=1e-4
    )
    assert float(source.query("MEAS:POW?")) == pytest.approx(1000.0, rel=1e-4)

    bench.plant.set_relay(False)
    u, i, p = (float(x) for x in analyser.query(":NUM:NORM:VAL?").split(","))
    assert (u, i, p) == (0.0, 0.0, 0.0)
    assert float(source.query("MEAS:VOLT?")) == pytest.approx(230.0)  # the meter stays powered
    assert float(source.query("MEAS:CURR?")) == 0.0


def test_analyser_integrates_energy_over_simulated_time(bench: Bench, connect) -> None:
    _, _, analyser = power_up(bench, connect)
    analyser.write(":INTEG:MODE NORM;:INTEG:TIM 0,10,0")
    analyser.write(":NUM:NORM:NUM 3;:NUM:NORM:ITEM1 WH,1;ITEM2 TIME,1;ITEM3 AH,1")
    analyser.write(":INTEG:STAR")
    assert analyser.query(":INTEG:STAT?") == "STAR"
    # 600 simulated seconds take 0.6 s at speed 1000; the timer ends the integration exactly.
    deadline = time.monotonic() + 10.0
    while analyser.query(":INTEG:STAT?") != "TIM":
        assert time.monotonic() < deadline, "integration never reached its timer"
        time.sleep(0.05)
    wh, seconds, ah = analyser.query(":NUM:NORM:VAL?").split(",")
    assert float(wh) == pytest.approx(1000.0 * 600 / 3600, rel=1e-5)  # 166.667 Wh
    assert seconds == "600"
    assert float(ah) == pytest.approx(1000.0 / 230.0 * 600 / 3600, rel=1e-5)
    analyser.write(":COMM:VERB ON")
    assert analyser.query(":INTEG:STAT?") == "TIMEUP"
    analyser.write(":INTEG:RES")
    assert analyser.query(":INTEG:STAT?") == "RESET"
    assert analyser.query(":NUM:NORM:VAL? 1") == nr3(0.0)


def test_analyser_binary_format_reads_with_pyvisa(bench: Bench, connect) -> None:
    _, _, analyser = power_up(bench, connect)
    analyser.write(":NUM:FORM FLO;:NUM:NORM:NUM 4;:NUM:NORM:ITEM4 NONE")
    values = analyser.query_binary_values(
        ":NUM:NORM:VAL?", datatype="f", is_big_endian=True, expect_termination=True
    )
    assert values[:3] == pytest.approx([230.0, 1000.0 / 230.0, 1000.0], rel=1e-5)
    assert values[3] == pytest.approx(9.91e37, rel=1e-6)  # NAN for a NONE item


def test_analyser_fixed_range_reports_over_range(bench: Bench, connect) -> None:
    _, _, analyser = power_up(bench, connect)
    analyser.write(":INP:CURR:RANG 2A")
    assert analyser.query(":INP:CURR:AUTO?") == "0"
    assert analyser.query(":NUM:NORM:VAL? 2;VAL? 3") == "INF;INF"  # 4.35 A on the 2 A range
    analyser.write(":INP:CURR:RANG 5A")
    assert float(analyser.query(":NUM:NORM:VAL? 2")) == pytest.approx(4.3478, rel=1e-4)
    analyser.write(":INP:VOLT:RANG 7V")
    assert next_error(analyser)[0] == -222


# ---- the analyser's integration state machine (in-process, exact time) ----------------------


def integration_bench() -> tuple[ManualClock, Plant, YokogawaWT310]:
    clock = ManualClock()
    plant = Plant(clock)  # type: ignore[arg-type]
    plant.set_source_voltage(200.0)
    plant.set_source_output(True)
    plant.set_load(LoadMode.CC, 3.0)
    plant.set_load_on(True)  # 600 W
    analyser = YokogawaWT310(plant)
    analyser.execute(":NUM:NORM:NUM 2;:NUM:NORM:ITEM1 WH;ITEM2 TIME")
    return clock, plant, analyser


def reading(analyser: YokogawaWT310) -> tuple[float, int]:
    reply = analyser.execute(":NUM:NORM:VAL?")
    assert reply is not None
    wh, seconds = reply.decode().strip().split(",")
    return float(wh), int(seconds)


def test_integration_stops_resumes_and_follows_the_plant() -> None:
    clock, plant, analyser = integration_bench()
    analyser.execute(":INTEG:STAR")
    clock.t = 100.0
    plant.set_relay(False)  # no energy for 50 s
    clock.t = 150.0
    plant.set_relay(True)
    clock.t = 200.0
    analyser.execute(":INTEG:STOP")
    clock.t = 500.0  # stopped: nothing counts
    assert reading(analyser) == (pytest.approx(600.0 * 150 / 3600, rel=1e-5), 200)
    analyser.execute(":INTEG:STAR")
    clock.t = 600.0
    assert reading(analyser) == (pytest.approx(600.0 * 250 / 3600, rel=1e-5), 300)
    assert (
        analyser.execute(":INTEG:RES;:SYST:ERR?")
        == b'-221,"Settings conflict;stop the integration before resetting it"\n'
    )


def test_integration_refuses_invalid_transitions() -> None:
    _, _, analyser = integration_bench()
    analyser.execute("*CLS")
    analyser.execute(":INTEG:STOP")  # not running
    analyser.execute(":INTEG:STAR")
    analyser.execute(":INTEG:STAR")  # already running
    analyser.execute(":INTEG:MODE CONT")  # settings locked while not reset
    codes = [analyser.execute(":SYST:ERR?") for _ in range(4)]
    assert [c.split(b",")[0] for c in codes if c] == [b"-221", b"-221", b"-221", b"0"]
    assert analyser.execute("*ESR?") == b"16\n"


def test_continuous_integration_restarts_at_each_timer_expiry() -> None:
    clock, _, analyser = integration_bench()
    analyser.execute(":INTEG:MODE CONT;:INTEG:TIM 0,1,40")  # 100 s cycles
    analyser.execute(":INTEG:STAR")
    clock.t = 250.0
    assert reading(analyser) == (pytest.approx(600.0 * 50 / 3600, rel=1e-5), 50)
    assert analyser.execute(":INTEG:STAT?;MODE?;TIM?") == b"STAR;CONT;0,1,40\n"


def test_normal_integration_with_timer_holds_its_value_after_timeup() -> None:
    clock, _, analyser = integration_bench()
    analyser.execute(":INTEG:TIM 0,0,30;:INTEG:STAR")
    clock.t = 1000.0
    assert reading(analyser) == (pytest.approx(600.0 * 30 / 3600, rel=1e-5), 30)
    assert analyser.execute(":INTEG:STAT?") == b"TIM\n"
    analyser.execute("*CLS;:INTEG:STAR")
    assert analyser.execute(":SYST:ERR?").startswith(b"-221")


# ---- SCPI syntax and error reporting -------------------------------------------------------


def test_unknown_header_queues_113_and_sets_the_command_error_bit(bench: Bench, connect) -> None:
    analyser = connect(bench.analyser)
    analyser.write("*CLS")
    analyser.write(":FOO:BAR 1")
    assert int(analyser.query("*ESR?")) & 32
    assert next_error(analyser) == (-113, '"Undefined header;FOO:BAR"')
    assert next_error(analyser) == (0, '"No error"')
    assert analyser.query("*ESR?") == "0"


def test_a_failing_query_gets_no_reply(bench: Bench, connect) -> None:
    source = connect(bench.source, timeout_ms=SHORT_TIMEOUT_MS)
    with pytest.raises(VisaIOError):
        source.query("SOUR:VOLTS?")
    source.timeout = TIMEOUT_MS
    assert next_error(source)[0] == -113


def test_out_of_range_values_are_refused_with_222(bench: Bench, connect) -> None:
    source, load = connect(bench.source), connect(bench.load)
    source.write("*CLS;:SOUR:VOLT 120")
    source.write("SOUR:VOLT 400")
    assert int(source.query("*ESR?")) & 16
    assert next_error(source)[0] == -222
    assert float(source.query("SOUR:VOLT?")) == 120.0
    source.write("SOUR:FREQ 5")
    assert next_error(source)[0] == -222
    load.write("CURR:STAT:L1 100")
    assert next_error(load)[0] == -222
    load.write("RES:STAT:L1 0.1")
    assert next_error(load)[0] == -222
    assert next_error(load)[0] == 0


def test_source_range_and_limit_guard_the_voltage(bench: Bench, connect) -> None:
    source = connect(bench.source)
    source.write("SOUR:VOLT:RANG LOW")
    assert source.query("SOUR:VOLT:RANG?") == "150"
    source.write("SOUR:VOLT 230")
    assert next_error(source)[0] == -222
    source.write("SOUR:VOLT:RANG 300;:SOUR:VOLT 230;:SOUR:VOLT:LIM 200")
    assert next_error(source)[0] == -221
    source.write("SOUR:VOLT:LIM 250;:SOUR:VOLT 260")
    assert next_error(source)[0] == -222
    assert source.query("SOUR:VOLT?;VOLT:LIM?") == "230.00;250.00"


def test_short_and_long_forms_and_chained_units(bench: Bench, connect) -> None:
    source, analyser = connect(bench.source), connect(bench.analyser)
    source.write("SOURce:VOLTage:LEVel:IMMediate:AMPLitude 120.5;:source:frequency:cw 60HZ")
    assert source.query(":sour:volt?;:SOURCE:FREQUENCY?") == "120.50;60.00"
    source.write("volt 1.2e2;freq 50")  # relative to the root: [SOURce] is optional
    assert source.query("SOUR:VOLT?;FREQ?") == "120.00;50.00"
    analyser.write(":NUMeric:NORMal:ITEM1 LAMBda,1;ITEM2 FU,1")  # ITEM2 relative to :NUM:NORM
    assert analyser.query(":NUMERIC:NORM:ITEM1?;ITEM2?") == "LAMB,1;FU,1"
    source.write("*CLS")
    # SCPI path rule: the second MEAS resolves to MEAS:MEAS:CURR?, which does not exist.
    assert source.query("MEAS:VOLT?;MEAS:CURR?") == "0.00"
    assert next_error(source) == (-113, '"Undefined header;MEAS:MEAS:CURR"')


def test_load_mode_accepts_real_names_and_aliases(bench: Bench, connect) -> None:
    load = connect(bench.load)
    for word, reply in (("CCH", "CURR"), ("cpl", "POW"), ("RESistance", "RES"), ("0", "CURR")):
        load.write(f"MODE {word}")
        assert load.query("MODE?") == reply
    load.write("*CLS;:MODE CV")
    assert next_error(load)[0] == -221
    load.write("RES:STAT:L1 52.9;:MODE CRH;:LOAD ON")
    assert load.query("*OPC?") == "1"
    assert bench.plant.state().load_mode is LoadMode.CR
    assert load.query("RES:L1?;:LOAD?") == "52.90;1"


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("SOUR:VOLT", -109),
        ("SOUR:VOLT 1,2", -108),
        ("SOUR:VOLT abc", -104),
        ("SOUR:VOLT 10QV", -131),
        ("OUTP MAYBE", -141),
        ("SOUR:VOLT:", -102),
        ("SOUR:VOLT 1;;SOUR:FREQ 50", -102),
    ],
)
def test_malformed_commands_queue_command_errors(
    bench: Bench, connect, line: str, code: int
) -> None:
    source = connect(bench.source)
    source.write("*CLS")
    source.write(line)
    assert next_error(source)[0] == code
    assert int(source.query("*ESR?")) & 32


def test_header_suffix_out_of_range(bench: Bench, connect) -> None:
    analyser, load = connect(bench.analyser), connect(bench.load)
    analyser.write(":NUM:NORM:ITEM256 U")
    assert next_error(analyser)[0] == -114
    load.write("CURR:STAT:L2 1")
    assert next_error(load)[0] == -114


def test_error_queue_overflow_keeps_the_oldest_and_reports_350(bench: Bench, connect) -> None:
    load = connect(bench.load)
    load.write("*CLS")
    for n in range(ERROR_QUEUE_SIZE + 5):
        load.write(f"BOGUS{n}")
    assert load.query("SYST:ERR:COUN?") == str(ERROR_QUEUE_SIZE)
    codes = [next_error(load) for _ in range(ERROR_QUEUE_SIZE + 1)]
    assert codes[0] == (-113, '"Undefined header;BOGUS0"')
    assert codes[ERROR_QUEUE_SIZE - 1] == (-350, '"Queue overflow"')
    assert codes[ERROR_QUEUE_SIZE] == (0, '"No error"')


def test_common_commands(bench: Bench, connect) -> None:
    source = connect(bench.source)
    assert source.query("*ESR?") == "128"  # power on
    source.write("*ESE 32;*SRE 32")
    assert source.query("*ESE?;*SRE?") == "32;32"
    source.write("NOPE")
    assert int(source.query("*STB?")) == 4 | 32 | 64  # EAV, ESB, MSS
    source.write("*CLS;*OPC")
    assert source.query("*ESR?") == "1"
    assert source.query("*OPC?;*TST?") == "1;0"
    source.write("SOUR:VOLT 100;:OUTP ON;*RST")
    assert source.query("SOUR:VOLT?;:OUTP?;:SOUR:FREQ?") == "0.00;0;60.00"


def test_crlf_terminated_lines_are_accepted(bench: Bench) -> None:
    with socket.create_connection(("127.0.0.1", bench.load.port), timeout=2.0) as sock:
        sock.sendall(b"*IDN?\r\nLOAD?\r\n")
        data = b""
        while data.count(b"\n") < 2:
            data += sock.recv(4096)
    assert data == b"Chroma ATE,63802,SIMLAB-0003,1.00\n0\n"


def test_source_current_limit_trips_the_output(bench: Bench, connect) -> None:
    source, load, _ = power_up(bench, connect)
    source.write("SOUR:CURR:LIM 2")
    assert source.query("OUTP?") == "0"
    assert bench.plant.state().source_tripped
    source.write("SOUR:CURR:LIM 10;:OUTP ON")
    assert source.query("OUTP?") == "1"
    assert float(load.query("MEAS:CURR?")) == pytest.approx(4.3478, rel=1e-4)


def test_number_parsing_units_and_multipliers() -> None:
    assert parse_number("5MV", "V") == pytest.approx(5e-3)
    assert parse_number("500MA", "A") == pytest.approx(0.5)
    assert parse_number("1MAV", "V") == pytest.approx(1e6)
    assert parse_number("1KHZ", "HZ") == pytest.approx(1e3)
    assert parse_number("1MHZ", "HZ") == pytest.approx(1e6)
    assert parse_number("250MS", "S") == pytest.approx(0.25)
    assert nr3(230.0) == "230.000E+00"
    assert nr3(0.25) == "250.000E-03"
    assert nr3(999.9999) == "1.00000E+03"
    assert nr3(-4.2e-7) == "-420.000E-09"


# ---- several clients -----------------------------------------------------------------------


def test_clients_connect_in_turn_and_together(bench: Bench, connect, rm) -> None:
    for _ in range(5):
        resource = rm.open_resource(
            bench.analyser.resource, read_termination="\n", write_termination="\n", timeout=2000
        )
        assert resource.query("*IDN?").startswith("YOKOGAWA,WT310")
        resource.close()
    first, second = connect(bench.source), connect(bench.source)
    first.write("SOUR:VOLT 100")
    assert first.query("*OPC?") == "1"
    assert second.query("SOUR:VOLT?") == "100.00"
    assert first.query("SOUR:VOLT?") == "100.00"


# ---- transport faults ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [{"drop_rate": 1.0}, {"garble_rate": 1.0}, {"silent": True}],
    ids=["drop", "garble", "silent"],
)
def test_faulty_replies_time_out_and_recover_when_cleared(bench: Bench, connect, fault) -> None:
    analyser = connect(bench.analyser, timeout_ms=SHORT_TIMEOUT_MS)
    idn = analyser.query("*IDN?")
    for name, value in fault.items():
        # Garbling every byte also garbles the terminator: the reply never ends.
        setattr(bench.analyser.faults, name, value)
    with pytest.raises(VisaIOError) as raised:
        analyser.query("*IDN?")
    assert raised.value.error_code == pyvisa.constants.StatusCode.error_timeout
    bench.analyser.faults.clear()
    assert analyser.query("*IDN?") == idn


def test_a_silent_instrument_does_not_execute_what_it_reads(bench: Bench, connect) -> None:
    source = connect(bench.source, timeout_ms=SHORT_TIMEOUT_MS)
    bench.source.faults.silent = True
    source.write("SOUR:VOLT 100")
    with pytest.raises(VisaIOError):
        source.query("SOUR:VOLT?")
    bench.source.faults.clear()
    assert source.query("SOUR:VOLT?") == "0.00"


def test_delayed_reply_times_out_then_arrives_late(bench: Bench, connect) -> None:
    load = connect(bench.load, timeout_ms=SHORT_TIMEOUT_MS)
    bench.load.faults.delay_s = 0.8
    with pytest.raises(VisaIOError):
        load.query("*IDN?")
    load.timeout = 5000
    assert load.read() == "Chroma ATE,63802,SIMLAB-0003,1.00"  # the late reply
    bench.load.faults.clear()
    load.timeout = SHORT_TIMEOUT_MS
    assert load.query("LOAD?") == "0"


def test_vanished_instrument_refuses_then_returns_on_the_same_port(bench: Bench, connect) -> None:
    analyser = connect(bench.analyser, timeout_ms=SHORT_TIMEOUT_MS)
    port = bench.analyser.port
    assert analyser.query("*IDN?").startswith("YOKOGAWA")
    bench.analyser.faults.vanished = True
    # The open connection is closed: the client sees a timeout or a reset, never a hang.
    with pytest.raises((VisaIOError, OSError)):
        analyser.query("*IDN?")
    assert wait_until(lambda: not accepts(port)), "the port still accepts connections"
    bench.analyser.faults.clear()
    assert wait_until(lambda: accepts(port)), "the port never came back"
    assert bench.analyser.port == port
    assert connect(bench.analyser).query("*IDN?").startswith("YOKOGAWA")


def accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except (ConnectionRefusedError, ConnectionResetError):
        return False  # a reset: queued on a listener that was closing


def wait_until(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_each_instrument_has_its_own_faults(bench: Bench) -> None:
    faults = {id(bench.analyser.faults), id(bench.source.faults), id(bench.load.faults)}
    assert len(faults) == 3


# ---- lifecycle -----------------------------------------------------------------------------


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_start_stop_fifty_times_leaks_no_threads_or_fds() -> None:
    threads_before, fds_before = threading.active_count(), open_fds()
    for _ in range(50):
        plant = Plant(SimClock())
        instruments = (YokogawaWT310(plant), Chroma61500(plant), Chroma63800(plant))
        clients = []
        for instrument in instruments:
            instrument.start()
            client = socket.create_connection(("127.0.0.1", instrument.port), timeout=2.0)
            client.sendall(b"*IDN?\n")
            assert client.recv(4096).startswith((b"YOKOGAWA", b"Chroma"))
            clients.append(client)
        for instrument in instruments:
            instrument.stop()  # with the client still connected
        for client in clients:
            assert client.recv(4096) == b""  # the server closed the connection
            client.close()
    assert threading.active_count() == threads_before
    assert open_fds() == fds_before


def test_context_manager_and_restart() -> None:
    plant = Plant(SimClock())
    with Chroma63800(plant) as load:
        port = load.port
        assert accepts(port)
    assert not accepts(port)
    with pytest.raises(RuntimeError):
        _ = load.port
    with load:
        assert load.execute("LOAD?") == b"0\n"
        with pytest.raises(RuntimeError):
            load.start()


def test_float_block_layout() -> None:
    from simlab.scpi.server import float_block

    block = float_block([1.0, -2.0])
    assert block[:2] == b"#1" and block[2:3] == b"8"
    assert struct.unpack(">2f", block[3:]) == (1.0, -2.0)


def test_stop_interrupts_a_delayed_reply() -> None:
    threads_before = threading.active_count()
    plant = Plant(SimClock())
    load = Chroma63800(plant).start()
    load.faults.delay_s = 60.0
    with socket.create_connection(("127.0.0.1", load.port), timeout=2.0) as client:
        client.sendall(b"LOAD ON;LOAD?\n")
        # Executed means read: the worker now sits in the delay before its reply.
        assert wait_until(lambda: plant.state().load_on)
        load.stop()
        assert client.recv(4096) == b""  # closed without the reply
    # Every worker was joined: none is left sleeping out its delay.
    assert threading.active_count() == threads_before


def test_an_over_long_line_is_dropped_with_363(bench: Bench) -> None:
    with socket.create_connection(("127.0.0.1", bench.load.port), timeout=2.0) as client:
        client.sendall(b"*CLS\n" + b"X" * 100_000 + b";*IDN?\nSYST:ERR?\n")
        data = b""
        while not data.endswith(b"\n"):
            data += client.recv(4096)
    assert data.startswith(b"-363,")


def test_a_handler_bug_becomes_a_device_error() -> None:
    class Broken(ScpiInstrument):
        model = "BROKEN"

        def __init__(self) -> None:
            super().__init__(serial="SIMLAB-TEST")
            self.add(":BOOM", query=self._boom)

        def reset(self) -> None:
            pass

        def _boom(self, call: object) -> str:
            raise ZeroDivisionError

    broken = Broken()
    assert broken.execute(":BOOM?;*OPC?") == b"1\n"
    reply = broken.execute("*ESR?;:SYST:ERR?")
    assert reply == b'136;-300,"Device-specific error;internal error"\n'
