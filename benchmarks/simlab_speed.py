"""How fast SimLab is where the harness feels it. Prints ``name=value`` lines; asserts nothing.

* ``simbench_start_s`` / ``simbench_stop_s``: median in-process ``SimBench.start()`` and
  ``stop()`` (meter, plant, three ptys, camera, three SCPI servers);
* ``sim_cli_ready_s``: median time from launching ``python -m stslab sim`` to its "ready"
  line (interpreter start and imports included), then Ctrl-C;
* ``keypad_tokens_per_s``: 20-digit tokens typed through the KPR/1 robot's pty at its
  default timings (hold 80 ms, gap 120 ms) on a clock at ``--speed 1000``: ``TYPE <token>
  ENTER``, wait for ``OK DONE``, then the meter's result; ``keypad_token_ms`` is one token;
* ``scpi_idn_queries_per_s`` / ``scpi_value_queries_per_s``: pyvisa (pyvisa-py, TCP)
  ``*IDN?`` and ``:NUM:NORM:VAL?`` round trips against the bench's power analyser.

Usage: ``python benchmarks/simlab_speed.py [--seconds S] [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pyvisa
import serial

from dut.profile import MeterProfile
from simlab.bench import SimBench
from sts.meter import Result
from sts.tokens import TransferCredit, encode

REPO = Path(__file__).resolve().parents[1]
TIMEOUT_S = 10.0


def rate(action: Callable[[], object], seconds: float) -> float:
    """Calls of ``action`` per second over about ``seconds``."""
    count = 0
    start = time.perf_counter()
    while True:
        action()
        count += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return count / elapsed


def bench_start_stop(profile: MeterProfile, runs: int) -> tuple[float, float]:
    starts, stops = [], []
    for _ in range(runs):
        bench = SimBench(profile, speed=1.0)
        t0 = time.perf_counter()
        bench.start()
        t1 = time.perf_counter()
        bench.stop()
        t2 = time.perf_counter()
        starts.append(t1 - t0)
        stops.append(t2 - t1)
    return statistics.median(starts), statistics.median(stops)


def cli_ready(runs: int) -> float:
    times = []
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    for _ in range(runs):
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "stslab", "sim"],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        watchdog = threading.Timer(60.0, proc.kill)
        watchdog.start()
        try:
            assert proc.stdout is not None
            ready = any(line.startswith("ready in ") for line in proc.stdout if line)
            times.append(time.perf_counter() - t0)
            if not ready:
                raise RuntimeError("stslab sim never said ready")
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
    return statistics.median(times)


class Robot:
    """KPR/1 over the keypad robot's pty."""

    def __init__(self, address: str) -> None:
        self.port = serial.serial_for_url(address, baudrate=115200, timeout=TIMEOUT_S)

    def type_token(self, token: str) -> str:
        self.port.write(f"TYPE {token} ENTER\n".encode("ascii"))
        while True:
            line = self.port.readline().decode("ascii")
            if not line.endswith("\n"):
                raise TimeoutError(f"keypad robot: no reply (got {line!r})")
            if not line.startswith("EVT "):
                return line.strip()

    def close(self) -> None:
        self.port.close()


def keypad_tokens(profile: MeterProfile, seconds: float) -> float:
    with SimBench(profile, speed=1000.0) as bench:
        key = profile.decoder_key()
        tokens = (encode(TransferCredit(0, 6_000_000 + n, 1), key) for n in range(1, 10**6))
        robot = Robot(bench.addresses()["keypad"])
        try:
            entries = bench.true_state().entries

            def one_token() -> None:
                nonlocal entries
                done = robot.type_token(next(tokens))
                state = bench.true_state()
                if done != "OK DONE 21" or state.entries != entries + 1:
                    raise RuntimeError(f"token not entered: {done}")
                if state.last_result is not Result.ACCEPT:
                    raise RuntimeError(f"token refused: {state.last_result}")
                entries = state.entries

            one_token()
            return rate(one_token, seconds)
        finally:
            robot.close()


def scpi_queries(profile: MeterProfile, seconds: float) -> tuple[float, float]:
    manager = pyvisa.ResourceManager("@py")
    try:
        with SimBench(profile, speed=1.0) as bench:
            analyser = manager.open_resource(
                bench.addresses()["analyzer"],
                read_termination="\n",
                write_termination="\n",
                timeout=int(TIMEOUT_S * 1000),
            )
            try:
                analyser.query("*IDN?")
                idn = rate(lambda: analyser.query("*IDN?"), seconds)
                values = rate(lambda: analyser.query(":NUM:NORM:VAL?"), seconds)
            finally:
                analyser.close()
    finally:
        manager.close()
    return idn, values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per rate figure")
    parser.add_argument("--runs", type=int, default=5, help="runs per start-up figure")
    args = parser.parse_args()
    profile = MeterProfile.builtin("default")
    start, stop = bench_start_stop(profile, args.runs)
    print(f"simbench_start_s={start:.3f}", flush=True)
    print(f"simbench_stop_s={stop:.3f}", flush=True)
    print(f"sim_cli_ready_s={cli_ready(max(1, args.runs // 2)):.3f}", flush=True)
    tokens = keypad_tokens(profile, args.seconds)
    print(f"keypad_tokens_per_s={tokens:.1f}", flush=True)
    print(f"keypad_token_ms={1000 / tokens:.1f}", flush=True)
    idn, values = scpi_queries(profile, args.seconds)
    print(f"scpi_idn_queries_per_s={idn:.0f}", flush=True)
    print(f"scpi_value_queries_per_s={values:.0f}", flush=True)


if __name__ == "__main__":
    main()
