"""What the simulated serial devices need from the simulated meter, and nothing more.

The keypad robot presses the meter's keys, the optical port reads and programs its
registers, the card presenter inserts cards into its reader. Each reaches the meter through
one narrow Protocol here, so the devices can be tested against a small fake and the meter
implements only what a real meter exposes on those carriers.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

# IEC 62056-21 forbids these inside an address or value: they frame the data set.
_DATA_SET_FORBIDDEN = frozenset("()*/!\r\n\x02\x03\x01\x06\x15")


class MeterKeypad(Protocol):
    """The meter's physical keypad, as actuators pressing it see it."""

    @property
    def keys(self) -> tuple[str, ...]:
        """Key names in layout order: "0".."9", "ENTER", "BACK", "MENU", ..."""
        ...

    def key_down(self, key: str) -> None:
        """An actuator pressed ``key`` (one of :attr:`keys`) and holds it."""
        ...

    def key_up(self, key: str) -> None:
        """The actuator on ``key`` released it."""
        ...


@dataclass(frozen=True)
class DataLine:
    """One IEC 62056-21 data set: ``address(value*unit)``, or ``address(value)`` unit-less."""

    address: str
    value: str
    unit: str | None = None

    def __post_init__(self) -> None:
        for name in ("address", "value", "unit"):
            text = getattr(self, name)
            if text is None:
                continue
            bad = sorted(set(text) & _DATA_SET_FORBIDDEN)
            if bad or not text.isascii():
                raise ValueError(f"data set {name} {text!r} has characters IEC 62056-21 forbids")
        if not self.address:
            raise ValueError("data set address is empty")
        if len(self.value) > 128:
            raise ValueError(f"data set value is {len(self.value)} characters (at most 128)")

    def render(self) -> str:
        """The data set as it appears on the wire."""
        unit = f"*{self.unit}" if self.unit else ""
        return f"{self.address}({self.value}{unit})"


class WriteStatus(StrEnum):
    """How a meter answers a programming-mode write."""

    ACK = "ACK"  # written
    NAK = "NAK"  # not taken, repeat it
    ERROR = "ERROR"  # refused; ``WriteResult.text`` says why (a PortError)


class PortError(StrEnum):
    """Error texts on the optical port, sent as ``<STX>(ERRnn)<ETX><BCC>``; one table for
    the port and the meter so a driver can tell them apart."""

    UNSUPPORTED = "ERR01"  # command not supported (anything but P1, W1, R1, B0)
    MALFORMED = "ERR02"  # data set is not address(value)
    PASSWORD = "ERR03"  # password refused, or a write without an accepted password
    UNKNOWN_REGISTER = "ERR04"  # R1 of an address the readout does not have
    NOT_WRITABLE = "ERR05"  # W1 to a register that cannot be written
    CARRIER_DISABLED = "ERR06"  # the meter takes no tokens through this port


@dataclass(frozen=True)
class WriteResult:
    """The meter's answer to a register write."""

    status: WriteStatus
    text: str = ""

    @classmethod
    def ack(cls) -> WriteResult:
        return cls(WriteStatus.ACK)

    @classmethod
    def nak(cls) -> WriteResult:
        return cls(WriteStatus.NAK)

    @classmethod
    def error(cls, text: str) -> WriteResult:
        """A refusal sent as ``STX (text) ETX BCC``."""
        return cls(WriteStatus.ERROR, text)

    def __post_init__(self) -> None:
        text = self.text
        if self.status is WriteStatus.ERROR and (
            not text or set(text) & _DATA_SET_FORBIDDEN or not text.isascii()
        ):
            raise ValueError(f"error text {self.text!r} is empty or not a data set value")


class MeterOpticalPort(Protocol):
    """The meter behind its IEC 62056-21 optical port."""

    @property
    def device_address(self) -> str:
        """The address a sign-on ``/?<address>!`` must carry (an empty address always works)."""
        ...

    def identification(self) -> str:
        """``XXXZIdent``: 3-letter manufacturer flag, baud character Z ('0'..'6'), ident."""
        ...

    def readout(self) -> list[DataLine]:
        """The data readout, in order; also what programming-mode R1 reads from."""
        ...

    def check_password(self, password: str) -> bool:
        """Whether the P1 password opens programming mode."""
        ...

    def write_register(self, address: str, value: str, password: str | None) -> WriteResult:
        """Programming-mode W1 ``address(value)``; ``password`` is the accepted P1 password."""
        ...


class MeterCardReader(Protocol):
    """The meter's magnetic card reader."""

    def insert_card(self, tracks: dict[int, str]) -> None:
        """A card was inserted/swiped; ``tracks`` maps track number to its data characters
        (without start/end sentinels and LRC, as a card reader decodes them)."""
        ...
