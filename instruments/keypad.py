"""KPR/1 keypad robot driver, and the serial link every byte-stream driver shares.

The robot presses the meter's keys with solenoid actuators. It speaks a line protocol at
115200 8N1 (lines end ``\\n``): ``*IDN?``, ``KEYS?``, ``CFG HOLD ms``, ``CFG GAP ms``,
``CFG?``, ``PRESS key [hold]``, ``TYPE key ...``, ``ABORT``, ``STATUS?``; replies ``OK ...``
or ``ERR code text``; while a PRESS/TYPE runs, ``EVT DOWN|UP key t=ms`` lines and one final
``OK DONE n`` (or ``ERR 17 aborted done/total``).

:class:`SerialLink` and :class:`CommandRefused` live here because the optical-port and
card-writer drivers use them too: a port opened by URL (a device path, ``rfc2217://``,
``socket://``), reads that always end within their timeout, and every failure turned into the
:mod:`instruments.base` error that says what happened.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import serial

from instruments.base import (
    Driver,
    Identity,
    InstrumentError,
    InstrumentGone,
    InstrumentTimeout,
    ProtocolViolation,
    register,
)
from instruments.roles import KeyEvent

# -- shared by the byte-stream drivers -------------------------------------------------------


class CommandRefused(InstrumentError):
    """The device understood the command and answered with an error.

    ``code`` is the device's own code (KPR/1 ``ERR 15``, IEC 62056-21 ``ERR03``, MSR605
    status ``1`` …) and ``text`` its explanation.
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        text: str = "",
        role: str | None = None,
        address: str | None = None,
    ) -> None:
        super().__init__(message, role=role, address=address)
        self.code = code
        self.text = text


def check_options(driver: str, options: Mapping[str, Any]) -> None:
    """Refuse bench options a driver does not know, naming them (a typo must not pass)."""
    if options:
        unknown = ", ".join(sorted(options))
        raise ValueError(f"driver {driver!r} has no option(s): {unknown}")


def escaped(data: bytes, limit: int = 80) -> str:
    """Bytes for an error message: printable ASCII as is, the rest as <XX>."""
    text = "".join(chr(b) if 32 <= b < 127 else f"<{b:02X}>" for b in data[:limit])
    return text + ("…" if len(data) > limit else "")


Framer = Callable[[bytes], tuple[int, int] | None]


