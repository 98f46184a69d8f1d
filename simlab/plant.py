"""The electrical plant of the simulated bench: AC source -> meter relay -> AC load.

One :class:`Plant` holds the whole single-phase circuit. The simulated instruments act on it
(the AC source sets voltage, frequency and output; the electronic load sets its mode and
setpoint; the meter opens and closes its relay) and read it back (the power analyser on the
load side, the source on the supply side). The load is resistive (power factor 1).

Energy and charge are integrated exactly: between two state changes every quantity is
constant, so the plant closes a segment at each change and extrapolates the open one on
read, using simulated time from the clock. No polling thread is involved, which is what lets
a bench running at ``speed=1000`` still deplete credit to the exact watt-hour. The meter can
subscribe to state changes and use :meth:`Plant.time_to_energy` to schedule the moment its
credit reaches zero.
"""

from __future__ import annotations

import bisect
import logging
import math
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Protocol

log = logging.getLogger(__name__)

# Below this the load cannot draw the current asked of it: an electronic load at low voltage
# behaves no better than this resistance, so CC and CP demand falls to zero with the voltage.
_DEFAULT_MIN_RESISTANCE_OHM = 0.5
_SECONDS_PER_HOUR = 3600.0


class Clock(Protocol):
    """Anything that tells simulated seconds; :class:`simlab.clock.SimClock` is one."""

    def now(self) -> float: ...


class LoadMode(StrEnum):
    """Regulation mode of the electronic load; the setpoint's unit follows the mode."""

    CC = "CC"  # constant current, A rms
    CR = "CR"  # constant resistance, ohm
    CP = "CP"  # constant power, W


@dataclass(frozen=True)
class LoadRating:
    """What the electronic load can sink; demand beyond it is clipped, as a real load does."""

    max_current_a: float = 18.0
    max_power_w: float = 1800.0
    min_resistance_ohm: float = _DEFAULT_MIN_RESISTANCE_OHM


@dataclass(frozen=True)
class PlantState:
    """One consistent snapshot of the circuit at simulated time ``time_s``.

    ``seq`` increases with every state change, so a listener can drop stale snapshots.
    Supply side = source terminals (what powers the meter); load side = after the relay.
    """

    time_s: float
    seq: int
    source_on: bool
    source_tripped: bool
    voltage_setpoint_v: float
    frequency_hz: float
    current_limit_a: float | None
    relay_closed: bool
    load_on: bool
    load_mode: LoadMode
    load_setpoint: float
    supply_voltage_v: float
    supply_current_a: float
    supply_power_w: float
    load_voltage_v: float
    load_current_a: float
    load_power_w: float
    energy_wh: float
    charge_ah: float

    @property
    def meter_power_w(self) -> float:
        """Active power passing through the meter (all of the load's power)."""
        return self.load_power_w


Listener = Callable[[PlantState], None]


