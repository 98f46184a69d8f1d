"""One small interface per bench role (the harness depends on these, never on a model).

Every method that talks to a device has a timeout (the driver's ``timeout_s`` unless a call
takes its own) and raises :class:`instruments.base.InstrumentError` subclasses on faults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from instruments.base import Identity, Transcript


@dataclass(frozen=True)
class KeyEvent:
    key: str
    down_ms: float  # when the actuator pressed, ms since the command started
    up_ms: float


@runtime_checkable
class KeypadActuator(Protocol):
    transcript: Transcript

    def identify(self) -> Identity: ...
    def keys(self) -> tuple[str, ...]: ...
    def configure(self, hold_ms: int, gap_ms: int) -> None: ...
    def press(self, key: str, hold_ms: int | None = None) -> list[KeyEvent]: ...
    def type(self, keys: list[str]) -> list[KeyEvent]: ...
    def abort(self) -> None: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Reading:
    """One value of a meter readout: address, value text, unit (None when unit-less)."""

    address: str
    value: str
    unit: str | None = None


@runtime_checkable
class MeterPort(Protocol):
    transcript: Transcript

    def identify(self) -> Identity: ...
    def readout(self) -> dict[str, Reading]: ...
    def write_token(self, digits: str) -> None: ...
    def close(self) -> None: ...


@runtime_checkable
class CardWriter(Protocol):
    transcript: Transcript

    def identify(self) -> Identity: ...
    def write_tracks(self, tracks: dict[int, str]) -> None: ...
    def read_tracks(self) -> dict[int, str]: ...
    def close(self) -> None: ...


@runtime_checkable
class CardPresenter(Protocol):
    def present(self, timeout_s: float | None = None) -> None: ...


@dataclass(frozen=True)
class DisplayReading:
    """What the display showed: text, annunciators, how sure the reader is, which frame."""

    text: str
    annunciators: frozenset[str]
    confidence: float  # 0..1
    frame_png: bytes
    frames_read: int


@runtime_checkable
class DisplayReader(Protocol):
    transcript: Transcript

    def identify(self) -> Identity: ...
    def read(self, timeout_s: float | None = None) -> DisplayReading: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class PowerSample:
    voltage_v: float
    current_a: float
    power_w: float
    frequency_hz: float | None = None


@runtime_checkable
class PowerAnalyzer(Protocol):
    transcript: Transcript

    def identify(self) -> Identity: ...
    def sample(self) -> PowerSample: ...
    def integration_start(self) -> None: ...
    def integration_stop(self) -> None: ...
    def integration_reset(self) -> None: ...
    def energy_wh(self) -> float: ...
    def close(self) -> None: ...


@runtime_checkable
class AcSource(Protocol):
    transcript: Transcript

    def identify(self) -> Identity: ...
    def set_voltage(self, volts: float) -> None: ...
    def set_frequency(self, hertz: float) -> None: ...
    def output(self, on: bool) -> None: ...
    def close(self) -> None: ...


@runtime_checkable
class AcLoad(Protocol):
    transcript: Transcript

    def identify(self) -> Identity: ...
    def set_mode(self, mode: str, setpoint: float) -> None: ...
    def load(self, on: bool) -> None: ...
    def close(self) -> None: ...
