"""SCPI instrument drivers over VISA (pyvisa with the pyvisa-py backend by default).

A bench file names each instrument by driver and VISA resource; a simulated instrument is
reached the same way (``TCPIP::127.0.0.1::<port>::SOCKET``). Drivers and the commands they send
(every configuration command is followed by an error-queue drain; ``*OPC?`` marks a wait for
completion):

* ``wt300`` :class:`Wt300Analyzer` (Yokogawa WT310/WT310HC/WT330), role ``analyzer``:
  on connect ``:SYSTem:COMMunicate:COMMand WT300``, ``:NUMeric:FORMat ASCii``,
  ``:NUMeric:NORMal:ITEM1..5 U|I|P|FU|WH,<element>``, ``:NUMeric:NORMal:NUMber 4``,
  optionally ``:RATE <rate>``; ``sample()`` ``:NUMeric:NORMal:VALue?``; ``energy_wh()``
  ``:NUMeric:NORMal:VALue? 5``; ``integration_start/stop()`` ``:INTEGrate:STARt|STOP`` +
  ``*OPC?``; ``integration_reset()`` ``:INTEGrate:RESet`` + ``*OPC?``,
  ``:INTEGrate:MODE NORMal``, ``:INTEGrate:TIMer 0,0,0``; ``integration_state()``
  ``:INTEGrate:STATe?``; errors ``:STATus:ERRor?``.
* ``chroma61500`` :class:`Chroma61500Source`, role ``source``: ``VOLT:AC <V>``,
  ``FREQ <Hz>``, ``OUTP ON|OFF`` (each + ``*OPC?``); ``measure()``
  ``MEAS:VOLT:ACDC?;:MEAS:CURR:AC?;:MEAS:POW:AC?;:MEAS:FREQ?``; errors ``:SYSTem:ERRor?``.
* ``chroma63800`` :class:`Chroma63800Load`, role ``load``: ``set_mode`` CC/CR/CP ->
  ``CURR:STAT:L1|RES:STAT:L1|POW:STAT:L1 <level>`` then ``MODE CURR|RES|POW`` + ``*OPC?``;
  ``LOAD ON|OFF`` + ``*OPC?``; ``measure()`` ``MEAS:VOLT?;:MEAS:CURR?;:MEAS:POW?;:MEAS:FREQ?``;
  errors ``:SYSTem:ERRor?``.

Every driver sends ``*IDN?`` on (re)connection and checks the manufacturer and model.
"""

from instruments.scpi.analyzer import Wt300Analyzer
from instruments.scpi.driver import ScpiDriver, check_range, nrf
from instruments.scpi.load import Chroma63800Load, LoadRating, ModeCommands, ScpiAcLoad
from instruments.scpi.source import Chroma61500Source, ScpiAcSource

__all__ = [
    "Chroma61500Source",
    "Chroma63800Load",
    "LoadRating",
    "ModeCommands",
    "ScpiAcLoad",
    "ScpiAcSource",
    "ScpiDriver",
    "Wt300Analyzer",
    "check_range",
    "nrf",
]
