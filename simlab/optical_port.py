"""The meter's optical port: an IEC 62056-21 mode C server on a pty.

Sign-on and readout, as a mode C meter does them::

    client, 300 baud:  /?!<CR><LF>            or /?<address>!<CR><LF>
    meter,  300 baud:  /XXXZ<ident><CR><LF>   (Z: highest baud, '0'=300 .. '5'=9600, '6'=19200)
    client, 300 baud:  <ACK>0ZY<CR><LF>       (V='0' normal protocol, Z: chosen baud <= the
                                               meter's, Y='0' readout / '1' programming)
    meter,  Z baud:    <STX>addr(value*unit)<CR><LF>...!<CR><LF><ETX><BCC>     (Y='0')
                       <SOH>P0<STX>(<device address>)<ETX><BCC>                (Y='1')

BCC is the XOR of every byte after the first SOH or STX up to and including ETX.

Programming mode (client frames ``<SOH>cmd<STX>data<ETX><BCC>``, meter replies):

* ``P1 (password)`` -> ACK if the meter accepts it, else ``<STX>(ERR03)<ETX><BCC>``;
* ``W1 address(value)`` -> what the meter's ``write_register`` says: ACK, NAK, or
  ``<STX>(<text>)<ETX><BCC>``; the password passed on is the last one P1 accepted (or None);
* ``R1 address()`` -> ``<STX>address(value*unit)<ETX><BCC>`` from the readout, or ``(ERR04)``;
* ``B0`` (``<SOH>B0<ETX><BCC>``) ends the session, no reply;
* a frame with a bad BCC -> NAK (repeat); a NAK from the client -> the meter repeats its last
  message; any other command -> ``(ERR01)``; a data set that is not ``address(value)`` ->
  ``(ERR02)``.

Error texts come from one table, :class:`simlab.meter_io.PortError`: the port itself sends
ERR01 (command not supported), ERR02 (malformed data set), ERR03 (password refused) and
ERR04 (no such register); the meter's refusals of a write use the same table. A wrong
address in ``/?<address>!``, a V other than '0', a Z above the meter's or a Y other than
'0'/'1' get no answer: the meter goes back to sign-on.

Time-outs, on the :class:`~simlab.clock.SimClock`: more than ``char_timeout_s`` (1.5 s)
between characters of a message, or between the identification and the ACK, returns the
meter to sign-on; in programming mode ``session_timeout_s`` (120 s, the standard allows
60-120 s) without a message does. Because a client runs in real time however fast the clock
runs, a time-out also needs ``min_real_timeout_s`` of real time to pass.

Line speed and parity. The meter listens and speaks at 300 baud until the ACK, then at Z's
rate until the session ends. A reply goes out garbled (all 0x00) when the client's port is
not set to the meter's current speed (see :mod:`simlab.pty`), so a client that forgets the
switch reads garbage, as on a real optical head. After the ACK the meter waits up to
``reaction_window_s`` for the client to switch, then answers. A pty carries no parity bit:
the meter sends plain 7-bit ASCII (what a UART set to 7E1 hands its program) and strips bit
7 of every byte it receives, so a client set to 7E1 and one that sends parity in bit 7 of
8N1 bytes both work.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from enum import Enum

from simlab.clock import SimClock
from simlab.faults import TransportFaults
from simlab.meter_io import DataLine, MeterOpticalPort, PortError, WriteStatus
from simlab.pty import PtyDevice

SOH, STX, ETX, ACK, NAK = 0x01, 0x02, 0x03, 0x06, 0x15
CRLF = b"\r\n"
SIGN_ON_BAUD = 300
MODE_C_BAUD = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}

_MAX_SIGN_ON = 40  # "/?" + 32-character address + "!\r\n", with margin
_MAX_FRAME = 512
_DATA_SET = re.compile(r"([^()]+)\(([^()]*)\)")
_PASSWORD = re.compile(r"\(([^()]*)\)")
_IDENT = re.compile(r"[A-Za-z]{3}[0-6][\x21-\x7e](?:[\x20-\x7e]{0,15})")


class _State(Enum):
    SIGN_ON = "sign-on"
    AWAIT_ACK = "await-ack"
    PROGRAMMING = "programming"


def bcc(data: bytes) -> int:
    """IEC 62056-21 block check character: XOR of ``data``."""
    check = 0
    for byte in data:
        check ^= byte
    return check


def identification_baud(ident: str) -> int:
    """The highest baud rate a ``XXXZIdent`` identification offers; ValueError if malformed."""
    if not _IDENT.fullmatch(ident) or "/" in ident or "!" in ident:
        raise ValueError(f"identification {ident!r} is not XXXZ<ident> (IEC 62056-21)")
    return MODE_C_BAUD[ident[3]]


class OpticalPort(PtyDevice):
    """The meter's IEC 62056-21 mode C optical port on a pty."""

    def __init__(
        self,
        meter: MeterOpticalPort,
        clock: SimClock,
        *,
        link: str | None = None,
        faults: TransportFaults | None = None,
        char_timeout_s: float = 1.5,
        session_timeout_s: float = 120.0,
        reaction_window_s: float = 1.5,
        min_real_timeout_s: float = 0.5,
        powered: Callable[[], bool] | None = None,
    ) -> None:
        self._meter = meter
        self._powered = powered or (lambda: True)
        self._clock = clock
        self._char_timeout_s = char_timeout_s
        self._session_timeout_s = session_timeout_s
        self._reaction_window_s = reaction_window_s
        self._min_real_s = min_real_timeout_s
        self._state = _State.SIGN_ON
        self._buf = bytearray()
        self._max_baud_char = "0"
        self._password: str | None = None
        self._last_sent = b""
        self._last_sim = clock.now()
        self._last_real = time.monotonic()
        self._closed = threading.Event()
        super().__init__(name="iec62056", baudrate=SIGN_ON_BAUD, link=link, faults=faults)

    @property
    def state(self) -> str:
        """ "sign-on", "await-ack" or "programming": set before the reply that enters it is sent."""
        return self._state.value

    def close(self) -> None:
        """Close the pty and join its thread. Idempotent."""
        self._closed.set()  # first: a wait for the client's baud switch ends now
        super().close()

    # -- receiving (reader thread) ----------------------------------------------------------

    def _on_bytes(self, data: bytes) -> None:
        if not self._powered():
            self._to_sign_on()  # a meter without supply hears nothing and keeps no session
            return
        session_timeout_s = {
            _State.PROGRAMMING: self._session_timeout_s,
            _State.AWAIT_ACK: self._char_timeout_s,
        }.get(self._state)
        if session_timeout_s is not None and self._expired(session_timeout_s):
            self._to_sign_on()
        elif self._buf and self._expired(self._char_timeout_s):
            self._buf.clear()  # a message left half-sent is dropped
        self._touch()
        self._buf += bytes(byte & 0x7F for byte in data)
        while self._buf and self._step():
            pass

    def _step(self) -> bool:
        """Handle what the buffer holds; False when it needs more bytes."""
        if self._state is _State.SIGN_ON:
            return self._sign_on()
        if self._state is _State.AWAIT_ACK:
            return self._option_select()
        return self._programming_frame()

    def _sign_on(self) -> bool:
        start = self._buf.find(b"/")
        if start < 0:
            self._buf.clear()
            return False
        del self._buf[:start]
        end = self._buf.find(b"!\r\n")
        if end < 0:
            if len(self._buf) > _MAX_SIGN_ON:
                del self._buf[:1]  # not a sign-on; look for the next '/'
                return True
            return False
        request = bytes(self._buf[:end])
        del self._buf[: end + 3]
        if not request.startswith(b"/?"):
            return True
        address = request[2:].decode("ascii", errors="replace")
        if address and address != self._meter.device_address:
            return True
        ident = self._meter.identification()
        identification_baud(ident)
        # State first, reply second: whoever hears the reply finds the port already in it.
        self._max_baud_char = ident[3]
        self._state = _State.AWAIT_ACK
        self._send(b"/" + ident.encode("ascii") + CRLF)
        return True

    def _option_select(self) -> bool:
        first = self._buf[0]
        if first == ord("/"):
            self._state = _State.SIGN_ON  # the client started over
            return True
        if first != ACK:
            del self._buf[:1]
            return True
        if len(self._buf) < 6:
            return False
        message = bytes(self._buf[:6])
        del self._buf[:6]
        protocol, baud_char, mode = chr(message[1]), chr(message[2]), chr(message[3])
        if (
            message[4:] != CRLF
            or protocol != "0"
            or baud_char not in MODE_C_BAUD
            or baud_char > self._max_baud_char
            or mode not in "01"
        ):
            self._to_sign_on()
            return True
        self._switch_speed(MODE_C_BAUD[baud_char])
        if mode == "0":
            payload = "".join(line.render() + "\r\n" for line in self._meter.readout()) + "!\r\n"
            # The session ends with this block; the line drops back to 300 baud once it is out.
            self._state = _State.SIGN_ON
            self._send_block(payload)
            self._to_sign_on()
        else:
            self._password = None
            self._state = _State.PROGRAMMING
            self._send_block(f"({self._meter.device_address})", command="P0")
        return True

    def _programming_frame(self) -> bool:
        first = self._buf[0]
        if first == NAK:
            del self._buf[:1]
            self._send(self._last_sent)
            return True
        if first != SOH:
            del self._buf[:1]
            return True
        etx = self._buf.find(bytes([ETX]))
        if etx < 0:
            if len(self._buf) > _MAX_FRAME:
                self._buf.clear()
            return False
        if len(self._buf) < etx + 2:
            return False  # the BCC has not arrived yet
        body, check = bytes(self._buf[1 : etx + 1]), self._buf[etx + 1]
        del self._buf[: etx + 2]
        if bcc(body) != check:
            self._send(bytes([NAK]))
            return True
        self._command(body[:2].decode("ascii", errors="replace"), body[2:-1])
        return True

    def _command(self, command: str, rest: bytes) -> None:
        if command == "B0":
            self._to_sign_on(keep_buffer=True)  # a sign-on may follow in the same read
            return
        if command not in ("P1", "W1", "R1"):
            self._send_error(PortError.UNSUPPORTED)
            return
        if rest[:1] != bytes([STX]):
            self._send_error(PortError.MALFORMED)
            return
        text = rest[1:].decode("ascii", errors="replace")
        if command == "P1":
            password = _PASSWORD.fullmatch(text)
            if password is None:
                self._send_error(PortError.MALFORMED)
            elif self._meter.check_password(password.group(1)):
                self._password = password.group(1)
                self._send(bytes([ACK]))
            else:
                self._password = None
                self._send_error(PortError.PASSWORD)
            return
        match = _DATA_SET.fullmatch(text)
        if match is None:
            self._send_error(PortError.MALFORMED)
            return
        address, value = match.group(1), match.group(2)
        if command == "R1":
            line = _find(self._meter.readout(), address)
            if line is None:
                self._send_error(PortError.UNKNOWN_REGISTER)
            else:
                self._send_block(line.render())
            return
        result = self._meter.write_register(address, value, self._password)
        if result.status is WriteStatus.ACK:
            self._send(bytes([ACK]))
        elif result.status is WriteStatus.NAK:
            self._send(bytes([NAK]))
        else:
            self._send_error(result.text)

    # -- sending ----------------------------------------------------------------------------

    def _send_block(self, payload: str, command: str | None = None) -> None:
        """``<STX>payload<ETX><BCC>``, or ``<SOH>command<STX>payload<ETX><BCC>``."""
        data = payload.encode("ascii") + bytes([ETX])
        if command is None:
            self._send(bytes([STX]) + data + bytes([bcc(data)]))
        else:
            body = command.encode("ascii") + bytes([STX]) + data
            self._send(bytes([SOH]) + body + bytes([bcc(body)]))

    def _send_error(self, text: str) -> None:
        self._send_block(f"({text})")

    def _send(self, data: bytes) -> None:
        self._last_sent = data
        self._endpoint.write(data)
        self._touch()

    def _switch_speed(self, baud: int) -> None:
        """Go to ``baud``; wait (bounded) for the client to switch its port too."""
        self._endpoint.baudrate = baud
        deadline = time.monotonic() + max(
            self._clock.to_real(self._reaction_window_s), self._min_real_s
        )
        while self._endpoint.client_baudrate() != baud and time.monotonic() < deadline:
            if self._closed.wait(0.002):
                return

    # -- state ------------------------------------------------------------------------------

    def _on_hangup(self) -> None:
        self._to_sign_on()

    def _to_sign_on(self, keep_buffer: bool = False) -> None:
        self._state = _State.SIGN_ON
        if not keep_buffer:
            self._buf.clear()
        self._password = None
        self._endpoint.baudrate = SIGN_ON_BAUD

    def _touch(self) -> None:
        self._last_sim = self._clock.now()
        self._last_real = time.monotonic()

    def _expired(self, timeout_s: float) -> bool:
        return (
            self._clock.now() - self._last_sim > timeout_s
            and time.monotonic() - self._last_real > self._min_real_s
        )


def _find(lines: list[DataLine], address: str) -> DataLine | None:
    return next((line for line in lines if line.address == address), None)
