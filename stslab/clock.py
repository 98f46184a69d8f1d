"""The harness's clock: every wait in the harness goes through it.

Two time bases. *Bench time* (``now``/``sleep``) is the meter's: the modelled, physical time
of each step, which the progress display and the record report. The *observer's* time
(``monotonic``/``pause``) is what the harness's own watches run on: how long a camera has
watched, how long a relay window has been open. On a real bench both are real time. On wire
SimLab bench time runs ``speed`` times faster than the observer's real time. On SimLab's
virtual time (:class:`simlab.clock.VirtualClock`, which implements this same interface) both
are virtual: time stands still while the harness works and jumps to the next event when it
waits.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """What the harness needs of a clock (BenchClock here; SimLab's VirtualClock)."""

    speed: float

    def now(self) -> float: ...
    def sleep(self, seconds: float) -> None: ...
    def real(self, seconds: float) -> float: ...
    def monotonic(self) -> float: ...
    def pause(self, seconds: float) -> None: ...


class BenchClock:
    """Bench time in seconds: real time x ``speed`` (1 on hardware)."""

    def __init__(self, speed: float = 1.0) -> None:
        if not speed > 0:
            raise ValueError("clock speed must be positive")
        self.speed = float(speed)
        self._t0 = time.monotonic()

    def now(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.speed)

    def real(self, seconds: float) -> float:
        """Real seconds that ``seconds`` of bench time take."""
        return max(0.0, seconds) / self.speed

    def monotonic(self) -> float:
        """The observer's time (real seconds)."""
        return time.monotonic()

    def pause(self, seconds: float) -> None:
        """Let ``seconds`` of the observer's time pass (a poll interval)."""
        if seconds > 0:
            time.sleep(seconds)
