"""The simulated bench's clock: real time or N times faster.

Every simulated device reads time from one :class:`SimClock`, so a bench running at
``speed=1000`` depletes an hour of credit in 3.6 real seconds while every protocol timing
(key hold, display message time, power-limit delay) stays consistent.
"""

from __future__ import annotations

import threading
import time
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

    def to_real(self, sim_seconds: float) -> float:
        """Real seconds that ``sim_seconds`` of simulated time take."""
        return max(0.0, sim_seconds) / self._speed

    def sleep(self, sim_seconds: float) -> None:
        """Block for ``sim_seconds`` of simulated time."""
        time.sleep(self.to_real(sim_seconds))

    def wait(self, event: threading.Event, sim_seconds: float) -> bool:
        """Wait on ``event`` for at most ``sim_seconds`` of simulated time."""
        return event.wait(self.to_real(sim_seconds))
