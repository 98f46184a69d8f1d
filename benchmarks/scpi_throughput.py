"""SCPI queries per second against the simulated power analyser, through pyvisa over TCP.

Prints ``name=value`` lines:

* ``scpi_idn_queries_per_s``: ``*IDN?`` round trips (parser + transport floor);
* ``scpi_value_queries_per_s``: ``:NUMeric:NORMal:VALue?`` with the 10 default items;
* ``scpi_chained_units_per_s``: message units per second in ``MEAS:VOLT?;CURR?;POW?``
  lines to the AC load (three units per round trip);
* ``scpi_in_process_value_queries_per_s``: the same VALue? query without the network.

Usage: ``python benchmarks/scpi_throughput.py [seconds-per-figure]``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import pyvisa

from simlab.clock import SimClock
from simlab.plant import LoadMode, Plant
from simlab.scpi import Chroma63800, YokogawaWT310


def rate(action: Callable[[], object], seconds: float) -> float:
    """Calls of ``action`` per second over about ``seconds``."""
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        action()
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start)


def main(seconds: float) -> None:
    plant = Plant(SimClock(speed=1.0))
    plant.set_source_voltage(230.0)
    plant.set_source_output(True)
    plant.set_load(LoadMode.CP, 1000.0)
    plant.set_load_on(True)
    manager = pyvisa.ResourceManager("@py")
    with YokogawaWT310(plant) as analyser, Chroma63800(plant) as load:
        wt = manager.open_resource(
            analyser.resource, read_termination="\n", write_termination="\n", timeout=5000
        )
        ld = manager.open_resource(
            load.resource, read_termination="\n", write_termination="\n", timeout=5000
        )
        try:
            wt.query("*IDN?")
            figures = {
                "scpi_idn_queries_per_s": rate(lambda: wt.query("*IDN?"), seconds),
                "scpi_value_queries_per_s": rate(lambda: wt.query(":NUM:NORM:VAL?"), seconds),
                "scpi_chained_units_per_s": 3
                * rate(lambda: ld.query("MEAS:VOLT?;CURR?;POW?"), seconds),
                "scpi_in_process_value_queries_per_s": rate(
                    lambda: analyser.execute(":NUM:NORM:VAL?"), seconds
                ),
            }
        finally:
            wt.close()
            ld.close()
            manager.close()
    for name, value in figures.items():
        print(f"{name}={value:.0f}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 2.0)