class SerialLink:
    """One serial byte stream of a driver, opened by URL and reopened after it was lost.

    Reads poll the port every ``poll_s`` and end when a message is complete, when its
    timeout (or its idle limit) runs out, or when the port fails. A failed port is closed and
    reopened by the next call, so a device that was unplugged and came back (under the same
    name, like a ``/dev/serial/by-id`` link) works again without a new driver.
    """

    def __init__(self, driver: Driver, *, baudrate: int, poll_s: float = 0.02) -> None:
        self._driver = driver
        self._baudrate = baudrate
        self._poll_s = poll_s
        self._port: serial.SerialBase | None = None
        self._rx = bytearray()
        self._write_lock = threading.Lock()
        self._closed = False
        self.last_activity = 0.0  # monotonic time of the last byte sent or received

    @property
    def is_open(self) -> bool:
        return self._port is not None

    @property
    def baudrate(self) -> int:
        return self._baudrate

    @baudrate.setter
    def baudrate(self, value: int) -> None:
        self._baudrate = value
        port = self._port
        if port is not None and port.baudrate != value:
            try:
                port.baudrate = value
            except (serial.SerialException, OSError) as exc:
                raise self._lost(exc) from None

    def open(self) -> None:
        """Open the port unless it is open (InstrumentGone when it cannot be opened)."""
        if self._closed:
            raise self._driver.error(InstrumentGone, "the driver is closed")
        if self._port is not None:
            return
        try:
            # pyserial's RFC 2217 client (a ser2net port) has no write timeout; its writes
            # go to a TCP socket and fail when the connection is gone.
            rfc2217 = self._driver.address.startswith("rfc2217://")
            self._port = serial.serial_for_url(
                self._driver.address,
                baudrate=self._baudrate,
                timeout=self._poll_s,
                write_timeout=None if rfc2217 else self._driver.timeout_s,
                exclusive=True,
            )
        except (serial.SerialException, OSError) as exc:
            raise self._driver.error(InstrumentGone, f"cannot open the port: {exc}") from None
        except ValueError as exc:
            raise self._driver.error(InstrumentError, f"bad port setting: {exc}") from None
        self._rx.clear()
        self._driver.transcript.note(f"port opened at {self._baudrate} baud")

    def write(self, data: bytes) -> None:
        """Send ``data``; thread-safe (an abort may be written while another call reads)."""
        with self._write_lock:
            port = self._require()
            try:
                port.write(data)
                self.last_activity = time.monotonic()
            except serial.SerialTimeoutException:
                raise self._driver.error(
                    InstrumentTimeout, f"write did not complete within {self._driver.timeout_s} s"
                ) from None
            except (serial.SerialException, OSError) as exc:
                raise self._lost(exc) from None

    def drain(self) -> None:
        """Wait until the operating system has sent everything written."""
        port = self._require()
        try:
            port.flush()
        except (serial.SerialException, OSError) as exc:
            raise self._lost(exc) from None

    def discard_input(self) -> bytes:
        """Drop what has arrived and not been read; returns it (for the transcript)."""
        dropped = bytes(self._rx)
        self._rx.clear()
        port = self._require()
        for _ in range(64):  # bounded: a device streaming without end cannot keep us here
            try:
                waiting = port.in_waiting
                if not waiting:
                    break
                dropped += port.read(waiting)
            except (serial.SerialException, OSError) as exc:
                raise self._lost(exc) from None
        return dropped

    def read_message(
        self,
        framer: Framer,
        *,
        timeout_s: float,
        idle_s: float | None = None,
        max_bytes: int = 4096,
        what: str = "reply",
    ) -> tuple[bytes, bytes]:
        """The next message ``framer`` finds, as ``(junk before it, message)``.

        ``framer(buffer)`` returns ``(start, end)`` of a complete message or None. Raises
        InstrumentTimeout when nothing arrived within ``timeout_s`` (or ``idle_s`` since the
        last byte), ProtocolViolation when bytes arrived but made no message (garbled,
        incomplete, too long), InstrumentGone when the port failed.
        """
        started = last = time.monotonic()
        while True:
            found = framer(bytes(self._rx))
            if found is not None:
                start, end = found
                junk, message = bytes(self._rx[:start]), bytes(self._rx[start:end])
                del self._rx[:end]
                return junk, message
            if len(self._rx) > max_bytes:
                got = bytes(self._rx)
                self._rx.clear()
                raise self._driver.error(
                    ProtocolViolation, f"{what} longer than {max_bytes} bytes: {escaped(got)}"
                )
            now = time.monotonic()
            if now - started >= timeout_s or (idle_s is not None and now - last >= idle_s):
                got = bytes(self._rx)
                self._rx.clear()
                if got:
                    raise self._driver.error(
                        ProtocolViolation, f"garbled or incomplete {what}: {escaped(got)}"
                    )
                waited = now - started
                raise self._driver.error(InstrumentTimeout, f"no {what} within {waited:.1f} s")
            chunk = self._read_chunk()
            if chunk:
                self._rx += chunk
                last = self.last_activity = time.monotonic()

    def close(self) -> None:
        """Close the port for good. Idempotent."""
        self._closed = True
        self._drop_port()

    def _require(self) -> serial.SerialBase:
        self.open()
        assert self._port is not None
        return self._port

    def _read_chunk(self) -> bytes:
        port = self._port
        if port is None:
            raise self._driver.error(InstrumentGone, "the port was closed")
        try:
            return port.read(max(1, min(port.in_waiting, 4096)))
        except (serial.SerialException, OSError, TypeError) as exc:
            # TypeError: pyserial's read on a port another thread just closed.
            raise self._lost(exc) from None

    def _lost(self, exc: BaseException) -> InstrumentError:
        self._drop_port()
        self._driver.transcript.note(f"port lost: {exc}")
        return self._driver.error(InstrumentGone, f"port lost: {exc}")

    def _drop_port(self) -> None:
        port, self._port = self._port, None
        self._rx.clear()
        if port is not None:
            # A port that is gone is closed as far as we are concerned.
            with contextlib.suppress(serial.SerialException, OSError):
                port.close()


# -- KPR/1 -----------------------------------------------------------------------------------

LINE_SPEED = 115200

_ERR = re.compile(r"ERR (\d+)(?: (.*))?")
_EVENT = re.compile(r"EVT (DOWN|UP) (\S+) t=(\d+)")
_DONE = re.compile(r"OK DONE (\d+)")
_IDN = re.compile(r"OK ([^,]*),([^,]*),([^,]*),(.*)")
_KEYS = re.compile(r"OK (\S+(?: \S+)*)")
_CFG = re.compile(r"OK HOLD=(\d+) GAP=(\d+)")
_STATUS = re.compile(r"OK (?:IDLE|BUSY (\d+)/(\d+))")
_PLAIN_OK = re.compile(r"OK")
_MAX_LINE = 1100  # the robot's longest line (1024) with margin


