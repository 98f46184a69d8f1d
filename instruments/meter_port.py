"""IEC 62056-21 mode C driver for a meter's optical port (role ``port``).

What goes over the wire (the standard's mode C; 7E1 frames, sent 8N1 with even parity in
bit 7 by this driver so that any port, pty or URL carries them)::

    300 baud  ->  /?<device address>!<CR><LF>
    300 baud  <-  /XXXZ<ident><CR><LF>            XXX manufacturer, Z highest baud ('0'..'6')
    (wait the reaction time: 200 ms, 20 ms when the third letter of XXX is lower case)
    300 baud  ->  <ACK>0Z'Y<CR><LF>               Z' = min(Z, max_baud), Y '0' readout, '1'
                                                  programming; then switch to Z' once sent
    readout   <-  <STX>addr(value*unit)<CR><LF>...!<CR><LF><ETX><BCC>
    program   <-  <SOH>P0<STX>(...)<ETX><BCC>
              ->  <SOH>P1<STX>(password)<ETX><BCC>      <- <ACK> | <STX>(ERRnn)<ETX><BCC>
              ->  <SOH>W1<STX>register(digits)<ETX><BCC> <- <ACK> | <NAK> | (ERRnn)
              ->  <SOH>R1<STX>address()<ETX><BCC>       <- <STX>address(value*unit)<ETX><BCC>
              ->  <SOH>B0<ETX><BCC>                     (end of session, back to 300 baud)

BCC is the XOR of the 7-bit characters after SOH/STX up to and including ETX; a bad BCC is a
:class:`~instruments.base.ProtocolViolation`. Received bytes are stripped to 7 bits; when a
message carries parity (any byte with bit 7 set) every byte must have even parity, else the
message is a ProtocolViolation too (a line that delivers plain 7-bit characters, as a UART in
7E1 mode does, is taken as it comes and protected by the BCC alone).

Retries are the caller's: the driver repeats only what the standard itself repeats in
programming mode (one repeat of a frame the meter NAKs; one NAK asking the meter to repeat a
reply with a bad BCC) and notes every repeat, and every retry of an operation that failed
before, in the transcript. The password is a secret of the transcript: it and the BCC of the
P1 frame (which would leak bits of it) never appear there.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from instruments.base import (
    Driver,
    Identity,
    InstrumentError,
    ProtocolViolation,
    register,
)
from instruments.keypad import CommandRefused, Framer, SerialLink, check_options, escaped
from instruments.roles import Reading

SOH, STX, ETX, ACK, NAK = 0x01, 0x02, 0x03, 0x06, 0x15
SIGN_ON_BAUD = 300
BAUD_CHARS = {"0": 300, "1": 600, "2": 1200, "3": 2400, "4": 4800, "5": 9600, "6": 19200}
REACTION_S = 0.2  # minimum time between a message received and the next one sent
SHORT_REACTION_S = 0.02  # the same for a meter whose flag's third letter is lower case
CHAR_TIMEOUT_S = 1.5  # the standard's inter-character time-out: after it a meter starts over
MAX_READOUT = 16384

# The standard allows 16 identification characters; some meters send more.
_IDENT = re.compile(r"/([A-Za-z]{3})([\x21-\x7e])([\x20-\x7e]{0,32})\r\n")
_DATA_SET = re.compile(r"([^()]*)\(([^()]*)\)")
_FORBIDDEN = frozenset("()*/!\r\n\x01\x02\x03\x06\x15")


class DamagedMessage(ProtocolViolation):
    """A message damaged on the line: its BCC or a character's parity is wrong."""


@dataclass(frozen=True)
class Identification:
    """The meter's answer to sign-on: ``/XXXZ<ident>``."""

    manufacturer: str
    baud_char: str
    ident: str
    raw: str

    @property
    def max_baud(self) -> int:
        return BAUD_CHARS[self.baud_char]

    @property
    def reaction_s(self) -> float:
        return SHORT_REACTION_S if self.manufacturer[2].islower() else REACTION_S


def bcc(data: bytes) -> int:
    """IEC 62056-21 block check character: XOR of the 7-bit characters."""
    check = 0
    for byte in data:
        check ^= byte & 0x7F
    return check


