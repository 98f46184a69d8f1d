"""The campaign journal: records round-trip, the hash chain holds, and every kind of damage is
found and located (file and line), never silently used."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from stslab.journal import GENESIS, Journal, JournalError, canonical, read_journal

RECORDS = [
    ("start", {"run_id": "R1", "scenarios": ["A-B-1", "A-B-2"], "note": "début"}),
    ("step", {"scenario": "A-B-1", "outcome": "PASS", "values": [1, 2.5, None, True]}),
    ("step", {"scenario": "A-B-1", "outcome": "FAIL", "observed": {"credit": "0.200"}}),
    ("end", {"complete": True}),
]


def write_journal(path: Path, records: list[tuple[str, dict]] = RECORDS) -> list:
    with Journal(path) as journal:
        return [journal.append(kind, data) for kind, data in records]


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def expect_damage(path: Path, line: int) -> JournalError:
    """Reading ``path`` fails, and the message names the file and ``line``."""
    with pytest.raises(JournalError) as info:
        read_journal(path)
    assert f"{path}:{line}:" in str(info.value)
    return info.value


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    written = write_journal(path)
    read = read_journal(path)
    assert [(e.kind, e.data) for e in read] == RECORDS
    assert [e.seq for e in read] == [0, 1, 2, 3]
    assert read == written


def test_each_record_hashes_its_fields_and_links_to_the_previous(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    write_journal(path)
    prev = GENESIS
    for raw in lines_of(path):
        rec = json.loads(raw)
        assert rec["prev"] == prev
        body = {k: rec[k] for k in ("seq", "t", "kind", "data", "prev")}
        assert rec["hash"] == hashlib.sha256(canonical(body)).hexdigest()
        prev = rec["hash"]


def test_head_is_the_last_records_hash(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.jsonl") as journal:
        assert journal.head == GENESIS
        entry = journal.append("x", {})
        assert journal.head == entry.hash


def test_records_are_readable_while_the_writer_is_open(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal = Journal(path)
    try:
        journal.append("start", {"n": 1})
        assert [e.data for e in read_journal(path)] == [{"n": 1}]
        journal.append("step", {"n": 2})
        assert [e.data for e in read_journal(path)] == [{"n": 1}, {"n": 2}]
    finally:
        journal.close()


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    first = write_journal(path, RECORDS[:2])
    with Journal(path) as journal:
        assert journal.head == first[-1].hash
        journal.append("resume", {"completed": ["A-B-1"]})
        journal.append("end", {})
    entries = read_journal(path)
    assert [e.seq for e in entries] == [0, 1, 2, 3]
    assert [e.kind for e in entries] == ["start", "step", "resume", "end"]
    assert json.loads(lines_of(path)[2])["prev"] == first[-1].hash


def test_reopening_a_damaged_journal_refuses_and_appends_nothing(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    write_journal(path)
    lines = lines_of(path)
    path.write_bytes(lines[0] + lines[2] + lines[3])
    before = path.read_bytes()
    with pytest.raises(JournalError, match=":2:"):
        Journal(path)
    assert path.read_bytes() == before


def _flip_positions(path: Path, stride: int = 3) -> list[tuple[int, int]]:
    """(line number, byte offset) of every ``stride``-th byte of every record (its newline
    excepted), starting at a different offset on each line so every field is hit."""
    out = []
    offset = 0
    for number, raw in enumerate(lines_of(path), 1):
        out += [(number, offset + i) for i in range(number % stride, len(raw) - 1, stride)]
        offset += len(raw)
    return out


def test_a_flipped_byte_anywhere_is_found_on_its_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    write_journal(path)
    original = path.read_bytes()
    damaged = tmp_path / "damaged.jsonl"
    for line, offset in _flip_positions(path):
        data = bytearray(original)
        data[offset] ^= 0x01
        damaged.write_bytes(bytes(data))
        with pytest.raises(JournalError) as info:
            read_journal(damaged)
        assert f"{damaged}:{line}:" in str(info.value), (line, offset, str(info.value))


def test_an_edited_value_is_reported_as_altered(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    write_journal(path)
    lines = lines_of(path)
    lines[2] = lines[2].replace(b'"FAIL"', b'"PASS"')
    path.write_bytes(b"".join(lines))
    assert "altered" in str(expect_damage(path, 3))


@pytest.mark.parametrize("removed", [0, 1, 2])
def test_a_removed_line_is_found(tmp_path: Path, removed: int) -> None:
    path = tmp_path / "journal.jsonl"
    write_journal(path)
    lines = lines_of(path)
    del lines[removed]
    path.write_bytes(b"".join(lines))
    expect_damage(path, removed + 1)


def test_two_swapped_lines_are_found(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    write_journal(path)
    lines = lines_of(path)
    lines[1], lines[2] = lines[2], lines[1]
    path.write_bytes(b"".join(lines))
    expect_damage(path, 2)


@pytest.mark.parametrize("cut", [1, 10, -1])
def test_a_truncated_last_line_is_found(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "journal.jsonl"
    write_journal(path)
    lines = lines_of(path)
    lines[-1] = lines[-1][:cut]
    path.write_bytes(b"".join(lines))
    assert "truncated" in str(expect_damage(path, 4))


def test_a_replayed_line_appended_is_found(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    write_journal(path)
    lines = lines_of(path)
    path.write_bytes(b"".join([*lines, lines[-1]]))
    expect_damage(path, 5)


def test_an_appended_line_with_a_made_up_hash_is_found(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    entries = write_journal(path)
    forged = {"seq": 4, "t": entries[-1].t + 1, "kind": "step",
              "data": {"scenario": "A-B-2", "outcome": "PASS"}, "prev": entries[-1].hash,
              "hash": hashlib.sha256(b"whatever").hexdigest()}  # fmt: skip
    with open(path, "ab") as fh:
        fh.write(canonical(forged) + b"\n")
    assert "altered" in str(expect_damage(path, 5))


def test_an_appended_line_that_does_not_link_to_the_chain_is_found(tmp_path: Path) -> None:
    # A record copied from another run: internally consistent, but its prev is not our head.
    other = tmp_path / "other.jsonl"
    write_journal(other, [("start", {"run_id": "R2"}), ("step", {"outcome": "PASS"}),
                          ("step", {"outcome": "PASS"}), ("step", {"outcome": "PASS"}),
                          ("step", {"outcome": "PASS"})])  # fmt: skip
    path = tmp_path / "journal.jsonl"
    write_journal(path)
    with open(path, "ab") as fh:
        fh.write(lines_of(other)[4])
    assert "chain" in str(expect_damage(path, 5))


def test_a_line_that_is_not_a_record_is_found(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    write_journal(path)
    with open(path, "ab") as fh:
        fh.write(b'{"seq": 4}\n')
    assert "not a journal record" in str(expect_damage(path, 5))


def test_an_empty_journal_reads_as_no_records(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_bytes(b"")
    assert read_journal(path) == []


@pytest.mark.parametrize("cut", [1, 10, -1])
def test_reopening_cuts_a_half_written_last_record_and_says_so(tmp_path: Path, cut: int) -> None:
    # A process killed while writing its last record: nothing was built on it.
    path = tmp_path / "journal.jsonl"
    entries = write_journal(path)
    lines = lines_of(path)
    torn = lines[-1][:cut]
    path.write_bytes(b"".join(lines[:-1]) + torn)
    assert read_journal(path, torn_tail=True) == entries[:-1]
    with Journal(path) as journal:
        assert journal.repaired == {
            "torn_record_bytes": len(torn),
            "torn_record_sha256": hashlib.sha256(torn).hexdigest(),
        }
        journal.append("resume", {"repaired": journal.repaired})
    assert [e.kind for e in read_journal(path)] == ["start", "step", "step", "resume"]


def test_reopening_a_whole_journal_repairs_nothing(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    write_journal(path)
    before = path.read_bytes()
    with Journal(path) as journal:
        assert journal.repaired is None
    assert path.read_bytes() == before


def test_a_torn_record_before_the_last_line_is_damage_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    write_journal(path)
    lines = lines_of(path)
    path.write_bytes(lines[0] + lines[1][:20] + lines[2] + lines[3])
    before = path.read_bytes()
    with pytest.raises(JournalError, match=":2:"):
        Journal(path)
    assert path.read_bytes() == before
