"""Token identifiers: whole minutes since a base date, 24 bits (IEC 62055-41).

Times are wall-clock times in the vending system's reference; a naive ``datetime`` is taken
as it is, an aware one is converted to UTC first. Each base date covers 2**24 minutes
(about 31.9 years): the 1993 range ends 2024-11-24 20:15.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import IntEnum

from sts.errors import StsError

TID_BITS = 24
TID_LIMIT = 1 << TID_BITS


class BaseDate(IntEnum):
    """The three STS base dates, by year."""

    Y1993 = 1993
    Y2014 = 2014
    Y2035 = 2035

    @property
    def start(self) -> datetime:
        return datetime(int(self), 1, 1)

    @property
    def end(self) -> datetime:
        """The first minute this base date can no longer express."""
        return self.start + timedelta(minutes=TID_LIMIT)

    @property
    def code(self) -> str:
        """Two-digit code used by DKGA04 ("93", "14", "35")."""
        return f"{int(self) % 100:02d}"

    @classmethod
    def parse(cls, value: int | str, param: str = "base_date") -> BaseDate:
        try:
            return cls(int(value))
        except (ValueError, TypeError):
            raise StsError(param, f"{value!r} is not a base date (1993, 2014 or 2035)") from None


def _naive(when: datetime) -> datetime:
    if when.tzinfo is not None:
        from datetime import UTC

        when = when.astimezone(UTC).replace(tzinfo=None)
    return when


def tid_from_datetime(when: datetime, base: BaseDate = BaseDate.Y1993, param: str = "at") -> int:
    """Whole minutes from ``base`` to ``when``; refuses times outside the base date's range."""
    when = _naive(when)
    base = BaseDate(base)
    if when < base.start or when >= base.end:
        raise StsError(
            param,
            f"{when:%Y-%m-%d %H:%M} is outside base date {int(base)}'s range "
            f"({base.start:%Y-%m-%d %H:%M} to {base.end - timedelta(minutes=1):%Y-%m-%d %H:%M})",
        )
    return int((when - base.start).total_seconds() // 60)


def datetime_from_tid(tid: int, base: BaseDate = BaseDate.Y1993) -> datetime:
    """The minute a TID stands for under ``base``."""
    check_tid(tid)
    return BaseDate(base).start + timedelta(minutes=tid)


def check_tid(tid: int, param: str = "tid") -> int:
    if not isinstance(tid, int) or isinstance(tid, bool) or not 0 <= tid < TID_LIMIT:
        raise StsError(param, f"{tid!r} is not a 24-bit TID (0 to {TID_LIMIT - 1})")
    return tid
