"""What every driver shares: errors, transcripts, the driver registry.

* Errors: every failure of a device call is an :class:`InstrumentError`; a call that gets no
  answer within its timeout raises :class:`InstrumentTimeout`, a device that is gone
  :class:`InstrumentGone`. The harness maps these to ERROR (a fault), never to FAIL.
* Transcripts: every byte or line exchanged is kept with a timestamp and direction; secrets
  (passwords, keys) are masked before they are recorded.
* Registry: bench files name drivers by a short name (``kpr1``, ``wt300`` …); the registry
  maps names to classes, like labgrid's, so a new device model is one new class.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal


class InstrumentError(Exception):
    """A device call failed. ``role`` and ``address`` say which device."""

    def __init__(self, message: str, *, role: str | None = None, address: str | None = None):
        where = " ".join(x for x in (f"[{role}]" if role else "", address or "") if x)
        super().__init__(f"{where}: {message}" if where else message)
        self.role = role
        self.address = address
        self.reason = message


class InstrumentTimeout(InstrumentError):
    """The device did not answer within the call's timeout."""


class InstrumentGone(InstrumentError):
    """The device's port or connection is gone (unplugged, closed, refused)."""


class ProtocolViolation(InstrumentError):
    """The device answered something the protocol does not allow (garbled, bad checksum)."""


Direction = Literal["tx", "rx", "event", "note"]


@dataclass(frozen=True)
class TranscriptEntry:
    t: float  # seconds since the epoch (wall clock)
    direction: Direction
    data: str


@dataclass
class Transcript:
    """Timestamped record of a device conversation, with secrets masked."""

    device: str
    entries: list[TranscriptEntry] = field(default_factory=list)
    secrets: list[str] = field(default_factory=list)
    limit: int = 100_000
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_secret(self, secret: str) -> None:
        """Mask ``secret`` in everything recorded from now on."""
        if secret and secret not in self.secrets:
            self.secrets.append(secret)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "*" * min(len(secret), 8))
        return text

    def record(self, direction: Direction, data: bytes | str) -> None:
        text = data.decode("latin-1") if isinstance(data, bytes | bytearray) else data
        text = self.mask(text)
        with self._lock:
            if len(self.entries) >= self.limit:
                del self.entries[: self.limit // 10]
            self.entries.append(TranscriptEntry(time.time(), direction, text))

    def tx(self, data: bytes | str) -> None:
        self.record("tx", data)

    def rx(self, data: bytes | str) -> None:
        self.record("rx", data)

    def note(self, text: str) -> None:
        self.record("note", text)

    def since(self, index: int) -> list[TranscriptEntry]:
        with self._lock:
            return list(self.entries[index:])

    def mark(self) -> int:
        """An index to pass to :meth:`since` later (what one step exchanged)."""
        with self._lock:
            return len(self.entries)

    def render(self, entries: Iterable[TranscriptEntry] | None = None) -> str:
        """Lines ``HH:MM:SS.mmm dir data`` with control bytes shown escaped."""
        rows = []
        for e in self.entries if entries is None else entries:
            stamp = time.strftime("%H:%M:%S", time.gmtime(e.t)) + f".{int(e.t * 1000) % 1000:03d}"
            rows.append(f"{stamp} {e.direction:5} {_escape(e.data)}")
        return "\n".join(rows)


def _escape(text: str) -> str:
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\r\n\t" or code < 32 or code == 127 or code > 126:
            out.append(f"<{code:02X}>")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True)
class Identity:
    """What a device says it is (``*IDN?`` or its equivalent)."""

    manufacturer: str
    model: str
    serial: str
    firmware: str
    raw: str = ""

    def __str__(self) -> str:
        return f"{self.manufacturer} {self.model} s/n {self.serial} fw {self.firmware}"


class Driver:
    """Base class of every driver: a role, an address, a transcript, ``close()``.

    ``name`` is the registry name bench files use. Drivers are context managers and
    ``close()`` always releases the device, even after errors, and may be called twice.
    """

    name: ClassVar[str] = ""
    role: ClassVar[str] = ""

    def __init__(self, address: str, *, timeout_s: float = 2.0, **options: Any) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.address = address
        self.timeout_s = timeout_s
        self.options = options
        self.transcript = Transcript(f"{self.role}:{self.name}@{address}")

    def identify(self) -> Identity:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def error(self, cls: type[InstrumentError], message: str) -> InstrumentError:
        return cls(message, role=self.role, address=self.address)

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


DRIVERS: dict[str, type[Driver]] = {}


def register(cls: type[Driver]) -> type[Driver]:
    """Class decorator: make a driver available to bench files under ``cls.name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no registry name")
    existing = DRIVERS.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"driver name {cls.name!r} is taken by {existing.__name__}")
    DRIVERS[cls.name] = cls
    return cls


def driver_class(name: str) -> type[Driver]:
    """The driver registered as ``name`` (loading the built-in drivers first)."""
    load_builtin_drivers()
    try:
        return DRIVERS[name]
    except KeyError:
        known = ", ".join(sorted(DRIVERS))
        raise KeyError(f"unknown driver {name!r} (known: {known})") from None


_BUILTIN_MODULES = (
    "instruments.keypad",
    "instruments.meter_port",
    "instruments.card",
    "instruments.display",
    "instruments.scpi",
)


def load_builtin_drivers() -> None:
    import importlib

    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def deadline(timeout_s: float) -> Callable[[], float]:
    """A function giving the seconds left until ``timeout_s`` from now (never negative)."""
    end = time.monotonic() + timeout_s
    return lambda: max(0.0, end - time.monotonic())
