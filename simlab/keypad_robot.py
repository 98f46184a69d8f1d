"""KPR/1: the keypad robot that presses a meter's physical keys with solenoid actuators.

Served on a pty at 115200 8N1. Lines end ``\\n`` (``\\r\\n`` accepted); the robot sends
``\\n``. Command words are case-insensitive, key names too.

==========================  =============================================================
``*IDN?``                   ``OK SIMLAB,KPR1,<serial>,<firmware>``
``KEYS?``                   ``OK 0 1 2 ... ENTER BACK`` (the meter's layout)
``CFG HOLD <ms>``           default hold time, 20..10000 ms -> ``OK``
``CFG GAP <ms>``            default gap between presses, 20..10000 ms -> ``OK``
``CFG?``                    ``OK HOLD=<ms> GAP=<ms>``
``PRESS <key> [hold_ms]``   one press (hold 20..10000 ms)
``TYPE <keys...>``          key names and/or digit runs: ``TYPE 1234 5678 ENTER``; at most
                            256 presses
``ABORT``                   stop a running PRESS/TYPE, release every actuator -> ``OK``
``STATUS?``                 ``OK IDLE`` or ``OK BUSY <done>/<total>``
==========================  =============================================================

A PRESS/TYPE is checked whole before anything moves; then, while it runs, the robot sends
``EVT DOWN <key> t=<ms>`` and ``EVT UP <key> t=<ms>`` (t: simulated ms since the command
started, floored) and ends with exactly one final line: ``OK DONE <n>`` or, when stopped by
ABORT or a hang-up, ``ERR 17 aborted <done>/<total>``. ABORT's own ``OK`` follows that line.
Hold and gap run on the :class:`~simlab.clock.SimClock`.

Errors are ``ERR <code> <text>``:

====  ===================================================================
10    unknown command
11    syntax: wrong number of arguments
12    bad number (not a whole number of ms)
13    out of range (hold/gap limits, too many presses)
14    unknown key (not in the meter's layout)
15    busy: a PRESS/TYPE is running (only ABORT and STATUS? are served)
16    line too long (over 1024 characters; the line is discarded)
17    aborted (final line of a PRESS/TYPE stopped before its end)
====  ===================================================================

Every actuator is released on ABORT, when the client closes the port (hang-up), when the
port vanishes, and on :meth:`KeypadRobot.close`.
"""

from __future__ import annotations

import logging
import math
import threading
from enum import IntEnum

from simlab.clock import SimClock
from simlab.faults import TransportFaults
from simlab.meter_io import MeterKeypad
from simlab.pty import PtyDevice

log = logging.getLogger(__name__)

LINE_SPEED = 115200
HOLD_RANGE_MS = (20, 10_000)
GAP_RANGE_MS = (20, 10_000)
MAX_PRESSES = 256
MAX_LINE = 1024


class KprError(IntEnum):
    """KPR/1 error codes (``ERR <code> <text>``)."""

    UNKNOWN_COMMAND = 10
    SYNTAX = 11
    BAD_NUMBER = 12
    OUT_OF_RANGE = 13
    UNKNOWN_KEY = 14
    BUSY = 15
    LINE_TOO_LONG = 16
    ABORTED = 17


class _Refused(Exception):
    def __init__(self, code: KprError, text: str) -> None:
        super().__init__(f"ERR {int(code)} {text}")


