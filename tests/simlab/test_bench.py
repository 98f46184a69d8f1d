"""The whole simulated bench, driven only through its devices' own transports.

Tokens go in through the KPR/1 keypad robot, the optical port and the MSR605 card writer on
their ptys; the meter is read back through the IEC 62056-21 readout, the camera's frames and
the power analyser; the load is set through the electronic load. pyserial and pyvisa
(pyvisa-py, ``TCPIP::127.0.0.1::PORT::SOCKET``) are the clients, as on a real bench. The
side door (``bench.true_state()``) only confirms what the transports showed.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
import pyvisa
import yaml
from pyvisa.resources import MessageBasedResource

from simlab.bench import ROLES, SimBench
from simlab.meter import MeterSnapshot
from sts.meter import Result
from sts.tokens import TransferCredit, encode
from tests.simlab.bench_clients import (
    ACK,
    CardWriterClient,
    KeypadRobotClient,
    OpticalHead,
    SegmentSampler,
    as_lcd_reads,
    open_scpi,
    snapshot,
)
from tests.simlab.meter_rig import FIRST_TID, builtin_profile

T = TypeVar("T")


@pytest.fixture(scope="module")
def visa() -> Iterator[pyvisa.ResourceManager]:
    manager = pyvisa.ResourceManager("@py")
    yield manager
    manager.close()


class Tokens:
    """Credit tokens for the bench's meter, minted with its profile's factory key."""

    def __init__(self, bench: SimBench) -> None:
        self.key = bench.profile.decoder_key()
        self.tid = FIRST_TID

    def credit(self, units: int) -> str:
        self.tid += 1
        return encode(TransferCredit(0, self.tid, units), self.key)


def eventually(probe: Callable[[], T], accept: Callable[[T], bool], within: float) -> T:
    """Poll ``probe`` until ``accept`` takes its value; the last value on time-out."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if accept(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.01)


def truth(bench: SimBench, accept: Callable[[MeterSnapshot], bool]) -> MeterSnapshot:
    """The meter's true state once ``accept`` holds (carriers act just after they answer)."""
    return eventually(bench.true_state, accept, within=5.0)


# ---- token carriers, read back through the optical port ------------------------------------


def test_a_token_typed_by_the_robot_credits_the_meter_and_the_readout_shows_it() -> None:
    with SimBench(builtin_profile("default"), speed=100.0) as bench:
        tokens = Tokens(bench)
        address = bench.addresses()["keypad"]
        with OpticalHead(bench.addresses()["port"]) as head:
            before = head.readout()
        assert before["C.50.0"] == ("000000.000", "kWh")
        assert before["C.53.0"] == ("00", None)
        assert before["C.52.0"] == ("OPEN", None)
        token = tokens.credit(100)  # 10.0 kWh
        with KeypadRobotClient(address) as robot:
            assert robot.command("*IDN?").startswith("OK SIMLAB,KPR1,")
            assert robot.command("KEYS?").split()[1:] == list(bench.profile.keypad.keys)
            assert robot.type(token, "ENTER") == "OK DONE 21"
            assert sum(e.startswith("EVT DOWN") for e in robot.events) == 21
            assert sum(e.startswith("EVT UP") for e in robot.events) == 21
        with OpticalHead(bench.addresses()["port"]) as head:
            readout = head.readout()
        assert readout["C.50.0"] == ("000010.000", "kWh")
        assert readout["C.53.0"] == ("01", None)
        assert readout["C.52.0"] == ("CLOSED", None)
        assert readout["C.1.0"] == (bench.profile.meter.serial, None)
        assert readout["0.0.0"] == (bench.profile.meter.pan, None)
        assert readout["C.54.0"] == ("1", None)  # KRN
        state = bench.true_state()
        assert state.credit == {0: 100}
        assert state.last_result is Result.ACCEPT

        with KeypadRobotClient(address) as robot:
            assert robot.type(token, "ENTER") == "OK DONE 21"
        with OpticalHead(bench.addresses()["port"]) as head:
            readout = head.readout()
        assert readout["C.53.0"] == ("10", None)  # Used
        assert readout["C.50.0"] == ("000010.000", "kWh")


