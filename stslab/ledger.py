"""The DUT ledger: what the vending side must remember about one meter.

A real meter cannot be reset: its TID store only moves forward and key changes are
permanent. The ledger keeps, per meter serial, the current key's attributes (never the key:
it is derived again from the vending key), the previous key's attributes, the highest TID
issued, and the TIDs the meter accepted since its store was last cleared, so a second
campaign on the same meter mints tokens the meter will take. It is written atomically
(temporary file, fsync, rename) after every change.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from sts.tid import TID_LIMIT
from sts.vending import KEN_NEVER_EXPIRES, TidAllocator
from stslab import crash
from stslab.atomic import replace_file


@dataclass(frozen=True)
class KeyState:
    """A decoder key's attributes as the ledger keeps them (no key material)."""

    krn: int
    kt: int
    ti: int
    sgc: int
    base_date: int
    ea: str
    dkga: str
    ken: int = KEN_NEVER_EXPIRES
    fingerprint: str = ""
    #: A key a meter put together from sections of different key change sets: per KCT
    #: subclass (3, 4, and 8, 9 for a 128-bit key), the set that section came from. The
    #: key is those sets' keys' words (STS sections carry nothing that ties them to one set).
    parts: tuple[tuple[int, KeyState], ...] = ()

    def __post_init__(self) -> None:
        # Read back from JSON (lists, dicts): the same value as the one written.
        parts = tuple(
            (int(n), p if isinstance(p, KeyState) else KeyState(**p)) for n, p in self.parts
        )
        object.__setattr__(self, "parts", parts)


@dataclass(frozen=True)
class HeldSection:
    """A key change section the meter said it keeps, waiting for the rest of its set (no
    readout shows these; the meter's answer to each section does)."""

    #: KCT subclass: 3 and 4 (first and second section), 8 and 9 (third and fourth).
    subclass: int
    #: The set it came from; None when the meter's answer to it was not read.
    source: KeyState | None
    rollover: bool = False
    #: The section's 20 digits (token digits are not secret; the key is never kept).
    digits: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.source, dict):  # read back from JSON
            object.__setattr__(self, "source", KeyState(**self.source))


@dataclass
class Ledger:
    serial: str
    pan: str
    key: KeyState
    previous_key: KeyState | None = None
    last_tid: int | None = None
    #: TIDs the meter accepted since its store was cleared (most recent last).
    accepted: list[int] = field(default_factory=list)
    #: The smallest value the meter's store held when it was last cleared or new.
    store_floor: int = 0
    tokens_issued: int = 0
    #: Key change sections the meter keeps waiting for the rest of their set, by subclass.
    held_sections: list[HeldSection] = field(default_factory=list)
    path: Path | None = field(default=None, repr=False, compare=False)

    # -- TIDs -----------------------------------------------------------------------------

    def allocator(self) -> TidAllocator:
        return TidAllocator(self.last_tid, self.key.ken)

    def next_tid(self) -> int:
        """The next TID to issue (not yet issued)."""
        floor = self.store_floor + 1
        requested = max(floor, 0 if self.last_tid is None else self.last_tid + 1)
        return self.allocator().peek(min(requested, TID_LIMIT - 1))

    def next_tid_unchecked(self) -> int:
        """The next TID in sequence, without the KEN check (for minting past it on purpose)."""
        floor = self.store_floor + 1
        return min(max(floor, 0 if self.last_tid is None else self.last_tid + 1), TID_LIMIT - 1)

    def issue(self, tid: int) -> None:
        """Remember ``tid`` as issued (even if never accepted: TIDs only move forward)."""
        if self.last_tid is None or tid > self.last_tid:
            self.last_tid = tid
        self.tokens_issued += 1
        self.save()

    def accepted_tid(self, tid: int, store_size: int) -> None:
        self.accepted.append(tid)
        del self.accepted[: max(0, len(self.accepted) - store_size)]
        self.save()

    def store_min(self, store_size: int) -> int:
        """The smallest TID the meter's store holds, by the harness's own record."""
        if len(self.accepted) >= store_size:
            return min(self.accepted[-store_size:])
        return min([self.store_floor, *self.accepted])

    # -- keys -----------------------------------------------------------------------------

    def key_installed(self, new: KeyState, rollover: bool) -> None:
        if new != self.key:
            # A key change to the key the meter has (a scenario run again after a crash had
            # installed it) replaces nothing: the previous key stays the one before it.
            self.previous_key = self.key
        self.key = new
        self.held_sections = []  # a set completed: the meter keeps no section of any
        if rollover:
            self.accepted = []
            self.store_floor = 0
            self.last_tid = None
        self.save()

    def held(self) -> dict[int, HeldSection]:
        """The sections the meter keeps, by KCT subclass."""
        return {h.subclass: h for h in self.held_sections}

    def keep_section(self, section: HeldSection) -> None:
        """The meter keeps ``section`` in place of any it held of the same subclass."""
        others = [h for h in self.held_sections if h.subclass != section.subclass]
        self.sections_held([*others, section])

    def sections_held(self, sections: list[HeldSection]) -> None:
        """What the meter keeps of key change sets now (after an answer, a power loss)."""
        if sections != self.held_sections:
            self.held_sections = sorted(sections, key=lambda h: h.subclass)
            self.save()

    # -- persistence ----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("path", None)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any], path: Path | None = None) -> Ledger:
        key = KeyState(**data.pop("key"))
        prev = data.pop("previous_key", None)
        held = [HeldSection(**h) for h in data.pop("held_sections", [])]
        return cls(key=key, previous_key=KeyState(**prev) if prev else None, held_sections=held,
                   path=path, **data)  # fmt: skip

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        text = io.StringIO()
        json.dump(self.to_json(), text, indent=1, sort_keys=True)
        replace_file(self.path, text.getvalue().encode(), crash_point="ledger-scratch")
        crash.point("ledger-saved")

    def copy(self) -> Ledger:
        return replace(self, accepted=list(self.accepted), held_sections=list(self.held_sections))


def ledger_path(directory: Path, serial: str) -> Path:
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in serial)
    return directory / f"{safe}.json"


def load_ledger(path: Path) -> Ledger | None:
    if not path.exists():
        return None
    with open(path) as fh:
        return Ledger.from_json(json.load(fh), path)
