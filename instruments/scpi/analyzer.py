"""Power analysers: load-side voltage, current, power, frequency and integrated energy.

:class:`Wt300Analyzer` drives the Yokogawa WT300 series (WT310, WT310HC, WT330) in its own
(WT300) command set. On every (re)connection it selects that command set and ASCII numeric
data and programs the numeric items it reads, so a reading never depends on what the front
panel was left at:

====  ======  ==================================================
item  symbol  meaning
====  ======  ==================================================
1     U       rms voltage of the element, V
2     I       rms current, A
3     P       active power, W
4     FU      voltage frequency, Hz (``NAN`` without a signal)
5     WH      integrated energy, Wh (read on its own)
====  ======  ==================================================
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from instruments.base import InstrumentError, register
from instruments.roles import PowerSample
from instruments.scpi.driver import Remaining, ScpiDriver

_INTEGRATION_STATES = {
    "RES": "reset",
    "STAR": "running",
    "STOP": "stopped",
    "TIM": "timeup",
    "ERR": "error",
}


@register
class Wt300Analyzer(ScpiDriver):
    """Yokogawa WT300 series power analyser on the load side (role ``analyzer``).

    Options: ``element`` (input element, 1..3; the WT310 has one), ``update_rate_s``
    (0.1, 0.25, 0.5, 1, 2 or 5 s; left as set on the instrument when omitted).
    """

    name = "wt300"
    role = "analyzer"
    manufacturers = ("YOKOGAWA",)
    model_pattern = r"WT3\d\d"
    series = "Yokogawa WT300 series power analyser"
    error_query = ":STATus:ERRor?"

    ITEMS: ClassVar[tuple[str, ...]] = ("U", "I", "P", "FU")
    ENERGY_ITEM: ClassVar[int] = len(ITEMS) + 1
    UPDATE_RATES: ClassVar[dict[float, str]] = {
        0.1: "100MS",
        0.25: "250MS",
        0.5: "500MS",
        1.0: "1S",
        2.0: "2S",
        5.0: "5S",
    }

    def __init__(
        self,
        address: str,
        *,
        element: int = 1,
        update_rate_s: float | None = None,
        **options: Any,
    ) -> None:
        if isinstance(element, bool) or not isinstance(element, int) or not 1 <= element <= 3:
            raise ValueError(f"element must be 1, 2 or 3, got {element!r}")
        if update_rate_s is not None and update_rate_s not in self.UPDATE_RATES:
            rates = ", ".join(f"{rate:g}" for rate in self.UPDATE_RATES)
            raise ValueError(f"update_rate_s must be one of {rates}, got {update_rate_s!r}")
        self.element = element
        self.update_rate_s = update_rate_s
        super().__init__(address, **options)

    def _setup(self, remaining: Remaining) -> None:
        commands = [":SYSTem:COMMunicate:COMMand WT300", ":NUMeric:FORMat ASCii"]
        for number, function in enumerate((*self.ITEMS, "WH"), 1):
            commands.append(f":NUMeric:NORMal:ITEM{number} {function},{self.element}")
        commands.append(f":NUMeric:NORMal:NUMber {len(self.ITEMS)}")
        if self.update_rate_s is not None:
            commands.append(f":RATE {self.UPDATE_RATES[self.update_rate_s]}")
        for command in commands:
            self._command(command, remaining)

    def sample(self) -> PowerSample:
        """The latest U, I, P and frequency; InstrumentError when over range or without data."""
        u, i, p, fu = self._query_numbers(
            ":NUMeric:NORMal:VALue?", len(self.ITEMS), ",", "numeric data U,I,P,FU"
        )
        for symbol, value in (("U", u), ("I", i), ("P", p)):
            self._require_reading(symbol, value)
        return PowerSample(u, i, p, fu if math.isfinite(fu) and fu > 0 else None)

    def integration_start(self) -> None:
        """Start (or resume a stopped) energy integration."""
        self.command(":INTEGrate:STARt", sync=True)

    def integration_stop(self) -> None:
        """Stop the integration; the energy stays readable."""
        self.command(":INTEGrate:STOP", sync=True)

    def integration_reset(self) -> None:
        """Reset the integrated values and select manual integration (no timer)."""
        with self._call() as remaining:
            self._command(":INTEGrate:RESet", remaining, sync=True)
            self._command(":INTEGrate:MODE NORMal", remaining)
            self._command(":INTEGrate:TIMer 0,0,0", remaining)

    def integration_state(self) -> str:
        """``reset``, ``running``, ``stopped``, ``timeup`` or ``error``."""
        with self._call() as remaining:
            reply = self._query(":INTEGrate:STATe?", remaining)
            for prefix, state in _INTEGRATION_STATES.items():
                if reply.upper().startswith(prefix):
                    return state
            raise self._violation(f":INTEGrate:STATe? answered {reply!r}")

    def energy_wh(self) -> float:
        """Energy integrated so far (Wh)."""
        command = f":NUMeric:NORMal:VALue? {self.ENERGY_ITEM}"
        value = self._query_numbers(command, 1, ",", "numeric data WH")[0]
        self._require_reading("WH", value)
        return value

    def _require_reading(self, symbol: str, value: float) -> None:
        if math.isnan(value):
            raise self.error(InstrumentError, f"{symbol}: the instrument has no data")
        if math.isinf(value):
            raise self.error(InstrumentError, f"{symbol}: over range (choose a larger range)")
