"""Simulated AC electronic load modelled on the Chroma 63800 series (63802, 63803, 63804).

It sinks current on the LOAD side of the plant, after the meter's relay; the load is
resistive (power factor 1). ``*IDN?`` answers ``Chroma ATE,63802,SIMLAB-0003,1.00`` (model
selectable; the serial number marks the unit as simulated). Ratings per model (A rms, W):
63802 18, 1800; 63803 36, 3600; 63804 45, 4500. Demand beyond the rating is clipped; at low
voltage the load saturates, so CC and CP draw nothing at 0 V.

Commands covered (optional parts in ``[]``; short form = upper-case part):

* ``*IDN? *RST *CLS *ESE <n> *ESE? *ESR? *SRE <n> *SRE? *STB? *OPC *OPC? *WAI *TST?``
* ``:SYSTem:ERRor[:NEXT]?``, ``:SYSTem:ERRor:COUNt?``, ``:SYSTem:VERSion?``
* ``[LOAD:]MODE <mode>`` and ``?``: the 63800's own names ``CURRent|POWer|RESistance`` (or
  their codes 0, 1, 3), and mapped aliases ``CC CCL CCH`` -> CURR, ``CP CPL CPH`` -> POW,
  ``CR CRL CRH`` -> RES; the query answers ``CURR|POW|RES``. CV (``VOLTage``, 2) is DC-only on
  the 63800 and refused with -221.
* ``CURRent[:STATic]:L1 <A>`` and ``?`` (0 .. rating), ``RESistance[:STATic]:L1 <ohm>`` and
  ``?`` (1 .. 5000 ohm), ``POWer[:STATic]:L1 <W>`` and ``?`` (0 .. rating); each mode keeps its
  own level, the active mode's level is applied. ``MINimum``/``MAXimum`` accepted.
* ``LOAD[:STATe] {ON|OFF|1|0}`` and ``?`` (1|0)
* ``MEASure|FETCh[:SCALar]:VOLTage?``, ``:CURRent?``, ``:POWer?``, ``:POWer:APParent?``,
  ``:POWer:PFACtor?``, ``:FREQuency?``: values at the load terminals in <NR2>

``*RST``: load off, mode CURR, all levels at their minimum. Errors: -113 unknown header,
-114 level suffix other than L1, -102 syntax, -104 data type, -108/-109 parameter count,
-131 unit, -141 keyword, -221 settings conflict, -222 out of range.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from simlab.faults import TransportFaults
from simlab.plant import LoadMode, Plant
from simlab.scpi.server import Call, ScpiError, ScpiInstrument, nr2


@dataclass(frozen=True)
class LoadModelRating:
    """One model's input rating."""

    max_current_a: float
    max_power_w: float


MODELS: dict[str, LoadModelRating] = {
    "63802": LoadModelRating(18.0, 1800.0),
    "63803": LoadModelRating(36.0, 3600.0),
    "63804": LoadModelRating(45.0, 4500.0),
}
RESISTANCE_OHM = (1.0, 5000.0)

# Mode names the 63800 answers with, and every name accepted for each.
_MODE_REPLY = {LoadMode.CC: "CURR", LoadMode.CP: "POW", LoadMode.CR: "RES"}
_MODE_WORDS = {
    "CURRent": LoadMode.CC,
    "CC": LoadMode.CC,
    "CCL": LoadMode.CC,
    "CCH": LoadMode.CC,
    "POWer": LoadMode.CP,
    "CP": LoadMode.CP,
    "CPL": LoadMode.CP,
    "CPH": LoadMode.CP,
    "RESistance": LoadMode.CR,
    "CR": LoadMode.CR,
    "CRL": LoadMode.CR,
    "CRH": LoadMode.CR,
    "VOLTage": None,
    "CV": None,
    "CVL": None,
    "CVH": None,
}
_MODE_CODES = {0: LoadMode.CC, 1: LoadMode.CP, 2: None, 3: LoadMode.CR}


