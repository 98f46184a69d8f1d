"""The vending side's duties: distinct TIDs per meter, KEN limits, key change token sets.

Nothing here persists anything: the caller owns the state (the harness keeps it in its DUT
ledger) and hands it back in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sts.errors import StsError, TokenExhaustedError
from sts.identity import check_key_type, check_krn, check_sgc, check_ti
from sts.keys import DecoderKey
from sts.tid import TID_LIMIT, BaseDate, tid_from_datetime
from sts.tokens import (
    KeyChangeToken,
    Set1stSectionDecoderKey,
    Set2ndSectionDecoderKey,
    Set3rdSectionDecoderKey,
    Set4thSectionDecoderKey,
    encode,
)

KEN_NEVER_EXPIRES = 255


def ken_allows(tid: int, ken: int) -> bool:
    """Whether a TID is within key expiry number ``ken`` (one unit = 2**16 minutes)."""
    return ken == KEN_NEVER_EXPIRES or tid >> 16 <= ken


def check_ken(ken: int, param: str = "ken") -> int:
    if not isinstance(ken, int) or isinstance(ken, bool) or not 0 <= ken <= 255:
        raise StsError(param, f"{ken!r} is not a key expiry number (0 to 255)")
    return ken


class TidAllocator:
    """Hands out TIDs for one meter, never the same one twice.

    A requested TID at or below the last one issued moves to the next free minute, so two
    tokens asked for in one minute get consecutive minutes. A TID past the key's KEN is
    refused (:class:`TokenExhaustedError`). ``last_issued`` is the state to persist.
    """

    def __init__(self, last_issued: int | None = None, ken: int = KEN_NEVER_EXPIRES) -> None:
        if last_issued is not None and not 0 <= last_issued < TID_LIMIT:
            raise StsError("last_issued", f"{last_issued!r} is not a 24-bit TID")
        self.last_issued = last_issued
        self.ken = check_ken(ken)

    def peek(self, requested: int) -> int:
        """The TID :meth:`allocate` would issue for ``requested``, without issuing it."""
        if not isinstance(requested, int) or not 0 <= requested < TID_LIMIT:
            raise StsError("tid", f"{requested!r} is not a 24-bit TID")
        tid = requested
        if self.last_issued is not None and tid <= self.last_issued:
            tid = self.last_issued + 1
        if tid >= TID_LIMIT:
            raise TokenExhaustedError(
                "tid", "no TID is left under this base date; a rollover key change is needed"
            )
        if not ken_allows(tid, self.ken):
            raise TokenExhaustedError(
                "tid", f"TID {tid} is past the key's KEN {self.ken}; a key change is needed"
            )
        return tid

    def allocate(self, requested: int) -> int:
        """Issue a TID at or after ``requested``; remembers it as issued."""
        tid = self.peek(requested)
        self.last_issued = tid
        return tid

    def allocate_at(self, when: datetime, base: BaseDate = BaseDate.Y1993) -> int:
        """Issue the TID for wall-clock time ``when`` (or the next free minute)."""
        return self.allocate(tid_from_datetime(when, base))


@dataclass(frozen=True)
class NewKey:
    """What a key change installs: the key and its attributes carried in the KCTs."""

    key: DecoderKey
    krn: int
    kt: int
    ti: int
    ken: int = KEN_NEVER_EXPIRES
    ro: bool = False
    sgc: int | None = None  # carried only by the 4-token set (128-bit keys)

    def __post_init__(self) -> None:
        check_krn(self.krn, "new_krn")
        check_key_type(self.kt, "new_kt")
        check_ti(self.ti, "new_ti")
        check_ken(self.ken)
        if self.key.ea.key_bytes == 16:
            if self.sgc is None:
                raise StsError("new_sgc", "a 128-bit key change carries the SGC; give it")
            check_sgc(self.sgc, "new_sgc")


def key_change_tokens(new: NewKey) -> tuple[KeyChangeToken, ...]:
    """The KCT set for ``new``: 2 tokens for a 64-bit key, 4 for a 128-bit key."""
    value = int.from_bytes(new.key.value, "big")
    kenho, kenlo = new.ken >> 4, new.ken & 0xF
    if new.key.ea.key_bytes == 8:
        return (
            Set1stSectionDecoderKey(kenho, new.krn, new.ro, new.kt, value >> 32),
            Set2ndSectionDecoderKey(kenlo, new.ti, value & 0xFFFFFFFF),
        )
    sgc = new.sgc or 0
    return (
        Set1stSectionDecoderKey(kenho, new.krn, new.ro, new.kt, value >> 96),
        Set2ndSectionDecoderKey(kenlo, new.ti, value & 0xFFFFFFFF),
        Set3rdSectionDecoderKey(sgc & 0xFFF, value >> 64 & 0xFFFFFFFF),
        Set4thSectionDecoderKey(sgc >> 12, value >> 32 & 0xFFFFFFFF),
    )


def encode_key_change(new: NewKey, current: DecoderKey) -> tuple[str, ...]:
    """The KCT set for ``new`` as 20-digit tokens, encrypted under the ``current`` key."""
    if current.ea is not new.key.ea:
        raise StsError(
            "new_key", f"the new key is for EA{new.key.ea.code}, the meter uses EA{current.ea.code}"
        )
    return tuple(encode(t, current) for t in key_change_tokens(new))
