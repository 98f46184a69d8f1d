"""Simulated SCPI instruments served over TCP on 127.0.0.1.

Each instrument acts on a :class:`simlab.plant.Plant` and is reached like a real one, by a
VISA resource ``TCPIP::127.0.0.1::<port>::SOCKET`` with ``\\n`` terminations:

* :class:`YokogawaWT310` - power analyser on the load side (WT300 series command set);
* :class:`Chroma61500` - programmable AC source feeding the meter (61500 series);
* :class:`Chroma63800` - AC electronic load after the meter's relay (63800 series).

Each has ``start()``/``stop()`` (or ``with``), ``port``, ``resource`` and ``faults``.
"""

from simlab.scpi.chroma_61500 import Chroma61500
from simlab.scpi.chroma_63800 import Chroma63800
from simlab.scpi.server import ScpiError, ScpiInstrument
from simlab.scpi.yokogawa_wt310 import YokogawaWT310

__all__ = ["Chroma61500", "Chroma63800", "ScpiError", "ScpiInstrument", "YokogawaWT310"]