def with_parity(data: bytes) -> bytes:
    """7-bit characters with even parity in bit 7 (a 7E1 frame sent as 8N1)."""
    out = bytearray()
    for byte in data:
        byte &= 0x7F
        out.append(byte | 0x80 if bin(byte).count("1") % 2 else byte)
    return bytes(out)


def parse_readout(body: str) -> dict[str, Reading]:
    """The data sets of a readout block's body (between STX and ETX), by address.

    Data sets without an address continue the address before them; they and repeated
    addresses are keyed ``address#2``, ``address#3`` … ValueError for a malformed body.
    """
    if not body.endswith("!\r\n"):
        raise ValueError("readout does not end with '!'")
    text = body[:-3]
    lines = text.split("\r\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif text:
        raise ValueError("last data line does not end with CR LF")
    readings: dict[str, Reading] = {}
    address = ""
    for line in lines:
        sets = list(_DATA_SET.finditer(line))
        if not sets or "".join(m.group(0) for m in sets) != line:
            raise ValueError(f"malformed data line {line!r}")
        for match in sets:
            if match.group(1):
                address = match.group(1)
            elif not address:
                raise ValueError(f"data set without an address: {line!r}")
            key, n = address, 1
            while key in readings:
                n += 1
                key = f"{address}#{n}"
            readings[key] = _reading(address, match.group(2))
    return readings


def _reading(address: str, value: str) -> Reading:
    text, star, unit = value.rpartition("*")
    if not star:
        return Reading(address, value, None)
    return Reading(address, text, unit or None)


def _stripped(data: bytes) -> bytes:
    return bytes(b & 0x7F for b in data)


def _ident_framer(buffer: bytes) -> tuple[int, int] | None:
    data = _stripped(buffer)
    start = data.find(b"/")
    if start < 0:
        return None
    end = data.find(b"\r\n", start)
    return None if end < 0 else (start, end + 2)


def _block_framer(buffer: bytes) -> tuple[int, int] | None:
    """``STX|SOH ... ETX BCC``, or a lone ACK/NAK, after any junk."""
    data = _stripped(buffer)
    for index, byte in enumerate(data):
        if byte in (ACK, NAK):
            return index, index + 1
        if byte in (STX, SOH):
            etx = data.find(bytes([ETX]), index)
            if etx < 0 or etx + 1 >= len(data):
                return None
            return index, etx + 2
    return None


def _check_text(what: str, value: str, *, allow_empty: bool = True, limit: int = 128) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string (quote it in YAML), got {value!r}")
    if (not value and not allow_empty) or len(value) > limit:
        raise ValueError(f"{what} {value!r} must be 1..{limit} characters")
    if not value.isascii() or not value.isprintable() or set(value) & _FORBIDDEN:
        raise ValueError(f"{what} {value!r} has characters IEC 62056-21 forbids")
    return value


@register
class Iec62056ModeC(Driver):
    """A meter's optical port, IEC 62056-21 mode C (bench name ``iec62056-21``).

    Options: ``password`` (P1 password for programming mode; a transcript secret),
    ``token_register`` (the register a token is written to, from the DUT profile),
    ``device_address`` (sent in the sign-on; empty: any meter), ``max_baud`` (cap on the
    baud rate the meter offers; ``socket://`` links cannot switch speed: use 300).
    """

    name = "iec62056-21"
    role = "port"

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 2.0,
        password: str | None = None,
        token_register: str | None = None,
        device_address: str = "",
        max_baud: int | None = None,
        **options: Any,
    ) -> None:
        check_options(self.name, options)
        if password is not None:
            _check_text("password", password, allow_empty=False)
        if token_register is not None:
            _check_text("token_register", token_register, allow_empty=False)
        _check_text("device_address", device_address, limit=32)
        if max_baud is not None and max_baud not in BAUD_CHARS.values():
            allowed = ", ".join(str(b) for b in BAUD_CHARS.values())
            raise ValueError(f"max_baud {max_baud!r} is not a mode C rate ({allowed})")
        super().__init__(
            address,
            timeout_s=timeout_s,
            token_register=token_register,
            device_address=device_address,
            max_baud=max_baud,
        )
        self._password = password
        if password:
            self.transcript.add_secret(password)
        self.token_register = token_register
        self.device_address = device_address
        self.max_baud = max_baud
        self.last_identification: Identification | None = None
        self._lock = threading.Lock()
        self._last_rx = 0.0
        self._quiet_until = 0.0
        self._session_open = False  # the meter answered a sign-on and may await more
        self._failed: dict[str, str] = {}
        self._link = SerialLink(self, baudrate=SIGN_ON_BAUD)
        self._link.open()

    # -- roles.MeterPort ------------------------------------------------------------------

    def identify(self) -> Identity:
        """Sign on and read out: the identification line names maker and type; serial and
        firmware come from the readout's C.1.0 and 0.2.0 when the meter has them."""
        with self._operation("identify"):
            ident = self._sign_on()
            readings = self._readout_after(ident)
        serial = readings.get("C.1.0")
        firmware = readings.get("0.2.0")
        return Identity(
            manufacturer=ident.manufacturer,
            model=ident.ident,
            serial=serial.value if serial else "",
            firmware=firmware.value if firmware else "",
            raw=ident.raw,
        )

    def readout(self) -> dict[str, Reading]:
        """Mode C data readout, ``{address: Reading}``, BCC and parity checked."""
        with self._operation("readout"):
            return self._readout_after(self._sign_on())

    def write_token(self, digits: str) -> None:
        """Programming mode: P1 password, ``W1 <token_register>(digits)``, B0.

        ACK: done. NAK: the frame is repeated once, a second NAK is :class:`CommandRefused`
        (code ``NAK``). ``(ERRnn)``: CommandRefused with code ``ERRnn``.
        """
        if not (isinstance(digits, str) and digits and digits.isascii() and digits.isdigit()):
            raise ValueError(f"token {digits!r} is not a string of digits")
        if self.token_register is None:
            raise self.error(InstrumentError, "no token_register configured for this port")
        with self._operation("write_token"), self._programming():
            reply = self._exchange("W1", f"{self.token_register}({digits})")
            self._expect_ack("W1", reply)

    def read_register(self, address: str) -> Reading:
        """Programming mode ``R1 address()``: one register, as the meter answers it."""
        _check_text("address", address, allow_empty=False)
        with self._operation("read_register"):
            with self._programming():
                data = self._data_of("R1", self._exchange("R1", f"{address}()"))
            match = _DATA_SET.fullmatch(data)
            if match is None or match.group(1) != address:
                raise self.error(ProtocolViolation, f"R1 {address}: unexpected answer {data!r}")
            return _reading(address, match.group(2))

    def close(self) -> None:
        """Close the port. Idempotent."""
        got = self._lock.acquire(timeout=self.timeout_s * 4)
        try:
            self._link.close()
        finally:
            if got:
                self._lock.release()

    # -- sessions -------------------------------------------------------------------------

    @contextmanager
    def _operation(self, name: str) -> Iterator[None]:
        """One public call: exclusive, retries noted, failures leave the line at 300 baud."""
        if not self._lock.acquire(timeout=self.timeout_s * 4):
            raise self.error(InstrumentError, "another call on this port is still running")
        try:
            previous = self._failed.pop(name, None)
            if previous is not None:
                self.transcript.note(f"{name}: retry after {previous}")
            try:
                yield
            except InstrumentError as exc:
                self._failed[name] = f"{type(exc).__name__}: {exc.reason}"
                self.transcript.note(f"{name} failed: {type(exc).__name__}: {exc.reason}")
                if self._session_open:
                    # The meter may be waiting for our next message: let it time out first.
                    self._quiet_until = self._link.last_activity + CHAR_TIMEOUT_S
                raise
        finally:
            with suppress(InstrumentError):
                if self._link.is_open:
                    self._link.baudrate = SIGN_ON_BAUD
            self._lock.release()

    def _sign_on(self) -> Identification:
        wait = self._quiet_until - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self._session_open = False  # by now a meter left mid-session has started over
        self._last_rx = 0.0
        self._link.baudrate = SIGN_ON_BAUD
        self._discard()
        self._send(f"/?{self.device_address}!\r\n".encode("ascii"))
        try:
            raw = self._receive(
                _ident_framer,
                timeout_s=self.timeout_s + 40 * 10 / SIGN_ON_BAUD,
                max_bytes=256,
                what="identification",
            )
        except ProtocolViolation:
            self._session_open = True  # the meter answered something: it may await an ACK
            raise
        text = raw.decode("ascii")
        match = _IDENT.fullmatch(text)
        if match is None:
            raise self.error(ProtocolViolation, f"malformed identification {escaped(raw)}")
        flag, baud_char, ident = match.groups()
        if baud_char not in BAUD_CHARS:
            raise self.error(
                ProtocolViolation, f"identification {text.strip()!r} offers no mode C baud rate"
            )
        self._session_open = True
        found = Identification(flag, baud_char, ident, text.rstrip("\r\n"))
        self.last_identification = found
        return found

    def _select(self, ident: Identification, mode: str) -> None:
        """Send the option select (ACK 0 Z Y) and switch to Z once it has left the port."""
        baud = ident.max_baud if self.max_baud is None else min(ident.max_baud, self.max_baud)
        baud_char = next(c for c, b in BAUD_CHARS.items() if b == baud)
        message = bytes([ACK]) + f"0{baud_char}{mode}\r\n".encode("ascii")
        self._pause(ident)
        sent_at = time.monotonic()
        self._send(message)
        self._link.drain()
        # A USB adapter may still hold bytes after the drain: wait their time on the line.
        on_line = len(message) * 10 / SIGN_ON_BAUD - (time.monotonic() - sent_at)
        if on_line > 0:
            time.sleep(on_line)
        if baud != SIGN_ON_BAUD:
            self._link.baudrate = baud
            self.transcript.note(f"switched to {baud} baud")

    def _readout_after(self, ident: Identification) -> dict[str, Reading]:
        self._select(ident, "0")
        reply = self._receive(
            _block_framer,
            timeout_s=self.timeout_s + MAX_READOUT * 10 / self._link.baudrate,
            max_bytes=MAX_READOUT,
            what="readout",
            ends_session=True,
        )
        body = self._block_body("readout", reply, STX)
        try:
            return parse_readout(body)
        except ValueError as exc:
            raise self.error(ProtocolViolation, f"readout: {exc}") from None

    @contextmanager
    def _programming(self) -> Iterator[None]:
        """Sign on in programming mode, send the password, and end with B0 whatever happens."""
        ident = self._sign_on()
        self._select(ident, "1")
        try:
            opening = self._receive_reply("password request (P0)")
            if opening[:1] != bytes([SOH]) or opening[1:3] != b"P0":
                raise self.error(
                    ProtocolViolation, f"expected P0 after option select, got {escaped(opening)}"
                )
            self._block_body("P0", opening, SOH)
            if self._password is not None:
                reply = self._exchange("P1", f"({self._password})", secret=True)
                self._expect_ack("P1", reply)
            yield
        except CommandRefused:
            self._end_session(ident)
            self._session_open = False  # refused, but in step: B0 ends the session
            raise
        except BaseException:
            self._end_session(ident)  # may not get through: the session counts as open
            raise
        else:
            self._end_session(ident)
            self._session_open = False

    def _end_session(self, ident: Identification) -> None:
        """B0, best effort: a meter left in programming mode ignores sign-ons until it
        times out."""
        with suppress(InstrumentError):
            self._pause(ident)
            frame = b"B0" + bytes([ETX])
            self._send(bytes([SOH]) + frame + bytes([bcc(frame)]))
            self._link.drain()
            time.sleep((len(frame) + 1) * 10 / self._link.baudrate)
            # The meter needs its reaction time to leave programming mode and go back to
            # 300 baud: a sign-on sent sooner may be lost.
            self._quiet_until = max(self._quiet_until, time.monotonic() + ident.reaction_s)

    def _exchange(self, command: str, data: str, *, secret: bool = False) -> bytes:
        """Send ``SOH command STX data ETX BCC``; the meter's reply (ACK, NAK or a block).

        A NAK gets the frame repeated once; a reply with a bad BCC gets one NAK back, which
        asks the meter to repeat it.
        """
        body = command.encode("ascii") + bytes([STX]) + data.encode("ascii") + bytes([ETX])
        frame = bytes([SOH]) + body + bytes([bcc(body)])
        ident = self.last_identification
        assert ident is not None
        repeated = asked_again = False
        self._pause(ident)
        self._send(frame, secret=secret)
        while True:
            try:
                reply = self._receive_reply(f"reply to {command}")
            except DamagedMessage as exc:
                if asked_again:
                    raise
                asked_again = True
                self.transcript.note(f"{exc.reason}: asking the meter to repeat (NAK)")
                self._pause(ident)
                self._send(bytes([NAK]))
                continue
            if reply == bytes([NAK]):
                if repeated:
                    raise CommandRefused(
                        f"meter refused {command} twice (NAK)",
                        code="NAK",
                        role=self.role,
                        address=self.address,
                    )
                repeated = True
                self.transcript.note(f"meter answered NAK: repeating {command}")
                self._pause(ident)
                self._send(frame, secret=secret)
                continue
            return reply

    def _expect_ack(self, command: str, reply: bytes) -> None:
        if reply == bytes([ACK]):
            return
        self._data_of(command, reply)  # raises CommandRefused for (ERRnn)
        raise self.error(ProtocolViolation, f"{command}: unexpected answer {escaped(reply)}")

    def _data_of(self, command: str, reply: bytes) -> str:
        """The data of an ``STX data ETX BCC`` reply; ``(ERRnn)`` raises CommandRefused."""
        if reply[:1] != bytes([STX]):
            raise self.error(ProtocolViolation, f"{command}: unexpected answer {escaped(reply)}")
        data = self._block_body(command, reply, STX)
        error = re.fullmatch(r"\((ERR[^()]*)\)", data)
        if error is not None:
            code = error.group(1)
            raise CommandRefused(
                f"meter refused {command}: ({code})",
                code=code,
                text=data,
                role=self.role,
                address=self.address,
            )
        return data

    def _block_body(self, what: str, block: bytes, start: int) -> str:
        """What lies between the start character and ETX, the BCC checked."""
        if block[:1] != bytes([start]) or len(block) < 3 or block[-2] != ETX:
            raise self.error(ProtocolViolation, f"{what}: malformed block {escaped(block)}")
        if bcc(block[1:-1]) != block[-1]:
            raise self.error(
                DamagedMessage,
                f"{what}: bad BCC (got {block[-1]:02X}, computed {bcc(block[1:-1]):02X})",
            )
        return block[1:-2].decode("ascii")

    # -- bytes on the line ----------------------------------------------------------------

    def _pause(self, ident: Identification) -> None:
        """Keep the standard's minimum reaction time after the last message received."""
        wait = self._last_rx + ident.reaction_s - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _send(self, message: bytes, *, secret: bool = False) -> None:
        # The BCC of a frame carrying a secret would leak bits of it: recorded as '*'.
        self.transcript.tx(message[:-1] + b"*" if secret else message)
        self._link.write(with_parity(message))

    def _receive_reply(self, what: str) -> bytes:
        reply = self._receive(_block_framer, timeout_s=self.timeout_s, max_bytes=1024, what=what)
        if reply[:1] in (bytes([STX]), bytes([SOH])) and bcc(reply[1:-1]) != reply[-1]:
            raise self.error(DamagedMessage, f"{what}: bad BCC")
        return reply

    def _receive(
        self,
        framer: Framer,
        *,
        timeout_s: float,
        max_bytes: int,
        what: str,
        ends_session: bool = False,
    ) -> bytes:
        """The next message, stripped to 7 bits after its parity was checked.

        ``ends_session``: the meter goes back to sign-on once it has sent this message
        (a readout), whether or not it arrives intact.
        """
        junk, raw = self._link.read_message(
            framer, timeout_s=timeout_s, idle_s=self.timeout_s, max_bytes=max_bytes, what=what
        )
        self._last_rx = time.monotonic()
        if ends_session:
            self._session_open = False
        if junk:
            self.transcript.note(f"skipped before the {what}: {escaped(junk, 200)}")
        message = _stripped(raw)
        self.transcript.rx(message)
        with_bit7 = sum(1 for b in raw if b & 0x80)
        if with_bit7:
            odd = sum(1 for b in raw if bin(b).count("1") % 2)
            if odd > with_bit7:
                raise self.error(
                    DamagedMessage,
                    f"{what}: {with_bit7} character(s) with bit 7 set on a line without parity",
                )
            if odd:
                raise self.error(DamagedMessage, f"{what}: parity error in {odd} character(s)")
        return message

    def _discard(self) -> None:
        dropped = self._link.discard_input()
        if dropped:
            self.transcript.note(f"discarded before sign-on: {escaped(_stripped(dropped), 200)}")
