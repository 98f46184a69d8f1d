"""Files written whole: a replaced file has its old content or its new one, a created file is
complete or absent and never written over, and what a killed writer left half made is
recognised and removed."""

from __future__ import annotations

from pathlib import Path

import pytest

from stslab.atomic import create_file, remove_scratch, replace_file


def test_a_created_file_is_never_written_over(tmp_path: Path) -> None:
    path = tmp_path / "report-R1.pdf"
    create_file(path, b"first")
    with pytest.raises(FileExistsError) as info:
        create_file(path, b"second")
    assert info.value.filename == str(path)
    assert path.read_bytes() == b"first"
    assert [p.name for p in tmp_path.iterdir()] == ["report-R1.pdf"]


def test_a_created_file_is_readable_by_others(tmp_path: Path) -> None:
    path = tmp_path / "report-R1.pdf"
    create_file(path, b"pdf")
    assert path.stat().st_mode & 0o044 == 0o044


def test_what_a_killed_writer_left_is_removed_and_nothing_else(tmp_path: Path) -> None:
    (tmp_path / "ledger").mkdir()
    replace_file(tmp_path / "ledger" / "SL100.json", b"{}")
    left = [tmp_path / ".report-R1.pdf-k2x_9q0a", tmp_path / "ledger" / ".SL100.json-abcdefgh"]
    kept = [tmp_path / ".hidden", tmp_path / ".notes-2026", tmp_path / "record.json"]
    for p in left + kept:
        p.write_bytes(b"x")
    assert sorted(remove_scratch(tmp_path)) == sorted(left)
    assert all(p.exists() for p in kept)
    assert (tmp_path / "ledger" / "SL100.json").read_bytes() == b"{}"