def test_a_token_written_through_the_optical_port_is_accepted() -> None:
    with SimBench(builtin_profile("default"), speed=100.0) as bench:
        tokens = Tokens(bench)
        port = bench.profile.port
        with OpticalHead(bench.addresses()["port"]) as head:
            answer = head.write_register(
                port.token_register or "", tokens.credit(25), port.password
            )
            assert answer == bytes([ACK])
            readout = head.readout()
        assert readout["C.50.0"] == ("000002.500", "kWh")
        assert readout["C.53.0"] == ("01", None)
        assert bench.true_state().credit == {0: 25}


def test_a_card_written_through_the_msr605_is_presented_and_accepted() -> None:
    with SimBench(builtin_profile("default"), speed=100.0) as bench:
        tokens = Tokens(bench)
        token = tokens.credit(50)
        track = bench.profile.card.token_track
        with CardWriterClient(bench.addresses()["card"]) as writer:
            assert writer.test_link()
            assert writer.write_tracks({track: token}) == ord("0")
            state = truth(bench, lambda s: s.entries == 1)
            assert state.credit == {0: 50}
            assert state.last_result is Result.ACCEPT
            assert writer.write_tracks({track: token}) == ord("0")  # the same card again
            state = truth(bench, lambda s: s.entries == 2)
            assert state.last_result is Result.USED
            assert writer.write_tracks({track: "12345"}) == ord("0")  # no token on it
            state = truth(bench, lambda s: s.entries == 3)
            assert state.last_result is Result.FORMAT
        with OpticalHead(bench.addresses()["port"]) as head:
            readout = head.readout()
        assert readout["C.50.0"] == ("000005.000", "kWh")
        assert readout["C.53.0"] == ("06", None)


# ---- the load switch as the power analyser sees it -----------------------------------------


def analyser_reading(analyser: MessageBasedResource) -> dict[str, float]:
    values = [float(v) for v in analyser.query(":NUM:NORM:VAL?").split(",")]
    return dict(zip(("U", "I", "P", "WH"), values, strict=True))


@pytest.mark.parametrize(
    ("speed", "units", "tolerance_wh"),
    [
        # 0.1 kWh at 1 kW: 360 s simulated, 3.6 s at x100. 2 Wh = the switch 72 ms late.
        (100.0, 1, 2.0),
        # 0.5 kWh at 1 kW: 1800 s simulated, 1.8 s at x1000. 10 Wh = 36 ms late.
        (1000.0, 5, 10.0),
    ],
    ids=["x100-0.1kWh", "x1000-0.5kWh"],
)
def test_the_analyser_sees_the_load_switch_open_when_credit_runs_out(
    visa: pyvisa.ResourceManager, speed: float, units: int, tolerance_wh: float
) -> None:
    """The switch opens once the credited energy has passed (within ``tolerance_wh``, never
    before it), and a top-up token recloses it."""
    credited_wh = units * 100.0
    expected_real_s = credited_wh / 1000.0 * 3600.0 / speed
    with SimBench(builtin_profile("default"), speed=speed) as bench:
        tokens = Tokens(bench)
        load = open_scpi(visa, bench.addresses()["load"])
        analyser = open_scpi(visa, bench.addresses()["analyzer"])
        try:
            load.write("MODE CP;:POW:STAT:L1 1000;:LOAD ON")
            assert load.query("*OPC?") == "1"
            assert load.query("MODE?") == "POW"
            analyser.write(":NUM:NORM:NUM 4;:NUM:NORM:ITEM1 U,1;ITEM2 I,1;ITEM3 P,1;ITEM4 WH,1")
            analyser.write(":INTEG:MODE NORM;:INTEG:RES;:INTEG:STAR")
            assert analyser.query(":INTEG:STAT?") == "STAR"
            assert analyser_reading(analyser)["P"] == 0.0  # no credit: the switch is open

            with KeypadRobotClient(bench.addresses()["keypad"]) as robot:
                assert robot.type(tokens.credit(units), "ENTER") == "OK DONE 21"
                on = eventually(lambda: analyser_reading(analyser), lambda r: r["P"] > 0, 5.0)
                assert on["P"] == pytest.approx(1000.0, rel=1e-3)
                assert on["U"] == pytest.approx(230.0, rel=1e-3)
                assert on["I"] == pytest.approx(1000.0 / 230.0, rel=1e-3)

                off = eventually(
                    lambda: analyser_reading(analyser),
                    lambda r: r["P"] == 0.0,
                    3 * expected_real_s + 5.0,
                )
                assert off["P"] == 0.0, "the load switch never opened"
                assert off["I"] == 0.0
                assert credited_wh - 0.5 <= off["WH"] <= credited_wh + tolerance_wh
                state = bench.true_state()
                assert not state.relay_closed
                assert state.open_reasons == {"credit"}
                assert state.credit == {0: 0}

                assert robot.type(tokens.credit(1), "ENTER") == "OK DONE 21"
                back = eventually(lambda: analyser_reading(analyser), lambda r: r["P"] > 0, 5.0)
                assert back["P"] == pytest.approx(1000.0, rel=1e-3)
        finally:
            load.close()
            analyser.close()


