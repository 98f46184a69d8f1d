"""A small SCPI instrument server: parser, IEEE 488.2 status model and TCP transport.

A simulated instrument subclasses :class:`ScpiInstrument`, registers its commands by their
SCPI header pattern (``"[:SOURce]:VOLTage[:LEVel]"``, ``":NUMeric[:NORMal]:ITEM<1-255>"``)
and implements :meth:`ScpiInstrument.reset`. The base class gives it what every instrument
shares, the way real ones behave:

* program messages terminated by ``\\n`` (``\\r\\n`` accepted), several message units per
  line separated by ``;``; headers case-insensitive in short or long form, optional nodes in
  ``[]``, numeric suffixes, optional leading ``:``; a unit without a leading ``:`` is
  resolved against the path of the previous unit in the same line (SCPI-99 §6.2.4), so
  ``MEAS:VOLT?;CURR?`` means ``MEAS:VOLT?;:MEAS:CURR?``; query replies of one line are joined
  by ``;``;
* the IEEE 488.2 common commands ``*IDN? *RST *CLS *ESE(?) *ESR? *SRE(?) *STB? *OPC(?)
  *WAI *TST?`` and ``:SYSTem:ERRor[:NEXT]?``, ``:SYSTem:ERRor:COUNt?``, ``:SYSTem:VERSion?``;
* an error queue with standard SCPI codes and the matching ESR bits (command error -1xx:
  CME, execution error -2xx: EXE, device-specific -3xx: DDE, query error -4xx: QYE); a full
  queue keeps its oldest entries and reports ``-350,"Queue overflow"`` last. A query that
  fails produces no reply (the client times out, as with a real instrument); a command error
  discards the rest of the line;
* a TCP listener on 127.0.0.1 (ephemeral port by default), one daemon thread per
  connection, clients connecting in turn or together, and the transport faults of
  :class:`simlab.faults.TransportFaults`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import select
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self

from simlab.faults import TransportFaults

log = logging.getLogger(__name__)

SCPI_ERRORS: dict[int, str] = {
    0: "No error",
    -100: "Command error",
    -101: "Invalid character",
    -102: "Syntax error",
    -104: "Data type error",
    -108: "Parameter not allowed",
    -109: "Missing parameter",
    -113: "Undefined header",
    -114: "Header suffix out of range",
    -120: "Numeric data error",
    -131: "Invalid suffix",
    -141: "Invalid character data",
    -200: "Execution error",
    -221: "Settings conflict",
    -222: "Data out of range",
    -224: "Illegal parameter value",
    -300: "Device-specific error",
    -350: "Queue overflow",
    -363: "Input buffer overrun",
    -400: "Query error",
}

# Standard Event Status Register bits (IEEE 488.2 §11.5.1).
ESR_OPC = 1
ESR_QYE = 4
ESR_DDE = 8
ESR_EXE = 16
ESR_CME = 32
ESR_PON = 128
# Status Byte bits.
STB_EAV = 4
STB_ESB = 32
STB_MSS = 64

ERROR_QUEUE_SIZE = 16
MAX_LINE_BYTES = 65536
_MAX_DETAIL = 80

_MULTIPLIERS = {
    "EX": 1e18,
    "PE": 1e15,
    "T": 1e12,
    "G": 1e9,
    "MA": 1e6,
    "K": 1e3,
    "M": 1e-3,
    "U": 1e-6,
    "N": 1e-9,
    "P": 1e-12,
    "F": 1e-15,
}
# IEEE 488.2 §7.7.3: these two mean mega, not milli.
_SPECIAL_SUFFIXES = {"MOHM": 1e6, "MHZ": 1e6}
_NUMBER_RE = re.compile(r"^([+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*([A-Za-z]*)$")
_UNIT_RE = re.compile(
    r"^\s*(?P<header>\*?:?[A-Za-z][A-Za-z0-9_]*(?::[A-Za-z][A-Za-z0-9_]*)*)(?P<query>\?)?"
    r"(?P<rest>.*)$",
    re.DOTALL,
)
_MNEMONIC_RE = re.compile(r"^([A-Za-z][A-Za-z_]*?)(\d*)$")
_NODE_RE = re.compile(r"^(?P<names>[A-Za-z*|]+)(?:<(?P<lo>\d+)(?:-(?P<hi>\d+))?>)?$")


class ScpiError(Exception):
    """A SCPI error: ``code`` from :data:`SCPI_ERRORS`, optional device-dependent detail."""

    def __init__(self, code: int, detail: str = "") -> None:
        self.code = code
        # The detail travels inside a quoted string: short, printable ASCII, no quotes.
        if len(detail) > _MAX_DETAIL:
            detail = detail[: _MAX_DETAIL - 3] + "..."
        self.detail = "".join(c if " " <= c <= "~" and c != '"' else "?" for c in detail)
        super().__init__(self.text)

    @property
    def text(self) -> str:
        message = SCPI_ERRORS.get(self.code, "Error")
        if self.detail:
            message = f"{message};{self.detail}"
        return f'{self.code},"{message}"'


# ---- number formats ------------------------------------------------------------------------


def nr1(value: float) -> str:
    """IEEE 488.2 <NR1>: an integer."""
    return str(round(value))


def nr2(value: float, decimals: int = 3) -> str:
    """IEEE 488.2 <NR2>: fixed point."""
    text = f"{value:.{decimals}f}"
    return "0." + "0" * decimals if float(text) == 0 else text


def nr3(value: float, digits: int = 6) -> str:
    """IEEE 488.2 <NR3> in engineering form with ``digits`` significant digits.

    ``230.0`` -> ``230.000E+00``, ``0.25`` -> ``250.000E-03``.
    """
    if value == 0 or not math.isfinite(value):
        if not math.isfinite(value):
            raise ValueError(f"cannot format {value!r} as NR3")
        return "0." + "0" * (digits - 1) + "E+00"
    exponent = math.floor(math.log10(abs(value)))
    eng = 3 * math.floor(exponent / 3)
    for _ in range(2):
        mantissa = value / 10.0**eng
        int_digits = len(str(int(abs(mantissa)))) if abs(mantissa) >= 1 else 1
        text = f"{mantissa:.{max(digits - int_digits, 0)}f}"
        if abs(float(text)) < 1000:
            break
        eng += 3  # rounding carried into a fourth integer digit
    return f"{text}E{eng:+03d}"


# ---- headers -------------------------------------------------------------------------------


def mnemonic_matches(word: str, long_form: str) -> bool:
    """Whether ``word`` is the short or long form of the SCPI mnemonic ``long_form``.

    The short form is the leading upper-case part: ``VOLT`` and ``VOLTAGE`` match
    ``VOLTage``; ``VOLTA`` does not.
    """
    upper = word.upper()
    short = re.match(r"[A-Z0-9*]*", long_form)
    return upper == long_form.upper() or (short is not None and upper == short.group(0))


@dataclass(frozen=True)
class _Node:
    names: tuple[str, ...]
    optional: bool
    suffix: tuple[int, int] | None

    def accepts(self, word: str, suffix: int | None) -> bool | None:
        """True: match; None: mnemonic matches but the suffix is out of range; False: no."""
        if not any(mnemonic_matches(word, name) for name in self.names):
            return False
        if self.suffix is None:
            return suffix is None
        lo, hi = self.suffix
        return True if suffix is None or lo <= suffix <= hi else None


def _compile_pattern(pattern: str) -> tuple[_Node, ...]:
    nodes: list[_Node] = []
    for raw in re.findall(r"\[[^\]]*\]|[^\[\]]+", pattern):
        optional = raw.startswith("[")
        body = raw.strip("[]")
        for part in filter(None, body.split(":")):
            match = _NODE_RE.match(part)
            if match is None:
                raise ValueError(f"bad SCPI pattern {pattern!r} at {part!r}")
            suffix = None
            if match["lo"] is not None:
                lo = int(match["lo"])
                suffix = (lo, int(match["hi"]) if match["hi"] else lo)
            nodes.append(_Node(tuple(match["names"].split("|")), optional, suffix))
    return tuple(nodes)


class _SuffixOutOfRange(Exception):
    pass


def _match(
    nodes: tuple[_Node, ...], tokens: Sequence[tuple[str, int | None]]
) -> tuple[int, ...] | None:
    """The numeric suffixes of a match (defaults filled in), or None.

    Raises :class:`_SuffixOutOfRange` when only a suffix kept the header from matching.
    """
    suffix_error = False

    def walk(ni: int, ti: int, found: tuple[int, ...]) -> tuple[int, ...] | None:
        nonlocal suffix_error
        if ni == len(nodes):
            return found if ti == len(tokens) else None
        node = nodes[ni]
        if ti < len(tokens):
            word, suffix = tokens[ti]
            verdict = node.accepts(word, suffix)
            if verdict:
                if node.suffix is None:
                    extra: tuple[int, ...] = ()
                else:
                    extra = (node.suffix[0] if suffix is None else suffix,)
                result = walk(ni + 1, ti + 1, found + extra)
                if result is not None:
                    return result
            elif verdict is None:
                suffix_error = True
        if node.optional:
            return walk(ni + 1, ti, found + (() if node.suffix is None else (node.suffix[0],)))
        return None

    result = walk(0, 0, ())
    if result is None and suffix_error:
        raise _SuffixOutOfRange
    return result


Setter = Callable[["Call"], None]
Getter = Callable[["Call"], "str | bytes"]


@dataclass(frozen=True)
class Command:
    """One registered header: what a set and a query of it do."""

    pattern: str
    nodes: tuple[_Node, ...]
    write: Setter | None
    query: Getter | None


# ---- parameters ----------------------------------------------------------------------------


class Call:
    """The parsed parameters of one message unit, with typed accessors that raise SCPI errors."""

    def __init__(self, header: str, params: list[str], suffixes: tuple[int, ...]) -> None:
        self.header = header
        self.params = params
        self.suffixes = suffixes

    def expect(self, least: int, most: int | None = None) -> None:
        """Check the parameter count: -109 when too few, -108 when too many."""
        most = least if most is None else most
        if len(self.params) < least:
            raise ScpiError(-109)
        if len(self.params) > most:
            raise ScpiError(-108)

    def _token(self, index: int) -> str:
        if index >= len(self.params):
            raise ScpiError(-109)
        return self.params[index]

    def number(
        self,
        index: int = 0,
        *,
        unit: str = "",
        lo: float | None = None,
        hi: float | None = None,
        default: float | None = None,
    ) -> float:
        """A decimal value (<NRf> with optional multiplier and ``unit``), range-checked.

        ``MINimum``/``MAXimum``/``DEFault`` stand for ``lo``/``hi``/``default`` when given.
        """
        token = self._token(index)
        for keyword, value in (("MINimum", lo), ("MAXimum", hi), ("DEFault", default)):
            if value is not None and mnemonic_matches(token, keyword):
                return value
        value = parse_number(token, unit)
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            low = "" if lo is None else f"{lo:g}"
            high = "" if hi is None else f"{hi:g}"
            raise ScpiError(-222, f"{token} outside {low}..{high}")
        return value

    def integer(self, index: int = 0, *, lo: int | None = None, hi: int | None = None) -> int:
        """An integer: <NRf> rounded, or ``#H``/``#Q``/``#B`` non-decimal."""
        token = self._token(index)
        bases = {"#H": 16, "#Q": 8, "#B": 2}
        try:
            if token[:2].upper() in bases:
                value = int(token[2:], bases[token[:2].upper()])
            else:
                value = round(parse_number(token))
        except ValueError:
            raise ScpiError(-104, token) from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ScpiError(-222, token)
        return value

    def boolean(self, index: int = 0) -> bool:
        """``ON``/``OFF`` or a number (non-zero after rounding = ON)."""
        token = self._token(index)
        if token.upper() == "ON":
            return True
        if token.upper() == "OFF":
            return False
        try:
            return round(parse_number(token)) != 0
        except ScpiError:
            raise ScpiError(-141, token) from None

    def choice(self, index: int, options: Sequence[str]) -> str:
        """Character data: returns the matching entry of ``options`` (written in long form)."""
        token = self._token(index)
        for option in options:
            if mnemonic_matches(token, option):
                return option
        if _NUMBER_RE.match(token):
            raise ScpiError(-104, token)
        raise ScpiError(-141, token)