class KeypadRobot(PtyDevice):
    """A KPR/1 robot on a pty, pressing ``keypad``'s keys on ``clock``'s time."""

    def __init__(
        self,
        keypad: MeterKeypad,
        clock: SimClock,
        *,
        serial_number: str = "KPR1-000001",
        firmware: str = "1.0.0",
        hold_ms: int = 80,
        gap_ms: int = 120,
        link: str | None = None,
        faults: TransportFaults | None = None,
    ) -> None:
        _check_range("HOLD", hold_ms, HOLD_RANGE_MS)
        _check_range("GAP", gap_ms, GAP_RANGE_MS)
        self._keypad = keypad
        self._clock = clock
        self._idn = f"SIMLAB,KPR1,{serial_number},{firmware}"
        self._hold_ms = hold_ms
        self._gap_ms = gap_ms
        self._line = bytearray()
        self._overflow = False
        self._lock = threading.Lock()  # guards the job state below
        self._job: threading.Thread | None = None
        self._busy = False
        self._done = 0
        self._total = 0
        self._pressed: set[str] = set()
        self._abort = threading.Event()
        self._closed = False
        super().__init__(name="kpr1", baudrate=LINE_SPEED, link=link, faults=faults)

    @property
    def pressed(self) -> frozenset[str]:
        """Keys an actuator holds down right now."""
        with self._lock:
            return frozenset(self._pressed)

    def close(self) -> None:
        """Release every actuator, stop the running command, close the pty. Idempotent."""
        if self._closed:
            return
        self._closed = True
        super().close()  # first: no command may start a new job behind our back
        self._stop_job()

    # -- line handling (reader thread) ------------------------------------------------------

    def _on_bytes(self, data: bytes) -> None:
        for byte in data:
            if byte == 0x0A:
                line, overflow = bytes(self._line), self._overflow
                self._line.clear()
                self._overflow = False
                if overflow:
                    self._send(f"ERR {int(KprError.LINE_TOO_LONG)} line too long")
                else:
                    self._on_line(line.rstrip(b"\r").decode("ascii", errors="replace"))
            elif len(self._line) < MAX_LINE:
                self._line.append(byte)
            else:
                self._overflow = True

    def _on_line(self, line: str) -> None:
        words = line.split()
        if not words:
            return
        command, args = words[0].upper(), words[1:]
        try:
            reply = self._dispatch(command, args)
        except _Refused as refused:
            reply = str(refused)
        if reply is not None:
            self._send(reply)

    def _dispatch(self, command: str, args: list[str]) -> str | None:
        if command == "ABORT":
            _arity(args, 0)
            self._stop_job()
            return "OK"
        if command == "STATUS?":
            _arity(args, 0)
            with self._lock:
                return f"OK BUSY {self._done}/{self._total}" if self._busy else "OK IDLE"
        if command not in _COMMANDS:
            raise _Refused(KprError.UNKNOWN_COMMAND, f"unknown command {command}")
        with self._lock:
            if self._busy:
                raise _Refused(KprError.BUSY, "busy")
        if command == "*IDN?":
            _arity(args, 0)
            return f"OK {self._idn}"
        if command == "KEYS?":
            _arity(args, 0)
            return "OK " + " ".join(self._keypad.keys)
        if command == "CFG?":
            _arity(args, 0)
            return f"OK HOLD={self._hold_ms} GAP={self._gap_ms}"
        if command == "CFG":
            return self._configure(args)
        if command == "PRESS":
            if len(args) not in (1, 2):
                raise _Refused(KprError.SYNTAX, "PRESS takes <key> [hold_ms]")
            keys = [_key(self._layout(), args[0])]
            hold = _number(args[1], "hold", HOLD_RANGE_MS) if len(args) == 2 else self._hold_ms
            self._start(keys, hold)
            return None
        # TYPE
        if not args:
            raise _Refused(KprError.SYNTAX, "TYPE takes at least one key")
        layout = self._layout()
        keys = [key for arg in args for key in _keys_of(layout, arg)]
        if len(keys) > MAX_PRESSES:
            raise _Refused(KprError.OUT_OF_RANGE, f"{len(keys)} presses (at most {MAX_PRESSES})")
        self._start(keys, self._hold_ms)
        return None

    def _configure(self, args: list[str]) -> str:
        if len(args) != 2 or args[0].upper() not in ("HOLD", "GAP"):
            raise _Refused(KprError.SYNTAX, "CFG takes HOLD <ms> or GAP <ms>")
        if args[0].upper() == "HOLD":
            self._hold_ms = _number(args[1], "hold", HOLD_RANGE_MS)
        else:
            self._gap_ms = _number(args[1], "gap", GAP_RANGE_MS)
        return "OK"

    def _layout(self) -> dict[str, str]:
        """Key names as the client may spell them (any case) -> the meter's names."""
        return {key.upper(): key for key in self._keypad.keys}

    # -- running a press sequence (job thread) ----------------------------------------------

    def _start(self, keys: list[str], hold_ms: int) -> None:
        with self._lock:
            previous = self._job
        if previous is not None:
            previous.join()  # it has already reported its end; only its final write remains
        self._abort.clear()
        with self._lock:
            self._busy, self._done, self._total = True, 0, len(keys)
            self._job = threading.Thread(
                target=self._run, args=(keys, hold_ms, self._gap_ms), name="kpr1-job", daemon=True
            )
            self._job.start()

    def _run(self, keys: list[str], hold_ms: int, gap_ms: int) -> None:
        t0 = self._clock.now()
        done = 0
        aborted = False
        try:
            up_ms = 0
            for index, key in enumerate(keys):
                if index and not self._wait_until(t0, up_ms + gap_ms):
                    aborted = True
                    break
                with self._lock:
                    self._pressed.add(key)
                self._keypad.key_down(key)
                # The hold is timed from when the key is down (the meter may be busy).
                down_ms = self._elapsed_ms(t0)
                self._send(f"EVT DOWN {key} t={down_ms}")
                held = self._wait_until(t0, down_ms + hold_ms)
                up_ms = self._release(key, t0)
                if not held:
                    aborted = True
                    break
                done += 1
                with self._lock:
                    self._done = done
        except Exception:
            log.exception("keypad press failed")
            aborted = True
        finally:
            for key in self.pressed:
                self._release(key, t0)
            with self._lock:
                self._busy = False
        if aborted:
            self._send(f"ERR {int(KprError.ABORTED)} aborted {done}/{len(keys)}")
        else:
            self._send(f"OK DONE {done}")

    def _release(self, key: str, t0: float) -> int:
        self._keypad.key_up(key)
        with self._lock:
            self._pressed.discard(key)
        up_ms = self._elapsed_ms(t0)
        self._send(f"EVT UP {key} t={up_ms}")
        return up_ms

    def _elapsed_ms(self, t0: float) -> int:
        # The epsilon keeps a wait that ended exactly on its target from flooring one ms short.
        return math.floor((self._clock.now() - t0) * 1000 + 1e-6)

    def _wait_until(self, t0: float, target_ms: int) -> bool:
        """Wait until ``target_ms`` simulated ms after ``t0``; False when aborted first."""
        target = t0 + target_ms / 1000
        while True:
            remaining = target - self._clock.now()
            if remaining <= 0:
                return True
            if self._abort.wait(self._clock.to_real(remaining)):
                return False

    def _on_hangup(self) -> None:
        self._line.clear()
        self._overflow = False
        self._stop_job()

    def _stop_job(self) -> None:
        """ABORT, hang-up, vanish and close: stop the job and release every actuator."""
        self._abort.set()
        with self._lock:
            job = self._job
        if job is not None and job is not threading.current_thread():
            job.join()

    def _send(self, line: str) -> None:
        self._endpoint.write(line.encode("ascii") + b"\n")