def switch_source(source: MessageBasedResource, on: bool) -> None:
    source.write("OUTP ON" if on else "OUTP OFF")
    assert source.query("*OPC?") == "1"
    assert source.query("OUTP?") == ("1" if on else "0")


def test_a_meter_without_supply_takes_no_card_token_and_keeps_its_credit(
    visa: pyvisa.ResourceManager,
) -> None:
    """The AC source (Chroma 61500 over pyvisa) powers the meter down and up again."""
    with SimBench(builtin_profile("default"), speed=100.0) as bench:
        tokens = Tokens(bench)
        track = bench.profile.card.token_track
        source = open_scpi(visa, bench.addresses()["source"])
        analyser = open_scpi(visa, bench.addresses()["analyzer"])
        try:
            with CardWriterClient(bench.addresses()["card"]) as writer:
                assert writer.write_tracks({track: tokens.credit(10)}) == ord("0")
                truth(bench, lambda s: s.entries == 1)

                switch_source(source, on=False)
                assert not truth(bench, lambda s: not s.powered).powered
                assert float(analyser.query(":NUM:NORM:VAL? 1")) == 0.0  # U on the load side
                written_while_dead = tokens.credit(20)
                assert writer.write_tracks({track: written_while_dead}) == ord("0")
                state = eventually(bench.true_state, lambda s: s.entries != 1, within=0.5)
                assert (state.entries, state.credit) == (1, {0: 10}), "a dead meter took a card"

                switch_source(source, on=True)
                assert truth(bench, lambda s: s.powered).powered
                with OpticalHead(bench.addresses()["port"]) as head:
                    readout = head.readout()
                assert readout["C.50.0"] == ("000001.000", "kWh")  # credit survives
                assert writer.write_tracks({track: written_while_dead}) == ord("0")
                state = truth(bench, lambda s: s.entries == 2)
                assert state.last_result is Result.ACCEPT  # its TID was never used
                assert state.credit == {0: 30}
        finally:
            source.close()
            analyser.close()


def test_a_meter_without_supply_does_not_answer_its_optical_port(
    visa: pyvisa.ResourceManager,
) -> None:
    with SimBench(builtin_profile("default"), speed=100.0) as bench:
        source = open_scpi(visa, bench.addresses()["source"])
        try:
            switch_source(source, on=False)
            truth(bench, lambda s: not s.powered)
            with OpticalHead(bench.addresses()["port"]) as head, pytest.raises(TimeoutError):
                head.sign_on(attempts=1)
            switch_source(source, on=True)
            truth(bench, lambda s: s.powered)
            with OpticalHead(bench.addresses()["port"]) as head:
                assert head.sign_on()[3] == bench.profile.port.baud_char
        finally:
            source.close()


# ---- the camera -----------------------------------------------------------------------------


