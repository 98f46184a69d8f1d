"""The harness's clock: every wait in the harness goes through it.

On a real bench it is real time. On SimLab it runs at the bench's clock speed, so a wait
for an hour of depletion takes an hour / speed of real time; the modelled (physical) time
of each step is what the progress display and the record report.
"""

from __future__ import annotations

import time


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