class Plant:
    """Thread-safe model of source -> meter relay -> load, with exact energy integration.

    ``noise`` is the relative standard deviation of the measurement noise that
    :meth:`measured` adds (0 = none; seeded by ``seed``). Energy is never noisy.
    ``meter_supply_min_v`` is the supply voltage from which the meter counts as powered.
    ``history_limit`` bounds how many past segments are kept for :meth:`energy_wh` ``at=``.
    """

    def __init__(
        self,
        clock: Clock,
        *,
        load_rating: LoadRating | None = None,
        relay_closed: bool = True,
        noise: float = 0.0,
        seed: int | None = None,
        meter_supply_min_v: float = 1.0,
        history_limit: int = 100_000,
    ) -> None:
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise!r}")
        if history_limit < 2:
            raise ValueError(f"history_limit must be >= 2, got {history_limit!r}")
        self._clock = clock
        self._rating = load_rating or LoadRating()
        self._noise = float(noise)
        self._rng = random.Random(seed)
        self._meter_supply_min_v = float(meter_supply_min_v)
        self._history_limit = history_limit
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        self._seq = 0

        self._source_on = False
        self._tripped = False
        self._v_set = 0.0
        self._f_set = 50.0
        self._i_limit: float | None = None
        self._relay = bool(relay_closed)
        self._load_on = False
        self._load_mode = LoadMode.CC
        self._load_setpoint = 0.0

        self._supply_v = 0.0
        self._load_v = 0.0
        self._current = 0.0
        self._power = 0.0
        self._recompute()

        # Piecewise-constant segments: start time, energy and charge at start, power, current.
        now = clock.now()
        self._seg_t = [now]
        self._seg_e = [0.0]
        self._seg_q = [0.0]
        self._seg_p = [self._power]
        self._seg_i = [self._current]

    @property
    def clock(self) -> Clock:
        return self._clock

    @property
    def load_rating(self) -> LoadRating:
        return self._rating

    # ---- changes -------------------------------------------------------------------------

    def set_source_output(self, on: bool) -> None:
        """Switch the source output; switching it on re-arms a tripped overcurrent latch."""

        def change() -> None:
            self._source_on = bool(on)
            if on:
                self._tripped = False

        self._change(change)

    def set_source_voltage(self, volts: float) -> None:
        """Set the source's rms voltage setpoint."""
        volts = _finite(volts, "voltage")
        if volts < 0:
            raise ValueError(f"voltage must be >= 0, got {volts!r}")
        self._change(lambda: setattr(self, "_v_set", volts))

    def set_source_frequency(self, hertz: float) -> None:
        """Set the source frequency."""
        hertz = _finite(hertz, "frequency")
        if hertz <= 0:
            raise ValueError(f"frequency must be > 0, got {hertz!r}")
        self._change(lambda: setattr(self, "_f_set", hertz))

    def set_source_current_limit(self, amps: float | None) -> None:
        """Overcurrent protection of the source: above ``amps`` its output trips off.

        ``None`` disables the protection.
        """
        if amps is not None:
            amps = _finite(amps, "current limit")
            if amps < 0:
                raise ValueError(f"current limit must be >= 0, got {amps!r}")
        self._change(lambda: setattr(self, "_i_limit", amps))

    def set_relay(self, closed: bool) -> None:
        """Open or close the meter's load switch (called by the simulated meter)."""
        self._change(lambda: setattr(self, "_relay", bool(closed)))

    def set_load_on(self, on: bool) -> None:
        """Switch the electronic load's input on or off."""
        self._change(lambda: setattr(self, "_load_on", bool(on)))

    def set_load(self, mode: LoadMode, setpoint: float) -> None:
        """Set the load's regulation mode and setpoint (A for CC, ohm for CR, W for CP)."""
        mode = LoadMode(mode)
        setpoint = _finite(setpoint, "setpoint")
        if setpoint < 0 or (mode is LoadMode.CR and setpoint == 0):
            raise ValueError(f"invalid {mode} setpoint {setpoint!r}")

        def change() -> None:
            self._load_mode = mode
            self._load_setpoint = setpoint

        self._change(change)

    def subscribe(self, callback: Listener) -> Callable[[], None]:
        """Call ``callback(state)`` after every state change; returns an unsubscribe function.

        Callbacks run on the thread that made the change, with no plant lock held, so they
        may call back into the plant.
        """
        with self._lock:
            self._listeners.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._listeners:
                    self._listeners.remove(callback)

        return unsubscribe

    # ---- reads ---------------------------------------------------------------------------

    def state(self) -> PlantState:
        """Exact snapshot of the circuit now."""
        with self._lock:
            return self._snapshot(self._clock.now())

    def measured(self) -> PlantState:
        """Snapshot as a measuring instrument sees it: voltages and currents carry noise."""
        with self._lock:
            state = self._snapshot(self._clock.now())
            if not self._noise:
                return state
            sv = state.supply_voltage_v * self._jitter()
            si = state.supply_current_a * self._jitter()
            lv = state.load_voltage_v * self._jitter()
            li = state.load_current_a * self._jitter()
        return replace(
            state,
            supply_voltage_v=sv,
            supply_current_a=si,
            supply_power_w=sv * si,
            load_voltage_v=lv,
            load_current_a=li,
            load_power_w=lv * li,
        )

    def energy_wh(self, at: float | None = None) -> float:
        """Energy delivered through the meter since the plant was built, at simulated ``at``.

        ``at`` defaults to now; a past time must lie within the kept history.
        """
        with self._lock:
            return self._integral(self._clock.now() if at is None else at)[0]

    def charge_ah(self, at: float | None = None) -> float:
        """Charge (ampere-hours of rms current) through the meter, like :meth:`energy_wh`."""
        with self._lock:
            return self._integral(self._clock.now() if at is None else at)[1]

    def meter_power_w(self) -> float:
        """Active power passing through the meter now."""
        with self._lock:
            return self._power

    def time_to_energy(self, wh: float) -> float | None:
        """Simulated seconds until ``wh`` more energy has passed at the present power.

        ``None`` when no power flows; 0 for ``wh <= 0``.
        """
        with self._lock:
            power = self._power
        if wh <= 0:
            return 0.0
        if power <= 0:
            return None
        return wh * _SECONDS_PER_HOUR / power

    def meter_supplied(self) -> bool:
        """Whether the meter's supply terminals carry at least ``meter_supply_min_v``."""
        with self._lock:
            return self._supply_v > 0 and self._supply_v >= self._meter_supply_min_v

    # ---- internals -----------------------------------------------------------------------

    def _settings(self) -> tuple[object, ...]:
        return (
            self._source_on,
            self._tripped,
            self._v_set,
            self._f_set,
            self._i_limit,
            self._relay,
            self._load_on,
            self._load_mode,
            self._load_setpoint,
        )

    def _change(self, mutate: Callable[[], None]) -> None:
        with self._lock:
            before = self._settings()
            now = self._clock.now()
            energy, charge = self._integral(now)
            mutate()
            self._recompute()
            if self._settings() == before:
                return
            self._open_segment(now, energy, charge)
            self._seq += 1
            snapshot = self._snapshot(now)
            listeners = list(self._listeners)
        for callback in listeners:
            try:
                callback(snapshot)
            except Exception:
                # A listener's bug must not break the instrument that changed the plant.
                log.exception("plant listener %r failed", callback)

    def _recompute(self) -> None:
        self._supply_v = self._v_set if self._source_on else 0.0
        self._load_v = self._supply_v if self._relay else 0.0
        current = self._load_current(self._load_v)
        if self._i_limit is not None and current > self._i_limit:
            self._tripped = True
            self._source_on = False
            self._supply_v = self._load_v = current = 0.0
        self._current = current
        self._power = self._load_v * current

    def _load_current(self, volts: float) -> float:
        if not self._load_on or volts <= 0:
            return 0.0
        rating = self._rating
        setpoint = self._load_setpoint
        saturation = volts / rating.min_resistance_ohm
        if self._load_mode is LoadMode.CC:
            current = min(setpoint, saturation)
        elif self._load_mode is LoadMode.CR:
            current = volts / setpoint
        else:
            current = min(setpoint / volts, saturation)
        current = min(current, rating.max_current_a)
        if volts * current > rating.max_power_w:
            current = rating.max_power_w / volts
        return current

    def _open_segment(self, now: float, energy: float, charge: float) -> None:
        if self._seg_t[-1] == now:
            self._seg_e[-1], self._seg_q[-1] = energy, charge
            self._seg_p[-1], self._seg_i[-1] = self._power, self._current
        else:
            self._seg_t.append(now)
            self._seg_e.append(energy)
            self._seg_q.append(charge)
            self._seg_p.append(self._power)
            self._seg_i.append(self._current)
        if len(self._seg_t) > 2 * self._history_limit:
            drop = len(self._seg_t) - self._history_limit
            for seq in (self._seg_t, self._seg_e, self._seg_q, self._seg_p, self._seg_i):
                del seq[:drop]

    def _integral(self, at: float) -> tuple[float, float]:
        index = bisect.bisect_right(self._seg_t, at) - 1
        if index < 0:
            raise ValueError(f"time {at!r} is before the plant's kept history")
        if index == len(self._seg_t) - 1 and at > self._clock.now():
            raise ValueError(f"time {at!r} is in the future")
        hours = (at - self._seg_t[index]) / _SECONDS_PER_HOUR
        return (
            self._seg_e[index] + self._seg_p[index] * hours,
            self._seg_q[index] + self._seg_i[index] * hours,
        )

    def _snapshot(self, now: float) -> PlantState:
        energy, charge = self._integral(now)
        return PlantState(
            time_s=now,
            seq=self._seq,
            source_on=self._source_on,
            source_tripped=self._tripped,
            voltage_setpoint_v=self._v_set,
            frequency_hz=self._f_set,
            current_limit_a=self._i_limit,
            relay_closed=self._relay,
            load_on=self._load_on,
            load_mode=self._load_mode,
            load_setpoint=self._load_setpoint,
            supply_voltage_v=self._supply_v,
            supply_current_a=self._current,
            supply_power_w=self._power,
            load_voltage_v=self._load_v,
            load_current_a=self._current,
            load_power_w=self._power,
            energy_wh=energy,
            charge_ah=charge,
        )

    def _jitter(self) -> float:
        return 1.0 + self._rng.gauss(0.0, self._noise)


def _finite(value: float, what: str) -> float:
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return value