def test_a_camera_frame_reads_as_what_the_meter_displays() -> None:
    # Real-time clock: a result message stays 3 s, long enough to photograph.
    with SimBench(builtin_profile("default"), speed=1.0, noise="low", seed=7) as bench:
        tokens = Tokens(bench)
        url = bench.addresses()["display"]
        sampler = SegmentSampler(bench.segment_map_path)
        assert sampler.digits == 8

        text, icons = sampler.read(snapshot(url))
        assert text == "0.0"
        assert icons == {"kwh", "relay_open", "credit_low"}

        token = tokens.credit(123)
        track = bench.profile.card.token_track
        with CardWriterClient(bench.addresses()["card"]) as writer:
            assert writer.write_tracks({track: token}) == ord("0")
            truth(bench, lambda s: s.entries == 1)
            text, icons = sampler.read(snapshot(url))
            assert text == as_lcd_reads(bench.profile.display.vocabulary[1])  # "AccEPt"
            assert "relay_open" not in icons

            with KeypadRobotClient(bench.addresses()["keypad"]) as robot:
                assert robot.command("PRESS BACK") == "OK DONE 1"  # a key ends the message
            text, icons = sampler.read(snapshot(url))
            assert text == "12.3"
            assert icons == {"kwh"}

            assert writer.write_tracks({track: token}) == ord("0")
            truth(bench, lambda s: s.entries == 2)
            text, _ = sampler.read(snapshot(url))
            assert text == as_lcd_reads(bench.profile.display.vocabulary[10]) == "U5Ed"
        assert bench.true_state().display.text == "USEd"


# ---- the bench file -------------------------------------------------------------------------


def test_the_bench_file_names_every_role_with_a_live_address(tmp_path: Path) -> None:
    with SimBench(builtin_profile("default"), speed=100.0) as bench:
        path = bench.write_bench_file(tmp_path / "bench.yaml", "meter.yaml")
        doc = yaml.safe_load(path.read_text())
        assert doc["simulated"] is True
        assert doc["clock_speed"] == 100.0
        assert doc["dut_profile"] == "meter.yaml"
        instruments = doc["instruments"]
        assert sorted(instruments) == sorted(ROLES)
        for role in ("keypad", "port", "card"):
            assert Path(instruments[role]["address"]).exists()
        for role in ("analyzer", "source", "load"):
            assert instruments[role]["address"].startswith("TCPIP::127.0.0.1::")
            assert instruments[role]["read_termination"] == "\n"
        assert Path(instruments["display"]["options"]["segment_map"]) == bench.segment_map_path
        assert all("calibration" in instruments[r] for r in ROLES if r != "presenter")
        with KeypadRobotClient(instruments["keypad"]["address"]) as robot:
            assert robot.command("*IDN?").startswith("OK SIMLAB,KPR1")
    for role in ("keypad", "port", "card"):
        assert not Path(instruments[role]["address"]).exists()  # stop releases the ptys


# ---- start/stop leaves nothing behind -------------------------------------------------------


def open_files() -> Counter[str]:
    """This process's file descriptors by kind: pty, socket, other."""
    kinds: Counter[str] = Counter()
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the descriptor listdir itself used
        if target.startswith(("/dev/pts/", "/dev/ptmx")):
            kinds["pty"] += 1
        elif target.startswith("socket:"):
            kinds["socket"] += 1
        else:
            kinds["other"] += 1
    return kinds


def use_bench_once(visa: pyvisa.ResourceManager) -> Path:
    """Start a bench, talk to a serial device, an SCPI instrument and the camera, stop it."""
    bench = SimBench(builtin_profile("default"), speed=100.0)
    bench.start()
    try:
        addresses = bench.addresses()
        with KeypadRobotClient(addresses["keypad"]) as robot:
            assert robot.command("*IDN?").startswith("OK SIMLAB,KPR1")
        analyser = open_scpi(visa, addresses["analyzer"])
        try:
            assert analyser.query("*IDN?").startswith("YOKOGAWA,WT310")
        finally:
            analyser.close()
        assert snapshot(addresses["display"]).size == (640, 240)
        workdir = bench.workdir
        assert workdir is not None and workdir.exists()
    finally:
        bench.stop()
    return workdir


def test_starting_and_stopping_the_bench_50_times_leaks_nothing(
    visa: pyvisa.ResourceManager,
) -> None:
    use_bench_once(visa)  # imports, lazy module state
    files, threads = open_files(), threading.active_count()
    for _ in range(50):
        workdir = use_bench_once(visa)
        assert not workdir.exists()
    after = eventually(
        lambda: (open_files(), threading.active_count()),
        lambda now: now == (files, threads),
        within=5.0,
    )
    assert after[0] == files, "file descriptors left open"
    assert after[1] == threads, [t.name for t in threading.enumerate()]
