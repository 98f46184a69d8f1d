"""Simulated power analyser modelled on the Yokogawa WT300 series (WT310, one input element).

It measures the LOAD side of the plant (after the meter's relay). ``*IDN?`` answers
``YOKOGAWA,WT310,SIMLAB-0001,F1.00``: the serial number marks the unit as simulated.

Commands covered (optional parts in ``[]``; short form = upper-case part):

* ``*IDN? *RST *CLS *ESE <n> *ESE? *ESR? *SRE <n> *SRE? *STB? *OPC *OPC? *WAI *TST?``
* ``:SYSTem:ERRor[:NEXT]?``, ``:STATus:ERRor?`` (same queue, standard SCPI codes),
  ``:SYSTem:ERRor:COUNt?``, ``:SYSTem:VERSion?``
* ``:NUMeric[:NORMal]:ITEM<x> {NONE|<function>[,<element>]}`` and ``?`` (x = 1..255,
  element 1); functions ``U I P S Q LAMBda PHI FU FI UPPeak UMPeak IPPeak IMPeak PPPeak
  PMPeak CFU CFI TIME WH WHP WHM AH AHP AHM``
* ``:NUMeric[:NORMal]:NUMber {<n>|ALL}`` and ``?`` (1..255, default 10: U I P S Q LAMBda PHI
  FU FI NONE)
* ``:NUMeric[:NORMal]:VALue? [<x>]``: the first NUMber items (or item x) as <NR3>,
  comma-separated; ``NAN`` = no data (NONE item, no frequency without signal, power factor
  without current), ``INF`` = over range (input above 140 % of its range)
* ``:NUMeric[:NORMal]:CLEar {ALL|<x>[,<y>]}``: items x..y (or all) to NONE
* ``:NUMeric:FORMat {ASCii|FLOat}`` and ``?``: FLOat replies with an IEEE 488.2 block of
  big-endian 4-byte floats (NAN = 9.91E+37, INF = 9.9E+37)
* ``:INTEGrate:STARt``, ``:INTEGrate:STOP``, ``:INTEGrate:RESet``, ``:INTEGrate:STATe?``
  (``RESet|STARt|STOP|TIMeup``), ``:INTEGrate:MODE {NORMal|CONTinuous}`` and ``?``,
  ``:INTEGrate:TIMer <h>,<m>,<s>`` and ``?``. NORMal with timer 0 = manual; with a timer the
  integration stops at it (TIMeup); CONTinuous restarts at each timer expiry. A stopped
  integration resumes on STARt; TIMeup needs RESet first. Energy comes from the plant between
  start and stop in simulated time, exact to the timer expiry.
* ``:RATE {100MS|250MS|500MS|1S|2S|5S}`` and ``?`` (update rate; stored, readings are
  instantaneous)
* ``[:INPut]:VOLTage:RANGe <V>`` and ``?`` (15, 30, 60, 150, 300, 600 V),
  ``[:INPut]:VOLTage:AUTO {ON|OFF}`` and ``?``; ``[:INPut]:CURRent:RANGe <A>`` and ``?``
  (5 mA .. 20 A: 5MA 10MA 20MA 50MA 100MA 200MA 0.5 1 2 5 10 20 A),
  ``[:INPut]:CURRent:AUTO {ON|OFF}`` and ``?``. Setting a range turns auto range off; in auto
  range the query reports the range in use.
* ``[:INPut]:MODE {RMS|VMEan|DC}`` and ``?`` (DC mode reads the mean of the sine wave: 0)
* ``:COMMunicate:VERBose {ON|OFF}`` and ``?``: character replies in full (``START``) or, by
  default as on the real unit, in short form (``STAR``)
* ``:SYSTem:COMMunicate:COMMand {WT300}`` and ``?`` (the WT200-compatible set is not
  simulated: -221)

Errors: -113 unknown header, -102 syntax, -104 wrong data type, -108/-109 parameter count,
-114 ITEM suffix, -131 unit, -141 unknown function/keyword, -221 integration or setting state
conflict, -222 value out of range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from simlab.faults import TransportFaults
from simlab.plant import Plant, PlantState
from simlab.scpi.server import Call, ScpiError, ScpiInstrument, float_block, nr1, nr3

VOLTAGE_RANGES_V = (15.0, 30.0, 60.0, 150.0, 300.0, 600.0)
CURRENT_RANGES_A = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0)
UPDATE_RATES_S = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0)
# Readings above this fraction of the range are over range ("INF").
OVER_RANGE = 1.4
# Auto range picks the smallest range the input stays under this fraction of.
AUTO_RANGE_UP = 1.3
MAX_ITEMS = 255
MAX_TIMER_S = 10000 * 3600
FUNCTIONS = (
    "U",
    "I",
    "P",
    "S",
    "Q",
    "LAMBda",
    "PHI",
    "FU",
    "FI",
    "UPPeak",
    "UMPeak",
    "IPPeak",
    "IMPeak",
    "PPPeak",
    "PMPeak",
    "CFU",
    "CFI",
    "TIME",
    "WH",
    "WHP",
    "WHM",
    "AH",
    "AHP",
    "AHM",
)
DEFAULT_ITEMS = ("U", "I", "P", "S", "Q", "LAMBda", "PHI", "FU", "FI")
DEFAULT_NUMBER = 10
FLOAT_NAN = 9.91e37
FLOAT_INF = 9.9e37
_SQRT2 = math.sqrt(2.0)


@dataclass
class _Integration:
    """Watt-hour integration state, evaluated lazily against the plant's energy history."""

    state: str = "RESet"  # RESet | STARt | STOP | TIMeup
    mode: str = "NORMal"  # NORMal | CONTinuous
    timer_s: int = 0
    acc_wh: float = 0.0
    acc_ah: float = 0.0
    acc_s: float = 0.0
    run_t0: float = 0.0


