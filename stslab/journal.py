"""The campaign journal: append-only JSON lines, fsynced per record, hash-chained.

Each line is one record ``{"seq", "t", "kind", "data", "prev", "hash"}`` where ``hash`` is
the SHA-256 of the canonical JSON of the other fields and ``prev`` is the previous line's
hash. A killed campaign leaves a journal that still verifies up to its last complete line;
a truncated last line, an edited line, a removed line or lines out of order are detected
and reported, never silently used.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stslab import crash

GENESIS = "0" * 64


def canonical(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8 (what hashes are taken over)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _digest(seq: int, t: float, kind: str, data: Any, prev: str) -> str:
    body = {"seq": seq, "t": t, "kind": kind, "data": data, "prev": prev}
    return hashlib.sha256(canonical(body)).hexdigest()


class JournalError(Exception):
    """The journal is corrupted or truncated; the message says where."""


@dataclass(frozen=True)
class Entry:
    seq: int
    t: float
    kind: str
    data: dict[str, Any]
    hash: str


class Journal:
    """Writer for one run's journal. Opening an existing journal verifies it first and
    continues its chain (a resumed run)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._prev = GENESIS
        self._seq = 0
        #: The half-written last record cut off on reopening: its size and SHA-256, or None.
        self.repaired: dict[str, Any] | None = None
        if self.path.exists():
            entries = read_journal(self.path, torn_tail=True)
            if entries:
                self._prev = entries[-1].hash
                self._seq = entries[-1].seq + 1
            self.repaired = _cut_torn_tail(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, kind: str, data: dict[str, Any]) -> Entry:
        t = round(time.time(), 6)
        digest = _digest(self._seq, t, kind, data, self._prev)
        line = canonical(
            {"seq": self._seq, "t": t, "kind": kind, "data": data, "prev": self._prev,
             "hash": digest}
        ) + b"\n"  # fmt: skip
        crash.point("journal-torn", lambda: os.write(self._fd, line[: len(line) // 2]))
        os.write(self._fd, line)
        os.fsync(self._fd)
        crash.point("journal-appended")
        entry = Entry(self._seq, t, kind, data, digest)
        self._prev = digest
        self._seq += 1
        return entry

    @property
    def head(self) -> str:
        """The hash of the last record (the chain's head)."""
        return self._prev

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_journal(path: str | Path, *, torn_tail: bool = False) -> Iterator[Entry]:
    """Verified entries in order; :class:`JournalError` at the first problem. With
    ``torn_tail`` a last line without its end of line (a record the process died writing)
    ends the journal instead."""
    prev = GENESIS
    expected_seq = 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            if not raw.endswith(b"\n"):
                if torn_tail:
                    return
                raise JournalError(f"{path}:{lineno}: truncated record (no end of line)")
            try:
                rec = json.loads(raw)
                seq, t, kind, data = rec["seq"], rec["t"], rec["kind"], rec["data"]
                stored_prev, stored_hash = rec["prev"], rec["hash"]
            except (ValueError, KeyError, TypeError):
                raise JournalError(f"{path}:{lineno}: not a journal record") from None
            if seq != expected_seq:
                raise JournalError(f"{path}:{lineno}: record {seq} where {expected_seq} belongs")
            if stored_prev != prev:
                raise JournalError(f"{path}:{lineno}: chain broken (previous hash differs)")
            if _digest(seq, t, kind, data, prev) != stored_hash:
                raise JournalError(f"{path}:{lineno}: record altered (hash does not match)")
            yield Entry(seq, t, kind, data, stored_hash)
            prev = stored_hash
            expected_seq += 1


def read_journal(path: str | Path, *, torn_tail: bool = False) -> list[Entry]:
    return list(iter_journal(path, torn_tail=torn_tail))


def torn_tail_size(path: str | Path) -> int:
    """Bytes after the journal's last end of line (0: every record is complete)."""
    with open(path, "rb") as fh:
        data = fh.read()
    return len(data) - (data.rfind(b"\n") + 1)


def _cut_torn_tail(path: Path) -> dict[str, Any] | None:
    """Cut a half-written last record off (its bytes are no record: nothing was built on
    them); what was cut, for the journal's next record."""
    size = torn_tail_size(path)
    if size == 0:
        return None
    with open(path, "r+b") as fh:
        fh.seek(-size, os.SEEK_END)
        torn = fh.read()
        fh.truncate(fh.tell() - size)
        fh.flush()
        os.fsync(fh.fileno())
    return {"torn_record_bytes": size, "torn_record_sha256": hashlib.sha256(torn).hexdigest()}