class Chroma63800(ScpiInstrument):
    """63800-style AC electronic load on the load side of ``plant``."""

    manufacturer = "Chroma ATE"
    firmware = "1.00"

    def __init__(
        self,
        plant: Plant,
        *,
        model: str = "63802",
        serial: str = "SIMLAB-0003",
        port: int = 0,
        faults: TransportFaults | None = None,
    ) -> None:
        if model not in MODELS:
            raise ValueError(f"unknown 63800 model {model!r}; known: {', '.join(MODELS)}")
        super().__init__(serial=serial, port=port, faults=faults)
        self.model = model
        self.rating = MODELS[model]
        self.plant = plant
        state = plant.state()
        self._levels = {LoadMode.CC: 0.0, LoadMode.CP: 0.0, LoadMode.CR: RESISTANCE_OHM[1]}
        self._levels[state.load_mode] = state.load_setpoint or self._levels[state.load_mode]
        self.add("[:LOAD]:MODE", write=self._set_mode, query=self._mode)
        for pattern, mode in (
            ("CURRent[:STATic]:L<1>", LoadMode.CC),
            ("RESistance[:STATic]:L<1>", LoadMode.CR),
            ("POWer[:STATic]:L<1>", LoadMode.CP),
        ):
            write, query = self._level(mode)
            self.add(pattern, write=write, query=query)
        self.add("LOAD[:STATe]", write=self._set_load, query=self._load)
        measure = "MEASure|FETCh[:SCALar]"
        self.add(f"{measure}:VOLTage", query=self._measure("voltage"))
        self.add(f"{measure}:CURRent", query=self._measure("current"))
        self.add(f"{measure}:POWer", query=self._measure("power"))
        self.add(f"{measure}:POWer:APParent", query=self._measure("apparent"))
        self.add(f"{measure}:POWer:PFACtor", query=self._measure("pf"))
        self.add(f"{measure}:FREQuency", query=self._measure("frequency"))

    def reset(self) -> None:
        """*RST: load off, constant current, every level at its minimum."""
        self.plant.set_load_on(False)
        self._levels = {LoadMode.CC: 0.0, LoadMode.CP: 0.0, LoadMode.CR: RESISTANCE_OHM[1]}
        self.plant.set_load(LoadMode.CC, 0.0)

    def _bounds(self, mode: LoadMode) -> tuple[float, float, str]:
        if mode is LoadMode.CC:
            return 0.0, self.rating.max_current_a, "A"
        if mode is LoadMode.CP:
            return 0.0, self.rating.max_power_w, "W"
        return RESISTANCE_OHM[0], RESISTANCE_OHM[1], "OHM"

    def _level(self, mode: LoadMode) -> tuple[Callable[[Call], None], Callable[[Call], str]]:
        """The set and query handlers of ``mode``'s static level."""

        def write(call: Call) -> None:
            call.expect(1)
            lo, hi, unit = self._bounds(mode)
            self._levels[mode] = call.number(0, unit=unit, lo=lo, hi=hi)
            if self.plant.state().load_mode is mode:
                self.plant.set_load(mode, self._levels[mode])

        def query(call: Call) -> str:
            call.expect(0)
            return nr2(self._levels[mode], 4 if mode is LoadMode.CC else 2)

        return write, query

    def _set_mode(self, call: Call) -> None:
        call.expect(1)
        token = call.params[0]
        if token.strip().isdigit():
            code = int(token)
            if code not in _MODE_CODES:
                raise ScpiError(-222, token)
            mode = _MODE_CODES[code]
        else:
            mode = _MODE_WORDS[call.choice(0, tuple(_MODE_WORDS))]
        if mode is None:
            raise ScpiError(-221, "constant voltage is a DC-mode function")
        self.plant.set_load(mode, self._levels[mode])

    def _mode(self, call: Call) -> str:
        call.expect(0)
        return _MODE_REPLY[self.plant.state().load_mode]

    def _set_load(self, call: Call) -> None:
        call.expect(1)
        self.plant.set_load_on(call.boolean(0))

    def _load(self, call: Call) -> str:
        call.expect(0)
        return "1" if self.plant.state().load_on else "0"

    def _measure(self, quantity: str) -> Callable[[Call], str]:
        """The query handler that reports ``quantity`` at the load terminals."""

        def query(call: Call) -> str:
            call.expect(0)
            state = self.plant.measured()
            volts, amps = state.load_voltage_v, state.load_current_a
            values = {
                "voltage": (volts, 2),
                "current": (amps, 4),
                "power": (volts * amps, 2),
                "apparent": (volts * amps, 2),
                "pf": (1.0 if amps > 0 else 0.0, 3),
                "frequency": (state.frequency_hz if volts > 0 else 0.0, 2),
            }
            value, decimals = values[quantity]
            return nr2(value, decimals)

        return query
