"""The SCPI conversation every SCPI instrument driver shares, over VISA (pyvisa + pyvisa-py).

:class:`ScpiDriver` opens the VISA resource named in the bench file (``TCPIP::host::port::SOCKET``
for a LAN socket, ``GPIB0::5::INSTR``, ``USB0::...::INSTR`` ... passed through unchanged), reads
``*IDN?`` into an :class:`instruments.base.Identity` and checks it is the model the driver is for,
then lets the model class configure the instrument. What it guarantees, the way a certification
bench needs it:

* every public call is bounded by the driver's ``timeout_s`` (writes, replies and any
  reconnection together), and every line sent or received goes to ``self.transcript``;
* configuration commands are followed by a drain of the error queue (``SYST:ERR?`` or the
  model's equivalent); an instrument error raises :class:`InstrumentError` naming the command
  and the instrument's error; ``*OPC?`` waits where the order of effects matters;
* faults map to the base errors: no reply in time -> :class:`InstrumentTimeout`, connection
  refused/reset/closed -> :class:`InstrumentGone`, a reply that is not what the protocol allows ->
  :class:`ProtocolViolation`;
* a late reply is never taken as the answer to a later query: after a timeout or a bad reply the
  next call first resynchronises (a socket is reconnected, so a late reply dies with the old
  connection; other interfaces get an IEEE 488.2 device clear, which empties the instrument's
  output queue), and bytes nobody asked for are discarded before each query;
* after :class:`InstrumentGone` the next call reconnects, so an instrument that comes back works
  again with the same driver object (and must still be the same instrument).
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import re
import select
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any, ClassVar

import pyvisa
from pyvisa.constants import StatusCode
from pyvisa.errors import VisaIOError
from pyvisa.resources import MessageBasedResource

from instruments.base import (
    Driver,
    Identity,
    InstrumentError,
    InstrumentGone,
    InstrumentTimeout,
    ProtocolViolation,
    deadline,
)

Remaining = Callable[[], float]

# VISA status codes that mean the device or its link is gone (unplugged, switched off, closed).
_GONE_CODES = frozenset(
    {
        StatusCode.error_connection_lost,
        StatusCode.error_resource_not_found,
        StatusCode.error_io,
        StatusCode.error_no_listeners,
        StatusCode.error_invalid_object,
        StatusCode.error_closing_failed,
        StatusCode.error_machine_not_available,
    }
)
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")
_ERROR_RE = re.compile(r'^([+-]?\d+)\s*(?:,\s*(?:"(.*)"|(.*)))?$', re.DOTALL)
# SCPI-99 §7.2.1: ASCII replies mark "not a number" and infinity with these values.
_SCPI_NAN = 9.91e37
_SCPI_INF = 9.9e37
# Bound on error-queue reads in one drain (real queues hold 16..32 entries).
MAX_ERRORS = 64
# Bound on bytes discarded before a query; more means the instrument is streaming.
_MAX_STALE_BYTES = 1 << 20


def nrf(value: float) -> str:
    """A decimal number as SCPI <NRf> without exponent (``230``, ``0.5``, ``0.000125``)."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def check_range(name: str, value: float, lo: float, hi: float, unit: str) -> float:
    """``value`` as a float if ``lo <= value <= hi``, else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or not lo <= number <= hi:
        raise ValueError(f"{name} must be within {lo:g}..{hi:g} {unit}, got {value!r}")
    return number


class ScpiDriver(Driver):
    """Base of every SCPI driver: connection, identity, errors, resynchronisation.

    A model class sets the identity it accepts (``manufacturers``, ``model_pattern``), the error
    query when it is not ``:SYSTem:ERRor?``, and overrides :meth:`_setup` for the settings its
    readings rely on (re-applied on every reconnection). Options a bench file may give:
    ``read_termination`` and ``write_termination`` (default ``"\\n"``), ``check_identity``
    (default true), ``visa_library`` (default ``"@py"``, pyvisa-py).
    """

    #: ``*IDN?`` manufacturer field must contain one of these (case-insensitive); empty: any.
    manufacturers: ClassVar[tuple[str, ...]] = ()
    #: ``*IDN?`` model field must match this regular expression at its start; empty: any.
    model_pattern: ClassVar[str] = ""
    #: What the model is called in messages.
    series: ClassVar[str] = "SCPI instrument"
    #: Query that pops the oldest entry of the instrument's error queue.
    error_query: ClassVar[str] = ":SYSTem:ERRor?"

    def __init__(
        self,
        address: str,
        *,
        timeout_s: float = 2.0,
        read_termination: str = "\n",
        write_termination: str = "\n",
        check_identity: bool = True,
        visa_library: str = "@py",
    ) -> None:
        for option, value in (
            ("read_termination", read_termination),
            ("write_termination", write_termination),
        ):
            if not isinstance(value, str) or not value or not value.isascii():
                raise ValueError(f"{option} must be a non-empty ASCII string, got {value!r}")
        super().__init__(
            address,
            timeout_s=timeout_s,
            read_termination=read_termination,
            write_termination=write_termination,
            check_identity=check_identity,
            visa_library=visa_library,
        )
        self.read_termination = read_termination
        self.write_termination = write_termination
        self.check_identity = check_identity
        self._is_socket = address.strip().upper().endswith("::SOCKET")
        self._lock = threading.RLock()
        self._resource: MessageBasedResource | None = None
        self._desynced = False
        self._closed = False
        self._identity: Identity | None = None
        try:
            self._manager = pyvisa.ResourceManager(visa_library)
        except (OSError, ValueError) as exc:
            message = f"cannot load VISA library {visa_library!r}: {exc}"
            raise self.error(InstrumentError, message) from exc
        try:
            with self._call():
                pass
        except BaseException:
            self.close()
            raise

    # ---- public --------------------------------------------------------------------------

    @property
    def identity(self) -> Identity:
        """What the instrument said it is when the driver (re)connected."""
        assert self._identity is not None
        return self._identity

    def identify(self) -> Identity:
        """Ask ``*IDN?`` again; InstrumentError if another instrument now answers."""
        with self._call() as remaining:
            identity = self._ask_identity(remaining)
            self._check_same(identity)
            return identity

    def query(self, command: str) -> str:
        """Send one query and return its reply line (terminator and outer blanks removed)."""
        with self._call() as remaining:
            return self._query(command, remaining)

    def command(self, command: str, *, sync: bool = False) -> None:
        """Send a command, wait for ``*OPC?`` when ``sync``, then check the error queue.

        InstrumentError names ``command`` and every error the instrument queued for it.
        """
        with self._call() as remaining:
            self._command(command, remaining, sync=sync)

    def errors(self) -> list[tuple[int, str]]:
        """Empty the instrument's error queue; its entries as ``(code, message)``, oldest first."""
        with self._call() as remaining:
            return self._drain_errors(remaining)

    def close(self) -> None:
        """Close the connection and the VISA resource manager; safe to call twice."""
        with self._lock:
            self._closed = True
            self._drop()
            manager = getattr(self, "_manager", None)
            if manager is not None:
                with contextlib.suppress(Exception):
                    manager.close()
                self._manager = None

    # ---- for model classes ---------------------------------------------------------------

    def _setup(self, remaining: Remaining) -> None:
        """Apply the settings the driver's readings rely on (after every (re)connection)."""

    @contextlib.contextmanager
    def _call(self) -> Iterator[Remaining]:
        """One public call: the lock, one timeout budget, a (re)connection or resync first."""
        with self._lock:
            if self._closed:
                raise self.error(InstrumentError, "the driver is closed")
            remaining = deadline(self.timeout_s)
            if self._resource is None:
                self._connect(remaining)
            elif self._desynced:
                self._resync(remaining)
            yield remaining

    def _query(self, command: str, remaining: Remaining) -> str:
        self._write(command, remaining)
        return self._read(command, remaining)

    def _command(self, command: str, remaining: Remaining, *, sync: bool = False) -> None:
        if "?" in command:
            raise ValueError(f"{command!r} is a query; use query()")
        self._write(command, remaining)
        if sync:
            self._sync(remaining)
        errors = self._drain_errors(remaining)
        if errors:
            listed = "; ".join(f'{code},"{message}"' for code, message in errors)
            raise self.error(InstrumentError, f"the instrument rejected {command!r}: {listed}")

    def _sync(self, remaining: Remaining) -> None:
        reply = self._query("*OPC?", remaining)
        if self._number(reply, "*OPC?") != 1:
            raise self._violation(f"*OPC? answered {reply!r}, not 1")

    def _drain_errors(self, remaining: Remaining) -> list[tuple[int, str]]:
        errors: list[tuple[int, str]] = []
        for _ in range(MAX_ERRORS):
            reply = self._query(self.error_query, remaining)
            match = _ERROR_RE.match(reply)
            if match is None:
                raise self._violation(f"{self.error_query} answered {reply!r}")
            code = int(match[1])
            message = match[2] if match[2] is not None else (match[3] or "").strip()
            if code == 0:
                return errors
            if message.lower().startswith("no error"):
                # SCPI pairs code 0 with "No error": this is a garbled reply, not an error.
                raise self._violation(f"{self.error_query} answered {reply!r}")
            errors.append((code, message))
        raise self._violation(f"the error queue did not empty after {MAX_ERRORS} reads")

    def _query_numbers(self, command: str, count: int, separator: str, what: str) -> list[float]:
        """One query answering ``count`` numbers (see :meth:`_numbers`)."""
        with self._call() as remaining:
            return self._numbers(self._query(command, remaining), count, separator, what)

    def _numbers(self, reply: str, count: int, separator: str, what: str) -> list[float]:
        """``count`` numbers separated by ``separator``; NaN/inf as the instrument marks them."""
        fields = reply.split(separator)
        if len(fields) != count:
            raise self._violation(f"{what}: expected {count} values, got {reply!r}")
        return [self._number(field, what) for field in fields]

    def _number(self, text: str, what: str) -> float:
        token = text.strip()
        upper = token.upper()
        if upper in ("NAN", "+NAN", "-NAN"):
            return math.nan
        if upper in ("INF", "+INF"):
            return math.inf
        if upper == "-INF":
            return -math.inf
        if not _NUMBER_RE.match(token):
            raise self._violation(f"{what}: {text!r} is not a number")
        value = float(token)
        if value == _SCPI_NAN:
            return math.nan
        if abs(value) == _SCPI_INF:
            return math.copysign(math.inf, value)
        return value

    def _violation(self, message: str) -> ProtocolViolation:
        # What was read may have been part of something else: resync before the next exchange.
        self._desynced = True
        self.transcript.note(f"protocol violation: {message}")
        return ProtocolViolation(message, role=self.role, address=self.address)

    # ---- connection ----------------------------------------------------------------------

    def _connect(self, remaining: Remaining) -> None:
        self._drop()
        self.transcript.note(f"connecting to {self.address}")
        resource = self._open_resource(remaining)
        self._resource = resource
        self._desynced = False
        try:
            link = self._socket()
            if link is not None:
                # A non-blocking connect reports a refusal only through SO_ERROR.
                failure = link[0].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if failure:
                    raise self._lost(f"cannot connect to {self.address}: {os.strerror(failure)}")
                # Request/reply traffic: without this, Nagle and delayed ACKs add ~40 ms to a
                # command followed by its error query (pyvisa-py cannot set it as an attribute).
                link[0].setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            identity = self._ask_identity(remaining)
            self._check_model(identity)
            self._check_same(identity)
            self._identity = identity
            stale = self._drain_errors(remaining)
            if stale:
                self.transcript.note(f"errors queued before connecting: {stale}")
            self._setup(remaining)
        except BaseException:
            self._drop()
            raise

    def _open_resource(self, remaining: Remaining) -> MessageBasedResource:
        """The VISA resource at the driver's address, opened (a subclass may reach its
        instrument another way: anything with ``write_raw``, ``read_raw``, ``timeout``,
        ``clear`` and ``close``)."""
        manager = self._manager
        assert manager is not None
        wait_ms = _milliseconds(remaining())
        if wait_ms <= 0:
            raise self._timeout(f"no time left to connect to {self.address}")
        try:
            resource = manager.open_resource(
                self.address,
                read_termination=self.read_termination,
                write_termination=self.write_termination,
                timeout=wait_ms,
                open_timeout=wait_ms,
            )
        except VisaIOError as exc:
            if exc.error_code == StatusCode.error_invalid_resource_name:
                message = f"invalid VISA resource {self.address!r}"
                raise self.error(InstrumentError, message) from exc
            raise self._lost(f"cannot open {self.address}: {exc.description}") from exc
        except ValueError as exc:  # pyvisa's InvalidResourceName
            message = f"invalid VISA resource {self.address!r}: {exc}"
            raise self.error(InstrumentError, message) from exc
        except Exception as exc:
            # pyvisa-py reports an unreachable socket with a bare Exception.
            raise self._lost(f"cannot open {self.address}: {exc}") from exc
        if not isinstance(resource, MessageBasedResource):
            with contextlib.suppress(Exception):
                resource.close()
            raise self.error(InstrumentError, f"{self.address} is not a message-based resource")
        return resource

    def _resync(self, remaining: Remaining) -> None:
        self.transcript.note("resynchronising after a failed exchange")
        if self._is_socket:
            # A reply still on its way belongs to the old connection and is lost with it.
            self._connect(remaining)
            return
        resource = self._resource
        assert resource is not None
        try:
            resource.timeout = max(1, _milliseconds(remaining()))
            resource.clear()
        except VisaIOError as exc:
            raise self._visa_failure(exc, "device clear") from exc
        except OSError as exc:
            raise self._lost(f"device clear: {exc}") from exc
        self._desynced = False
        self._sync(remaining)
        leftover = self._drain_errors(remaining)
        if leftover:
            self.transcript.note(f"errors queued by the failed exchange: {leftover}")

    def _drop(self) -> None:
        resource, self._resource = self._resource, None
        if resource is not None:
            with contextlib.suppress(Exception):
                resource.close()

    def _ask_identity(self, remaining: Remaining) -> Identity:
        """``*IDN?``; a reply that is new (first, or unlike the known one) is asked twice.

        A garbled reply must neither become the identity on the record nor pass for another
        instrument: what is believed, the instrument said twice.
        """
        first = self._parse_identity(self._query("*IDN?", remaining))
        known = self._identity
        if known is not None and first.raw == known.raw:
            return known
        second = self._parse_identity(self._query("*IDN?", remaining))
        if second.raw != first.raw:
            raise self._violation(f"*IDN? answered {first.raw!r}, then {second.raw!r}")
        return first

    def _parse_identity(self, reply: str) -> Identity:
        fields = [field.strip() for field in reply.split(",")]
        if len(fields) < 4 or not fields[0] or not fields[1]:
            raise self._violation(f"*IDN? answered {reply!r}")
        return Identity(fields[0], fields[1], fields[2], ",".join(fields[3:]), raw=reply)

    def _check_model(self, identity: Identity) -> None:
        if not self.check_identity:
            return
        maker = identity.manufacturer.upper()
        if self.manufacturers and not any(m.upper() in maker for m in self.manufacturers):
            raise self.error(InstrumentError, f"{identity.raw!r} is not a {self.series}")
        if self.model_pattern and not re.match(self.model_pattern, identity.model, re.I):
            raise self.error(InstrumentError, f"{identity.raw!r} is not a {self.series}")

    def _check_same(self, identity: Identity) -> None:
        known = self._identity
        if known is not None and known.raw != identity.raw:
            raise self.error(
                InstrumentError,
                f"another instrument answers at {self.address}: {identity.raw!r}, "
                f"not {known.raw!r}",
            )

    # ---- lines ---------------------------------------------------------------------------

    def _write(self, line: str, remaining: Remaining) -> None:
        resource = self._resource
        assert resource is not None
        data = (line + self.write_termination).encode("ascii")
        self._discard_unrequested(remaining)
        self.transcript.tx(line)
        try:
            resource.timeout = max(1, _milliseconds(remaining()))
            resource.write_raw(data)
        except VisaIOError as exc:
            raise self._visa_failure(exc, f"sending {line!r}") from exc
        except OSError as exc:
            raise self._lost(f"sending {line!r}: {exc}") from exc

    def _read(self, what: str, remaining: Remaining) -> str:
        """One reply line; ``what`` (the query) names it in errors."""
        resource = self._resource
        assert resource is not None
        wait_ms = _milliseconds(remaining())
        if wait_ms <= 0:
            raise self._timeout(f"no time left to read the reply to {what!r}")
        try:
            resource.timeout = wait_ms
            raw = resource.read_raw()
        except VisaIOError as exc:
            if exc.error_code == StatusCode.error_timeout and self._peer_closed():
                raise self._lost(f"the connection closed while waiting for {what!r}") from exc
            raise self._visa_failure(exc, f"waiting for the reply to {what!r}") from exc
        except OSError as exc:
            raise self._lost(f"waiting for the reply to {what!r}: {exc}") from exc
        terminator = self.read_termination.encode("ascii")
        if raw.endswith(terminator):
            raw = raw[: -len(terminator)]
        self.transcript.rx(raw)
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise self._violation(f"reply to {what!r} is not ASCII: {raw[:80]!r}") from None
        text = text.strip()
        if any(not (" " <= char <= "~" or char == "\t") for char in text):
            raise self._violation(f"reply to {what!r} has control characters: {raw[:80]!r}")
        return text

    def _visa_failure(self, exc: VisaIOError, doing: str) -> InstrumentError:
        if exc.error_code == StatusCode.error_timeout:
            return self._timeout(f"no answer within {self.timeout_s:g} s {doing}")
        if exc.error_code in _GONE_CODES:
            return self._lost(f"{doing}: {exc.description}")
        self._desynced = True
        return self.error(InstrumentError, f"{doing}: {exc.description}")

    def _timeout(self, message: str) -> InstrumentTimeout:
        self._desynced = True
        self.transcript.note(f"timeout: {message}")
        return InstrumentTimeout(message, role=self.role, address=self.address)

    def _lost(self, message: str) -> InstrumentGone:
        self._drop()
        self.transcript.note(f"connection lost: {message}")
        return InstrumentGone(message, role=self.role, address=self.address)

    # ---- the socket under a pyvisa-py SOCKET resource ------------------------------------

    def _socket(self) -> tuple[socket.socket, Any] | None:
        """The TCP socket and pyvisa-py session of a SOCKET resource, else None.

        pyvisa-py neither reports a peer that closed the connection (a read just times out)
        nor a refused connection (until the first write), and keeps bytes received after a
        terminator for the next read; the driver looks at the socket itself for those.
        """
        if not self._is_socket or self._resource is None:
            return None
        sessions = getattr(self._resource.visalib, "sessions", None)
        try:
            session = sessions[self._resource.session] if isinstance(sessions, dict) else None
        except (KeyError, pyvisa.errors.InvalidSession):
            return None
        sock = getattr(session, "interface", None)
        return (sock, session) if isinstance(sock, socket.socket) else None

    def _discard_unrequested(self, remaining: Remaining) -> None:
        """Before sending: drop bytes nobody asked for, notice a closed peer, wait writable."""
        link = self._socket()
        if link is None:
            return
        sock, session = link
        pending = getattr(session, "_pending_buffer", None)
        stale = b""
        if isinstance(pending, bytearray) and pending:
            stale = bytes(pending)
            pending.clear()
        try:
            while len(stale) < _MAX_STALE_BYTES:
                readable, _, _ = select.select([sock], [], [], 0)
                if not readable:
                    break
                chunk = sock.recv(65536)
                if not chunk:
                    raise self._lost("the instrument closed the connection")
                stale += chunk
            if stale:
                self.transcript.note(f"discarded {len(stale)} unrequested bytes: {stale[:80]!r}")
            _, writable, _ = select.select([], [sock], [], max(0.0, remaining()))
        except OSError as exc:
            raise self._lost(f"connection: {exc}") from exc
        if not writable:
            raise self._timeout("the instrument does not accept data")

    def _peer_closed(self) -> bool:
        link = self._socket()
        if link is None:
            return False
        sock = link[0]
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True


def _milliseconds(seconds: float) -> int:
    return int(seconds * 1000)
