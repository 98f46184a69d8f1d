"""TIDs: whole minutes since one of the three base dates, 24 bits."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sts.errors import StsError
from sts.tid import TID_LIMIT, BaseDate, check_tid, datetime_from_tid, tid_from_datetime

tids = st.integers(min_value=0, max_value=TID_LIMIT - 1)
bases = st.sampled_from(list(BaseDate))


@settings(max_examples=300, deadline=None)
@given(tids, bases)
def test_tid_to_datetime_and_back(tid: int, base: BaseDate) -> None:
    when = datetime_from_tid(tid, base)
    assert base.start <= when < base.end
    assert when.second == 0 and when.microsecond == 0
    assert tid_from_datetime(when, base) == tid


@settings(max_examples=300, deadline=None)
@given(bases, st.integers(min_value=0, max_value=TID_LIMIT * 60 - 1))
def test_datetime_to_tid_counts_whole_minutes(base: BaseDate, seconds: int) -> None:
    when = base.start + timedelta(seconds=seconds)
    tid = tid_from_datetime(when, base)
    assert tid == seconds // 60
    assert datetime_from_tid(tid, base) == when.replace(second=0)


@pytest.mark.parametrize("base", list(BaseDate))
def test_range_ends_are_refused(base: BaseDate) -> None:
    assert tid_from_datetime(base.start, base) == 0
    assert tid_from_datetime(base.end - timedelta(minutes=1), base) == TID_LIMIT - 1
    for outside in (base.start - timedelta(seconds=1), base.end):
        with pytest.raises(StsError) as info:
            tid_from_datetime(outside, base, "at")
        assert info.value.param == "at"


def test_1993_range_ends_at_the_rollover() -> None:
    # REFERENCE.md §5: the 1993 range ends 2024-11-24 20:15.
    assert BaseDate.Y1993.end - timedelta(minutes=1) == datetime(2024, 11, 24, 20, 15)
    assert tid_from_datetime(datetime(2024, 11, 24, 20, 15)) == TID_LIMIT - 1
    with pytest.raises(StsError):
        tid_from_datetime(datetime(2024, 11, 24, 20, 16))
    # The same minute is valid under the 2014 base date.
    assert tid_from_datetime(datetime(2024, 11, 24, 20, 16), BaseDate.Y2014) > 0


def test_base_date_codes() -> None:
    assert [b.code for b in BaseDate] == ["93", "14", "35"]
    assert BaseDate.parse("2014") is BaseDate.Y2014
    with pytest.raises(StsError) as info:
        BaseDate.parse("2000", "base_date")
    assert info.value.param == "base_date"


def test_aware_times_are_taken_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    aware = datetime(2004, 3, 1, 15, 55, tzinfo=plus_two)
    assert tid_from_datetime(aware) == tid_from_datetime(datetime(2004, 3, 1, 13, 55))


@pytest.mark.parametrize("bad", [-1, TID_LIMIT, True, 1.0])
def test_tid_outside_24_bits_is_refused(bad: object) -> None:
    with pytest.raises(StsError):
        check_tid(bad)  # type: ignore[arg-type]
    with pytest.raises(StsError):
        datetime_from_tid(bad)  # type: ignore[arg-type]
