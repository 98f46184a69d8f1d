"""Transport faults a simulated device can be told to show, for the harness's error paths.

One :class:`TransportFaults` object sits in each simulated device's transport (pty or TCP).
Tests and ``stslab sim`` set it through the side door; the transport consults it for every
chunk of bytes it sends.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field


@dataclass
class TransportFaults:
    """What the transport does wrong right now.

    * ``drop_rate``: probability that an outgoing byte is dropped.
    * ``garble_rate``: probability that an outgoing byte has one bit flipped.
    * ``delay_s``: real seconds added before every reply.
    * ``silent``: the device reads what it is sent and answers nothing.
    * ``vanished``: the port/socket is gone (pty closed, TCP listener refusing); it comes back
      when cleared.
    """

    drop_rate: float = 0.0
    garble_rate: float = 0.0
    delay_s: float = 0.0
    silent: bool = False
    vanished: bool = False
    seed: int | None = None
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def clear(self) -> None:
        with self._lock:
            self.drop_rate = 0.0
            self.garble_rate = 0.0
            self.delay_s = 0.0
            self.silent = False
            self.vanished = False

    @property
    def active(self) -> bool:
        return bool(
            self.drop_rate or self.garble_rate or self.delay_s or self.silent or self.vanished
        )

    def apply(self, data: bytes) -> bytes:
        """The bytes that actually leave the device for ``data`` (empty when silent)."""
        if self.silent or self.vanished:
            return b""
        if not (self.drop_rate or self.garble_rate):
            return data
        out = bytearray()
        with self._lock:
            for byte in data:
                if self.drop_rate and self._rng.random() < self.drop_rate:
                    continue
                if self.garble_rate and self._rng.random() < self.garble_rate:
                    byte ^= 1 << self._rng.randrange(8)
                out.append(byte)
        return bytes(out)
