"""Simulated programmable AC source modelled on the Chroma 61500 series (61501 .. 61505).

It drives the SUPPLY side of the plant: its output feeds the meter, whose relay feeds the
load. ``*IDN?`` answers ``Chroma ATE,61505,SIMLAB-0002,1.00`` (model selectable; the serial
number marks the unit as simulated). Ratings per model (VA; A rms on the 150 V / 300 V
range): 61501 500, 4/2; 61502 1000, 8/4; 61503 1500, 12/6; 61504 2000, 16/8; 61505 4000,
32/16. The default is the 61505 so that a 230 V bench can draw a few kilowatts.

Commands covered (optional parts in ``[]``; short form = upper-case part):

* ``*IDN? *RST *CLS *ESE <n> *ESE? *ESR? *SRE <n> *SRE? *STB? *OPC *OPC? *WAI *TST?``
* ``:SYSTem:ERRor[:NEXT]?``, ``:SYSTem:ERRor:COUNt?``, ``:SYSTem:VERSion?``
* ``[SOURce:]VOLTage[:LEVel][:IMMediate][:AMPLitude][:AC] <V>`` and ``?``: rms output
  voltage, 0 .. range (150 or 300 V) and at most the voltage limit, else -222
* ``[SOURce:]VOLTage:LIMit[:AC] <V>`` and ``?``: upper bound of the voltage setting
  (0 .. 300 V; -221 when below the present setting)
* ``[SOURce:]VOLTage:RANGe {150|300|LOW|HIGH}`` and ``?`` (150 or 300; -221 when the present
  setting does not fit the new range)
* ``[SOURce:]FREQuency[:CW|:IMMediate] <Hz>`` and ``?``: 15 .. 1000 Hz
* ``[SOURce:]CURRent:LIMit <A>`` and ``?``: rms current protection, 0 .. the model's rating
  on the 150 V range; the effective limit is also capped by the range's rating. Above it the
  output trips off at once (``OUTPut?`` reads 0); ``OUTPut ON`` re-arms it.
* ``OUTPut[:STATe] {ON|OFF|1|0}`` and ``?`` (1|0)
* ``MEASure|FETCh[:SCALar]:VOLTage[:ACDC]?``, ``:CURRent[:AC]?``, ``:POWer[:AC][:REAL]?``,
  ``:POWer[:AC]:APParent?``, ``:POWer[:AC]:PFACtor?``, ``:FREQuency?``,
  ``:CURRent:AMPLitude:MAXimum?`` (peak), ``:CURRent:CREStfactor?``: values at the output
  terminals in <NR2>; all zero while the output is off

``*RST``: output off, 0 V, 60 Hz, 300 V range, voltage limit 300 V, current limit at the
300 V range rating. Errors: -113 unknown header, -102 syntax, -104 data type, -108/-109
parameter count, -131 unit, -141 keyword, -221 settings conflict, -222 out of range.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from simlab.faults import TransportFaults
from simlab.plant import Plant
from simlab.scpi.server import Call, ScpiError, ScpiInstrument, nr2


@dataclass(frozen=True)
class SourceRating:
    """One model's output rating."""

    power_va: float
    current_low_range_a: float  # on the 150 V range
    current_high_range_a: float  # on the 300 V range


MODELS: dict[str, SourceRating] = {
    "61501": SourceRating(500.0, 4.0, 2.0),
    "61502": SourceRating(1000.0, 8.0, 4.0),
    "61503": SourceRating(1500.0, 12.0, 6.0),
    "61504": SourceRating(2000.0, 16.0, 8.0),
    "61505": SourceRating(4000.0, 32.0, 16.0),
}
RANGES_V = (150.0, 300.0)
FREQUENCY_HZ = (15.0, 1000.0)
DEFAULT_FREQUENCY_HZ = 60.0

_SQRT2 = math.sqrt(2.0)


