"""``stslab sim``: the defect list, the bench file it writes, bad arguments, clean shutdown."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import pyvisa
import yaml

from simlab.defects import CATALOGUE
from stslab.cli import main
from tests.simlab.bench_clients import (
    CardWriterClient,
    KeypadRobotClient,
    OpticalHead,
    open_scpi,
    snapshot,
)
from tests.simlab.meter_models import NoTamperClearMeter
from tests.simlab.meter_rig import builtin_profile

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "dut" / "profiles" / "meter_default.yaml"
MODEL = "tests.simlab.meter_models:NoTamperClearMeter"
START_TIMEOUT_S = 30.0  # interpreter start and imports on a busy machine
STOP_TIMEOUT_S = 15.0


class SimProcess:
    """``python -m stslab sim ...`` in a child process, read line by line until "ready"."""

    def __init__(self, *args: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "stslab", "sim", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []

    def wait_ready(self) -> None:
        """Read stdout until the "ready" line (a watchdog kills a child that never gets there)."""
        watchdog = _Watchdog(self.proc, START_TIMEOUT_S)
        try:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                self.lines.append(line)
                if line.startswith("ready in "):
                    return
        finally:
            watchdog.cancel()
        raise AssertionError(f"no ready line; stderr: {self.proc.stderr.read()}")  # type: ignore[union-attr]

    def finish(self) -> tuple[int, str, str]:
        try:
            out, err = self.proc.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            raise AssertionError("stslab sim did not stop") from None
        return self.proc.returncode, "".join(self.lines) + out, err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


class _Watchdog:
    """Kills a process that overruns a deadline, so a read on its pipe cannot hang."""

    def __init__(self, proc: subprocess.Popen, seconds: float) -> None:
        self._timer = threading.Timer(seconds, proc.kill)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        self._timer.cancel()
        self._timer.join()


@pytest.fixture
def sim() -> Iterator[list[SimProcess]]:
    started: list[SimProcess] = []
    yield started
    for process in started:
        process.kill()


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


# ---- the defect catalogue -------------------------------------------------------------------


def test_list_defects_lists_every_defect_in_full(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # a terminal of ordinary width
    code, out, _ = run(["sim", "--list-defects"], capsys)
    assert code == 0
    missing = [d.name for d in CATALOGUE if d.name not in out]
    assert not missing, f"not listed in full: {missing}"  # names are what users type


# ---- bad arguments --------------------------------------------------------------------------


def _bad_profile(tmp_path: Path, old: str, new: str) -> str:
    text = PROFILE.read_text()
    assert text.count(old) == 1
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new))
    return str(path)


@pytest.mark.parametrize(
    ("args", "param"),
    [
        (["--defect", "no-such-defect"], "--defect"),
        (["--defect", "accepts-used", "--defect", "bogus"], "--defect"),
        (["--noise", "loud"], "--noise"),
        (["--speed", "0"], "--speed"),
        (["--speed=-5"], "--speed"),
        (["--speed", "fast"], "--speed"),
        (["--profile", "no-such-profile"], "--profile"),
        (["--profile", "/no/such/dir/meter.yaml"], "--profile"),
        (["--model", "NoColon"], "--model"),
        (["--model", "tests.simlab.meter_models:NotAMeter"], "--model"),
        (["--model", "tests.simlab.no_such_module:Meter"], "--model"),
    ],
)
def test_a_bad_argument_is_one_line_naming_it_with_exit_2(
    capsys: pytest.CaptureFixture[str], args: list[str], param: str
) -> None:
    code, out, err = run(["sim", *args], capsys)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("stslab: error: ")
    assert param in lines[0]
    assert "ready" not in out


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("  tid_store_size: 20", "  tid_store_size: 0", "tokens.tid_store_size"),
        # two problems at once are still one line
        ("  ti: 1\n  krn: 1", "  ti: 100\n  krn: 10", "key.krn"),
        # a display text the profile's LCD cannot show
        ('13: "rEJ 13"', '13: "WrOng"', "display.vocabulary.13"),
    ],
    ids=["one-error", "two-errors", "vocabulary"],
)
def test_a_bad_profile_file_is_one_line_naming_it_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, where: str
) -> None:
    path = _bad_profile(tmp_path, old, new)
    code, out, err = run(["sim", "--profile", path, "--duration", "0"], capsys)
    assert code == 2
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"stslab: error: --profile: {path}")
    assert where in lines[0]
    assert "ready" not in out


# ---- models and profiles in process ---------------------------------------------------------


def test_model_option_runs_the_named_meter_model(capsys: pytest.CaptureFixture[str]) -> None:
    built = NoTamperClearMeter.built
    code, out, err = run(["sim", "--model", MODEL, "--speed", "100", "--duration", "0"], capsys)
    assert (code, err) == (0, "")
    assert "ready in" in out
    assert NoTamperClearMeter.built == built + 1


def test_built_in_ea11_profile_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["sim", "--profile", "ea11", "--duration", "0"], capsys)
    assert (code, err) == (0, "")
    assert "EA11" in out
    assert "SL-211" in out


# ---- the real command: bench file, duration, SIGINT ---------------------------------------


def test_duration_run_writes_a_bench_file_whose_addresses_answer(
    tmp_path: Path, sim: list[SimProcess]
) -> None:
    bench_file = tmp_path / "bench.yaml"
    process = SimProcess("--duration", "1", "--bench-out", str(bench_file), "--speed", "10")
    sim.append(process)
    process.wait_ready()
    doc = yaml.safe_load(bench_file.read_text())
    keypad = doc["instruments"]["keypad"]["address"]
    with KeypadRobotClient(keypad) as robot:
        assert robot.command("*IDN?").startswith("OK SIMLAB,KPR1,")
    code, out, err = process.finish()  # stops by itself after its duration
    assert code == 0, err
    assert "SimLab stopped" in out
    assert doc["dut_profile"].endswith("meter_default.yaml")
    assert not Path(keypad).exists()


def test_sigint_stops_the_bench_cleanly(tmp_path: Path, sim: list[SimProcess]) -> None:
    bench_file = tmp_path / "bench.yaml"
    process = SimProcess("--bench-out", str(bench_file), "--speed", "10", "--model", MODEL)
    sim.append(process)
    process.wait_ready()
    instruments = yaml.safe_load(bench_file.read_text())["instruments"]
    links = [Path(instruments[role]["address"]) for role in ("keypad", "port", "card")]
    assert all(link.exists() for link in links)
    # Every address answers while it runs, the model's own identification included.
    port = builtin_profile("default").port
    with OpticalHead(instruments["port"]["address"]) as head:
        assert head.sign_on() == f"{port.manufacturer_flag}{port.baud_char}SL100T"
    with CardWriterClient(instruments["card"]["address"]) as writer:
        assert writer.test_link()
    assert snapshot(instruments["display"]["address"]).format == "PNG"
    manager = pyvisa.ResourceManager("@py")
    try:
        for role, maker in (("analyzer", "YOKOGAWA"), ("source", "Chroma"), ("load", "Chroma")):
            instrument = open_scpi(manager, instruments[role]["address"])
            try:
                assert instrument.query("*IDN?").startswith(maker)
            finally:
                instrument.close()
    finally:
        manager.close()

    process.proc.send_signal(signal.SIGINT)
    code, out, err = process.finish()
    assert code == 0, err
    assert err == ""
    assert "SimLab stopped" in out
    deadline = time.monotonic() + 5.0
    while any(link.exists() for link in links) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(link.exists() for link in links)
    assert not links[0].parent.exists()  # the bench's work directory is gone too
