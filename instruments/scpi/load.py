"""AC electronic loads (role ``load``): regulation mode and setpoint, on/off, read-back.

The harness speaks of modes as ``CC`` (constant current, A), ``CR`` (constant resistance, ohm)
and ``CP`` (constant power, W); :class:`ScpiAcLoad` maps them to a model's own mode names and
level commands, so another model is one small class naming its commands and ratings.

The level of the new mode is written before the mode is switched, so a load that is on never
regulates, even briefly, to the previous mode's level read in the new unit.
"""

from __future__ import annotations

import math
from typing import ClassVar, NamedTuple

from instruments.base import register
from instruments.roles import PowerSample
from instruments.scpi.driver import ScpiDriver, check_range, nrf


class ModeCommands(NamedTuple):
    """How one harness mode is written on a model: the mode command and the level command."""

    select: str  # e.g. "MODE CURR"
    level: str  # ``{value}`` is replaced by the setpoint, e.g. "CURR:STAT:L1 {value}"
    unit: str


class LoadRating(NamedTuple):
    max_current_a: float
    max_power_w: float


class ScpiAcLoad(ScpiDriver):
    """An AC load driven by per-mode SCPI command templates and a rating table."""

    role = "load"

    modes: ClassVar[dict[str, ModeCommands]] = {}
    #: Ratings by model number (the ``*IDN?`` model field starts with it).
    ratings: ClassVar[dict[str, LoadRating]] = {}
    #: Used for a model the table does not list: the series' largest rating.
    series_rating: ClassVar[LoadRating] = LoadRating(math.inf, math.inf)
    #: ``{state}`` is replaced by ``ON`` or ``OFF``.
    load_command: ClassVar[str] = "LOAD {state}"
    #: One query line answering voltage, current, power and frequency, joined by ``;``.
    measure_query: ClassVar[str] = "MEAS:VOLT?;:MEAS:CURR?;:MEAS:POW?;:MEAS:FREQ?"

    @property
    def rating(self) -> LoadRating:
        """The connected model's current and power rating."""
        model = self.identity.model.upper()
        for number, rating in self.ratings.items():
            if model.startswith(number):
                return rating
        return self.series_rating

    def set_mode(self, mode: str, setpoint: float) -> None:
        """Regulate in ``mode`` (``CC`` A, ``CR`` ohm, ``CP`` W) at ``setpoint``.

        The driver checks the model's rating (CC, CP) and that a resistance is positive; the
        instrument checks the rest (its resistance range) and InstrumentError reports it.
        """
        key = mode.upper() if isinstance(mode, str) else mode
        if key not in self.modes:
            raise ValueError(f"mode must be one of {', '.join(self.modes)}, got {mode!r}")
        spec = self.modes[key]
        rating = self.rating
        if key == "CC":
            value = check_range("setpoint", setpoint, 0.0, rating.max_current_a, spec.unit)
        elif key == "CP":
            value = check_range("setpoint", setpoint, 0.0, rating.max_power_w, spec.unit)
        else:
            value = check_range("setpoint", setpoint, 0.0, math.inf, spec.unit)
            if value == 0:
                raise ValueError("setpoint must be a positive resistance, got 0")
        with self._call() as remaining:
            self._command(spec.level.format(value=nrf(value)), remaining)
            self._command(spec.select, remaining, sync=True)

    def load(self, on: bool) -> None:
        """Switch the load's input on or off; returns once the instrument has done it."""
        if not isinstance(on, bool):
            raise ValueError(f"on must be True or False, got {on!r}")
        self.command(self.load_command.format(state="ON" if on else "OFF"), sync=True)

    def measure(self) -> PowerSample:
        """Voltage, current, power and frequency at the load's terminals.

        ``frequency_hz`` is None without voltage (the instrument reports 0).
        """
        volts, amps, watts, hertz = self._query_numbers(
            self.measure_query, 4, ";", "load measurement"
        )
        frequency = hertz if math.isfinite(hertz) and hertz > 0 else None
        return PowerSample(volts, amps, watts, frequency)


@register
class Chroma63800Load(ScpiAcLoad):
    """Chroma 63800 series (63802, 63803, 63804) programmable AC/DC electronic load."""

    name = "chroma63800"
    manufacturers = ("CHROMA",)
    model_pattern = r"638\d\d"
    series = "Chroma 63800 series AC load"
    modes: ClassVar[dict[str, ModeCommands]] = {
        "CC": ModeCommands("MODE CURR", "CURR:STAT:L1 {value}", "A"),
        "CR": ModeCommands("MODE RES", "RES:STAT:L1 {value}", "ohm"),
        "CP": ModeCommands("MODE POW", "POW:STAT:L1 {value}", "W"),
    }
    ratings: ClassVar[dict[str, LoadRating]] = {
        "63802": LoadRating(18.0, 1800.0),
        "63803": LoadRating(36.0, 3600.0),
        "63804": LoadRating(45.0, 4500.0),
    }
    series_rating = LoadRating(45.0, 4500.0)
    load_command = "LOAD {state}"
    measure_query = "MEAS:VOLT?;:MEAS:CURR?;:MEAS:POW?;:MEAS:FREQ?"