class Chroma61500(ScpiInstrument):
    """61500-style AC source driving the supply side of ``plant``."""

    manufacturer = "Chroma ATE"
    firmware = "1.00"

    def __init__(
        self,
        plant: Plant,
        *,
        model: str = "61505",
        serial: str = "SIMLAB-0002",
        port: int = 0,
        faults: TransportFaults | None = None,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown 61500 model {model!r}; known: {', '.join(MODELS)}")
        super().__init__(serial=serial, port=port, faults=faults)
        self.model = model
        self.rating = MODELS[model]
        self.plant = plant
        self._range_v = RANGES_V[-1]
        self._limit_v = RANGES_V[-1]
        self._current_limit_a = self.rating.current_high_range_a
        self._apply_current_limit()
        volt = "[:SOURce]:VOLTage"
        self.add(f"{volt}[:LEVel][:IMMediate][:AMPLitude][:AC]", write=self._set_v, query=self._v)
        self.add(f"{volt}:LIMit[:AC]", write=self._set_v_limit, query=self._v_limit)
        self.add(f"{volt}:RANGe", write=self._set_range, query=self._range)
        self.add("[:SOURce]:FREQuency[:CW|IMMediate]", write=self._set_f, query=self._f)
        self.add("[:SOURce]:CURRent:LIMit", write=self._set_i_limit, query=self._i_limit)
        self.add("OUTPut[:STATe]", write=self._set_output, query=self._output)
        measure = "MEASure|FETCh[:SCALar]"
        self.add(f"{measure}:VOLTage[:ACDC]", query=self._measure("voltage"))
        self.add(f"{measure}:CURRent[:AC]", query=self._measure("current"))
        self.add(f"{measure}:POWer[:AC][:REAL]", query=self._measure("power"))
        self.add(f"{measure}:POWer[:AC]:APParent", query=self._measure("apparent"))
        self.add(f"{measure}:POWer[:AC]:PFACtor", query=self._measure("pf"))
        self.add(f"{measure}:FREQuency", query=self._measure("frequency"))
        self.add(f"{measure}:CURRent:AMPLitude:MAXimum", query=self._measure("peak"))
        self.add(f"{measure}:CURRent:CREStfactor", query=self._measure("crest"))

    def reset(self) -> None:
        """*RST: output off, 0 V, 60 Hz, 300 V range and limit, rated current limit."""
        self.plant.set_source_output(False)
        self.plant.set_source_voltage(0.0)
        self.plant.set_source_frequency(DEFAULT_FREQUENCY_HZ)
        self._range_v = RANGES_V[-1]
        self._limit_v = RANGES_V[-1]
        self._current_limit_a = self.rating.current_high_range_a
        self._apply_current_limit()

    def _range_current_a(self) -> float:
        if self._range_v == RANGES_V[0]:
            return self.rating.current_low_range_a
        return self.rating.current_high_range_a

    def _apply_current_limit(self) -> None:
        self.plant.set_source_current_limit(min(self._current_limit_a, self._range_current_a()))

    def _set_v(self, call: Call) -> None:
        call.expect(1)
        volts = call.number(0, unit="V", lo=0.0, hi=self._range_v, default=0.0)
        if volts > self._limit_v:
            raise ScpiError(-222, f"{call.params[0]} above the voltage limit {self._limit_v:g}")
        self.plant.set_source_voltage(volts)

    def _v(self, call: Call) -> str:
        call.expect(0)
        return nr2(self.plant.state().voltage_setpoint_v, 2)

    def _set_v_limit(self, call: Call) -> None:
        call.expect(1)
        limit = call.number(0, unit="V", lo=0.0, hi=RANGES_V[-1], default=RANGES_V[-1])
        if limit < self.plant.state().voltage_setpoint_v:
            raise ScpiError(-221, "limit below the present voltage setting")
        self._limit_v = limit

    def _v_limit(self, call: Call) -> str:
        call.expect(0)
        return nr2(self._limit_v, 2)

    def _set_range(self, call: Call) -> None:
        call.expect(1)
        token = call.params[0]
        if token.upper() in ("LOW", "HIGH"):
            new = RANGES_V[0] if token.upper() == "LOW" else RANGES_V[-1]
        else:
            new = call.number(0, unit="V")
            if new not in RANGES_V:
                raise ScpiError(-222, f"{token} is not 150 or 300")
        if self.plant.state().voltage_setpoint_v > new:
            raise ScpiError(-221, "the present voltage does not fit that range")
        self._range_v = new
        self._apply_current_limit()

    def _range(self, call: Call) -> str:
        call.expect(0)
        return f"{self._range_v:g}"

    def _set_f(self, call: Call) -> None:
        call.expect(1)
        lo, hi = FREQUENCY_HZ
        self.plant.set_source_frequency(
            call.number(0, unit="HZ", lo=lo, hi=hi, default=DEFAULT_FREQUENCY_HZ)
        )

    def _f(self, call: Call) -> str:
        call.expect(0)
        return nr2(self.plant.state().frequency_hz, 2)

    def _set_i_limit(self, call: Call) -> None:
        call.expect(1)
        most = self.rating.current_low_range_a
        self._current_limit_a = call.number(0, unit="A", lo=0.0, hi=most, default=most)
        self._apply_current_limit()

    def _i_limit(self, call: Call) -> str:
        call.expect(0)
        return nr2(self._current_limit_a, 2)

    def _set_output(self, call: Call) -> None:
        call.expect(1)
        self.plant.set_source_output(call.boolean(0))

    def _output(self, call: Call) -> str:
        call.expect(0)
        return "1" if self.plant.state().source_on else "0"

    def _measure(self, quantity: str) -> Callable[[Call], str]:
        """The query handler that reports ``quantity`` at the output terminals."""

        def query(call: Call) -> str:
            call.expect(0)
            state = self.plant.measured()
            volts, amps = state.supply_voltage_v, state.supply_current_a
            powered = state.source_on and volts > 0
            values = {
                "voltage": (volts, 2),
                "current": (amps, 4),
                "power": (volts * amps, 2),
                "apparent": (volts * amps, 2),
                "pf": (1.0 if amps > 0 else 0.0, 3),
                "frequency": (state.frequency_hz if powered else 0.0, 2),
                "peak": (_SQRT2 * amps, 4),
                "crest": (_SQRT2 if amps > 0 else 0.0, 3),
            }
            value, decimals = values[quantity]
            return nr2(value, decimals)

        return query
