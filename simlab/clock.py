"""The simulated bench's clock: real time or N times faster, or virtual (event to event).

Every simulated device reads time from one :class:`SimClock`, so a bench running at
``speed=1000`` depletes an hour of credit in 3.6 real seconds while every protocol timing
(key hold, display message time, power-limit delay) stays consistent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SimClock:
    """Simulated time = start + (real elapsed) x speed.

    ``now()`` is monotonic simulated seconds since the clock started; ``wall()`` is the
    simulated wall-clock time. ``sleep()`` takes simulated seconds.
    """

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        if not speed > 0:
            raise ValueError(f"clock speed must be > 0, got {speed!r}")
        self._speed = float(speed)
        self._lock = threading.Lock()
        self._real0 = time.monotonic()
        self._sim0 = 0.0
        self._start = start or datetime.now(UTC).replace(microsecond=0)

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        if not value > 0:
            raise ValueError(f"clock speed must be > 0, got {value!r}")
        with self._lock:
            # Re-anchor so simulated time stays continuous across a speed change.
            real = time.monotonic()
            self._sim0 += (real - self._real0) * self._speed
            self._real0 = real
            self._speed = float(value)

    def now(self) -> float:
        """Simulated seconds since the clock started."""
        with self._lock:
            return self._sim0 + (time.monotonic() - self._real0) * self._speed

    def wall(self) -> datetime:
        """Simulated wall-clock time (UTC)."""
        return self._start + timedelta(seconds=self.now())

    def floor(self, real_s: float) -> float:
        """Simulated seconds that pass while ``real_s`` real seconds do."""
        return max(0.0, real_s) * self._speed

    def to_real(self, sim_seconds: float) -> float:
        """Real seconds that ``sim_seconds`` of simulated time take."""
        return max(0.0, sim_seconds) / self._speed

    def sleep(self, sim_seconds: float) -> None:
        """Block for ``sim_seconds`` of simulated time."""
        time.sleep(self.to_real(sim_seconds))

    def wait(self, event: threading.Event, sim_seconds: float) -> bool:
        """Wait on ``event`` for at most ``sim_seconds`` of simulated time."""
        return event.wait(self.to_real(sim_seconds))


class VirtualClock:
    """Discrete-event time: it stands still while the harness works and jumps to the next
    event whenever someone waits.

    Whoever owns the simulated world binds a ``step(t)`` function with :meth:`bind`: it brings
    the world to time ``t`` and answers when its next event is due (None: nothing scheduled).
    :meth:`sleep` then visits every event up to the wake time in order, so a meter sees each
    of its deadlines exactly when it falls. No thread is involved: one caller drives time.

    Real-time floors do not exist here (:meth:`floor` is 0): nothing real has to follow, so
    every declared duration lasts exactly as declared. ``speed`` is 1 so that "real" seconds
    as the harness counts them are virtual seconds.
    """

    speed = 1.0

    def __init__(self, start: datetime | None = None) -> None:
        self._now = 0.0
        self._start = start or datetime.now(UTC).replace(microsecond=0)
        self._step: Callable[[float], float | None] | None = None
        self._lock = threading.RLock()

    def bind(self, step: Callable[[float], float | None]) -> None:
        self._step = step

    def now(self) -> float:
        return self._now

    def wall(self) -> datetime:
        return self._start + timedelta(seconds=self._now)

    def floor(self, real_s: float) -> float:
        """Simulated seconds that must pass so that ``real_s`` real seconds do: none."""
        return 0.0

    def advance_to(self, t: float) -> None:
        """Move time to ``t`` (never backwards), visiting every event due on the way."""
        with self._lock:
            step = self._step
            if step is None:
                self._now = max(self._now, t)
                return
            due = step(self._now)
            while due is not None and self._now < due <= t:
                self._now = due
                due = step(self._now)
            if t > self._now:
                self._now = t
                step(t)

    def sleep(self, sim_seconds: float) -> None:
        if sim_seconds > 0:
            self.advance_to(self._now + sim_seconds)

    # The harness's clock interface (stslab.clock): on virtual time the harness's own time
    # base is virtual time too.
    def real(self, seconds: float) -> float:
        return max(0.0, seconds)

    def monotonic(self) -> float:
        return self._now

    def pause(self, seconds: float) -> None:
        self.sleep(seconds)