def parse_number(token: str, unit: str = "") -> float:
    """Parse <NRf> with an optional multiplier and unit (``5MV`` = 5e-3 with unit ``V``)."""
    match = _NUMBER_RE.match(token.strip())
    if match is None:
        raise ScpiError(-104, token)
    value = float(match[1])
    suffix = match[2].upper()
    unit = unit.upper()
    if not suffix:
        return value
    if unit and suffix in _SPECIAL_SUFFIXES and suffix.endswith(unit):
        return value * _SPECIAL_SUFFIXES[suffix]
    if unit and suffix.endswith(unit):
        prefix = suffix[: -len(unit)]
        if not prefix:
            return value
        if prefix in _MULTIPLIERS:
            return value * _MULTIPLIERS[prefix]
    elif unit and suffix in _MULTIPLIERS:
        return value * _MULTIPLIERS[suffix]
    raise ScpiError(-131, token)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quote = ""
    for char in text:
        if quote:
            current.append(char)
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
            current.append(char)
        elif char == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if quote:
        raise ScpiError(-102, "unterminated string")
    parts.append("".join(current))
    return parts


# ---- status model --------------------------------------------------------------------------


class StatusRegisters:
    """IEEE 488.2 status: error/event queue, ESR with its enable mask, SRE."""

    def __init__(self, queue_size: int = ERROR_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self.errors: deque[ScpiError] = deque()
        self.esr = ESR_PON
        self.ese = 0
        self.sre = 0

    def push(self, error: ScpiError) -> None:
        """Queue ``error`` and set its ESR bit."""
        code = error.code
        if -199 <= code <= -100:
            self.esr |= ESR_CME
        elif -299 <= code <= -200:
            self.esr |= ESR_EXE
        elif -499 <= code <= -400:
            self.esr |= ESR_QYE
        elif code != 0:
            self.esr |= ESR_DDE
        if len(self.errors) < self.queue_size:
            self.errors.append(error)
        elif self.errors[-1].code != -350:
            self.errors[-1] = ScpiError(-350)

    def pop(self) -> ScpiError:
        return self.errors.popleft() if self.errors else ScpiError(0)

    def clear(self) -> None:
        """*CLS: empty the queue and the event register."""
        self.errors.clear()
        self.esr = 0

    def read_esr(self) -> int:
        value, self.esr = self.esr, 0
        return value

    def stb(self) -> int:
        value = STB_EAV if self.errors else 0
        if self.esr & self.ese:
            value |= STB_ESB
        if value & self.sre & ~STB_MSS:
            value |= STB_MSS
        return value


# ---- instrument ----------------------------------------------------------------------------


class ScpiInstrument:
    """Base of a simulated SCPI instrument served over TCP.

    Subclasses set ``manufacturer``/``model``/``firmware``, register commands with
    :meth:`add` and implement :meth:`reset` (``*RST``). :meth:`execute` runs one program
    message in-process; :meth:`start` serves the instrument on 127.0.0.1.
    """

    manufacturer = "SIMLAB"
    model = "INSTRUMENT"
    firmware = "1.00"

    def __init__(
        self,
        *,
        serial: str,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: TransportFaults | None = None,
    ) -> None:
        self.serial = serial
        self.faults = faults if faults is not None else TransportFaults()
        self.status = StatusRegisters()
        self._lock = threading.RLock()
        self._commands: list[Command] = []
        self._resolved: dict[tuple[tuple[str, int | None], ...], tuple[Command, tuple[int, ...]]]
        self._resolved = {}
        self._server = ScpiTcpServer(
            self.execute, self.faults, host=host, port=port, overrun=self._input_overrun
        )
        self.add(":SYSTem:ERRor[:NEXT]", query=self._next_error)
        self.add(":SYSTem:ERRor:COUNt", query=self._error_count)
        self.add(":SYSTem:VERSion", query=lambda call: _no_params(call, "1999.0"))

    # ---- registration / execution --------------------------------------------------------

    def add(
        self, pattern: str, *, write: Setter | None = None, query: Getter | None = None
    ) -> None:
        """Register a header pattern with its set handler and/or query handler."""
        self._commands.append(Command(pattern, _compile_pattern(pattern), write, query))
        self._resolved.clear()

    def idn(self) -> str:
        return f"{self.manufacturer},{self.model},{self.serial},{self.firmware}"

    def reset(self) -> None:
        """*RST: the instrument's default settings."""
        raise NotImplementedError

    def execute(self, line: str) -> bytes | None:
        """Run one program message; the reply (terminator included) or None if no query."""
        replies: list[bytes] = []
        with self._lock:
            try:
                units = _split_outside_quotes(line, ";")
            except ScpiError as error:
                self.status.push(error)
                return None
            path: tuple[tuple[str, int | None], ...] = ()
            for number, unit in enumerate(units, 1):
                if not unit.strip():
                    # A trailing ';' is tolerated; an empty unit inside the line is not.
                    if number < len(units):
                        self.status.push(ScpiError(-102, "empty message unit"))
                        break
                    continue
                try:
                    reply, path = self._execute_unit(unit, path)
                except ScpiError as error:
                    self.status.push(error)
                    if -199 <= error.code <= -100:
                        break
                    continue
                except Exception:
                    # A simulator bug must surface as an instrument error, not a dead link.
                    log.exception("%s failed on %r", type(self).__name__, unit)
                    self.status.push(ScpiError(-300, "internal error"))
                    continue
                if reply is not None:
                    if isinstance(reply, str):
                        reply = reply.encode("ascii", errors="replace")
                    replies.append(reply)
        if not replies:
            return None
        return b";".join(replies) + b"\n"

    def _execute_unit(
        self, unit: str, path: tuple[tuple[str, int | None], ...]
    ) -> tuple[str | bytes | None, tuple[tuple[str, int | None], ...]]:
        match = _UNIT_RE.match(unit)
        if match is None or (match["rest"] and not match["rest"][0].isspace()):
            raise ScpiError(-102, unit.strip()[:40])
        header, is_query = match["header"], bool(match["query"])
        rest = match["rest"].strip()
        params = [p.strip() for p in _split_outside_quotes(rest, ",")] if rest else []
        if any(not p for p in params):
            raise ScpiError(-102, "empty parameter")
        if header.startswith("*"):
            return self._common(header[1:].upper(), is_query, params), path
        absolute = header.startswith(":")
        tokens: list[tuple[str, int | None]] = []
        for word in header.lstrip(":").split(":"):
            parts = _MNEMONIC_RE.match(word)
            if parts is None:
                raise ScpiError(-102, word)
            tokens.append((parts[1].upper(), int(parts[2]) if parts[2] else None))
        full = tuple(tokens) if absolute else path + tuple(tokens)
        command, suffixes = self._resolve(full)
        handler = command.query if is_query else command.write
        if handler is None:
            raise ScpiError(-113, f"{header}{'?' if is_query else ''}")
        call = Call(header, params, suffixes)
        return handler(call), full[:-1]

    def _resolve(
        self, tokens: tuple[tuple[str, int | None], ...]
    ) -> tuple[Command, tuple[int, ...]]:
        cached = self._resolved.get(tokens)
        if cached is not None:
            return cached
        text = ":".join(f"{w}{'' if s is None else s}" for w, s in tokens)
        suffix_error = False
        for command in self._commands:
            try:
                suffixes = _match(command.nodes, tokens)
            except _SuffixOutOfRange:
                suffix_error = True
                continue
            if suffixes is not None:
                if len(self._resolved) < 4096:
                    self._resolved[tokens] = (command, suffixes)
                return command, suffixes
        raise ScpiError(-114 if suffix_error else -113, text)

    def _common(self, name: str, is_query: bool, params: list[str]) -> str | None:
        call = Call("*" + name, params, ())
        status = self.status
        if (name, is_query) == ("IDN", True):
            return _no_params(call, self.idn())
        if (name, is_query) == ("RST", False):
            call.expect(0)
            self.reset()
            return None
        if (name, is_query) == ("CLS", False):
            call.expect(0)
            status.clear()
            return None
        if (name, is_query) == ("ESR", True):
            call.expect(0)
            return str(status.read_esr())
        if name in ("ESE", "SRE"):
            if is_query:
                return _no_params(call, str(status.ese if name == "ESE" else status.sre))
            call.expect(1)
            setattr(status, name.lower(), call.integer(0, lo=0, hi=255))
            return None
        if (name, is_query) == ("STB", True):
            return _no_params(call, str(status.stb()))
        if name == "OPC":
            call.expect(0)
            # Every operation completes before the next message is read.
            if is_query:
                return "1"
            status.esr |= ESR_OPC
            return None
        if (name, is_query) == ("WAI", False):
            call.expect(0)
            return None
        if (name, is_query) == ("TST", True):
            return _no_params(call, "0")
        raise ScpiError(-113, f"*{name}{'?' if is_query else ''}")

    def _input_overrun(self) -> None:
        with self._lock:
            self.status.push(ScpiError(-363, f"line longer than {MAX_LINE_BYTES} bytes"))

    def _next_error(self, call: Call) -> str:
        call.expect(0)
        return self.status.pop().text

    def _error_count(self, call: Call) -> str:
        call.expect(0)
        return str(len(self.status.errors))

    # ---- serving -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def resource(self) -> str:
        """The VISA resource name that reaches this instrument."""
        return f"TCPIP::{self._server.host}::{self.port}::SOCKET"

    def start(self) -> Self:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _no_params(call: Call, reply: str) -> str:
    call.expect(0)
    return reply


def float_block(values: Sequence[float]) -> bytes:
    """IEEE 488.2 definite-length block of big-endian IEEE single floats."""
    payload = struct.pack(f">{len(values)}f", *values)
    length = str(len(payload))
    return f"#{len(length)}{length}".encode("ascii") + payload


# ---- transport -----------------------------------------------------------------------------


class ScpiTcpServer:
    """TCP transport: a listener thread and one daemon thread per connection.

    ``handler(line)`` runs each received line and returns the reply bytes (or None);
    ``overrun()`` is told when a line exceeds :data:`MAX_LINE_BYTES` and is dropped. Faults
    from ``faults`` apply to every reply; ``vanished`` closes the listener and every
    connection until it is cleared, then the same port is listened on again.
    """

    # How often the listener looks at the fault flags; real seconds.
    POLL_S = 0.02
    SEND_TIMEOUT_S = 5.0
    JOIN_TIMEOUT_S = 5.0

    def __init__(
        self,
        handler: Callable[[str], bytes | None],
        faults: TransportFaults,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        overrun: Callable[[], None] | None = None,
    ) -> None:
        self.host = host
        self._overrun = overrun
        self._requested_port = port
        self._port = 0
        self._handler = handler
        self._faults = faults
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._connections: dict[socket.socket, threading.Thread] = {}

    @property
    def port(self) -> int:
        if not self._port:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        self._stopping.clear()
        self._port = 0
        self._listener = self._bind(self._requested_port)
        self._port = self._listener.getsockname()[1]
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(
            target=self._accept_loop, name=f"scpi-listen-{self._port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Close the listener and every connection, and join every thread."""
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")
        thread.join(self.JOIN_TIMEOUT_S)
        if thread.is_alive():
            log.warning("SCPI listener thread %s did not stop", thread.name)
        self._close_connections()
        with self._lock:
            workers = list(self._connections.values())
        for worker in workers:
            worker.join(self.JOIN_TIMEOUT_S)
            if worker.is_alive():
                log.warning("SCPI connection thread %s did not stop", worker.name)
        with self._lock:
            self._connections.clear()
        self._close_listener()
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._wake_r = self._wake_w = None
        self._thread = None
        self._port = 0

    def _bind(self, port: int) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, port))
            listener.listen(8)
        except OSError:
            listener.close()
            raise
        return listener

    def _close_listener(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None

    def _close_connections(self) -> None:
        with self._lock:
            sockets = list(self._connections)
        for conn in sockets:
            # shutdown wakes the worker blocked in recv(); the worker closes its socket.
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _accept_loop(self) -> None:
        assert self._wake_r is not None
        while not self._stopping.is_set():
            if self._faults.vanished:
                if self._listener is not None:
                    self._close_listener()
                    self._close_connections()
                self._stopping.wait(self.POLL_S)
                continue
            if self._listener is None:
                try:
                    self._listener = self._bind(self._port)
                except OSError:
                    self._stopping.wait(self.POLL_S)
                    continue
            readable, _, _ = select.select([self._listener, self._wake_r], [], [], self.POLL_S)
            if self._listener in readable:
                try:
                    conn, _ = self._listener.accept()
                except OSError:
                    continue
                if self._faults.vanished or self._stopping.is_set():
                    conn.close()
                    continue
                self._spawn(conn)

    def _spawn(self, conn: socket.socket) -> None:
        conn.settimeout(self.SEND_TIMEOUT_S)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        worker = threading.Thread(
            target=self._serve, args=(conn,), name=f"scpi-conn-{self._port}", daemon=True
        )
        with self._lock:
            for old, thread in list(self._connections.items()):
                if not thread.is_alive():
                    del self._connections[old]
            self._connections[conn] = worker
        worker.start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        discarding = False  # inside an over-long line, dropping until its terminator
        try:
            while not self._stopping.is_set():
                try:
                    data = conn.recv(65536)
                except TimeoutError:
                    continue
                if not data:
                    return
                buffer += data
                while b"\n" in buffer:
                    raw, buffer = buffer.split(b"\n", 1)
                    if discarding:
                        discarding = False
                    elif len(raw) > MAX_LINE_BYTES:
                        if self._overrun is not None:
                            self._overrun()
                    elif not self._answer(conn, raw):
                        return
                if len(buffer) > MAX_LINE_BYTES:
                    buffer = b""
                    if not discarding and self._overrun is not None:
                        self._overrun()
                    discarding = True
        except OSError:
            return
        finally:
            conn.close()

    def _answer(self, conn: socket.socket, raw: bytes) -> bool:
        """Handle one received line; False when the connection must end."""
        faults = self._faults
        if faults.vanished or self._stopping.is_set():
            return False
        if faults.silent:
            return True  # read, never executed, never answered
        reply = self._handler(raw.rstrip(b"\r").decode("ascii", errors="replace"))
        if reply is None:
            return True
        if faults.delay_s > 0 and self._stopping.wait(faults.delay_s):
            return False
        out = faults.apply(reply)
        if out:
            conn.sendall(out)
        return True