def _line_framer(buffer: bytes) -> tuple[int, int] | None:
    end = buffer.find(b"\n")
    return None if end < 0 else (0, end + 1)


@register
class Kpr1Keypad(Driver):
    """A KPR/1 keypad robot (role ``keypad``, bench name ``kpr1``).

    Options: ``baudrate`` (115200). Every line sent and received is in the transcript
    (events as ``event`` entries). After a timeout or a garbled reply the driver
    resynchronises with ``STATUS?`` before its next command (aborting a press sequence left
    running), so a late reply is never taken for the answer to a later command.
    """

    name = "kpr1"
    role = "keypad"

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 2.0,
        baudrate: int = LINE_SPEED,
        **options: Any,
    ) -> None:
        check_options(self.name, options)
        super().__init__(address, timeout_s=timeout_s, baudrate=baudrate)
        self._lock = threading.Lock()  # one command at a time
        self._state = threading.Lock()  # guards the flags below (never held while waiting)
        self._in_sync = True
        self._maybe_running = False  # a PRESS/TYPE was sent and its final line not yet seen
        self._abort_reply_pending = False  # an ABORT was sent and its OK not yet read
        self._idle = threading.Event()
        self._idle.set()
        self._timing: tuple[int, int] | None = None  # (hold_ms, gap_ms) the robot uses
        self._link = SerialLink(self, baudrate=baudrate)
        self._link.open()

    # -- roles.KeypadActuator -------------------------------------------------------------

    def identify(self) -> Identity:
        """``*IDN?`` -> manufacturer, model, serial, firmware."""
        with self._command():
            match, line = self._query("*IDN?", _IDN)
        manufacturer, model, serial_number, firmware = (g.strip() for g in match.groups())
        return Identity(manufacturer, model, serial_number, firmware, raw=line)

    def keys(self) -> tuple[str, ...]:
        """``KEYS?``: the key names the robot can press, in layout order."""
        with self._command():
            match, _ = self._query("KEYS?", _KEYS)
        return tuple(match.group(1).split())

    def configure(self, hold_ms: int, gap_ms: int) -> None:
        """Set the default hold and gap (``CFG HOLD``, ``CFG GAP``), verified with ``CFG?``."""
        for what, value in (("hold_ms", hold_ms), ("gap_ms", gap_ms)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{what} must be a positive whole number of ms, got {value!r}")
        with self._command():
            self._timing = None
            self._query(f"CFG HOLD {hold_ms}", _PLAIN_OK)
            self._query(f"CFG GAP {gap_ms}", _PLAIN_OK)
            hold, gap = self._read_timing()
        if (hold, gap) != (hold_ms, gap_ms):
            raise self.error(
                ProtocolViolation,
                f"asked for HOLD={hold_ms} GAP={gap_ms}, robot reports HOLD={hold} GAP={gap}",
            )

    def press(self, key: str, hold_ms: int | None = None) -> list[KeyEvent]:
        """``PRESS key [hold]``: one press; returns its event once the robot says DONE."""
        name = _key_name(key)
        if hold_ms is not None and (
            isinstance(hold_ms, bool) or not isinstance(hold_ms, int) or hold_ms <= 0
        ):
            raise ValueError(f"hold_ms must be a positive whole number of ms, got {hold_ms!r}")
        command = f"PRESS {name}" if hold_ms is None else f"PRESS {name} {hold_ms}"
        return self._actuate(command, [name], hold_ms)

    def type(self, keys: list[str]) -> list[KeyEvent]:
        """``TYPE k1 k2 ...``: press the keys in order; one event per press once DONE.

        Waits no longer than the robot takes (it reads until ``OK DONE``), and at most the
        keys' hold and gap in real time plus ``timeout_s``; a robot that goes quiet for
        longer than one press needs is a timeout. On a timeout or a garbled line the robot
        is told to ABORT (actuators released) before the error is raised.
        """
        names = [_key_name(key) for key in keys]
        if not names:
            raise ValueError("type() needs at least one key")
        return self._actuate("TYPE " + " ".join(names), names, None)

    def abort(self) -> None:
        """``ABORT``: stop a running press sequence, release every actuator, wait for OK.

        Safe to call from another thread while :meth:`type` or :meth:`press` runs: that call
        then raises :class:`CommandRefused` with code 17 (aborted).
        """
        with self._state:
            self._abort_reply_pending = True
        try:
            self._send("ABORT")
        except InstrumentError:
            with self._state:
                self._abort_reply_pending = False
            raise
        # A running press sequence reads the robot's final line and the ABORT's OK itself.
        self._idle.wait(self._abort_budget())
        if not self._lock.acquire(timeout=self._abort_budget()):
            raise self.error(InstrumentTimeout, "a command is still running after ABORT")
        try:
            if self._abort_reply_pending:
                self._await_abort_ok()
        finally:
            self._lock.release()

    def close(self) -> None:
        """ABORT a press sequence that may be running, then close the port. Idempotent."""
        try:
            if self._link.is_open and self._maybe_running:
                self.abort()
        except InstrumentError as exc:
            self.transcript.note(f"abort on close failed: {exc.reason}")
        finally:
            got = self._lock.acquire(timeout=self._abort_budget())
            try:
                self._link.close()
            finally:
                if got:
                    self._lock.release()

    # -- commands -------------------------------------------------------------------------

    def _command(self) -> _Exclusive:
        return _Exclusive(self)

    def _query(
        self, command: str, pattern: re.Pattern[str], *, skip_others: bool = False
    ) -> tuple[re.Match[str], str]:
        """Send one command and return its final reply, which must match ``pattern``.

        With ``skip_others`` (resynchronising), lines that do not match are late replies to
        earlier commands: they are skipped until the match or the timeout, which is longer
        because a device that was slow may still be finishing those replies.
        """
        self._discard()
        self._send(command)
        timeout = self._abort_budget() if skip_others else self.timeout_s
        deadline = time.monotonic() + timeout
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            line = self._read_line(remaining, what=f"reply to {command}", strict=not skip_others)
            match = pattern.fullmatch(line)
            if match is not None:
                return match, line
            if skip_others:
                self.transcript.note("late line skipped")
                continue
            if _EVENT.fullmatch(line):
                self.transcript.note("event outside a command of ours (another client?)")
                continue
            self._raise_if_err(line, command)
            raise self.error(
                ProtocolViolation, f"unexpected reply to {command}: {escaped(line.encode())}"
            )

    def _actuate(self, command: str, keys: list[str], hold_ms: int | None) -> list[KeyEvent]:
        with self._command():
            hold, gap = self._read_timing()
            if hold_ms is not None:
                hold = hold_ms
            budget = len(keys) * (hold + gap) / 1000 + self.timeout_s
            idle = max(hold, gap) / 1000 + self.timeout_s
            deadline = time.monotonic() + budget
            self._discard()
            with self._state:
                self._maybe_running = True
                self._idle.clear()
            try:
                self._send(command)
                return self._collect(command, keys, deadline, idle)
            except (InstrumentTimeout, ProtocolViolation) as exc:
                self._stop_after_fault(exc)
                raise
            finally:
                self._idle.set()

    def _collect(
        self, command: str, keys: list[str], deadline: float, idle: float
    ) -> list[KeyEvent]:
        down: list[tuple[str, float]] = []
        events: list[KeyEvent] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.error(InstrumentTimeout, f"{command.split()[0]} did not finish in time")
            line = self._read_line(min(idle, remaining), what=f"event or end of {command}")
            event = _EVENT.fullmatch(line)
            if event is not None:
                edge, key, t_ms = event.group(1), event.group(2), float(event.group(3))
                if edge == "DOWN":
                    down.append((key, t_ms))
                else:
                    events.append(self._release(down, key, t_ms))
                continue
            if line == "OK" and self._abort_reply_pending:
                # ABORT overtook the command: the robot was idle, then ran the command.
                with self._state:
                    self._abort_reply_pending = False
                continue
            done = _DONE.fullmatch(line)
            if done is not None:
                self._finished()
                return self._check_presses(keys, events, down, int(done.group(1)))
            err = _ERR.fullmatch(line)
            if err is not None:
                self._finished()
            self._raise_if_err(line, command)
            raise self.error(
                ProtocolViolation, f"unexpected line during {command.split()[0]}: {line!r}"
            )

    def _release(self, down: list[tuple[str, float]], key: str, t_ms: float) -> KeyEvent:
        for index, (pressed, at) in enumerate(down):
            if pressed == key:
                del down[index]
                return KeyEvent(key, at, t_ms)
        raise self.error(ProtocolViolation, f"robot released {key}, which it never pressed")

    def _check_presses(
        self,
        keys: list[str],
        events: list[KeyEvent],
        down: list[tuple[str, float]],
        done: int,
    ) -> list[KeyEvent]:
        pressed = [event.key for event in events]
        if down or done != len(events) or [k.upper() for k in pressed] != [k.upper() for k in keys]:
            raise self.error(
                ProtocolViolation,
                f"robot reported DONE {done} after pressing {pressed} (asked: {keys}"
                + (f"; still down: {[k for k, _ in down]}" if down else "")
                + ")",
            )
        return events

    def _finished(self) -> None:
        """The final line of a press sequence arrived; read the ABORT's OK if one is owed."""
        with self._state:
            self._maybe_running = False
            owed = self._abort_reply_pending
        if owed:
            self._await_abort_ok()

    def _await_abort_ok(self) -> None:
        """Read up to the plain ``OK`` that answers ABORT (a final line may come first)."""
        deadline = time.monotonic() + self._abort_budget()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.error(InstrumentTimeout, "no OK to ABORT")
            line = self._read_line(remaining, what="reply to ABORT", strict=False)
            if line == "OK":
                break
        with self._state:
            self._abort_reply_pending = False
            self._maybe_running = False

    def _stop_after_fault(self, exc: InstrumentError) -> None:
        """A press sequence failed on our side: stop the robot so no actuator stays on."""
        self.transcript.note(f"{exc.reason}: sending ABORT")
        try:
            with self._state:
                self._abort_reply_pending = True
            self._send("ABORT")
            self._await_abort_ok()
        except InstrumentError as abort_exc:
            self.transcript.note(f"ABORT after the fault failed: {abort_exc.reason}")

    def _read_timing(self) -> tuple[int, int]:
        if self._timing is None:
            match, _ = self._query("CFG?", _CFG)
            self._timing = int(match.group(1)), int(match.group(2))
        return self._timing

    def _resync(self) -> None:
        """After a fault: drop late replies, and stop a press sequence still running."""
        self.transcript.note("resynchronising")
        self._timing = None  # a robot that was reset or replugged is back at its defaults
        with self._state:
            self._abort_reply_pending = False
        match, _ = self._query("STATUS?", _STATUS, skip_others=True)
        if match.group(1) is not None:
            with self._state:
                self._abort_reply_pending = True
            self._send("ABORT")
            self._await_abort_ok()
        with self._state:
            self._maybe_running = False
        self._in_sync = True

    def _abort_budget(self) -> float:
        return self.timeout_s * 2

    # -- lines ----------------------------------------------------------------------------

    def _send(self, line: str) -> None:
        self.transcript.tx(line)
        self._link.write(line.encode("ascii") + b"\n")

    def _read_line(self, timeout_s: float, *, what: str, strict: bool = True) -> str:
        """The next line; a garbled one raises ProtocolViolation unless not ``strict``."""
        _, raw = self._link.read_message(
            _line_framer, timeout_s=timeout_s, max_bytes=_MAX_LINE, what=what
        )
        line = raw.rstrip(b"\r\n").decode("ascii", errors="replace")
        self.transcript.record("event" if line.startswith("EVT ") else "rx", line)
        if strict and not line.isprintable():
            raise self.error(ProtocolViolation, f"garbled line: {escaped(raw)}")
        return line

    def _discard(self) -> None:
        dropped = self._link.discard_input()
        if dropped:
            self.transcript.note(f"discarded before the command: {escaped(dropped, 200)}")

    def _raise_if_err(self, line: str, command: str) -> None:
        err = _ERR.fullmatch(line)
        if err is None:
            if line.startswith("ERR"):
                raise self.error(ProtocolViolation, f"malformed error line: {line!r}")
            return
        code, text = err.group(1), err.group(2) or ""
        raise CommandRefused(
            f"{command.split()[0]} refused: ERR {code} {text}".rstrip(),
            code=code,
            text=text,
            role=self.role,
            address=self.address,
        )


class _Exclusive:
    """One command at a time; resync first if the last one left the link out of step."""

    def __init__(self, driver: Kpr1Keypad) -> None:
        self._driver = driver

    def __enter__(self) -> None:
        d = self._driver
        if not d._lock.acquire(timeout=d._abort_budget() + d.timeout_s):
            raise d.error(InstrumentTimeout, "another command is still running")
        try:
            if not d._in_sync:
                d._resync()
        except BaseException:
            d._lock.release()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        d = self._driver
        if isinstance(exc, InstrumentError):
            d.transcript.note(f"{type(exc).__name__}: {exc.reason}")
            if not isinstance(exc, CommandRefused):
                d._in_sync = False
        d._lock.release()


def _key_name(key: str) -> str:
    """A key name as KPR/1 carries it: one word of printable ASCII."""
    if not isinstance(key, str) or not key or not key.isascii() or not key.isprintable():
        raise ValueError(f"key name {key!r} is not printable ASCII")
    if any(ch.isspace() for ch in key):
        raise ValueError(f"key name {key!r} contains white space")
    if len(key) > 1 and key.isdigit():
        raise ValueError(f"key name {key!r}: give digits one key each (list('1234'))")
    return key
