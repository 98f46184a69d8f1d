"""Magnetic token cards as a meter model declares them: ISO track rules and the card layout.

PROVISIONAL: the IEC 62055-51 magnetic card layout is not public, so where the token sits on
the card is a declared per-meter parameter (a DUT profile's ``card`` section). The ISO/IEC
7811-2 track character sets and the ISO/IEC 7813 / ISO 4909 capacities are public. SimLab's
card writer and the harness's MSR605 driver both read them here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

#: Start and end sentinels per track (the writer adds them; they cannot be data).
SENTINELS = {1: ("%", "?"), 2: (";", "?"), 3: (";", "?")}
# ISO/IEC 7811-2 character sets; capacities (ISO/IEC 7813, ISO 4909) count start sentinel,
# end sentinel and LRC, so a track holds three data characters fewer.
TRACK_CAPACITY = {1: 79, 2: 40, 3: 107}
_NUMERIC = frozenset("0123456789:<=>")
TRACK_CHARACTERS = {
    1: frozenset(chr(code) for code in range(0x20, 0x60)) - {"%", "?"},
    2: _NUMERIC,
    3: _NUMERIC,
}


def iso_track_problem(track: int, data: str) -> str | None:
    """Why ``data`` cannot be written on ``track`` in ISO format, or None when it can."""
    if track not in TRACK_CAPACITY:
        return f"there is no track {track}"
    bad = sorted(set(data) - TRACK_CHARACTERS[track])
    if bad:
        return f"track {track} cannot carry {''.join(bad)!r}"
    limit = TRACK_CAPACITY[track] - 3
    if len(data) > limit:
        return f"track {track} holds at most {limit} data characters, got {len(data)}"
    return None


@dataclass(frozen=True)
class CardLayout:
    """Where the 20-digit token sits on a magnetic card (a meter's card profile).

    PROVISIONAL: the IEC 62055-51 layout is not public. The token track carries
    ``prefix + token [+ field_separator + field ...] + suffix``; sentinels and LRC are the
    writer's. Default: the token alone on track 2.
    """

    token_track: int = 2
    prefix: str = ""
    suffix: str = ""
    field_separator: str = "="

    def __post_init__(self) -> None:
        if self.token_track not in TRACK_CAPACITY:
            raise ValueError(f"token_track {self.token_track!r} is not 1, 2 or 3")
        if len(self.field_separator) != 1:
            raise ValueError(f"field_separator {self.field_separator!r} is not one character")
        if self.field_separator.isdigit():
            raise ValueError(f"field_separator {self.field_separator!r} is a digit")
        problem = iso_track_problem(self.token_track, self.field_separator) or iso_track_problem(
            self.token_track, self.prefix + "0" * 20 + self.suffix
        )
        if problem:
            raise ValueError(f"card layout does not fit: {problem}")

    def tracks_for(self, token: str, fields: Sequence[str] = ()) -> dict[int, str]:
        """The tracks to write for ``token`` (20 digits) and optional extra fields."""
        _check_token(token)
        data = self.prefix + self.field_separator.join([token, *fields]) + self.suffix
        problem = iso_track_problem(self.token_track, data)
        if problem:
            raise ValueError(f"card data does not fit: {problem}")
        return {self.token_track: data}

    def token_from(self, tracks: Mapping[int, str]) -> str:
        """The token a card carries; ValueError when the card does not fit this layout."""
        data = tracks.get(self.token_track, "")
        if not (data.startswith(self.prefix) and data.endswith(self.suffix)):
            raise ValueError(f"track {self.token_track} {data!r} does not fit the card layout")
        data = data[len(self.prefix) : len(data) - len(self.suffix)]
        token = data.split(self.field_separator, 1)[0]
        _check_token(token, f"track {self.token_track}")
        return token


def _check_token(token: str, where: str = "token") -> None:
    if not (isinstance(token, str) and len(token) == 20 and token.isascii() and token.isdigit()):
        raise ValueError(f"{where}: {token!r} is not a 20-digit token")