_COMMANDS = frozenset({"*IDN?", "KEYS?", "CFG", "CFG?", "PRESS", "TYPE"})


def _key(layout: dict[str, str], name: str) -> str:
    key = layout.get(name.upper())
    if key is None:
        raise _Refused(KprError.UNKNOWN_KEY, f"unknown key {name}")
    return key


def _keys_of(layout: dict[str, str], word: str) -> list[str]:
    """A key name, or a run of digits typed one key each."""
    if len(word) > 1 and word.isdigit() and word.isascii():
        return [_key(layout, digit) for digit in word]
    return [_key(layout, word)]


def _arity(args: list[str], n: int) -> None:
    if len(args) != n:
        raise _Refused(KprError.SYNTAX, f"expected {n} arguments, got {len(args)}")


def _number(text: str, what: str, limits: tuple[int, int]) -> int:
    if not (text.isascii() and text.isdigit()):
        raise _Refused(KprError.BAD_NUMBER, f"bad number {text}")
    value = int(text)
    low, high = limits
    if not low <= value <= high:
        raise _Refused(KprError.OUT_OF_RANGE, f"{what} {value} ms out of range {low}..{high}")
    return value


def _check_range(what: str, value: int, limits: tuple[int, int]) -> None:
    low, high = limits
    if not low <= value <= high:
        raise ValueError(f"{what} {value} ms out of range {low}..{high}")