class YokogawaWT310(ScpiInstrument):
    """WT310-style power analyser on the load side of ``plant``."""

    manufacturer = "YOKOGAWA"
    model = "WT310"
    firmware = "F1.00"

    def __init__(
        self,
        plant: Plant,
        *,
        serial: str = "SIMLAB-0001",
        port: int = 0,
        faults: TransportFaults | None = None,
    ) -> None:
        super().__init__(serial=serial, port=port, faults=faults)
        self.plant = plant
        self._integ = _Integration()
        self.reset()
        self.add(":STATus:ERRor", query=self._next_error)
        self.add(":NUMeric[:NORMal]:ITEM<1-255>", write=self._set_item, query=self._item)
        self.add(":NUMeric[:NORMal]:NUMber", write=self._set_number, query=self._number)
        self.add(":NUMeric[:NORMal]:VALue", query=self._value)
        self.add(":NUMeric[:NORMal]:CLEar", write=self._clear_items)
        self.add(":NUMeric:FORMat", write=self._set_format, query=self._format)
        self.add(":INTEGrate:STARt", write=self._integ_start)
        self.add(":INTEGrate:STOP", write=self._integ_stop)
        self.add(":INTEGrate:RESet", write=self._integ_reset)
        self.add(":INTEGrate:STATe", query=self._integ_state)
        self.add(":INTEGrate:MODE", write=self._set_integ_mode, query=self._integ_mode)
        self.add(":INTEGrate:TIMer", write=self._set_integ_timer, query=self._integ_timer)
        self.add(":RATE", write=self._set_rate, query=self._rate)
        self.add("[:INPut]:VOLTage:RANGe", write=self._set_u_range, query=self._u_range)
        self.add("[:INPut]:VOLTage:AUTO", write=self._set_u_auto, query=self._u_auto)
        self.add("[:INPut]:CURRent:RANGe", write=self._set_i_range, query=self._i_range)
        self.add("[:INPut]:CURRent:AUTO", write=self._set_i_auto, query=self._i_auto)
        self.add("[:INPut]:MODE", write=self._set_input_mode, query=self._input_mode)
        self.add(":COMMunicate:VERBose", write=self._set_verbose, query=self._verbose_q)
        self.add(":SYSTem:COMMunicate:COMMand", write=self._set_compat, query=self._compat)

    def reset(self) -> None:
        """*RST: default items, auto ranges, 250 ms rate, integration reset."""
        self._items: list[tuple[str, int] | None] = [(f, 1) for f in DEFAULT_ITEMS]
        self._items += [None] * (MAX_ITEMS - len(self._items))
        self._count = DEFAULT_NUMBER
        self._float_format = False
        self._u_range_v = VOLTAGE_RANGES_V[-1]
        self._i_range_a = CURRENT_RANGES_A[-1]
        self._u_autorange = True
        self._i_autorange = True
        self._rate_s = 0.25
        self._coupling = "RMS"
        self._verbose = False
        self._integ = _Integration()

    # ---- numeric data --------------------------------------------------------------------

    def _word(self, long_form: str) -> str:
        if self._verbose:
            return long_form.upper()
        return "".join(c for c in long_form if not c.islower())

    def _set_item(self, call: Call) -> None:
        call.expect(1, 2)
        function = call.choice(0, ("NONE", *FUNCTIONS))
        if function == "NONE":
            call.expect(1)
            self._items[call.suffixes[0] - 1] = None
            return
        element = call.integer(1, lo=1, hi=1) if len(call.params) > 1 else 1
        self._items[call.suffixes[0] - 1] = (function, element)

    def _item(self, call: Call) -> str:
        call.expect(0)
        item = self._items[call.suffixes[0] - 1]
        return "NONE" if item is None else f"{self._word(item[0])},{item[1]}"

    def _set_number(self, call: Call) -> None:
        call.expect(1)
        if _is_keyword(call.params[0], "ALL"):
            self._count = MAX_ITEMS
        else:
            self._count = call.integer(0, lo=1, hi=MAX_ITEMS)

    def _number(self, call: Call) -> str:
        call.expect(0)
        return nr1(self._count)

    def _clear_items(self, call: Call) -> None:
        call.expect(1, 2)
        if _is_keyword(call.params[0], "ALL"):
            call.expect(1)
            first, last = 1, MAX_ITEMS
        else:
            first = call.integer(0, lo=1, hi=MAX_ITEMS)
            last = call.integer(1, lo=first, hi=MAX_ITEMS) if len(call.params) > 1 else first
        for index in range(first - 1, last):
            self._items[index] = None

    def _set_format(self, call: Call) -> None:
        call.expect(1)
        self._float_format = call.choice(0, ("ASCii", "FLOat")) == "FLOat"

    def _format(self, call: Call) -> str:
        call.expect(0)
        return self._word("FLOat" if self._float_format else "ASCii")

    def _value(self, call: Call) -> str | bytes:
        call.expect(0, 1)
        if call.params:
            wanted = [self._items[call.integer(0, lo=1, hi=MAX_ITEMS) - 1]]
        else:
            wanted = self._items[: self._count]
        values = self.readings(wanted)
        if self._float_format:
            return float_block([_float_code(v) for v in values])
        return ",".join(
            _ascii(value, item is not None and item[0] == "TIME")
            for item, value in zip(wanted, values, strict=True)
        )

    def readings(self, items: list[tuple[str, int] | None]) -> list[float]:
        """Values of ``items`` now: NaN = no data, +inf = over range."""
        state = self.plant.measured()
        wh, ah, seconds = self._integration_values(state.time_s)
        table = self._functions(state, wh, ah, seconds)
        return [math.nan if item is None else table[item[0]] for item in items]

    def _functions(
        self, state: PlantState, wh: float, ah: float, seconds: float
    ) -> dict[str, float]:
        u, i = state.load_voltage_v, state.load_current_a
        if self._coupling == "DC":
            u = i = 0.0  # the mean of a sine wave
        p = u * i
        u_over = u > OVER_RANGE * self._range_in_use(u, self._u_autorange, self._u_range_v, True)
        i_over = i > OVER_RANGE * self._range_in_use(i, self._i_autorange, self._i_range_a, False)
        nan, inf = math.nan, math.inf
        table = {
            "U": u,
            "I": i,
            "P": p,
            "S": p,
            "Q": 0.0,
            "LAMBda": 1.0 if p > 0 else nan,
            "PHI": 0.0 if p > 0 else nan,
            "FU": state.frequency_hz if u > 0 else nan,
            "FI": state.frequency_hz if i > 0 else nan,
            "UPPeak": _SQRT2 * u,
            "UMPeak": -_SQRT2 * u,
            "IPPeak": _SQRT2 * i,
            "IMPeak": -_SQRT2 * i,
            "PPPeak": 2.0 * p,
            "PMPeak": 0.0,
            "CFU": _SQRT2 if u > 0 else nan,
            "CFI": _SQRT2 if i > 0 else nan,
            "TIME": float(math.floor(seconds)),
            "WH": wh,
            "WHP": wh,
            "WHM": 0.0,
            "AH": ah,
            "AHP": ah,
            "AHM": 0.0,
        }
        if u_over:
            for name in ("U", "UPPeak", "UMPeak", "CFU"):
                table[name] = inf
        if i_over:
            for name in ("I", "IPPeak", "IMPeak", "CFI"):
                table[name] = inf
        if u_over or i_over:
            for name in ("P", "S", "Q", "LAMBda", "PHI", "PPPeak", "PMPeak"):
                table[name] = inf
        return table

    # ---- integration ---------------------------------------------------------------------

    def _settle(self, now: float) -> None:
        """Apply timer expiries that happened before ``now``."""
        integ = self._integ
        if integ.state != "STARt" or integ.timer_s <= 0:
            return
        expiry = integ.run_t0 + (integ.timer_s - integ.acc_s)
        if now < expiry:
            return
        if integ.mode == "NORMal":
            integ.acc_wh += self._energy(expiry) - self._energy(integ.run_t0)
            integ.acc_ah += self._charge(expiry) - self._charge(integ.run_t0)
            integ.acc_s = float(integ.timer_s)
            integ.state = "TIMeup"
        else:
            cycles = math.floor((now - expiry) / integ.timer_s)
            integ.run_t0 = expiry + cycles * integ.timer_s
            integ.acc_wh = integ.acc_ah = integ.acc_s = 0.0

    def _energy(self, at: float) -> float:
        try:
            return self.plant.energy_wh(at=at)
        except ValueError as error:
            raise ScpiError(-300, "integration older than the plant history") from error

    def _charge(self, at: float) -> float:
        try:
            return self.plant.charge_ah(at=at)
        except ValueError as error:
            raise ScpiError(-300, "integration older than the plant history") from error

    def _integration_values(self, now: float) -> tuple[float, float, float]:
        self._settle(now)
        integ = self._integ
        if integ.state != "STARt":
            return integ.acc_wh, integ.acc_ah, integ.acc_s
        return (
            integ.acc_wh + self._energy(now) - self._energy(integ.run_t0),
            integ.acc_ah + self._charge(now) - self._charge(integ.run_t0),
            integ.acc_s + now - integ.run_t0,
        )

    def _integ_start(self, call: Call) -> None:
        call.expect(0)
        now = self.plant.clock.now()
        self._settle(now)
        if self._integ.state not in ("RESet", "STOP"):
            raise ScpiError(-221, f"integration is {self._integ.state.upper()}")
        self._integ.state = "STARt"
        self._integ.run_t0 = now

    def _integ_stop(self, call: Call) -> None:
        call.expect(0)
        now = self.plant.clock.now()
        self._settle(now)
        integ = self._integ
        if integ.state != "STARt":
            raise ScpiError(-221, f"integration is {integ.state.upper()}")
        integ.acc_wh, integ.acc_ah, integ.acc_s = self._integration_values(now)
        integ.state = "STOP"

    def _integ_reset(self, call: Call) -> None:
        call.expect(0)
        self._settle(self.plant.clock.now())
        if self._integ.state == "STARt":
            raise ScpiError(-221, "stop the integration before resetting it")
        self._integ = _Integration(mode=self._integ.mode, timer_s=self._integ.timer_s)

    def _integ_state(self, call: Call) -> str:
        call.expect(0)
        self._settle(self.plant.clock.now())
        return self._word(self._integ.state)

    def _require_integration_reset(self) -> None:
        self._settle(self.plant.clock.now())
        if self._integ.state != "RESet":
            raise ScpiError(-221, "reset the integration first")

    def _set_integ_mode(self, call: Call) -> None:
        call.expect(1)
        mode = call.choice(0, ("NORMal", "CONTinuous"))
        self._require_integration_reset()
        self._integ.mode = mode

    def _integ_mode(self, call: Call) -> str:
        call.expect(0)
        return self._word(self._integ.mode)

    def _set_integ_timer(self, call: Call) -> None:
        call.expect(1, 3)
        hours = call.integer(0, lo=0, hi=10000)
        minutes = call.integer(1, lo=0, hi=59) if len(call.params) > 1 else 0
        seconds = call.integer(2, lo=0, hi=59) if len(call.params) > 2 else 0
        total = hours * 3600 + minutes * 60 + seconds
        if total > MAX_TIMER_S:
            raise ScpiError(-222, "timer above 10000 h")
        self._require_integration_reset()
        self._integ.timer_s = total

    def _integ_timer(self, call: Call) -> str:
        call.expect(0)
        total = self._integ.timer_s
        return f"{total // 3600},{total // 60 % 60},{total % 60}"

    # ---- settings ------------------------------------------------------------------------

    def _set_rate(self, call: Call) -> None:
        call.expect(1)
        self._rate_s = _pick(call.number(0, unit="S"), UPDATE_RATES_S, call.params[0])

    def _rate(self, call: Call) -> str:
        call.expect(0)
        return nr3(self._rate_s)

    def _range_in_use(self, value: float, auto: bool, fixed: float, voltage: bool) -> float:
        if not auto:
            return fixed
        ranges = VOLTAGE_RANGES_V if voltage else CURRENT_RANGES_A
        return next((r for r in ranges if value <= r * AUTO_RANGE_UP), ranges[-1])

    def _set_u_range(self, call: Call) -> None:
        call.expect(1)
        self._u_range_v = _pick(call.number(0, unit="V"), VOLTAGE_RANGES_V, call.params[0])
        self._u_autorange = False

    def _u_range(self, call: Call) -> str:
        call.expect(0)
        u = self.plant.measured().load_voltage_v
        return nr3(self._range_in_use(u, self._u_autorange, self._u_range_v, True))

    def _set_u_auto(self, call: Call) -> None:
        call.expect(1)
        self._u_autorange = call.boolean(0)
        if not self._u_autorange:
            u = self.plant.measured().load_voltage_v
            self._u_range_v = self._range_in_use(u, True, self._u_range_v, True)

    def _u_auto(self, call: Call) -> str:
        call.expect(0)
        return "1" if self._u_autorange else "0"

    def _set_i_range(self, call: Call) -> None:
        call.expect(1)
        self._i_range_a = _pick(call.number(0, unit="A"), CURRENT_RANGES_A, call.params[0])
        self._i_autorange = False

    def _i_range(self, call: Call) -> str:
        call.expect(0)
        i = self.plant.measured().load_current_a
        return nr3(self._range_in_use(i, self._i_autorange, self._i_range_a, False))

    def _set_i_auto(self, call: Call) -> None:
        call.expect(1)
        self._i_autorange = call.boolean(0)
        if not self._i_autorange:
            i = self.plant.measured().load_current_a
            self._i_range_a = self._range_in_use(i, True, self._i_range_a, False)

    def _i_auto(self, call: Call) -> str:
        call.expect(0)
        return "1" if self._i_autorange else "0"

    def _set_input_mode(self, call: Call) -> None:
        call.expect(1)
        self._coupling = call.choice(0, ("RMS", "VMEan", "DC"))

    def _input_mode(self, call: Call) -> str:
        call.expect(0)
        return self._word(self._coupling)

    def _set_verbose(self, call: Call) -> None:
        call.expect(1)
        self._verbose = call.boolean(0)

    def _verbose_q(self, call: Call) -> str:
        call.expect(0)
        return "1" if self._verbose else "0"

    def _set_compat(self, call: Call) -> None:
        call.expect(1)
        if call.choice(0, ("WT300", "WT200")) == "WT200":
            raise ScpiError(-221, "only the WT300 command set is simulated")

    def _compat(self, call: Call) -> str:
        call.expect(0)
        return "WT300"


def _is_keyword(token: str, keyword: str) -> bool:
    return token.upper() == keyword.upper()


def _pick(value: float, allowed: tuple[float, ...], token: str) -> float:
    for candidate in allowed:
        if math.isclose(value, candidate, rel_tol=1e-6):
            return candidate
    raise ScpiError(-222, f"{token} is not one of {', '.join(f'{a:g}' for a in allowed)}")


def _ascii(value: float, integral: bool) -> str:
    if math.isnan(value):
        return "NAN"
    if math.isinf(value):
        return "INF"
    # The elapsed integration time is sent in whole seconds (<NR1>), the rest in <NR3>.
    return nr1(value) if integral else nr3(value)


def _float_code(value: float) -> float:
    if math.isnan(value):
        return FLOAT_NAN
    if math.isinf(value):
        return FLOAT_INF
    return value
