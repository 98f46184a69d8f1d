"""Programmable AC sources (role ``source``): output voltage, frequency, on/off, read-back.

:class:`ScpiAcSource` holds the behaviour; a model class only names its commands and limits,
so another model is one small class::

    @register
    class KeysightAc6800Source(ScpiAcSource):
        name = "ac6800"
        manufacturers = ("KEYSIGHT",)
        model_pattern = r"AC68\\d\\d"
        series = "Keysight AC6800 series AC source"
        voltage_limits_v = (0.0, 310.0)
        frequency_limits_hz = (40.0, 500.0)
        voltage_command = "VOLT {volts}"
        measure_query = "MEAS:VOLT:AC?;:MEAS:CURR:AC?;:MEAS:POW:AC?;:MEAS:FREQ?"

The driver range-checks against the series' limits before sending; the instrument still
enforces what its model, range and limit settings allow, and an instrument error is raised as
:class:`instruments.base.InstrumentError` naming the command.
"""

from __future__ import annotations

import math
from typing import ClassVar

from instruments.base import register
from instruments.roles import PowerSample
from instruments.scpi.driver import ScpiDriver, check_range, nrf


class ScpiAcSource(ScpiDriver):
    """An AC source driven by a few SCPI command templates (see the module docstring)."""

    role = "source"

    voltage_limits_v: ClassVar[tuple[float, float]] = (0.0, 300.0)
    frequency_limits_hz: ClassVar[tuple[float, float]] = (45.0, 65.0)
    #: ``{volts}`` is replaced by the rms voltage.
    voltage_command: ClassVar[str] = "VOLT {volts}"
    #: ``{hertz}`` is replaced by the frequency.
    frequency_command: ClassVar[str] = "FREQ {hertz}"
    #: ``{state}`` is replaced by ``ON`` or ``OFF``.
    output_command: ClassVar[str] = "OUTP {state}"
    #: One query line answering voltage, current, power and frequency, joined by ``;``.
    measure_query: ClassVar[str] = "MEAS:VOLT?;:MEAS:CURR?;:MEAS:POW?;:MEAS:FREQ?"

    def set_voltage(self, volts: float) -> None:
        """Set the rms output voltage (V)."""
        lo, hi = self.voltage_limits_v
        value = check_range("volts", volts, lo, hi, "V")
        self.command(self.voltage_command.format(volts=nrf(value)), sync=True)

    def set_frequency(self, hertz: float) -> None:
        """Set the output frequency (Hz)."""
        lo, hi = self.frequency_limits_hz
        value = check_range("hertz", hertz, lo, hi, "Hz")
        self.command(self.frequency_command.format(hertz=nrf(value)), sync=True)

    def output(self, on: bool) -> None:
        """Switch the output on or off; returns once the instrument has done it."""
        if not isinstance(on, bool):
            raise ValueError(f"on must be True or False, got {on!r}")
        self.command(self.output_command.format(state="ON" if on else "OFF"), sync=True)

    def measure(self) -> PowerSample:
        """Voltage, current, power and frequency at the output terminals.

        ``frequency_hz`` is None while there is no output (the instrument reports 0).
        """
        volts, amps, watts, hertz = self._query_numbers(
            self.measure_query, 4, ";", "source measurement"
        )
        frequency = hertz if math.isfinite(hertz) and hertz > 0 else None
        return PowerSample(volts, amps, watts, frequency)


@register
class Chroma61500Source(ScpiAcSource):
    """Chroma 61500 series (61501 .. 61505) programmable AC source."""

    name = "chroma61500"
    manufacturers = ("CHROMA",)
    model_pattern = r"615\d\d"
    series = "Chroma 61500 series AC source"
    voltage_limits_v = (0.0, 300.0)
    frequency_limits_hz = (15.0, 1000.0)
    voltage_command = "VOLT:AC {volts}"
    frequency_command = "FREQ {hertz}"
    output_command = "OUTP {state}"
    measure_query = "MEAS:VOLT:ACDC?;:MEAS:CURR:AC?;:MEAS:POW:AC?;:MEAS:FREQ?"
