"""Crash points: named moments where a test can kill the harness without warning.

``STSLAB_CRASH_AT=POINT:N`` makes the process kill itself with SIGKILL the N-th time it
reaches ``POINT`` (no cleanup, no ``finally``: what a power cut or ``kill -9`` leaves behind),
so the crash soak and the resume tests can aim at the moments that matter. Unset, every
point is a dictionary look-up and nothing else. The points:

``journal-torn``     half of a journal record written (the rest never reaches the disk)
``journal-appended`` a journal record on disk, before the harness acts on it
``ledger-scratch``   the updated DUT ledger in its scratch file, not yet renamed over the old
``ledger-saved``     the DUT ledger replaced, before anything that follows is recorded
``report-signed``    the signed report in memory, nothing of it written
``report-torn``      half of the signed report written
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Callable

ENV = "STSLAB_CRASH_AT"
POINTS = ("journal-torn", "journal-appended", "ledger-scratch", "ledger-saved",
          "report-signed", "report-torn")  # fmt: skip

_reached: Counter[str] = Counter()


def point(name: str, before: Callable[[], object] | None = None) -> None:
    """Die here if ``STSLAB_CRASH_AT`` names ``name`` and this is its N-th passage;
    ``before`` runs first (it leaves the half-done write a crash would)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, count = spec.partition(":")
    if target != name:
        return
    _reached[name] += 1
    if _reached[name] != int(count or 1):
        return
    if before is not None:
        before()
    os.kill(os.getpid(), signal.SIGKILL)
